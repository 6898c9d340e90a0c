/* maxima.c -- local maxima of the rescaled band pass, as trackpy's grey_dilation finds them: pixels equal
 * to the maximum of a square of side int(2 separation / sqrt 2) around them (scipy's grey_dilation with
 * zero outside the image, whose window for an even side reaches one pixel further right/down than
 * left/up), brighter than the given percentile of the non-zero pixels, and at least margin pixels from
 * the edge.
 *
 * Rather than dilating the whole image in 2D, each row is dilated along x (maxima over doubling spans,
 * log2(size) vector passes), and only pixels above the percentile that equal their row maximum
 * are checked against the row maxima of the rows above and below: the same test, a fraction of the work.
 * The percentile comes from a histogram of the non-zero values (exact; two levels for 32-bit types). The
 * histogram and the row dilation run per band of rows on the ctx's workers (locate_rescale calls them). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/base/base.h"
#include "kernels/detection/detection_internal.h"

typedef uint32_t u32x4 __attribute__((vector_size(16)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));

/* m[t] = max(m[t], m[t + step]) for t < n, in place and in increasing t (so m[t + step] is still the old
 * value when it is read). */
RELOC_AVX2_CLONES
static void max_with_shifted(uint32_t *m, int n, int step)
{
    int t = 0;
    for (; t + 8 <= n; t += 8) {
        u32x8 a, b;
        memcpy(&a, m + t, sizeof a);
        memcpy(&b, m + t + step, sizeof b);
        u32x8 greater = (u32x8)(b > a);
        a ^= (a ^ b) & greater;
        memcpy(m + t, &a, sizeof a);
    }
    for (; t < n; t++) m[t] = m[t + step] > m[t] ? m[t + step] : m[t];
}

/* Maximum over x+lo .. x+lo+size-1 of each pixel of a row (0 outside), by doubling: after the pass with
 * step p, m[t] is the maximum of the 2p values from t; the window is then two overlapping power-of-two
 * spans. m holds w + size values. */
static void dilate_row(const uint32_t *src, uint32_t *dst, int w, int size, int lo, uint32_t *m)
{
    int len = w + size - 1, before = -lo < len ? -lo : len;
    memset(m, 0, (size_t)before * sizeof *m);
    int copy = w < len - before ? w : len - before;
    memcpy(m + before, src, (size_t)copy * sizeof *m);
    memset(m + before + copy, 0, (size_t)(len - before - copy) * sizeof *m);
    int span = 1;
    for (; 2 * span <= size; span *= 2) max_with_shifted(m, len - span, span);
    if (span == size) memcpy(dst, m, (size_t)w * sizeof *dst);
    else
        for (int x = 0; x < w; x++) dst[x] = m[x + size - span] > m[x] ? m[x + size - span] : m[x];
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
    /* Zeros (most pixels) are counted in LOCATE_HIST_ZERO_SLOTS spare slots past the bins, in turn: adding
     * them all to one slot would chain every update to the previous one through memory. No branch on the
     * value either (it is 0 or not at random): the slot comes from a mask. */
    uint32_t *hist = s->hist, *zeros = hist + LOCATE_HIST_BINS;
    size_t zeros_before = 0, zeros_after = 0;
    for (int k = 0; k < LOCATE_HIST_ZERO_SLOTS; k++) zeros_before += zeros[k];
    for (int y = y0; y < y1; y++) {
        const uint32_t *row = ctx->img + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            uint32_t v = row[x], zero = -(uint32_t)(v == 0);
            hist[(v >> shift) | (zero & (uint32_t)(LOCATE_HIST_BINS + (x & (LOCATE_HIST_ZERO_SLOTS - 1))))]++;
        }
        dilate_row(row, ctx->dil + (size_t)y * w, w, size, lo, s->dilation);
    }
    for (int k = 0; k < LOCATE_HIST_ZERO_SLOTS; k++) zeros_after += zeros[k];
    s->nonzero += (size_t)w * (size_t)(y1 - y0) - (zeros_after - zeros_before);
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


static void add_peak(locate_peaks *list, int y, int x)
{
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? 2 * list->capacity : 256;
        list->iy = xrealloc(list->iy, (size_t)list->capacity * sizeof *list->iy);
        list->ix = xrealloc(list->ix, (size_t)list->capacity * sizeof *list->ix);
    }
    list->iy[list->count] = y;
    list->ix[list->count] = x;
    list->count++;
}

/* The local maxima of one band of rows, in raster order, into the band's list. A pixel is one when it is
 * at least `least` (the smallest integer above the percentile), equals its row maximum and is not below
 * the row maxima of the rows around it; four pixels at a time (most blocks have no candidate at all). */
RELOC_AVX2_CLONES
static void maxima_band(void *arg, int band, int worker)
{
    locate_ctx *ctx = arg;
    int w = ctx->w, h = ctx->h, size = ctx->dilate_size, lo = -((size - 1) / 2), m = ctx->margin, y0, y1;
    uint32_t least = ctx->maxima_least;
    const u32x4 leasts = (u32x4){0} + least;
    locate_peaks *list = &ctx->band_peaks[band];
    list->count = 0;
    locate_band(band, h, &y0, &y1);
    if (y0 < m) y0 = m;
    if (y1 > h - m) y1 = h - m;
    for (int y = y0; y < y1; y++) {
        const uint32_t *row = ctx->img + (size_t)y * w, *rowmax = ctx->dil + (size_t)y * w;
        int first = y + lo < 0 ? 0 : y + lo, last = y + lo + size - 1 >= h ? h - 1 : y + lo + size - 1;
        for (int block = m; block < w - m; block += 4) {
            int end = block + 4 < w - m ? block + 4 : w - m;
            if (end == block + 4) {
                u32x4 v, vmax, around;
                memcpy(&v, row + block, sizeof v);
                memcpy(&vmax, rowmax + block, sizeof vmax);
                u32x4 hit = (u32x4)((v >= leasts) & (v == vmax));
                uint64_t lanes[2];
                memcpy(lanes, &hit, sizeof lanes);
                if (!(lanes[0] | lanes[1])) continue;
                for (int yy = first; yy <= last; yy++) {
                    memcpy(&around, ctx->dil + (size_t)yy * w + block, sizeof around);
                    hit &= (u32x4)(around <= v);
                }
                for (int lane = 0; lane < 4; lane++)
                    if (hit[lane]) add_peak(list, y, block + lane);
                continue;
            }
            for (int x = block; x < end; x++) {
                uint32_t v = row[x];
                if (v < least || v != rowmax[x]) continue;
                int is_max = 1;
                for (int yy = first; yy <= last && is_max; yy++) is_max = ctx->dil[(size_t)yy * w + x] <= v;
                if (is_max) add_peak(list, y, x);
            }
        }
    }
}

void locate_find_maxima(locate_ctx *ctx)
{
    ctx->cands.count = 0;
    size_t nonzero;
    double level = percentile_nonzero(ctx, ctx->p.percentile, &nonzero);
    if (nonzero == 0) return;
    /* v > level for an integer v: v >= floor(level) + 1 */
    double least = level < 0 ? 0 : floor(level) + 1;
    if (least > UINT32_MAX) return;
    ctx->maxima_least = (uint32_t)least;
    team_run(ctx->team, maxima_band, ctx, LOCATE_BANDS);
    int total = 0;
    for (int b = 0; b < LOCATE_BANDS; b++) total += ctx->band_peaks[b].count;
    locate_cands *c = &ctx->cands;
    if (total > c->capacity) locate_cands_reserve(c, total);
    for (int b = 0; b < LOCATE_BANDS; b++) {
        const locate_peaks *list = &ctx->band_peaks[b];
        if (list->count == 0) continue;
        memcpy(c->iy + c->count, list->iy, (size_t)list->count * sizeof *c->iy);
        memcpy(c->ix + c->count, list->ix, (size_t)list->count * sizeof *c->ix);
        c->count += list->count;
    }
}
