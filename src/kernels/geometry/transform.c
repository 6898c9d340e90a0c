/* transform.c -- 2D affine transforms and their least-squares fit from point pairs, with robust rejection
 * of outliers (mapping.h). Solves small normal-equation systems directly; no allocation. */
#include "kernels/geometry/geometry.h"

#include "core/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#define RANSAC_MAX_TRIALS 2000

affine2d affine_identity(void)
{
    affine2d a = {{{1, 0}, {0, 1}}, {0, 0}};
    return a;
}

void affine_apply(const affine2d *a, double x, double y, double *ox, double *oy)
{
    double rx = a->m[0][0] * x + a->m[0][1] * y + a->t[0];
    double ry = a->m[1][0] * x + a->m[1][1] * y + a->t[1];
    *ox = rx;
    *oy = ry;
}

int affine_invert(const affine2d *a, affine2d *inv)
{
    double det = a->m[0][0] * a->m[1][1] - a->m[0][1] * a->m[1][0];
    double norm = fabs(a->m[0][0]) + fabs(a->m[0][1]) + fabs(a->m[1][0]) + fabs(a->m[1][1]);
    if (!(fabs(det) > 1e-12 * norm * norm)) return -1;
    affine2d r;
    r.m[0][0] = a->m[1][1] / det;
    r.m[0][1] = -a->m[0][1] / det;
    r.m[1][0] = -a->m[1][0] / det;
    r.m[1][1] = a->m[0][0] / det;
    r.t[0] = -(r.m[0][0] * a->t[0] + r.m[0][1] * a->t[1]);
    r.t[1] = -(r.m[1][0] * a->t[0] + r.m[1][1] * a->t[1]);
    *inv = r;
    return 0;
}

affine2d affine_compose(const affine2d *outer, const affine2d *inner)
{
    affine2d r;
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) r.m[i][j] = outer->m[i][0] * inner->m[0][j] + outer->m[i][1] * inner->m[1][j];
        r.t[i] = outer->m[i][0] * inner->t[0] + outer->m[i][1] * inner->t[1] + outer->t[i];
    }
    return r;
}

void affine_decompose(const affine2d *a, double *scale_x, double *scale_y, double *rotation_deg, double *shear,
                      int *mirrored)
{
    /* M = R(theta) * [[sx, k], [0, sy]] with sx > 0; a mirror shows as sy < 0 */
    double sx = hypot(a->m[0][0], a->m[1][0]);
    double theta = atan2(a->m[1][0], a->m[0][0]);
    double c = cos(theta), s = sin(theta);
    double k = c * a->m[0][1] + s * a->m[1][1];
    double sy = -s * a->m[0][1] + c * a->m[1][1];
    *scale_x = sx;
    *scale_y = fabs(sy);
    *rotation_deg = theta * 180.0 / M_PI;
    *shear = sx > 0 ? k / sx : 0;
    *mirrored = sy < 0;
}

/* Solves the n x n system A x = b (n <= 6) by Gaussian elimination with partial pivoting; -1 if singular. */
static int solve(int n, double A[6][6], double b[6], double x[6])
{
    double scale = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) scale = fmax(scale, fabs(A[i][j]));
    for (int col = 0; col < n; col++) {
        int pivot = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(A[r][col]) > fabs(A[pivot][col])) pivot = r;
        if (!(fabs(A[pivot][col]) > 1e-12 * scale)) return -1;
        for (int j = 0; j < n; j++) {
            double tmp = A[col][j];
            A[col][j] = A[pivot][j];
            A[pivot][j] = tmp;
        }
        double tmp = b[col];
        b[col] = b[pivot];
        b[pivot] = tmp;
        for (int r = col + 1; r < n; r++) {
            double f = A[r][col] / A[col][col];
            for (int j = col; j < n; j++) A[r][j] -= f * A[col][j];
            b[r] -= f * b[col];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double sum = b[r];
        for (int j = r + 1; j < n; j++) sum -= A[r][j] * x[j];
        x[r] = sum / A[r][r];
    }
    return 0;
}

/* Least squares over the pairs whose index is in `use` (count k). Points are centred first so that stage
 * coordinates of hundreds of micrometres do not ruin the conditioning. */
static int fit_subset(const double (*src)[2], const double (*dst)[2], const int *use, int k, fit_kind kind,
                      affine2d *out)
{
    double cs[2] = {0, 0}, cd[2] = {0, 0};
    for (int i = 0; i < k; i++)
        for (int d = 0; d < 2; d++) {
            cs[d] += src[use[i]][d] / k;
            cd[d] += dst[use[i]][d] / k;
        }
    double A[6][6] = {{0}}, b[6] = {0}, x[6] = {0};
    int n = kind == FIT_SIMILARITY ? 2 : 4;
    for (int i = 0; i < k; i++) {
        double sx = src[use[i]][0] - cs[0], sy = src[use[i]][1] - cs[1];
        double dx = dst[use[i]][0] - cd[0], dy = dst[use[i]][1] - cd[1];
        if (kind == FIT_SIMILARITY) {
            /* dx = a sx - b sy, dy = b sx + a sy */
            double rows[2][2] = {{sx, -sy}, {sy, sx}}, rhs[2] = {dx, dy};
            for (int r = 0; r < 2; r++)
                for (int p = 0; p < 2; p++) {
                    b[p] += rows[r][p] * rhs[r];
                    for (int q = 0; q < 2; q++) A[p][q] += rows[r][p] * rows[r][q];
                }
        } else {
            /* dx = m00 sx + m01 sy; dy = m10 sx + m11 sy: two independent 2x2 systems stacked */
            double v[2] = {sx, sy};
            for (int p = 0; p < 2; p++) {
                b[p] += v[p] * dx;
                b[2 + p] += v[p] * dy;
                for (int q = 0; q < 2; q++) {
                    A[p][q] += v[p] * v[q];
                    A[2 + p][2 + q] += v[p] * v[q];
                }
            }
        }
    }
    if (solve(n, A, b, x) != 0) return -1;
    affine2d t;
    if (kind == FIT_SIMILARITY) {
        t.m[0][0] = x[0];
        t.m[0][1] = -x[1];
        t.m[1][0] = x[1];
        t.m[1][1] = x[0];
    } else {
        t.m[0][0] = x[0];
        t.m[0][1] = x[1];
        t.m[1][0] = x[2];
        t.m[1][1] = x[3];
    }
    t.t[0] = cd[0] - (t.m[0][0] * cs[0] + t.m[0][1] * cs[1]);
    t.t[1] = cd[1] - (t.m[1][0] * cs[0] + t.m[1][1] * cs[1]);
    *out = t;
    return 0;
}

static double residual(const affine2d *t, const double *src, const double *dst)
{
    double x, y;
    affine_apply(t, src[0], src[1], &x, &y);
    return hypot(x - dst[0], y - dst[1]);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_residual(const affine2d *t, const double (*src)[2], const double (*dst)[2], int n)
{
    double r[FIT_MAX_POINTS];
    for (int i = 0; i < n; i++) r[i] = residual(t, src[i], dst[i]);
    qsort(r, (size_t)n, sizeof r[0], compare_doubles);
    return n % 2 ? r[n / 2] : 0.5 * (r[n / 2 - 1] + r[n / 2]);
}

/* Next k-combination of 0..n-1 in lexicographic order; 0 when there is none. */
static int next_combination(int *c, int k, int n)
{
    int i = k - 1;
    while (i >= 0 && c[i] == n - k + i) i--;
    if (i < 0) return 0;
    c[i]++;
    for (int j = i + 1; j < k; j++) c[j] = c[j - 1] + 1;
    return 1;
}

static uint64_t lcg(uint64_t *s) { return *s = *s * 6364136223846793005ULL + 1442695040888963407ULL; }

/* Robust model search over minimal subsets. With a threshold: the model with most pairs within it
 * (RANSAC; ties go to the smaller median residual). Without: the model with the least median residual
 * (LMedS), whose median then sets the threshold -- a fixed score for all candidates, so a bad model cannot
 * win by being so bad that its own threshold swallows every pair. */
static int robust_model(const double (*src)[2], const double (*dst)[2], int n, fit_kind kind, double threshold,
                        affine2d *best, double *used_threshold)
{
    int k = kind == FIT_SIMILARITY ? 2 : 3;
    double combos = 1;
    for (int i = 0; i < k; i++) combos = combos * (n - i) / (i + 1);
    int exhaustive = combos <= RANSAC_MAX_TRIALS;
    int c[3] = {0, 1, 2};
    uint64_t seed = 0x5eed;
    int best_count = -1;
    double best_median = INFINITY;
    for (int trial = 0; trial < RANSAC_MAX_TRIALS; trial++) {
        if (!exhaustive) {
            for (int i = 0; i < k; i++) {
                int fresh;
                do {
                    c[i] = (int)((lcg(&seed) >> 33) % (uint64_t)n);
                    fresh = 1;
                    for (int j = 0; j < i; j++) fresh &= c[j] != c[i];
                } while (!fresh);
            }
        }
        affine2d t;
        if (fit_subset(src, dst, c, k, kind, &t) == 0) {
            double median = median_residual(&t, src, dst, n);
            int count = 0;
            if (threshold > 0)
                for (int i = 0; i < n; i++) count += residual(&t, src[i], dst[i]) <= threshold;
            if (count > best_count || (count == best_count && median < best_median)) {
                best_count = count;
                best_median = median;
                *best = t;
            }
        }
        if (exhaustive && !next_combination(c, k, n)) break;
    }
    if (best_count < 0) return -1;
    *used_threshold = threshold > 0 ? threshold : fmax(3 * best_median, 1e-6);
    return 0;
}

int transform_fit(const double (*src)[2], const double (*dst)[2], int n, fit_kind kind, int robust,
                  double threshold, fit_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int need = kind == FIT_SIMILARITY ? 2 : 3;
    if (n < need) return error_set(err, errlen, "a %s fit needs at least %d point pairs, got %d",
                                   kind == FIT_SIMILARITY ? "similarity" : "affine", need, n);
    if (n > FIT_MAX_POINTS) return error_set(err, errlen, "at most %d point pairs, got %d", FIT_MAX_POINTS, n);
    out->n = n;
    int use[FIT_MAX_POINTS] = {0};
    int k = 0;
    if (robust && n >= 5) {
        affine2d model = affine_identity();
        double limit = 0;
        if (robust_model(src, dst, n, kind, threshold, &model, &limit) != 0)
            return error_set(err, errlen, "no consistent transform: the points are degenerate (coincident or collinear)");
        for (int i = 0; i < n; i++)
            if (residual(&model, src[i], dst[i]) <= limit) use[k++] = i;
    } else {
        for (int i = 0; i < n; i++) use[k++] = i;
    }
    if (fit_subset(src, dst, use, k, kind, &out->transform) != 0)
        return error_set(err, errlen, "degenerate point pairs: they are coincident%s",
                         kind == FIT_AFFINE ? " or collinear (an affine fit needs 3 points not on one line)" : "");
    double sum2 = 0;
    for (int i = 0; i < n; i++) out->residual[i] = residual(&out->transform, src[i], dst[i]);
    for (int i = 0; i < k; i++) {
        out->inlier[use[i]] = 1;
        sum2 += out->residual[use[i]] * out->residual[use[i]];
    }
    out->ninliers = k;
    out->rms = sqrt(sum2 / k);
    return 0;
}

affine2d layer_pixel_to_stage(const layer_geometry *g)
{
    double c = cos(g->rotation_deg * M_PI / 180), s = sin(g->rotation_deg * M_PI / 180);
    double sx = g->pixel_size_x * (g->flip_x ? -1 : 1), sy = g->pixel_size_y * (g->flip_y ? -1 : 1);
    affine2d a;
    a.m[0][0] = c * sx;
    a.m[0][1] = -s * sy;
    a.m[1][0] = s * sx;
    a.m[1][1] = c * sy;
    a.t[0] = g->ref_stage_x - (a.m[0][0] * g->ref_pixel_x + a.m[0][1] * g->ref_pixel_y);
    a.t[1] = g->ref_stage_y - (a.m[1][0] * g->ref_pixel_x + a.m[1][1] * g->ref_pixel_y);
    return a;
}

layer_geometry layer_from_transform(const affine2d *a, double ref_x, double ref_y)
{
    layer_geometry g;
    memset(&g, 0, sizeof g);
    double shear;
    int mirrored;
    affine_decompose(a, &g.pixel_size_x, &g.pixel_size_y, &g.rotation_deg, &shear, &mirrored);
    g.flip_y = mirrored;     /* a mirror is expressed as a flip of the image's y axis */
    g.ref_pixel_x = ref_x;
    g.ref_pixel_y = ref_y;
    affine_apply(a, ref_x, ref_y, &g.ref_stage_x, &g.ref_stage_y);
    return g;
}
