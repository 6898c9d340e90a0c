/* bandpass.c -- trackpy's band pass and integer rescaling, reproduced to the rounding of scipy.ndimage.
 *
 * Band pass: a Gaussian of sigma noise_size (taps out to int(4 sigma + 0.5), zero outside the image),
 * minus a boxcar of side smoothing_size (nearest edges), each applied along y then x; values below the
 * threshold become 0. Why the arithmetic looks fussy: trackpy then truncates the result to integers, so
 * the last bits decide which pixels become 0 or 1. scipy's correlate1d adds the centre tap first and
 * then symmetric pairs from the outermost in; its uniform_filter1d keeps an undivided running sum; and
 * trackpy's boxcar writes each pass back into the image's own sample type (integers truncated, floats
 * rounded to 32 bits). Doing the same keeps our table equal to the Python reference's. */
#include <math.h>
#include <string.h>

#include "core/base/base.h"
#include "kernels/detection/detection_internal.h"

/* Four doubles side by side (two SSE2 registers without AVX). Every vector loop below does per element
 * exactly the scalar operations, in the same order, so the results are bit-identical to the scalar code;
 * vectors are only moved through memcpy and pointers (no vector arguments or returns: no ABI question). */
typedef double double4 __attribute__((vector_size(32)));
/* The hot loops are also compiled for AVX2 (RELOC_AVX2_CLONES). AVX2 does not bring FMA with it, so no
 * multiply-add is fused and the results stay those of the scalar code. */
typedef float float4 __attribute__((vector_size(16)));
typedef int32_t int4 __attribute__((vector_size(16)));
typedef int64_t long4 __attribute__((vector_size(32)));

/* Four floats or int32s widened to doubles. Spelled element by element because GCC 12 compiles
 * __builtin_convertvector to double4 as two 2-lane conversions and a lane insert even with AVX2; this
 * form becomes one 4-lane vcvtps2pd/vcvtdq2pd (profiled: the Gaussian along y spent most of its time there). */
#define WIDEN4(v) ((double4){(v)[0], (v)[1], (v)[2], (v)[3]})

static inline void load_floats(double4 *v, const float *p)
{
    float4 f;
    memcpy(&f, p, sizeof f);
    *v = WIDEN4(f);
}

/* The band pass writes each boxcar pass back into the image's own sample type, as trackpy does. */
static double round_to_samples(double mean, int integer_samples)
{
    return integer_samples ? (double)(int64_t)mean : (double)(float)mean;
}

/* v[i] = round_to_samples(v[i] / size) for a row; integers that fit 32 bits go four at a time. Integer
 * sums below 2^24 in magnitude (ctx->small_sums) are divided in float, a few times faster than in double
 * and with the same truncated quotient: the sum converts exactly, and a quotient k - d (k an integer, d at
 * least 1/size) lies more than half a float spacing below k, since 1/size = (k - d)/|sum| > (k - d)/2^24;
 * so the float quotient truncates to k - 1 as the exact one does. */
RELOC_AVX2_CLONES static void finish_means(double *v, int n, int size, const locate_ctx *ctx)
{
    double divisor = size;
    int i = 0;
    if (ctx->small_sums) {
        const float4 divisors = (float4){0} + (float)size;
        for (; i + 4 <= n; i += 4) {
            double4 q;
            memcpy(&q, v + i, sizeof q);
            float4 f = __builtin_convertvector(q, float4) / divisors;
            int4 quotient = __builtin_convertvector(f, int4);
            q = WIDEN4(quotient);
            memcpy(v + i, &q, sizeof q);
        }
    }
    if (!ctx->integer_samples || ctx->int32_samples) {
        for (; i + 4 <= n; i += 4) {
            double4 q;
            memcpy(&q, v + i, sizeof q);
            q /= divisor;
            if (ctx->integer_samples) {
                int4 mean = __builtin_convertvector(q, int4);
                q = WIDEN4(mean);
            } else {
                float4 f = __builtin_convertvector(q, float4);
                q = WIDEN4(f);
            }
            memcpy(v + i, &q, sizeof q);
        }
    }
    for (; i < n; i++) v[i] = round_to_samples(v[i] / divisor, ctx->integer_samples);
}

/* Boxcar along x of one row (src and dst distinct): nearest edges, undivided running sum. */
static void boxcar_row(const double *src, double *dst, int n, int size, const locate_ctx *ctx)
{
    int half = size / 2;
    double sum = 0.0;
    for (int k = 0; k < size; k++) sum += src[k - half < 0 ? 0 : (k - half >= n ? n - 1 : k - half)];
    dst[0] = sum;
    for (int i = 1; i < n; i++) {
        int in = i + size - 1 - half, out = i - 1 - half;
        sum += src[in >= n ? n - 1 : in] - src[out < 0 ? 0 : out];
        dst[i] = sum;
    }
    finish_means(dst, n, size, ctx);
}

/* Boxcar along x of one row of integer samples: the row at padded[half..half+n-1] (half = size / 2, room
 * for half values on either side; padded is overwritten) into dst, nearest edges. Sums of integers below
 * 2^53 do not depend on the order of the additions, so instead of boxcar_row's running sum (one add after
 * another) each window is built from power-of-two partial sums, four windows per vector operation: the
 * same values. */
RELOC_AVX2_CLONES static void boxcar_row_integers(double *padded, double *dst, int n, int size, const locate_ctx *ctx)
{
    int half = size / 2, len = n + size - 1;
    for (int k = 0; k < half; k++) {
        padded[k] = padded[half];
        padded[half + n + k] = padded[half + n - 1];
    }
    int span = 1, offset = 0, started = 0;
    for (int rest = size;; span *= 2) {
        if (rest & span) {          /* dst[i] += sum of padded[i + offset .. i + offset + span - 1] */
            int i = 0;
            for (; i + 4 <= n; i += 4) {
                double4 part, acc;
                memcpy(&part, padded + i + offset, sizeof part);
                if (started) {
                    memcpy(&acc, dst + i, sizeof acc);
                    part += acc;
                }
                memcpy(dst + i, &part, sizeof part);
            }
            for (; i < n; i++) dst[i] = started ? dst[i] + padded[i + offset] : padded[i + offset];
            started = 1;
            offset += span;
            rest -= span;
        }
        if (!rest) break;
        /* padded[t] becomes the sum of the 2 span values from t (in increasing t: t + span is still old) */
        int count = len - 2 * span + 1, t = 0;
        for (; t + 4 <= count; t += 4) {
            double4 a, b;
            memcpy(&a, padded + t, sizeof a);
            memcpy(&b, padded + t + span, sizeof b);
            a += b;
            memcpy(padded + t, &a, sizeof a);
        }
        for (; t < count; t++) padded[t] += padded[t + span];
    }
    finish_means(dst, n, size, ctx);
}

/* Moves running column sums down a row: sums[x] += entering[x] - leaving[x]. */
RELOC_AVX2_CLONES static void slide_sums(double *sums, const float *entering, const float *leaving, int w)
{
    int x = 0;
    for (; x + 4 <= w; x += 4) {
        double4 sum, in, out;
        memcpy(&sum, sums + x, sizeof sum);
        load_floats(&in, entering + x);
        load_floats(&out, leaving + x);
        sum += in - out;
        memcpy(sums + x, &sum, sizeof sum);
    }
    for (; x < w; x++) sums[x] += (double)entering[x] - (double)leaving[x];
}

/* Boxcar along y of a block of w columns (rows `stride` apart), row-wise for the cache, with the same
 * per-pixel arithmetic as boxcar_row: sums[] holds one running sum per column. */
static void boxcar_columns(const float *src, double *dst, int w, int stride, int h, int size, const locate_ctx *ctx,
                           double *sums)
{
    int half = size / 2;
    for (int x = 0; x < w; x++) sums[x] = 0.0;
    for (int k = 0; k < size; k++) {
        const float *row = src + (size_t)(k - half < 0 ? 0 : (k - half >= h ? h - 1 : k - half)) * stride;
        for (int x = 0; x < w; x++) sums[x] += row[x];
    }
    for (int y = 0; y < h; y++) {
        if (y > 0) {
            int in = y + size - 1 - half, out = y - 1 - half;
            const float *a = src + (size_t)(in >= h ? h - 1 : in) * stride;
            const float *b = src + (size_t)(out < 0 ? 0 : out) * stride;
            slide_sums(sums, a, b, w);
        }
        double *d = dst + (size_t)y * stride;
        memcpy(d, sums, (size_t)w * sizeof *d);
        finish_means(d, w, size, ctx);
    }
}

/* Gaussian along y for row y of a block of w columns (rows `stride` apart, h of them) into d: centre tap
 * first, then symmetric pairs from the outermost in; rows outside the image read zero_row. With float_pairs
 * (integer samples below 2^23 in magnitude) a pair is added in float, where its sum is exact: the same
 * value as in double, for half the conversions. */
RELOC_AVX2_CLONES static void gauss_column_row(const float *src, double *d, int w, int stride, int h, int y,
                                         const double *taps, int half, const float *zero_row, int float_pairs)
{
    const float *rows[2 * LOCATE_MAX_GAUSS_HALF + 1];
    for (int j = -half; j <= half; j++)
        rows[j + half] = y + j >= 0 && y + j < h ? src + (size_t)(y + j) * stride : zero_row;
    int x = 0;
    for (; x + 4 <= w; x += 4) {
        double4 acc, up, down;
        load_floats(&acc, rows[half] + x);
        acc *= taps[0];
        if (float_pairs) {
            for (int j = half; j >= 1; j--) {
                float4 above, below;
                memcpy(&above, rows[half - j] + x, sizeof above);
                memcpy(&below, rows[half + j] + x, sizeof below);
                above += below;
                acc += WIDEN4(above) * taps[j];
            }
        } else {
            for (int j = half; j >= 1; j--) {
                load_floats(&up, rows[half - j] + x);
                load_floats(&down, rows[half + j] + x);
                acc += (up + down) * taps[j];
            }
        }
        memcpy(d + x, &acc, sizeof acc);
    }
    for (; x < w; x++) {
        double acc = rows[half][x] * taps[0];
        for (int j = half; j >= 1; j--) acc += ((double)rows[half - j][x] + (double)rows[half + j][x]) * taps[j];
        d[x] = acc;
    }
}

/* Gaussian along x of one row in place, through a zero-padded copy in line. */
RELOC_AVX2_CLONES static void gauss_row(double *row, int n, const double *taps, int half, double *line)
{
    memset(line, 0, (size_t)half * sizeof *line);
    memcpy(line + half, row, (size_t)n * sizeof *line);
    memset(line + half + n, 0, (size_t)half * sizeof *line);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const double *c = line + half + i;
        double4 acc, left, right;
        memcpy(&acc, c, sizeof acc);
        acc *= taps[0];
        for (int j = half; j >= 1; j--) {
            memcpy(&left, c - j, sizeof left);
            memcpy(&right, c + j, sizeof right);
            acc += (left + right) * taps[j];
        }
        memcpy(row + i, &acc, sizeof acc);
    }
    for (; i < n; i++) {
        const double *c = line + half + i;
        double acc = c[0] * taps[0];
        for (int j = half; j >= 1; j--) acc += (c[-j] + c[j]) * taps[j];
        row[i] = acc;
    }
}

/* The difference of the two filtered rows, clipped below the threshold, into bp; returns the largest of
 * its values and top. */
RELOC_AVX2_CLONES static double difference_row(double *bp, const double *background, int w, double threshold, double top)
{
    int x = 0;
    if (w >= 4) {
        const double4 thresholds = (double4){0} + threshold;
        double4 tops = (double4){0} + top;
        for (; x + 4 <= w; x += 4) {
            double4 v, b;
            memcpy(&v, bp + x, sizeof v);
            memcpy(&b, background + x, sizeof b);
            v -= b;
            v = (double4)((long4)v & (v >= thresholds));
            memcpy(bp + x, &v, sizeof v);
            long4 above = v > tops;
            tops = (double4)(((long4)v & above) | ((long4)tops & ~above));
        }
        for (int k = 0; k < 4; k++) top = tops[k] > top ? tops[k] : top;
    }
    for (; x < w; x++) {
        double v = bp[x] - background[x];
        v = v >= threshold ? v : 0.0;
        bp[x] = v;
        if (v > top) top = v;
    }
    return top;
}

/* Float samples, pass 1 of 2: both filters along y for one block of columns. The column running sums must
 * run down the whole image in order (as scipy's) for float samples to round alike, so this pass is split
 * by columns. */
static void bandpass_columns(void *arg, int block, int worker)
{
    locate_ctx *ctx = arg;
    int x0, x1;
    locate_band(block, ctx->w, &x0, &x1);
    if (x1 == x0) return;
    boxcar_columns(ctx->raw + x0, ctx->tmp + x0, x1 - x0, ctx->w, ctx->h, ctx->p.smoothing_size, ctx,
                   ctx->scratch[worker].line);
    for (int y = 0; y < ctx->h; y++)
        gauss_column_row(ctx->raw + x0, ctx->bp + (size_t)y * ctx->w + x0, x1 - x0, ctx->w, ctx->h, y, ctx->gauss,
                         ctx->gauss_half, ctx->zero_row + x0, 0);
}

/* Float samples, pass 2 of 2: both filters along x, the difference and the threshold, for a band of rows. */
static void bandpass_rows(void *arg, int band, int worker)
{
    locate_ctx *ctx = arg;
    int w = ctx->w, y0, y1;
    double *line = ctx->scratch[worker].line, top = -INFINITY;
    locate_band(band, ctx->h, &y0, &y1);
    for (int y = y0; y < y1; y++) {
        double *background = ctx->tmp + (size_t)y * w, *bp = ctx->bp + (size_t)y * w;
        memcpy(line, background, (size_t)w * sizeof *line);
        boxcar_row(line, background, w, ctx->p.smoothing_size, ctx);
        gauss_row(bp, w, ctx->gauss, ctx->gauss_half, line);
        top = difference_row(bp, background, w, ctx->threshold, top);
    }
    ctx->band_max[band] = top;
}

/* Integer samples: the whole band pass of a band of rows in one pass, row by row in cache. The column sums
 * of integers are exact whatever the order of the additions, so each band may start its own. */
static void bandpass_band(void *arg, int band, int worker)
{
    locate_ctx *ctx = arg;
    int w = ctx->w, h = ctx->h, size = ctx->p.smoothing_size, half = size / 2, y0, y1;
    locate_scratch *s = &ctx->scratch[worker];
    double *sums = s->sums, *column = s->column, *background = s->background, top = -INFINITY;
    locate_band(band, h, &y0, &y1);
    if (y1 == y0) {
        ctx->band_max[band] = top;
        return;
    }
    for (int x = 0; x < w; x++) sums[x] = 0.0;
    for (int k = 0; k < size; k++) {
        int y = y0 + k - half;
        const float *row = ctx->raw + (size_t)(y < 0 ? 0 : (y >= h ? h - 1 : y)) * w;
        for (int x = 0; x < w; x++) sums[x] += row[x];
    }
    for (int y = y0; y < y1; y++) {
        if (y > y0) {
            int in = y + size - 1 - half, out = y - 1 - half;
            const float *a = ctx->raw + (size_t)(in >= h ? h - 1 : in) * w;
            const float *b = ctx->raw + (size_t)(out < 0 ? 0 : out) * w;
            slide_sums(sums, a, b, w);
        }
        memcpy(column + half, sums, (size_t)w * sizeof *column);
        finish_means(column + half, w, size, ctx);
        boxcar_row_integers(column, background, w, size, ctx);
        double *bp = ctx->bp + (size_t)y * w;
        gauss_column_row(ctx->raw, bp, w, w, h, y, ctx->gauss, ctx->gauss_half, ctx->zero_row,
                         ctx->sample_max < 8388608.0);
        gauss_row(bp, w, ctx->gauss, ctx->gauss_half, s->line);
        top = difference_row(bp, background, w, ctx->threshold, top);
    }
    ctx->band_max[band] = top;
}

void locate_bandpass(locate_ctx *ctx)
{
    if (ctx->integer_samples) {
        team_run(ctx->team, bandpass_band, ctx, LOCATE_BANDS);
    } else {
        team_run(ctx->team, bandpass_columns, ctx, LOCATE_BANDS);
        team_run(ctx->team, bandpass_rows, ctx, LOCATE_BANDS);
    }
    ctx->bp_max = -INFINITY;
    for (int b = 0; b < LOCATE_BANDS; b++)
        if (ctx->band_max[b] > ctx->bp_max) ctx->bp_max = ctx->band_max[b];
}

/* trackpy's convert_to_int of the pixels from..to-1 of ctx->bp into ctx->img. */
RELOC_AVX2_CLONES static void rescale_pixels(locate_ctx *ctx, size_t from, size_t to)
{
    if (!ctx->p.preprocess && ctx->integer_samples) {
        /* Already integers: trackpy leaves them as they are (negative samples cannot be maxima here). */
        for (size_t i = from; i < to; i++) {
            double v = ctx->bp[i];
            ctx->img[i] = v > 0 ? (uint32_t)v : 0;
        }
        return;
    }
    double scale = ctx->scale, top = ctx->int_max;
    uint32_t top_int = (uint32_t)top;
    size_t i = from;
    if (top < 2147483648.0) {      /* v = min(scale * bp, top) (0 where bp <= 0) fits an int32 */
        const double4 zero = {0, 0, 0, 0}, tops = {top, top, top, top};
        for (; i + 4 <= to; i += 4) {
            double4 b;
            memcpy(&b, ctx->bp + i, sizeof b);
            double4 v = scale * b;
            v = (double4)((long4)v & (b > zero));
            long4 below = v < tops;
            v = (double4)(((long4)v & below) | ((long4)tops & ~below));
            int4 out = __builtin_convertvector(v, int4);
            memcpy(ctx->img + i, &out, sizeof out);
        }
    }
    for (; i < to; i++) {
        double v = ctx->bp[i] > 0 ? scale * ctx->bp[i] : 0.0;
        ctx->img[i] = v >= top ? top_int : (uint32_t)v;
    }
}

/* One band, row by row while the row is in cache: the integer image, then what the maxima and the noise
 * need of it. */
static void rescale_rows(void *arg, int band, int worker)
{
    locate_ctx *ctx = arg;
    int y0, y1;
    locate_band(band, ctx->h, &y0, &y1);
    for (int y = y0; y < y1; y++) {
        rescale_pixels(ctx, (size_t)y * ctx->w, (size_t)(y + 1) * ctx->w);
        locate_prepare_maxima_rows(ctx, y, y + 1, &ctx->scratch[worker]);
        if (ctx->p.characterize) locate_row_distance(ctx, y, y + 1, &ctx->scratch[worker]);
    }
}

void locate_rescale(locate_ctx *ctx)
{
    if (!ctx->p.preprocess && ctx->integer_samples) ctx->scale = 1.0;
    else ctx->scale = ctx->bp_max == 0.0 ? 1.0 : ctx->int_max / ctx->bp_max;
    int workers = team_size(ctx->team);
    for (int k = 0; k < workers; k++) {
        memset(ctx->scratch[k].hist, 0, LOCATE_HIST_BINS * sizeof *ctx->scratch[k].hist);
        ctx->scratch[k].nonzero = 0;
    }
    team_run(ctx->team, rescale_rows, ctx, LOCATE_BANDS);
}
