/* align.c -- jitter correction of a projection series by iterative reprojection: reconstruct, reproject, register
 * each projection to its reprojection, repeat (see tomo.h). Owns nothing between calls; the aligner below lives
 * for one call, its per-angle and per-slice arrays written by disjoint parallel items. */
#include "kernels/tomo/tomo.h"
#include "kernels/registration/registration.h"
#include "core/base/base.h"
#include "core/parallel/parallel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tomo_align_params_default(tomo_align_params *p)
{
    memset(p, 0, sizeof *p);
    p->max_iterations = 20;
    p->tolerance = 0.05;
    p->passes = 3;
    p->subsets = 10;
    p->outlier_mads = 6;
}

typedef struct aligner {
    const float *proj;         /* n_angles x ny x nx, as given */
    int n_angles, ny, nx;
    const double *angles;
    double *sx, *sy;           /* current estimates */
    double *new_sx, *new_sy, *residual;
    unsigned char *outlier, *unsure;
    int unconfident;           /* registrations not confident in the last iteration */
    double median_residual;    /* of the last iteration */
    float *aligned;            /* n_angles x ny x nx: proj shifted back by the estimates */
    float *reproj;             /* ny x n_angles x nx: reprojection, slice-major */
    float *vol;                /* ny x nx x nx */
    tomo_geometry all;         /* every angle, nx x nx slices */
    reg_ctx **ctx;             /* one per worker */
    float **scratch;           /* one per worker: 2 frames */
} aligner;

static size_t frame_size(const aligner *al)
{
    return (size_t)al->ny * al->nx;
}

static void shift_back(const aligner *al, int a, float *dst)
{
    const float *src = al->proj + (size_t)a * frame_size(al);
    reg_warp(src, al->nx, al->ny, dst, al->nx, al->ny, 0, 1, 0, 0, al->sx[a], al->sy[a], 0.0f);
}

static void shift_item(void *ctx, int a, int worker)
{
    aligner *al = ctx;
    shift_back(al, a, al->aligned + (size_t)a * frame_size(al));
}

/* Registers original projection a to its reprojection: the new absolute shift, and the residual of the
 * projection shifted back by it. */
static void register_item(void *ctx, int a, int worker)
{
    aligner *al = ctx;
    const int nx = al->nx, ny = al->ny;
    float *ref = al->scratch[worker], *moved = ref + frame_size(al);
    for (int z = 0; z < ny; z++)
        memcpy(ref + (size_t)z * nx, al->reproj + ((size_t)z * al->n_angles + a) * nx, (size_t)nx * sizeof(float));
    reg_view rv = {.data = ref, .width = nx, .height = ny};
    reg_view mv = {.data = al->proj + (size_t)a * frame_size(al), .width = nx, .height = ny};
    reg_result res;
    char err[256];
    if (reg_set_reference(al->ctx[worker], &rv, err, sizeof err) != 0 ||
        reg_translate(al->ctx[worker], &mv, &res, err, sizeof err) != 0) {
        al->unsure[a] = 1;
        al->new_sx[a] = al->sx[a];
        al->new_sy[a] = al->sy[a];
        al->residual[a] = INFINITY;
        return;
    }
    al->unsure[a] = !res.confident;
    al->new_sx[a] = res.shift_x;
    al->new_sy[a] = res.shift_y;
    reg_warp(mv.data, nx, ny, moved, nx, ny, 0, 1, 0, 0, res.shift_x, res.shift_y, 0.0f);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < frame_size(al); i++) {
        double d = moved[i] - ref[i];
        diff += d * d;
        norm += (double)ref[i] * ref[i];
    }
    al->residual[a] = norm > 0 ? sqrt(diff / norm) : INFINITY;
}

/* Removes the shifts that only move the reconstruction (see tomo.h); returns the axis offset c. */
static double constrain(aligner *al)
{
    double k[4];
    tomo_fit_translation(al->n_angles, al->angles, al->new_sx, al->new_sy, al->outlier, k);
    for (int a = 0; a < al->n_angles; a++) {
        al->new_sx[a] -= tomo_translation_x(k, al->angles[a]) - k[0];
        al->new_sy[a] -= k[3];
    }
    return k[0];
}

/* Starting estimates: the centre of mass of each projection. Line integrals keep the object's mass, so its
 * centre of mass moves with the jitter plus the projected centre of the object (c + a cos + b sin horizontally,
 * a constant vertically, both taken away by constrain()): exact up to noise and truncation, and far better than
 * zero for the first reconstruction. */
static void centre_of_mass_start(aligner *al)
{
    for (int a = 0; a < al->n_angles; a++) {
        const float *f = al->proj + (size_t)a * frame_size(al);
        double sum = 0, mx = 0, my = 0;
        for (int y = 0; y < al->ny; y++)
            for (int x = 0; x < al->nx; x++) {
                double v = f[(size_t)y * al->nx + x];
                sum += v;
                mx += v * (x - al->nx / 2);
                my += v * (y - al->ny / 2);
            }
        al->new_sx[a] = sum > 0 ? mx / sum : 0;
        al->new_sy[a] = sum > 0 ? my / sum : 0;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Flags projections whose residual is far above the others' (the registration's own confidence figure is only
 * counted: smooth projections of a blob-like object often give a low peak-to-side-lobe ratio for a right
 * answer); returns the count.
 * When more than half would be flagged, none is (the residuals say nothing yet). */
static int flag_outliers(aligner *al, double mads, double *mean_residual)
{
    int n = al->n_angles, flagged = 0;
    double *r = xmalloc((size_t)n * sizeof(double)), sum = 0;
    al->unconfident = 0;
    for (int a = 0; a < n; a++) r[a] = al->residual[a];
    qsort(r, (size_t)n, sizeof(double), cmp_double);
    double median = al->median_residual = r[n / 2];
    for (int a = 0; a < n; a++) r[a] = fabs(al->residual[a] - median);
    qsort(r, (size_t)n, sizeof(double), cmp_double);
    double limit = median + mads * 1.4826 * r[n / 2];
    for (int a = 0; a < n; a++) {
        al->unconfident += al->unsure[a];
        al->outlier[a] = !(al->residual[a] <= limit);
        flagged += al->outlier[a];
        sum += isfinite(al->residual[a]) ? al->residual[a] : 0;
    }
    if (2 * flagged > n) {
        memset(al->outlier, 0, (size_t)n);
        flagged = 0;
    }
    *mean_residual = sum / n;
    free(r);
    return flagged;
}

/* Reconstructs every slice from the projections not flagged, shifted back. */
static int reconstruct(aligner *al, const tomo_align_params *p, char *err, size_t errlen)
{
    const int nx = al->nx, ny = al->ny;
    int n_used = 0;
    for (int a = 0; a < al->n_angles; a++) n_used += !al->outlier[a];
    double *angles = xmalloc((size_t)n_used * sizeof(double));
    float *sino = xmalloc((size_t)ny * n_used * nx * sizeof(float));
    for (int a = 0, u = 0; a < al->n_angles; a++) {
        if (al->outlier[a]) continue;
        angles[u] = al->angles[a];
        for (int z = 0; z < ny; z++)
            memcpy(sino + ((size_t)z * n_used + u) * nx, al->aligned + ((size_t)a * ny + z) * nx,
                   (size_t)nx * sizeof(float));
        u++;
    }
    tomo_geometry g = {.n = nx, .n_det = nx, .n_angles = n_used, .angles_deg = angles};
    tomo_params tp;
    tomo_params_default(&tp);
    tp.iterations = p->passes;
    tp.subsets = p->subsets < n_used ? p->subsets : n_used;
    tp.threads = p->threads;
    const float *eds[1] = {sino};
    float *out[1] = {al->vol};
    int rc = tomo_reconstruct(&g, ny, 1, eds, NULL, NULL, &tp, out, err, errlen);
    free(sino);
    free(angles);
    return rc;
}

int tomo_align_jitter(const float *proj, int n_angles, int ny, int nx, const double *angles_deg,
                      const tomo_align_params *p, tomo_align_result *r, float *aligned, float *volume, char *err,
                      size_t errlen)
{
    memset(r, 0, sizeof *r);
    tomo_geometry all = {.n = nx, .n_det = nx, .n_angles = n_angles, .angles_deg = angles_deg};
    const char *why = NULL;
    if (n_angles < 3 || ny < 8 || nx < 8) why = "need at least 3 projections of 8 x 8 pixels";
    else if (p->max_iterations < 1 || p->passes < 1 || p->subsets < 1) why = "iterations, passes and subsets >= 1";
    else if (!(p->tolerance > 0) || !(p->outlier_mads > 0)) why = "tolerance and outlier_mads must be positive";
    if (why) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (tomo_geometry_check(&all, err, errlen) != 0) return -1;
    aligner al = {.proj = proj, .n_angles = n_angles, .ny = ny, .nx = nx, .angles = angles_deg, .all = all};
    size_t na = (size_t)n_angles, frames = na * frame_size(&al);
    al.sx = xcalloc(na, sizeof(double));
    al.sy = xcalloc(na, sizeof(double));
    al.new_sx = xcalloc(na, sizeof(double));
    al.new_sy = xcalloc(na, sizeof(double));
    al.residual = xcalloc(na, sizeof(double));
    al.outlier = xcalloc(na, 1);
    al.unsure = xcalloc(na, 1);
    al.aligned = aligned ? aligned : xmalloc(frames * sizeof(float));
    al.reproj = xmalloc(frames * sizeof(float));
    al.vol = volume ? volume : xmalloc((size_t)ny * nx * nx * sizeof(float));
    int workers = parallel_workers(n_angles, p->threads), rc = -1;
    al.ctx = xcalloc((size_t)workers, sizeof(reg_ctx *));
    al.scratch = xcalloc((size_t)workers, sizeof(float *));
    reg_params rp;
    reg_params_default(&rp);
    for (int w = 0; w < workers; w++) {
        al.scratch[w] = xmalloc(2 * frame_size(&al) * sizeof(float));
        if (!(al.ctx[w] = reg_create(nx, ny, &rp, 0, err, errlen))) goto done;
    }
    r->n_angles = n_angles;
    r->max_update = xcalloc((size_t)p->max_iterations, sizeof(double));
    centre_of_mass_start(&al);
    r->axis_offset = constrain(&al);
    memcpy(al.sx, al.new_sx, na * sizeof(double));
    memcpy(al.sy, al.new_sy, na * sizeof(double));
    for (int it = 1; it <= p->max_iterations; it++) {
        parallel_for(n_angles, p->threads, shift_item, &al);
        if (reconstruct(&al, p, err, errlen) != 0) goto done;
        tomo_project_slices(&al.all, ny, al.vol, al.reproj, p->threads);
        parallel_for(n_angles, workers, register_item, &al);
        r->axis_offset = constrain(&al);
        double update = 0, mean_residual;
        for (int a = 0; a < n_angles; a++) {
            update = fmax(update, fmax(fabs(al.new_sx[a] - al.sx[a]), fabs(al.new_sy[a] - al.sy[a])));
            al.sx[a] = al.new_sx[a];
            al.sy[a] = al.new_sy[a];
        }
        r->n_outliers = flag_outliers(&al, p->outlier_mads, &mean_residual);
        r->n_unconfident = al.unconfident;
        r->max_update[it - 1] = update;
        r->iterations = it;
        if (p->progress) p->progress(p->progress_user, it, update, mean_residual);
        if (update < p->tolerance) {
            r->converged = 1;
            break;
        }
    }
    r->median_residual = al.median_residual;
    r->failed = !(al.median_residual <= TOMO_ALIGN_MAX_RESIDUAL);
    parallel_for(n_angles, p->threads, shift_item, &al);
    r->shift_x = al.sx;
    r->shift_y = al.sy;
    r->residual = al.residual;
    r->outlier = al.outlier;
    al.sx = al.sy = al.residual = NULL;
    al.outlier = NULL;
    rc = 0;
done:
    for (int w = 0; w < workers; w++) {
        if (al.ctx[w]) reg_destroy(al.ctx[w]);
        free(al.scratch[w]);
    }
    free(al.ctx);
    free(al.scratch);
    free(al.sx);
    free(al.sy);
    free(al.new_sx);
    free(al.new_sy);
    free(al.residual);
    free(al.outlier);
    free(al.unsure);
    free(al.reproj);
    if (al.aligned != aligned) free(al.aligned);
    if (al.vol != volume) free(al.vol);
    if (rc != 0) tomo_align_result_free(r);
    return rc;
}

void tomo_align_result_free(tomo_align_result *r)
{
    free(r->shift_x);
    free(r->shift_y);
    free(r->residual);
    free(r->outlier);
    free(r->max_update);
    memset(r, 0, sizeof *r);
}
