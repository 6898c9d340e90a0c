/* sirt.c -- SIRT and ordered-subsets SART (OS-SART) for EDS-only and joint HAADF-EDS (HEBT) systems, with a
 * stopping rule on the residual, slice by slice in parallel (see tomo.h). */
#include "kernels/tomo/tomo.h"
#include "core/base/base.h"
#include "core/parallel/parallel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tomo_params_default(tomo_params *p)
{
    memset(p, 0, sizeof *p);
    p->iterations = 100;
    p->relaxation = 1.0;
    p->nonneg = 1;
    p->subsets = 1;
}

/* The largest table of per-subset inverse column sums (floats) tomo_reconstruct keeps: 256 MB. */
#define MAX_COLSUM_VALUES ((size_t)1 << 26)

/* What every slice shares, read-only during the loop. */
typedef struct recon {
    const tomo_geometry *g;
    int n_slices, n_el;
    const float *const *eds;
    const float *haadf;        /* NULL: EDS-only */
    double *rn;                /* r_A / sum_B r_B: the HAADF rows are divided by sum r to be in EDS units */
    double r_sum;
    const tomo_params *p;
    double alpha;
    float *const *out;
    float *inv_row;            /* 1 / (W 1), 0 for rays that miss the slice; original angle order */
    int n_sub;
    int *order;                /* angle indices, subset after subset in the order they are visited */
    int *sub_start;            /* subset s holds order[sub_start[s] .. sub_start[s + 1]) */
    double *sub_angles;        /* angles in `order` order */
    tomo_geometry *sub_geom;   /* one geometry per subset, over its angles */
    tomo_geometry all_geom;    /* all angles, in `order` order (the exact residual) */
    float *inv_col;            /* n_sub x (n x n): 1 / (W_s^T 1), 0 for pixels no ray of the subset meets */
    int batch;                 /* slices reconstructed together (tomo.h) */
    float **scratch;           /* one block per worker */
} recon;

static size_t sino_size(const tomo_geometry *g)
{
    return (size_t)g->n_angles * g->n_det;
}

/* x <- x + lambda_z weight^-1 C_s grad per pixel and slice (C_s = inv_col), clamped at 0 when nonneg: the
 * update of one subset on count pixels of a batch, the loop over the batch of constant length (vectorized) when
 * inlined with B constant; with count constant too (runs of 64 pixels, below), the pixel loop is vectorized for
 * B = 1 as well (GCC's -O2 vectorizes no loop that would need a remainder). */
static inline __attribute__((always_inline)) void update_run(float *restrict x, const float *restrict grad,
                                                            const float *restrict inv_col, size_t count, const int B,
                                                            const float *lam, int nonneg)
{
    for (size_t j = 0; j < count; j++) {
        float c = inv_col[j];
        for (int z = 0; z < B; z++) {
            float v = x[j * B + z] + lam[z] * grad[j * B + z] * c;
            x[j * B + z] = nonneg && v < 0 ? 0 : v;
        }
    }
}

static inline __attribute__((always_inline)) void update_batch(float *x, const float *grad, const float *inv_col,
                                                              size_t np, const int B, const float *lambda,
                                                              float scale, int nonneg)
{
    enum { RUN = 64 };
    float lam[B];
    for (int z = 0; z < B; z++) lam[z] = lambda[z] * scale;
    size_t j = 0;
    for (; j + RUN <= np; j += RUN) update_run(x + j * B, grad + j * B, inv_col + j, RUN, B, lam, nonneg);
    update_run(x + j * B, grad + j * B, inv_col + j, np - j, B, lam, nonneg);
}

RELOC_AVX2_CLONES static void update(float *x, const float *grad, const float *inv_col, size_t np, int B,
                                      const float *lambda, float weight, int nonneg)
{
    float scale = weight > 0 ? 1 / weight : 0;
    switch (B) {
    case 1: update_batch(x, grad, inv_col, np, 1, lambda, scale, nonneg); break;
    case 4: update_batch(x, grad, inv_col, np, 4, lambda, scale, nonneg); break;
    case 8: update_batch(x, grad, inv_col, np, 8, lambda, scale, nonneg); break;
    case 16: update_batch(x, grad, inv_col, np, 16, lambda, scale, nonneg); break;
    default: update_batch(x, grad, inv_col, np, B, lambda, scale, nonneg); break;
    }
}

/* |b - A x|^2 of each slice of a batch, exact (the residual of the stopping rule, tomo.h): every element's
 * batch projected over all angles in the order the subsets visit them (rc->all_geom) into proj (element e at
 * e * ns * B), where the next pass's first subset finds its own projection (its angles come first). */
static void residual_norms(const recon *rc, const float *x, const float *data, const float *hdata, float *proj,
                           double *rnorm)
{
    const tomo_geometry *g = rc->g;
    const int B = rc->batch, n_el = rc->n_el, n_det = g->n_det;
    const size_t nsb = sino_size(g) * B, npb = (size_t)g->n * g->n * B;
    const double alpha = rc->alpha, wh = alpha * alpha, we = (1 - alpha) * (1 - alpha);
    for (int e = 0; e < n_el; e++) tomo_project_batch(&rc->all_geom, B, x + (size_t)e * npb, proj + (size_t)e * nsb);
    for (int z = 0; z < B; z++) rnorm[z] = 0;
    for (int a = 0; a < g->n_angles; a++)
        for (int k = 0; k < n_det; k++) {
            size_t i = ((size_t)a * n_det + k) * B, ray = ((size_t)rc->order[a] * n_det + k) * B;
            for (int z = 0; z < B; z++) {
                double sum = 0, model = 0;
                for (int e = 0; e < n_el; e++) {
                    double d = data[(size_t)e * nsb + ray + z] - proj[(size_t)e * nsb + i + z];
                    sum += we * d * d;
                    model += rc->rn[e] * proj[(size_t)e * nsb + i + z];
                }
                if (hdata) {
                    double d = hdata[ray + z] / rc->r_sum - model;
                    sum += wh * d * d;
                }
                rnorm[z] += sum;
            }
        }
}

/* Whether pass `it` is a slice's last (tomo.h, stopping rule): its exact residual against the previous pass's and
 * the noise level (0: unknown). */
static int stop_reason(const tomo_params *p, int it, double residual, double previous, double noise)
{
    if (residual == 0) return TOMO_STOP_FALLING;
    if (noise > 0 && residual <= noise) return TOMO_STOP_NOISE;
    if (p->tolerance > 0 && previous - residual < p->tolerance * previous) return TOMO_STOP_FALLING;
    return it == p->iterations ? TOMO_STOP_LIMIT : TOMO_STOP_NONE;
}

/* One batch of B slices (rc->batch; the last batch may hold fewer, `used`, the rest zero and idle): passes of the
 * joint update over the subsets (see tomo.h), on the batch's slices interleaved slice-innermost (tomo.h), so that
 * each ray's weights are worked out once for B slices. Each slice keeps its own residual and stopping rule: a
 * slice that has stopped is frozen (its relaxation 0) while the others go on. */
static void reconstruct_batch(void *ctx, int item, int worker)
{
    const recon *rc = ctx;
    const tomo_geometry *g = rc->g;
    const tomo_params *p = rc->p;
    const int B = rc->batch, z0 = item * B, used = rc->n_slices - z0 < B ? rc->n_slices - z0 : B;
    const size_t ns = sino_size(g), np = (size_t)g->n * g->n, nsb = ns * B, npb = np * B;
    const int n_el = rc->n_el, joint = rc->haadf != NULL, n_det = g->n_det;
    const double alpha = rc->alpha;
    /* the exact residual after every pass when a rule needs it, else (for progress only) every residual_every
     * passes and the last */
    const int rule = p->tolerance > 0 || p->counts_per_unit > 0;
    float *x = rc->scratch[worker];                     /* n_el batches of slices: the estimates x_A */
    float *data = x + (size_t)n_el * npb;               /* n_el batches of sinograms b_A, then the HAADF one */
    float *proj = data + (size_t)(n_el + 1) * nsb;      /* n_el sinograms (element e at e nsb): W_s x_A */
    float *hres = proj + (size_t)n_el * nsb;            /* R-weighted HAADF residual */
    float *rows = hres + nsb;                            /* weighted residual of one element's rows */
    float *grad = rows + nsb;                            /* W_s^T rows */
    float *hdata = data + (size_t)n_el * nsb;
    double bnorm[TOMO_BATCH_MAX], rnorm[TOMO_BATCH_MAX], previous[TOMO_BATCH_MAX], noise[TOMO_BATCH_MAX];
    float lambda[TOMO_BATCH_MAX];
    int active = used;
    for (int z = 0; z < B; z++) {
        bnorm[z] = noise[z] = 0;
        previous[z] = INFINITY;
        lambda[z] = z < used ? (float)p->relaxation : 0.0f;
    }
    if (joint) tomo_interleave(rc->haadf + (size_t)z0 * ns, ns, used, B, hdata);
    for (size_t i = 0; joint && i < ns; i++)
        for (int z = 0; z < B; z++) {
            double v = hdata[i * B + z] / rc->r_sum;
            bnorm[z] += alpha * alpha * v * v;
        }
    for (int e = 0; e < n_el; e++) {
        const float *pe = data + (size_t)e * nsb;
        tomo_interleave(rc->eds[e] + (size_t)z0 * ns, ns, used, B, data + (size_t)e * nsb);
        for (size_t i = 0; i < ns; i++)
            for (int z = 0; z < B; z++) {
                bnorm[z] += (1 - alpha) * (1 - alpha) * pe[i * B + z] * pe[i * B + z];
                /* Poisson: the variance of a value b is b / counts_per_unit (HAADF noise left out: a lower bound) */
                noise[z] += (1 - alpha) * (1 - alpha) * (pe[i * B + z] > 0 ? pe[i * B + z] : 0);
            }
        memset(x + (size_t)e * npb, 0, npb * sizeof(float));
    }
    for (int z = 0; z < B; z++)
        noise[z] = p->counts_per_unit > 0 && bnorm[z] > 0 ? sqrt(noise[z] / p->counts_per_unit / bnorm[z]) : 0;
    int fresh = 0;   /* proj holds the projections of x over all angles (residual_norms) */
    for (int it = 1; it <= p->iterations && active > 0; it++) {
        for (int sub = 0; sub < rc->n_sub; sub++) {
            const tomo_geometry *gs = &rc->sub_geom[sub];
            const int *angle = rc->order + rc->sub_start[sub];
            const float *inv_col = rc->inv_col + (size_t)sub * np;
            if (!(sub == 0 && fresh))
                for (int e = 0; e < n_el; e++) tomo_project_batch(gs, B, x + (size_t)e * npb, proj + (size_t)e * nsb);
            fresh = 0;
            for (int a = 0; joint && a < gs->n_angles; a++)
                for (int k = 0; k < n_det; k++) {
                    size_t i = ((size_t)a * n_det + k) * B, ray = (size_t)angle[a] * n_det + k;
                    for (int z = 0; z < B; z++) {
                        double model = 0;
                        for (int e = 0; e < n_el; e++) model += rc->rn[e] * proj[(size_t)e * nsb + i + z];
                        hres[i + z] = (float)((hdata[ray * B + z] / rc->r_sum - model) * rc->inv_row[ray]);
                    }
                }
            for (int e = 0; e < n_el; e++) {
                const float *pe = data + (size_t)e * nsb, *pr = proj + (size_t)e * nsb;
                for (int a = 0; a < gs->n_angles; a++)
                    for (int k = 0; k < n_det; k++) {
                        size_t i = ((size_t)a * n_det + k) * B, ray = (size_t)angle[a] * n_det + k;
                        for (int z = 0; z < B; z++) {
                            double v = (1 - alpha) * (pe[ray * B + z] - pr[i + z]) * rc->inv_row[ray];
                            if (joint) v += alpha * rc->rn[e] * hres[i + z];
                            rows[i + z] = (float)v;
                        }
                    }
                tomo_backproject_batch(gs, B, rows, grad);
                float weight = (float)(joint ? alpha * rc->rn[e] + (1 - alpha) : 1.0);
                update(x + (size_t)e * npb, grad, inv_col, np, B, lambda, weight, p->nonneg);
            }
        }
        int measure = rule || (p->progress && (it == p->iterations ||
                                               (p->residual_every > 0 && it % p->residual_every == 0)));
        if (measure) {
            residual_norms(rc, x, data, joint ? hdata : NULL, proj, rnorm);
            fresh = 1;
        }
        for (int z = 0; z < used; z++) {
            if (lambda[z] == 0) continue;
            double residual = !measure ? NAN : bnorm[z] > 0 ? sqrt(rnorm[z] / bnorm[z]) : 0;
            int why = measure ? stop_reason(p, it, residual, previous[z], noise[z]) : TOMO_STOP_NONE;
            if (!rule && why == TOMO_STOP_LIMIT) why = TOMO_STOP_PASSES;   /* the pass count asked for */
            if (p->progress) p->progress(p->progress_user, z0 + z, rc->n_slices, it, p->iterations, residual, why);
            previous[z] = residual;
            if (why != TOMO_STOP_NONE) {
                lambda[z] = 0;
                active--;
            }
        }
    }
    for (int e = 0; e < n_el; e++) tomo_deinterleave(x + (size_t)e * npb, np, used, B, rc->out[e] + (size_t)z0 * np);
}

/* What reconstruct_batch lays out in its scratch, per slice: n_el estimates (n x n each), n_el + 1 data sinograms
 * and n_el projected ones, the HAADF residual and the weighted rows (a sinogram each), the gradient (n x n). */
size_t tomo_reconstruct_slice_bytes(const tomo_geometry *g, int n_el)
{
    const size_t ns = sino_size(g), np = (size_t)g->n * g->n;
    return ((size_t)n_el * np + (size_t)(n_el + 1) * ns + (size_t)n_el * ns + 2 * ns + np) * sizeof(float);
}

/* Angle folded into [0, 180): parallel projections 180 degrees apart hold the same line integrals. */
static double folded(double deg)
{
    double a = fmod(deg, 180.0);
    return a < 0 ? a + 180.0 : a;
}

static int cmp_by_angle(const void *a, const void *b, void *ctx)
{
    const double *angles = ctx;
    double x = folded(angles[*(const int *)a]), y = folded(angles[*(const int *)b]);
    return (x > y) - (x < y);
}

/* Ordered subsets: angles sorted over [0, 180) and dealt out in turn, so each subset spans the whole range;
 * subsets are visited in golden-ratio order, so consecutive ones are far apart in angle. */
static void plan_subsets(recon *rc)
{
    const tomo_geometry *g = rc->g;
    int S = rc->n_sub, *sorted = xmalloc((size_t)g->n_angles * sizeof(int));
    unsigned char *used = xcalloc((size_t)S, 1);
    for (int a = 0; a < g->n_angles; a++) sorted[a] = a;
    qsort_r(sorted, (size_t)g->n_angles, sizeof(int), cmp_by_angle, (void *)g->angles_deg);
    rc->order = xmalloc((size_t)g->n_angles * sizeof(int));
    rc->sub_start = xmalloc((size_t)(S + 1) * sizeof(int));
    rc->sub_angles = xmalloc((size_t)g->n_angles * sizeof(double));
    rc->sub_geom = xcalloc((size_t)S, sizeof(tomo_geometry));
    int pos = 0;
    for (int i = 0; i < S; i++) {
        double target = fmod(i * 0.6180339887498949, 1.0) * S;
        int best = -1;
        for (int s = 0; s < S; s++) {
            double d = fabs(s - target);
            d = fmin(d, S - d);
            if (!used[s] && (best < 0 || d < fmin(fabs(best - target), S - fabs(best - target)))) best = s;
        }
        used[best] = 1;
        rc->sub_start[i] = pos;
        for (int r = best; r < g->n_angles; r += S) {
            rc->order[pos] = sorted[r];
            rc->sub_angles[pos++] = g->angles_deg[sorted[r]];
        }
        rc->sub_geom[i] = *g;
        rc->sub_geom[i].n_angles = pos - rc->sub_start[i];
        rc->sub_geom[i].angles_deg = rc->sub_angles + rc->sub_start[i];
    }
    rc->sub_start[S] = pos;
    rc->all_geom = *g;
    rc->all_geom.angles_deg = rc->sub_angles;
    free(used);
    free(sorted);
}

int tomo_reconstruct(const tomo_geometry *g, int n_slices, int n_el, const float *const *eds, const float *haadf,
                     const double *r, const tomo_params *p, float *const *out, char *err, size_t errlen)
{
    if (tomo_geometry_check(g, err, errlen) != 0) return -1;
    const char *why = NULL;
    int joint = haadf && p->alpha > 0;
    const size_t ns = sino_size(g), np = (size_t)g->n * g->n;
    if (n_slices < 1 || n_el < 1) why = "nothing to reconstruct (no slices or no elements)";
    else if (p->iterations < 1 || p->iterations > 1000000) why = "iterations out of range 1..1000000";
    else if (!(p->relaxation > 0 && p->relaxation < 2)) why = "relaxation must lie in (0, 2)";
    else if (!(p->alpha >= 0 && p->alpha <= 1)) why = "HAADF weight alpha must lie in [0, 1]";
    else if (joint && !r) why = "HEBT needs the response-ratio factors";
    else if (p->subsets < 1 || p->subsets > g->n_angles) why = "subsets must lie in 1..number of angles";
    else if ((size_t)p->subsets * np > MAX_COLSUM_VALUES) why = "too many subsets for this slice size";
    else if (!(p->tolerance >= 0 && p->tolerance < 1)) why = "residual tolerance must lie in [0, 1)";
    else if (!(p->counts_per_unit >= 0) || !isfinite(p->counts_per_unit)) why = "counts per unit must be >= 0";
    else if (p->residual_every < 0) why = "residual_every must be >= 0";
    double r_sum = 0;
    for (int e = 0; !why && joint && e < n_el; e++) {
        if (!(r[e] >= 0) || !isfinite(r[e])) why = "response-ratio factors must be finite and >= 0";
        r_sum += r[e];
    }
    if (!why && joint && !(r_sum > 0)) why = "response-ratio factors are all zero";
    if (why) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    recon rc = {.g = g, .n_slices = n_slices, .n_el = n_el, .eds = eds, .haadf = joint ? haadf : NULL,
                .r_sum = r_sum, .p = p, .alpha = joint ? p->alpha : 0, .out = out, .n_sub = p->subsets};
    rc.rn = xcalloc((size_t)n_el, sizeof(double));
    for (int e = 0; joint && e < n_el; e++) rc.rn[e] = r[e] / r_sum;
    plan_subsets(&rc);
    /* Row sums of W from W 1, column sums of each subset's W_s from W_s^T 1. */
    float *ones = xmalloc((ns > np ? ns : np) * sizeof(float));
    for (size_t i = 0; i < (ns > np ? ns : np); i++) ones[i] = 1.0f;
    rc.inv_row = xmalloc(ns * sizeof(float));
    rc.inv_col = xmalloc((size_t)rc.n_sub * np * sizeof(float));
    tomo_project(g, ones, rc.inv_row);
    for (int s = 0; s < rc.n_sub; s++) tomo_backproject(&rc.sub_geom[s], ones, rc.inv_col + (size_t)s * np);
    for (size_t i = 0; i < ns; i++) rc.inv_row[i] = rc.inv_row[i] > 1e-6f ? 1.0f / rc.inv_row[i] : 0.0f;
    for (size_t i = 0; i < (size_t)rc.n_sub * np; i++) rc.inv_col[i] = rc.inv_col[i] > 0 ? 1.0f / rc.inv_col[i] : 0.0f;
    free(ones);
    int workers = parallel_workers(n_slices, p->threads);
    size_t slice_bytes = tomo_reconstruct_slice_bytes(g, n_el);
    rc.batch = tomo_batch_size(n_slices, workers, slice_bytes);
    int batches = (n_slices + rc.batch - 1) / rc.batch;
    workers = parallel_workers(batches, p->threads);
    rc.scratch = xcalloc((size_t)workers, sizeof(float *));
    for (int w = 0; w < workers; w++) rc.scratch[w] = xmalloc((size_t)rc.batch * slice_bytes);
    parallel_for(batches, workers, reconstruct_batch, &rc);
    for (int w = 0; w < workers; w++) free(rc.scratch[w]);
    free(rc.scratch);
    free(rc.inv_row);
    free(rc.inv_col);
    free(rc.rn);
    free(rc.order);
    free(rc.sub_start);
    free(rc.sub_angles);
    free(rc.sub_geom);
    return 0;
}
