/* resample.c -- geometric resampling for registration: warping an image by a similarity transform (bicubic,
 * Keys a = -0.5) and changing its pixel size (area averaging when shrinking, bicubic when enlarging). */
#include "kernels/registration/registration_internal.h"

#include <math.h>
#include <stdlib.h>

#include "core/base/base.h"
#include "core/parallel/parallel.h"

/* Keys' cubic convolution weights for a sample at fraction t (0 <= t < 1) past the second of four taps. */
static inline void keys_weights(float t, float *w0, float *w1, float *w2, float *w3)
{
    const float a = -0.5f;
    float t2 = t * t, t3 = t2 * t;
    *w0 = a * (t3 - 2 * t2 + t);
    *w1 = (a + 2) * t3 - (a + 3) * t2 + 1;
    *w2 = -(a + 2) * t3 + (2 * a + 3) * t2 - a * t;
    *w3 = -a * (t3 - t2);
}

static void cubic_weights(float t, float w[4]) { keys_weights(t, &w[0], &w[1], &w[2], &w[3]); }

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Bicubic sample of src at (x, y), taps beyond the border repeating the edge. */
static float bicubic(const float *src, int w, int h, float x, float y)
{
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    float wx[4], wy[4];
    cubic_weights(x - x0, wx);
    cubic_weights(y - y0, wy);
    float sum = 0;
    if (x0 >= 1 && y0 >= 1 && x0 + 2 < w && y0 + 2 < h) {   /* the interior: no clamping */
        const float *p = src + (size_t)(y0 - 1) * w + (x0 - 1);
        for (int j = 0; j < 4; j++, p += w) sum += wy[j] * (wx[0] * p[0] + wx[1] * p[1] + wx[2] * p[2] + wx[3] * p[3]);
        return sum;
    }
    for (int j = 0; j < 4; j++) {
        const float *row = src + (size_t)clampi(y0 - 1 + j, 0, h - 1) * w;
        float rs = 0;
        for (int i = 0; i < 4; i++) rs += wx[i] * row[clampi(x0 - 1 + i, 0, w - 1)];
        sum += wy[j] * rs;
    }
    return sum;
}

/* A warp split into bands of rows, one work item each (disjoint rows of dst). When clip_r > 0 only the pixels
 * within clip_r of (clip_x, clip_y) are written (the others keep what dst held). */
typedef struct warp_job {
    const float *src;
    int w, h;
    float *dst;
    int dw, dh, rows;
    double c, s, cx, cy, tx, ty;
    double clip_x, clip_y, clip_r;
    float fill;
} warp_job;

#define WARP_BAND_ROWS 32

/* Narrows [*lo, *hi) to the integers p with a + b p within [low, high]. */
static void narrow_span(double a, double b, double low, double high, int *lo, int *hi)
{
    if (fabs(b) < 1e-12) {
        if (a < low || a > high) *hi = *lo;
        return;
    }
    double p0 = (low - a) / b, p1 = (high - a) / b;
    double first = ceil(fmin(p0, p1)), last = floor(fmax(p0, p1));
    if (first > *lo) *lo = first < *hi ? (int)first : *hi;
    if (last + 1 < *hi) *hi = last + 1 > *lo ? (int)last + 1 : *lo;
}

/* Pixels per block of warp_interior: their coordinates and tap weights first (a loop without memory gathers,
 * which the compiler vectorizes), then the taps. */
#define WARP_BLOCK 32

/* Pixels [a, b) of a row whose taps all lie inside the source; the same arithmetic as bicubic() in the same
 * order, so the same values. */
static void warp_interior(const warp_job *j, double bx, double by, int a, int b, float *out)
{
    for (int first = a; first < b; first += WARP_BLOCK) {
        int n = b - first < WARP_BLOCK ? b - first : WARP_BLOCK;
        float wx[4][WARP_BLOCK], wy[4][WARP_BLOCK];
        int at[WARP_BLOCK];
        for (int i = 0; i < n; i++) {
            double x = j->c * (first + i - j->cx) + bx, y = -j->s * (first + i - j->cx) + by;
            float fx = (float)x, fy = (float)y;
            int ix = (int)fx, iy = (int)fy;   /* positive here: truncation is floor */
            keys_weights(fx - ix, &wx[0][i], &wx[1][i], &wx[2][i], &wx[3][i]);
            keys_weights(fy - iy, &wy[0][i], &wy[1][i], &wy[2][i], &wy[3][i]);
            at[i] = (iy - 1) * j->w + (ix - 1);
        }
        for (int i = 0; i < n; i++) {
            const float *p = j->src + at[i];
            float sum = 0;
            for (int r = 0; r < 4; r++, p += j->w)
                sum += wy[r][i] * (wx[0][i] * p[0] + wx[1][i] * p[1] + wx[2][i] * p[2] + wx[3][i] * p[3]);
            out[first + i] = sum;
        }
    }
}

static void warp_row(const warp_job *j, int py, int x0, int x1)
{
    /* A = scale * [[cos, sin], [-sin, cos]] on (x, y); see register.h. */
    double bx = j->s * (py - j->cy) + j->cx + j->tx, by = j->c * (py - j->cy) + j->cy + j->ty;
    float *out = j->dst + (size_t)py * j->dw;
    /* Where all four taps of both axes lie inside the source (with a margin for rounding to float): no
     * clamping and no fill test per pixel there. */
    int in0 = x0, in1 = x1;
    narrow_span(bx - j->c * j->cx, j->c, 1.001, j->w - 2.001, &in0, &in1);
    narrow_span(by + j->s * j->cx, -j->s, 1.001, j->h - 2.001, &in0, &in1);
    for (int px = x0; px < x1; px++) {
        if (px == in0 && in0 < in1) {
            warp_interior(j, bx, by, in0, in1, out);
            px = in1;
            if (px >= x1) break;
        }
        double x = j->c * (px - j->cx) + bx, y = -j->s * (px - j->cx) + by;
        out[px] = (x < -0.5 || y < -0.5 || x > j->w - 0.5 || y > j->h - 0.5)
                      ? j->fill : bicubic(j->src, j->w, j->h, (float)x, (float)y);
    }
}

static void warp_band(void *arg, int item, int worker)
{
    (void)worker;
    const warp_job *j = arg;
    int last = (item + 1) * WARP_BAND_ROWS < j->dh ? (item + 1) * WARP_BAND_ROWS : j->dh;
    for (int py = item * WARP_BAND_ROWS; py < last; py++) {
        int x0 = 0, x1 = j->dw;
        if (j->clip_r > 0) {
            double dy = py - j->clip_y, half2 = j->clip_r * j->clip_r - dy * dy;
            if (half2 < 0) continue;
            double half = sqrt(half2);
            x0 = (int)fmax(0, floor(j->clip_x - half));
            x1 = (int)fmin(j->dw, ceil(j->clip_x + half) + 1);
        }
        warp_row(j, py, x0, x1);
    }
}

void warp_threads(const float *src, int w, int h, float *dst, int dw, int dh, double angle_deg, double scale,
                  double cx, double cy, double tx, double ty, float fill, int threads)
{
    warp_clipped(src, w, h, dst, dw, dh, angle_deg, scale, cx, cy, tx, ty, fill, threads, 0, 0, 0);
}

void warp_clipped(const float *src, int w, int h, float *dst, int dw, int dh, double angle_deg, double scale,
                  double cx, double cy, double tx, double ty, float fill, int threads, double clip_x,
                  double clip_y, double clip_r)
{
    double th = angle_deg * M_PI / 180;
    warp_job j = {.src = src, .w = w, .h = h, .dst = dst, .dw = dw, .dh = dh, .c = scale * cos(th),
                  .s = scale * sin(th), .cx = cx, .cy = cy, .tx = tx, .ty = ty, .clip_x = clip_x,
                  .clip_y = clip_y, .clip_r = clip_r, .fill = fill};
    int bands = (dh + WARP_BAND_ROWS - 1) / WARP_BAND_ROWS;
    if (threads > 1) parallel_for(bands, threads, warp_band, &j);
    else
        for (int b = 0; b < bands; b++) warp_band(&j, b, 0);
}

void reg_warp(const float *src, int w, int h, float *dst, int dw, int dh, double angle_deg, double scale,
              double cx, double cy, double tx, double ty, float fill)
{
    warp_threads(src, w, h, dst, dw, dh, angle_deg, scale, cx, cy, tx, ty, fill, 1);
}

void decimate_half(const float *src, int w, int h, size_t stride, float *dst)
{
    int dw = w / 2, dh = h / 2;
    for (int q = 0; q < dh; q++) {
        const float *a = src + 2 * (size_t)q * stride, *b = a + stride;
        float *out = dst + (size_t)q * dw;
        for (int x = 0; x < dw; x++) out[x] = 0.25f * ((a[2 * x] + a[2 * x + 1]) + (b[2 * x] + b[2 * x + 1]));
    }
}

/* Weights of one axis: output q takes taps first[q] .. first[q] + count - 1 with weights wt[q * taps + i]. */
typedef struct axis_map {
    int taps;
    int *first;
    float *wt;
} axis_map;

static void axis_map_make(int n_in, int n_out, double factor, axis_map *m)
{
    m->taps = factor < 1 ? (int)ceil(1 / factor) + 2 : 4;
    m->first = xmalloc(sizeof(int) * n_out);
    m->wt = xcalloc((size_t)n_out * m->taps, sizeof(float));
    for (int q = 0; q < n_out; q++) {
        float *wt = m->wt + (size_t)q * m->taps;
        if (factor < 1) {
            /* Output pixel q covers input [lo, hi); each input pixel contributes its overlap. */
            double lo = q / factor, hi = (q + 1) / factor;
            int first = (int)floor(lo);
            m->first[q] = first;
            double total = 0;
            for (int i = 0; i < m->taps; i++) {
                double a = fmax(lo, first + i), b = fmin(hi, first + i + 1);
                double cover = (first + i < n_in && b > a) ? b - a : 0;
                wt[i] = (float)cover;
                total += cover;
            }
            for (int i = 0; i < m->taps; i++) wt[i] = total > 0 ? (float)(wt[i] / total) : 0;
        } else {
            double x = (q + 0.5) / factor - 0.5;
            int x0 = (int)floor(x);
            m->first[q] = x0 - 1;
            cubic_weights((float)(x - x0), wt);
        }
    }
}

static void axis_map_free(axis_map *m)
{
    free(m->first);
    free(m->wt);
}

void reg_result_unresample(reg_result *r, double f_ref, double f_mov)
{
    /* Resampling by f maps pixel centres p to f (p + 1/2) - 1/2 on both sides; substituting into
     * moving = A (ref - c) + c + t gives A f_ref / f_mov about the unresampled centre. */
    double cx = (r->center_x + 0.5) / f_ref - 0.5, cy = (r->center_y + 0.5) / f_ref - 0.5;
    r->shift_x = (r->center_x + r->shift_x + 0.5) / f_mov - 0.5 - cx;
    r->shift_y = (r->center_y + r->shift_y + 0.5) / f_mov - 0.5 - cy;
    r->center_x = cx;
    r->center_y = cy;
    r->scale *= f_ref / f_mov;
}

float *reg_resample(const float *src, int w, int h, double factor, int *dw, int *dh)
{
    if (!(factor > 0) || w < 1 || h < 1) return NULL;
    int ow = (int)lround(w * factor), oh = (int)lround(h * factor);
    if (ow < 1 || oh < 1) return NULL;
    axis_map mx, my;
    axis_map_make(w, ow, factor, &mx);
    axis_map_make(h, oh, factor, &my);
    float *tmp = xmalloc(sizeof(float) * (size_t)ow * h);
    for (int y = 0; y < h; y++) {
        const float *row = src + (size_t)y * w;
        for (int q = 0; q < ow; q++) {
            float sum = 0;
            for (int i = 0; i < mx.taps; i++)
                sum += mx.wt[(size_t)q * mx.taps + i] * row[clampi(mx.first[q] + i, 0, w - 1)];
            tmp[(size_t)y * ow + q] = sum;
        }
    }
    float *out = xmalloc(sizeof(float) * (size_t)ow * oh);
    for (int q = 0; q < oh; q++) {
        float *orow = out + (size_t)q * ow;
        for (int x = 0; x < ow; x++) orow[x] = 0;
        for (int i = 0; i < my.taps; i++) {
            float wgt = my.wt[(size_t)q * my.taps + i];
            if (wgt == 0) continue;
            const float *trow = tmp + (size_t)clampi(my.first[q] + i, 0, h - 1) * ow;
            for (int x = 0; x < ow; x++) orow[x] += wgt * trow[x];
        }
    }
    free(tmp);
    axis_map_free(&mx);
    axis_map_free(&my);
    *dw = ow;
    *dh = oh;
    return out;
}
