/* web_internal.h -- what the files of src/live/web share: the server's configuration, the JPEG of the newest
 * frame (live.c), the watched channels and their JSON state (state.c), and HTTP plumbing (http.c). */
#ifndef RELOC_WEB_INTERNAL_H
#define RELOC_WEB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "drivers/frames/frames.h"

#include <cjson/cJSON.h>

/* Where a camera frame looked: the beam pixel ((width-1)/2, (height-1)/2) shows the stage position, and
 * pixel (u, v) shows stage point (stage_x, stage_y) + ((u, v) - beam) * pixel_size (src/drivers/simscope). */
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
void web_state_set_stage(web_state *st, const char *x_motor, const char *y_motor);
/* Particle positions: in um, or in frame pixels when the arrays' EGU is "px" (live detection results). */
void web_state_set_particles(web_state *st, const char *x_array, const char *y_array);
void web_state_set_enable(web_state *st, const char *enable_channel);
void web_state_add_show(web_state *st, const char *label, const char *channel);
/* At iocInit: resolves the channels (a missing one is logged and left out) and subscribes to them. */
void web_state_start(web_state *st);
/* Takes the "something changed" flag (set by subscriptions). */
int web_state_take_changed(web_state *st);
/* The whole state as a JSON object: "stage", "move_enable", "particles" (um; pixel positions converted with
 * `view`, left out when it is NULL), "show" (free with cJSON_Delete). */
cJSON *web_state_json(web_state *st, const web_geometry *view);
/* Moves the stage so that (x, y) um, a point of the camera's view, comes to the beam: the motors move by the
 * distance from the view's stage position (absolute targets when view is NULL). 0, or an HTTP status (403
 * disabled, 409 refused, 503 no stage) with a message. */
int web_state_move(web_state *st, double x_um, double y_um, const web_geometry *view, char *msg, size_t msglen);
void web_state_free(web_state *st);

/* ---- http.c: request parsing and bounded output buffers --------------------------------------------- */
#define WEB_MAX_REQUEST 8192

typedef struct web_request {
    char method[8];
    char path[256];     /* without the query */
    char query[512];
    char body[512];
} web_request;

/* Parses one complete request from buf[0..len). Returns the bytes it used, 0 when more bytes are needed,
 * -1 on a malformed request or one larger than WEB_MAX_REQUEST. */
long web_parse_request(const char *buf, size_t len, web_request *rq);
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
