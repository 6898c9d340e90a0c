/* xanes.c -- per-voxel white-line fits, masks, binning and statistics of XANES stacks (see xanes.h). */
#include "kernels/xanes/xanes.h"
#include "core/base/base.h"
#include "core/parallel/parallel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_VOXELS 4096
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
    int *index;                /* their indices in the stack */
    double *t;                 /* scaled energies */
    double centre, scale;
    double t_lo, t_hi;         /* range of t in the window */
    double *solve;             /* ncoef x m: coefficients = solve * y */
} fit_plan;

static void plan_free(fit_plan *p)
{
    free(p->index);
    free(p->t);
    free(p->solve);
    memset(p, 0, sizeof *p);
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
    if (p->m < order + 2 || !(emax > emin)) {
        snprintf(err, errlen, "fit window %.2f..%.2f eV holds %d distinct energies; order %d needs at least %d", lo,
                hi, p->m, order, order + 2);
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

/* Fits the window samples y[0..m-1] (in plan order). */
static void plan_fit(const fit_plan *p, const double *y, xanes_fit *f)
{
    int m = p->m, nc = p->ncoef;
    memset(f, 0, sizeof *f);
    f->centre = p->centre;
    f->scale = p->scale;
    double mean = 0;
    for (int k = 0; k < m; k++) {
        if (!isfinite(y[k])) {
            f->status = XANES_BAD_DATA;
            f->peak_energy = f->peak_value = f->rmse = f->r2 = f->adj_r2 = NAN;
            return;
        }
        mean += y[k];
    }
    mean /= m;
    for (int j = 0; j < nc; j++) {
        const double *row = p->solve + (size_t)j * m;
        double v = 0;
        for (int k = 0; k < m; k++) v += row[k] * y[k];
        f->coef[j] = v;
    }
    double rss = 0, tss = 0;
    for (int k = 0; k < m; k++) {
        double r = y[k] - poly_eval(f->coef, nc, p->t[k]), d = y[k] - mean;
        rss += r * r;
        tss += d * d;
    }
    f->rmse = sqrt(rss / m);
    f->r2 = tss > 0 ? 1 - rss / tss : NAN;
    f->adj_r2 = m - p->order - 1 > 0 && tss > 0 ? 1 - (1 - f->r2) * (m - 1) / (m - p->order - 1) : NAN;
    double t;
    if (poly_peak(f->coef, nc, p->t_lo, p->t_hi, &t) == 0) {
        f->status = XANES_OK;
        f->peak_energy = p->centre + p->scale * t;
        f->peak_value = poly_eval(f->coef, nc, t);
    } else {
        f->status = XANES_NO_PEAK;
        f->peak_energy = f->peak_value = NAN;
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
    double *y = xmalloc((size_t)p.m * sizeof(double));
    for (int k = 0; k < p.m; k++) y[k] = mu[p.index[k]];
    plan_fit(&p, y, out);
    free(y);
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
    float *out = xcalloc((size_t)s->count * nout, sizeof(float));
    unsigned *cnt = xcalloc(nout, sizeof(unsigned));
    for (int z = 0; z < s->nz; z++)
        for (int y = 0; y < s->ny; y++)
            for (int x = 0; x < s->nx; x++)
                cnt[((size_t)(z / bin[2]) * dims[1] + y / bin[1]) * dims[0] + x / bin[0]]++;
    for (int k = 0; k < s->count; k++) {
        const float *src = s->data + (size_t)k * nin;
        float *dst = out + (size_t)k * nout;
        double *acc = xcalloc(nout, sizeof(double));
        for (int z = 0; z < s->nz; z++)
            for (int y = 0; y < s->ny; y++) {
                const float *row = src + ((size_t)z * s->ny + y) * s->nx;
                double *arow = acc + ((size_t)(z / bin[2]) * dims[1] + y / bin[1]) * dims[0];
                for (int x = 0; x < s->nx; x++) arow[x / bin[0]] += row[x];
            }
        for (size_t v = 0; v < nout; v++) dst[v] = (float)(acc[v] / cnt[v]);
        free(acc);
    }
    free(cnt);
    return out;
}

/* ---- the analysis ---- */

typedef struct job {
    const float *data;         /* count images of nvox (binned) voxels */
    size_t nvox;
    int count;
    const double *energy;
    const xanes_params *params;
    xanes_result *r;
    double *partial_sums;      /* workers x count: summed spectrum per worker (pass 1) */
    const fit_plan *plan;      /* pass 2 */
    double *scratch;           /* workers x plan->m (pass 2) */
} job;

static size_t chunk_end(const job *j, int item)
{
    size_t end = (size_t)(item + 1) * CHUNK_VOXELS;
    return end < j->nvox ? end : j->nvox;
}

/* Pass 1: mean absorption, edge jump, mask, and the summed spectrum of the voxels kept. */
static void mask_chunk(void *ctx, int item, int worker)
{
    job *j = ctx;
    const xanes_params *p = j->params;
    double *sums = j->partial_sums + (size_t)worker * j->count;
    for (size_t v = (size_t)item * CHUNK_VOXELS; v < chunk_end(j, item); v++) {
        double total = 0, pre = 0, post = 0;
        int npre = 0, npost = 0, finite = 1;
        for (int k = 0; k < j->count; k++) {
            double y = j->data[(size_t)k * j->nvox + v], e = j->energy[k];
            if (!isfinite(y)) finite = 0;
            total += y;
            if (e <= p->edge_energy - p->edge_gap) { pre += y; npre++; }
            if (e >= p->edge_energy + p->edge_gap) { post += y; npost++; }
        }
        double mean = total / j->count;
        double jump = npre && npost ? post / npost - pre / npre : NAN;
        j->r->mean_absorption[v] = (float)mean;
        j->r->edge_jump[v] = (float)jump;
        int keep = finite;
        if (p->mask_mode == XANES_MASK_MEAN) keep = keep && mean > p->mask_threshold;
        if (p->mask_mode == XANES_MASK_EDGE_JUMP) keep = keep && jump > p->mask_threshold;
        j->r->status[v] = !finite ? XANES_BAD_DATA : keep ? XANES_OK : XANES_MASKED;
        if (keep)
            for (int k = 0; k < j->count; k++) sums[k] += j->data[(size_t)k * j->nvox + v];
    }
}

/* Pass 2: the polynomial fit of every voxel kept. */
static void fit_chunk(void *ctx, int item, int worker)
{
    job *j = ctx;
    const fit_plan *plan = j->plan;
    double *y = j->scratch + (size_t)worker * plan->m;
    xanes_result *r = j->r;
    for (size_t v = (size_t)item * CHUNK_VOXELS; v < chunk_end(j, item); v++) {
        if (r->status[v] != XANES_OK) continue;
        for (int k = 0; k < plan->m; k++) y[k] = j->data[(size_t)plan->index[k] * j->nvox + v];
        xanes_fit f;
        plan_fit(plan, y, &f);
        r->status[v] = (unsigned char)f.status;
        r->peak_energy[v] = (float)f.peak_energy;
        r->rmse[v] = (float)f.rmse;
        r->r2[v] = (float)f.r2;
        r->adj_r2[v] = (float)f.adj_r2;
    }
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
    float **maps[] = {&r->peak_energy, &r->rmse, &r->r2, &r->adj_r2, &r->edge_jump, &r->mean_absorption};
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
        *maps[i] = xmalloc(n * sizeof(float));
        for (size_t v = 0; v < n; v++) (*maps[i])[v] = NAN;
    }
    r->status = xcalloc(n, 1);
    r->hist_bins = hist_bins;
    r->hist = xcalloc((size_t)hist_bins, sizeof(long));
    r->spectrum_count = count;
    r->spectrum_energy = xcalloc((size_t)count, sizeof(double));
    r->summed_spectrum = xcalloc((size_t)count, sizeof(double));
}

static void statistics(xanes_result *r)
{
    size_t n = (size_t)r->nx * r->ny * r->nz;
    double sum = 0, sum2 = 0, w = (r->hist_hi - r->hist_lo) / r->hist_bins;
    for (size_t v = 0; v < n; v++) {
        switch (r->status[v]) {
        case XANES_OK: {
            double e = r->peak_energy[v];
            r->n_ok++;
            sum += e;
            int b = (int)floor((e - r->hist_lo) / w);
            if (b >= r->hist_bins) b = r->hist_bins - 1;
            if (b < 0) b = 0;
            r->hist[b]++;
            break;
        }
        case XANES_NO_PEAK: r->n_no_peak++; break;
        case XANES_MASKED: r->n_masked++; break;
        default: r->n_bad++; break;
        }
    }
    r->centroid = r->n_ok ? sum / r->n_ok : NAN;
    for (size_t v = 0; v < n; v++)
        if (r->status[v] == XANES_OK) {
            double d = r->peak_energy[v] - r->centroid;
            sum2 += d * d;
        }
    r->std = r->n_ok ? sqrt(sum2 / r->n_ok) : NAN;
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
    int dims[3];
    float *data = bin_stack(s, p->bin, dims);
    result_alloc(r, dims, s->count, p->hist_bins);
    job j = {.data = data, .nvox = (size_t)dims[0] * dims[1] * dims[2], .count = s->count, .energy = s->energy,
             .params = p, .r = r};
    int chunks = (int)((j.nvox + CHUNK_VOXELS - 1) / CHUNK_VOXELS);
    int workers = parallel_workers(chunks, p->threads);
    j.partial_sums = xcalloc((size_t)workers * s->count, sizeof(double));
    parallel_for(chunks, workers, mask_chunk, &j);

    /* Summed spectrum, sorted by energy. */
    int *order = xmalloc((size_t)s->count * sizeof(int));
    for (int k = 0; k < s->count; k++) order[k] = k;
    qsort_r(order, (size_t)s->count, sizeof(int), cmp_by_energy, s->energy);
    for (int k = 0; k < s->count; k++) {
        double sum = 0;
        for (int w = 0; w < workers; w++) sum += j.partial_sums[(size_t)w * s->count + order[k]];
        r->spectrum_energy[k] = s->energy[order[k]];
        r->summed_spectrum[k] = sum;
    }
    free(order);

    int rc = -1;
    r->window_lo = p->window_lo;
    r->window_hi = p->window_hi;
    if (p->window_lo == 0 && p->window_hi == 0) {
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
        r->window_lo = r->spectrum_energy[best] - p->half_width;
        r->window_hi = r->spectrum_energy[best] + p->half_width;
    }
    r->hist_lo = r->window_lo;
    r->hist_hi = r->window_hi;
    fit_plan plan;
    if (plan_build(&plan, s->energy, s->count, p->order, r->window_lo, r->window_hi, err, errlen) != 0) goto done;
    r->window_points = plan.m;
    j.plan = &plan;
    j.scratch = xmalloc((size_t)workers * plan.m * sizeof(double));
    parallel_for(chunks, workers, fit_chunk, &j);
    free(j.scratch);
    plan_free(&plan);
    statistics(r);
    if (xanes_fit_spectrum(r->spectrum_energy, r->summed_spectrum, s->count, p->order, r->window_lo, r->window_hi,
                           &r->summed, err, errlen) != 0)
        goto done;
    rc = 0;
done:
    free(j.partial_sums);
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
