/* logpolar.c -- the log-polar transform of high-pass filtered magnitude spectra, which turns rotation and
 * scaling of an image into a translation (rows: angle over 0..180 degrees, the magnitude spectrum of a real image
 * being symmetric; columns: log of the radial frequency). Frequencies are in cycles/pixel along both axes, so
 * non-square frames are sampled isotropically. */
#include "kernels/registration/registration_internal.h"

#include <math.h>
#include <stdlib.h>

#include "core/base/base.h"

void logpolar_init(logpolar *lp, int frame_w, int frame_h)
{
    int side = frame_w > frame_h ? frame_w : frame_h, small = frame_w < frame_h ? frame_w : frame_h;
    lp->angles = side + side % 2;
    lp->radii = side / 2;
    /* From 2 frequency bins of the short side (lower frequencies carry window effects) to Nyquist. */
    double rho_min = 2.0 / small, rho_max = 0.5;
    lp->log_step = log(rho_max / rho_min) / lp->radii;
    lp->cos_a = xmalloc(sizeof(float) * lp->angles);
    lp->sin_a = xmalloc(sizeof(float) * lp->angles);
    lp->rho = xmalloc(sizeof(float) * lp->radii);
    lp->radial_window = xmalloc(sizeof(float) * lp->radii);
    for (int a = 0; a < lp->angles; a++) {
        double theta = M_PI * a / lp->angles;
        lp->cos_a[a] = (float)cos(theta);
        lp->sin_a[a] = (float)sin(theta);
    }
    for (int r = 0; r < lp->radii; r++) lp->rho[r] = (float)(rho_min * exp(r * lp->log_step));
    window_1d(REG_WINDOW_HANN, 1, lp->radii, 0, lp->radial_window);
    /* Reddy & Chatterji's high-pass (1 - X)(2 - X), X = cos(pi fx) cos(pi fy): suppresses the low frequencies
     * that dominate magnitude spectra and are sampled worst by the log-polar grid. */
    int hw = frame_w / 2 + 1;
    lp->highpass = xmalloc(sizeof(float) * (size_t)frame_h * hw);
    lp->mag = xmalloc(sizeof(float) * (size_t)frame_h * hw);
    for (int k = 0; k < frame_h; k++) {
        double fy = (k <= frame_h / 2 ? k : k - frame_h) / (double)frame_h;
        for (int l = 0; l < hw; l++) {
            double x = cos(M_PI * l / frame_w) * cos(M_PI * fy);
            lp->highpass[(size_t)k * hw + l] = (float)((1 - x) * (2 - x));
        }
    }
}

void logpolar_free(logpolar *lp)
{
    free(lp->cos_a);
    free(lp->sin_a);
    free(lp->rho);
    free(lp->radial_window);
    free(lp->highpass);
    free(lp->mag);
}

void logpolar_sample(logpolar *lp, const fftwf_complex *spec, int frame_w, int frame_h, float *out)
{
    int hw = frame_w / 2 + 1;
    const float complex *s = (const float complex *)spec;
    for (size_t i = 0; i < (size_t)frame_h * hw; i++) lp->mag[i] = cabsf(s[i]) * lp->highpass[i];
    double sum = 0;
    for (int a = 0; a < lp->angles; a++) {
        float *row = out + (size_t)a * lp->radii;
        for (int r = 0; r < lp->radii; r++) {
            float fx = lp->rho[r] * lp->cos_a[a], fy = lp->rho[r] * lp->sin_a[a];
            if (fx < 0) { fx = -fx; fy = -fy; }   /* |F(-f)| = |F(f)| for real images */
            float lx = fx * frame_w, ky = fy * frame_h;
            int l0 = (int)floorf(lx), k0 = (int)floorf(ky);
            float u = lx - l0, v = ky - k0;
            int l1 = l0 + 1 < hw ? l0 + 1 : hw - 1;
            if (l0 > hw - 1) l0 = hw - 1;
            int ka = ((k0 % frame_h) + frame_h) % frame_h, kb = (ka + 1) % frame_h;
            const float *m0 = lp->mag + (size_t)ka * hw, *m1 = lp->mag + (size_t)kb * hw;
            float val = (1 - v) * ((1 - u) * m0[l0] + u * m0[l1]) + v * ((1 - u) * m1[l0] + u * m1[l1]);
            row[r] = val;
            sum += val;
        }
    }
    float mean = (float)(sum / ((double)lp->angles * lp->radii));
    for (int a = 0; a < lp->angles; a++) {
        float *row = out + (size_t)a * lp->radii;
        for (int r = 0; r < lp->radii; r++) row[r] = (row[r] - mean) * lp->radial_window[r];
    }
}
