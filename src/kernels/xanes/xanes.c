/* xanes.c -- per-voxel white-line fits, masks, binning and statistics of XANES stacks (see xanes.h). */
#include "kernels/xanes/xanes.h"
#include "core/base/base.h"
#include "core/parallel/parallel.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEAK_SEARCH_STEPS 64

void xanes_params_default(xanes_params *p)
{
    memset(p, 0, sizeof *p);
    p->order = 2;
    p->half_width = 5.0;
    p->bin[0] = p->bin[1] = p->bin[2] = 1;
    p->mask_mode = XANES_MASK_NONE;
    p->edge_gap = 5.0;
    p->hist_bins = 100;
}

int xanes_params_check(const xanes_params *p, char *err, size_t errlen)
{
    if (p->order < 2 || p->order > XANES_MAX_ORDER) {
        snprintf(err, errlen, "polynomial order %d not supported (2, 3 or 4)", p->order);
        return -1;
    }
    int automatic = p->window_lo == 0 && p->window_hi == 0;
    if (!automatic && !(p->window_hi > p->window_lo)) {
        snprintf(err, errlen, "fit window %g..%g eV is empty", p->window_lo, p->window_hi);
        return -1;
    }
    if (automatic && !(p->half_width > 0)) {
        snprintf(err, errlen, "half width of the automatic window must be positive (got %g eV)", p->half_width);
        return -1;
    }
    for (int i = 0; i < 3; i++)
        if (p->bin[i] < 1) {
            snprintf(err, errlen, "binning factors must be >= 1");
            return -1;
        }
    if (p->hist_bins < 1 || p->hist_bins > 1000000) {
        snprintf(err, errlen, "histogram bins %d out of range 1..1000000", p->hist_bins);
        return -1;
    }
    if (p->mask_mode == XANES_MASK_EDGE_JUMP && !(p->edge_energy > 0)) {
        snprintf(err, errlen, "edge-jump mask needs the edge energy");
        return -1;
    }
    return 0;
}

/* ---- stacks ---- */

void xanes_stack_init(xanes_stack *s, int nx, int ny, int nz)
{
    memset(s, 0, sizeof *s);
    s->nx = nx;
    s->ny = ny;
    s->nz = nz;
}

void xanes_stack_set_aligner(xanes_stack *s, xanes_align_fn fn, void *user)
{
    s->align = fn;
    s->align_user = user;
}

static size_t stack_voxels(const xanes_stack *s)
{
    return (size_t)s->nx * (size_t)s->ny * (size_t)s->nz;
}

int xanes_stack_add(xanes_stack *s, double energy, const float *image, char *err, size_t errlen)
{
    if (!isfinite(energy)) {
        snprintf(err, errlen, "image energy is not a finite number");
        return -1;
    }
    if (s->nx < 1 || s->ny < 1 || s->nz < 1) {
        snprintf(err, errlen, "stack has no voxels (%d x %d x %d)", s->nx, s->ny, s->nz);
        return -1;
    }
    size_t nvox = stack_voxels(s);
    if (s->count == s->capacity) {
        int cap = s->capacity ? 2 * s->capacity : 16;
        s->data = xrealloc(s->data, (size_t)cap * nvox * sizeof(float));
        s->energy = xrealloc(s->energy, (size_t)cap * sizeof(double));
        s->capacity = cap;
    }
    float *slot = s->data + (size_t)s->count * nvox;
    memcpy(slot, image, nvox * sizeof(float));
    if (s->align && s->count > 0 &&
        s->align(s->align_user, s->data, slot, s->nx, s->ny, s->nz, err, errlen) != 0)
        return -1;
    s->energy[s->count++] = energy;
    return 0;
}

int xanes_stack_adopt(xanes_stack *s, int nx, int ny, int nz, int count, double *energy, float *data, char *err,
                      size_t errlen)
{
    const char *why = NULL;
    if (nx < 1 || ny < 1 || nz < 1) why = "stack has no voxels";
    else if (count < 1) why = "stack holds no images (0 energies)";
    for (int k = 0; !why && k < count; k++)
        if (!isfinite(energy[k])) why = "image energy is not a finite number";
    if (why) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    xanes_stack_init(s, nx, ny, nz);
    s->count = s->capacity = count;
    s->energy = energy;
    s->data = data;
    return 0;
}

void xanes_stack_free(xanes_stack *s)
{
    free(s->data);
    free(s->energy);
    memset(s, 0, sizeof *s);
}

/* ---- the least-squares plan: one window, one QR, shared by every voxel ---- */

typedef struct fit_plan {
    int order, ncoef;
    int m;                     /* energies in the window */
    int *index;                /* their indices in the stack, in stack order */
    double *t;                 /* scaled energies */
    double centre, scale;
    double t_lo, t_hi;         /* range of t in the window */
    double *solve;             /* ncoef x m: coefficients = solve * y */
    double *gram;              /* ncoef x ncoef: V^T V, V the m x ncoef matrix of powers of t */
} fit_plan;

static void plan_free(fit_plan *p)
{
    free(p->index);
    free(p->t);
    free(p->solve);
    free(p->gram);
    memset(p, 0, sizeof *p);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The number of different values among energy[index[0..m-1]]. */
static int count_distinct(const double *energy, const int *index, int m)
{
    double *e = xmalloc((size_t)(m ? m : 1) * sizeof(double));
    for (int k = 0; k < m; k++) e[k] = energy[index[k]];
    qsort(e, (size_t)m, sizeof(double), cmp_double);
    int distinct = m > 0;
    for (int k = 1; k < m; k++) distinct += e[k] != e[k - 1];
    free(e);
    return distinct;
}

/* Householder QR of the m x n Vandermonde matrix V, applied to the identity alongside, then R^-1 Q^T. */
static int plan_build(fit_plan *p, const double *energy, int n, int order, double lo, double hi, char *err,
                      size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->order = order;
    p->ncoef = order + 1;
    p->index = xmalloc((size_t)(n ? n : 1) * sizeof(int));
    double emin = INFINITY, emax = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        if (energy[i] >= lo && energy[i] <= hi) {
            p->index[p->m++] = i;
            sum += energy[i];
            if (energy[i] < emin) emin = energy[i];
            if (energy[i] > emax) emax = energy[i];
        }
    int distinct = count_distinct(energy, p->index, p->m);
    if (distinct < order + 2) {
        if (distinct < p->m)
            snprintf(err, errlen, "fit window %.2f..%.2f eV holds %d energies but only %d distinct; order %d needs "
                     "at least %d distinct", lo, hi, p->m, distinct, order, order + 2);
        else
            snprintf(err, errlen, "fit window %.2f..%.2f eV holds %d energies; order %d needs at least %d", lo, hi,
                     p->m, order, order + 2);
        plan_free(p);
        return -1;
    }
    int m = p->m, nc = p->ncoef;
    p->centre = sum / m;
    p->scale = fmax(emax - p->centre, p->centre - emin);
    p->t = xmalloc((size_t)m * sizeof(double));
    for (int k = 0; k < m; k++) p->t[k] = (energy[p->index[k]] - p->centre) / p->scale;
    p->t_lo = (emin - p->centre) / p->scale;
    p->t_hi = (emax - p->centre) / p->scale;

    /* A = [V | I], m x (nc + m), column-major for the reflections. */
    int cols = nc + m;
    double *a = xcalloc((size_t)m * (size_t)cols, sizeof(double));
#define A(r, c) a[(size_t)(c) * (size_t)m + (size_t)(r)]
    for (int k = 0; k < m; k++) {
        double v = 1;
        for (int j = 0; j < nc; j++, v *= p->t[k]) A(k, j) = v;
        A(k, nc + k) = 1;
    }
    double *h = xmalloc((size_t)m * sizeof(double));
    int rank_ok = 1;
    for (int j = 0; j < nc; j++) {
        double norm = 0;
        for (int r = j; r < m; r++) norm += A(r, j) * A(r, j);
        norm = sqrt(norm);
        if (norm == 0) { rank_ok = 0; break; }
        double alpha = A(j, j) > 0 ? -norm : norm;
        for (int r = j; r < m; r++) h[r] = A(r, j);
        h[j] -= alpha;
        double hh = 0;
        for (int r = j; r < m; r++) hh += h[r] * h[r];
        if (hh == 0) continue;
        for (int c = j; c < cols; c++) {
            double dot = 0;
            for (int r = j; r < m; r++) dot += h[r] * A(r, c);
            double f = 2 * dot / hh;
            for (int r = j; r < m; r++) A(r, c) -= f * h[r];
        }
    }
    /* Rank check relative to the largest diagonal entry of R. */
    double rmax = 0;
    for (int j = 0; rank_ok && j < nc; j++) rmax = fmax(rmax, fabs(A(j, j)));
    for (int j = 0; rank_ok && j < nc; j++)
        if (fabs(A(j, j)) <= 1e-12 * rmax) rank_ok = 0;
    if (!rank_ok) {
        free(h);
        free(a);
        snprintf(err, errlen, "fit window %.2f..%.2f eV: energies too few or repeated for order %d", lo, hi, order);
        plan_free(p);
        return -1;
    }
    p->gram = xcalloc((size_t)nc * (size_t)nc, sizeof(double));
    for (int i = 0; i < nc; i++)
        for (int j = 0; j < nc; j++)
            for (int k = 0; k < m; k++) p->gram[i * nc + j] += pow(p->t[k], i + j);
    p->solve = xmalloc((size_t)nc * (size_t)m * sizeof(double));
    for (int k = 0; k < m; k++) /* back substitution for column k of Q^T */
        for (int j = nc - 1; j >= 0; j--) {
            double v = A(j, nc + k);
            for (int i = j + 1; i < nc; i++) v -= A(j, i) * p->solve[(size_t)i * m + k];
            p->solve[(size_t)j * m + k] = v / A(j, j);
        }
#undef A
    free(h);
    free(a);
    return 0;
}

static double poly_eval(const double *c, int nc, double t)
{
    double v = 0;
    for (int j = nc - 1; j >= 0; j--) v = v * t + c[j];
    return v;
}

static double poly_deriv(const double *c, int nc, double t)
{
    double v = 0;
    for (int j = nc - 1; j >= 1; j--) v = v * t + j * c[j];
    return v;
}

/* Highest local maximum of the polynomial strictly inside (lo, hi); returns 0 and *t_peak, or -1 if none. */
static int poly_peak(const double *c, int nc, double lo, double hi, double *t_peak)
{
    if (nc == 3) {
        if (!(c[2] < 0)) return -1;
        double t = -c[1] / (2 * c[2]);
        if (!(t > lo && t < hi)) return -1;
        *t_peak = t;
        return 0;
    }
    /* Orders 3 and 4: the derivative has at most 3 roots, so a grid of 64 steps brackets every sign change
     * from + to - unless two maxima lie within one step; bisection then refines each to machine precision. */
    int found = 0;
    double best = -INFINITY, step = (hi - lo) / PEAK_SEARCH_STEPS;
    double a = lo, da = poly_deriv(c, nc, lo);
    for (int i = 1; i <= PEAK_SEARCH_STEPS; i++) {
        double b = i == PEAK_SEARCH_STEPS ? hi : lo + i * step, db = poly_deriv(c, nc, b);
        if (da > 0 && db <= 0) {
            double x0 = a, x1 = b;
            for (int it = 0; it < 60 && x1 - x0 > 1e-14; it++) {
                double mid = 0.5 * (x0 + x1);
                if (poly_deriv(c, nc, mid) > 0) x0 = mid; else x1 = mid;
            }
            double t = 0.5 * (x0 + x1), v = poly_eval(c, nc, t);
            if (t > lo && t < hi && v > best) {
                best = v;
                *t_peak = t;
                found = 1;
            }
        }
        a = b;
        da = db;
    }
    return found ? 0 : -1;
}

/* ---- the fit of a block of voxels: one pass over the samples into per-column sums ---- */

/* Voxels handled together: BLOCK contiguous columns of the stack. Each sample is read once, straight from the
 * stack, into double sums per column: for the fit the window samples' sum, sum of squares and the coefficients
 * solve * y (the pseudo-inverse times the samples); for the mask the sums over all, pre-edge and post-edge
 * energies. The residual sum of squares follows without a second pass: the fit is a projection, so
 * RSS = sum y^2 - |V c|^2 with |V c|^2 = c^T (V^T V) c. Loops over a block run over contiguous columns the
 * compiler vectorises (O3 and no-trapping-math, so that the selects stay branch-free). */
enum { BLOCK = 128 };

/* The block loops are compiled for AVX-512, AVX2 + FMA and baseline x86-64, and the loader picks the best the
 * CPU runs (the release build targets baseline x86-64, whose 2-wide vectors halve the speed of these loops). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "no-trapping-math")
#endif

typedef struct block_sums {
    double coef[XANES_MAX_ORDER + 1][BLOCK];      /* solve * window samples */
    double sum[BLOCK], sum2[BLOCK];               /* window samples, their squares */
    double total[BLOCK], pre[BLOCK], post[BLOCK]; /* all, pre-edge and post-edge samples (mask pass) */
    /* filled by finish_block */
    double peak[BLOCK], rmse[BLOCK], r2[BLOCK], adj_r2[BLOCK];
    unsigned char status[BLOCK];
    double *row_lanes;         /* per stack energy: its samples over the block in 8 lanes, lane l the columns l,
                                * l + 8, ... (mask pass; lanes_total adds them up) */
} block_sums;

/* RMSE, R^2, adjusted R^2, the peak and the status of nb columns from their fit sums. */
RELOC_AVX512_AVX2_CLONES static void finish_block(const fit_plan *p, block_sums *s, int nb)
{
    const int m = p->m, nc = p->ncoef;
    const double dof = m - nc, t_lo = p->t_lo, t_hi = p->t_hi, centre = p->centre, scale = p->scale;
    double fitted[BLOCK] = {0}; /* |V c|^2 = c^T G c */
    for (int i = 0; i < nc; i++)
        for (int k = 0; k < nc; k++) {
            const double g = p->gram[i * nc + k];
            const double *restrict ci = s->coef[i], *restrict ck = s->coef[k];
            for (int b = 0; b < nb; b++) fitted[b] += g * ci[b] * ck[b];
        }
    const double *restrict sum = s->sum, *restrict sum2 = s->sum2;
    double *restrict rmse = s->rmse, *restrict r2 = s->r2, *restrict adj = s->adj_r2, *restrict peak = s->peak;
    unsigned char *restrict status = s->status;
    const double adj_factor = dof > 0 ? (m - 1) / dof : NAN;
    for (int b = 0; b < nb; b++) { /* selects only, so that the loop vectorises */
        const double rss = sum2[b] - fitted[b], tss = sum2[b] - sum[b] * sum[b] / m;
        const int bad = !(rss - rss == 0);            /* not finite: a non-finite sample in the window */
        const double clamped = rss < 0 ? 0 : rss;     /* rounding of an exact fit */
        double q = 1 - clamped / tss;
        q = tss > 0 ? q : NAN;
        q = bad ? NAN : q;
        rmse[b] = bad ? NAN : sqrt(clamped / m); /* one instruction: the Makefile builds this file without errno */
        r2[b] = q;
        adj[b] = 1 - (1 - q) * adj_factor;
        status[b] = bad ? XANES_BAD_DATA : XANES_NO_PEAK;
    }
    if (nc == 3) { /* the vertex of the parabola */
        const double *restrict c1 = s->coef[1], *restrict c2 = s->coef[2];
        for (int b = 0; b < nb; b++) {
            double t = -c1[b] / (2 * c2[b]);
            int ok = c2[b] < 0 && t > t_lo && t < t_hi && status[b] != XANES_BAD_DATA;
            peak[b] = ok ? centre + scale * t : NAN;
            status[b] = ok ? XANES_OK : status[b];
        }
    } else {
        for (int b = 0; b < nb; b++) {
            double c[XANES_MAX_ORDER + 1], t;
            for (int j = 0; j < nc; j++) c[j] = s->coef[j][b];
            int ok = status[b] != XANES_BAD_DATA && poly_peak(c, nc, t_lo, t_hi, &t) == 0;
            peak[b] = ok ? centre + scale * t : NAN;
            status[b] = ok ? XANES_OK : status[b];
        }
    }
}

int xanes_fit_spectrum(const double *energy, const double *mu, int n, int order, double lo, double hi,
                       xanes_fit *out, char *err, size_t errlen)
{
    if (order < 2 || order > XANES_MAX_ORDER) {
        snprintf(err, errlen, "polynomial order %d not supported (2, 3 or 4)", order);
        return -1;
    }
    fit_plan p;
    if (plan_build(&p, energy, n, order, lo, hi, err, errlen) != 0) return -1;
    block_sums *s = xcalloc(1, sizeof *s);
    for (int kk = 0; kk < p.m; kk++) { /* in double: a summed spectrum needs more digits than a float */
        double v = mu[p.index[kk]];
        s->sum[0] += v;
        s->sum2[0] += v * v;
        for (int c = 0; c < p.ncoef; c++) s->coef[c][0] += p.solve[(size_t)c * p.m + kk] * v;
    }
    finish_block(&p, s, 1);
    memset(out, 0, sizeof *out);
    out->centre = p.centre;
    out->scale = p.scale;
    out->status = s->status[0];
    out->peak_energy = s->peak[0];
    out->rmse = s->rmse[0];
    out->r2 = s->r2[0];
    out->adj_r2 = s->adj_r2[0];
    for (int c = 0; c < p.ncoef; c++) out->coef[c] = s->coef[c][0];
    out->peak_value = out->status == XANES_OK ? poly_eval(out->coef, p.ncoef, (out->peak_energy - p.centre) / p.scale)
                                              : NAN;
    free(s);
    plan_free(&p);
    return 0;
}

/* ---- binning ---- */

/* Returns the stack's data, or (binned) a new array of block means with its dimensions in dims. */
static float *bin_stack(const xanes_stack *s, const int bin[3], int dims[3])
{
    dims[0] = (s->nx + bin[0] - 1) / bin[0];
    dims[1] = (s->ny + bin[1] - 1) / bin[1];
    dims[2] = (s->nz + bin[2] - 1) / bin[2];
    if (bin[0] == 1 && bin[1] == 1 && bin[2] == 1) return s->data;
    size_t nout = (size_t)dims[0] * dims[1] * dims[2], nin = stack_voxels(s);
    float *out = xmalloc_large((size_t)s->count * nout * sizeof(float));
    unsigned *cnt = xcalloc(nout, sizeof(unsigned));
    double *acc = xmalloc_large(nout * sizeof(double));   /* one image's block sums, reused for every image */
    for (int z = 0; z < s->nz; z++)
        for (int y = 0; y < s->ny; y++)
            for (int x = 0; x < s->nx; x++)
                cnt[((size_t)(z / bin[2]) * dims[1] + y / bin[1]) * dims[0] + x / bin[0]]++;
    for (int k = 0; k < s->count; k++) {
        const float *src = s->data + (size_t)k * nin;
        float *dst = out + (size_t)k * nout;
        memset(acc, 0, nout * sizeof(double));
        for (int z = 0; z < s->nz; z++)
            for (int y = 0; y < s->ny; y++) {
                const float *row = src + ((size_t)z * s->ny + y) * s->nx;
                double *arow = acc + ((size_t)(z / bin[2]) * dims[1] + y / bin[1]) * dims[0];
                for (int x = 0; x < s->nx; x++) arow[x / bin[0]] += row[x];
            }
        for (size_t v = 0; v < nout; v++) dst[v] = (float)(acc[v] / cnt[v]);
    }
    free(acc);
    free(cnt);
    return out;
}

/* ---- the analysis: blocks of voxels, each sample read once from the stack ---- */

typedef struct job {
    const float *data;         /* count images of nvox (binned) voxels */
    size_t nvox;
    int count;
    const double *energy;
    const xanes_params *params;
    xanes_result *r;
    int mask_pass;             /* compute mean, edge jump, mask and summed spectrum */
    int blocks;                /* of BLOCK voxels (the last one may be short) */
    const fit_plan *plan;      /* NULL: no fit in this pass */
    double *block_spectra;     /* blocks x count: each block's part of the summed spectrum (mask pass) */
    block_sums *sums;          /* one per worker */
    struct block_stats *stats; /* one per block (fit pass) */
    long *hist;                /* workers x hist_bins: each worker's histogram (fit pass) */
} job;

/* A block's part of the statistics: voxels per status, and the sum and sum of squares of the XANES_OK voxels' peak
 * energies measured from the histogram's low end (within the window, so the variance keeps its digits). */
typedef struct block_stats {
    long n[4];
    double sum, sum2;
} block_stats;

/* Mean absorption and edge jump of voxel v over its finite samples only; adds them to the block's part of the
 * summed spectrum when the voxel is kept. */
static void finite_stats(const job *j, size_t v, int kept, double *spectrum, double *mean, double *jump)
{
    const xanes_params *p = j->params;
    double total = 0, pre = 0, post = 0;
    int n = 0, npre = 0, npost = 0;
    for (int k = 0; k < j->count; k++) {
        double y = j->data[(size_t)k * j->nvox + v], e = j->energy[k];
        if (!isfinite(y)) continue;
        if (kept) spectrum[k] += y;
        total += y;
        n++;
        if (e <= p->edge_energy - p->edge_gap) { pre += y; npre++; }
        if (e >= p->edge_energy + p->edge_gap) { post += y; npost++; }
    }
    *mean = n ? total / n : NAN;
    *jump = npre && npost ? post / npost - pre / npre : NAN;
}

/* Columns as one vector: every sum of a few columns stays in registers while their samples of all energies go by.
 * Adding row by row into per-column arrays instead cost a load and a store of every sum at every sample and held
 * the loop to the store port. Two widths (GCC's vector extensions): where the CPU has AVX-512, eight doubles (one
 * register), sixteen columns at a time; elsewhere four doubles (one AVX2 register), eight columns at a time: two
 * vectors of each sum, with up to nc + 2 sums in a loop (sum_chunk_*): 12 of the 16 AVX2 registers for orders 2 and
 * 3, while order 4 spills one. Eight-double vectors on AVX2 spilled and the compiler moved their halves through the
 * stack: 3-4x slower on an AMD EPYC (Zen 3) than these. The sums do not depend on the width. */
typedef double chunk_d __attribute__((vector_size(8 * sizeof(double))));
typedef double quad_d __attribute__((vector_size(4 * sizeof(double))));
enum { CHUNK = 8, QUAD = 4, LINE_FLOATS = 64 / sizeof(float) };

/* The rows of the next block that a row of this one is read with, once per line: 40 rows far apart defeat the
 * hardware prefetcher. */
static inline __attribute__((always_inline)) void prefetch_next_block(const float *y, int columns)
{
    for (int h = 0; h < columns; h += LINE_FLOATS) __builtin_prefetch(y + BLOCK + h);
}

/* load_##VEC: n columns of one energy's samples (n <= w vectors of LANES columns) as w vectors of doubles; a vector
 * cut short by the block's end is padded with zeros.
 * sum_chunk_##VEC: the sums of those columns from c0 (a multiple of CHUNK; w and nc constants where inlined) over
 * every energy (the mask
 * pass's total, pre-edge, post-edge and row sums) and over the window's (the fit's, nc coefficients): two loops over
 * the rows, the second reading the window's rows again from L1, so that each loop's sums stay in registers (all 16
 * in one loop spilled two of them to the stack, through which they were added at every row). Each column's sums add
 * its samples in energy order, and lane l of row_lanes[k] adds the samples of the columns l, l + CHUNK, ... in
 * column order (a chunk cut short by the block's end, into lane 0 one by one), so the sums are those of a row-by-row
 * pass. */
#define DEFINE_SUM_CHUNK(VEC, LANES, LOAD)                                                                           \
    static inline __attribute__((always_inline)) void load_##VEC(const float *y, int n, int w, VEC *v)               \
    {                                                                                                               \
        for (int h = 0; h < w; h++) {                                                                               \
            if (n - h * LANES >= LANES) {                                                                           \
                v[h] = LOAD(y + h * LANES);                                                                         \
            } else {                                                                                                \
                v[h] = (VEC){0};                                                                                    \
                for (int l = 0; l < n - h * LANES; l++) v[h][l] = y[h * LANES + l];                                 \
            }                                                                                                       \
        }                                                                                                           \
    }                                                                                                               \
    static inline __attribute__((always_inline)) void sum_chunk_##VEC(const job *j, size_t v0, int c0, int n, int w, \
                                                                       int nc, block_sums *restrict s)              \
    {                                                                                                               \
        const fit_plan *plan = j->plan;                                                                             \
        const float *data = j->data + v0 + c0;                                                                      \
        const size_t nvox = j->nvox;                                                                                \
        const int count = j->count, mask_pass = j->mask_pass;                                                       \
        const double *energy = j->energy;                                                                           \
        double *row_lanes = s->row_lanes;                                                                           \
        const double pre_e = j->params->edge_energy - j->params->edge_gap;                                          \
        const double post_e = j->params->edge_energy + j->params->edge_gap;                                         \
        /* in the loop that reads every row the pass needs */                                                       \
        const int prefetch = v0 + 2 * BLOCK <= nvox && c0 % LINE_FLOATS == 0;                                       \
        VEC total[2] = {{0}}, pre[2] = {{0}}, post[2] = {{0}}, sum[2] = {{0}}, sum2[2] = {{0}};                     \
        VEC coef[2][XANES_MAX_ORDER + 1] = {{{0}}};                                                                 \
        for (int k = 0; mask_pass && k < count; k++) {                                                              \
            const float *y = data + (size_t)k * nvox;                                                               \
            if (prefetch) prefetch_next_block(y, w * LANES);                                                        \
            VEC v[2];                                                                                               \
            load_##VEC(y, n, w, v);                                                                                 \
            double *lanes = row_lanes + (size_t)k * CHUNK;                                                          \
            for (int h = 0; h < w; h++) total[h] += v[h]; /* not finite when a sample is: redone (finite_stats) */  \
            if (energy[k] <= pre_e)                                                                                 \
                for (int h = 0; h < w; h++) pre[h] += v[h];                                                         \
            if (energy[k] >= post_e)                                                                                \
                for (int h = 0; h < w; h++) post[h] += v[h];                                                        \
            if (n == w * LANES) {                                                                                   \
                for (int h = 0; h < w; h++) {                                                                       \
                    double *at = lanes + h * LANES % CHUNK;                                                         \
                    VEC r;                                                                                          \
                    memcpy(&r, at, sizeof r);                                                                       \
                    r += v[h];                                                                                      \
                    memcpy(at, &r, sizeof r);                                                                       \
                }                                                                                                   \
            } else {                                                                                                \
                for (int l = 0; l < n; l++) lanes[0] += y[l];                                                       \
            }                                                                                                       \
        }                                                                                                           \
        for (int kk = 0; plan && kk < plan->m; kk++) {                                                              \
            const float *y = data + (size_t)plan->index[kk] * nvox;                                                 \
            if (prefetch && !mask_pass) prefetch_next_block(y, w * LANES);                                          \
            VEC v[2];                                                                                               \
            load_##VEC(y, n, w, v);                                                                                 \
            for (int c = 0; c < nc; c++) {                                                                          \
                const double weight = plan->solve[(size_t)c * plan->m + kk];                                        \
                for (int h = 0; h < w; h++) coef[h][c] += weight * v[h];                                            \
            }                                                                                                       \
            for (int h = 0; h < w; h++) {                                                                           \
                sum[h] += v[h];                                                                                     \
                sum2[h] += v[h] * v[h];                                                                             \
            }                                                                                                       \
        }                                                                                                           \
        for (int h = 0; h < w; h++)                                                                                 \
            for (int l = 0; l < LANES && h * LANES + l < n; l++) {                                                  \
                const int col = c0 + h * LANES + l;                                                                 \
                s->total[col] = total[h][l];                                                                        \
                s->pre[col] = pre[h][l];                                                                            \
                s->post[col] = post[h][l];                                                                          \
                s->sum[col] = sum[h][l];                                                                            \
                s->sum2[col] = sum2[h][l];                                                                          \
                for (int c = 0; c < nc; c++) s->coef[c][col] = coef[h][c][l];                                       \
            }                                                                                                       \
    }
/* A whole vector's floats as doubles: one widening load (a float vector converted went through two halves). */
#define LOAD_CHUNK(p) ((chunk_d){(p)[0], (p)[1], (p)[2], (p)[3], (p)[4], (p)[5], (p)[6], (p)[7]})
#define LOAD_QUAD(p) ((quad_d){(p)[0], (p)[1], (p)[2], (p)[3]})
DEFINE_SUM_CHUNK(chunk_d, CHUNK, LOAD_CHUNK)
DEFINE_SUM_CHUNK(quad_d, QUAD, LOAD_QUAD)

/* The block's columns: with AVX-512 (wide), 16 at a time (a cache line of each energy's samples, two vectors) with
 * n a constant, then the rest a chunk at a time; otherwise every whole chunk as two quads side by side; the part of
 * a chunk left at the block's end as one short chunk either way (into lane 0, as sum_chunk_* says). */
static inline __attribute__((always_inline)) void sum_chunks(const job *j, size_t v0, int nb, int nc, int wide,
                                                             block_sums *restrict s)
{
    int c0 = 0;
    if (wide) {
        for (; c0 + 2 * CHUNK <= nb; c0 += 2 * CHUNK) sum_chunk_chunk_d(j, v0, c0, 2 * CHUNK, 2, nc, s);
        for (; c0 + CHUNK <= nb; c0 += CHUNK) sum_chunk_chunk_d(j, v0, c0, CHUNK, 1, nc, s);
    } else {
        for (; c0 + CHUNK <= nb; c0 += CHUNK) sum_chunk_quad_d(j, v0, c0, CHUNK, 2, nc, s);
    }
    if (c0 < nb) sum_chunk_chunk_d(j, v0, c0, nb - c0, 1, nc, s);
}

/* Reads the block's samples from memory once (the window's again from L1): the mask sums over all energies (mask
 * pass) and the fit sums over the window's, a few columns at a time. */
RELOC_AVX512_AVX2_CLONES static void sum_block(const job *j, size_t v0, int nb, block_sums *restrict s)
{
    if (j->mask_pass) memset(s->row_lanes, 0, (size_t)j->count * CHUNK * sizeof *s->row_lanes);
    const int wide = RELOC_RUNS_AVX512_CLONE();
    switch (j->plan ? j->plan->ncoef : 0) {
    case 0: sum_chunks(j, v0, nb, 0, wide, s); break;
    case 3: sum_chunks(j, v0, nb, 3, wide, s); break;
    case 4: sum_chunks(j, v0, nb, 4, wide, s); break;
    default: sum_chunks(j, v0, nb, 5, wide, s); break;
    }
}

/* A row's sum over the block from its CHUNK lanes, added in lane order (the summed spectrum's fixed order). */
static double lanes_total(const double *lanes)
{
    double sum = 0;
    for (int l = 0; l < CHUNK; l++) sum += lanes[l];
    return sum;
}

/* Mean absorption, edge jump, the mask (status XANES_OK to be fitted, or XANES_MASKED) and the kept voxels' part
 * of the summed spectrum (spectrum: count sums, added over the block in a fixed order, so the result does not
 * depend on the threads). A voxel whose total is not finite holds a non-finite sample and is redone on its finite
 * ones. */
RELOC_AVX512_AVX2_CLONES static void mask_block(job *j, size_t v0, int nb, const block_sums *restrict s, double *spectrum)
{
    const xanes_params *p = j->params;
    xanes_result *r = j->r;
    int npre = 0, npost = 0;
    for (int k = 0; k < j->count; k++) {
        npre += j->energy[k] <= p->edge_energy - p->edge_gap;
        npost += j->energy[k] >= p->edge_energy + p->edge_gap;
    }
    unsigned char redo[BLOCK];
    double keep[BLOCK]; /* 1: the voxel's samples go into the summed spectrum */
    int all_kept = 1;
    for (int b = 0; b < nb; b++) {
        double mean = s->total[b] / j->count;
        double jump = npre && npost ? s->post[b] / npost - s->pre[b] / npre : NAN;
        int kept = p->mask_mode == XANES_MASK_MEAN ? mean > p->mask_threshold
                   : p->mask_mode == XANES_MASK_EDGE_JUMP ? jump > p->mask_threshold : 1;
        redo[b] = !isfinite(s->total[b]);
        keep[b] = kept && !redo[b];
        all_kept &= kept && !redo[b];
        r->mean_absorption[v0 + b] = (float)mean;
        r->edge_jump[v0 + b] = (float)jump;
        r->status[v0 + b] = kept ? XANES_OK : XANES_MASKED;
    }
    for (int k = 0; k < j->count; k++) {
        if (all_kept) { /* the row's lanes sum_block took */
            spectrum[k] = lanes_total(s->row_lanes + (size_t)k * CHUNK);
            continue;
        }
        const float *restrict y = j->data + (size_t)k * j->nvox + v0;
        const double *restrict kp = keep;
        double lane[CHUNK] = {0}; /* the same lanes over the kept voxels only */
        int b = 0;
        for (; b + CHUNK <= nb; b += CHUNK)
            for (int l = 0; l < CHUNK; l++) lane[l] += kp[b + l] != 0 ? (double)y[b + l] : 0.0;
        for (; b < nb; b++) lane[0] += kp[b] != 0 ? (double)y[b] : 0.0;
        spectrum[k] = lanes_total(lane);
    }
    for (int b = 0; b < nb; b++) {
        if (!redo[b]) continue;
        double mean, jump;
        finite_stats(j, v0 + (size_t)b, 0, spectrum, &mean, &jump);
        int kept = p->mask_mode == XANES_MASK_MEAN ? mean > p->mask_threshold
                   : p->mask_mode == XANES_MASK_EDGE_JUMP ? jump > p->mask_threshold : 1;
        if (kept) finite_stats(j, v0 + (size_t)b, 1, spectrum, &mean, &jump);
        r->mean_absorption[v0 + b] = (float)mean;
        r->edge_jump[v0 + b] = (float)jump;
        r->status[v0 + b] = kept ? XANES_OK : XANES_MASKED;
    }
}

/* Writes the fit maps of the block's voxels: their fits where the mask kept them (status XANES_OK), NaN elsewhere. */
RELOC_AVX512_AVX2_CLONES static void store_fits(job *j, size_t v0, int nb, const block_sums *s)
{
    xanes_result *r = j->r;
    unsigned char *restrict status = r->status + v0;
    float *restrict peak = r->peak_energy + v0, *restrict rmse = r->rmse + v0, *restrict r2 = r->r2 + v0,
                    *restrict adj = r->adj_r2 + v0;
    for (int b = 0; b < nb; b++) {
        int kept = status[b] == XANES_OK;
        status[b] = kept ? s->status[b] : status[b];
        peak[b] = kept ? (float)s->peak[b] : NAN;
        rmse[b] = kept ? (float)s->rmse[b] : NAN;
        r2[b] = kept ? (float)s->r2[b] : NAN;
        adj[b] = kept ? (float)s->adj_r2[b] : NAN;
    }
}

/* Adds the block's final statuses and peak energies to its statistics and the worker's histogram. */
RELOC_AVX512_AVX2_CLONES static void tally_block(const job *j, size_t v0, int nb, block_stats *st, long *hist)
{
    const xanes_result *r = j->r;
    const double lo = r->hist_lo, width = (r->hist_hi - r->hist_lo) / r->hist_bins;
    for (int b = 0; b < nb; b++) {
        int status = r->status[v0 + b];
        st->n[status < 4 ? status : XANES_BAD_DATA]++;
        if (status != XANES_OK) continue;
        double e = r->peak_energy[v0 + b], d = e - lo;
        st->sum += d;
        st->sum2 += d * d;
        int bin = (int)floor((e - lo) / width);
        hist[bin < 0 ? 0 : bin >= r->hist_bins ? r->hist_bins - 1 : bin]++;
    }
}

static void analyse_block(job *j, int item, int worker)
{
    size_t v0 = (size_t)item * BLOCK;
    int nb = (int)(j->nvox - v0 < BLOCK ? j->nvox - v0 : BLOCK);
    block_sums *s = &j->sums[worker];
    sum_block(j, v0, nb, s);
    if (j->mask_pass) mask_block(j, v0, nb, s, j->block_spectra + (size_t)item * j->count);
    if (j->plan) {
        finish_block(j->plan, s, nb);
        store_fits(j, v0, nb, s);
        tally_block(j, v0, nb, &j->stats[item], j->hist + (size_t)worker * j->r->hist_bins);
    }
}

/* A worker's share: BLOCKS_PER_TASK consecutive blocks, so that the next block, whose rows sum_chunk_* prefetches,
 * is mostly the same worker's (blocks handed out one at a time alternate between the workers). */
enum { BLOCKS_PER_TASK = 8 };

static void analyse_task(void *ctx, int task, int worker)
{
    job *j = ctx;
    int end = (task + 1) * BLOCKS_PER_TASK < j->blocks ? (task + 1) * BLOCKS_PER_TASK : j->blocks;
    for (int item = task * BLOCKS_PER_TASK; item < end; item++) analyse_block(j, item, worker);
}

static int cmp_by_energy(const void *a, const void *b, void *ctx)
{
    const double *e = ctx;
    double ea = e[*(const int *)a], eb = e[*(const int *)b];
    return (ea > eb) - (ea < eb);
}

static void result_alloc(xanes_result *r, const int dims[3], int count, int hist_bins)
{
    memset(r, 0, sizeof *r);
    r->nx = dims[0];
    r->ny = dims[1];
    r->nz = dims[2];
    size_t n = (size_t)dims[0] * dims[1] * dims[2];
    /* Not initialised: the mask pass writes every voxel's mean absorption, edge jump and status, the fit pass every
     * voxel's fit maps (in the workers, which also take the page faults of first use, on huge pages). */
    float **maps[] = {&r->peak_energy, &r->rmse, &r->r2, &r->adj_r2, &r->edge_jump, &r->mean_absorption};
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) *maps[i] = xmalloc_large(n * sizeof(float));
    r->status = xmalloc_large(n);
    r->hist_bins = hist_bins;
    r->hist = xcalloc((size_t)hist_bins, sizeof(long));
    r->spectrum_count = count;
    r->spectrum_energy = xcalloc((size_t)count, sizeof(double));
    r->summed_spectrum = xcalloc((size_t)count, sizeof(double));
}

/* Counts, histogram, centroid and spread from the blocks' parts, added in block order. */
static void statistics(xanes_result *r, const block_stats *stats, int blocks, const long *hist, int workers)
{
    double sum = 0, sum2 = 0;
    for (int b = 0; b < blocks; b++) {
        r->n_ok += stats[b].n[XANES_OK];
        r->n_masked += stats[b].n[XANES_MASKED];
        r->n_no_peak += stats[b].n[XANES_NO_PEAK];
        r->n_bad += stats[b].n[XANES_BAD_DATA];
        sum += stats[b].sum;
        sum2 += stats[b].sum2;
    }
    for (int w = 0; w < workers; w++)
        for (int k = 0; k < r->hist_bins; k++) r->hist[k] += hist[(size_t)w * r->hist_bins + k];
    double mean = r->n_ok ? sum / r->n_ok : NAN, variance = r->n_ok ? sum2 / r->n_ok - mean * mean : NAN;
    r->centroid = r->hist_lo + mean;
    r->std = r->n_ok ? sqrt(fmax(variance, 0)) : NAN; /* rounding may leave a zero variance slightly negative */
}

int xanes_analyse(const xanes_stack *s, const xanes_params *p, xanes_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (xanes_params_check(p, err, errlen) != 0) return -1;
    if (s->count < p->order + 2) {
        snprintf(err, errlen, "stack holds %d energies; order %d needs at least %d", s->count, p->order,
                p->order + 2);
        return -1;
    }
    if (p->mask_mode == XANES_MASK_EDGE_JUMP) {
        int below = 0, above = 0;
        for (int k = 0; k < s->count; k++) {
            below |= s->energy[k] <= p->edge_energy - p->edge_gap;
            above |= s->energy[k] >= p->edge_energy + p->edge_gap;
        }
        if (!below || !above) {
            snprintf(err, errlen, "edge-jump mask needs energies below %.1f eV and above %.1f eV",
                    p->edge_energy - p->edge_gap, p->edge_energy + p->edge_gap);
            return -1;
        }
    }
    int automatic = p->window_lo == 0 && p->window_hi == 0;
    fit_plan plan = {0};
    if (!automatic && plan_build(&plan, s->energy, s->count, p->order, p->window_lo, p->window_hi, err, errlen) != 0)
        return -1;
    int dims[3];
    float *data = bin_stack(s, p->bin, dims);
    result_alloc(r, dims, s->count, p->hist_bins);
    job j = {.data = data, .nvox = (size_t)dims[0] * dims[1] * dims[2], .count = s->count, .energy = s->energy,
             .params = p, .r = r, .mask_pass = 1, .plan = automatic ? NULL : &plan};
    int blocks = j.blocks = (int)((j.nvox + BLOCK - 1) / BLOCK);
    int tasks = (blocks + BLOCKS_PER_TASK - 1) / BLOCKS_PER_TASK;
    int workers = parallel_workers(tasks, p->threads);
    j.block_spectra = xcalloc((size_t)blocks * s->count, sizeof(double));
    j.sums = xmalloc((size_t)workers * sizeof(block_sums));
    j.stats = xcalloc((size_t)blocks, sizeof(block_stats));
    j.hist = xcalloc((size_t)workers * p->hist_bins, sizeof(long));
    r->window_lo = r->hist_lo = p->window_lo; /* the histogram spans the window (the automatic one: set below) */
    r->window_hi = r->hist_hi = p->window_hi;
    double *row_sums = xmalloc((size_t)workers * s->count * CHUNK * sizeof(double));
    for (int w = 0; w < workers; w++) j.sums[w].row_lanes = row_sums + (size_t)w * s->count * CHUNK;
    parallel_for(tasks, workers, analyse_task, &j);

    /* Summed spectrum, sorted by energy. */
    int *order = xmalloc((size_t)s->count * sizeof(int));
    for (int k = 0; k < s->count; k++) order[k] = k;
    qsort_r(order, (size_t)s->count, sizeof(int), cmp_by_energy, s->energy);
    for (int k = 0; k < s->count; k++) {
        double sum = 0;
        for (int b = 0; b < blocks; b++) sum += j.block_spectra[(size_t)b * s->count + order[k]];
        r->spectrum_energy[k] = s->energy[order[k]];
        r->summed_spectrum[k] = sum;
    }
    free(order);

    int rc = -1;
    if (automatic) {
        long kept = 0;
        for (size_t v = 0; v < j.nvox; v++) kept += r->status[v] == XANES_OK;
        if (kept == 0) {
            snprintf(err, errlen, "no voxel passes the mask, so there is no summed spectrum to place the window; "
                                  "lower the threshold or give the window");
            goto done;
        }
        int best = 0;
        for (int k = 1; k < s->count; k++)
            if (r->summed_spectrum[k] > r->summed_spectrum[best]) best = k;
        r->window_lo = r->hist_lo = r->spectrum_energy[best] - p->half_width;
        r->window_hi = r->hist_hi = r->spectrum_energy[best] + p->half_width;
        if (plan_build(&plan, s->energy, s->count, p->order, r->window_lo, r->window_hi, err, errlen) != 0)
            goto done;
        j.mask_pass = 0;
        j.plan = &plan;
        parallel_for(tasks, workers, analyse_task, &j);
    }
    r->window_points = plan.m;
    statistics(r, j.stats, blocks, j.hist, workers);
    if (xanes_fit_spectrum(r->spectrum_energy, r->summed_spectrum, s->count, p->order, r->window_lo, r->window_hi,
                           &r->summed, err, errlen) != 0)
        goto done;
    rc = 0;
done:
    plan_free(&plan);
    free(j.block_spectra);
    free(j.sums);
    free(j.stats);
    free(j.hist);
    free(row_sums);
    if (data != s->data) free(data);
    if (rc != 0) xanes_result_free(r);
    return rc;
}

void xanes_result_free(xanes_result *r)
{
    free(r->peak_energy);
    free(r->rmse);
    free(r->r2);
    free(r->adj_r2);
    free(r->edge_jump);
    free(r->mean_absorption);
    free(r->status);
    free(r->hist);
    free(r->spectrum_energy);
    free(r->summed_spectrum);
    memset(r, 0, sizeof *r);
}
