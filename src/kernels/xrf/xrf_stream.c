/* xrf_stream.c -- the streaming correction of one scan at a time: validates each chunk of scan lines, keeps the
 * raw map and the corrected map as they grow, and publishes every span of pixels whose values change.
 *
 * Why it is exact: a pixel's exit attenuation depends only on pixels between it and the detector (larger y), within
 * the stencil of the cone (xrf_exit_stencil). The same row solver as the batch sweep runs on the same inputs for
 * every final pixel, so the final map is the batch result bit for bit.
 *  - Rows arriving detector side first (y descending): solved once on arrival with the previous row's exit state;
 *    final at once.
 *  - Rows arriving toward the detector (y ascending): solved provisionally with what has arrived (as if the sample
 *    ended at the last received row); the chunk that brings row height-1 triggers one back-substitution sweep from
 *    the detector edge, after which every row is final.
 *  - Columns (x ascending or descending): in each row the final pixels are a prefix (suffix) of the received
 *    columns that shrinks by the stencil width per row away from the detector (a staircase); newly received
 *    pixels outside it are provisional and become final when the columns they depend on arrive.
 *  - With face escape the solver sums whole rays over the depth map of all rows: row scans work as above; column
 *    scans stay provisional until the last column arrives, then one sweep finalizes every row.
 *
 * Ownership: an xrf_stream belongs to one thread; no call locks anything and callbacks run on the caller's thread.
 * A rejected chunk changes nothing but the counters and last error. */
#include "kernels/xrf/xrf.h"

#include "core/base/base.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct xrf_stream {
    xrf_config cfg;
    xrf_row_callback callback;
    void *callback_user;
    xrf_stream_info info;
    uint32_t next_seq;
    double *raw[XRF_MAX_ELEMENTS], *corrected[XRF_MAX_ELEMENTS], *fractions[XRF_MAX_ELEMENTS], *i0;
    unsigned char *pixel_state;      /* xrf_row_state per pixel */
    int *final_in_row;               /* final pixels per row */
    /* Planar faces. exit_state: the line-indexed exit state (row scans: of the last solved row, made into the next
     * one's in place). Column scans: besides, the exit row of every row (exit_rows) and per row the edge of the
     * final span (final_edge). Face escape: the depth map of every row (zero where nothing has arrived). */
    double *exit_state, *exit_rows, *depth_map;
    double *span_scratch;            /* the row solver's working memory (planar faces) */
    int *final_edge;
};

static const char *const status_names[] = {
    "ok", "no_scan", "wrong_scan", "out_of_order", "duplicate", "shape", "truncated", "bad_value", "malformed",
    "incomplete",
};

const char *xrf_status_name(xrf_status st)
{
    return (unsigned)st < sizeof status_names / sizeof status_names[0] ? status_names[st] : "unknown";
}

static int column_scan(xrf_scan_direction dir) { return dir == XRF_SCAN_X_ASCENDING || dir == XRF_SCAN_X_DESCENDING; }
static int ascending(xrf_scan_direction dir) { return dir == XRF_SCAN_Y_ASCENDING || dir == XRF_SCAN_X_ASCENDING; }

xrf_stream *xrf_stream_new(const xrf_config *cfg)
{
    xrf_stream *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    return s;
}

static void release_maps(xrf_stream *s)
{
    for (int c = 0; c < XRF_MAX_ELEMENTS; c++) {
        free(s->raw[c]);
        free(s->corrected[c]);
        free(s->fractions[c]);
        s->raw[c] = s->corrected[c] = s->fractions[c] = NULL;
    }
    free(s->i0);
    free(s->pixel_state);
    free(s->final_in_row);
    free(s->exit_state);
    free(s->span_scratch);
    free(s->exit_rows);
    free(s->depth_map);
    free(s->final_edge);
    s->i0 = s->exit_state = s->exit_rows = s->depth_map = s->span_scratch = NULL;
    s->pixel_state = NULL;
    s->final_in_row = s->final_edge = NULL;
}

void xrf_stream_free(xrf_stream *s)
{
    if (!s) return;
    release_maps(s);
    free(s);
}

void xrf_stream_set_callback(xrf_stream *s, xrf_row_callback cb, void *user)
{
    s->callback = cb;
    s->callback_user = user;
}

static double *nan_filled(size_t n)
{
    double *a = xmalloc_large(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = NAN;
    return a;
}

static const char *direction_text(xrf_scan_direction dir)
{
    switch (dir) {
    case XRF_SCAN_Y_DESCENDING: return "rows, detector side first (final at once)";
    case XRF_SCAN_Y_ASCENDING: return "rows toward the detector (provisional until the last row)";
    case XRF_SCAN_X_ASCENDING: return "columns, x ascending (final in a staircase)";
    default: return "columns, x descending (final in a staircase)";
    }
}

xrf_status xrf_stream_begin(xrf_stream *s, uint64_t scan_id, int width, int height, xrf_scan_direction dir,
                            char *err, size_t errlen)
{
    if (width < 1 || height < 1 || width > 100000 || height > 100000 || (size_t)width * height > 50000000 ||
        (unsigned)dir > XRF_SCAN_X_DESCENDING) {
        snprintf(err, errlen, "scan %" PRIu64 ": bad map shape %dx%d or direction", scan_id, width, height);
        log_warn("xrf", "%s", err);
        return XRF_ERR_SHAPE;
    }
    if (s->info.active)
        log_warn("xrf", "scan %" PRIu64 " dropped unfinished after %d lines: scan %" PRIu64 " starts", s->info.scan_id,
                 s->info.lines_received, scan_id);
    release_maps(s);
    memset(&s->info, 0, sizeof s->info);
    s->info.active = 1;
    s->info.scan_id = scan_id;
    s->info.width = width;
    s->info.height = height;
    s->info.direction = dir;
    s->next_seq = 0;
    size_t pixels = (size_t)width * height;
    for (int c = 0; c < s->cfg.n_elements; c++) {
        s->raw[c] = nan_filled(pixels);
        s->corrected[c] = nan_filled(pixels);
        s->fractions[c] = nan_filled(pixels);
    }
    s->i0 = nan_filled(pixels);
    s->pixel_state = xcalloc(pixels, 1);
    s->final_in_row = xcalloc(height, sizeof *s->final_in_row);
    if (s->cfg.num.faces == XRF_FACES_ESCAPE) {
        s->depth_map = xcalloc(xrf_depth_map_size(&s->cfg, width, height), sizeof(double));
    } else if (column_scan(dir)) {
        /* Zero exit state where nothing has arrived: provisional pixels see no attenuation there. */
        s->exit_rows = xcalloc(xrf_exit_row_size(&s->cfg, width) * height, sizeof(double));
        s->final_edge = xmalloc(height * sizeof *s->final_edge);
        for (int y = 0; y < height; y++) s->final_edge[y] = dir == XRF_SCAN_X_ASCENDING ? 0 : width;
    }
    if (s->cfg.num.faces == XRF_FACES_PLANAR) {
        s->exit_state = xmalloc(xrf_exit_state_size(&s->cfg, width, height) * sizeof(double));
        s->span_scratch = xmalloc(xrf_span_scratch_size(&s->cfg, width) * sizeof(double));
    }
    log_info("xrf", "scan %" PRIu64 " started: %dx%d, %s", scan_id, width, height, direction_text(dir));
    return XRF_OK;
}

void xrf_stream_abort(xrf_stream *s)
{
    if (s->info.active) log_info("xrf", "scan %" PRIu64 " aborted after %d lines", s->info.scan_id,
                                 s->info.lines_received);
    s->info.active = 0;
}

/* The reason a chunk cannot be applied, or XRF_OK. */
static xrf_status check_chunk(const xrf_stream *s, const xrf_chunk *ch, char *err, size_t errlen)
{
    const xrf_stream_info *in = &s->info;
    if (!in->active) {
        snprintf(err, errlen, "no scan in progress");
        return XRF_ERR_NO_SCAN;
    }
    if (ch->scan_id != in->scan_id) {
        snprintf(err, errlen, "chunk of scan %" PRIu64 " during scan %" PRIu64, ch->scan_id, in->scan_id);
        return XRF_ERR_WRONG_SCAN;
    }
    int columns = column_scan(in->direction);
    int n_lines = columns ? in->width : in->height, length = columns ? in->height : in->width;
    const char *what = columns ? "columns" : "rows";
    if (ch->columns != columns) {
        snprintf(err, errlen, "chunk of %s during a scan of %s", ch->columns ? "columns" : "rows", what);
        return XRF_ERR_SHAPE;
    }
    if (ch->length != length || ch->n_elements != s->cfg.n_elements || ch->lines < 1 || ch->line < 0 ||
        ch->line > n_lines - ch->lines) {
        snprintf(err, errlen, "chunk shape: %s %d+%d of length %d, %d elements; scan is %dx%d with %d elements", what,
                 ch->line, ch->lines, ch->length, ch->n_elements, in->width, in->height, s->cfg.n_elements);
        return XRF_ERR_SHAPE;
    }
    /* The line the chunk must start from: the next one in scan order. */
    int up = ascending(in->direction);
    int expected = up ? in->lines_received : n_lines - 1 - in->lines_received;
    int start = up ? ch->line : ch->line + ch->lines - 1;
    int behind = up ? start < expected : start > expected;
    if (ch->seq < s->next_seq || (ch->seq == s->next_seq && behind)) {
        snprintf(err, errlen, "chunk seq %u %s %d..%d already received (expected seq %u from %d)", ch->seq, what,
                 ch->line, ch->line + ch->lines - 1, s->next_seq, expected);
        return XRF_ERR_DUPLICATE;
    }
    if (ch->seq > s->next_seq || start != expected) {
        snprintf(err, errlen, "chunk seq %u %s %d..%d out of order (expected seq %u from %d)", ch->seq, what,
                 ch->line, ch->line + ch->lines - 1, s->next_seq, expected);
        return XRF_ERR_OUT_OF_ORDER;
    }
    size_t n = (size_t)ch->lines * ch->length;
    for (size_t i = 0; i < n; i++) {
        size_t line = ch->line + i / ch->length, along = i % ch->length;
        if (!(ch->i0[i] > 0) || !isfinite(ch->i0[i])) {
            snprintf(err, errlen, "I0 %g at x=%zu y=%zu: must be finite and > 0", ch->i0[i], columns ? line : along,
                     columns ? along : line);
            return XRF_ERR_BAD_VALUE;
        }
        for (int c = 0; c < ch->n_elements; c++)
            if (!(ch->counts[c][i] >= 0) || !isfinite(ch->counts[c][i])) {
                snprintf(err, errlen, "%s counts %g at x=%zu y=%zu: must be finite and >= 0",
                         s->cfg.element[c].symbol, ch->counts[c][i], columns ? line : along, columns ? along : line);
                return XRF_ERR_BAD_VALUE;
            }
    }
    return XRF_OK;
}

/* Solves pixels [x0, x1) of row y, turning the exit state of row y+1 (not read when at_edge) into row y's in place;
 * with face escape from and into the depth map. */
static void solve(xrf_stream *s, int y, int x0, int x1, double *exit_state, int at_edge)
{
    int w = s->info.width, n = s->cfg.n_elements;
    size_t off = (size_t)y * w;
    const double *counts[XRF_MAX_ELEMENTS];
    double *corrected[XRF_MAX_ELEMENTS], *fractions[XRF_MAX_ELEMENTS];
    for (int c = 0; c < n; c++) {
        counts[c] = s->raw[c] + off;
        corrected[c] = s->corrected[c] + off;
        fractions[c] = s->fractions[c] + off;
    }
    if (s->depth_map)
        xrf_solve_span_escape(&s->cfg, w, s->info.height, y, x0, x1, counts, s->i0 + off, s->depth_map, s->depth_map,
                              corrected, fractions);
    else
        xrf_solve_span(&s->cfg, w, s->info.height, y, x0, x1, counts, s->i0 + off, exit_state, at_edge, corrected,
                       fractions, s->span_scratch);
}

/* Row scans: solves the whole row y after row y+1 (at_edge: nothing toward the detector). */
static void solve_row(xrf_stream *s, int y, int at_edge)
{
    if (s->depth_map) {
        /* Rows toward the detector that have not arrived are zero in the depth map: no attenuation. */
        solve(s, y, 0, s->info.width, NULL, 1);
        return;
    }
    solve(s, y, 0, s->info.width, s->exit_state, at_edge);
}

static void publish(xrf_stream *s, int y, int x0, int x1, xrf_row_state state)
{
    if (x0 >= x1) return;
    int w = s->info.width;
    unsigned char *ps = s->pixel_state + (size_t)y * w;
    for (int x = x0; x < x1; x++) {
        if (state == XRF_ROW_FINAL && ps[x] != XRF_ROW_FINAL) s->final_in_row[y]++;
        ps[x] = (unsigned char)state;
    }
    if (state == XRF_ROW_FINAL && s->final_in_row[y] == w) s->info.rows_final++;
    if (!s->callback) return;
    const double *corrected[XRF_MAX_ELEMENTS], *fractions[XRF_MAX_ELEMENTS];
    for (int c = 0; c < s->cfg.n_elements; c++) {
        corrected[c] = s->corrected[c] + (size_t)y * w;
        fractions[c] = s->fractions[c] + (size_t)y * w;
    }
    s->callback(s->callback_user, y, x0, x1, state, corrected, fractions, w);
}

static void apply_rows(xrf_stream *s, const xrf_chunk *ch)
{
    int h = s->info.height, top = ch->line + ch->lines - 1, w = s->info.width;
    if (s->info.direction == XRF_SCAN_Y_DESCENDING) {
        for (int y = top; y >= ch->line; y--) {
            solve_row(s, y, y == h - 1);
            publish(s, y, 0, w, XRF_ROW_FINAL);
        }
    } else if (top == h - 1) {
        /* The detector edge has arrived: one sweep finalizes every row. */
        for (int y = h - 1; y >= 0; y--) {
            solve_row(s, y, y == h - 1);
            publish(s, y, 0, w, XRF_ROW_FINAL);
        }
    } else {
        for (int y = top; y >= ch->line; y--) {
            solve_row(s, y, y == top);
            publish(s, y, 0, w, XRF_ROW_PROVISIONAL);
        }
    }
}

/* Column scans keep every row's exit row: a span of row y is solved from row y+1's, and row y's is kept. */
static void solve_column_span(xrf_stream *s, int y, int x0, int x1, int at_edge)
{
    if (x0 >= x1) return;
    int w = s->info.width, h = s->info.height;
    size_t row = xrf_exit_row_size(&s->cfg, w);
    if (!at_edge) xrf_exit_state_load(&s->cfg, w, h, y, x0, x1, s->exit_rows + row * (y + 1), s->exit_state);
    solve(s, y, x0, x1, s->exit_state, at_edge);
    xrf_exit_state_save(&s->cfg, w, h, y, x0, x1, s->exit_state, s->exit_rows + row * y);
}

/* Column scans: the staircase. Row y's final span grows to what the final span of row y+1 supports; the new
 * columns beyond it are solved provisionally. */
static void apply_columns(xrf_stream *s, const xrf_chunk *ch)
{
    int w = s->info.width, h = s->info.height, received = s->info.lines_received + ch->lines;
    int up = s->info.direction == XRF_SCAN_X_ASCENDING;
    int c0 = ch->line, c1 = ch->line + ch->lines;
    if (s->depth_map) {
        int last = received == w;
        for (int y = h - 1; y >= 0; y--) {
            solve(s, y, last ? 0 : c0, last ? w : c1, NULL, 1);
            publish(s, y, last ? 0 : c0, last ? w : c1, last ? XRF_ROW_FINAL : XRF_ROW_PROVISIONAL);
        }
        return;
    }
    int lowest, highest;
    xrf_exit_stencil(&s->cfg, &lowest, &highest);
    for (int y = h - 1; y >= 0; y--) {
        int at_edge = y == h - 1;
        int old = s->final_edge[y], edge;
        if (up) {   /* final: [0, edge) */
            int above = y == h - 1 ? w : s->final_edge[y + 1];
            edge = above == w ? received : above - highest;
            edge = edge < 0 ? 0 : edge > received ? received : edge;
            solve_column_span(s, y, old, edge, at_edge);
            publish(s, y, old, edge, XRF_ROW_FINAL);
            int lo = c0 > edge ? c0 : edge;
            solve_column_span(s, y, lo, c1, at_edge);
            publish(s, y, lo, c1, XRF_ROW_PROVISIONAL);
        } else {    /* final: [edge, w) */
            int above = y == h - 1 ? 0 : s->final_edge[y + 1];
            edge = above == 0 ? w - received : above - lowest;
            edge = edge < w - received ? w - received : edge > w ? w : edge;
            solve_column_span(s, y, edge, old, at_edge);
            publish(s, y, edge, old, XRF_ROW_FINAL);
            int hi = c1 < edge ? c1 : edge;
            solve_column_span(s, y, c0, hi, at_edge);
            publish(s, y, c0, hi, XRF_ROW_PROVISIONAL);
        }
        s->final_edge[y] = edge;
    }
}

xrf_status xrf_stream_push(xrf_stream *s, const xrf_chunk *ch, char *err, size_t errlen)
{
    double t0 = time_monotonic();
    xrf_status st = check_chunk(s, ch, err, errlen);
    s->info.last_status = st;
    str_copy(s->info.last_error, st == XRF_OK ? "" : err, sizeof s->info.last_error);
    if (st != XRF_OK) {
        s->info.chunks_rejected++;
        log_warn("xrf", "scan %" PRIu64 ": chunk seq %u rejected (%s): %s", ch->scan_id, ch->seq,
                 xrf_status_name(st), err);
        return st;
    }
    int w = s->info.width, columns = column_scan(s->info.direction);
    for (int l = 0; l < ch->lines; l++)
        for (int i = 0; i < ch->length; i++) {
            size_t src = (size_t)l * ch->length + i;
            size_t dst = columns ? (size_t)i * w + ch->line + l : (size_t)(ch->line + l) * w + i;
            for (int c = 0; c < ch->n_elements; c++) s->raw[c][dst] = ch->counts[c][src];
            s->i0[dst] = ch->i0[src];
        }
    if (columns) apply_columns(s, ch);
    else apply_rows(s, ch);
    s->info.lines_received += ch->lines;
    s->next_seq = ch->seq + 1;
    s->info.chunks_accepted++;
    s->info.last_latency_s = time_monotonic() - t0;
    if (s->info.last_latency_s > s->info.max_latency_s) s->info.max_latency_s = s->info.last_latency_s;
    return XRF_OK;
}

xrf_status xrf_stream_end(xrf_stream *s, char *err, size_t errlen)
{
    if (!s->info.active) {
        snprintf(err, errlen, "no scan in progress");
        return XRF_ERR_NO_SCAN;
    }
    int n_lines = column_scan(s->info.direction) ? s->info.width : s->info.height;
    if (s->info.lines_received < n_lines) {
        snprintf(err, errlen, "scan %" PRIu64 " ended with %d of %d %s", s->info.scan_id, s->info.lines_received,
                 n_lines, column_scan(s->info.direction) ? "columns" : "rows");
        log_warn("xrf", "%s", err);
        return XRF_ERR_INCOMPLETE;
    }
    s->info.active = 0;
    s->info.ended = 1;
    log_info("xrf", "scan %" PRIu64 " complete: %d rows final, %u chunks, max latency %.3f ms", s->info.scan_id,
             s->info.rows_final, s->info.chunks_accepted, s->info.max_latency_s * 1e3);
    return XRF_OK;
}

void xrf_stream_get_info(const xrf_stream *s, xrf_stream_info *info) { *info = s->info; }

xrf_row_state xrf_stream_pixel_state(const xrf_stream *s, int x, int y)
{
    if (!s->pixel_state || x < 0 || y < 0 || x >= s->info.width || y >= s->info.height) return XRF_ROW_MISSING;
    return (xrf_row_state)s->pixel_state[(size_t)y * s->info.width + x];
}

xrf_row_state xrf_stream_row_state(const xrf_stream *s, int y)
{
    if (!s->pixel_state || y < 0 || y >= s->info.height) return XRF_ROW_MISSING;
    if (s->final_in_row[y] == s->info.width) return XRF_ROW_FINAL;
    const unsigned char *ps = s->pixel_state + (size_t)y * s->info.width;
    for (int x = 0; x < s->info.width; x++)
        if (ps[x] != XRF_ROW_MISSING) return XRF_ROW_PROVISIONAL;
    return XRF_ROW_MISSING;
}

static const double *element_map(const xrf_stream *s, double *const *maps, int element)
{
    return element >= 0 && element < s->cfg.n_elements ? maps[element] : NULL;
}

const double *xrf_stream_corrected(const xrf_stream *s, int element) { return element_map(s, s->corrected, element); }
const double *xrf_stream_fractions(const xrf_stream *s, int element) { return element_map(s, s->fractions, element); }
const double *xrf_stream_raw(const xrf_stream *s, int element) { return element_map(s, s->raw, element); }
const double *xrf_stream_i0(const xrf_stream *s) { return s->i0; }
const xrf_config *xrf_stream_config(const xrf_stream *s) { return &s->cfg; }
