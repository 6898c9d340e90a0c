/* quant.c -- from reconstructions to numbers: response-ratio fit, particle threshold (edge-spread function),
 * weight fractions and image-quality metrics (see tomo.h). */
#include "kernels/tomo/tomo.h"
#include "core/base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ESF_SMOOTHING 1.5   /* pixels, sigma of the Gaussian applied before locating the edge */

/* Solves the k x k system a x = b in place by Gaussian elimination with partial pivoting; -1 when singular. */
static int solve_small(double *a, double *b, int k)
{
    for (int c = 0; c < k; c++) {
        int piv = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(a[r * k + c]) > fabs(a[piv * k + c])) piv = r;
        if (!(fabs(a[piv * k + c]) > 1e-300)) return -1;
        if (piv != c) {
            for (int j = 0; j < k; j++) {
                double t = a[c * k + j];
                a[c * k + j] = a[piv * k + j];
                a[piv * k + j] = t;
            }
            double t = b[c];
            b[c] = b[piv];
            b[piv] = t;
        }
        for (int r = c + 1; r < k; r++) {
            double f = a[r * k + c] / a[c * k + c];
            for (int j = c; j < k; j++) a[r * k + j] -= f * a[c * k + j];
            b[r] -= f * b[c];
        }
    }
    for (int c = k - 1; c >= 0; c--) {
        for (int j = c + 1; j < k; j++) b[c] -= a[c * k + j] * b[j];
        b[c] /= a[c * k + c];
    }
    return 0;
}

int tomo_fit_response(size_t count, int n_el, const float *haadf, const float *const *eds, double *r, double *r2,
                      char *err, size_t errlen)
{
    /* Normal equations G r = h with G = E^T E, h = E^T p_H, accumulated once; the active set only drops rows
     * and columns. Double sums over float samples keep the Gram matrix accurate enough for a few elements. */
    double *gram = xcalloc((size_t)n_el * n_el, sizeof(double)), *rhs = xcalloc((size_t)n_el, sizeof(double));
    double hsum = 0, hsum2 = 0;
    for (size_t i = 0; i < count; i++) {
        for (int a = 0; a < n_el; a++) {
            rhs[a] += (double)eds[a][i] * haadf[i];
            for (int b = 0; b <= a; b++) gram[a * n_el + b] += (double)eds[a][i] * eds[b][i];
        }
        hsum += haadf[i];
        hsum2 += (double)haadf[i] * haadf[i];
    }
    for (int a = 0; a < n_el; a++)
        for (int b = a + 1; b < n_el; b++) gram[a * n_el + b] = gram[b * n_el + a];
    int *active = xmalloc((size_t)n_el * sizeof(int)), *idx = xmalloc((size_t)n_el * sizeof(int));
    double *ga = xmalloc((size_t)n_el * n_el * sizeof(double)), *x = xmalloc((size_t)n_el * sizeof(double));
    int rc = -1;
    for (int e = 0; e < n_el; e++) active[e] = 1;
    for (;;) {
        int k = 0;
        for (int e = 0; e < n_el; e++)
            if (active[e]) idx[k++] = e;
        if (k == 0) {
            snprintf(err, errlen, "HAADF signal is not a non-negative combination of the EDS signals");
            goto done;
        }
        for (int a = 0; a < k; a++) {
            x[a] = rhs[idx[a]];
            for (int b = 0; b < k; b++) ga[a * k + b] = gram[idx[a] * n_el + idx[b]];
        }
        if (solve_small(ga, x, k) != 0) {
            snprintf(err, errlen, "EDS sinograms are empty or proportional to each other: cannot fit r factors");
            goto done;
        }
        int dropped = 0;
        for (int e = 0; e < n_el; e++) r[e] = 0;
        for (int a = 0; a < k; a++) {
            if (x[a] < 0) {
                active[idx[a]] = 0;
                dropped = 1;
            }
            r[idx[a]] = x[a];
        }
        if (!dropped) break;
    }
    /* RSS = |p_H|^2 - 2 r.h + r^T G r, from the sums already taken. */
    double rss = hsum2;
    for (int a = 0; a < n_el; a++) {
        rss -= 2 * r[a] * rhs[a];
        for (int b = 0; b < n_el; b++) rss += r[a] * gram[a * n_el + b] * r[b];
    }
    double tss = hsum2 - hsum * hsum / (double)count;
    *r2 = tss > 0 ? 1 - fmax(rss, 0) / tss : NAN;
    rc = 0;
done:
    free(gram);
    free(rhs);
    free(active);
    free(idx);
    free(ga);
    free(x);
    return rc;
}

void tomo_total_signal(size_t count, int n_el, const float *const *maps, const double *factor, float *signal)
{
    for (size_t i = 0; i < count; i++) {
        double s = 0;
        for (int e = 0; e < n_el; e++) s += maps[e][i] / factor[e];
        signal[i] = (float)s;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Separable Gaussian blur of one n x n slice (edges clamped), into out. */
static void gaussian_blur(const float *in, float *out, float *tmp, int n, double sigma)
{
    int radius = (int)ceil(3 * sigma);
    double *w = xmalloc((size_t)(2 * radius + 1) * sizeof(double)), sum = 0;
    for (int k = -radius; k <= radius; k++) sum += w[k + radius] = exp(-0.5 * k * k / (sigma * sigma));
    for (int k = 0; k <= 2 * radius; k++) w[k] /= sum;
    for (int pass = 0; pass < 2; pass++) {
        const float *src = pass ? tmp : in;
        float *dst = pass ? out : tmp;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int k = -radius; k <= radius; k++) {
                    int q = (pass ? i : j) + k;
                    q = q < 0 ? 0 : q >= n ? n - 1 : q;
                    acc += w[k + radius] * (pass ? src[q * n + j] : src[i * n + q]);
                }
                dst[i * n + j] = (float)acc;
            }
    }
    free(w);
}

double tomo_esf_threshold(const float *signal, int n_slices, int n)
{
    size_t np = (size_t)n * n;
    float *s = xmalloc(np * sizeof(float)), *tmp = xmalloc(np * sizeof(float)), *mag = xmalloc(np * sizeof(float));
    float *ridge = xmalloc((size_t)n_slices * np * sizeof(float));
    size_t found = 0;
    for (int z = 0; z < n_slices; z++) {
        /* The edge-spread function is a property of the blurred edge, not of the pixel noise riding on it. */
        gaussian_blur(signal + (size_t)z * np, s, tmp, n, ESF_SMOOTHING);
        float strongest = 0;
        memset(mag, 0, np * sizeof(float));
        for (int i = 1; i < n - 1; i++)
            for (int j = 1; j < n - 1; j++) {
                float gx = 0.5f * (s[i * n + j + 1] - s[i * n + j - 1]);
                float gy = 0.5f * (s[(i + 1) * n + j] - s[(i - 1) * n + j]);
                mag[i * n + j] = sqrtf(gx * gx + gy * gy);
                if (mag[i * n + j] > strongest) strongest = mag[i * n + j];
            }
        if (!(strongest > 0)) continue;
        /* Ridge points: not smaller than both neighbours along the gradient direction (rounded to 45 degrees). */
        for (int i = 2; i < n - 2; i++)
            for (int j = 2; j < n - 2; j++) {
                float m = mag[i * n + j];
                if (m < 0.5f * strongest) continue;
                float gx = 0.5f * (s[i * n + j + 1] - s[i * n + j - 1]);
                float gy = 0.5f * (s[(i + 1) * n + j] - s[(i - 1) * n + j]);
                int di = (int)lroundf(gy / m), dj = (int)lroundf(gx / m);
                if (m >= mag[(i + di) * n + j + dj] && m >= mag[(i - di) * n + j - dj]) ridge[found++] = s[i * n + j];
            }
    }
    double t = NAN;
    if (found) {
        qsort(ridge, found, sizeof(float), cmp_float);
        t = found % 2 ? ridge[found / 2] : 0.5 * (ridge[found / 2 - 1] + ridge[found / 2]);
    }
    free(s);
    free(tmp);
    free(mag);
    free(ridge);
    return t;
}

size_t tomo_quantify(size_t count, int n_el, const float *const *maps, const double *factor, double threshold,
                     float *const *fractions, unsigned char *mask)
{
    size_t inside = 0;
    for (size_t i = 0; i < count; i++) {
        double s = 0;
        for (int e = 0; e < n_el; e++) s += maps[e][i] / factor[e];
        int in = s > threshold && s > 0;
        mask[i] = (unsigned char)in;
        inside += (size_t)in;
        for (int e = 0; e < n_el; e++) fractions[e][i] = in ? (float)(maps[e][i] / factor[e] / s) : NAN;
    }
    return inside;
}

void tomo_compare(size_t count, const float *x, const float *r, const unsigned char *mask, tomo_metrics *m)
{
    double n = 0, sx = 0, sr = 0, rmin = INFINITY, rmax = -INFINITY;
    for (size_t i = 0; i < count; i++) {
        if (mask && !mask[i]) continue;
        n++;
        sx += x[i];
        sr += r[i];
        rmin = fmin(rmin, r[i]);
        rmax = fmax(rmax, r[i]);
    }
    memset(m, 0, sizeof *m);
    if (n == 0) {
        m->luminance = m->contrast = m->structure = m->ssim = m->scale = m->mse_scaled = NAN;
        return;
    }
    double mx = sx / n, mr = sr / n, vx = 0, vr = 0, cxr = 0, xx = 0, xr = 0;
    for (size_t i = 0; i < count; i++) {
        if (mask && !mask[i]) continue;
        double dx = x[i] - mx, dr = r[i] - mr;
        vx += dx * dx;
        vr += dr * dr;
        cxr += dx * dr;
        xx += (double)x[i] * x[i];
        xr += (double)x[i] * r[i];
    }
    /* Sample (co)variances with n - 1, as in the SSIM paper's unbiased estimates. */
    double dof = n > 1 ? n - 1 : 1, sdx = sqrt(vx / dof), sdr = sqrt(vr / dof), cov = cxr / dof;
    double range = rmax - rmin, c1 = pow(0.01 * range, 2), c2 = pow(0.03 * range, 2), c3 = c2 / 2;
    m->luminance = (2 * mx * mr + c1) / (mx * mx + mr * mr + c1);
    m->contrast = (2 * sdx * sdr + c2) / (sdx * sdx + sdr * sdr + c2);
    m->structure = (cov + c3) / (sdx * sdr + c3);
    m->ssim = m->luminance * m->contrast * m->structure;
    m->scale = xx > 0 ? xr / xx : 0;
    double mse = 0;
    for (size_t i = 0; i < count; i++) {
        if (mask && !mask[i]) continue;
        double d = m->scale * x[i] - r[i];
        mse += d * d;
    }
    m->mse_scaled = mse / n;
}
