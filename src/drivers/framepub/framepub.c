/* framepub.c -- the raw-frame ZeroMQ publisher (framepub.h): st.cmd command, param port, one sending thread per
 * publisher. PUB semantics: a subscriber whose queue (the high-water mark) is full loses that frame alone, the
 * others get it; the receiver sees the gap in the "frame" numbers (a reloc zmq source counts it). */
#include "drivers/framepub/framepub.h"

#include "core/base/base.h"
#include "core/param/param.h"
#include "core/shell/shell.h"
#include "drivers/camera/camera.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define FRAMEPUB_PARAMS(X)                                      \
    X(P_ENABLE, "EnableCallbacks", PARAM_INT)                   \
    X(P_ENDPOINT, "Endpoint", PARAM_STRING)                     \
    X(P_SENT, "ArrayCounter", PARAM_INT)                        \
    X(P_DROPPED, "DroppedArrays", PARAM_INT)                    \
    X(P_RATE, "ArrayRate", PARAM_DOUBLE)                        \
    X(P_LATENCY, "Latency", PARAM_DOUBLE)                       \
    X(P_MESSAGE, "Message", PARAM_STRING)
enum { FRAMEPUB_PARAMS(PARAM_ENUM) P_COUNT };
static const param_def framepub_defs[] = {FRAMEPUB_PARAMS(PARAM_DEF)};

typedef struct framepub {
    char name[64];                     /* the publisher's port name, for log lines */
    char endpoint[256];
    int high_water_mark;
    param_port *port;
    frame_consumer *frames;            /* added at configure time (camera.h) */
    void *context, *socket;            /* the sending thread's once started */
    pthread_t thread;
    int running;
    atomic_int stopping, enabled;
    struct framepub *next;
} framepub;

static framepub *publishers;           /* st.cmd thread before iocInit; read-only afterwards */

static int write_param(void *driver, const param_write *w, char *err, size_t errlen)
{
    framepub *fp = driver;
    if (w->index != P_ENABLE) return error_set(err, errlen, "%s is read-only", w->name);
    if (w->ival != 0 && w->ival != 1) return error_set(err, errlen, "EnableCallbacks is 0 or 1, not %ld", w->ival);
    atomic_store(&fp->enabled, (int)w->ival);
    return 0;
}

/* The header of one frame (framepub.h); caller frees. */
static char *header_json(const frame *f)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "htype", "array-1.0");
    cJSON_AddStringToObject(root, "type", "uint16");
    const int shape[2] = {f->height, f->width};
    cJSON_AddItemToObject(root, "shape", cJSON_CreateIntArray(shape, 2));
    cJSON_AddNumberToObject(root, "frame", (double)f->id);
    cJSON_AddNumberToObject(root, "timeStamp", (double)f->stamp.tv_sec + f->stamp.tv_nsec * 1e-9);
    cJSON_AddStringToObject(root, "encoding", "");
    cJSON *attr = cJSON_AddObjectToObject(root, "ndattr");
    cJSON_AddNumberToObject(attr, "stage_x", f->stage_x);
    cJSON_AddNumberToObject(attr, "stage_y", f->stage_y);
    cJSON_AddNumberToObject(attr, "stage_z", f->stage_z);
    cJSON_AddNumberToObject(attr, "pixel_size", f->pixel_size);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* Sends both parts (a PUB socket never blocks: a full subscriber queue drops the message for that subscriber
 * only). 1 sent, 0 on a socket error. */
static int send_frame(framepub *fp, const frame *f)
{
    char *header = header_json(f);
    int rc = zmq_send(fp->socket, header, strlen(header), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    free(header);
    if (rc < 0) return 0;
    return zmq_send(fp->socket, f->data, (size_t)f->width * (size_t)f->height * sizeof f->data[0], ZMQ_DONTWAIT) >= 0;
}

static void *publish_thread(void *arg)
{
    framepub *fp = arg;
    double window_start = time_monotonic();
    long sent = 0, window_sent = 0;
    uint64_t last_id = 0;
    long dropped = 0;
    while (!atomic_load(&fp->stopping)) {
        frame *f = frame_consumer_next(fp->frames, 0.2);
        double now = time_monotonic();
        if (f) {
            if (last_id && f->id > last_id + 1) dropped += (long)(f->id - last_id - 1);   /* newer came first */
            last_id = f->id;
            if (atomic_load(&fp->enabled)) {
                if (send_frame(fp, f)) {
                    sent++;
                    window_sent++;
                    struct timespec wall = time_wall();
                    param_set_double(fp->port, P_LATENCY, (double)(wall.tv_sec - f->stamp.tv_sec) +
                                                              (wall.tv_nsec - f->stamp.tv_nsec) * 1e-9);
                } else {
                    dropped++;
                }
            }
            frame_consumer_done(fp->frames, f);
            param_set_int(fp->port, P_SENT, sent);
            param_set_int(fp->port, P_DROPPED, dropped);
        }
        if (now - window_start >= 1.0) {
            param_set_double(fp->port, P_RATE, window_sent / (now - window_start));
            window_sent = 0;
            window_start = now;
        }
        param_post(fp->port);
    }
    return NULL;
}

/* Binds the socket and starts the thread; a failure is logged and shown in Message_RBV. */
static void start_publisher(framepub *fp)
{
    char err[512] = "";
    fp->context = zmq_ctx_new();
    fp->socket = zmq_socket(fp->context, ZMQ_PUB);
    int linger = 0;
    zmq_setsockopt(fp->socket, ZMQ_SNDHWM, &fp->high_water_mark, sizeof fp->high_water_mark);
    zmq_setsockopt(fp->socket, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(fp->socket, fp->endpoint) != 0) {
        snprintf(err, sizeof err, "cannot bind %s: %s", fp->endpoint, zmq_strerror(zmq_errno()));
    } else {
        char bound[256];
        size_t len = sizeof bound;
        zmq_getsockopt(fp->socket, ZMQ_LAST_ENDPOINT, bound, &len);
        param_set_string(fp->port, P_ENDPOINT, bound);
        fp->running = pthread_create(&fp->thread, NULL, publish_thread, fp) == 0;
        if (!fp->running) snprintf(err, sizeof err, "cannot start its thread");
    }
    if (err[0]) {
        log_error("framepub", "%s: %s", fp->name, err);
        param_set_string(fp->port, P_ENDPOINT, "");
        param_set_alarm(fp->port, P_MESSAGE, STAT_COMM, INVALID_ALARM);
    }
    param_set_string(fp->port, P_MESSAGE, err[0] ? err : "publishing");
    param_post(fp->port);
}

static void publishers_start(void *user)
{
    (void)user;
    for (framepub *fp = publishers; fp; fp = fp->next) start_publisher(fp);
}

static void publishers_stop(void *user)
{
    (void)user;
    for (framepub *fp = publishers; fp; fp = fp->next) {
        atomic_store(&fp->stopping, 1);
        if (fp->running) pthread_join(fp->thread, NULL);
        fp->running = 0;
    }
}

static void publishers_free(void *user)
{
    (void)user;
    while (publishers) {
        framepub *fp = publishers;
        publishers = fp->next;
        if (fp->socket) zmq_close(fp->socket);
        if (fp->context) zmq_ctx_term(fp->context);
        param_port_destroy(fp->port);
        free(fp);
    }
}

static int configure_cmd(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    long hwm;
    if (shell_arg_long(argv[4], "HIGH_WATER_MARK", &hwm, err, errlen)) return -1;
    if (hwm < 1 || hwm > 100000) return error_set(err, errlen, "HIGH_WATER_MARK must be 1..100000, not %ld", hwm);
    if (strncmp(argv[3], "tcp://", 6) != 0 && strncmp(argv[3], "ipc://", 6) != 0 &&
        strncmp(argv[3], "inproc://", 9) != 0)
        return error_set(err, errlen, "ENDPOINT '%s' is not a ZeroMQ endpoint (tcp://host:port)", argv[3]);
    camera *cam = camera_find(argv[2]);
    if (!cam) return error_set(err, errlen, "no camera port '%s' (cameraConfigure first)", argv[2]);
    framepub *fp = xcalloc(1, sizeof *fp);
    fp->port = param_port_create(argv[1], write_param, fp);
    if (!fp->port) {
        free(fp);
        return error_set(err, errlen, "port '%s' exists already", argv[1]);
    }
    fp->frames = frame_ring_add_consumer(camera_ring(cam), "framepub", FRAMES_NEWEST);
    if (!fp->frames) {
        param_port_destroy(fp->port);
        free(fp);
        return error_set(err, errlen, "camera %s is acquiring already: framePublishConfigure belongs before iocInit",
                         argv[2]);
    }
    param_create_table(fp->port, framepub_defs, P_COUNT);
    param_set_int(fp->port, P_ENABLE, 1);
    atomic_store(&fp->enabled, 1);
    str_copy(fp->name, argv[1], sizeof fp->name);
    str_copy(fp->endpoint, argv[3], sizeof fp->endpoint);
    fp->high_water_mark = (int)hwm;
    fp->next = publishers;
    publishers = fp;
    return 0;
}

void framepub_register(void)
{
    shell_register("framePublishConfigure", "framePublishConfigure(PORT, CAMERA_PORT, ENDPOINT, HIGH_WATER_MARK)",
                   4, 4, configure_cmd);
    db_at_init(publishers_start, NULL);
    db_at_shutdown(publishers_stop, NULL);
    db_at_exit(publishers_free, NULL);
}
