/* project.c -- Joseph's parallel-beam projector and its exact transpose, the back-projector (see tomo.h). */
#include "kernels/tomo/tomo.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int tomo_geometry_check(const tomo_geometry *g, char *err, size_t errlen)
{
    const char *why = NULL;
    if (g->n < 1 || g->n > 65536) why = "slice size out of range 1..65536";
    else if (g->n_det < 1 || g->n_det > 65536) why = "detector size out of range 1..65536";
    else if (g->n_angles < 1 || !g->angles_deg) why = "no tilt angles";
    else if (!(g->det_spacing >= 0) || !isfinite(g->centre_offset)) why = "bad detector spacing or centre offset";
    for (int a = 0; !why && a < g->n_angles; a++)
        if (!isfinite(g->angles_deg[a])) why = "tilt angles must be finite numbers";
    if (why && err && errlen) snprintf(err, errlen, "%s", why);
    return why ? -1 : 0;
}

/* One pass over every (angle, beam, row-or-column) sample. Forward (adjoint = 0): src is the slice, dst the
 * sinogram, dst = W src. Adjoint: src is the sinogram, dst += W^T src. Both walk the same samples with the same
 * weights, which is what makes them transposes. */
static void joseph(const tomo_geometry *g, const float *src, float *dst, int adjoint)
{
    const int n = g->n;
    const double centre = n / 2, spacing = g->det_spacing > 0 ? g->det_spacing : 1.0;
    for (int a = 0; a < g->n_angles; a++) {
        double th = g->angles_deg[a] * (M_PI / 180.0), c = cos(th), s = sin(th);
        int by_rows = fabs(c) >= fabs(s);
        /* by rows: x = (t - y s) / c, one sample per row; by columns: y = (t - x c) / s, one per column. */
        double lead = by_rows ? c : s, other = by_rows ? s : c, length = 1.0 / fabs(lead);
        size_t stride = by_rows ? 1 : (size_t)n;   /* between the two pixels interpolated */
        for (int k = 0; k < g->n_det; k++) {
            size_t ray = (size_t)a * g->n_det + (size_t)k;
            double t = (k - g->n_det / 2) * spacing + g->centre_offset;
            double acc = 0;
            float back = adjoint ? (float)(src[ray] * length) : 0;
            /* by rows: line is row i (y = centre - i) and u the column coordinate;
             * by columns: line is column j (x = j - centre) and u the row coordinate. u is linear in line. */
            double u0 = by_rows ? (t - centre * other) / lead + centre : centre - (t + centre * other) / lead;
            double du = other / lead;
            /* Lines where the ray meets the slice (-1 <= u < n), widened by one for rounding; checked again below. */
            int first = 0, last = n - 1;
            if (du != 0) {
                double l0 = (-1 - u0) / du, l1 = (n - u0) / du;
                first = (int)fmin(n, fmax(0, floor(fmin(l0, l1)) - 1));
                last = (int)fmax(-1, fmin(n - 1, ceil(fmax(l0, l1)) + 1));
            }
            /* Two accumulators for alternate lines: one chain of additions per sample would be the loop's
             * bottleneck. Both taps inside the slice (0 <= j0 <= n - 2) is the common case, tested by one compare. */
            double acc2 = 0, u = u0 + first * du - du;
            for (int line = first; line <= last; line++) {
                u += du;
                if (u < -1 || u >= n) continue;
                /* floor(u) by truncation of the positive u + 1: floor() is a libm call on baseline x86-64. */
                int j0 = (int)(u + 1.0) - 1;
                float w = (float)(u - j0);
                size_t at = (by_rows ? (size_t)line * n : (size_t)line) + (size_t)j0 * stride;
                int inside = (unsigned)j0 < (unsigned)(n - 1);
                if (adjoint) {
                    if (inside || j0 >= 0) dst[at] += back * (1 - w);
                    if (inside || j0 < 0) dst[at + stride] += back * w;
                } else if (inside) {
                    float v = (1 - w) * src[at] + w * src[at + stride];
                    if (line & 1) acc2 += v;
                    else acc += v;
                } else {
                    acc += j0 < 0 ? w * src[at + stride] : (1 - w) * src[at];
                }
            }
            acc += acc2;
            if (!adjoint) dst[ray] = (float)(acc * length);
        }
    }
}

void tomo_project(const tomo_geometry *g, const float *slice, float *sino)
{
    joseph(g, slice, sino, 0);
}

void tomo_backproject(const tomo_geometry *g, const float *sino, float *slice)
{
    memset(slice, 0, (size_t)g->n * g->n * sizeof(float));
    joseph(g, sino, slice, 1);
}
