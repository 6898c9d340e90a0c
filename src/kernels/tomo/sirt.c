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

/* The largest table of per-subset column sums (floats) tomo_reconstruct keeps: 256 MB. */
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
    float *colsum;             /* n_sub x (n x n): W_s^T 1 */
    float **scratch;           /* one block per worker */
} recon;

static size_t sino_size(const tomo_geometry *g)
{
    return (size_t)g->n_angles * g->n_det;
}

/* One slice: passes of the joint update over the subsets (see tomo.h), each on x_A = out[e] + slice offset. */
static void reconstruct_slice(void *ctx, int slice, int worker)
{
    const recon *rc = ctx;
    const tomo_geometry *g = rc->g;
    const size_t ns = sino_size(g), np = (size_t)g->n * g->n;
    const int n_el = rc->n_el, joint = rc->haadf != NULL, n_det = g->n_det;
    const double alpha = rc->alpha, lambda = rc->p->relaxation, tol = rc->p->tolerance;
    float *proj = rc->scratch[worker];                 /* n_el sinograms of a subset: W_s x_A */
    float *hres = proj + (size_t)n_el * ns;             /* R-weighted HAADF residual */
    float *rows = hres + ns;                            /* weighted residual of one element's rows */
    float *grad = rows + ns;                            /* W_s^T rows */
    const float *ph = joint ? rc->haadf + (size_t)slice * ns : NULL;
    double bnorm = 0, previous = INFINITY;
    for (size_t i = 0; ph && i < ns; i++) bnorm += alpha * alpha * ph[i] * ph[i] / (rc->r_sum * rc->r_sum);
    for (int e = 0; e < n_el; e++) {
        const float *pe = rc->eds[e] + (size_t)slice * ns;
        for (size_t i = 0; i < ns; i++) bnorm += (1 - alpha) * (1 - alpha) * pe[i] * pe[i];
        memset(rc->out[e] + (size_t)slice * np, 0, np * sizeof(float));
    }
    for (int it = 1; it <= rc->p->iterations; it++) {
        double rnorm = 0;
        for (int sub = 0; sub < rc->n_sub; sub++) {
            const tomo_geometry *gs = &rc->sub_geom[sub];
            const int *angle = rc->order + rc->sub_start[sub];
            const size_t nss = sino_size(gs);
            const float *colsum = rc->colsum + (size_t)sub * np;
            for (int e = 0; e < n_el; e++) tomo_project(gs, rc->out[e] + (size_t)slice * np, proj + (size_t)e * nss);
            for (int a = 0; joint && a < gs->n_angles; a++)
                for (int k = 0; k < n_det; k++) {
                    size_t i = (size_t)a * n_det + k, ray = (size_t)angle[a] * n_det + k;
                    double model = 0;
                    for (int e = 0; e < n_el; e++) model += rc->rn[e] * proj[(size_t)e * nss + i];
                    double d = ph[ray] / rc->r_sum - model;
                    rnorm += alpha * alpha * d * d;
                    hres[i] = (float)(d * rc->inv_row[ray]);
                }
            for (int e = 0; e < n_el; e++) {
                const float *pe = rc->eds[e] + (size_t)slice * ns, *pr = proj + (size_t)e * nss;
                for (int a = 0; a < gs->n_angles; a++)
                    for (int k = 0; k < n_det; k++) {
                        size_t i = (size_t)a * n_det + k, ray = (size_t)angle[a] * n_det + k;
                        double d = pe[ray] - pr[i];
                        rnorm += (1 - alpha) * (1 - alpha) * d * d;
                        double v = (1 - alpha) * d * rc->inv_row[ray];
                        if (joint) v += alpha * rc->rn[e] * hres[i];
                        rows[i] = (float)v;
                    }
                tomo_backproject(gs, rows, grad);
                float *x = rc->out[e] + (size_t)slice * np;
                double weight = joint ? alpha * rc->rn[e] + (1 - alpha) : 1.0;
                for (size_t j = 0; j < np; j++) {
                    double cs = colsum[j] * weight;
                    if (cs <= 0) continue;
                    double v = x[j] + lambda * grad[j] / cs;
                    x[j] = (float)(rc->p->nonneg && v < 0 ? 0 : v);
                }
            }
        }
        double residual = bnorm > 0 ? sqrt(rnorm / bnorm) : 0;
        int done = it == rc->p->iterations || residual == 0 || (tol > 0 && previous - residual < tol * previous);
        if (rc->p->progress)
            rc->p->progress(rc->p->progress_user, slice, rc->n_slices, it, rc->p->iterations, residual, done);
        if (done) break;
        previous = residual;
    }
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
    rc.colsum = xmalloc((size_t)rc.n_sub * np * sizeof(float));
    tomo_project(g, ones, rc.inv_row);
    for (int s = 0; s < rc.n_sub; s++) tomo_backproject(&rc.sub_geom[s], ones, rc.colsum + (size_t)s * np);
    for (size_t i = 0; i < ns; i++) rc.inv_row[i] = rc.inv_row[i] > 1e-6f ? 1.0f / rc.inv_row[i] : 0.0f;
    free(ones);
    int workers = parallel_workers(n_slices, p->threads);
    rc.scratch = xcalloc((size_t)workers, sizeof(float *));
    for (int w = 0; w < workers; w++) rc.scratch[w] = xmalloc(((size_t)(n_el + 2) * ns + np) * sizeof(float));
    parallel_for(n_slices, workers, reconstruct_slice, &rc);
    for (int w = 0; w < workers; w++) free(rc.scratch[w]);
    free(rc.scratch);
    free(rc.inv_row);
    free(rc.colsum);
    free(rc.rn);
    free(rc.order);
    free(rc.sub_start);
    free(rc.sub_angles);
    free(rc.sub_geom);
    return 0;
}
