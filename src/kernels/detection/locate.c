/* locate.c -- the detection context (parameters, masks and buffers sized once per frame size), the feature
 * table, and locate_frame, which runs the trackpy pipeline: band pass, integer rescale, local maxima,
 * refinement, pruning of close pairs, minmass/maxsize/topn, and ep from the background noise. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"
#include "kernels/detection/detection_internal.h"

void locate_params_default(locate_params *p, int diameter)
{
    memset(p, 0, sizeof *p);
    p->diameter = diameter;
    p->separation = diameter + 1;
    p->noise_size = 1;
    p->smoothing_size = diameter;
    p->threshold = -1;
    p->percentile = 64;
    p->preprocess = 1;
    p->max_iterations = 10;
    p->characterize = 1;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int locate_params_check(const locate_params *p, char *err, size_t errlen)
{
    if (p->diameter < 3 || p->diameter % 2 == 0)
        return fail(err, errlen, "diameter must be an odd integer >= 3 (got %d); round up", p->diameter);
    if (p->diameter > LOCATE_MAX_DIAMETER)
        return fail(err, errlen, "diameter must be <= %d pixels (got %d)", LOCATE_MAX_DIAMETER, p->diameter);
    if (!(p->minmass >= 0) || !isfinite(p->minmass))
        return fail(err, errlen, "minmass must be >= 0 (got %g)", p->minmass);
    if (!(p->maxsize >= 0) || !isfinite(p->maxsize))
        return fail(err, errlen, "maxsize must be >= 0, 0 meaning no limit (got %g)", p->maxsize);
    if (!(p->separation >= 1) || !isfinite(p->separation))
        return fail(err, errlen, "separation must be >= 1 pixel (got %g)", p->separation);
    if (p->preprocess) {
        if (!(p->noise_size > 0) || !isfinite(p->noise_size))
            return fail(err, errlen, "noise_size must be > 0 (got %g)", p->noise_size);
        if (p->smoothing_size < 3 || p->smoothing_size % 2 == 0)
            return fail(err, errlen, "smoothing_size must be an odd integer >= 3 (got %d)", p->smoothing_size);
        if (p->noise_size >= p->smoothing_size)
            return fail(err, errlen, "smoothing_size (%d) must be larger than noise_size (%g)", p->smoothing_size,
                        p->noise_size);
        if (p->noise_size > 64)
            return fail(err, errlen, "noise_size must be <= 64 pixels (got %g)", p->noise_size);
    }
    if (!isfinite(p->threshold))
        return fail(err, errlen, "threshold must be a number (negative for the default)");
    if (!(p->percentile >= 0 && p->percentile <= 100))
        return fail(err, errlen, "percentile must be within 0..100 (got %g)", p->percentile);
    if (p->topn < 0) return fail(err, errlen, "topn must be >= 0, 0 meaning all (got %d)", p->topn);
    if (p->max_iterations < 1 || p->max_iterations > 1000)
        return fail(err, errlen, "max_iterations must be within 1..1000 (got %d)", p->max_iterations);
    if (p->roi_width < 0 || p->roi_height < 0 || p->roi_x < 0 || p->roi_y < 0)
        return fail(err, errlen, "ROI offsets and sizes must be >= 0");
    if (p->threads < 0) return fail(err, errlen, "threads must be >= 0, 0 meaning one per CPU (got %d)", p->threads);
    if ((p->roi_width == 0) != (p->roi_height == 0))
        return fail(err, errlen, "ROI width and height must both be set (or both 0 for the whole frame)");
    return 0;
}

/* The table's floating-point columns, for the operations that treat all columns alike. */
#define TABLE_DOUBLE_COLUMNS 9
static void table_double_columns(locate_table *t, double **cols[TABLE_DOUBLE_COLUMNS])
{
    double **all[TABLE_DOUBLE_COLUMNS] = {&t->x, &t->y, &t->mass, &t->size, &t->ecc, &t->signal, &t->raw_mass,
                                          &t->ep, &t->r};
    memcpy(cols, all, sizeof all);
}

void locate_table_init(locate_table *t) { memset(t, 0, sizeof *t); }

void locate_table_free(locate_table *t)
{
    double **cols[TABLE_DOUBLE_COLUMNS];
    table_double_columns(t, cols);
    for (int c = 0; c < TABLE_DOUBLE_COLUMNS; c++) free(*cols[c]);
    free(t->frame);
    free(t->particle);
    memset(t, 0, sizeof *t);
}

void locate_table_clear(locate_table *t)
{
    t->count = 0;
    t->has_r = 0;
}

void locate_table_reserve(locate_table *t, int n)
{
    if (n <= t->capacity) return;
    int cap = t->capacity ? t->capacity : 256;
    while (cap < n) cap *= 2;
    double **cols[TABLE_DOUBLE_COLUMNS];
    table_double_columns(t, cols);
    for (int c = 0; c < TABLE_DOUBLE_COLUMNS; c++) *cols[c] = xrealloc(*cols[c], (size_t)cap * sizeof(double));
    t->frame = xrealloc(t->frame, (size_t)cap * sizeof *t->frame);
    t->particle = xrealloc(t->particle, (size_t)cap * sizeof *t->particle);
    t->capacity = cap;
}

void locate_table_append(locate_table *dst, const locate_table *src)
{
    dst->has_r |= src->has_r;
    if (src->count == 0) return;
    locate_table_reserve(dst, dst->count + src->count);
    double **to[TABLE_DOUBLE_COLUMNS], **from[TABLE_DOUBLE_COLUMNS];
    table_double_columns(dst, to);
    table_double_columns((locate_table *)src, from);
    size_t at = (size_t)dst->count, n = (size_t)src->count;
    for (int c = 0; c < TABLE_DOUBLE_COLUMNS; c++) memcpy(*to[c] + at, *from[c], n * sizeof(double));
    memcpy(dst->frame + at, src->frame, n * sizeof *src->frame);
    memcpy(dst->particle + at, src->particle, n * sizeof *src->particle);
    dst->count += src->count;
}

void locate_table_compact(locate_table *t, const unsigned char *keep)
{
    double **cols[TABLE_DOUBLE_COLUMNS];
    table_double_columns(t, cols);
    int n = 0;
    for (int i = 0; i < t->count; i++) {
        if (!keep[i]) continue;
        for (int c = 0; c < TABLE_DOUBLE_COLUMNS; c++) (*cols[c])[n] = (*cols[c])[i];
        t->frame[n] = t->frame[i];
        t->particle[n] = t->particle[i];
        n++;
    }
    t->count = n;
}

/* The candidates' per-feature arrays with their element sizes. */
#define CAND_ARRAYS 11
static void cand_arrays(locate_cands *c, void **arrays[CAND_ARRAYS], size_t sizes[CAND_ARRAYS])
{
    void **all[CAND_ARRAYS] = {(void **)&c->y, (void **)&c->x, (void **)&c->mass, (void **)&c->size,
                               (void **)&c->ecc, (void **)&c->signal, (void **)&c->raw_mass, (void **)&c->iy,
                               (void **)&c->ix, (void **)&c->order, (void **)&c->drop};
    size_t each[CAND_ARRAYS] = {sizeof(double), sizeof(double), sizeof(double), sizeof(double), sizeof(double),
                                sizeof(double), sizeof(double), sizeof(int), sizeof(int), sizeof(int), 1};
    memcpy(arrays, all, sizeof all);
    memcpy(sizes, each, sizeof each);
}

void locate_cands_reserve(locate_cands *c, int n)
{
    if (n <= c->capacity) return;
    void **arrays[CAND_ARRAYS];
    size_t sizes[CAND_ARRAYS];
    cand_arrays(c, arrays, sizes);
    for (int a = 0; a < CAND_ARRAYS; a++) *arrays[a] = xrealloc(*arrays[a], (size_t)n * sizes[a]);
    c->capacity = n;
}

static void cands_free(locate_cands *c)
{
    void **arrays[CAND_ARRAYS];
    size_t sizes[CAND_ARRAYS];
    cand_arrays(c, arrays, sizes);
    for (int a = 0; a < CAND_ARRAYS; a++) free(*arrays[a]);
}

/* trackpy's masks for radius r: the pixels of the (2r+1)^2 square with (dy/r)^2 + (dx/r)^2 <= 1, their
 * squared distance, and cos/sin of twice their angle (taken over the whole square, centre angle 0). */
static void build_mask(locate_ctx *ctx)
{
    int r = ctx->radius, side = 2 * r + 1;
    size_t cap = (size_t)side * side;
    ctx->mask_r2 = xmalloc(cap * sizeof(int));
    ctx->mask_cos = xmalloc(cap * sizeof(double));
    ctx->mask_sin = xmalloc(cap * sizeof(double));
    ctx->disk_half = xcalloc((size_t)side, sizeof(int));
    ctx->mask_count = 0;
    ctx->mask_sum_y2 = 0;
    for (int dy = 0; dy < side; dy++) {
        for (int dx = 0; dx < side; dx++) {
            double ny = (double)(dy - r) / r, nx = (double)(dx - r) / r;
            if (ny * ny + nx * nx > 1) continue;
            int i = ctx->mask_count++;
            double theta = atan2(dy - r, dx - r);
            ctx->mask_r2[i] = (dy - r) * (dy - r) + (dx - r) * (dx - r);
            ctx->mask_cos[i] = cos(2 * theta);
            ctx->mask_sin[i] = sin(2 * theta);
            ctx->mask_sum_y2 += (dy - r) * (dy - r);
            if (dx - r > ctx->disk_half[dy]) ctx->disk_half[dy] = dx - r;
        }
    }
}

locate_ctx *locate_ctx_create(const locate_params *p, int width, int height, double sample_max, char *err,
                              size_t errlen)
{
    if (locate_params_check(p, err, errlen)) return NULL;
    if (width <= 0 || height <= 0) {
        fail(err, errlen, "frame size %dx%d is empty", width, height);
        return NULL;
    }
    if (!(sample_max >= 0) || sample_max > 4294967295.0) {
        fail(err, errlen, "sample_max must be 0 (float samples) or an integer type's maximum, up to 2^32-1");
        return NULL;
    }
    int w = p->roi_width ? p->roi_width : width, h = p->roi_height ? p->roi_height : height;
    if (p->roi_width && ((long)p->roi_x + w > width || (long)p->roi_y + h > height)) {
        fail(err, errlen, "ROI %dx%d at (%d, %d) does not fit in the %dx%d frame", w, h, p->roi_x, p->roi_y, width,
             height);
        return NULL;
    }
    locate_ctx *ctx = xcalloc(1, sizeof *ctx);
    ctx->p = *p;
    if (!p->roi_width) ctx->p.roi_x = ctx->p.roi_y = 0;
    ctx->p.roi_width = w;
    ctx->p.roi_height = h;
    ctx->frame_width = width;
    ctx->w = w;
    ctx->h = h;
    ctx->integer_samples = sample_max > 0;
    ctx->int32_samples = ctx->integer_samples && sample_max <= 2147483647.0;
    ctx->small_sums = ctx->integer_samples && (sample_max + 1) * p->smoothing_size <= 16777216.0;
    ctx->sample_max = sample_max;
    ctx->int_max = ctx->integer_samples ? sample_max : 255.0;
    ctx->threshold = p->threshold >= 0 ? p->threshold : (ctx->integer_samples ? 1.0 : 1.0 / 255.0);
    ctx->radius = p->diameter / 2;
    int sep_margin = (int)floor(p->separation / 2) - 1;
    int smooth_margin = p->smoothing_size / 2;
    ctx->margin = ctx->radius;
    if (sep_margin > ctx->margin) ctx->margin = sep_margin;
    if (smooth_margin > ctx->margin) ctx->margin = smooth_margin;
    ctx->dilate_size = (int)(2 * p->separation / sqrt(2.0));
    ctx->scale = 1;

    double sigma = p->noise_size;
    ctx->gauss_half = (int)(4.0 * sigma + 0.5);
    ctx->gauss = xmalloc((size_t)(ctx->gauss_half + 1) * sizeof(double));
    double total = 0;
    for (int i = -ctx->gauss_half; i <= ctx->gauss_half; i++) total += exp((double)(i * i) / (-2 * sigma * sigma));
    for (int i = 0; i <= ctx->gauss_half; i++) ctx->gauss[i] = exp((double)(i * i) / (-2 * sigma * sigma)) / total;

    build_mask(ctx);

    size_t n = (size_t)w * h;
    ctx->raw = xmalloc(n * sizeof(float));
    ctx->zero_row = xcalloc((size_t)w, sizeof(float));
    ctx->bp = xmalloc(n * sizeof(double));
    ctx->tmp = ctx->integer_samples ? NULL : xmalloc(n * sizeof(double));
    ctx->img = xmalloc(n * sizeof(uint32_t));
    ctx->dil = xmalloc(n * sizeof(uint32_t));
    ctx->hist = xmalloc(LOCATE_HIST_BINS * sizeof(uint32_t));
    ctx->hist_fine = xmalloc(LOCATE_HIST_BINS * sizeof(uint32_t));
    ctx->hist_shift = ctx->int_max > 65535 ? 16 : 0;
    ctx->row_distance = xmalloc(n);
    ctx->team = team_create(p->threads);
    int workers = team_size(ctx->team);
    ctx->scratch = xcalloc((size_t)workers, sizeof *ctx->scratch);
    for (int k = 0; k < workers; k++) {
        locate_scratch *s = &ctx->scratch[k];
        s->line = xmalloc(((size_t)w + 2 * (size_t)ctx->gauss_half) * sizeof(double));
        size_t boxcar_pad = p->smoothing_size > 0 ? (size_t)p->smoothing_size : 0;   /* size - 1 edge values */
        s->sums = xmalloc((3 * (size_t)w + boxcar_pad) * sizeof(double));
        s->column = s->sums + w;
        s->background = s->column + w + boxcar_pad;
        s->dilation = xmalloc((size_t)(w + ctx->dilate_size) * sizeof(uint32_t));
        s->hist = xmalloc((LOCATE_HIST_BINS + LOCATE_HIST_ZERO_SLOTS) * sizeof(uint32_t));
        s->background_row = xmalloc((size_t)w);
        s->nonzero_row = xcalloc((size_t)w + 2 * LOCATE_DISTANCE_PAD, 1);
    }
    return ctx;
}

void locate_ctx_free(locate_ctx *ctx)
{
    if (!ctx) return;
    free(ctx->gauss);
    free(ctx->mask_r2);
    free(ctx->mask_cos);
    free(ctx->mask_sin);
    free(ctx->disk_half);
    free(ctx->raw);
    free(ctx->zero_row);
    free(ctx->bp);
    free(ctx->tmp);
    free(ctx->img);
    free(ctx->dil);
    free(ctx->hist);
    free(ctx->hist_fine);
    free(ctx->row_distance);
    for (int k = 0; ctx->team && k < team_size(ctx->team); k++) {
        locate_scratch *s = &ctx->scratch[k];
        free(s->line);
        free(s->sums);
        free(s->dilation);
        free(s->hist);
        free(s->background_row);
        free(s->nonzero_row);
    }
    free(ctx->scratch);
    for (int b = 0; b < LOCATE_BANDS; b++) {
        free(ctx->band_peaks[b].iy);
        free(ctx->band_peaks[b].ix);
    }
    team_free(ctx->team);
    cands_free(&ctx->cands);
    free(ctx->ring.samples);
    free(ctx->ring.sorted);
    free(ctx->ring.edge);
    point_grid_free(&ctx->grid);
    free(ctx);
}

const locate_params *locate_ctx_params(const locate_ctx *ctx) { return &ctx->p; }

const double *locate_ctx_bandpassed(const locate_ctx *ctx, int *width, int *height)
{
    *width = ctx->w;
    *height = ctx->h;
    return ctx->bp;
}

double locate_ctx_scale_factor(const locate_ctx *ctx) { return ctx->scale; }

/* The ROI of the frame into ctx->raw; dark features become bright the way trackpy's invert_image does it
 * (integers: XOR with the type's maximum, i.e. max - v for unsigned types; floats: 1 - v). Samples that
 * are not finite count as 0, and integer samples are clamped to their type's range, so that no later
 * conversion to an integer is undefined whatever the caller passes. */
typedef float float4 __attribute__((vector_size(16)));
typedef int32_t int4 __attribute__((vector_size(16)));

/* Where `take` is set, a; elsewhere b. */
static inline void select4(float4 *out, int4 take, float4 a, float4 b)
{
    *out = (float4)(((int4)a & take) | ((int4)b & ~take));
}

static void load_roi_band(void *arg, int band, int worker)
{
    locate_ctx *ctx = arg;
    long long top = (long long)ctx->sample_max;
    float lowest = (float)(-ctx->sample_max - 1), highest = (float)ctx->sample_max;
    int y0, y1, invert = ctx->p.invert, integers = ctx->integer_samples;
    /* Four samples at a time with the same operations, where integers fit 32 bits or samples are floats. */
    int vectors = !integers || ctx->int32_samples;
    const float4 lows = (float4){0} + lowest, highs = (float4){0} + highest, zeros = {0}, ones = zeros + 1.0f;
    const float4 infinities = zeros + INFINITY;
    const int4 tops = (int4){0} + (int32_t)(integers ? top : 0);
    locate_band(band, ctx->h, &y0, &y1);
    for (int y = y0; y < y1; y++) {
        const float *src = ctx->frame + (size_t)(y + ctx->p.roi_y) * ctx->frame_width + ctx->p.roi_x;
        float *dst = ctx->raw + (size_t)y * ctx->w;
        int x = 0;
        for (; vectors && x + 4 <= ctx->w; x += 4) {
            float4 v;
            memcpy(&v, src + x, sizeof v);
            select4(&v, (v == v) & (v < infinities) & (v > -infinities), v, zeros);
            if (integers) {
                select4(&v, v < lows, lows, v);
                select4(&v, v > highs, highs, v);
                if (invert) v = __builtin_convertvector(__builtin_convertvector(v, int4) ^ tops, float4);
            } else if (invert) {
                v = ones - v;
            }
            memcpy(dst + x, &v, sizeof v);
        }
        for (; x < ctx->w; x++) {
            float v = isfinite(src[x]) ? src[x] : 0.0f;
            if (integers) v = v < lowest ? lowest : (v > highest ? highest : v);
            if (invert) v = integers ? (float)((long long)v ^ top) : 1.0f - v;
            dst[x] = v;
        }
    }
}

static void load_roi(locate_ctx *ctx, const float *frame)
{
    ctx->frame = frame;
    team_run(ctx->team, load_roi_band, ctx, LOCATE_BANDS);
    ctx->frame = NULL;
}

static int by_mass_descending(const void *a, const void *b, void *mass_array)
{
    const double *mass = mass_array;
    int i = *(const int *)a, j = *(const int *)b;
    if (mass[i] != mass[j]) return mass[i] > mass[j] ? -1 : 1;
    return i - j;
}

/* Keeps only the topn most massive survivors (ties: the earlier one). */
static void keep_topn(locate_cands *c, unsigned char *keep, int n, int topn)
{
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (keep[i]) c->order[kept++] = i;
    if (kept <= topn) return;
    locate_sort(c->order, (size_t)kept, sizeof *c->order, by_mass_descending, c->mass);
    for (int k = topn; k < kept; k++) keep[c->order[k]] = 0;
}

/* Runs detection up to the refined, pruned candidates; returns their number. */
static int detect(locate_ctx *ctx, const float *frame)
{
    load_roi(ctx, frame);
    if (ctx->p.preprocess) {
        locate_bandpass(ctx);
    } else {
        size_t n = (size_t)ctx->w * ctx->h;
        ctx->bp_max = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            ctx->bp[i] = ctx->raw[i];
            if (ctx->bp[i] > ctx->bp_max) ctx->bp_max = ctx->bp[i];
        }
    }
    locate_rescale(ctx);
    locate_find_maxima(ctx);
    locate_cands *c = &ctx->cands;
    locate_refine(ctx);
    if (c->count) memset(c->drop, 0, (size_t)c->count);
    locate_mark_close(&ctx->grid, c->y, c->x, c->mass, c->count, ctx->p.separation, c->drop);
    return c->count;
}

int locate_frame(locate_ctx *ctx, const float *frame, int frame_index, locate_table *out)
{
    locate_table_clear(out);
    int n = detect(ctx, frame);
    locate_cands *c = &ctx->cands;
    /* keep[] reuses drop[]: 1 = survives pruning and the mass/size filters. */
    unsigned char *keep = c->drop;
    for (int i = 0; i < n; i++) {
        c->mass[i] /= ctx->scale;
        if (ctx->p.characterize) c->signal[i] /= ctx->scale;
        int ok = !keep[i] && c->mass[i] > ctx->p.minmass;
        if (ok && ctx->p.maxsize > 0 && ctx->p.characterize) ok = c->size[i] < ctx->p.maxsize;
        keep[i] = (unsigned char)ok;
    }
    if (ctx->p.topn > 0) keep_topn(c, keep, n, ctx->p.topn);

    double black = NAN, noise = NAN;
    int kept = 0;
    for (int i = 0; i < n; i++) kept += keep[i];
    if (ctx->p.characterize && kept > 0) locate_measure_noise(ctx, &black, &noise);
    double moment = sqrt(ctx->mask_sum_y2);

    locate_table_reserve(out, kept);
    for (int i = 0; i < n; i++) {
        if (!keep[i]) continue;
        int k = out->count++;
        out->y[k] = c->y[i] + ctx->p.roi_y;
        out->x[k] = c->x[i] + ctx->p.roi_x;
        out->mass[k] = c->mass[i];
        out->r[k] = NAN;
        out->frame[k] = frame_index;
        out->particle[k] = -1;
        if (ctx->p.characterize) {
            out->size[k] = c->size[i];
            out->ecc[k] = c->ecc[i];
            out->signal[k] = c->signal[i];
            out->raw_mass[k] = c->raw_mass[i];
            out->ep[k] = noise / (c->raw_mass[i] - ctx->mask_count * black) * ctx->p.noise_size * moment;
        } else {
            out->size[k] = out->ecc[k] = out->signal[k] = out->raw_mass[k] = out->ep[k] = NAN;
        }
    }
    return 0;
}
