/* refine.c -- centroid refinement and characterization of candidate features, pruning of close pairs and
 * the background noise behind the position uncertainty ep, as trackpy's refine_com, where_close and
 * measure_noise do them.
 *
 * Refinement: the brightness centroid of the rescaled band pass inside a circular mask of radius
 * diameter/2; while it is 0.6 px or more off the mask centre (in either axis) the mask moves one pixel
 * that way, at most max_iterations times. The reported centroid and characterization are those of the
 * last mask evaluated. size is the radius of gyration, ecc the eccentricity from the cos/sin 2-theta
 * moments, signal the peak, raw_mass the sum of the raw (possibly inverted) samples under the mask. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"
#include "kernels/detection/detection_internal.h"

#define SHIFT_THRESHOLD 0.6

static void refine_one(locate_ctx *ctx, int k)
{
    locate_cands *c = &ctx->cands;
    int r = ctx->radius, w = ctx->w;
    int cy = c->iy[k], cx = c->ix[k];
    double pos_y = cy, pos_x = cx, mass = 0;
    int top = 0, left = 0;
    for (int it = 0; it < ctx->p.max_iterations; it++) {
        top = cy - r;
        left = cx - r;
        /* Sums of integers in integers: exact, as the sums in doubles are below 2^53, without their latency. */
        int64_t sum = 0, sum_y = 0, sum_x = 0;
        for (int dy = 0; dy <= 2 * r; dy++) {
            int half = ctx->disk_half[dy];
            const uint32_t *row = ctx->img + (size_t)(top + dy) * w + left;
            int64_t row_sum = 0, row_x = 0;
            for (int dx = r - half; dx <= r + half; dx++) {
                row_sum += row[dx];
                row_x += (int64_t)row[dx] * dx;
            }
            sum += row_sum;
            sum_y += row_sum * dy;
            sum_x += row_x;
        }
        mass = (double)sum;
        double sy = (double)sum_y, sx = (double)sum_x;
        double cm_y = mass == 0 ? r : sy / mass, cm_x = mass == 0 ? r : sx / mass;
        pos_y = cm_y - r + cy;
        pos_x = cm_x - r + cx;
        double off_y = cm_y - r, off_x = cm_x - r;
        if (fabs(off_y) < SHIFT_THRESHOLD && fabs(off_x) < SHIFT_THRESHOLD) break;
        cy += off_y > SHIFT_THRESHOLD ? 1 : (off_y < -SHIFT_THRESHOLD ? -1 : 0);
        cx += off_x > SHIFT_THRESHOLD ? 1 : (off_x < -SHIFT_THRESHOLD ? -1 : 0);
        cy = cy < r ? r : (cy > ctx->h - 1 - r ? ctx->h - 1 - r : cy);
        cx = cx < r ? r : (cx > ctx->w - 1 - r ? ctx->w - 1 - r : cx);
    }
    c->y[k] = pos_y;
    c->x[k] = pos_x;
    c->mass[k] = mass;
    if (!ctx->p.characterize) return;

    /* The mask's pixels row by row, in the order of its arrays (i); r^2-weighted sum in integers. The
     * floating-point sums go into four partial sums each (pixel i into sum i % 4), added at the end: four
     * add chains at a time instead of one, and no further from trackpy's numpy sums (pairwise) than the
     * running sum was; raw_mass of integer samples is exact either way. */
    double ec4[4] = {0, 0, 0, 0}, es4[4] = {0, 0, 0, 0}, raw4[4] = {0, 0, 0, 0};
    int64_t gyration = 0;
    uint32_t peak = 0;
    for (int dy = 0, i = 0; dy <= 2 * r; dy++) {
        int half = ctx->disk_half[dy];
        size_t at = (size_t)(top + dy) * w + left;
        const uint32_t *row = ctx->img + at;
        const float *raw = ctx->raw + at;
        for (int dx = r - half; dx <= r + half; dx++, i++) {
            uint32_t v = row[dx];
            gyration += (int64_t)ctx->mask_r2[i] * v;
            ec4[i & 3] += ctx->mask_cos[i] * v;
            es4[i & 3] += ctx->mask_sin[i] * v;
            peak = v > peak ? v : peak;
            raw4[i & 3] += raw[dx];
        }
    }
    double ec = (ec4[0] + ec4[1]) + (ec4[2] + ec4[3]), es = (es4[0] + es4[1]) + (es4[2] + es4[3]);
    double raw_mass = (raw4[0] + raw4[1]) + (raw4[2] + raw4[3]);
    double rg = (double)gyration, signal = peak;
    double centre = ctx->img[(size_t)(top + r) * w + left + r];
    c->size[k] = sqrt(rg / mass);
    c->ecc[k] = sqrt(ec * ec + es * es) / (mass - centre + 1e-6);
    c->signal[k] = signal;
    c->raw_mass[k] = raw_mass;
}

#define REFINE_CHUNK 64

/* Candidates k*REFINE_CHUNK.. of the list: each writes only its own entries. */
static void refine_chunk(void *arg, int chunk, int worker)
{
    locate_ctx *ctx = arg;
    int end = (chunk + 1) * REFINE_CHUNK < ctx->cands.count ? (chunk + 1) * REFINE_CHUNK : ctx->cands.count;
    for (int k = chunk * REFINE_CHUNK; k < end; k++) refine_one(ctx, k);
}

void locate_refine(locate_ctx *ctx)
{
    team_run(ctx->team, refine_chunk, ctx, (ctx->cands.count + REFINE_CHUNK - 1) / REFINE_CHUNK);
}

void locate_mark_close(point_grid *g, const double *y, const double *x, const double *mass, int n,
                       double separation, unsigned char *drop)
{
    if (n < 2 || !(separation > 0)) return;
    point_grid_build(g, y, x, n, separation);
    double limit = 1 - 1e-7;   /* scipy's query_pairs(1 - 1e-7) on positions divided by separation */
    for (int i = 0; i < n; i++) {
        point_grid_iter it;
        point_grid_near(g, y[i], x[i], &it);
        for (int j; (j = point_grid_next(&it)) >= 0;) {
            if (j <= i) continue;
            double dy = y[i] / separation - y[j] / separation, dx = x[i] / separation - x[j] / separation;
            if (sqrt(dy * dy + dx * dx) > limit) continue;
            int lower;
            if (mass && mass[i] != mass[j]) lower = mass[i] > mass[j] ? j : i;
            else lower = (y[i] + x[i]) / separation > (y[j] + x[j]) / separation ? j : i;
            drop[lower] = 1;
        }
    }
}

typedef uint8_t bytes32 __attribute__((vector_size(32)));

/* background[x] &= (distance[x] > half), 32 pixels per step (background bytes are 0 or 1). */
static void keep_if_farther(uint8_t *background, const uint8_t *distance, int w, int half)
{
    const bytes32 halves = (bytes32){0} + (uint8_t)half;
    int x = 0;
    for (; x + 32 <= w; x += 32) {
        bytes32 d, b;
        memcpy(&d, distance + x, sizeof d);
        memcpy(&b, background + x, sizeof b);
        b &= (bytes32)(d > halves);
        memcpy(background + x, &b, sizeof b);
    }
    for (; x < w; x++) background[x] &= distance[x] > half;
}

typedef int8_t signed32 __attribute__((vector_size(32)));
typedef int32_t int32x32 __attribute__((vector_size(128)));

RELOC_AVX2_CLONES
void locate_row_distance(locate_ctx *ctx, int y0, int y1, locate_scratch *s)
{
    int w = ctx->w, cap = ctx->radius + 1;     /* distances above every half width of the mask are all alike */
    uint8_t *nonzero = s->nonzero_row + LOCATE_DISTANCE_PAD;   /* 0xFF where img != 0; zero padding around */
    const bytes32 caps = (bytes32){0} + (uint8_t)cap;
    for (int y = y0; y < y1; y++) {
        const uint32_t *row = ctx->img + (size_t)y * w;
        uint8_t *d = ctx->row_distance + (size_t)y * w;
        int x = 0;
        for (; x + 32 <= w; x += 32) {
            int32x32 v;
            memcpy(&v, row + x, sizeof v);
            signed32 flags = __builtin_convertvector(v != 0, signed32);
            memcpy(nonzero + x, &flags, sizeof flags);
        }
        for (; x < w; x++) nonzero[x] = row[x] ? 0xFF : 0;
        /* From the farthest offset in: a non-zero pixel k away on either side makes the distance k. */
        for (x = 0; x < w; x += 32) {
            bytes32 distance = caps, left, right;
            for (int k = cap - 1; k >= 0; k--) {
                memcpy(&left, nonzero + x - k, sizeof left);
                memcpy(&right, nonzero + x + k, sizeof right);
                bytes32 hit = left | right;
                distance = (distance & ~hit) | (((bytes32){0} + (uint8_t)k) & hit);
            }
            if (x + 32 <= w) memcpy(d + x, &distance, sizeof distance);
            else memcpy(d + x, &distance, (size_t)(w - x));
        }
    }
}

/* The background pixels of one band of rows, summed about ctx->noise_shift into the band's slots. */
RELOC_AVX2_CLONES
static void noise_band(void *arg, int band, int worker)
{
    locate_ctx *ctx = arg;
    int w = ctx->w, h = ctx->h, r = ctx->radius, y0, y1;
    locate_band(band, h, &y0, &y1);
    double shift = ctx->noise_shift, sum = 0, sq = 0;
    size_t count = 0;
    uint8_t *background = ctx->scratch[worker].background_row;
    for (int y = y0; y < y1; y++) {
        memset(background, 1, (size_t)w);
        for (int dy = -r; dy <= r; dy++) {
            int yy = y + dy;
            if (yy >= 0 && yy < h)
                keep_if_farther(background, ctx->row_distance + (size_t)yy * w, w, ctx->disk_half[dy + r]);
        }
        const float *raw = ctx->raw + (size_t)y * w;
        for (int block = 0; block < w; block += 8) {     /* background is rare near features: skip 8 at once */
            int end = block + 8 < w ? block + 8 : w;
            uint64_t flags = 1;
            if (end == block + 8) memcpy(&flags, background + block, sizeof flags);
            if (!flags) continue;
            for (int x = block; x < end; x++) {
                if (!background[x]) continue;
                double v = raw[x] - shift;
                sum += v;
                sq += v * v;
                count++;
            }
        }
    }
    ctx->noise_sum[band] = sum;
    ctx->noise_sq[band] = sq;
    ctx->noise_count[band] = count;
}

/* A pixel is background when no non-zero pixel of the rescaled band pass lies within the refinement mask
 * around it (trackpy's binary dilation by the mask). Each row has, per pixel, the distance to the nearest
 * non-zero pixel of that row (locate_row_distance, capped at radius + 1, beyond any mask); a pixel is then
 * background when, for every row offset dy of the mask, that distance in row y+dy exceeds the mask's half
 * width at dy. The variance is accumulated about the ROI's first sample, which avoids cancellation in one
 * pass; bands are summed in order, so the result does not depend on the number of threads. */
void locate_measure_noise(locate_ctx *ctx, double *black_level, double *noise)
{
    ctx->noise_shift = ctx->raw[0];
    team_run(ctx->team, noise_band, ctx, LOCATE_BANDS);
    double sum = 0, sq = 0;
    size_t count = 0;
    for (int b = 0; b < LOCATE_BANDS; b++) {
        sum += ctx->noise_sum[b];
        sq += ctx->noise_sq[b];
        count += ctx->noise_count[b];
    }
    double n = (double)count, mean_shifted = count ? sum / n : 0;
    *black_level = count ? ctx->noise_shift + mean_shifted : NAN;
    *noise = count > 1 ? sqrt(fmax(sq / n - mean_shifted * mean_shifted, 0.0)) : NAN;
}
