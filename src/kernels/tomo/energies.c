/* energies.c -- registration of whole tomograms across energies: magnification (given or fitted), contrast-robust
 * matching angle by angle, a robust fit of the 3D-translation model, quality figures (see tomo.h). Owns nothing
 * between calls; the matcher below lives for one call, its per-angle arrays written by disjoint parallel items and
 * its per-worker contexts and buffers used by one worker each. */
#include "kernels/tomo/tomo.h"
#include "kernels/registration/registration.h"
#include "core/base/base.h"
#include "core/parallel/parallel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tomo_energy_params_default(tomo_energy_params *p)
{
    memset(p, 0, sizeof *p);
    p->match = TOMO_MATCH_EDGES;
    p->edge_sigma = 1.0;
    p->fit_magnification = 1;
    p->magnification_range = 0.1;
    p->magnification_tolerance = 0.005;
    p->max_rms = 1.0;
    p->min_correlation = 0.2;
}

typedef struct matcher {
    const float *ref, *mov;
    int n_angles, ny, nx, stride;  /* angles visited: every stride-th (the magnification fit uses a subset) */
    const tomo_energy_params *p;
    double m;                      /* magnification of this round */
    double *mx, *my, *corr;        /* per angle */
    int *failed;                   /* per angle: the registration refused the pair */
    reg_ctx **ctx;                 /* one per worker */
    float **scratch;               /* one per worker: 3 frames */
} matcher;

/* The representation matched: the edge map or the projection itself. */
static void represent(const matcher *mt, const float *src, float *dst)
{
    size_t n = (size_t)mt->nx * mt->ny;
    if (mt->p->match == TOMO_MATCH_EDGES) reg_edge_map(src, mt->nx, mt->ny, mt->p->edge_sigma, dst);
    else memcpy(dst, src, n * sizeof(float));
}

/* Projection item * stride of the moving series scaled onto the reference grid, matched to the reference's. */
static void match_item(void *ctx, int item, int worker)
{
    matcher *mt = ctx;
    int a = item * mt->stride, nx = mt->nx, ny = mt->ny;
    size_t n = (size_t)nx * ny;
    float *warped = mt->scratch[worker], *rep_ref = warped + n, *rep_mov = rep_ref + n;
    reg_warp(mt->mov + a * n, nx, ny, warped, nx, ny, 0, mt->m, nx / 2, ny / 2, 0, 0, 0.0f);
    represent(mt, mt->ref + a * n, rep_ref);
    represent(mt, warped, rep_mov);
    reg_view rv = {.data = rep_ref, .width = nx, .height = ny}, mv = {.data = rep_mov, .width = nx, .height = ny};
    reg_result res;
    char err[256];
    mt->failed[a] = reg_set_reference(mt->ctx[worker], &rv, err, sizeof err) != 0 ||
                    reg_translate(mt->ctx[worker], &mv, &res, err, sizeof err) != 0;
    mt->mx[a] = mt->failed[a] ? NAN : res.shift_x;
    mt->my[a] = mt->failed[a] ? NAN : res.shift_y;
    mt->corr[a] = mt->failed[a] ? 0 : res.correlation;
}

/* Matches every stride-th angle at magnification m; returns their mean correlation. */
static double match_at(matcher *mt, double m, int stride)
{
    mt->m = m;
    mt->stride = stride;
    int count = (mt->n_angles + stride - 1) / stride;
    parallel_for(count, mt->p->threads, match_item, mt);
    double sum = 0;
    for (int i = 0; i < count; i++) sum += mt->corr[i * stride];
    return sum / count;
}

/* The magnification within +-range of m0 that maximizes the mean correlation over about 20 angles: a 1 % grid,
 * then golden-section search in the best cell's neighbourhood down to 1e-4 relative. */
static double fit_magnification(matcher *mt, double m0)
{
    int stride = mt->n_angles > 20 ? mt->n_angles / 20 : 1, steps = (int)ceil(mt->p->magnification_range / 0.01);
    double best = m0, best_score = -INFINITY;
    for (int k = -steps; k <= steps; k++) {
        double m = m0 * (1 + 0.01 * k), score = match_at(mt, m, stride);
        if (score > best_score) {
            best_score = score;
            best = m;
        }
    }
    const double phi = 0.6180339887498949;
    double lo = best - 0.01 * m0, hi = best + 0.01 * m0;
    double x1 = hi - phi * (hi - lo), x2 = lo + phi * (hi - lo);
    double f1 = match_at(mt, x1, stride), f2 = match_at(mt, x2, stride);
    while (hi - lo > 1e-4 * m0) {
        if (f1 > f2) {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - phi * (hi - lo);
            f1 = match_at(mt, x1, stride);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + phi * (hi - lo);
            f2 = match_at(mt, x2, stride);
        }
    }
    return 0.5 * (lo + hi);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Fits the model to the matches robustly (see tomo.h) and fills the result's model, per-angle and quality
 * fields. */
static void fit_robustly(const matcher *mt, const double *angles, tomo_energy_result *r)
{
    int n = mt->n_angles, used = 0;
    double k[4] = {0}, *dev = xmalloc((size_t)n * sizeof(double));
    unsigned char *skip = xmalloc((size_t)n);
    for (int a = 0; a < n; a++) used += r->used[a] = !mt->failed[a] && isfinite(mt->mx[a]) && isfinite(mt->my[a]);
    for (int round = 0; round < 3 && used >= 2; round++) {
        for (int a = 0; a < n; a++) skip[a] = !r->used[a];
        tomo_fit_translation(n, angles, mt->mx, mt->my, skip, k);
        int m = 0;
        for (int a = 0; a < n; a++)
            if (!mt->failed[a])
                dev[m++] = hypot(mt->mx[a] - tomo_translation_x(k, angles[a]), mt->my[a] - k[3]);
        double med = median_of(dev, m);
        for (int i = 0; i < m; i++) dev[i] = fabs(dev[i] - med);
        double limit = fmax(med + 3 * 1.4826 * median_of(dev, m), 0.5);
        used = 0;
        for (int a = 0; a < n; a++)
            used += r->used[a] = !mt->failed[a] &&
                                 hypot(mt->mx[a] - tomo_translation_x(k, angles[a]), mt->my[a] - k[3]) <= limit;
    }
    for (int a = 0; a < n; a++) skip[a] = !r->used[a];
    if (used >= 2) tomo_fit_translation(n, angles, mt->mx, mt->my, skip, k);
    free(skip);
    double sxx = 0, syy = 0;
    int m = 0;
    for (int a = 0; a < n; a++) {
        r->match_x[a] = mt->mx[a];
        r->match_y[a] = mt->my[a];
        r->shift_x[a] = tomo_translation_x(k, angles[a]);
        r->shift_y[a] = k[3];
        if (!r->used[a]) continue;
        double ex = mt->mx[a] - r->shift_x[a], ey = mt->my[a] - k[3];
        sxx += ex * ex;
        syy += ey * ey;
        dev[m++] = mt->corr[a];
    }
    r->c = k[0];
    r->a = k[1];
    r->b = k[2];
    r->d = k[3];
    r->confidence = (double)used / n;
    r->rms_px = used > 0 ? sqrt((sxx + syy) / used) : INFINITY;
    r->error_px = used > 0 ? sqrt((3 * sxx / used + syy / used) / used) : INFINITY;
    r->correlation = m > 0 ? median_of(dev, m) : 0;
    free(dev);
}

int tomo_register_energy(const float *ref, const float *mov, int n_angles, int ny, int nx, const double *angles_deg,
                         double m_nominal, const tomo_energy_params *p, tomo_energy_result *r, float *registered,
                         char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    const char *why = NULL;
    if (n_angles < 1 || ny < 8 || nx < 8) why = "need at least 1 projection of 8 x 8 pixels per series";
    else if (!(m_nominal > 0.2 && m_nominal < 5)) why = "nominal magnification must lie in (0.2, 5)";
    else if (!(p->edge_sigma >= 0 && p->edge_sigma <= 16)) why = "edge sigma must lie in [0, 16] px";
    else if (!(p->magnification_range > 0 && p->magnification_range < 0.5)) why = "magnification range in (0, 0.5)";
    else if (!(p->magnification_tolerance >= 0) || !(p->max_rms > 0) || !(p->min_correlation < 1))
        why = "bad magnification tolerance, max rms or min correlation";
    for (int a = 0; !why && a < n_angles; a++)
        if (!isfinite(angles_deg[a])) why = "angles must be finite numbers";
    if (why) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    size_t na = (size_t)n_angles, n = (size_t)nx * ny;
    matcher mt = {.ref = ref, .mov = mov, .n_angles = n_angles, .ny = ny, .nx = nx, .p = p};
    mt.mx = xcalloc(na, sizeof(double));
    mt.my = xcalloc(na, sizeof(double));
    mt.corr = xcalloc(na, sizeof(double));
    mt.failed = xcalloc(na, sizeof(int));
    int workers = parallel_workers(n_angles, p->threads), rc = -1;
    mt.ctx = xcalloc((size_t)workers, sizeof(reg_ctx *));
    mt.scratch = xcalloc((size_t)workers, sizeof(float *));
    reg_params rp;
    reg_params_default(&rp);
    for (int w = 0; w < workers; w++) {
        mt.scratch[w] = xmalloc(3 * n * sizeof(float));
        if (!(mt.ctx[w] = reg_create(nx, ny, &rp, 0, err, errlen))) goto done;
    }
    r->n_angles = n_angles;
    r->shift_x = xcalloc(na, sizeof(double));
    r->shift_y = xcalloc(na, sizeof(double));
    r->match_x = xcalloc(na, sizeof(double));
    r->match_y = xcalloc(na, sizeof(double));
    r->used = xcalloc(na, 1);
    r->magnification_nominal = r->magnification = m_nominal;
    r->magnification_fitted = NAN;
    if (p->fit_magnification) {
        r->magnification_fitted = fit_magnification(&mt, m_nominal);
        if (fabs(r->magnification_fitted / m_nominal - 1) > p->magnification_tolerance) {
            r->magnification = r->magnification_fitted;
            r->pixel_size_off = 1;
        }
    }
    match_at(&mt, r->magnification, 1);
    fit_robustly(&mt, angles_deg, r);
    if (r->confidence < 0.5)
        snprintf(r->why, sizeof r->why, "only %.0f %% of the angles agree on one 3D translation",
                 100 * r->confidence);
    else if (!(r->rms_px <= p->max_rms))
        snprintf(r->why, sizeof r->why, "matches scatter by %.2f px about the fit (limit %.2f)", r->rms_px,
                 p->max_rms);
    else if (!(r->correlation >= p->min_correlation))
        snprintf(r->why, sizeof r->why, "median correlation %.2f below %.2f", r->correlation, p->min_correlation);
    r->failed = r->why[0] != 0;
    for (int a = 0; registered && a < n_angles; a++) {
        double m = r->magnification;
        reg_warp(mov + a * n, nx, ny, registered + a * n, nx, ny, 0, m, nx / 2, ny / 2, m * r->shift_x[a],
                 m * r->shift_y[a], 0.0f);
    }
    rc = 0;
done:
    for (int w = 0; w < workers; w++) {
        if (mt.ctx[w]) reg_destroy(mt.ctx[w]);
        free(mt.scratch[w]);
    }
    free(mt.ctx);
    free(mt.scratch);
    free(mt.mx);
    free(mt.my);
    free(mt.corr);
    free(mt.failed);
    if (rc != 0) tomo_energy_result_free(r);
    return rc;
}

void tomo_energy_result_free(tomo_energy_result *r)
{
    free(r->shift_x);
    free(r->shift_y);
    free(r->match_x);
    free(r->match_y);
    free(r->used);
    memset(r, 0, sizeof *r);
}
