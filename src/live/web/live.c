/* live.c -- the newest camera frame as JPEG for the browsers: a FRAMES_NEWEST consumer of the camera's frame
 * ring that encodes (preview_encode) at most WEB_LIVE_MAX_HZ times a second, and only while at least one
 * browser watches, then wakes the server thread so it can tell every event stream.
 *
 * Threads and locks: the JPEG thread owns the consumer and writes `jpeg` and its metadata under `lock`; the
 * server thread copies them under the same lock. `watchers` is set by the server thread (atomic).
 */
#include "live/web/web_internal.h"

#include "core/base/base.h"
#include "drivers/preview/preview.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WEB_LIVE_MAX_HZ 10.0
#define WEB_LIVE_MAX_WIDTH 800
#define WEB_LIVE_QUALITY 80

struct web_live {
    frame_consumer *consumer;
    int wake_fd;
    pthread_t thread;
    atomic_int stop;
    atomic_int watchers;

    pthread_mutex_t lock;   /* guards everything below */
    unsigned char *jpeg;    /* malloc'ed copy of the newest JPEG */
    size_t jpeg_size;
    uint64_t frame_id;
    int width, height, binning;                   /* of the JPEG */
    double stamp, stage_x, stage_y, pixel_size;   /* pixel_size: um per JPEG pixel */
    web_geometry geometry;                        /* of the camera frame */
};

static void publish(web_live *live, const frame *f, const unsigned char *jpeg, unsigned long size, int width,
                    int height, int binning)
{
    unsigned char *copy = xmalloc(size);
    memcpy(copy, jpeg, size);
    pthread_mutex_lock(&live->lock);
    free(live->jpeg);
    live->jpeg = copy;
    live->jpeg_size = size;
    live->frame_id = f->id;
    live->width = width;
    live->height = height;
    live->binning = binning;
    live->stamp = (double)f->stamp.tv_sec + f->stamp.tv_nsec * 1e-9;
    live->stage_x = f->stage_x;
    live->stage_y = f->stage_y;
    live->pixel_size = f->pixel_size * binning;
    live->geometry = (web_geometry){f->stage_x, f->stage_y, f->pixel_size, f->width, f->height};
    pthread_mutex_unlock(&live->lock);
    uint64_t one = 1;
    if (write(live->wake_fd, &one, sizeof one) < 0) log_debug("web", "wake: nothing to do (counter full)");
}

static void *live_thread(void *arg)
{
    web_live *live = arg;
    double next = 0;
    while (!atomic_load(&live->stop)) {
        frame *f = frame_consumer_next(live->consumer, 0.2);
        if (!f) continue;
        double now = time_monotonic();
        if (atomic_load(&live->watchers) > 0 && now >= next) {
            next = now + 1.0 / WEB_LIVE_MAX_HZ;
            int binning = (f->width + WEB_LIVE_MAX_WIDTH - 1) / WEB_LIVE_MAX_WIDTH;
            double lo = 0, hi = 0;
            unsigned char *jpeg = NULL;
            unsigned long size = 0;
            int w, h;
            if (preview_encode(f->data, f->width, f->height, binning, WEB_LIVE_QUALITY, &lo, &hi, &jpeg, &size, &w,
                               &h) == 0) {
                publish(live, f, jpeg, size, w, h, binning);
                preview_free_jpeg(jpeg);
            } else {
                log_warn("web", "frame %llu could not be encoded as JPEG", (unsigned long long)f->id);
            }
        }
        frame_consumer_done(live->consumer, f);
    }
    return NULL;
}

web_live *web_live_start(frame_consumer *consumer, int wake_fd)
{
    web_live *live = xcalloc(1, sizeof *live);
    live->consumer = consumer;
    live->wake_fd = wake_fd;
    pthread_mutex_init(&live->lock, NULL);
    if (pthread_create(&live->thread, NULL, live_thread, live) != 0) {
        pthread_mutex_destroy(&live->lock);
        free(live);
        return NULL;
    }
    return live;
}

void web_live_set_watchers(web_live *live, int watchers) { atomic_store(&live->watchers, watchers); }

int web_live_describe(web_live *live, char *buf, size_t buflen, uint64_t *id)
{
    pthread_mutex_lock(&live->lock);
    int rc = -1;
    if (live->jpeg) {
        snprintf(buf, buflen,
                 "{\"frame\":%llu,\"timeStamp\":%.6f,\"width\":%d,\"height\":%d,\"binning\":%d,"
                 "\"stage\":{\"x\":%.6g,\"y\":%.6g},\"pixel_size\":%.6g}",
                 (unsigned long long)live->frame_id, live->stamp, live->width, live->height, live->binning,
                 live->stage_x, live->stage_y, live->pixel_size);
        *id = live->frame_id;
        rc = 0;
    }
    pthread_mutex_unlock(&live->lock);
    return rc;
}

int web_live_geometry(web_live *live, web_geometry *out)
{
    pthread_mutex_lock(&live->lock);
    int rc = live->jpeg ? 0 : -1;
    *out = live->geometry;
    pthread_mutex_unlock(&live->lock);
    return rc;
}

unsigned char *web_live_copy_jpeg(web_live *live, size_t *size)
{
    pthread_mutex_lock(&live->lock);
    unsigned char *copy = NULL;
    if (live->jpeg) {
        copy = xmalloc(live->jpeg_size);
        memcpy(copy, live->jpeg, live->jpeg_size);
        *size = live->jpeg_size;
    }
    pthread_mutex_unlock(&live->lock);
    return copy;
}

void web_live_stop(web_live *live)
{
    if (!live) return;
    atomic_store(&live->stop, 1);
    pthread_join(live->thread, NULL);
    pthread_mutex_destroy(&live->lock);
    free(live->jpeg);
    free(live);
}
