/* gauge.c -- the projection shifts a 3D translation of the object makes in a parallel-beam series, x(theta) =
 * c + a cos(theta) + b sin(theta), y(theta) = d, and their least-squares fit (see tomo.h). Shared by the jitter
 * alignment (which takes them away: the data cannot fix them) and the registration across energies (which
 * measures them). No state. */
#include "kernels/tomo/tomo.h"

#include <math.h>
#include <string.h>

static double det3(const double m[3][3])
{
    return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
           m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

/* Solves the 3 x 3 system m x = v (Cramer); 0, or -1 when singular. */
static int solve3(const double m[3][3], const double v[3], double x[3])
{
    double det = det3(m);
    if (!(fabs(det) > 1e-12)) return -1;
    for (int c = 0; c < 3; c++) {
        double t[3][3];
        memcpy(t, m, sizeof t);
        for (int r = 0; r < 3; r++) t[r][c] = v[r];
        x[c] = det3(t) / det;
    }
    return 0;
}

int tomo_fit_translation(int n, const double *angles_deg, const double *x, const double *y,
                         const unsigned char *skip, double k[4])
{
    double m[3][3] = {{0}}, v[3] = {0}, sum_y = 0;
    int used = 0;
    for (int i = 0; i < n; i++) {
        if (skip && skip[i]) continue;
        double th = angles_deg[i] * (M_PI / 180.0), basis[3] = {1, cos(th), sin(th)};
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 3; c++) m[r][c] += basis[r] * basis[c];
            v[r] += basis[r] * x[i];
        }
        sum_y += y[i];
        used++;
    }
    memset(k, 0, 4 * sizeof(double));
    if (used == 0) return -1;
    k[3] = sum_y / used;
    if (solve3(m, v, k) != 0) { /* angles too few or too close to tell a sinusoid: the mean only */
        k[0] = v[0] / used;
        k[1] = k[2] = 0;
        return -1;
    }
    return 0;
}

double tomo_translation_x(const double k[4], double angle_deg)
{
    double th = angle_deg * (M_PI / 180.0);
    return k[0] + k[1] * cos(th) + k[2] * sin(th);
}
