/* sirt.c -- SIRT for EDS-only and joint HAADF-EDS (HEBT) systems, slice by slice in parallel (see tomo.h). */
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
}

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
    float *inv_row;            /* 1 / (W 1), 0 for rays that miss the slice */
    float *colsum;             /* W^T 1 */
    float **scratch;           /* one block per worker */
} recon;

static size_t sino_size(const tomo_geometry *g)
{
    return (size_t)g->n_angles * g->n_det;
}

/* One slice: the joint SIRT iterations on x_A = out[e] + slice offset (see tomo.h for the system). */
static void reconstruct_slice(void *ctx, int slice, int worker)
{
    const recon *rc = ctx;
    const tomo_geometry *g = rc->g;
    const size_t ns = sino_size(g), np = (size_t)g->n * g->n;
    const int n_el = rc->n_el, joint = rc->haadf != NULL;
    const double alpha = rc->alpha, lambda = rc->p->relaxation;
    float *proj = rc->scratch[worker];                 /* n_el sinograms: W x_A */
    float *hres = proj + (size_t)n_el * ns;             /* R-weighted HAADF residual */
    float *rows = hres + ns;                            /* weighted residual of one element's rows */
    float *grad = rows + ns;                            /* W^T rows */
    const float *ph = joint ? rc->haadf + (size_t)slice * ns : NULL;
    double bnorm = 0;
    for (size_t i = 0; ph && i < ns; i++) bnorm += alpha * alpha * ph[i] * ph[i] / (rc->r_sum * rc->r_sum);
    for (int e = 0; e < n_el; e++) {
        const float *pe = rc->eds[e] + (size_t)slice * ns;
        for (size_t i = 0; i < ns; i++) bnorm += (1 - alpha) * (1 - alpha) * pe[i] * pe[i];
        memset(rc->out[e] + (size_t)slice * np, 0, np * sizeof(float));
    }
    for (int it = 1; it <= rc->p->iterations; it++) {
        double rnorm = 0;
        for (int e = 0; e < n_el; e++) tomo_project(g, rc->out[e] + (size_t)slice * np, proj + (size_t)e * ns);
        if (joint) {
            for (size_t i = 0; i < ns; i++) {
                double model = 0;
                for (int e = 0; e < n_el; e++) model += rc->rn[e] * proj[(size_t)e * ns + i];
                double d = ph[i] / rc->r_sum - model;
                rnorm += alpha * alpha * d * d;
                hres[i] = (float)(d * rc->inv_row[i]);
            }
        }
        for (int e = 0; e < n_el; e++) {
            const float *pe = rc->eds[e] + (size_t)slice * ns, *pr = proj + (size_t)e * ns;
            for (size_t i = 0; i < ns; i++) {
                double d = pe[i] - pr[i];
                rnorm += (1 - alpha) * (1 - alpha) * d * d;
                double v = (1 - alpha) * d * rc->inv_row[i];
                if (joint) v += alpha * rc->rn[e] * hres[i];
                rows[i] = (float)v;
            }
            tomo_backproject(g, rows, grad);
            float *x = rc->out[e] + (size_t)slice * np;
            double weight = joint ? alpha * rc->rn[e] + (1 - alpha) : 1.0;
            for (size_t j = 0; j < np; j++) {
                double cs = rc->colsum[j] * weight;
                if (cs <= 0) continue;
                double v = x[j] + lambda * grad[j] / cs;
                x[j] = (float)(rc->p->nonneg && v < 0 ? 0 : v);
            }
        }
        if (rc->p->progress)
            rc->p->progress(rc->p->progress_user, slice, rc->n_slices, it, rc->p->iterations,
                            bnorm > 0 ? sqrt(rnorm / bnorm) : 0);
    }
}

int tomo_reconstruct(const tomo_geometry *g, int n_slices, int n_el, const float *const *eds, const float *haadf,
                     const double *r, const tomo_params *p, float *const *out, char *err, size_t errlen)
{
    if (tomo_geometry_check(g, err, errlen) != 0) return -1;
    const char *why = NULL;
    int joint = haadf && p->alpha > 0;
    if (n_slices < 1 || n_el < 1) why = "nothing to reconstruct (no slices or no elements)";
    else if (p->iterations < 1 || p->iterations > 1000000) why = "iterations out of range 1..1000000";
    else if (!(p->relaxation > 0 && p->relaxation < 2)) why = "relaxation must lie in (0, 2)";
    else if (!(p->alpha >= 0 && p->alpha <= 1)) why = "HAADF weight alpha must lie in [0, 1]";
    else if (joint && !r) why = "HEBT needs the response-ratio factors";
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
    const size_t ns = sino_size(g), np = (size_t)g->n * g->n;
    recon rc = {.g = g, .n_slices = n_slices, .n_el = n_el, .eds = eds, .haadf = joint ? haadf : NULL,
                .r_sum = r_sum, .p = p, .alpha = joint ? p->alpha : 0, .out = out};
    rc.rn = xcalloc((size_t)n_el, sizeof(double));
    for (int e = 0; joint && e < n_el; e++) rc.rn[e] = r[e] / r_sum;
    /* Row and column sums of W, from W 1 and W^T 1. */
    float *ones = xmalloc((ns > np ? ns : np) * sizeof(float));
    for (size_t i = 0; i < (ns > np ? ns : np); i++) ones[i] = 1.0f;
    rc.inv_row = xmalloc(ns * sizeof(float));
    rc.colsum = xmalloc(np * sizeof(float));
    tomo_project(g, ones, rc.inv_row);
    tomo_backproject(g, ones, rc.colsum);
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
    return 0;
}
