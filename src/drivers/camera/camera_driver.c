/* camera_driver.c -- camera ports: st.cmd configuration, parameter table, validation of parameter writes
 * from records, and the start/stop of the camera's threads at iocInit/shutdown (camera.h). */
#include "drivers/camera/camera_internal.h"

#include "core/base/base.h"
#include "core/shell/shell.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CAMERAS 4

static camera *cameras[MAX_CAMERAS];
static int ncameras;

camera *camera_find(const char *port)
{
    for (int i = 0; i < ncameras; i++)
        if (strcmp(cameras[i]->port_name, port) == 0) return cameras[i];
    return NULL;
}

frame_ring *camera_ring(camera *cam) { return cam->ring; }

int camera_frame_size(camera *cam, int *width, int *height)
{
    *width = (int)param_get_int(cam->port, P_ARRAY_SIZE_X);
    *height = (int)param_get_int(cam->port, P_ARRAY_SIZE_Y);
    return *width > 0 && *height > 0 ? 0 : -1;
}

void camera_post_result(camera *cam, const char *key, const char *json_value)
{
    pthread_mutex_lock(&cam->lock);
    if (cam->preview) preview_set_result(cam->preview, key, json_value);
    pthread_mutex_unlock(&cam->lock);
}

/* A value within lo..hi, or refused naming the range and whose it is (lo > hi: the camera lacks the feature). */
static int check_range(double v, double lo, double hi, const char *name, const char *whose, char *err, size_t errlen)
{
    if (lo > hi) return error_set(err, errlen, "%s: the camera has no such feature", name);
    if (v < lo || v > hi) return error_set(err, errlen, "%s must be %g..%g%s", name, lo, hi, whose);
    return 0;
}

/* [db locked, camera lock held] The settings a camera source maps onto its camera's features, checked against
 * what the connected camera accepts (until one has connected, against the generic ranges); the acquisition
 * thread then applies them and publishes the camera's readbacks. Returns 0, -1 (refused), or 1: not such a
 * setting. */
static int camera_feature_write(camera *cam, const param_write *w, char *err, size_t errlen)
{
    const source_limits *l = &cam->limits;
    camera_settings *s = &cam->settings;
    static const char whose[] = " (the camera's range)";
    int hardware = cam->source->ops->apply != NULL;
    long v = w->ival;
    switch (w->index) {
    case P_ACQUIRE_TIME:
        if (hardware && l->known ? check_range(w->dval, l->exposure_min, l->exposure_max, w->name, whose, err, errlen)
                                 : check_range(w->dval, 0, 3600, w->name, " s", err, errlen))
            return -1;
        s->acquire_time = w->dval;
        return 0;
    case P_ACQUIRE_PERIOD:
        if (check_range(w->dval, 0, 3600, w->name, " s", err, errlen) ||
            (hardware && l->known && w->dval > 0 &&
             check_range(1.0 / w->dval, l->rate_min, l->rate_max, "frame rate (1/AcquirePeriod)", " Hz", err, errlen)))
            return -1;
        s->acquire_period = w->dval;
        return 0;
    case P_GAIN:
        if (hardware && l->known ? check_range(w->dval, l->gain_min, l->gain_max, w->name, whose, err, errlen)
                                 : (w->dval <= 0 || w->dval > 1000) && error_set(err, errlen, "Gain must be > 0 and <= 1000"))
            return -1;
        s->gain = w->dval;
        return 0;
    case P_BIN_X: case P_BIN_Y:
        if (check_range((double)v, 1, hardware && l->known ? (w->index == P_BIN_X ? l->bin_max_x : l->bin_max_y) : 16,
                        w->name, "", err, errlen))
            return -1;
        if (w->index == P_BIN_X) s->bin_x = (int)v;
        else s->bin_y = (int)v;
        return 0;
    case P_PIXEL_FORMAT: {
        int offered = !hardware ? 1 << PIXEL_MONO16 : l->known ? l->pixel_formats : (1 << PIXEL_NFORMATS) - 1;
        if (v < 0 || v >= PIXEL_NFORMATS || !(offered & (1 << v)))
            return error_set(err, errlen, "PixelFormat %ld is not offered by this %s", v, hardware ? "camera" : "source (Mono16 only)");
        s->pixel_format = (int)v;
        return 0;
    }
    case P_TRIGGER_MODE: case P_TRIGGER_SOURCE: {
        int sources = !hardware ? 0 : l->known ? l->trigger_sources : (1 << TRIGGER_NSOURCES) - 1;
        int bad = w->index == P_TRIGGER_MODE ? v < TRIGGER_OFF || v > TRIGGER_ON || (v == TRIGGER_ON && !sources)
                                             : v < 0 || v >= TRIGGER_NSOURCES || !(sources & (1 << v));
        if (bad) return error_set(err, errlen, "%s %ld: the %s has no such trigger", w->name, v, hardware ? "camera" : "source");
        if (w->index == P_TRIGGER_MODE) s->trigger_mode = (int)v;
        else s->trigger_source = (int)v;
        return 0;
    }
    case P_SOFTWARE_TRIGGER:
        if (!v) return 0;
        if (s->trigger_mode != TRIGGER_ON || s->trigger_source != TRIGGER_SOFTWARE)
            return error_set(err, errlen, "SoftwareTrigger needs TriggerMode On and TriggerSource Software");
        s->software_triggers++;
        return 0;
    default:
        return 1;
    }
}

/* [db locked] A record wrote a parameter: validate, update the settings, wake the acquisition thread. */
static int camera_write(void *driver, const param_write *w, char *err, size_t errlen)
{
    camera *cam = driver;
    camera_settings *s = &cam->settings;
    long v = w->ival;
    pthread_mutex_lock(&cam->lock);
    int rc = camera_feature_write(cam, w, err, errlen);
    if (rc <= 0) {
        pthread_cond_broadcast(&cam->wake);
        pthread_mutex_unlock(&cam->lock);
        return rc;
    }
    rc = 0;
    switch (w->index) {
    case P_ACQUIRE:
        s->acquire = v != 0;
        break;
    case P_ACQUIRE_BUSY:      /* forward-linked from Acquire: a put-callback on Acquire=1 waits for the end */
        rc = v && s->acquire ? PARAM_ASYNC : 0;
        break;
    case P_IMAGE_MODE:
        if (v < IMAGE_SINGLE || v > IMAGE_CONTINUOUS) rc = error_set(err, errlen, "ImageMode must be 0..2");
        else s->image_mode = (int)v;
        break;
    case P_NUM_IMAGES:
        if (v < 1) rc = error_set(err, errlen, "NumImages must be >= 1");
        else s->num_images = (int)v;
        break;
    case P_MIN_X: case P_MIN_Y: case P_SIZE_X: case P_SIZE_Y: {
        int max = w->index == P_MIN_X || w->index == P_SIZE_X ? cam->max_width : cam->max_height;
        int is_min = w->index == P_MIN_X || w->index == P_MIN_Y;
        if (v < (is_min ? 0 : 1) || v > (is_min ? max - 1 : max))
            rc = error_set(err, errlen, "%s must be %d..%d", w->name, is_min ? 0 : 1, is_min ? max - 1 : max);
        else if (w->index == P_MIN_X) s->min_x = (int)v;
        else if (w->index == P_MIN_Y) s->min_y = (int)v;
        else if (w->index == P_SIZE_X) s->size_x = (int)v;
        else s->size_y = (int)v;
        break;
    }
    case P_DATA_TYPE:
        if (v != 3) rc = error_set(err, errlen, "this camera delivers UInt16 frames only");
        break;
    case P_COLOR_MODE:
        if (v != 0) rc = error_set(err, errlen, "this camera delivers Mono frames only");
        break;
    case P_ARRAY_COUNTER:
        s->reset_counter = v;
        break;
    case P_IMAGE_ENABLE:
        s->image_enable = v != 0;
        break;
    case P_IMAGE_MIN_TIME:
        if (w->dval < 0 || w->dval > 60) rc = error_set(err, errlen, "MinCallbackTime must be 0..60 s");
        else s->image_min_time = w->dval;
        break;
    case P_NUM_CAPTURE:
        if (v < 0) rc = error_set(err, errlen, "NumCapture must be >= 0 (0: until stopped)");
        break;
    case P_CAPTURE:
        if (v) {
            char path[512], name[256];
            param_get_string(cam->port, P_FILE_PATH, path, sizeof path);
            param_get_string(cam->port, P_FILE_NAME, name, sizeof name);
            int number = (int)param_get_int(cam->port, P_FILE_NUMBER);
            long count = param_get_int(cam->port, P_NUM_CAPTURE);
            if (cam->capture_waiting) {
                rc = error_set(err, errlen, "a capture is already running");
            } else if (capture_start(cam->capture, path[0] ? path : ".", name[0] ? name : "frames", number, count, err,
                                     errlen) != 0) {
                rc = -1;
            } else {
                cam->capture_waiting = 1;
            }
        } else {
            capture_stop(cam->capture);
        }
        break;
    case P_CAPTURE_BUSY:      /* forward-linked from Capture: a put-callback on Capture=1 waits for the file */
        rc = v && cam->capture_waiting ? PARAM_ASYNC : 0;
        break;
    case P_PREVIEW_QUALITY:
        if (v < 1 || v > 100) rc = error_set(err, errlen, "preview quality must be 1..100");
        else if (cam->preview) {
            cam->preview_cfg.quality = (int)v;
            preview_update(cam->preview, &cam->preview_cfg);
        }
        break;
    default:
        break;      /* file path/name/number: stored by the parameter layer */
    }
    pthread_cond_broadcast(&cam->wake);
    pthread_mutex_unlock(&cam->lock);
    return rc;
}

static void create_params(camera *cam)
{
    static const param_def defs[] = {CAMERA_PARAMS(PARAM_DEF)};
    param_create_table(cam->port, defs, sizeof defs / sizeof defs[0]);
    param_create_array(cam->port, "image:ArrayData", DBR_LONG, (long)cam->max_width * cam->max_height);
    param_port *p = cam->port;
    const camera_settings *s = &cam->settings;
    param_set_double(p, P_ACQUIRE_TIME, s->acquire_time);
    param_set_double(p, P_ACQUIRE_PERIOD, s->acquire_period);
    param_set_double(p, P_GAIN, s->gain);
    param_set_int(p, P_IMAGE_MODE, s->image_mode);
    param_set_int(p, P_NUM_IMAGES, s->num_images);
    param_set_int(p, P_MAX_SIZE_X, cam->max_width);
    param_set_int(p, P_MAX_SIZE_Y, cam->max_height);
    param_set_int(p, P_SIZE_X, cam->max_width);
    param_set_int(p, P_SIZE_Y, cam->max_height);
    param_set_int(p, P_BIN_X, 1);
    param_set_int(p, P_BIN_Y, 1);
    param_set_int(p, P_DATA_TYPE, 3);
    param_set_int(p, P_COLOR_MODE, 0);
    param_set_int(p, P_PIXEL_FORMAT, s->pixel_format);
    param_set_int(p, P_TRIGGER_MODE, s->trigger_mode);
    param_set_int(p, P_TRIGGER_SOURCE, s->trigger_source);
    param_set_int(p, P_SOURCE_CONNECTED, cam->source->ops->connect == NULL);
    param_set_int(p, P_IMAGE_ENABLE, s->image_enable);
    param_set_string(p, P_SOURCE_KIND, cam->source->ops->kind);
    param_set_string(p, P_STATUS_MESSAGE, "Idle");
    param_set_string(p, P_FILE_PATH, ".");
    param_set_string(p, P_FILE_NAME, "frames");
    param_set_int(p, P_FILE_NUMBER, 1);
    param_set_int(p, P_NUM_CAPTURE, 100);
    param_set_string(p, P_WRITE_MESSAGE, "idle");
}

static int configure_cmd(int argc, char **argv, char *err, size_t errlen)
{
    long width, height;
    if (shell_arg_long(argv[4], "MAX_WIDTH", &width, err, errlen) || shell_arg_long(argv[5], "MAX_HEIGHT", &height, err, errlen))
        return -1;
    if (width < 8 || height < 8 || width > 8192 || height > 8192) return error_set(err, errlen, "camera size must be 8..8192");
    if (camera_find(argv[1])) return error_set(err, errlen, "camera port %s exists already", argv[1]);
    if (ncameras == MAX_CAMERAS) return error_set(err, errlen, "at most %d cameras", MAX_CAMERAS);
    static const struct {
        const char *kind;
        frame_source *(*open)(const char *arg, int max_width, int max_height, char *err, size_t errlen);
    } sources[] = {{"sim", source_sim_open}, {"zmq", source_zmq_open}, {"files", source_files_open},
                   {"aravis", source_aravis_open}};
    int kind = 0, nkinds = (int)(sizeof sources / sizeof sources[0]);
    while (kind < nkinds && strcmp(argv[2], sources[kind].kind)) kind++;
    if (kind == nkinds) return error_set(err, errlen, "unknown camera source \"%s\" (sim, zmq, files, aravis)", argv[2]);
    frame_source *source = sources[kind].open(argv[3], (int)width, (int)height, err, errlen);
    if (!source) return -1;
    camera *cam = xcalloc(1, sizeof *cam);
    str_copy(cam->port_name, argv[1], sizeof cam->port_name);
    cam->port = param_port_create(argv[1], camera_write, cam);
    if (!cam->port) {
        source->ops->close(source);
        free(cam);
        return error_set(err, errlen, "parameter port %s exists already", argv[1]);
    }
    cam->source = source;
    cam->max_width = (int)width;
    cam->max_height = (int)height;
    cam->settings = (camera_settings){.image_mode = IMAGE_CONTINUOUS, .num_images = 1, .acquire_time = 0.05,
                                      .acquire_period = 0.1, .gain = 1.0, .size_x = (int)width,
                                      .size_y = (int)height, .bin_x = 1, .bin_y = 1, .pixel_format = PIXEL_MONO16,
                                      .image_enable = 1, .reset_counter = -1};
    cam->ring = frame_ring_create(CAMERA_RING_DEPTH, (size_t)width * height);
    cam->image_consumer = frame_ring_add_consumer(cam->ring, "image", FRAMES_NEWEST);
    cam->capture = capture_create(cam->ring);
    cam->image_buffer = xmalloc((size_t)width * height * sizeof *cam->image_buffer);
    preview_config_defaults(&cam->preview_cfg);
    pthread_mutex_init(&cam->lock, NULL);
    pthread_cond_init(&cam->wake, NULL);
    create_params(cam);
    cameras[ncameras++] = cam;
    log_info("camera", "%s: %s source %s, %ldx%ld", argv[1], argv[2], argv[3], width, height);
    return 0;
}

static camera *camera_arg(const char *port, char *err, size_t errlen)
{
    camera *cam = camera_find(port);
    if (!cam) error_set(err, errlen, "no camera port %s (cameraConfigure first)", port);
    return cam;
}

static int stage_cmd(int argc, char **argv, char *err, size_t errlen)
{
    camera *cam = camera_arg(argv[1], err, errlen);
    if (!cam) return -1;
    for (int i = 0; i < 4; i++) str_copy(cam->stage[i].spec, argv[2 + i], sizeof cam->stage[i].spec);
    return 0;
}

static int preview_cmd(int argc, char **argv, char *err, size_t errlen)
{
    camera *cam = camera_arg(argv[1], err, errlen);
    long quality, max_width;
    double rate;
    if (!cam || shell_arg_long(argv[3], "QUALITY", &quality, err, errlen) ||
        shell_arg_long(argv[4], "MAX_WIDTH", &max_width, err, errlen) ||
        shell_arg_double(argv[5], "MAX_RATE_HZ", &rate, err, errlen))
        return -1;
    if (quality < 1 || quality > 100 || max_width < 0 || rate < 0)
        return error_set(err, errlen, "quality must be 1..100, max width and rate >= 0");
    if (!cam->preview_frames && !(cam->preview_frames = frame_ring_add_consumer(cam->ring, "preview", FRAMES_NEWEST)))
        return error_set(err, errlen, "camera %s is acquiring already: cameraPreview belongs before iocInit", argv[1]);
    str_copy(cam->preview_cfg.endpoint, argv[2], sizeof cam->preview_cfg.endpoint);
    cam->preview_cfg.quality = (int)quality;
    cam->preview_cfg.max_width = (int)max_width;
    cam->preview_cfg.max_rate_hz = rate;
    return 0;
}

/* iocInit done: resolve stage channels, bind the preview, start threads. */
static void cameras_start(void *user)
{
    for (int i = 0; i < ncameras; i++) {
        camera *cam = cameras[i];
        static const char *const what[4] = {"stage X", "stage Y", "stage Z", "pixel size"};
        for (int k = 0; k < 4; k++) {
            char err[256];
            int rc = motion_position_resolve(&cam->stage[k].position, cam->stage[k].spec, cam->port_name, err,
                                             sizeof err);
            if (rc < 0) cam->stage[k].position.nterms = 0;
            if (rc < 0) log_error("camera", "%s: %s: %s", cam->port_name, what[k], err);
            else if (rc > 0) log_warn("camera", "%s: %s: %s", cam->port_name, what[k], err);
        }
        if (cam->preview_frames) {
            char err[256];
            cam->preview = preview_start(cam->preview_frames, &cam->preview_cfg, err, sizeof err);
            if (!cam->preview) log_error("camera", "%s: %s", cam->port_name, err);
            param_set_string(cam->port, P_PREVIEW_ENDPOINT, cam->preview ? preview_endpoint(cam->preview) : err);
            param_set_int(cam->port, P_PREVIEW_QUALITY, cam->preview_cfg.quality);
            param_post(cam->port);
        }
        frame_consumer_stats consumers[64];
        int n = frame_ring_consumers(cam->ring, consumers, 64);
        char names[512] = "";
        for (int k = 0, len = 0; k < n && k < 64 && len < (int)sizeof names; k++)
            len += snprintf(names + len, sizeof names - (size_t)len, "%s%s", k ? ", " : "", consumers[k].name);
        log_info("camera", "%s: %d frame consumers: %s", cam->port_name, n, names);
        camera_threads_start(cam);
    }
}

/* db_shutdown, first: stop every thread that produces or consumes frames. */
static void cameras_stop(void *user)
{
    for (int i = 0; i < ncameras; i++) {
        camera *cam = cameras[i];
        camera_threads_stop(cam);       /* also shuts the ring down, so the other consumers stop too */
        pthread_mutex_lock(&cam->lock); /* analysis threads may still be posting results to the preview */
        preview *stopped = cam->preview;
        cam->preview = NULL;
        pthread_mutex_unlock(&cam->lock);
        preview_stop(stopped);
        capture_destroy(cam->capture);
        cam->capture = NULL;
    }
}

/* db_shutdown, after record processing has stopped: free what the records pointed to. */
static void cameras_free(void *user)
{
    for (int i = 0; i < ncameras; i++) {
        camera *cam = cameras[i];
        param_port_destroy(cam->port);
        cam->source->ops->close(cam->source);
        frame_ring_destroy(cam->ring);
        pthread_cond_destroy(&cam->wake);
        pthread_mutex_destroy(&cam->lock);
        free(cam->image_buffer);
        free(cam);
    }
    ncameras = 0;
}

void camera_register(void)
{
    shell_register("cameraConfigure", "cameraConfigure(PORT, sim|zmq|files|aravis, ARG, MAX_WIDTH, MAX_HEIGHT)", 5, 5,
                   configure_cmd);
    shell_register("cameraStage", "cameraStage(PORT, X_CHANNEL, Y_CHANNEL, Z_CHANNEL, PIXEL_SIZE_CHANNEL)", 5, 5,
                   stage_cmd);
    shell_register("cameraPreview", "cameraPreview(PORT, ENDPOINT, QUALITY, MAX_WIDTH, MAX_RATE_HZ)", 5, 5,
                   preview_cmd);
    db_at_init(cameras_start, NULL);
    db_at_shutdown(cameras_stop, NULL);
    db_at_exit(cameras_free, NULL);
}
