/* window.c -- preparing images for the FFT: apodization windows (Hann, Tukey) against the edge effects of the
 * DFT's periodic boundary, the radial band-pass filter, and placing a view's ROI in the analysis frame. */
#include "kernels/registration/registration_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void window_1d(reg_window kind, double tukey_alpha, int n, double shift, float *out)
{
    double alpha = kind == REG_WINDOW_HANN ? 1.0 : tukey_alpha;
    if (kind == REG_WINDOW_NONE || alpha <= 0 || n < 3) {
        for (int i = 0; i < n; i++) out[i] = 1.0f;
        return;
    }
    if (alpha > 1) alpha = 1;
    /* Tukey: a cosine taper over alpha/2 of the length at each end; alpha = 1 is the Hann window. */
    double taper = alpha * (n - 1) / 2.0;
    for (int i = 0; i < n; i++) {
        double u = i - shift, d = fmin(u, (n - 1) - u);
        out[i] = d <= 0 ? 0.0f : d >= taper ? 1.0f : (float)(0.5 * (1 - cos(M_PI * d / taper)));
    }
}

int band_filter(int w, int h, double band_low, double band_high, float *band)
{
    if (band_high <= 0 || band_high >= 0.5) band_high = 0;
    if (band_low <= 0 && band_high == 0) return 0;
    int hw = w / 2 + 1;
    /* Edges are raised-cosine ramps a quarter of the corner frequency wide (at least one frequency bin), so the
     * filter does not ring in space. */
    double bin = 1.0 / (w < h ? w : h);
    double ramp_lo = fmax(band_low / 4, bin), ramp_hi = band_high > 0 ? fmax(band_high / 4, bin) : 0;
    for (int k = 0; k < h; k++) {
        double fy = (k <= h / 2 ? k : k - h) / (double)h;
        for (int l = 0; l < hw; l++) {
            double fx = l / (double)w, f = sqrt(fx * fx + fy * fy), g = 1;
            if (band_low > 0 && f < band_low)
                g = f <= band_low - ramp_lo ? 0 : 0.5 * (1 - cos(M_PI * (f - band_low + ramp_lo) / ramp_lo));
            if (band_high > 0 && f > band_high)
                g *= f >= band_high + ramp_hi ? 0 : 0.5 * (1 + cos(M_PI * (f - band_high) / ramp_hi));
            band[(size_t)k * hw + l] = (float)g;
        }
    }
    return 1;
}

int placement_of(const reg_view *v, int frame_w, int frame_h, placement *pl, char *err, size_t errlen)
{
    if (!v || !v->data || v->width < 1 || v->height < 1) {
        snprintf(err, errlen, "empty image");
        return -1;
    }
    int whole = v->roi_w <= 0 || v->roi_h <= 0;
    pl->roi_x = whole ? 0 : v->roi_x;
    pl->roi_y = whole ? 0 : v->roi_y;
    pl->w = whole ? v->width : v->roi_w;
    pl->h = whole ? v->height : v->roi_h;
    if (pl->roi_x < 0 || pl->roi_y < 0 || pl->roi_x + pl->w > v->width || pl->roi_y + pl->h > v->height) {
        snprintf(err, errlen, "ROI %dx%d+%d+%d lies outside the %dx%d image", pl->w, pl->h, pl->roi_x, pl->roi_y,
                 v->width, v->height);
        return -1;
    }
    if (pl->w > frame_w || pl->h > frame_h) {
        snprintf(err, errlen, "region %dx%d is larger than the %dx%d analysis frame", pl->w, pl->h, frame_w,
                 frame_h);
        return -1;
    }
    if (pl->w < 4 || pl->h < 4) {
        snprintf(err, errlen, "region %dx%d is too small to register (at least 4x4)", pl->w, pl->h);
        return -1;
    }
    pl->at_x = (frame_w - pl->w) / 2;
    pl->at_y = (frame_h - pl->h) / 2;
    return 0;
}

/* NaN and infinities (dead or saturated pixels flagged by a detector) count as zero; branch-free so that the
 * loops over rows vectorize. */
static inline float finite_or_zero(float v) { return fabsf(v) <= FLT_MAX ? v : 0.0f; }

/* out = row * wx * wy, returning the sum of out; eight running sums so that the loop vectorizes. */
static float windowed_row(float *restrict out, const float *restrict row, const float *restrict wx, float wy, int n)
{
    float lanes[8] = {0}, sum = 0;
    int x = 0;
    for (; x + 8 <= n; x += 8)
        for (int j = 0; j < 8; j++) {
            out[x + j] = finite_or_zero(row[x + j]) * wx[x + j] * wy;
            lanes[j] += out[x + j];
        }
    for (; x < n; x++) {
        out[x] = finite_or_zero(row[x]) * wx[x] * wy;
        sum += out[x];
    }
    for (int j = 0; j < 8; j++) sum += lanes[j];
    return sum;
}

/* out -= a wx, in blocks of 8 that the compiler turns into vector instructions at -O2. */
static void subtract_scaled(float *restrict out, float a, const float *restrict wx, int n)
{
    int x = 0;
    for (; x + 8 <= n; x += 8)
        for (int j = 0; j < 8; j++) out[x + j] -= a * wx[x + j];
    for (; x < n; x++) out[x] -= a * wx[x];
}

/* Zeroes the frame (frame_w x frame_h) outside the rectangle pl places, which the caller then fills. */
static void zero_outside(const placement *pl, float *frame, int frame_w, int frame_h)
{
    memset(frame, 0, sizeof(float) * (size_t)pl->at_y * frame_w);
    for (int y = pl->at_y; y < pl->at_y + pl->h; y++) {
        float *row = frame + (size_t)y * frame_w;
        memset(row, 0, sizeof(float) * pl->at_x);
        memset(row + pl->at_x + pl->w, 0, sizeof(float) * (frame_w - pl->at_x - pl->w));
    }
    memset(frame + (size_t)(pl->at_y + pl->h) * frame_w, 0,
           sizeof(float) * (size_t)(frame_h - pl->at_y - pl->h) * frame_w);
}

static const float *roi_row(const reg_view *v, const placement *pl, int y)
{
    size_t stride = v->stride > 0 ? (size_t)v->stride : (size_t)v->width;
    return v->data + (size_t)(pl->roi_y + y) * stride + pl->roi_x;
}

void frame_load(const reg_view *v, const placement *pl, const reg_params *p, double shift_x, double shift_y,
                float *frame, int frame_w, int frame_h, float *wx, float *wy)
{
    window_1d(p->window, p->tukey_alpha, pl->w, shift_x, wx);
    window_1d(p->window, p->tukey_alpha, pl->h, shift_y, wy);
    /* data * window first, then minus mean * window with the weighted mean: the windowed data then sum to zero,
     * so no DC leaks into the correlation. */
    double sum = 0, wx_sum = 0, wy_sum = 0;
    for (int x = 0; x < pl->w; x++) wx_sum += wx[x];
    for (int y = 0; y < pl->h; y++) wy_sum += wy[y];
    zero_outside(pl, frame, frame_w, frame_h);
    for (int y = 0; y < pl->h; y++)
        sum += windowed_row(frame + (size_t)(pl->at_y + y) * frame_w + pl->at_x, roi_row(v, pl, y), wx, wy[y], pl->w);
    float mean = wx_sum * wy_sum > 0 ? (float)(sum / (wx_sum * wy_sum)) : 0.0f;
    for (int y = 0; y < pl->h; y++)
        subtract_scaled(frame + (size_t)(pl->at_y + y) * frame_w + pl->at_x, mean * wy[y], wx, pl->w);
}

/* Entries of the disc window's table over the squared radius: linear interpolation between them is within 2e-4
 * of the window, and the reference and moving discs use the same table. */
#define DISC_TABLE 2048

/* The rows [*y0, *y1] and columns [*x0, *x1] of the disc's bounding box inside the frame. */
static void disc_box(int w, int h, double cx, double cy, double r, int *x0, int *y0, int *x1, int *y1)
{
    *y0 = (int)fmax(0, floor(cy - r));
    *y1 = (int)fmin(h - 1, ceil(cy + r));
    *x0 = (int)fmax(0, floor(cx - r));
    *x1 = (int)fmin(w - 1, ceil(cx + r));
}

/* Row y's chord [*xa, *xb] of the disc, a pixel wider than the exact one on each side (weights there are 0). */
static void disc_chord(double cx, double cy, double r, int y, int x0, int x1, int *xa, int *xb)
{
    double half = sqrt(fmax(0, r * r - (y - cy) * (y - cy)));
    *xa = (int)fmax(x0, floor(cx - half) - 1);
    *xb = (int)fmin(x1, ceil(cx + half) + 1);
}

void disc_window(int w, int h, double cx, double cy, double r, float *win)
{
    /* The radial Hann window 0.5 (1 + cos(pi d / r)) tabulated over d^2 in [0, r^2]: no cos or sqrt per pixel. */
    float table[DISC_TABLE + 2];
    for (int i = 0; i <= DISC_TABLE; i++) table[i] = (float)(0.5 * (1 + cos(M_PI * sqrt((double)i / DISC_TABLE))));
    table[DISC_TABLE + 1] = 0;
    memset(win, 0, sizeof(float) * (size_t)w * h);
    int x0, y0, x1, y1;
    disc_box(w, h, cx, cy, r, &x0, &y0, &x1, &y1);
    float r2 = (float)(r * r), per = DISC_TABLE / r2;
    for (int y = y0; y <= y1; y++) {
        float dy2 = (float)((y - cy) * (y - cy));
        int xa, xb;
        disc_chord(cx, cy, r, y, x0, x1, &xa, &xb);
        float *out = win + (size_t)y * w;
        for (int x = xa; x <= xb; x++) {
            float dx = (float)(x - cx), d2 = dx * dx + dy2;
            if (d2 >= r2) continue;
            float u = d2 * per;
            int i = (int)u;
            out[x] = table[i] + (u - i) * (table[i + 1] - table[i]);
        }
    }
}

void frame_apply_disc(const float *data, int w, int h, double cx, double cy, double r, const float *win,
                      float *frame)
{
    if (frame != win) memset(frame, 0, sizeof(float) * (size_t)w * h);
    int x0, y0, x1, y1;
    disc_box(w, h, cx, cy, r, &x0, &y0, &x1, &y1);
    double sum = 0, wsum = 0;
    for (int y = y0; y <= y1; y++) {
        int xa, xb;
        disc_chord(cx, cy, r, y, x0, x1, &xa, &xb);
        const float *in = data + (size_t)y * w, *wt = win + (size_t)y * w;
        float rs = 0, ws = 0;
        for (int x = xa; x <= xb; x++) {
            rs += wt[x] * in[x];
            ws += wt[x];
        }
        sum += rs;
        wsum += ws;
    }
    float mean = wsum > 0 ? (float)(sum / wsum) : 0.0f;
    for (int y = y0; y <= y1; y++) {
        int xa, xb;
        disc_chord(cx, cy, r, y, x0, x1, &xa, &xb);
        const float *in = data + (size_t)y * w, *wt = win + (size_t)y * w;
        float *out = frame + (size_t)y * w;
        for (int x = xa; x <= xb; x++) out[x] = wt[x] * (in[x] - mean);
    }
}

void frame_load_disc(const float *data, int w, int h, double cx, double cy, double r, float *frame)
{
    disc_window(w, h, cx, cy, r, frame);
    frame_apply_disc(data, w, h, cx, cy, r, frame, frame);
}

float frame_place(const reg_view *v, const placement *pl, float *frame, int frame_w, int frame_h)
{
    double sum = 0;
    for (int y = 0; y < pl->h; y++) {
        const float *row = roi_row(v, pl, y);
        for (int x = 0; x < pl->w; x++) sum += isfinite(row[x]) ? row[x] : 0.0f;
    }
    float mean = (float)(sum / ((double)pl->w * pl->h));
    for (size_t i = 0; i < (size_t)frame_w * frame_h; i++) frame[i] = mean;
    for (int y = 0; y < pl->h; y++) {
        const float *row = roi_row(v, pl, y);
        float *out = frame + (size_t)(pl->at_y + y) * frame_w + pl->at_x;
        for (int x = 0; x < pl->w; x++) out[x] = isfinite(row[x]) ? row[x] : mean;
    }
    return mean;
}
