/* ring.c -- the bright-field ring locator (trackpy's locate_brightfield_ring, after Rinaldin et al., Soft
 * Matter 2019): particles imaged as a dark ring around a brighter interior.
 *
 * Starting points are the features locate finds on the frame. Around each, the image is sampled (bilinear
 * interpolation) on rays normal to a circle of radius R = diameter/2, every 0.25 px of circumference, at
 * radial steps of 1 px from -R to +R. On every ray the dark ring is where the samples fall below the ray's
 * 5th percentile (median of those steps); rays whose dark level is above 0.45 of the brightest sample, or
 * more than 1 px off the most common ring position, are discarded, and the whole particle is rejected when
 * the inside is not 1.2 times brighter than the outside. A circle is fitted algebraically (least squares
 * on x^2 + y^2 = 2ax + 2by + c) to the ring points; when fewer than 35 % of the rays found the ring or the
 * fitted radius is off by more than half, the search range widens by 3 % and it tries again, up to 10
 * times. Failed particles are dropped, and of two rings closer than separation the one nearer the
 * top-left corner goes. */
#include <math.h>
#include <string.h>

#include "core/base/base.h"
#include "kernels/detection/detection_internal.h"

#define RING_ATTEMPTS 10
#define RING_MIN_FRACTION 0.35
#define RING_MAX_RADIUS_DEVIATION 0.5
#define RING_EDGE_THRESHOLD 0.45
#define RING_PERCENTILE 5.0
#define RING_MAX_DEVIATION 1.0
#define RING_INSIDE_FACTOR 1.2

static double sample_bilinear(const locate_ctx *ctx, double y, double x)
{
    if (!(y >= 0 && x >= 0 && y <= ctx->h - 1 && x <= ctx->w - 1)) return NAN;
    int y0 = (int)y, x0 = (int)x;
    int y1 = y0 + 1 < ctx->h ? y0 + 1 : y0, x1 = x0 + 1 < ctx->w ? x0 + 1 : x0;
    double fy = y - y0, fx = x - x0;
    const float *r0 = ctx->raw + (size_t)y0 * ctx->w, *r1 = ctx->raw + (size_t)y1 * ctx->w;
    return (1 - fy) * ((1 - fx) * r0[x0] + fx * r0[x1]) + fy * ((1 - fx) * r1[x0] + fx * r1[x1]);
}

static int cmp_double(const void *a, const void *b, void *unused)
{
    double p = *(const double *)a, q = *(const double *)b;
    return (p > q) - (p < q);
}

/* Linear-interpolation percentile of the non-NaN values of v (n of them); NaN when there are none. */
static double percentile_of(const double *v, int n, double percentile, double *sorted)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) sorted[m++] = v[i];
    if (m == 0) return NAN;
    locate_sort(sorted, (size_t)m, sizeof *sorted, cmp_double, NULL);
    double index = (m - 1) * (percentile / 100.0);
    int below = (int)floor(index);
    double t = index - below;
    return below + 1 < m ? sorted[below] + (sorted[below + 1] - sorted[below]) * t : sorted[below];
}

/* Finds the ring step on every ray (NaN where none); returns how many rays found it. */
static int find_edges(const double *samples, int rays, int steps, double *edge, double *sorted)
{
    double brightest = -INFINITY;
    for (int i = 0; i < rays * steps; i++)
        if (samples[i] > brightest) brightest = samples[i];
    double limit = RING_EDGE_THRESHOLD * brightest;
    for (int k = 0; k < rays; k++) {
        const double *ray = samples + (size_t)k * steps;
        double level = percentile_of(ray, steps, RING_PERCENTILE, sorted);
        edge[k] = NAN;
        if (isnan(level) || level > limit) continue;
        int m = 0;
        for (int s = 0; s < steps; s++)
            if (ray[s] < level) sorted[m++] = s;
        if (m == 0) continue;
        edge[k] = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
    }
    /* The most common ring position (smallest on ties); rays far from it are outliers. */
    int found = 0;
    for (int k = 0; k < rays; k++)
        if (!isnan(edge[k])) sorted[found++] = edge[k];
    if (found == 0) return 0;
    locate_sort(sorted, (size_t)found, sizeof *sorted, cmp_double, NULL);
    double mode = sorted[0];
    int best = 0;
    for (int i = 0; i < found;) {
        int j = i;
        while (j < found && sorted[j] == sorted[i]) j++;
        if (j - i > best) {
            best = j - i;
            mode = sorted[i];
        }
        i = j;
    }
    found = 0;
    for (int k = 0; k < rays; k++) {
        if (isnan(edge[k])) continue;
        if (fabs(edge[k] - mode) > RING_MAX_DEVIATION) edge[k] = NAN;
        else found++;
    }
    /* The interior must be brighter than the outside. */
    int split = (int)nearbyint(mode);
    double in_sum = 0, out_sum = 0;
    int in_n = 0, out_n = 0;
    for (int i = 0; i < rays * steps; i++) {
        if (isnan(samples[i])) continue;
        if (i % steps < split) {
            in_sum += samples[i];
            in_n++;
        } else {
            out_sum += samples[i];
            out_n++;
        }
    }
    if (in_n == 0 || out_n == 0 || in_sum / in_n < RING_INSIDE_FACTOR * (out_sum / out_n)) return 0;
    return found;
}

/* Least-squares circle through points: returns 0 with centre and radius, -1 when degenerate. */
static int fit_circle(const double *py, const double *px, int n, double *yc, double *xc, double *radius)
{
    double m[3][4] = {{0}};
    for (int i = 0; i < n; i++) {
        double row[3] = {2 * px[i], 2 * py[i], 1}, rhs = px[i] * px[i] + py[i] * py[i];
        for (int a = 0; a < 3; a++) {
            for (int b = 0; b < 3; b++) m[a][b] += row[a] * row[b];
            m[a][3] += row[a] * rhs;
        }
    }
    for (int col = 0; col < 3; col++) {
        int pivot = col;
        for (int r = col + 1; r < 3; r++)
            if (fabs(m[r][col]) > fabs(m[pivot][col])) pivot = r;
        if (fabs(m[pivot][col]) < 1e-12) return -1;
        for (int c = 0; c < 4; c++) {
            double t = m[col][c];
            m[col][c] = m[pivot][c];
            m[pivot][c] = t;
        }
        for (int r = 0; r < 3; r++) {
            if (r == col) continue;
            double f = m[r][col] / m[col][col];
            for (int c = col; c < 4; c++) m[r][c] -= f * m[col][c];
        }
    }
    double a = m[0][3] / m[0][0], b = m[1][3] / m[1][1], c = m[2][3] / m[2][2];
    double r2 = c + a * a + b * b;
    if (!(r2 > 0)) return -1;
    *xc = a;
    *yc = b;
    *radius = sqrt(r2);
    return 0;
}

/* Refines one particle (ROI coordinates); returns 0 with the ring, -1 when no attempt succeeded. */
static int refine_ring(locate_ctx *ctx, double *y, double *x, double *r_out)
{
    ring_scratch *rs = &ctx->ring;
    double radius = ctx->p.diameter / 2.0, lo = -radius, hi = radius;
    int rays = (int)(2 * M_PI * radius / 0.25);
    for (int attempt = 0; attempt < RING_ATTEMPTS; attempt++, lo *= 1.03, hi *= 1.03) {
        int steps = (int)ceil(hi + 1 - lo);
        size_t need = (size_t)rays * steps;
        if (need > rs->samples_cap) {
            rs->samples_cap = need;
            rs->samples = xrealloc(rs->samples, need * sizeof *rs->samples);
            rs->sorted = xrealloc(rs->sorted, need * sizeof *rs->sorted);
        }
        if ((size_t)rays * 3 > rs->rays_cap) {
            rs->rays_cap = (size_t)rays * 3;
            rs->edge = xrealloc(rs->edge, rs->rays_cap * sizeof *rs->edge);
        }
        for (int k = 0; k < rays; k++) {
            double phi = -M_PI + 2 * M_PI * k / rays, ny = sin(phi), nx = cos(phi);
            for (int s = 0; s < steps; s++) {
                double d = radius + lo + s;
                rs->samples[(size_t)k * steps + s] = sample_bilinear(ctx, *y + d * ny, *x + d * nx);
            }
        }
        int found = find_edges(rs->samples, rays, steps, rs->edge, rs->sorted);
        if (found < RING_MIN_FRACTION * rays) continue;
        double *py = rs->edge + rays, *px = rs->edge + 2 * rays;
        int n = 0;
        for (int k = 0; k < rays; k++) {
            if (isnan(rs->edge[k])) continue;
            double phi = -M_PI + 2 * M_PI * k / rays, d = radius + lo + rs->edge[k];
            py[n] = *y + d * sin(phi);
            px[n] = *x + d * cos(phi);
            n++;
        }
        double yc, xc, rr;
        if (fit_circle(py, px, n, &yc, &xc, &rr)) continue;
        if (!(lo < rr - radius && rr - radius < hi)) continue;
        if (fabs(radius - rr) / radius > RING_MAX_RADIUS_DEVIATION) continue;
        *y = yc;
        *x = xc;
        *r_out = rr;
        return 0;
    }
    return -1;
}

int locate_rings(locate_ctx *ctx, const float *frame, int frame_index, locate_table *out)
{
    locate_frame(ctx, frame, frame_index, out);
    out->has_r = 1;
    locate_cands_reserve(&ctx->cands, out->count);
    unsigned char *keep = ctx->cands.drop;   /* free after locate_frame: reused as row flags */
    for (int i = 0; i < out->count; i++) {
        double y = out->y[i] - ctx->p.roi_y, x = out->x[i] - ctx->p.roi_x, r;
        keep[i] = refine_ring(ctx, &y, &x, &r) == 0;
        if (!keep[i]) continue;
        out->y[i] = y + ctx->p.roi_y;
        out->x[i] = x + ctx->p.roi_x;
        out->r[i] = r;
    }
    locate_table_compact(out, keep);
    /* Rings refined onto the same particle: keep one (the flags first mark the rows to drop). */
    unsigned char *drop = keep;
    if (out->count) memset(drop, 0, (size_t)out->count);
    locate_mark_close(&ctx->grid, out->y, out->x, NULL, out->count, ctx->p.separation, drop);
    for (int i = 0; i < out->count; i++) keep[i] = !drop[i];
    locate_table_compact(out, keep);
    return 0;
}
