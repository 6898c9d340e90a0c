/* features.c -- what relocalization sees in one camera view: features of both contrasts (dark and bright
 * particles) above a mass threshold relative to the noise maxima, and the view's sharpness (in focus or not).
 * One implementation for the stage map's own relocalization (src/live/stagemap) and for a worker IOC's
 * "features" stage (src/live/stages), whose results the stage map then takes over Channel Access. */
#include "kernels/detection/detection.h"

#include "core/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void view_features_add(view_features *out, double x, double y)
{
    if (out->n == out->cap) out->xy = xrealloc(out->xy, (size_t)(out->cap = out->cap ? 2 * out->cap : 256) * sizeof *out->xy);
    out->xy[out->n][0] = x;
    out->xy[out->n][1] = y;
    out->n++;
}

int view_features_detect(const float *img, int w, int h, int diameter, double mass_factor, double sample_max, int max,
                         view_features *out, char *err, size_t errlen)
{
    locate_table t;
    locate_table_init(&t);
    out->n = 0;
    for (int invert = 0; invert < 2; invert++) {
        locate_params p;
        locate_params_default(&p, diameter);
        p.invert = invert;
        p.characterize = 0;
        locate_ctx *ctx = locate_ctx_create(&p, w, h, sample_max, err, errlen);
        if (!ctx) {
            locate_table_free(&t);
            return -1;
        }
        locate_frame(ctx, img, 0, &t);
        locate_ctx_free(ctx);
        if (t.count == 0) continue;
        double *mass = xmalloc((size_t)t.count * sizeof *mass);
        memcpy(mass, t.mass, (size_t)t.count * sizeof *mass);
        qsort(mass, (size_t)t.count, sizeof *mass, cmp_double);
        double threshold = mass_factor * mass[t.count / 2];
        free(mass);
        for (int i = 0; i < t.count && out->n < max; i++)
            if (t.mass[i] > threshold) view_features_add(out, t.x[i], t.y[i]);
    }
    locate_table_free(&t);
    return 0;
}

void view_features_free(view_features *f)
{
    free(f->xy);
    memset(f, 0, sizeof *f);
}

/* Mean of the (2r+1)^2 box around (x, y) from the integral image I ((w + 1) columns). */
static double box_mean(const double *I, int w, int x, int y, int r)
{
    int x0 = x - r, x1 = x + r + 1, y0 = y - r, y1 = y + r + 1;
    size_t W = (size_t)w + 1;
    return (I[y1 * W + x1] - I[y0 * W + x1] - I[y1 * W + x0] + I[y0 * W + x0]) / ((2.0 * r + 1) * (2.0 * r + 1));
}

/* The q-quantile of n values (sorts them). */
static double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[(size_t)(q * (double)(n - 1))];
}

/* The noise comes from the median absolute difference of each pixel from its 3 px box (robust to the
 * particles); smooth illumination gradients cancel in box differences. */
double view_sharpness(const float *img, int w, int h)
{
    const int edge = 16, step = 2;
    if (w <= 2 * edge + 1 || h <= 2 * edge + 1) return NAN;
    size_t W = (size_t)w + 1;
    double *I = xcalloc(W * ((size_t)h + 1), sizeof *I);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            I[(y + 1) * W + x + 1] = img[(size_t)y * w + x] + I[y * W + x + 1] + I[(y + 1) * W + x] - I[y * W + x];
    size_t n = 0, cap = (size_t)((w - 2 * edge) / step + 1) * ((h - 2 * edge) / step + 1);
    double *dev = xmalloc(cap * sizeof *dev), *fine = xmalloc(cap * sizeof *fine), *coarse = xmalloc(cap * sizeof *coarse);
    for (int y = edge; y < h - edge; y += step)
        for (int x = edge; x < w - edge; x += step) {
            double b3 = box_mean(I, w, x, y, 1), b9 = box_mean(I, w, x, y, 4), b33 = box_mean(I, w, x, y, 16);
            dev[n] = fabs(img[(size_t)y * w + x] - b3);
            fine[n] = fabs(b3 - b9);
            coarse[n++] = fabs(b9 - b33);
        }
    /* pixel - its 3 px box has variance 8/9 sigma^2 for white noise; the two bands 8/81 and 1/81 - 1/1089 of it */
    double sigma = 1.4826 * quantile(dev, n, 0.5) * sqrt(9.0 / 8);
    double detail = quantile(fine, n, 0.999) / (sigma * sqrt(8.0 / 81));
    double structure = quantile(coarse, n, 0.999) / (sigma * sqrt(1.0 / 81 - 1.0 / 1089));
    free(I), free(dev), free(fine), free(coarse);
    return sigma > 0 && structure >= VIEW_STRUCTURE_MIN ? detail : NAN;
}
