/* xrf_zmq.c -- ZeroMQ front end of the streaming correction: a PULL socket receives scan control messages and map
 * chunks (wire format in xrf.h), checks their framing, feeds the xrf_stream, writes the growing result file and
 * publishes per-row results and per-message status on a PUB socket.
 *
 * Ownership: an xrf_ingest, its sockets, stream and HDF5 file belong to the thread that calls xrf_ingest_poll. */
#include "kernels/xrf/xrf.h"

#include "core/base/base.h"

#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MAX_PARTS (2 + XRF_MAX_ELEMENTS)

struct xrf_ingest {
    xrf_config cfg;
    void *zctx, *pull, *pub;
    xrf_stream *stream;
    xrf_h5 *h5;
    char out_dir[1024];
    int scans_done;
    int touched_lo, touched_hi;      /* rows, and columns, whose values changed while handling a message */
    int touched_x_lo, touched_x_hi;
    int chunk_reached_stream;        /* the current message was a chunk handed to the stream */
    uint32_t rejected_here;          /* chunks (and unreadable messages) rejected before reaching the stream */
    xrf_status last_status;          /* of the last message handled, whatever its type */
    char last_error[256];            /* text of the last message that was refused */
};

/* One multipart message as a view of its parts (data owned by the caller). */
typedef struct message {
    int parts;                       /* parts present, at most MAX_PARTS */
    int extra_parts;                 /* parts beyond MAX_PARTS, dropped */
    const void *data[MAX_PARTS];
    size_t size[MAX_PARTS];
} message;

static void send_json(xrf_ingest *ing, cJSON *header, int more)
{
    char *text = cJSON_PrintUnformatted(header);
    zmq_send(ing->pub, text, strlen(text), more ? ZMQ_SNDMORE : 0);
    free(text);
}

static void on_span(void *user, int y, int x0, int x1, xrf_row_state state, const double *const *corrected,
                    const double *const *fractions, int width)
{
    xrf_ingest *ing = user;
    if (y < ing->touched_lo) ing->touched_lo = y;
    if (y > ing->touched_hi) ing->touched_hi = y;
    if (x0 < ing->touched_x_lo) ing->touched_x_lo = x0;
    if (x1 - 1 > ing->touched_x_hi) ing->touched_x_hi = x1 - 1;
    if (!ing->pub) return;
    xrf_stream_info info;
    xrf_stream_get_info(ing->stream, &info);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "type", "row");
    cJSON_AddNumberToObject(h, "scan", (double)info.scan_id);
    cJSON_AddNumberToObject(h, "y", y);
    cJSON_AddNumberToObject(h, "x0", x0);
    cJSON_AddNumberToObject(h, "x1", x1);
    cJSON_AddStringToObject(h, "state", state == XRF_ROW_FINAL ? "final" : "provisional");
    cJSON_AddNumberToObject(h, "width", width);
    cJSON *els = cJSON_AddArrayToObject(h, "elements");
    for (int c = 0; c < ing->cfg.n_elements; c++) cJSON_AddItemToArray(els, cJSON_CreateString(ing->cfg.element[c].symbol));
    send_json(ing, h, 1);
    cJSON_Delete(h);
    int n = ing->cfg.n_elements;
    size_t bytes = (size_t)(x1 - x0) * sizeof(double);
    for (int c = 0; c < n; c++) zmq_send(ing->pub, corrected[c] + x0, bytes, ZMQ_SNDMORE);
    for (int c = 0; c < n; c++) zmq_send(ing->pub, fractions[c] + x0, bytes, c + 1 < n ? ZMQ_SNDMORE : 0);
}

xrf_ingest *xrf_ingest_new(const xrf_config *cfg, const char *pull_endpoint, const char *pub_endpoint,
                           const char *out_dir, char *err, size_t errlen)
{
    xrf_ingest *ing = xcalloc(1, sizeof *ing);
    ing->cfg = *cfg;
    if (out_dir) str_copy(ing->out_dir, out_dir, sizeof ing->out_dir);
    ing->zctx = zmq_ctx_new();
    if (pull_endpoint) ing->pull = zmq_socket(ing->zctx, ZMQ_PULL);
    if (pull_endpoint && zmq_bind(ing->pull, pull_endpoint) != 0) {
        snprintf(err, errlen, "cannot bind PULL to %s: %s", pull_endpoint, zmq_strerror(zmq_errno()));
        xrf_ingest_free(ing);
        return NULL;
    }
    if (pub_endpoint) {
        ing->pub = zmq_socket(ing->zctx, ZMQ_PUB);
        int hwm = 1000000, linger = 2000;
        zmq_setsockopt(ing->pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(ing->pub, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_bind(ing->pub, pub_endpoint) != 0) {
            snprintf(err, errlen, "cannot bind PUB to %s: %s", pub_endpoint, zmq_strerror(zmq_errno()));
            xrf_ingest_free(ing);
            return NULL;
        }
    }
    ing->stream = xrf_stream_new(cfg);
    xrf_stream_set_callback(ing->stream, on_span, ing);
    return ing;
}

static void close_file(xrf_ingest *ing)
{
    char err[256];
    if (ing->h5 && xrf_h5_close(ing->h5, err, sizeof err) < 0) log_error("xrf", "%s", err);
    ing->h5 = NULL;
}

void xrf_ingest_free(xrf_ingest *ing)
{
    if (!ing) return;
    close_file(ing);
    xrf_stream_free(ing->stream);
    if (ing->pull) zmq_close(ing->pull);
    if (ing->pub) zmq_close(ing->pub);
    if (ing->zctx) zmq_ctx_term(ing->zctx);
    free(ing);
}

int xrf_ingest_scans_done(const xrf_ingest *ing) { return ing->scans_done; }
xrf_stream *xrf_ingest_stream(xrf_ingest *ing) { return ing->stream; }

void xrf_ingest_endpoint(xrf_ingest *ing, int pull, char *buf, size_t len)
{
    void *socket = pull ? ing->pull : ing->pub;
    if (!len) return;
    buf[0] = '\0';
    if (socket) zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, buf, &len);
}

static void publish_status(xrf_ingest *ing, const char *type, double seq, xrf_status st, const char *text)
{
    if (!ing->pub) return;
    xrf_stream_info info;
    xrf_stream_get_info(ing->stream, &info);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "type", "status");
    cJSON_AddStringToObject(h, "message_type", type);
    cJSON_AddNumberToObject(h, "scan", (double)info.scan_id);
    cJSON_AddNumberToObject(h, "seq", seq);
    cJSON_AddStringToObject(h, "status", xrf_status_name(st));
    cJSON_AddStringToObject(h, "message", st == XRF_OK ? "" : text);
    cJSON_AddBoolToObject(h, "active", info.active);
    cJSON_AddBoolToObject(h, "ended", info.ended);
    cJSON_AddNumberToObject(h, "lines_received", info.lines_received);
    cJSON_AddNumberToObject(h, "rows_final", info.rows_final);
    cJSON_AddNumberToObject(h, "height", info.height);
    int lines = info.direction == XRF_SCAN_X_ASCENDING || info.direction == XRF_SCAN_X_DESCENDING ? info.width
                                                                                                   : info.height;
    cJSON_AddNumberToObject(h, "progress", lines ? (double)info.lines_received / lines : 0);
    cJSON_AddNumberToObject(h, "iterations", 1);   /* the triangular sweep solves each row once */
    cJSON_AddNumberToObject(h, "latency_s", info.last_latency_s);
    cJSON_AddNumberToObject(h, "chunks_accepted", info.chunks_accepted);
    cJSON_AddNumberToObject(h, "chunks_rejected", info.chunks_rejected + ing->rejected_here);
    send_json(ing, h, 0);
    cJSON_Delete(h);
}

/* Checks that the header lists exactly the configured elements in order. */
static xrf_status check_elements(const xrf_ingest *ing, const cJSON *header, char *err, size_t errlen)
{
    const cJSON *els = cJSON_GetObjectItemCaseSensitive(header, "elements");
    int ok = cJSON_IsArray(els) && cJSON_GetArraySize(els) == ing->cfg.n_elements;
    for (int c = 0; ok && c < ing->cfg.n_elements; c++) {
        const cJSON *e = cJSON_GetArrayItem(els, c);
        ok = cJSON_IsString(e) && !strcmp(e->valuestring, ing->cfg.element[c].symbol);
    }
    if (ok) return XRF_OK;
    snprintf(err, errlen, "\"elements\" must list the configured elements in order:");
    for (int c = 0; c < ing->cfg.n_elements; c++) {
        size_t len = strlen(err);
        snprintf(err + len, errlen - len, " %s", ing->cfg.element[c].symbol);
    }
    return XRF_ERR_SHAPE;
}

/* An integer field of the header; -1 with a message when absent or not an integer. */
static int get_integer(const cJSON *header, const char *key, double *out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(header, key);
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 9e15) {
        snprintf(err, errlen, "header field \"%s\" missing or not an integer", key);
        return -1;
    }
    *out = it->valuedouble;
    return 0;
}

static xrf_status handle_start(xrf_ingest *ing, const cJSON *header, char *err, size_t errlen)
{
    double scan, width, height;
    if (get_integer(header, "scan", &scan, err, errlen) < 0 || get_integer(header, "width", &width, err, errlen) < 0 ||
        get_integer(header, "height", &height, err, errlen) < 0)
        return XRF_ERR_MALFORMED;
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(header, "direction");
    const cJSON *axis = cJSON_GetObjectItemCaseSensitive(header, "axis");
    int columns = cJSON_IsString(axis) && !strcmp(axis->valuestring, "x");
    if (axis && !columns && !(cJSON_IsString(axis) && !strcmp(axis->valuestring, "y"))) {
        snprintf(err, errlen, "\"axis\" must be \"y\" (rows of constant y) or \"x\" (columns of constant x)");
        return XRF_ERR_MALFORMED;
    }
    xrf_scan_direction direction;
    if (cJSON_IsString(dir) && !strcmp(dir->valuestring, "descending"))
        direction = columns ? XRF_SCAN_X_DESCENDING : XRF_SCAN_Y_DESCENDING;
    else if (cJSON_IsString(dir) && !strcmp(dir->valuestring, "ascending"))
        direction = columns ? XRF_SCAN_X_ASCENDING : XRF_SCAN_Y_ASCENDING;
    else {
        snprintf(err, errlen, "\"direction\" must be \"descending\" or \"ascending\"");
        return XRF_ERR_MALFORMED;
    }
    xrf_status st = check_elements(ing, header, err, errlen);
    if (st != XRF_OK) return st;
    if (width < 1 || height < 1 || width > 100000 || height > 100000) {
        snprintf(err, errlen, "bad map shape %.0fx%.0f", width, height);
        return XRF_ERR_SHAPE;
    }
    close_file(ing);
    ing->rejected_here = 0;
    st = xrf_stream_begin(ing->stream, (uint64_t)scan, (int)width, (int)height, direction, err, errlen);
    if (st != XRF_OK) return st;
    if (ing->out_dir[0]) {
        char path[1200];
        snprintf(path, sizeof path, "%s/xrf_scan_%" PRIu64 ".h5", ing->out_dir, (uint64_t)scan);
        ing->h5 = xrf_h5_create(path, &ing->cfg, (int)width, (int)height, 1, err, errlen);
        if (!ing->h5) log_error("xrf", "scan %" PRIu64 ": results not saved: %s", (uint64_t)scan, err);
    }
    return XRF_OK;
}

/* Copies a part of doubles into an aligned buffer; -1 when its size is not rows*width doubles. */
static double *part_doubles(const message *msg, int part, size_t count)
{
    if (msg->size[part] != count * sizeof(double)) return NULL;
    double *a = xmalloc(count * sizeof *a);
    memcpy(a, msg->data[part], count * sizeof *a);
    return a;
}

static xrf_status handle_chunk(xrf_ingest *ing, const cJSON *header, const message *msg, char *err, size_t errlen)
{
    /* Rows carry "row", "rows", "width"; columns carry "col", "cols", "height". */
    int columns = cJSON_GetObjectItemCaseSensitive(header, "col") != NULL;
    double scan, seq, line, lines, length;
    if (get_integer(header, "scan", &scan, err, errlen) < 0 || get_integer(header, "seq", &seq, err, errlen) < 0 ||
        get_integer(header, columns ? "col" : "row", &line, err, errlen) < 0 ||
        get_integer(header, columns ? "cols" : "rows", &lines, err, errlen) < 0 ||
        get_integer(header, columns ? "height" : "width", &length, err, errlen) < 0)
        return XRF_ERR_MALFORMED;
    xrf_status st = check_elements(ing, header, err, errlen);
    if (st != XRF_OK) return st;
    int n = ing->cfg.n_elements;
    if (seq < 0 || seq > UINT32_MAX || lines < 1 || length < 1 || lines * length > 5e7 || line < 0 || line > 1e6) {
        snprintf(err, errlen, "chunk header out of range: seq %.0f line %.0f lines %.0f length %.0f", seq, line,
                 lines, length);
        return XRF_ERR_SHAPE;
    }
    size_t count = (size_t)lines * (size_t)length;
    if (msg->parts + msg->extra_parts != 2 + n) {
        snprintf(err, errlen, "chunk has %d data parts, expected %d (%d elements + I0)",
                 msg->parts + msg->extra_parts - 1, n + 1, n);
        return XRF_ERR_TRUNCATED;
    }
    for (int p = 1; p < msg->parts; p++)
        if (msg->size[p] != count * sizeof(double)) {
            snprintf(err, errlen, "chunk data part %d has %zu bytes, expected %zu (%.0f %s x %.0f float64)", p,
                     msg->size[p], count * sizeof(double), lines, columns ? "columns" : "rows",
                     length);
            return XRF_ERR_TRUNCATED;
        }
    xrf_chunk ch = {.scan_id = (uint64_t)scan, .seq = (uint32_t)seq, .columns = columns, .line = (int)line,
                    .lines = (int)lines, .length = (int)length, .n_elements = n};
    double *data[XRF_MAX_ELEMENTS + 1] = {0};
    for (int p = 0; p <= n; p++) data[p] = part_doubles(msg, 1 + p, count);
    for (int c = 0; c < n; c++) ch.counts[c] = data[c];
    ch.i0 = data[n];
    ing->chunk_reached_stream = 1;
    ing->touched_lo = ing->touched_x_lo = INT32_MAX;
    ing->touched_hi = ing->touched_x_hi = -1;
    st = xrf_stream_push(ing->stream, &ch, err, errlen);
    for (int p = 0; p <= n; p++) free(data[p]);
    if (st == XRF_OK && ing->h5 && ing->touched_hi >= 0 &&
        xrf_h5_write_block(ing->h5, ing->stream, ing->touched_lo, ing->touched_hi - ing->touched_lo + 1,
                           ing->touched_x_lo, ing->touched_x_hi - ing->touched_x_lo + 1, err, errlen) < 0)
        log_error("xrf", "%s", err);
    return st;
}

static void handle_message(xrf_ingest *ing, const message *msg)
{
    char err[512] = "";
    const char *type = "unknown";
    double seq = -1;
    xrf_status st = XRF_ERR_MALFORMED;
    cJSON *header = NULL;
    ing->chunk_reached_stream = 0;
    if (msg->parts > 0)
        header = cJSON_ParseWithLength(msg->data[0], msg->size[0]);
    const cJSON *type_item = cJSON_GetObjectItemCaseSensitive(header, "type");
    if (!cJSON_IsString(type_item)) {
        snprintf(err, sizeof err, "message header is not a JSON object with a \"type\"");
    } else {
        type = type_item->valuestring;
        const cJSON *seq_item = cJSON_GetObjectItemCaseSensitive(header, "seq");
        if (cJSON_IsNumber(seq_item)) seq = seq_item->valuedouble;
        if (!strcmp(type, "start")) {
            st = handle_start(ing, header, err, sizeof err);
        } else if (!strcmp(type, "chunk")) {
            st = handle_chunk(ing, header, msg, err, sizeof err);
        } else if (!strcmp(type, "end")) {
            st = xrf_stream_end(ing->stream, err, sizeof err);
            if (st == XRF_OK) {
                ing->scans_done++;
                close_file(ing);
            }
        } else if (!strcmp(type, "abort")) {
            xrf_stream_abort(ing->stream);
            close_file(ing);
            st = XRF_OK;
        } else {
            snprintf(err, sizeof err, "unknown message type \"%s\"", type);
        }
    }
    /* The stream logs the chunks it rejects; everything rejected before reaching it is logged here. */
    int chunk_or_unreadable = !strcmp(type, "chunk") || st == XRF_ERR_MALFORMED;
    if (st != XRF_OK && !ing->chunk_reached_stream && chunk_or_unreadable) ing->rejected_here++;
    if (st != XRF_OK && !ing->chunk_reached_stream)
        log_warn("xrf", "%s message rejected (%s): %s", type, xrf_status_name(st), err);
    ing->last_status = st;
    if (st != XRF_OK) str_copy(ing->last_error, err, sizeof ing->last_error);
    publish_status(ing, type, seq, st, err);
    cJSON_Delete(header);
}

void xrf_ingest_last(const xrf_ingest *ing, xrf_status *status, char *error, size_t errlen, uint32_t *rejected)
{
    *status = ing->last_status;
    str_copy(error, ing->last_error, errlen);
    xrf_stream_info info;
    xrf_stream_get_info(ing->stream, &info);
    *rejected = info.chunks_rejected + ing->rejected_here;
}

void xrf_ingest_handle(xrf_ingest *ing, const void *const *parts, const size_t *sizes, int n_parts)
{
    message msg = {.parts = n_parts < MAX_PARTS ? n_parts : MAX_PARTS};
    msg.extra_parts = n_parts - msg.parts;
    for (int p = 0; p < msg.parts; p++) {
        msg.data[p] = parts[p];
        msg.size[p] = sizes[p];
    }
    handle_message(ing, &msg);
}

int xrf_ingest_poll(xrf_ingest *ing, int timeout_ms)
{
    if (!ing->pull) return 0;
    zmq_pollitem_t item = {.socket = ing->pull, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, timeout_ms) <= 0 || !(item.revents & ZMQ_POLLIN)) return 0;
    /* Every part of one message; parts beyond MAX_PARTS are counted and dropped. */
    zmq_msg_t part[MAX_PARTS];
    message msg = {0};
    int more = 1;
    while (more) {
        zmq_msg_t dropped, *m = msg.parts < MAX_PARTS ? &part[msg.parts] : &dropped;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, ing->pull, 0) < 0) {
            zmq_msg_close(m);
            break;
        }
        more = zmq_msg_more(m);
        if (m == &dropped) {
            msg.extra_parts++;
            zmq_msg_close(m);
        } else {
            msg.data[msg.parts] = zmq_msg_data(m);
            msg.size[msg.parts] = zmq_msg_size(m);
            msg.parts++;
        }
    }
    handle_message(ing, &msg);
    for (int p = 0; p < msg.parts; p++) zmq_msg_close(&part[p]);
    return 1;
}
