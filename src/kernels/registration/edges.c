/* edges.c -- the edge map used for contrast-robust registration: gradient magnitude of the image smoothed by a
 * Gaussian. Images of one object taken with different contrast (below and above an absorption edge, different
 * modalities) keep their edges where they are while the grey levels inside change, even in sign; the gradient
 * magnitude keeps the first and drops the sign. */
#include "kernels/registration/registration.h"
#include "core/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* One separable pass of the Gaussian taps g[-half..half] along x (step 1, count w per line, h lines) or y
 * (step w), samples past the border repeating the edge. */
static void blur_pass(const float *src, float *dst, int w, int h, const double *g, int half, int along_x)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double acc = 0;
            for (int k = -half; k <= half; k++) {
                int sx = along_x ? clampi(x + k, 0, w - 1) : x, sy = along_x ? y : clampi(y + k, 0, h - 1);
                acc += g[k + half] * src[(size_t)sy * w + sx];
            }
            dst[(size_t)y * w + x] = (float)acc;
        }
}

int reg_edge_map(const float *src, int w, int h, double sigma, float *dst)
{
    if (w < 3 || h < 3 || !(sigma >= 0) || sigma > 64) return -1;
    size_t n = (size_t)w * h;
    float *a = xmalloc(n * sizeof(float)), *b = xmalloc(n * sizeof(float));
    int half = sigma > 0 ? (int)ceil(3 * sigma) : 0;
    double *g = xmalloc((size_t)(2 * half + 1) * sizeof(double)), sum = 0;
    for (int k = -half; k <= half; k++) sum += g[k + half] = sigma > 0 ? exp(-0.5 * k * k / (sigma * sigma)) : 1;
    for (int k = 0; k <= 2 * half; k++) g[k] /= sum;
    blur_pass(src, a, w, h, g, half, 1);
    blur_pass(a, b, w, h, g, half, 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const float *row = b + (size_t)y * w;
            double gx = 0.5 * (row[clampi(x + 1, 0, w - 1)] - row[clampi(x - 1, 0, w - 1)]);
            double gy = 0.5 * (b[(size_t)clampi(y + 1, 0, h - 1) * w + x] - b[(size_t)clampi(y - 1, 0, h - 1) * w + x]);
            dst[(size_t)y * w + x] = (float)sqrt(gx * gx + gy * gy);
        }
    free(g);
    free(a);
    free(b);
    return 0;
}
