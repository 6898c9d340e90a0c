/* web_internal.h -- what the files of src/live/web share: the server's configuration, the JPEG of the newest
 * frame (live.c), the watched channels and their JSON state (state.c), and HTTP plumbing (http.c). */
#ifndef RELOC_WEB_INTERNAL_H
#define RELOC_WEB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/frames/frames.h"
#include "drivers/motion/motion.h"

#include <cjson/cJSON.h>

/* Where a camera frame looked: the image centre ((width-1)/2, (height-1)/2) shows the stage position, and
 * pixel (u, v) shows stage point (stage_x, stage_y) + ((u, v) - centre) * pixel_size (src/drivers/simscope).
 * The beam may be elsewhere in the image (the stage map's calibrated Live:BeamX/Y): to bring the point at
 * pixel p to the beam, the stage goes to (stage_x, stage_y) + (p - beam) * pixel_size. */
typedef struct web_geometry {
    double stage_x, stage_y;   /* um */
    double pixel_size;         /* um per frame pixel */
    int width, height;         /* frame pixels */
} web_geometry;

/* ---- live.c: the newest frame as JPEG -------------------------------------------------------------- */
typedef struct web_live web_live;

/* Starts the JPEG thread on consumer (added to the camera's ring at configuration); it writes to wake_fd (an
 * eventfd) after each JPEG. */
web_live *web_live_start(frame_consumer *consumer, int wake_fd);
/* Encoding runs only while watchers > 0 (browsers with an open event stream). */
void web_live_set_watchers(web_live *live, int watchers);
/* Metadata of the newest JPEG as a JSON object into buf; 0, or -1 when there is no JPEG yet. */
int web_live_describe(web_live *live, char *buf, size_t buflen, uint64_t *id);
/* Geometry of the frame behind the newest JPEG: 0, or -1 when there is none yet. */
int web_live_geometry(web_live *live, web_geometry *out);
/* Copies the newest JPEG; returns a malloc'ed buffer (NULL: none yet). */
unsigned char *web_live_copy_jpeg(web_live *live, size_t *size);
void web_live_stop(web_live *live);

/* ---- state.c: channels the page shows, and moves ---------------------------------------------------- */
typedef struct web_state web_state;

/* Channels are named before iocInit (set_*, add_show) and resolved by web_state_start. */
web_state *web_state_create(int wake_fd);
/* Coarse motors and optional piezos on them (NULL: none): the stage position is their sum (drivers/motion). */
void web_state_set_stage(web_state *st, const char *x_motor, const char *y_motor, const char *x_piezo,
                         const char *y_piezo);
/* Channels of the calibrated beam pixel (frame pixels), sent to the page for its crosshair and clicks. */
void web_state_set_beam(web_state *st, const char *x_channel, const char *y_channel);
/* Particle positions: in um, or in frame pixels when the arrays' EGU is "px" (live detection results). */
void web_state_set_particles(web_state *st, const char *x_array, const char *y_array);
void web_state_set_enable(web_state *st, const char *enable_channel);
void web_state_add_show(web_state *st, const char *label, const char *channel);
/* At iocInit: resolves the channels (a missing one is logged and left out) and subscribes to them. */
void web_state_start(web_state *st);
/* Takes the "something changed" flag (set by subscriptions). */
int web_state_take_changed(web_state *st);
/* The whole state as a JSON object: "stage" (um, coarse + piezo), "move_enable", "beam" (frame pixels),
 * "particles" (um; pixel positions converted with `view`, left out when it is NULL), "show" (free with
 * cJSON_Delete). */
cJSON *web_state_json(web_state *st, const web_geometry *view);
/* Starts a move of the stage to (x, y) um (relative: by that much), planned from the motors now. 0 when it
 * started (done is called once when the motors finish, with their verdict; motion.h), or an HTTP status (403
 * disabled, 409 refused, 503 no stage) with the reason; msg says where the stage goes. */
int web_state_move(web_state *st, double x_um, double y_um, int relative, motion_done_fn done, void *user,
                   char *msg, size_t msglen);
/* Stops every motor of the stage (no enable needed): 0, or an HTTP status with the reason. */
int web_state_stop_motors(web_state *st, char *msg, size_t msglen);
/* At shutdown: no more subscriptions. At exit (after pending moves have completed or failed): frees. */
void web_state_unsubscribe(web_state *st);
void web_state_free(web_state *st);

/* ---- http.c: request parsing and bounded output buffers --------------------------------------------- */
#define WEB_MAX_REQUEST 8192

typedef struct web_request {
    char method[8];
    char path[256];     /* without the query */
    char query[512];
    char body[512];
    char host[128];     /* headers a POST is checked by ("" when absent) */
    char origin[160];
    char fetch_site[32];   /* Sec-Fetch-Site */
} web_request;

/* Parses one complete request from buf[0..len). Returns the bytes it used, 0 when more bytes are needed,
 * -1 on a malformed request or one larger than WEB_MAX_REQUEST. */
long web_parse_request(const char *buf, size_t len, web_request *rq);
/* A POST must come from the page itself: 0, or -1 with the reason when the request is cross-origin (Origin or
 * Sec-Fetch-Site say another site) or names a host that is not this server's (DNS rebinding): Host must be an
 * IP address, localhost or this machine's name. */
int web_same_origin(const web_request *rq, char *why, size_t whylen);
/* The value of name in "a=1&b=2" as a double: 0, or -1 when absent or not a finite number. */
int web_form_double(const char *form, const char *name, double *out);

/* An output buffer with a hard limit: appending past it fails and the caller drops or disconnects. */
typedef struct web_outbuf {
    char *data;
    size_t len, sent, limit;
} web_outbuf;

int web_out_append(web_outbuf *out, const void *data, size_t len);
int web_out_printf(web_outbuf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A complete response with Content-Length; 0 or -1 (no room). */
int web_out_response(web_outbuf *out, int status, const char *content_type, const void *body, size_t len);
/* Writes what it can without blocking: 0, or -1 when the peer is gone. */
int web_out_flush(web_outbuf *out, int fd);
void web_out_free(web_outbuf *out);

#endif
