/* camera_link.c -- the connection of a camera source (aravis), served by the acquisition thread: connect and
 * reconnect once a second, the loss alarm (DetectorState Disconnected, SourceConnected in COMM/INVALID, log
 * line), the settings handed to the camera when they change and the camera's readbacks published as the
 * parameters' values, software triggers, and starting/stopping the camera's acquisition. Everything here runs
 * on the acquisition thread, which owns the camera_link. */
#include "drivers/camera/camera_internal.h"

#include "core/base/base.h"

#include <stdio.h>

/* Whether two settings differ in what a camera source maps onto its camera's features. */
static int features_differ(const camera_settings *a, const camera_settings *b)
{
    return a->acquire_time != b->acquire_time || a->acquire_period != b->acquire_period || a->gain != b->gain ||
           a->min_x != b->min_x || a->min_y != b->min_y || a->size_x != b->size_x || a->size_y != b->size_y ||
           a->bin_x != b->bin_x || a->bin_y != b->bin_y || a->image_mode != b->image_mode ||
           a->num_images != b->num_images || a->pixel_format != b->pixel_format || a->trigger_mode != b->trigger_mode ||
           a->trigger_source != b->trigger_source;
}

/* The camera's readbacks into the parameters (the _RBV records show what the camera took), unless newer
 * settings wait to be applied. An accepted write echoes its value into the parameter inside the record's
 * processing, under the db lock: holding that lock here, every write whose settings this pass applied has
 * echoed (the readback replaces the echo, never the reverse), and no write can come between the check and the
 * values. Newer settings: nothing is published and link->readback_stale says so; the next pass applies the
 * settings (or, when they went back to the applied ones meanwhile, only reads the camera back) and publishes,
 * so a readback of older settings never flips an _RBV back and the last one is never lost. */
static void publish_readbacks(camera *cam, camera_link *link, const camera_settings *applied,
                              const camera_settings *got)
{
    param_port *p = cam->port;
    db_lock();
    pthread_mutex_lock(&cam->lock);
    int current = !features_differ(&cam->settings, applied);
    pthread_mutex_unlock(&cam->lock);
    link->readback_stale = !current;
    if (current) {
        param_set_double(p, P_ACQUIRE_TIME, got->acquire_time);
        param_set_double(p, P_ACQUIRE_PERIOD, got->acquire_period);
        param_set_double(p, P_GAIN, got->gain);
        param_set_int(p, P_MIN_X, got->min_x);
        param_set_int(p, P_MIN_Y, got->min_y);
        param_set_int(p, P_SIZE_X, got->size_x);
        param_set_int(p, P_SIZE_Y, got->size_y);
        param_set_int(p, P_BIN_X, got->bin_x);
        param_set_int(p, P_BIN_Y, got->bin_y);
        param_set_int(p, P_IMAGE_MODE, got->image_mode);
        param_set_int(p, P_NUM_IMAGES, got->num_images);
        param_set_int(p, P_PIXEL_FORMAT, got->pixel_format);
        param_set_int(p, P_TRIGGER_MODE, got->trigger_mode);
        param_set_int(p, P_TRIGGER_SOURCE, got->trigger_source);
    }
    db_unlock();
    param_post(p);
}

/* Connection state into the parameters: SourceConnected, DetectorState Disconnected (INVALID) while lost,
 * the reason in StatusMessage and SourceError. */
static void publish_link(camera *cam, const camera_link *link, int acquiring, const char *message)
{
    param_port *p = cam->port;
    param_set_int(p, P_SOURCE_CONNECTED, link->connected);
    param_set_alarm(p, P_SOURCE_CONNECTED, link->connected ? STAT_NO_ALARM : STAT_COMM,
                    link->connected ? NO_ALARM : INVALID_ALARM);
    param_set_int(p, P_SOURCE_RECONNECTS, link->reconnects);
    param_set_int(p, P_DETECTOR_STATE, !link->connected ? DETECTOR_DISCONNECTED : acquiring ? DETECTOR_ACQUIRE : DETECTOR_IDLE);
    param_set_string(p, P_STATUS_MESSAGE, message);
    if (!link->connected) {     /* the source's last error, which housekeeping publishes as SourceError */
        str_copy(cam->source->counters.last_error, message, sizeof cam->source->counters.last_error);
        param_set_string(p, P_SOURCE_ERROR, message);
    }
    param_post(p);
}

void camera_lost(camera *cam, camera_link *link, int acquiring, const char *why)
{
    link->connected = link->streaming = 0;
    link->failed_attempts = 0;
    log_error("camera", "%s: camera lost: %s; reconnecting", cam->port_name, why);
    char message[256];
    snprintf(message, sizeof message, "Disconnected: %s", why);
    publish_link(cam, link, acquiring, message);
    cam->source->ops->disconnect(cam->source);     /* seconds: Aravis times out leaving control of a lost camera */
    link->next_attempt = time_monotonic() + 1.0;
}

int camera_link_service(camera *cam, camera_link *link, const camera_settings *s, char *err, size_t errlen)
{
    frame_source *src = cam->source;
    if (!link->connected) {
        if (time_monotonic() < link->next_attempt) return 0;
        link->next_attempt = time_monotonic() + 1.0;
        if (src->ops->connect(src, err, errlen) != 0) {
            if (!link->failed_attempts++ || link->failed_attempts % 60 == 0)
                log_warn("camera", "%s: cannot connect (%lu attempts): %s", cam->port_name, link->failed_attempts, err);
            char message[300];
            snprintf(message, sizeof message, "Disconnected: %s", err);
            publish_link(cam, link, s->acquire, message);
            return 0;
        }
        link->connected = 1;
        link->reconnects += link->ever_connected;
        link->ever_connected = 1;
        link->failed_attempts = 0;
        link->triggers_fired = s->software_triggers;    /* triggers sent while disconnected are not replayed */
        pthread_mutex_lock(&cam->lock);
        cam->limits = src->limits;
        pthread_mutex_unlock(&cam->lock);
        log_info("camera", "%s: camera connected (%dx%d sensor)", cam->port_name, src->limits.sensor_width,
                 src->limits.sensor_height);
        camera_settings got;
        if (src->ops->apply(src, NULL, s, &got, err, errlen) != 0)
            log_warn("camera", "%s: the camera refused a setting: %s", cam->port_name, err);
        link->applied = *s;
        publish_readbacks(cam, link, s, &got);
        publish_link(cam, link, s->acquire, s->acquire ? "Acquiring" : "Connected");
    } else if (link->readback_stale || features_differ(&link->applied, s)) {
        camera_settings got;
        if (src->ops->apply(src, &link->applied, s, &got, err, errlen) != 0) {
            log_warn("camera", "%s: the camera refused a setting: %s", cam->port_name, err);
            str_copy(src->counters.last_error, err, sizeof src->counters.last_error);
        }
        link->applied = *s;
        publish_readbacks(cam, link, s, &got);
    }
    for (; link->triggers_fired != s->software_triggers; link->triggers_fired++)
        if (src->ops->trigger(src, err, errlen) != 0)
            log_warn("camera", "%s: software trigger failed: %s", cam->port_name, err);
    if (s->acquire && !link->streaming) {
        if (src->ops->start(src, err, errlen) != 0) return -1;
        link->streaming = 1;
    } else if (!s->acquire && link->streaming) {
        src->ops->stop(src);
        link->streaming = 0;
    }
    if (!s->acquire && time_monotonic() >= link->next_check) {
        link->next_check = time_monotonic() + 1.0;
        if (src->ops->check(src, err, errlen) == SOURCE_LOST) {
            camera_lost(cam, link, 0, err);
            return 0;
        }
    }
    return 1;
}

