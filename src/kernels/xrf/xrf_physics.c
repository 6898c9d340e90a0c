/* xrf_physics.c -- the self-absorption physics shared by the correction and the forward model: attenuation of a
 * pixel from its composition, the incident-beam factor, the exit optical depth (carried row by row toward the
 * detector for planar faces, summed ray by ray with face escape), the cone-averaged exit factor, the row solvers
 * that invert them, and the forward model that renders a 3D phantom into detected maps with the same functions.
 * See xrf.h for the geometry and the numerical choices. */
#include "kernels/xrf/xrf_internal.h"
#include "kernels/xrf/xrf.h"

#include "core/base/base.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Optical depth per pixel length crossed (unit path weight) at every energy of the configuration, for measured
 * weight fractions w (the matrix fractions are the configured ones). All zero for an empty pixel (w all 0). */
static void pixel_depths(const xrf_config *cfg, const double *w, double *depth)
{
    int n = cfg->n_elements;
    double measured = 0, inverse_density = 0;
    for (int c = 0; c < n; c++) {
        measured += w[c];
        inverse_density += w[c] / cfg->element[c].density;
    }
    if (!(measured > 0)) {
        for (int k = 0; k <= n; k++) depth[k] = 0;
        return;
    }
    for (int m = 0; m < cfg->n_matrix; m++) inverse_density += cfg->matrix[m].fraction / cfg->matrix[m].density;
    double rho = cfg->density > 0 ? cfg->density : 1 / inverse_density;
    double scale = rho * cfg->pixel_um * 1e-4;   /* g/cm^3 * cm */
    for (int k = 0; k <= n; k++) {
        double mu = 0;
        for (int c = 0; c < n; c++) mu += w[c] * cfg->mu_mass[c][k];
        for (int m = 0; m < cfg->n_matrix; m++) mu += cfg->matrix[m].fraction * cfg->mu_mass[n + m][k];
        depth[k] = mu * scale;
    }
}

/* Optical depth of one depth voxel for the incident beam, from the per-pixel-length depth at energy 0. */
static double voxel_beam_depth(const xrf_config *cfg, double beam_depth_per_pixel)
{
    return beam_depth_per_pixel * (cfg->thickness_um / cfg->depth_voxels) / cfg->pixel_um;
}

/* (1/N) sum_{n<N} exp(-n a): the beam attenuation averaged over a column of uniform composition. */
static double beam_factor(int n_voxels, double a)
{
    if (a < 1e-300) return 1.0;
    return expm1(-n_voxels * a) / (n_voxels * expm1(-a));
}

/* exp(x) for x <= 709, 0 below -708, without branches or calls so that loops over it vectorise: x = k ln2 + r with
 * |r| <= ln2/2, exp(r) = 1 + r + r^2 q(r) with q of degree 8 interpolating (exp(r) - 1 - r) / r^2 at the Chebyshev
 * points of [-ln2/2, ln2/2] (computed with mpmath.chebyfit at 40 digits; q's own error 1.1e-15 on 4,000 arguments
 * in [-40, 0] against mpmath), 2^k put in the exponent. q is evaluated by Estrin's scheme (pairs of coefficients,
 * then pairs of pairs with r^2 and r^4): four dependent multiply-adds instead of Horner's eight. The exp loops wait
 * on this chain's latency, not on arithmetic, so the chain is kept short: r is x - k ln2 with ln 2 rounded to a
 * double (no second Cody-Waite term; one multiply-add in the AVX2 and AVX-512 builds, the baseline build rounds
 * the product too), x is not clamped before the reduction (below -708 the scale is nonsense and the result
 * replaced by 0), and for exp(a b) k comes from a in one multiply-add beside the product (vector_exp_of_product);
 * together 15 % of a one-core correction of 1000 x 1000 pixels. What the single term leaves, k times ln 2's
 * rounding (2.3e-17), is of the size of the rounding in the argument itself, a product -weight * depth. Worst
 * relative error of exp(-w d) against long double on 1,000,000 random (w, d) with -w d in [-40, 0] and as many in
 * [-700, -40]: 5.9e-15 and 8.1e-14 with multiply-adds (8.8e-15 and 1.4e-13 in the baseline build), where a
 * correctly rounded exp of the rounded product has 3.7e-15 and 5.7e-14, and the two-term reduction had 4.6e-15 and
 * 5.8e-14. exp_reduce does the reduction and q and gives 2^(k + m), m a small integer >= 0 (exact: a product by 2^m
 * rounds nothing). */
#define LOG2_E 1.4426950408889634
typedef struct exp_parts {
    double r, r2, q, scale;
} exp_parts;

static inline exp_parts exp_reduce(double x, double x_log2e, int m)
{
    const double shifter = 6755399441055744.0;   /* 1.5 * 2^52: adding it rounds to an integer in the low bits */
    exp_parts e;
    double k = x_log2e + shifter;
    uint64_t k_bits;
    memcpy(&k_bits, &k, sizeof k_bits);
    k -= shifter;
    e.r = x - k * 0x1.62e42fefa39efp-1;   /* one rounding (a multiply-add); see above for the ln 2 it leaves out */
    e.r2 = e.r * e.r;
    double r4 = e.r2 * e.r2;
    double q01 = 0.5 + 0x1.5555555553b7dp-3 * e.r, q23 = 0x1.5555555554cb8p-5 + 0x1.1111111c45da2p-7 * e.r;
    double q45 = 0x1.6c16c1738ed26p-10 + 0x1.a019adabe5646p-13 * e.r;
    double q67 = 0x1.a019c9ab128cfp-16 + 0x1.72c720d17056cp-19 * e.r;
    e.q = (q01 + q23 * e.r2) + ((q45 + q67 * e.r2) + 0x1.2880393b27194p-22 * r4) * r4;
    uint64_t scale_bits = (k_bits - 0x4338000000000000ULL + 1023 + (uint64_t)m) << 52;
    memcpy(&e.scale, &scale_bits, sizeof e.scale);
    return e;
}

/* 2^m exp(a b), given b log2(e): k comes from a in one multiply-add beside the product, not after it. */
static inline double vector_exp_of_product(double a, double b, double b_log2e, int m)
{
    double x = a * b;
    exp_parts e = exp_reduce(x, a * b_log2e, m);   /* below -708 the scale is nonsense and the result discarded */
    double p = (1.0 + e.r) + e.r2 * e.q;
    return x < -708.0 ? 0.0 : p * e.scale;
}

static inline double vector_exp(double x) { return vector_exp_of_product(x, 1.0, LOG2_E, 0); }

/* expm1(x) for x <= 0 to 3e-15 relative (worst near x = -ln2/2, where q's error is a larger share of the result;
 * the 14-term series it replaces, computed beside an exp, had 7e-16), -1 below -708: from the same reduction,
 * 2^k (r + r^2 q(r)) + (2^k - 1), where 2^k - 1 is exact for k >= -53 (below, the result rounds to -1 anyway) and,
 * for |x| < ln2/2, k = 0 and r = x, so nothing cancels. One exp's work instead of a series beside an exp: ~4 % of a
 * one-core correction (it runs twice per pixel, for the beam factor). */
static inline double vector_expm1(double x)
{
    double clamped = x < -708.0 ? -708.0 : x;
    exp_parts e = exp_reduce(clamped, clamped * LOG2_E, 0);
    return e.scale * (e.r + e.r2 * e.q) + (e.scale - 1.0);
}

/* ---- Planar faces: exit paths along digital lines, clipped exactly at the map edges ----
 *
 * The exit ray of direction t from pixel (x, y) is the straight line X = x + (Y - y) s (s = theta_slope[t], X and Y
 * in pixels, pixel centres on integers); it attenuates from the top edge of its pixel (Y = y + 0.5) to where it
 * leaves the map, through the top (Y = height - 0.5) or a side (X = -0.5 or width - 0.5). Each row crossed costs
 * the depth of the pixel the ray crosses it in times the length crossed (one row, less where the ray ends).
 *
 * Rows are summed along digital lines: line u holds pixel (u + o_r, r) of every row r, o_r = round(r s), and a
 * running accumulator per line carries its optical depth from row to row (O(directions) per pixel). A line
 * follows the ray of any of its pixels to within half a pixel and ends where its own continuous line X = u + Y s
 * leaves the map; the pixel's ray ends a little earlier or later (at most 0.5 / |s| rows), and the difference is
 * charged at the depth of the pixel where the line ends. For a composition uniform over the last rows before the
 * exit (a uniform sample in particular) the clipped path is therefore exact, edges included.
 *
 * The state a row leaves for the row before it, per element line c and direction t: A, the line's optical depth
 * from this row on, and E, the depth at the line's end; for every column of the row and `ghost_columns` beyond
 * each side (lines that leave the map through a side are still counted over the part of the row they cross).
 * It is stored by line, not by column: line u's entry stays where it is from row to row, so a row updates the
 * state of the row after it in place (A grows by the row's depth, E changes only where a line ends) instead of
 * copying every entry into a second buffer. Column j of row y is entry j + column0(y) of the (c, t) arrays;
 * each array holds the row's columns, the ghosts and the drift of the offsets over the map's height. */

static int row_width(const xrf_config *cfg, int width) { return width + 2 * cfg->ghost_columns; }

static int line_offset(double slope, int row) { return (int)floor(row * slope + 0.5); }

/* Entries of each A or E array: a row's columns and ghosts, plus how far the lines drift over the height. */
static size_t state_stride(const xrf_config *cfg, int width, int height)
{
    int drift = 0;
    for (int t = 0; t < cfg->num.n_theta; t++) {
        int o = abs(line_offset(cfg->theta_slope[t], height - 1));
        if (o > drift) drift = o;
    }
    return (size_t)row_width(cfg, width) + drift;
}

/* Where column 0 of row y sits in direction t's arrays: entry u + ghosts + the largest offset for line u. */
static ptrdiff_t column0(const xrf_config *cfg, int height, int t, int y)
{
    double s = cfg->theta_slope[t];
    return cfg->ghost_columns + (s > 0 ? line_offset(s, height - 1) : 0) - line_offset(s, y);
}

size_t xrf_exit_state_size(const xrf_config *cfg, int width, int height)
{
    return (size_t)cfg->n_elements * cfg->num.n_theta * 2 * state_stride(cfg, width, height);
}

/* Y where the line X = x_at_row0 + Y slope leaves the map (through the top or a side). */
static inline double path_end(double slope, int width, int height, double x_at_row0)
{
    double top = height - 0.5;
    double inverse = 1.0 / slope;   /* loop-invariant where this is inlined: a product per column, not a division */
    double side = slope < 0 ? (-0.5 - x_at_row0) * inverse : slope > 0 ? (width - 0.5 - x_at_row0) * inverse : top;
    return side < top ? side : top;
}

static inline double positive_part(double v) { return v > 0 ? v : 0; }

/* Columns of [x0, x1) where the ray of a pixel of row y or its line (offset o) may leave through a side, the only
 * columns where the two paths differ (elsewhere both end at the top): toward the side the slope leans to, widened by
 * a column or two against rounding (inside the range the difference is computed exactly, so a wider range changes
 * nothing). With s > 0, X = x_at_row0 + Y s reaches X = width - 0.5 below the top where x_at_row0 > width - 0.5 -
 * top s; the pixel's ray has x_at_row0 = x - y s, its line x - o. With s < 0, the same at X = -0.5. */
static void side_exit_columns(double s, int width, int height, int y, int o, int x0, int x1, int *lo, int *hi)
{
    double top = height - 0.5;
    *lo = *hi = x0;
    if (s > 0) {
        double first = fmin(width - 0.5 - (top - y) * s, width - 0.5 - top * s + o);
        *lo = first - 2 < x0 ? x0 : first - 2 >= x1 ? x1 : (int)floor(first) - 1;   /* never past x1 */
        *hi = x1;
    } else if (s < 0) {
        double last = fmax(-0.5 - (top - y) * s, -0.5 - top * s + o);
        *hi = last + 2 > x1 ? x1 : last + 2 < x0 ? x0 : (int)ceil(last) + 2;
    }
}

/* Row y's exit optical depths (unit path weight) as the line state holds them, read in place: along direction t
 * from the top edge of pixel (x, y) to where its ray leaves the map, at the line of element c, the depth is
 * a[c][t][x] (the line's A from row y + 1 on) outside [lo[t], hi[t]), and max(0, A + E crossing[t][x]) inside (the
 * pixel's own path minus the path its line has accumulated, charged at the depth where the line ends). */
typedef struct exit_lines {
    const double *a[XRF_MAX_ELEMENTS][XRF_MAX_THETA], *e[XRF_MAX_ELEMENTS][XRF_MAX_THETA];
    const double *crossing[XRF_MAX_THETA];
    int lo[XRF_MAX_THETA], hi[XRF_MAX_THETA];
} exit_lines;

/* The exit lines of columns [x0, x1) of row y from the state of row y + 1, or, when at_edge (row y is at the
 * detector edge: nothing toward it), all zero depths read from `zeros` (width doubles, zeroed here). `crossing`:
 * scratch of n_theta * width doubles. */
RELOC_AVX512_AVX2_CLONES
static void exit_lines_of_row(const xrf_config *cfg, int width, int height, int y, int x0, int x1,
                              const double *state, int at_edge, double *zeros, double *crossing, exit_lines *lines)
{
    size_t stride = state_stride(cfg, width, height);
    if (at_edge)
        for (int x = x0; x < x1; x++) zeros[x] = 0;
    for (int t = 0; t < cfg->num.n_theta; t++) {
        double s = cfg->theta_slope[t], start = y + 0.5;
        int o = line_offset(s, y);
        double *restrict clip = crossing + (size_t)t * width;
        lines->crossing[t] = clip;
        lines->lo[t] = lines->hi[t] = x0;
        if (!at_edge) side_exit_columns(s, width, height, y, o, x0, x1, &lines->lo[t], &lines->hi[t]);
        for (int x = lines->lo[t]; x < lines->hi[t]; x++)
            clip[x] = positive_part(path_end(s, width, height, x - y * s) - start) -
                      positive_part(path_end(s, width, height, x - o) - start);
        for (int c = 0; c < cfg->n_elements; c++) {
            const double *a = at_edge ? zeros : state + ((size_t)c * cfg->num.n_theta + t) * 2 * stride +
                                                    column0(cfg, height, t, y);
            lines->a[c][t] = a;
            lines->e[c][t] = at_edge ? zeros : a + stride;
        }
    }
}

/* Exit depth of the clipped columns [lo, hi) of line (c, t) into depth[]. */
static void clipped_depths(const exit_lines *lines, int c, int t, double *restrict depth)
{
    const double *restrict a = lines->a[c][t], *restrict e = lines->e[c][t], *restrict crossing = lines->crossing[t];
    for (int x = lines->lo[t]; x < lines->hi[t]; x++) depth[x] = positive_part(a[x] + e[x] * crossing[x]);
}

/* tau[(c * n_theta + t) * width + x] for x in [x0, x1): the exit depths of row y (see exit_lines) as arrays, for
 * the solvers that look them up pixel by pixel. `scratch`: (n_theta + 1) * width doubles. */
RELOC_AVX512_AVX2_CLONES
static void exit_depths(const xrf_config *cfg, int width, int height, int y, int x0, int x1, const double *state,
                        int at_edge, double *tau, double *scratch)
{
    exit_lines lines;
    exit_lines_of_row(cfg, width, height, y, x0, x1, state, at_edge, scratch, scratch + width, &lines);
    for (int c = 0; c < cfg->n_elements; c++)
        for (int t = 0; t < cfg->num.n_theta; t++) {
            double *out = tau + ((size_t)c * cfg->num.n_theta + t) * width;
            memcpy(out + x0, lines.a[c][t] + x0, (size_t)(x1 - x0) * sizeof *out);
            clipped_depths(&lines, c, t, out);
        }
}

/* Columns [*lo, *hi) of [j0, j1) whose line (offset o in row y) leaves the map through a side before the end of
 * row y (path_end <= y + 0.5), widened by two columns against rounding. Every other line of the row crosses all of
 * it and goes on toward the top: length 1, not ending there -- except in the top row, where every line ends. With
 * s > 0 the line of column j leaves at Y = (width - 0.5 - j + o) / s, which is <= y + 0.5 from
 * j >= width - 0.5 + o - (y + 0.5) s on; with s < 0 at Y = (j - o + 0.5) / -s, up to j <= o - 0.5 - (y + 0.5) s. */
static void row_end_columns(double s, int width, int height, int y, int o, int j0, int j1, int *lo, int *hi)
{
    *lo = j0;
    *hi = j1;
    if (y >= height - 1) return;
    if (s > 0) {
        double first = width - 0.5 + o - (y + 0.5) * s - 2;
        *lo = first <= j0 ? j0 : first >= j1 ? j1 : (int)floor(first);
    } else if (s < 0) {
        double last = o - 0.5 - (y + 0.5) * s + 2;
        *hi = last >= j1 ? j1 : last <= j0 ? j0 : (int)ceil(last);
    } else {
        *hi = j0;
    }
}

/* The state of columns [j0, j1) of row y (ghost columns are j < 0 and j >= width) from the row's depths
 * (depth_row[c][x], x in [0, width)), made in place from the state of row y + 1 (not read when at_edge: nothing
 * toward the detector). Per line: A the depth from this row on, E the depth where the line ends. A line whose step
 * to the next row leaves the ghost margin (|slope| + 2 columns) left the map rows ago (its entry holds an older
 * row's state); inside the map no step does. */
RELOC_AVX512_AVX2_CLONES
static void store_row_state(const xrf_config *cfg, int width, int height, int y, int j0, int j1,
                            const double *const *depth_row, int at_edge, double *state)
{
    enum { BLOCK = 256 };
    int n_theta = cfg->num.n_theta, g = cfg->ghost_columns;
    size_t stride = state_stride(cfg, width, height);
    int inner0 = j0 > 0 ? j0 : 0, inner1 = j1 < width ? j1 : width;
    double row_start = y - 0.5, row_end = y + 0.5;
    for (int t = 0; t < n_theta; t++) {
        double s = cfg->theta_slope[t];
        int o = line_offset(s, y), delta = line_offset(s, y + 1) - o;
        size_t first_block = (size_t)t * 2 * stride + column0(cfg, height, t, y);
        size_t element_stride = (size_t)n_theta * 2 * stride;
        /* Inside the map: lines that cross the whole row and go on add its depth; the few that leave through a side
         * within it (and all in the top row, or when nothing is toward the detector) in blocks of columns: the lines'
         * geometry once, then every element branch-free. */
        int lo = inner0, hi = inner1;
        if (!at_edge) row_end_columns(s, width, height, y, o, inner0, inner1, &lo, &hi);
        for (int c = 0; c < cfg->n_elements; c++) {
            double *restrict a = state + first_block + c * element_stride;
            const double *restrict d = depth_row[c];
            for (int j = inner0; j < lo; j++) a[j] += d[j];
            for (int j = hi; j < inner1; j++) a[j] += d[j];
        }
        for (int b0 = lo; b0 < hi; b0 += BLOCK) {
            int b1 = hi - b0 > BLOCK ? b0 + BLOCK : hi;
            double length[BLOCK], ends[BLOCK];   /* of row y on each line; ends: 1 where the line ends in row y */
            for (int j = b0; j < b1; j++) {
                double end = path_end(s, width, height, j - o), l = end - row_start;
                length[j - b0] = l < 0 ? 0 : l > 1 ? 1 : l;
                ends[j - b0] = end > row_end ? 0 : 1;
            }
            for (int c = 0; c < cfg->n_elements; c++) {
                double *restrict a = state + first_block + c * element_stride + b0, *restrict e = a + stride;
                const double *restrict d = depth_row[c] + b0;
                if (at_edge) {
                    for (int k = 0; k < b1 - b0; k++) {
                        a[k] = d[k] * length[k];
                        e[k] = d[k];
                    }
                    continue;
                }
                for (int k = 0; k < b1 - b0; k++) {
                    a[k] += d[k] * length[k];
                    if (ends[k] != 0) e[k] = d[k];
                }
            }
        }
        /* The ghost columns on either side, one by one (a few per row). */
        int step_lo = at_edge ? 0 : -g - delta, step_hi = at_edge ? 0 : width + g - delta;
        int ghost_ranges[2][2] = {{j0, j1 < 0 ? j1 : 0}, {j0 > width ? j0 : width, j1}};
        for (int c = 0; c < cfg->n_elements; c++) {
            double *a = state + first_block + c * element_stride, *e = a + stride;
            for (int side = 0; side < 2; side++)
                for (int j = ghost_ranges[side][0]; j < ghost_ranges[side][1]; j++) {
                    double end = path_end(s, width, height, j - o), length = end - row_start;
                    double dj = depth_row[c][side == 0 ? 0 : width - 1];
                    int step = j >= step_lo && j < step_hi;
                    a[j] = dj * (length < 0 ? 0 : length > 1 ? 1 : length) + (step ? a[j] : 0);
                    e[j] = step && end > row_end ? e[j] : dj;
                }
        }
    }
}

/* Columns whose state a solved span [x0, x1) of a row determines: ghosts go with the edge pixels. */
static void state_columns(const xrf_config *cfg, int width, int x0, int x1, int *j0, int *j1)
{
    *j0 = x0 == 0 && x1 > 0 ? -cfg->ghost_columns : x0;
    *j1 = x1 == width && x0 < x1 ? width + cfg->ghost_columns : x1;
}

size_t xrf_exit_row_size(const xrf_config *cfg, int width)
{
    return (size_t)cfg->n_elements * cfg->num.n_theta * 2 * row_width(cfg, width);
}

/* Copies between a stored row (column j of row `row` at entry j + ghosts of each A or E array) and the line-indexed
 * state, for the lines through columns [j0, j1) of row y that also cross the stored row's columns and ghosts:
 * from the state into the row when from_state, else the other way. */
static void exchange_row(const xrf_config *cfg, int width, int height, int y, int row, int j0, int j1,
                         const double *from, double *to, int from_state)
{
    int g = cfg->ghost_columns, w2 = row_width(cfg, width);
    size_t stride = state_stride(cfg, width, height);
    for (int t = 0; t < cfg->num.n_theta; t++) {
        int delta = line_offset(cfg->theta_slope[t], row) - line_offset(cfg->theta_slope[t], y);
        int lo = j0 + delta < -g ? -g - delta : j0, hi = j1 + delta > width + g ? width + g - delta : j1;
        if (lo >= hi) continue;
        for (int c = 0; c < cfg->n_elements; c++)
            for (int half = 0; half < 2; half++) {   /* A, then E */
                size_t line = ((size_t)c * cfg->num.n_theta + t) * 2 * stride + half * stride + column0(cfg, height, t, y) + lo;
                size_t column = ((size_t)c * cfg->num.n_theta + t) * 2 * w2 + half * w2 + g + lo + delta;
                memcpy(to + (from_state ? column : line), from + (from_state ? line : column),
                       (size_t)(hi - lo) * sizeof *to);
            }
    }
}

void xrf_exit_state_load(const xrf_config *cfg, int width, int height, int y, int x0, int x1, const double *next_row,
                         double *state)
{
    int j0, j1;
    state_columns(cfg, width, x0, x1, &j0, &j1);
    exchange_row(cfg, width, height, y, y + 1, j0, j1, next_row, state, 0);
}

void xrf_exit_state_save(const xrf_config *cfg, int width, int height, int y, int x0, int x1, const double *state,
                         double *row)
{
    int j0, j1;
    state_columns(cfg, width, x0, x1, &j0, &j1);
    exchange_row(cfg, width, height, y, y, j0, j1, state, row, 1);
}

void xrf_exit_stencil(const xrf_config *cfg, int *lowest, int *highest)
{
    *lowest = INT32_MAX;
    *highest = INT32_MIN;
    for (int t = 0; t < cfg->num.n_theta; t++) {
        int shift = (int)floor(cfg->theta_slope[t]);
        if (shift < *lowest) *lowest = shift;
        if (shift + 1 > *highest) *highest = shift + 1;
    }
}

/* Cone-averaged exit attenuation of element c at pixel x; self is the optical depth inside the source pixel. */
static double exit_factor(const xrf_config *cfg, const double *tau, int width, int c, int x, double self)
{
    const xrf_numerics *num = &cfg->num;
    double sum = 0;
    for (int t = 0; t < num->n_theta; t++) {
        double depth = tau[((size_t)c * num->n_theta + t) * width + x] + self;
        for (int k = 0; k < cfg->n_distinct[t]; k++) {
            double d = cfg->distinct_weight[t][k] * depth;
            sum += cfg->distinct_count[t][k] * (num->averaging == XRF_AVG_MEAN_EXP ? exp(-d) : d);
        }
    }
    sum /= num->n_theta * num->n_phi;
    return num->averaging == XRF_AVG_MEAN_EXP ? sum : exp(-sum);
}

/* Exit factors of every element at pixel x for composition w, whose depths are `depth`. */
static void exit_factors(const xrf_config *cfg, const double *tau, int width, int x, const double *depth,
                         double *afl)
{
    double half = cfg->num.source_voxel == XRF_SOURCE_HALF ? 0.5 : 0;
    for (int c = 0; c < cfg->n_elements; c++) afl[c] = exit_factor(cfg, tau, width, c, x, half * depth[1 + c]);
}

/* Weight fractions from yields: the measured share of the composition split in proportion to the yields.
 * Returns 0 for a pixel without any yield (then w is all zero: the pixel is treated as empty). */
static int fractions_from_yields(const xrf_config *cfg, const double *yield, double *w)
{
    double sum = 0;
    for (int c = 0; c < cfg->n_elements; c++) sum += yield[c];
    if (!(sum > 0)) {
        for (int c = 0; c < cfg->n_elements; c++) w[c] = 0;
        return 0;
    }
    for (int c = 0; c < cfg->n_elements; c++) w[c] = (1 - cfg->matrix_total) * yield[c] / sum;
    return 1;
}

/* A pixel's total attenuation A_beam * A_FL per element as a function of its own depths (its composition). */
typedef void (*pixel_factor_fn)(const void *ctx, const double *depth, double *factor);

/* Solves one pixel: the weight fractions w with counts = I0 S w factor(w), by fixed point from the raw fractions.
 * The pixel enters its own factor only through the beam and the source voxel, a fraction of one pixel's depth:
 * a contraction, converged to 1e-15. (Planar faces with the source voxel excluded need no iteration: see
 * solve_row_excluded.) */
static void solve_pixel(const xrf_config *cfg, const double *counts, double i0, pixel_factor_fn factor_of,
                        const void *ctx, double *w, double *depth, double *factor)
{
    int n = cfg->n_elements;
    double yield[XRF_MAX_ELEMENTS];
    for (int c = 0; c < n; c++) yield[c] = counts[c] / (i0 * cfg->element[c].sensitivity);
    fractions_from_yields(cfg, yield, w);
    pixel_depths(cfg, w, depth);
    for (int it = 0; it < 200; it++) {
        factor_of(ctx, depth, factor);
        for (int c = 0; c < n; c++) yield[c] = counts[c] / (i0 * cfg->element[c].sensitivity * factor[c]);
        double previous[XRF_MAX_ELEMENTS], change = 0;
        memcpy(previous, w, sizeof previous);
        fractions_from_yields(cfg, yield, w);
        pixel_depths(cfg, w, depth);
        for (int c = 0; c < n; c++) change = fmax(change, fabs(w[c] - previous[c]));
        if (change < 1e-15) break;
    }
    factor_of(ctx, depth, factor);
}

/* Planar faces: the exit factors come from the row's optical depths; without the source voxel they do not depend
 * on the pixel and are computed once. */
/* Planar faces with half the source voxel: the exit factors depend on the pixel's own depths. */
typedef struct planar_pixel {
    const xrf_config *cfg;
    const double *tau;
    int width, x;
} planar_pixel;

static void planar_factor(const void *ctx, const double *depth, double *factor)
{
    const planar_pixel *pp = ctx;
    double afl[XRF_MAX_ELEMENTS];
    exit_factors(pp->cfg, pp->tau, pp->width, pp->x, depth, afl);
    double beam = beam_factor(pp->cfg->depth_voxels, voxel_beam_depth(pp->cfg, depth[0]));
    for (int c = 0; c < pp->cfg->n_elements; c++) factor[c] = beam * afl[c];
}

/* afl[x] += count exp(-weight depth[x]) (mean of exponentials) or count weight depth[x] (exponential of the mean)
 * for x in [from, to). */
static inline void add_exit_terms(double *restrict afl, const double *restrict depth, int from, int to,
                                  double weight, int count, int mean_exp)
{
    /* A count of 2^m (1 or 2 with phi and -phi alike) goes into the exp's exponent: no multiply. */
    int m = __builtin_ctz((unsigned)count);
    double factor = -weight, factor_log2e = factor * LOG2_E;
    if (mean_exp && count == 1 << m)
        for (int x = from; x < to; x++) afl[x] += vector_exp_of_product(depth[x], factor, factor_log2e, m);
    else if (mean_exp)
        for (int x = from; x < to; x++) afl[x] += count * vector_exp_of_product(depth[x], factor, factor_log2e, 0);
    else
        for (int x = from; x < to; x++) afl[x] += count * weight * depth[x];
}

/* Source voxel excluded: a pixel's exit factors do not depend on its own composition and its beam factor is common
 * to all its elements, so the fractions follow from the yields divided by the exit factors in one step; the row
 * is solved in passes over contiguous arrays, the exit depths read from the line state where they are the lines'
 * (no copy) and made only in the clipped columns. scratch: (n_elements + 3) * width doubles. */
RELOC_AVX512_AVX2_CLONES
static void solve_row_excluded(const xrf_config *cfg, int width, int x0, int x1, const exit_lines *lines,
                               const double *const *counts_row, double *scratch,
                               double *const *corrected_row, double *const *fractions_row, double *const *depth_row)
{
    /* Every loop works through restrict-qualified local pointers: the build does not assume strict aliasing, so a
     * store through a row pointer taken from an array of pointers would otherwise forbid vectorising. */
    const xrf_numerics *num = &cfg->num;
    int n = cfg->n_elements, mean_exp = num->averaging == XRF_AVG_MEAN_EXP;
    double norm = 1.0 / (num->n_theta * num->n_phi);
    double *restrict total = scratch + (size_t)n * width, *restrict beam = total + width, *clipped = beam + width;
    for (int c = 0; c < n; c++) {
        double *restrict afl = scratch + (size_t)c * width;
        for (int x = x0; x < x1; x++) afl[x] = 0;
        for (int t = 0; t < num->n_theta; t++) {
            const double *line_depth = lines->a[c][t];
            int lo = lines->lo[t], hi = lines->hi[t];
            clipped_depths(lines, c, t, clipped);
            for (int k = 0; k < cfg->n_distinct[t]; k++) {
                double weight = cfg->distinct_weight[t][k];
                int count = cfg->distinct_count[t][k];
                add_exit_terms(afl, line_depth, x0, lo, weight, count, mean_exp);
                add_exit_terms(afl, clipped, lo, hi, weight, count, mean_exp);
                add_exit_terms(afl, line_depth, hi, x1, weight, count, mean_exp);
            }
        }
        /* Kept as 1 / A_FL: the yields and the corrected counts below multiply by it. */
        if (mean_exp)
            for (int x = x0; x < x1; x++) afl[x] = 1 / (afl[x] * norm);
        else
            for (int x = x0; x < x1; x++) afl[x] = 1 / vector_exp(-afl[x] * norm);
    }
    /* Yields corrected for the exit, and their sum; the beam and I0 are common to a pixel's elements and cancel
     * from the fractions, which split the measured share in proportion to the yields. */
    for (int x = x0; x < x1; x++) total[x] = 0;
    for (int c = 0; c < n; c++) {
        const double *restrict inverse_afl = scratch + (size_t)c * width, *restrict counts = counts_row[c];
        double *restrict yield = fractions_row[c], inverse_sensitivity = 1.0 / cfg->element[c].sensitivity;
        for (int x = x0; x < x1; x++) {
            yield[x] = counts[x] * inverse_sensitivity * inverse_afl[x];
            total[x] += yield[x];
        }
    }
    double measured_share = 1 - cfg->matrix_total;
    for (int x = x0; x < x1; x++) total[x] = total[x] > 0 ? measured_share / total[x] : 0;
    for (int c = 0; c < n; c++) {
        double *restrict w = fractions_row[c];
        for (int x = x0; x < x1; x++) w[x] *= total[x];
    }
    /* Density (fixed or volume-additive) times pixel length, 0 for an empty pixel: into total. */
    double matrix_inverse_density = 0, matrix_mu[1 + XRF_MAX_ELEMENTS];
    for (int m = 0; m < cfg->n_matrix; m++) matrix_inverse_density += cfg->matrix[m].fraction / cfg->matrix[m].density;
    for (int k = 0; k <= n; k++) {
        matrix_mu[k] = 0;
        for (int m = 0; m < cfg->n_matrix; m++) matrix_mu[k] += cfg->matrix[m].fraction * cfg->mu_mass[n + m][k];
    }
    double *restrict measured = beam;   /* beam is free until the depths below */
    for (int x = x0; x < x1; x++) {
        measured[x] = 0;
        total[x] = matrix_inverse_density;
    }
    for (int c = 0; c < n; c++) {
        const double *restrict w = fractions_row[c];
        double inverse_density = 1.0 / cfg->element[c].density;
        for (int x = x0; x < x1; x++) {
            measured[x] += w[x];
            total[x] += w[x] * inverse_density;
        }
    }
    double length_cm = cfg->pixel_um * 1e-4, fixed_density = cfg->density;
    for (int x = x0; x < x1; x++) {
        double rho = fixed_density > 0 ? fixed_density : 1 / total[x];
        total[x] = measured[x] > 0 ? rho * length_cm : 0;
    }
    /* Depths at every energy: the beam (into beam[]) and each element's line. */
    for (int k = 0; k <= n; k++) {
        double *restrict depth = k == 0 ? beam : depth_row[k - 1];
        for (int x = x0; x < x1; x++) depth[x] = matrix_mu[k];
        for (int c = 0; c < n; c++) {
            const double *restrict w = fractions_row[c];
            double mu = cfg->mu_mass[c][k];
            for (int x = x0; x < x1; x++) depth[x] += w[x] * mu;
        }
        for (int x = x0; x < x1; x++) depth[x] *= total[x];
    }
    double voxel_per_pixel = (cfg->thickness_um / cfg->depth_voxels) / cfg->pixel_um, voxels = cfg->depth_voxels;
    for (int x = x0; x < x1; x++) {
        double a = beam[x] * voxel_per_pixel;
        beam[x] = a < 1e-300 ? 1.0 : voxels * vector_expm1(-a) / vector_expm1(-voxels * a);   /* 1 / beam factor */
    }
    for (int c = 0; c < n; c++) {
        const double *restrict inverse_afl = scratch + (size_t)c * width, *restrict counts = counts_row[c];
        double *restrict corrected = corrected_row[c];
        for (int x = x0; x < x1; x++) corrected[x] = counts[x] * inverse_afl[x] * beam[x];
    }
}

/* The span solver's scratch: the exit depths of every line (n_elements * n_theta rows; only the per-pixel solver
 * uses them), the crossings (n_theta) and a zero row, the row's depths (n_elements), and solve_row_excluded's
 * (n_elements + 3). */
size_t xrf_span_scratch_size(const xrf_config *cfg, int width)
{
    return ((size_t)cfg->n_elements * cfg->num.n_theta + cfg->num.n_theta + 2 * cfg->n_elements + 4) * width;
}

void xrf_solve_span(const xrf_config *cfg, int width, int height, int y, int x0, int x1,
                    const double *const *counts_row, const double *i0_row, double *exit_state, int at_edge,
                    double *const *corrected_row, double *const *fractions_row, double *span_scratch)
{
    int n = cfg->n_elements;
    double *tau = span_scratch, *zeros = tau + (size_t)n * cfg->num.n_theta * width, *crossing = zeros + width;
    double *depths = crossing + (size_t)cfg->num.n_theta * width, *scratch = depths + (size_t)n * width;
    double *depth_row[XRF_MAX_ELEMENTS];
    for (int c = 0; c < n; c++) depth_row[c] = depths + (size_t)c * width;
    if (cfg->num.source_voxel == XRF_SOURCE_EXCLUDE) {
        exit_lines lines;
        exit_lines_of_row(cfg, width, height, y, x0, x1, exit_state, at_edge, zeros, crossing, &lines);
        solve_row_excluded(cfg, width, x0, x1, &lines, counts_row, scratch, corrected_row, fractions_row, depth_row);
    } else {
        exit_depths(cfg, width, height, y, x0, x1, exit_state, at_edge, tau, zeros);
        planar_pixel pp = {.cfg = cfg, .tau = tau, .width = width};
        for (int x = x0; x < x1; x++) {
            double counts[XRF_MAX_ELEMENTS], w[XRF_MAX_ELEMENTS], depth[1 + XRF_MAX_ELEMENTS];
            double factor[XRF_MAX_ELEMENTS];
            pp.x = x;
            for (int c = 0; c < n; c++) counts[c] = counts_row[c][x];
            solve_pixel(cfg, counts, i0_row[x], planar_factor, &pp, w, depth, factor);
            for (int c = 0; c < n; c++) {
                corrected_row[c][x] = counts[c] / factor[c];
                fractions_row[c][x] = w[c];
                depth_row[c][x] = depth[1 + c];
            }
        }
    }
    int j0, j1;
    state_columns(cfg, width, x0, x1, &j0, &j1);
    store_row_state(cfg, width, height, y, j0, j1, (const double *const *)depth_row, at_edge, exit_state);
}

void xrf_exit_state_row(const xrf_config *cfg, int width, int height, int y, const double *const *fractions_row,
                        double *exit_state, int at_edge)
{
    int n = cfg->n_elements;
    double *depths = xmalloc((size_t)n * width * sizeof *depths), *depth_row[XRF_MAX_ELEMENTS];
    for (int c = 0; c < n; c++) depth_row[c] = depths + (size_t)c * width;
    for (int x = 0; x < width; x++) {
        double w[XRF_MAX_ELEMENTS] = {0}, depth[1 + XRF_MAX_ELEMENTS];
        for (int c = 0; c < n; c++) w[c] = fractions_row[c][x];
        pixel_depths(cfg, w, depth);
        for (int c = 0; c < n; c++) depth_row[c][x] = depth[1 + c];
    }
    store_row_state(cfg, width, height, y, -cfg->ghost_columns, width + cfg->ghost_columns,
                    (const double *const *)depth_row, at_edge, exit_state);
    free(depths);
}

/* ---- Face escape: depth-resolved exit factors, paths summed ray by ray ---- */

size_t xrf_depth_map_size(const xrf_config *cfg, int width, int height)
{
    return (size_t)cfg->n_elements * width * height;
}

void xrf_depth_row(const xrf_config *cfg, int width, int height, int y, const double *const *fractions_row,
                   double *depth_write)
{
    for (int x = 0; x < width; x++) {
        double w[XRF_MAX_ELEMENTS], depth[1 + XRF_MAX_ELEMENTS];
        for (int c = 0; c < cfg->n_elements; c++) w[c] = fractions_row[c][x];
        pixel_depths(cfg, w, depth);
        for (int c = 0; c < cfg->n_elements; c++)
            depth_write[(size_t)c * width * height + (size_t)y * width + x] = depth[1 + c];
    }
}

/* prefix[k]: optical depth (unit path weight) over the first k rows crossed from (x, y) along slope s, with
 * `depth(row, i)` the per-pixel-length depth of pixel i of a row (0 outside the map). Returns the rows available. */
typedef double (*row_depth_fn)(const void *ctx, int row, int i, double z_um);

static int ray_prefix(int width, int height, int x, int y, double slope, double z0_um, double z_step_um,
                      row_depth_fn depth, const void *ctx, double *prefix)
{
    int rows = height - 1 - y;
    prefix[0] = 0;
    for (int k = 1; k <= rows; k++) {
        double u = x + k * slope, z = z0_um + k * z_step_um;
        int i = (int)floor(u);
        double f = u - i;
        double lo = i >= 0 && i < width ? depth(ctx, y + k, i, z) : 0;
        double hi = i + 1 >= 0 && i + 1 < width ? depth(ctx, y + k, i + 1, z) : 0;
        prefix[k] = prefix[k - 1] + (1 - f) * lo + f * hi;
    }
    return rows;
}

/* Rows an exit ray from depth z crosses before it leaves the slab through a face (HUGE_VAL: it never does). The
 * ray leaves its own pixel half a row from the source. */
static double rows_before_escape(const xrf_config *cfg, double z_um, double z_step_um)
{
    double to_face = z_step_um > 0 ? (cfg->thickness_um - z_um) / z_step_um
                   : z_step_um < 0 ? z_um / -z_step_um : HUGE_VAL;
    return to_face > 0.5 ? to_face - 0.5 : 0;
}

static double prefix_at(const double *prefix, int rows, double k_rows)
{
    if (k_rows >= rows) return prefix[rows];
    int k = (int)k_rows;
    return prefix[k] + (k_rows - k) * (prefix[k + 1] - prefix[k]);
}

/* Exit factor for a source at depth z_um: the cone average with each ray cut where it leaves the slab. prefix holds
 * n_theta rays of (rows + 1) values; when `per_phi` is set each (theta, phi) has its own ray (3D phantoms). */
static double escape_exit_factor(const xrf_config *cfg, const double *prefix, int rows, int per_phi, double z_um,
                                 double self)
{
    const xrf_numerics *num = &cfg->num;
    double sum = 0;
    for (int t = 0; t < num->n_theta; t++)
        for (int p = 0; p < num->n_phi; p++) {
            const double *ray = prefix + (size_t)(per_phi ? t * num->n_phi + p : t) * (rows + 1);
            double d = cfg->path_weight[t][p] *
                       (prefix_at(ray, rows, rows_before_escape(cfg, z_um, cfg->z_step_um[t][p])) + self);
            sum += num->averaging == XRF_AVG_MEAN_EXP ? exp(-d) : d;
        }
    sum /= num->n_theta * num->n_phi;
    return num->averaging == XRF_AVG_MEAN_EXP ? sum : exp(-sum);
}

typedef struct depth_map_view {
    const double *map;         /* one element line: height * width */
    int width;
} depth_map_view;

static double depth_from_map(const void *ctx, int row, int i, double z_um)
{
    (void)z_um;   /* uniform along the beam */
    const depth_map_view *v = ctx;
    return v->map[(size_t)row * v->width + i];
}

static double voxel_depth_um(const xrf_config *cfg) { return cfg->thickness_um / cfg->depth_voxels; }

/* A_FL(n) of element c at every depth voxel n, for a pixel of uniform composition whose rays are summed. */
static void escape_exit_profile(const xrf_config *cfg, const double *prefix_c, int rows, double self, double *afl)
{
    double dz = voxel_depth_um(cfg);
    for (int n = 0; n < cfg->depth_voxels; n++) afl[n] = escape_exit_factor(cfg, prefix_c, rows, 0, (n + 0.5) * dz, self);
}

/* (1/N) sum_n exp(-n a) A_FL(n) of every element for a pixel of uniform composition. afl holds depth_voxels exit
 * factors per element; with the source voxel counted they depend on the pixel's own depths and are recomputed. */
static void escape_factors(const xrf_config *cfg, const double *const *prefix, int rows, const double *depth,
                           double *afl, double *factor)
{
    int n_vox = cfg->depth_voxels;
    double a = voxel_beam_depth(cfg, depth[0]);
    for (int c = 0; c < cfg->n_elements; c++) {
        double *profile = afl + (size_t)c * n_vox;
        if (cfg->num.source_voxel == XRF_SOURCE_HALF) escape_exit_profile(cfg, prefix[c], rows, 0.5 * depth[1 + c], profile);
        double sum = 0, beam = 1, step = exp(-a);
        for (int n = 0; n < n_vox; n++, beam *= step) sum += beam * profile[n];
        factor[c] = sum / n_vox;
    }
}

/* Rays of every element and direction from pixel x of row y through the depth map; prefix[c] points at n_theta
 * rays of rows + 1 values in buffer. Without the source voxel the exit profile follows once and for all. */
static void escape_rays(const xrf_config *cfg, int width, int height, int x, int y, const double *depth_map,
                        double *buffer, const double **prefix, double *afl)
{
    int rows = height - 1 - y;
    size_t ray = (size_t)cfg->num.n_theta * (rows + 1);
    for (int c = 0; c < cfg->n_elements; c++) {
        depth_map_view v = {depth_map + (size_t)c * width * height, width};
        for (int t = 0; t < cfg->num.n_theta; t++)
            ray_prefix(width, height, x, y, cfg->theta_slope[t], 0, 0, depth_from_map, &v,
                       buffer + c * ray + t * (rows + 1));
        prefix[c] = buffer + c * ray;
        if (cfg->num.source_voxel == XRF_SOURCE_EXCLUDE)
            escape_exit_profile(cfg, prefix[c], rows, 0, afl + (size_t)c * cfg->depth_voxels);
    }
}

typedef struct escape_pixel {
    const xrf_config *cfg;
    const double *const *prefix;
    int rows;
    double *afl;
} escape_pixel;

static void escape_factor(const void *ctx, const double *depth, double *factor)
{
    const escape_pixel *ep = ctx;
    escape_factors(ep->cfg, ep->prefix, ep->rows, depth, ep->afl, factor);
}

void xrf_solve_span_escape(const xrf_config *cfg, int width, int height, int y, int x0, int x1,
                           const double *const *counts_row, const double *i0_row, const double *depth_read,
                           double *depth_write, double *const *corrected_row, double *const *fractions_row)
{
    int n = cfg->n_elements, rows = height - 1 - y;
    double *buffer = xmalloc((size_t)n * cfg->num.n_theta * (rows + 1) * sizeof *buffer);
    double *afl = xmalloc((size_t)n * cfg->depth_voxels * sizeof *afl);
    const double *prefix[XRF_MAX_ELEMENTS];
    escape_pixel ep = {cfg, prefix, rows, afl};
    for (int x = x0; x < x1; x++) {
        double counts[XRF_MAX_ELEMENTS], w[XRF_MAX_ELEMENTS], depth[1 + XRF_MAX_ELEMENTS], factor[XRF_MAX_ELEMENTS];
        escape_rays(cfg, width, height, x, y, depth_read, buffer, prefix, afl);
        for (int c = 0; c < n; c++) counts[c] = counts_row[c][x];
        solve_pixel(cfg, counts, i0_row[x], escape_factor, &ep, w, depth, factor);
        for (int c = 0; c < n; c++) {
            corrected_row[c][x] = counts[c] / factor[c];
            fractions_row[c][x] = w[c];
            depth_write[(size_t)c * width * height + (size_t)y * width + x] = depth[1 + c];
        }
    }
    free(buffer);
    free(afl);
}

/* A 3D phantom's depths per slice: map[(c * slices + s) * plane + p] at the line of element c. */
typedef struct slice_view {
    const xrf_config *cfg;
    const double *map;
    int width, slices;
    size_t plane;
    int element;
} slice_view;

static double depth_from_slices(const void *ctx, int row, int i, double z_um)
{
    const slice_view *v = ctx;
    int s = v->slices == 1 ? 0 : (int)floor(z_um / voxel_depth_um(v->cfg));
    s = s < 0 ? 0 : s >= v->slices ? v->slices - 1 : s;
    return v->map[((size_t)v->element * v->slices + s) * v->plane + (size_t)row * v->width + i];
}

/* Forward model with face escape: every voxel's rays are summed through the phantom's slices. */
static void forward_escape(const xrf_config *cfg, int width, int height, int slices, const double *const *fractions,
                           const double *i0, xrf_maps *detected)
{
    int n = cfg->n_elements, n_dirs = cfg->num.n_theta * cfg->num.n_phi;
    size_t plane = (size_t)width * height;
    double *line_depth = xmalloc((size_t)n * slices * plane * sizeof *line_depth);
    double *beam_depth = xmalloc((size_t)slices * plane * sizeof *beam_depth);
    for (int s = 0; s < slices; s++)
        for (size_t p = 0; p < plane; p++) {
            double w[XRF_MAX_ELEMENTS], depth[1 + XRF_MAX_ELEMENTS];
            for (int c = 0; c < n; c++) w[c] = fractions[c][(size_t)s * plane + p];
            pixel_depths(cfg, w, depth);
            beam_depth[(size_t)s * plane + p] = voxel_beam_depth(cfg, depth[0]);
            for (int c = 0; c < n; c++) line_depth[((size_t)c * slices + s) * plane + p] = depth[1 + c];
        }
    double *prefix = xmalloc((size_t)n * n_dirs * height * sizeof *prefix);
    double *afl = xmalloc((size_t)n * cfg->depth_voxels * sizeof *afl);
    double dz = voxel_depth_um(cfg), half = cfg->num.source_voxel == XRF_SOURCE_HALF ? 0.5 : 0;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            size_t p = (size_t)y * width + x;
            int rows = height - 1 - y;
            if (slices == 1) {
                /* Uniform along the beam: the correction's own computation, run forward. */
                const double *rays[XRF_MAX_ELEMENTS];
                double w[XRF_MAX_ELEMENTS], depth[1 + XRF_MAX_ELEMENTS], factor[XRF_MAX_ELEMENTS];
                escape_rays(cfg, width, height, x, y, line_depth, prefix, rays, afl);
                for (int c = 0; c < n; c++) w[c] = fractions[c][p];
                pixel_depths(cfg, w, depth);
                escape_factors(cfg, rays, rows, depth, afl, factor);
                for (int c = 0; c < n; c++)
                    detected->map[c][p] = i0[p] * cfg->element[c].sensitivity * w[c] * factor[c];
                continue;
            }
            double beam_above = 0;
            for (int v = 0; v < slices; v++) {
                double z = (v + 0.5) * dz;
                for (int c = 0; c < n; c++) {
                    slice_view view = {cfg, line_depth, width, slices, plane, c};
                    for (int t = 0; t < cfg->num.n_theta; t++)
                        for (int q = 0; q < cfg->num.n_phi; q++)
                            ray_prefix(width, height, x, y, cfg->theta_slope[t], z, cfg->z_step_um[t][q],
                                       depth_from_slices, &view,
                                       prefix + (size_t)(t * cfg->num.n_phi + q) * (rows + 1));
                    double self = half * line_depth[((size_t)c * slices + v) * plane + p];
                    double exit = escape_exit_factor(cfg, prefix, rows, 1, z, self);
                    detected->map[c][p] += i0[p] * cfg->element[c].sensitivity * fractions[c][(size_t)v * plane + p] *
                                           exp(-beam_above) * exit / slices;
                }
                beam_above += beam_depth[(size_t)v * plane + p];
            }
        }
    free(prefix);
    free(afl);
    free(line_depth);
    free(beam_depth);
}

int xrf_forward(const xrf_config *cfg, int width, int height, int slices, const double *const *fractions,
                const double *i0, xrf_maps *detected, char *err, size_t errlen)
{
    int n = cfg->n_elements;
    if (slices != 1 && slices != cfg->depth_voxels) {
        snprintf(err, errlen, "forward model: %d slices, expected 1 or depth_voxels (%d)", slices,
                 cfg->depth_voxels);
        return -1;
    }
    if (xrf_maps_alloc(detected, width, height, n) < 0) {
        snprintf(err, errlen, "forward model: bad map size %dx%d", width, height);
        return -1;
    }
    for (int c = 0; c < n; c++) memset(detected->map[c], 0, (size_t)width * height * sizeof(double));   /* sums */
    if (cfg->num.faces == XRF_FACES_ESCAPE) {
        forward_escape(cfg, width, height, slices, fractions, i0, detected);
        return 0;
    }
    size_t plane = (size_t)width * height;
    double *tau = xmalloc(((size_t)n * cfg->num.n_theta + cfg->num.n_theta + 1) * width * sizeof *tau);
    double *state = xmalloc(xrf_exit_state_size(cfg, width, height) * sizeof *state);
    double *depths = xmalloc((size_t)n * width * sizeof *depths), *depth_row[XRF_MAX_ELEMENTS];
    for (int c = 0; c < n; c++) depth_row[c] = depths + (size_t)c * width;
    double *beam_depth = xcalloc(plane, sizeof *beam_depth);   /* beam optical depth above the current slice */
    for (int s = 0; s < slices; s++) {
        for (int y = height - 1; y >= 0; y--) {
            int at_edge = y == height - 1;
            exit_depths(cfg, width, height, y, 0, width, state, at_edge, tau, tau + (size_t)n * cfg->num.n_theta * width);
            for (int x = 0; x < width; x++) {
                size_t p = (size_t)y * width + x, v = (size_t)s * plane + p;
                double w[XRF_MAX_ELEMENTS], depth[1 + XRF_MAX_ELEMENTS], afl[XRF_MAX_ELEMENTS];
                for (int c = 0; c < n; c++) w[c] = fractions[c][v];
                pixel_depths(cfg, w, depth);
                exit_factors(cfg, tau, width, x, depth, afl);
                double a = voxel_beam_depth(cfg, depth[0]);
                double beam = slices == 1 ? beam_factor(cfg->depth_voxels, a) : exp(-beam_depth[p]) / slices;
                beam_depth[p] += a;
                for (int c = 0; c < n; c++) {
                    detected->map[c][p] += i0[p] * cfg->element[c].sensitivity * w[c] * beam * afl[c];
                    depth_row[c][x] = depth[1 + c];
                }
            }
            store_row_state(cfg, width, height, y, -cfg->ghost_columns, width + cfg->ghost_columns,
                            (const double *const *)depth_row, at_edge, state);
        }
    }
    free(depths);
    free(tau);
    free(state);
    free(beam_depth);
    return 0;
}
