/* features.c -- what relocalization sees in one camera view: features of both contrasts (dark and bright
 * particles) above a mass threshold relative to the noise maxima, and the view's sharpness (in focus or not).
 * One implementation for the stage map's own relocalization (src/live/stagemap) and for a worker IOC's
 * "features" stage (src/live/stages), whose results the stage map then takes over Channel Access. */
#include "kernels/detection/detection.h"

#include "core/base/base.h"

#include <math.h>
#include <stdio.h>
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

/* ---- A view array from another IOC: checked element by element before anything is cast or allocated
 * (error_set returns -1, VIEW_MALFORMED). */
#define VIEW_MAX_EXACT 9007199254740992.0     /* 2^53: doubles hold every integer up to this */

static int integer_in(double v, double lo, double hi)
{
    return v >= lo && v <= hi && v == floor(v);     /* false for NaN */
}

int view_parse(const double *a, long n, int max_features, view_parsed *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (n < VIEW_HEAD) return error_set(why, whylen, "%ld elements, fewer than the head's %d", n, VIEW_HEAD);
    if (!integer_in(a[VIEW_UNIQUE_ID], 0, VIEW_MAX_EXACT))
        return error_set(why, whylen, "uniqueId %g is not a whole number >= 0", a[VIEW_UNIQUE_ID]);
    if (!(a[VIEW_STAMP] >= 0 && a[VIEW_STAMP] < VIEW_MAX_EXACT))
        return error_set(why, whylen, "time stamp %g is not a number of seconds >= 0", a[VIEW_STAMP]);
    for (int i = VIEW_STAGE_X; i <= VIEW_STAGE_Y; i++)
        if (isinf(a[i])) return error_set(why, whylen, "stage %c %g is not finite", "xy"[i - VIEW_STAGE_X], a[i]);
    for (int i = VIEW_WIDTH; i <= VIEW_HEIGHT; i++)
        if (!integer_in(a[i], 1, VIEW_MAX_SIDE))
            return error_set(why, whylen, "%s %g is not a whole number 1..%d", i == VIEW_WIDTH ? "width" : "height",
                             a[i], VIEW_MAX_SIDE);
    if (!integer_in(a[VIEW_DIAMETER], 3, LOCATE_MAX_DIAMETER) || !locate_diameter_valid((long)a[VIEW_DIAMETER]))
        return error_set(why, whylen, "diameter %g is not odd, 3..%d", a[VIEW_DIAMETER], LOCATE_MAX_DIAMETER);
    if (!(a[VIEW_MASS_FACTOR] > 0) || !isfinite(a[VIEW_MASS_FACTOR]))
        return error_set(why, whylen, "mass factor %g is not a number > 0", a[VIEW_MASS_FACTOR]);
    if (isinf(a[VIEW_SHARPNESS]) || a[VIEW_SHARPNESS] < 0)
        return error_set(why, whylen, "sharpness %g is neither >= 0 nor NaN (no structure)", a[VIEW_SHARPNESS]);
    int w = (int)a[VIEW_WIDTH], h = (int)a[VIEW_HEIGHT];
    *out = (view_parsed){.unique_id = a[VIEW_UNIQUE_ID], .stamp = a[VIEW_STAMP], .stage_x = a[VIEW_STAGE_X],
                         .stage_y = a[VIEW_STAGE_Y], .width = w, .height = h, .diameter = (int)a[VIEW_DIAMETER],
                         .mass_factor = a[VIEW_MASS_FACTOR], .sharpness = a[VIEW_SHARPNESS]};
    double count = a[VIEW_COUNT];
    if (!integer_in(count, 0, VIEW_MAX_EXACT))
        return error_set(why, whylen, "feature count %g is not a whole number >= 0", count);
    if (count > max_features) {
        snprintf(why, whylen, "too many features (%.0f > %d)", count, max_features);
        return VIEW_TOO_MANY;
    }
    if (n != VIEW_HEAD + 2 * (long)count)
        return error_set(why, whylen, "%ld elements for %.0f features (%ld expected)", n, count,
                         VIEW_HEAD + 2 * (long)count);
    const double (*xy)[2] = (const double (*)[2])(a + VIEW_HEAD);
    for (long i = 0; i < (long)count; i++)
        if (!(xy[i][0] >= -0.5 && xy[i][0] <= w - 0.5 && xy[i][1] >= -0.5 && xy[i][1] <= h - 0.5))
            return error_set(why, whylen, "feature %ld at (%g, %g) is outside the %dx%d frame", i, xy[i][0], xy[i][1],
                             w, h);
    out->count = (int)count, out->xy = xy;
    return VIEW_OK;
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
