/* source_zmq.c -- the "zmq" frame source: subscribes to an external publisher of ADZMQ-style frames
 * (two-part message: JSON header with "type", "shape" [height, width], "frame", "timeStamp", optional
 * "encoding" and "ndattr" -- stage_x/y/z and pixel_size, as drivers/framepub sends them; then the raw
 * pixels, host byte order, x fastest). Anything malformed is counted, logged
 * (rate-limited) and dropped; the source keeps receiving. */
#include "drivers/camera/camera_internal.h"

#include "core/base/base.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct zmq_source {
    frame_source base;
    void *context, *socket;
    double last_frame_id;      /* the publisher's "frame" of the last frame taken (0: none yet) */
} zmq_source;

static const struct { const char *name; int size; } sample_types[] = {
    {"uint8", 1}, {"int8", 1}, {"uint16", 2}, {"int16", 2}, {"uint32", 4}, {"int32", 4}, {"float32", 4},
    {"float64", 8},
};

static double sample_value(const unsigned char *raw, int type, size_t i)
{
    switch (type) {
    case 0: return raw[i];
    case 1: return ((const int8_t *)raw)[i];
    case 2: return ((const uint16_t *)raw)[i];
    case 3: return ((const int16_t *)raw)[i];
    case 4: return ((const uint32_t *)raw)[i];
    case 5: return ((const int32_t *)raw)[i];
    case 6: return ((const float *)raw)[i];
    default: return ((const double *)raw)[i];
    }
}

/* The stage position and pixel size a publisher sent along (reloc's framepub puts them in "ndattr"): finite
 * numbers replace what the frame had, anything else is ignored. */
static void take_stage(frame *f, const cJSON *ndattr)
{
    static const char *const keys[] = {"stage_x", "stage_y", "stage_z", "pixel_size"};
    double *fields[] = {&f->stage_x, &f->stage_y, &f->stage_z, &f->pixel_size};
    for (int k = 0; k < 4; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ndattr, keys[k]);
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && (k < 3 || v->valuedouble > 0))
            *fields[k] = v->valuedouble;
    }
}

/* A publisher numbers its frames: a jump forward is frames lost on the way (its high-water mark for a slow
 * receiver); a jump back is a restarted publisher. The frame keeps the publisher's number (origin_id). */
static void count_missed(zmq_source *z, frame *f, const cJSON *frame_id)
{
    if (!cJSON_IsNumber(frame_id)) return;
    double id = frame_id->valuedouble;
    if (z->last_frame_id > 0 && id > z->last_frame_id + 1) z->base.counters.missed += (unsigned long)(id - z->last_frame_id - 1);
    z->last_frame_id = id;
    if (id >= 1 && id < 9007199254740992.0) f->origin_id = (uint64_t)id;
}

/* Validates header and payload and copies the pixels into f. Returns 1, or 0 after reject(). */
static int decode(frame_source *s, frame *f, const char *header, size_t header_len, const unsigned char *raw,
                  size_t raw_len)
{
    cJSON *h = cJSON_ParseWithLength(header, header_len);
    if (!cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return source_reject(s, "header is not a JSON object");
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(h, "type");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(h, "shape");
    const cJSON *encoding = cJSON_GetObjectItemCaseSensitive(h, "encoding");
    const cJSON *stamp = cJSON_GetObjectItemCaseSensitive(h, "timeStamp");
    int rc = 0, t = -1;
    for (int i = 0; cJSON_IsString(type) && i < (int)(sizeof sample_types / sizeof sample_types[0]); i++)
        if (strcmp(type->valuestring, sample_types[i].name) == 0) t = i;
    const cJSON *height = cJSON_GetArrayItem(shape, 0), *width = cJSON_GetArrayItem(shape, 1);
    if (t < 0) {
        rc = source_reject(s, "missing or unsupported \"type\" (uint8..float64)");
    } else if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 2 || !cJSON_IsNumber(width) ||
               !cJSON_IsNumber(height) || width->valuedouble < 1 || height->valuedouble < 1 ||
               width->valuedouble > s->max_width || height->valuedouble > s->max_height ||
               width->valuedouble != floor(width->valuedouble) || height->valuedouble != floor(height->valuedouble)) {
        rc = source_reject(s, "\"shape\" must be [height, width] within %dx%d", s->max_width, s->max_height);
    } else if (cJSON_IsString(encoding) && encoding->valuestring[0]) {
        rc = source_reject(s, "compressed frames (encoding \"%.32s\") are not supported", encoding->valuestring);
    } else {
        int w = (int)width->valuedouble, hgt = (int)height->valuedouble;
        size_t expect = (size_t)w * hgt * (size_t)sample_types[t].size;
        if (raw_len != expect) {
            rc = source_reject(s, "payload has %zu bytes, %dx%d %s needs %zu", raw_len, w, hgt, sample_types[t].name, expect);
        } else {
            for (size_t i = 0; i < (size_t)w * hgt; i++) {
                f->data[i] = source_clamp16(sample_value(raw, t, i));
            }
            f->width = w;
            f->height = hgt;
            if (cJSON_IsNumber(stamp) && stamp->valuedouble > 0) {
                f->stamp.tv_sec = (time_t)stamp->valuedouble;
                f->stamp.tv_nsec = (long)((stamp->valuedouble - (double)f->stamp.tv_sec) * 1e9);
            }
            take_stage(f, cJSON_GetObjectItemCaseSensitive(h, "ndattr"));
            count_missed((zmq_source *)s, f, cJSON_GetObjectItemCaseSensitive(h, "frame"));
            s->counters.received++;
            rc = 1;
        }
    }
    cJSON_Delete(h);
    return rc;
}

static int zmq_next(frame_source *s, frame *f, const source_request *rq, double timeout_s, char *err, size_t errlen)
{
    zmq_source *z = (zmq_source *)s;
    zmq_pollitem_t item = {.socket = z->socket, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, (long)(timeout_s * 1000)) <= 0) return 0;
    zmq_msg_t parts[2];
    int nparts = 0, more = 1;
    size_t total_parts = 0;
    while (more) {
        zmq_msg_t scratch, *msg = nparts < 2 ? &parts[nparts] : &scratch;
        zmq_msg_init(msg);
        if (zmq_msg_recv(msg, z->socket, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(msg);
            break;
        }
        more = zmq_msg_more(msg);
        total_parts++;
        if (nparts < 2) nparts++;
        else zmq_msg_close(msg);
    }
    int rc = total_parts != 2
                 ? source_reject(s, "message has %zu parts, expected 2 (header, pixels)", total_parts)
                 : decode(s, f, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), zmq_msg_data(&parts[1]),
                          zmq_msg_size(&parts[1]));
    for (int i = 0; i < nparts; i++) zmq_msg_close(&parts[i]);
    return rc;
}

static void zmq_source_close(frame_source *s)
{
    zmq_source *z = (zmq_source *)s;
    zmq_close(z->socket);
    zmq_ctx_term(z->context);
    free(z);
}

static const frame_source_ops zmq_ops = {.kind = "zmq", .self_paced = 1, .next = zmq_next, .close = zmq_source_close};

frame_source *source_zmq_open(const char *endpoint, int max_width, int max_height, char *err, size_t errlen)
{
    zmq_source *z = xcalloc(1, sizeof *z);
    z->base.ops = &zmq_ops;
    z->base.max_width = max_width;
    z->base.max_height = max_height;
    z->context = zmq_ctx_new();
    z->socket = zmq_socket(z->context, ZMQ_SUB);
    int linger = 0, hwm = 4;
    zmq_setsockopt(z->socket, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(z->socket, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(z->socket, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(z->socket, endpoint) != 0) {
        snprintf(err, errlen, "zmq camera source: cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zmq_source_close(&z->base);
        return NULL;
    }
    return &z->base;
}
