/* camera_acquire.c -- the camera's acquisition thread (source -> ROI/binning -> frame ring, ImageMode and
 * pacing, counters, once-a-second statistics of every consumer, capture bookkeeping; a camera source's
 * connection is served from here by camera_link.c) and its image thread (newest frame -> the ArrayData
 * parameter behind $(P)image1:ArrayData). */
#include "drivers/camera/camera_internal.h"

#include "core/base/base.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Reads the stage channels (db lock taken there; the camera lock is not held). */
static void read_stage(camera *cam, source_request *rq)
{
    rq->x = motion_position_read(&cam->stage[0].position, 0);
    rq->y = motion_position_read(&cam->stage[1].position, 0);
    rq->z = motion_position_read(&cam->stage[2].position, 0);
    rq->pixel_size = motion_position_read(&cam->stage[3].position, 1.0);
    if (!(rq->pixel_size > 0)) rq->pixel_size = 1.0;
}

/* Crops to the ROI and bins (averaging) in place; frame geometry and pixel size follow. */
static void apply_roi(frame *f, const camera_settings *s)
{
    int x0 = s->min_x < f->width ? s->min_x : f->width - 1, y0 = s->min_y < f->height ? s->min_y : f->height - 1;
    int w = s->size_x > 0 && s->size_x <= f->width - x0 ? s->size_x : f->width - x0;
    int h = s->size_y > 0 && s->size_y <= f->height - y0 ? s->size_y : f->height - y0;
    int bx = s->bin_x > 0 ? s->bin_x : 1, by = s->bin_y > 0 ? s->bin_y : 1;
    int ow = w / bx, oh = h / by;
    if (ow < 1 || oh < 1 || (x0 == 0 && y0 == 0 && w == f->width && h == f->height && bx == 1 && by == 1)) return;
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            uint32_t sum = 0;
            for (int j = 0; j < by; j++)
                for (int i = 0; i < bx; i++) sum += f->data[(size_t)(y0 + y * by + j) * f->width + x0 + x * bx + i];
            f->data[(size_t)y * ow + x] = (uint16_t)(sum / (uint32_t)(bx * by));   /* writes never pass reads */
        }
    }
    f->width = ow;
    f->height = oh;
    f->pixel_size *= bx;
}

static void publish_consumer_stats(camera *cam, frame_consumer *c, int rate, int dropped, int latency)
{
    if (!c) return;
    frame_consumer_stats st;
    frame_consumer_stats_get(c, &st);
    param_set_double(cam->port, rate, st.rate_hz);
    param_set_int(cam->port, dropped, (long)st.dropped);
    param_set_double(cam->port, latency, st.latency_s);
}

/* Once a second: consumer statistics, preview counters, capture state; completes a finished Capture. */
static void housekeeping(camera *cam, uint64_t *last_count, double *last_time)
{
    param_port *p = cam->port;
    double now = time_monotonic();
    uint64_t count = frame_ring_published(cam->ring);
    param_set_double(p, P_ARRAY_RATE, (double)(count - *last_count) / (now - *last_time));
    *last_count = count;
    *last_time = now;
    publish_consumer_stats(cam, cam->image_consumer, P_IMAGE_RATE, P_IMAGE_DROPPED, P_IMAGE_LATENCY);
    if (cam->preview)
        publish_consumer_stats(cam, preview_frame_consumer(cam->preview), P_PREVIEW_RATE, P_PREVIEW_DROPPED,
                               P_PREVIEW_LATENCY);
    param_set_int(p, P_SOURCE_RECEIVED, (long)cam->source->counters.received);
    param_set_int(p, P_SOURCE_REJECTED, (long)cam->source->counters.rejected);
    param_set_int(p, P_SOURCE_MISSED, (long)cam->source->counters.missed);
    param_set_int(p, P_SOURCE_UNDERRUNS, (long)cam->source->counters.underruns);
    param_set_string(p, P_SOURCE_ERROR, cam->source->counters.last_error);
    if (cam->preview) {
        unsigned long sent;
        size_t bytes;
        preview_counts(cam->preview, &sent, &bytes);
        param_set_int(p, P_PREVIEW_SENT, (long)sent);
        param_set_int(p, P_PREVIEW_BYTES, (long)bytes);
    }
    param_post(p);
}

/* Capture progress; when a capture waited on by a Capture=1 write ends, completes that write. */
static void capture_bookkeeping(camera *cam)
{
    param_port *p = cam->port;
    capture_status st;
    capture_status_get(cam->capture, &st);
    param_set_int(p, P_NUM_CAPTURED, st.captured);
    param_set_int(p, P_CAPTURE_DROPPED, (long)st.dropped);
    param_set_int(p, P_WRITE_STATUS, st.state == CAPTURE_ERROR);
    param_set_string(p, P_WRITE_MESSAGE, st.message);
    param_set_alarm(p, P_WRITE_STATUS, st.state == CAPTURE_ERROR ? STAT_WRITE : STAT_NO_ALARM,
                    st.state == CAPTURE_ERROR ? MAJOR_ALARM : NO_ALARM);
    if (st.file[0]) param_set_string(p, P_FULL_FILE_NAME, st.file);
    pthread_mutex_lock(&cam->lock);
    int finished = cam->capture_waiting && st.state != CAPTURE_RUNNING;
    if (finished) cam->capture_waiting = 0;
    pthread_mutex_unlock(&cam->lock);
    if (finished) {
        param_set_int(p, P_CAPTURE, 0);
        if (st.state == CAPTURE_IDLE) param_set_int(p, P_FILE_NUMBER, param_get_int(p, P_FILE_NUMBER) + 1);
        param_post(p);
        param_write_done(p, P_CAPTURE_BUSY, st.state == CAPTURE_ERROR ? -1 : 0);
    } else {
        param_post(p);
    }
}

static void acquisition_ended(camera *cam, int error, const char *message)
{
    param_port *p = cam->port;
    pthread_mutex_lock(&cam->lock);
    cam->settings.acquire = 0;
    pthread_mutex_unlock(&cam->lock);
    param_set_int(p, P_ACQUIRE, 0);
    param_set_int(p, P_DETECTOR_STATE, error ? DETECTOR_ERROR : DETECTOR_IDLE);
    param_set_string(p, P_STATUS_MESSAGE, message);
    param_post(p);
    param_write_done(p, P_ACQUIRE_BUSY, error ? -1 : 0);
    if (error) log_error("camera", "%s: acquisition stopped: %s", cam->port_name, message);
}

/* One exposure: waits out the period, fills a frame from the source, publishes it. Returns 1 when a frame
 * was published, 0 when none came, -1 on a source failure (message in err). */
static int expose(camera *cam, const camera_settings *s, uint64_t serial, double *next_due, char *err, size_t errlen)
{
    double period = s->acquire_period > s->acquire_time ? s->acquire_period : s->acquire_time;
    if (cam->source->ops->self_paced) period = 0;     /* frames come at the publisher's pace */
    while (time_monotonic() < *next_due && !atomic_load(&cam->stopping)) {
        double wait = *next_due - time_monotonic();
        usleep((useconds_t)(1e6 * (wait < 0.05 ? (wait > 0 ? wait : 0) : 0.05)));
    }
    *next_due = fmax(*next_due + period, time_monotonic());
    source_request rq;
    read_stage(cam, &rq);
    rq.exposure = s->acquire_time > 0 ? s->acquire_time / 0.1 : 1.0;   /* sample counts are per 0.1 s */
    rq.gain = s->gain;
    rq.seed = serial * 0x9E3779B97F4A7C15ULL + 1;
    frame *f = frame_ring_acquire(cam->ring, cam->max_width, cam->max_height);
    f->stamp.tv_sec = 0;
    f->stamp.tv_nsec = 0;
    /* where the stage channels say the stage is, unless the source knows better (a zmq header's ndattr) */
    f->stage_x = rq.x;
    f->stage_y = rq.y;
    f->stage_z = rq.z;
    f->pixel_size = rq.pixel_size;
    int rc = cam->source->ops->next(cam->source, f, &rq, 0.2, err, errlen);
    if (rc != 1) {
        frame_ring_discard(cam->ring, f);
        return rc;
    }
    if (!f->stamp.tv_sec) f->stamp = time_wall();   /* read out now, unless the source stamped it */
    if (cam->source->ops->apply) f->pixel_size *= s->bin_x;   /* the camera cropped and binned */
    else apply_roi(f, s);
    frame_ring_publish(cam->ring, f);
    param_port *p = cam->port;
    param_set_int(p, P_UNIQUE_ID, (long)f->id);
    param_set_double(p, P_TIME_STAMP, (double)f->stamp.tv_sec + f->stamp.tv_nsec * 1e-9);
    param_set_int(p, P_ARRAY_SIZE_X, f->width);
    param_set_int(p, P_ARRAY_SIZE_Y, f->height);
    param_set_int(p, P_ARRAY_SIZE, f->width * f->height * 2);
    param_set_double(p, P_STAGE_X, f->stage_x);
    param_set_double(p, P_STAGE_Y, f->stage_y);
    param_set_double(p, P_PIXEL_SIZE, f->pixel_size);
    return 1;
}

static void *acquire_thread(void *arg)
{
    camera *cam = arg;
    param_port *p = cam->port;
    uint64_t serial = 0, last_count = 0;
    double last_stats = time_monotonic(), next_due = 0;
    long counter = 0, images = 0;
    int was_acquiring = 0;
    int camera_source = cam->source->ops->connect != NULL;
    camera_link link = {0};
    while (!atomic_load(&cam->stopping)) {
        pthread_mutex_lock(&cam->lock);
        if (!cam->settings.acquire || (camera_source && !link.connected)) {
            struct timespec deadline = time_add(time_wall(), 0.2);
            pthread_cond_timedwait(&cam->wake, &cam->lock, &deadline);
        }
        camera_settings s = cam->settings;
        cam->settings.reset_counter = -1;
        pthread_mutex_unlock(&cam->lock);

        if (s.reset_counter >= 0) counter = s.reset_counter;
        if (time_monotonic() - last_stats >= 1.0) housekeeping(cam, &last_count, &last_stats);
        capture_bookkeeping(cam);
        char err[256] = "";
        int ready = camera_source ? camera_link_service(cam, &link, &s, err, sizeof err) : 1;
        if (ready < 0) {                           /* the camera would not start acquiring */
            acquisition_ended(cam, 1, err);
            was_acquiring = 0;
            continue;
        }
        if (!ready) {                              /* not connected: Acquire waits for the camera */
            if (was_acquiring && !s.acquire) {     /* stopped while the camera was lost: complete the put */
                was_acquiring = 0;
                param_write_done(p, P_ACQUIRE_BUSY, 0);
            }
            continue;
        }
        if (!s.acquire) {
            if (was_acquiring) acquisition_ended(cam, 0, "Stopped");   /* Acquire = 0 from a client */
            was_acquiring = 0;
            continue;
        }
        if (!was_acquiring) {       /* a new acquisition */
            was_acquiring = 1;
            images = 0;
            next_due = time_monotonic();
            param_set_int(p, P_DETECTOR_STATE, DETECTOR_ACQUIRE);
            param_set_string(p, P_STATUS_MESSAGE, "Acquiring");
            param_set_int(p, P_NUM_IMAGES_COUNTER, 0);
            param_post(p);
        }
        int rc = expose(cam, &s, ++serial, &next_due, err, sizeof err);
        if (rc == SOURCE_LOST) {
            camera_lost(cam, &link, 1, err);     /* Acquire stays requested: acquisition resumes on reconnect */
            continue;
        }
        if (rc < 0) {
            acquisition_ended(cam, 1, err);
            was_acquiring = 0;
            continue;
        }
        if (rc == 1) {
            param_set_int(p, P_ARRAY_COUNTER, ++counter);
            param_set_int(p, P_NUM_IMAGES_COUNTER, ++images);
            param_post(p);
        }
        int done = (s.image_mode == IMAGE_SINGLE && images >= 1) ||
                   (s.image_mode == IMAGE_MULTIPLE && images >= s.num_images);
        if (done) {
            acquisition_ended(cam, 0, "Done");
            was_acquiring = 0;
        }
    }
    return NULL;
}

static void *image_thread(void *arg)
{
    camera *cam = arg;
    param_port *p = cam->port;
    long count = 0;
    while (!atomic_load(&cam->stopping)) {
        frame *f = frame_consumer_next(cam->image_consumer, 0.2);
        if (!f) continue;
        pthread_mutex_lock(&cam->lock);
        int enabled = cam->settings.image_enable;
        double min_time = cam->settings.image_min_time;
        pthread_mutex_unlock(&cam->lock);
        double started = time_monotonic();
        if (enabled) {
            size_t n = (size_t)f->width * f->height;
            for (size_t i = 0; i < n; i++) cam->image_buffer[i] = f->data[i];
            param_set_array(p, P_IMAGE_DATA, cam->image_buffer, (long)n);
            param_set_int(p, P_IMAGE_SIZE0, f->width);
            param_set_int(p, P_IMAGE_SIZE1, f->height);
            param_set_int(p, P_IMAGE_UNIQUE_ID, (long)f->id);
            param_set_int(p, P_IMAGE_COUNTER, ++count);
            param_post(p);
        }
        frame_consumer_done(cam->image_consumer, f);
        /* a throttled image PV takes no frame until MinCallbackTime has passed: the ring counts the frames
         * published meanwhile as dropped by this consumer, and nobody else waits */
        while (!atomic_load(&cam->stopping) && time_monotonic() - started < min_time) usleep(10000);
    }
    return NULL;
}

void camera_threads_start(camera *cam)
{
    pthread_create(&cam->acquire_thread, NULL, acquire_thread, cam);
    pthread_create(&cam->image_thread, NULL, image_thread, cam);
}

void camera_threads_stop(camera *cam)
{
    atomic_store(&cam->stopping, 1);
    pthread_mutex_lock(&cam->lock);
    pthread_cond_broadcast(&cam->wake);
    pthread_mutex_unlock(&cam->lock);
    frame_ring_shutdown(cam->ring);
    pthread_join(cam->acquire_thread, NULL);
    pthread_join(cam->image_thread, NULL);
}
