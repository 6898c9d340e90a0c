/* maxima.c -- local maxima of the rescaled band pass, as trackpy's grey_dilation finds them: pixels equal
 * to the maximum of a square of side int(2 separation / sqrt 2) around them (scipy's grey_dilation with
 * zero outside the image, whose window for an even side reaches one pixel further right/down than
 * left/up), brighter than the given percentile of the non-zero pixels, and at least margin pixels from
 * the edge.
 *
 * Rather than dilating the whole image in 2D, each row is dilated along x (van Herk / Gil-Werman block
 * maxima, three comparisons per pixel), and only pixels above the percentile that equal their row maximum
 * are checked against the row maxima of the rows above and below: the same test, a fraction of the work.
 * The percentile comes from a histogram of the non-zero values (exact; two levels for 32-bit types). The
 * histogram and the row dilation run per band of rows on the ctx's workers (locate_rescale calls them). */
#include <math.h>
#include <string.h>

#include "kernels/detection/detection_internal.h"

static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

/* Maximum over x+lo .. x+lo+size-1 of each pixel of a row (0 outside); g and hh hold w + size values. */
static void dilate_row(const uint32_t *src, uint32_t *dst, int w, int size, int lo, uint32_t *g, uint32_t *hh)
{
    int len = w + size - 1;
    for (int t = 0; t < len; t++) {
        int x = t + lo;
        g[t] = hh[t] = (x < 0 || x >= w) ? 0 : src[x];
    }
    for (int start = 0; start < len; start += size) {
        int end = start + size < len ? start + size : len;
        for (int t = start + 1; t < end; t++) g[t] = max_u32(g[t], g[t - 1]);
        for (int t = end - 2; t >= start; t--) hh[t] = max_u32(hh[t], hh[t + 1]);
    }
    for (int x = 0; x < w; x++) dst[x] = max_u32(hh[x], g[x + size - 1]);
}

/* The k-th smallest (from 0) non-zero pixel, from the first-level histogram in ctx->hist (bins of the
 * value >> hist_shift) and, for wide types, a second pass over the one bin that holds it. */
static uint32_t order_statistic(const locate_ctx *ctx, size_t k, uint32_t *fine)
{
    size_t below = 0;
    uint32_t bin = 0;
    while (below + ctx->hist[bin] <= k) below += ctx->hist[bin++];
    if (ctx->hist_shift == 0) return bin;
    memset(fine, 0, LOCATE_HIST_BINS * sizeof *fine);
    size_t n = (size_t)ctx->w * ctx->h;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = ctx->img[i];
        if (v && v >> ctx->hist_shift == bin) fine[v & ((1u << ctx->hist_shift) - 1)]++;
    }
    uint32_t low = 0;
    while (below + fine[low] <= k) below += fine[low++];
    return bin << ctx->hist_shift | low;
}

void locate_prepare_maxima_rows(locate_ctx *ctx, int y0, int y1, locate_scratch *s)
{
    int w = ctx->w, size = ctx->dilate_size, lo = -((size - 1) / 2), shift = ctx->hist_shift;
    size_t nonzero = 0;
    for (int y = y0; y < y1; y++) {
        const uint32_t *row = ctx->img + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            uint32_t v = row[x];
            s->hist[v >> shift] += v != 0;
            nonzero += v != 0;
        }
        dilate_row(row, ctx->dil + (size_t)y * w, w, size, lo, s->dil_g, s->dil_h);
    }
    s->nonzero += nonzero;
}

/* numpy's percentile ("linear"): virtual index (n-1) q between two order statistics, numpy's lerp; from the
 * workers' histograms, summed into ctx->hist. */
static double percentile_nonzero(locate_ctx *ctx, double percentile, size_t *count)
{
    int workers = team_size(ctx->team);
    size_t nonzero = 0;
    memcpy(ctx->hist, ctx->scratch[0].hist, LOCATE_HIST_BINS * sizeof *ctx->hist);
    for (int k = 1; k < workers; k++)
        for (int b = 0; b < LOCATE_HIST_BINS; b++) ctx->hist[b] += ctx->scratch[k].hist[b];
    for (int k = 0; k < workers; k++) nonzero += ctx->scratch[k].nonzero;
    *count = nonzero;
    if (nonzero == 0) return NAN;
    double index = (double)(nonzero - 1) * (percentile / 100.0);
    size_t lower = (size_t)floor(index);
    if (lower > nonzero - 1) lower = nonzero - 1;
    double t = index - (double)lower;
    double a = order_statistic(ctx, lower, ctx->hist_fine);
    double b = lower + 1 < nonzero ? order_statistic(ctx, lower + 1, ctx->hist_fine) : a;
    double diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

void locate_find_maxima(locate_ctx *ctx)
{
    int w = ctx->w, h = ctx->h, size = ctx->dilate_size, lo = -((size - 1) / 2);
    ctx->cands.count = 0;
    size_t nonzero;
    double level = percentile_nonzero(ctx, ctx->p.percentile, &nonzero);
    if (nonzero == 0) return;

    int m = ctx->margin;
    for (int y = m; y < h - m; y++) {
        const uint32_t *row = ctx->img + (size_t)y * w, *rowmax = ctx->dil + (size_t)y * w;
        int first = y + lo < 0 ? 0 : y + lo, last = y + lo + size - 1 >= h ? h - 1 : y + lo + size - 1;
        for (int x = m; x < w - m; x++) {
            uint32_t v = row[x];
            if (v != rowmax[x] || !((double)v > level)) continue;
            int is_max = 1;
            for (int yy = first; yy <= last && is_max; yy++) is_max = ctx->dil[(size_t)yy * w + x] <= v;
            if (!is_max) continue;
            locate_cands *c = &ctx->cands;
            if (c->count == c->capacity) locate_cands_reserve(c, c->capacity ? 2 * c->capacity : 1024);
            c->iy[c->count] = y;
            c->ix[c->count] = x;
            c->count++;
        }
    }
}
