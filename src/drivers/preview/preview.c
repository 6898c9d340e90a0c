/* preview.c -- JPEG encoding of frames and the preview thread that publishes them over ZeroMQ (preview.h).
 * The encoder keeps its turbojpeg handle and buffers between frames, so the steady state allocates nothing
 * but the header text. `lock` guards the settings and posted results, which other threads change. */
#include "drivers/preview/preview.h"

#include "core/base/base.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <zmq.h>

#define MAX_RESULTS 8

typedef struct encoder {
    tjhandle tj;
    unsigned char *grey;          /* binned 8-bit image */
    size_t grey_capacity;
    unsigned char *jpeg;          /* turbojpeg output buffer, grown by turbojpeg */
    unsigned long jpeg_capacity;
    uint32_t histogram[65536];
} encoder;

struct preview {
    pthread_t thread;
    frame_consumer *consumer;
    void *zmq_context, *socket;
    encoder enc;
    atomic_int stopping;

    pthread_mutex_t lock;         /* guards everything below */
    preview_config cfg;
    char *result_keys[MAX_RESULTS];
    char *result_values[MAX_RESULTS];
    unsigned long sent;
    size_t last_bytes;
};

void preview_config_defaults(preview_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    str_copy(cfg->endpoint, "tcp://127.0.0.1:5570", sizeof cfg->endpoint);
    cfg->quality = 85;
    cfg->max_width = 1024;
    cfg->max_rate_hz = 10;
}

/* Levels from the 0.1 and 99.9 percentiles, so a few hot or dead pixels do not wash out the picture. */
static void auto_levels(encoder *e, const uint16_t *pixels, size_t n, double *lo, double *hi)
{
    memset(e->histogram, 0, sizeof e->histogram);
    for (size_t i = 0; i < n; i++) e->histogram[pixels[i]]++;
    size_t low_count = n / 1000, high_count = n - n / 1000, seen = 0;
    int low = -1, high = 65535;
    for (int v = 0; v < 65536; v++) {
        seen += e->histogram[v];
        if (low < 0 && seen > low_count) low = v;
        if (seen >= high_count) {
            high = v;
            break;
        }
    }
    *lo = low < 0 ? 0 : low;
    *hi = high > *lo ? high : *lo + 1;
}

static int encode(encoder *e, const uint16_t *pixels, int width, int height, int binning, int quality, double *lo,
                  double *hi, unsigned long *jpeg_size, int *out_width, int *out_height)
{
    if (binning < 1) binning = 1;
    int w = width / binning, h = height / binning;
    if (w < 1 || h < 1) return -1;
    if (*lo == *hi) auto_levels(e, pixels, (size_t)width * height, lo, hi);
    size_t need = (size_t)w * h;
    if (need > e->grey_capacity) {
        e->grey = xrealloc(e->grey, need);
        e->grey_capacity = need;
    }
    double scale = 255.0 / (*hi - *lo) / (binning * binning);
    double offset = *lo * binning * binning;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            uint32_t sum = 0;
            for (int by = 0; by < binning; by++) {
                const uint16_t *row = pixels + (size_t)(y * binning + by) * width + (size_t)x * binning;
                for (int bx = 0; bx < binning; bx++) sum += row[bx];
            }
            double v = (sum - offset) * scale;
            e->grey[(size_t)y * w + x] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
        }
    }
    if (!e->tj && !(e->tj = tjInitCompress())) return -1;
    unsigned long size = e->jpeg_capacity;
    if (tjCompress2(e->tj, e->grey, w, 0, h, TJPF_GRAY, &e->jpeg, &size, TJSAMP_GRAY,
                    quality < 1 ? 1 : quality > 100 ? 100 : quality, TJFLAG_FASTDCT) != 0) {
        log_warn("preview", "JPEG encoding failed: %s", tjGetErrorStr2(e->tj));
        return -1;
    }
    if (size > e->jpeg_capacity) e->jpeg_capacity = size;
    *jpeg_size = size;
    *out_width = w;
    *out_height = h;
    return 0;
}

static void encoder_free(encoder *e)
{
    if (e->tj) tjDestroy(e->tj);
    tjFree(e->jpeg);
    free(e->grey);
}

int preview_encode(const uint16_t *pixels, int width, int height, int binning, int quality, double *lo, double *hi,
                   unsigned char **jpeg, unsigned long *jpeg_size, int *out_width, int *out_height)
{
    encoder *e = xcalloc(1, sizeof *e);
    int rc = encode(e, pixels, width, height, binning, quality, lo, hi, jpeg_size, out_width, out_height);
    *jpeg = rc == 0 ? e->jpeg : NULL;
    if (rc == 0) e->jpeg = NULL;     /* ownership passes to the caller */
    encoder_free(e);
    free(e);
    return rc;
}

void preview_free_jpeg(unsigned char *jpeg) { tjFree(jpeg); }

/* [p->lock held] The JSON header of a preview message. */
static char *header_json(preview *p, const frame *f, int w, int h, int binning, double lo, double hi)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "htype", "reloc-preview-1.0");
    cJSON_AddNumberToObject(root, "frame", (double)f->id);
    cJSON_AddNumberToObject(root, "timeStamp", (double)f->stamp.tv_sec + f->stamp.tv_nsec * 1e-9);
    int shape[2] = {h, w}, source[2] = {f->height, f->width};
    cJSON_AddItemToObject(root, "shape", cJSON_CreateIntArray(shape, 2));
    cJSON_AddItemToObject(root, "source_shape", cJSON_CreateIntArray(source, 2));
    cJSON_AddNumberToObject(root, "binning", binning);
    cJSON_AddStringToObject(root, "encoding", "jpeg");
    cJSON_AddStringToObject(root, "type", "uint8");
    double levels[2] = {lo, hi};
    cJSON_AddItemToObject(root, "levels", cJSON_CreateDoubleArray(levels, 2));
    cJSON *stage = cJSON_AddObjectToObject(root, "stage");
    cJSON_AddNumberToObject(stage, "x", f->stage_x);
    cJSON_AddNumberToObject(stage, "y", f->stage_y);
    cJSON_AddNumberToObject(stage, "z", f->stage_z);
    cJSON_AddNumberToObject(root, "pixel_size", f->pixel_size * binning);
    for (int i = 0; i < MAX_RESULTS; i++)
        if (p->result_keys[i]) cJSON_AddRawToObject(root, p->result_keys[i], p->result_values[i]);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static void *preview_thread(void *arg)
{
    preview *p = arg;
    double last_sent = 0;
    while (!p->stopping) {
        frame *f = frame_consumer_next(p->consumer, 0.2);
        if (!f) continue;
        pthread_mutex_lock(&p->lock);
        preview_config cfg = p->cfg;
        pthread_mutex_unlock(&p->lock);
        double now = time_monotonic();
        if (cfg.max_rate_hz > 0 && now - last_sent < 1.0 / cfg.max_rate_hz) {
            frame_consumer_done(p->consumer, f);
            continue;
        }
        int binning = cfg.max_width > 0 && f->width > cfg.max_width ? (f->width + cfg.max_width - 1) / cfg.max_width : 1;
        double lo = 0, hi = 0;
        unsigned long size;
        int w, h;
        if (encode(&p->enc, f->data, f->width, f->height, binning, cfg.quality, &lo, &hi, &size, &w, &h) == 0) {
            pthread_mutex_lock(&p->lock);
            char *header = header_json(p, f, w, h, binning, lo, hi);
            pthread_mutex_unlock(&p->lock);
            if (zmq_send(p->socket, header, strlen(header), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
                zmq_send(p->socket, p->enc.jpeg, size, ZMQ_DONTWAIT) >= 0) {
                pthread_mutex_lock(&p->lock);
                p->sent++;
                p->last_bytes = size;
                pthread_mutex_unlock(&p->lock);
            }
            free(header);
            last_sent = now;
        }
        frame_consumer_done(p->consumer, f);
    }
    return NULL;
}

preview *preview_start(frame_consumer *consumer, const preview_config *cfg, char *err, size_t errlen)
{
    preview *p = xcalloc(1, sizeof *p);
    p->cfg = *cfg;
    p->zmq_context = zmq_ctx_new();
    p->socket = zmq_socket(p->zmq_context, ZMQ_PUB);
    int hwm = 4, linger = 0;
    zmq_setsockopt(p->socket, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->socket, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(p->socket, cfg->endpoint) != 0) {
        snprintf(err, errlen, "preview: cannot bind %s: %s", cfg->endpoint, zmq_strerror(zmq_errno()));
        zmq_close(p->socket);
        zmq_ctx_term(p->zmq_context);
        free(p);
        return NULL;
    }
    size_t endpoint_len = sizeof p->cfg.endpoint;   /* the bound address, with the port a '*' chose */
    zmq_getsockopt(p->socket, ZMQ_LAST_ENDPOINT, p->cfg.endpoint, &endpoint_len);
    p->consumer = consumer;
    pthread_mutex_init(&p->lock, NULL);
    pthread_create(&p->thread, NULL, preview_thread, p);
    log_info("preview", "JPEG preview on %s (quality %d, max width %d, max %.1f Hz)", p->cfg.endpoint, cfg->quality,
             cfg->max_width, cfg->max_rate_hz);
    return p;
}

void preview_update(preview *p, const preview_config *cfg)
{
    pthread_mutex_lock(&p->lock);
    p->cfg.quality = cfg->quality;
    p->cfg.max_width = cfg->max_width;
    p->cfg.max_rate_hz = cfg->max_rate_hz;
    pthread_mutex_unlock(&p->lock);
}

void preview_set_result(preview *p, const char *key, const char *json_value)
{
    pthread_mutex_lock(&p->lock);
    int slot = -1;
    for (int i = 0; i < MAX_RESULTS; i++) {
        if (p->result_keys[i] && strcmp(p->result_keys[i], key) == 0) slot = i;
        else if (slot < 0 && !p->result_keys[i] && json_value) slot = i;
    }
    if (slot >= 0) {
        free(p->result_values[slot]);
        if (json_value) {
            if (!p->result_keys[slot]) p->result_keys[slot] = xstrdup(key);
            p->result_values[slot] = xstrdup(json_value);
        } else {
            free(p->result_keys[slot]);
            p->result_keys[slot] = p->result_values[slot] = NULL;
        }
    } else if (json_value) {
        log_warn("preview", "no room for result %s (max %d keys)", key, MAX_RESULTS);
    }
    pthread_mutex_unlock(&p->lock);
}

const char *preview_endpoint(preview *p) { return p->cfg.endpoint; }
frame_consumer *preview_frame_consumer(preview *p) { return p->consumer; }

void preview_counts(preview *p, unsigned long *sent, size_t *last_bytes)
{
    pthread_mutex_lock(&p->lock);
    *sent = p->sent;
    *last_bytes = p->last_bytes;
    pthread_mutex_unlock(&p->lock);
}

void preview_stop(preview *p)
{
    if (!p) return;
    p->stopping = 1;
    pthread_join(p->thread, NULL);
    zmq_close(p->socket);
    zmq_ctx_term(p->zmq_context);
    encoder_free(&p->enc);
    for (int i = 0; i < MAX_RESULTS; i++) {
        free(p->result_keys[i]);
        free(p->result_values[i]);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}
