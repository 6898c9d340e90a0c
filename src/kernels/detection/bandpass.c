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

#include "kernels/detection/detection_internal.h"

static double round_to_samples(double mean, int integer_samples)
{
    return integer_samples ? (double)(int64_t)mean : (double)(float)mean;
}

/* Boxcar along x of one row (src and dst distinct): nearest edges, undivided running sum. */
static void boxcar_row(const double *src, double *dst, int n, int size, int integer_samples)
{
    int half = size / 2;
    double sum = 0.0;
    for (int k = 0; k < size; k++) sum += src[k - half < 0 ? 0 : (k - half >= n ? n - 1 : k - half)];
    dst[0] = round_to_samples(sum / size, integer_samples);
    for (int i = 1; i < n; i++) {
        int in = i + size - 1 - half, out = i - 1 - half;
        sum += src[in >= n ? n - 1 : in] - src[out < 0 ? 0 : out];
        dst[i] = round_to_samples(sum / size, integer_samples);
    }
}

/* Boxcar along y, all columns at once (row-wise for the cache), with the same per-pixel arithmetic as
 * boxcar_row: sums[] holds one running sum per column. */
static void boxcar_columns(const float *src, double *dst, int w, int h, int size, int integer_samples, double *sums)
{
    int half = size / 2;
    for (int x = 0; x < w; x++) sums[x] = 0.0;
    for (int k = 0; k < size; k++) {
        const float *row = src + (size_t)(k - half < 0 ? 0 : (k - half >= h ? h - 1 : k - half)) * w;
        for (int x = 0; x < w; x++) sums[x] += row[x];
    }
    for (int y = 0; y < h; y++) {
        if (y > 0) {
            int in = y + size - 1 - half, out = y - 1 - half;
            const float *a = src + (size_t)(in >= h ? h - 1 : in) * w, *b = src + (size_t)(out < 0 ? 0 : out) * w;
            for (int x = 0; x < w; x++) sums[x] += (double)a[x] - (double)b[x];
        }
        double *d = dst + (size_t)y * w;
        for (int x = 0; x < w; x++) d[x] = round_to_samples(sums[x] / size, integer_samples);
    }
}

/* Gaussian along y, all columns at once: centre tap first, then symmetric pairs from the outermost in;
 * rows outside the image read zero_row. */
static void gauss_columns(const float *src, double *dst, int w, int h, const double *taps, int half,
                          const float *zero_row)
{
    for (int y = 0; y < h; y++) {
        double *d = dst + (size_t)y * w;
        const float *c = src + (size_t)y * w;
        for (int x = 0; x < w; x++) d[x] = c[x] * taps[0];
        for (int j = half; j >= 1; j--) {
            const float *up = y - j >= 0 ? src + (size_t)(y - j) * w : zero_row;
            const float *down = y + j < h ? src + (size_t)(y + j) * w : zero_row;
            double t = taps[j];
            for (int x = 0; x < w; x++) d[x] += ((double)up[x] + (double)down[x]) * t;
        }
    }
}

/* Gaussian along x of one row in place, through a zero-padded copy in line. */
static void gauss_row(double *row, int n, const double *taps, int half, double *line)
{
    memset(line, 0, (size_t)half * sizeof *line);
    memcpy(line + half, row, (size_t)n * sizeof *line);
    memset(line + half + n, 0, (size_t)half * sizeof *line);
    for (int i = 0; i < n; i++) {
        const double *c = line + half + i;
        double acc = c[0] * taps[0];
        for (int j = half; j >= 1; j--) acc += (c[-j] + c[j]) * taps[j];
        row[i] = acc;
    }
}

void locate_bandpass(locate_ctx *ctx)
{
    int w = ctx->w, h = ctx->h, half = ctx->gauss_half, box = ctx->p.smoothing_size;
    size_t n = (size_t)w * h;
    double *bp = ctx->bp, *tmp = ctx->tmp, *line = ctx->line;

    /* Background (boxcar) into tmp; the x pass of each row goes through line. */
    boxcar_columns(ctx->raw, tmp, w, h, box, ctx->integer_samples, line);
    for (int y = 0; y < h; y++) {
        double *row = tmp + (size_t)y * w;
        memcpy(line, row, (size_t)w * sizeof *line);
        boxcar_row(line, row, w, box, ctx->integer_samples);
    }

    gauss_columns(ctx->raw, bp, w, h, ctx->gauss, half, ctx->zero_row);
    for (int y = 0; y < h; y++) gauss_row(bp + (size_t)y * w, w, ctx->gauss, half, line);

    double top = -INFINITY, threshold = ctx->threshold;
    for (size_t i = 0; i < n; i++) {
        double v = bp[i] - tmp[i];
        v = v >= threshold ? v : 0.0;
        bp[i] = v;
        if (v > top) top = v;
    }
    ctx->bp_max = top;
}

void locate_rescale(locate_ctx *ctx)
{
    size_t n = (size_t)ctx->w * ctx->h;
    if (!ctx->p.preprocess && ctx->integer_samples) {
        /* Already integers: trackpy leaves them as they are (negative samples cannot be maxima here). */
        ctx->scale = 1.0;
        for (size_t i = 0; i < n; i++) {
            double v = ctx->bp[i];
            ctx->img[i] = v > 0 ? (uint32_t)v : 0;
        }
        return;
    }
    double top = ctx->bp_max;
    ctx->scale = top == 0.0 ? 1.0 : ctx->int_max / top;
    for (size_t i = 0; i < n; i++) {
        double v = ctx->bp[i] > 0 ? ctx->scale * ctx->bp[i] : 0.0;
        ctx->img[i] = v >= ctx->int_max ? (uint32_t)ctx->int_max : (uint32_t)v;
    }
}
