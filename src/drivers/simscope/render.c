/* render.c -- renders the expected image of a sample for a view (simscope.h explains the model) and
 * exposes it with noise. Each feature touches only the pixels within a few PSF widths of it, so a frame
 * costs one pass over the image plus the features' footprints. */
#include "drivers/simscope/simscope.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#define DEG (M_PI / 180.0)
#define PSF_REACH 5.0     /* profiles are evaluated out to this many PSF sigmas */

/* Affine map pixel (u, v) -> sample coordinates: s = origin + u * du + v * dv. */
typedef struct { double ox, oy, dux, duy, dvx, dvy; } pixel_to_sample;

static pixel_to_sample view_transform(const simscope_sample *s, const simscope_view *v)
{
    double sx = v->pixel_size * (v->flip_x ? -1 : 1), sy = v->pixel_size * (v->flip_y ? -1 : 1);
    double cp = cos(v->camera_rotation_deg * DEG), sp = sin(v->camera_rotation_deg * DEG);
    double ct = cos(s->mount_rotation_deg * DEG), st = sin(s->mount_rotation_deg * DEG);
    /* stage point m = stage + Rcam * (sx (u - bx), sy (v - by)); sample = Rmount^T (m - mount) */
    double mux = cp * sx, muy = sp * sx, mvx = -sp * sy, mvy = cp * sy;
    double m0x = v->stage_x - mux * v->beam_x - mvx * v->beam_y - s->mount_x;
    double m0y = v->stage_y - muy * v->beam_x - mvy * v->beam_y - s->mount_y;
    pixel_to_sample t = {
        .ox = ct * m0x + st * m0y, .oy = -st * m0x + ct * m0y,
        .dux = ct * mux + st * muy, .duy = -st * mux + ct * muy,
        .dvx = ct * mvx + st * mvy, .dvy = -st * mvx + ct * mvy,
    };
    return t;
}

void simscope_sample_to_stage(const simscope_sample *s, double sx, double sy, double *mx, double *my)
{
    double ct = cos(s->mount_rotation_deg * DEG), st = sin(s->mount_rotation_deg * DEG);
    *mx = ct * sx - st * sy + s->mount_x;
    *my = st * sx + ct * sy + s->mount_y;
}

void simscope_sample_to_pixel(const simscope_sample *s, const simscope_view *v, double sx, double sy, double *u,
                              double *w)
{
    pixel_to_sample t = view_transform(s, v);
    double det = t.dux * t.dvy - t.dvx * t.duy;
    double rx = sx - t.ox, ry = sy - t.oy;
    *u = (rx * t.dvy - ry * t.dvx) / det;
    *w = (ry * t.dux - rx * t.duy) / det;
}

/* Fraction of a Gaussian-blurred interval [lo, hi] seen at x (blur sigma s, k = 1 / (sqrt(2) s)). */
static double blurred_interval(double x, double lo, double hi, double k)
{
    return 0.5 * (erf((x - lo) * k) - erf((x - hi) * k));
}

/* Profile of a feature (0 outside, 1 inside) at sample point (x, y). */
static double profile(const simscope_feature *f, double x, double y, double k)
{
    double dx = x - f->x, dy = y - f->y;
    double c = cos(f->angle_deg * DEG), s = sin(f->angle_deg * DEG);
    double a = c * dx + s * dy, b = -s * dx + c * dy;     /* feature-local coordinates */
    switch (f->kind) {
    case FEATURE_PARTICLE: return 0.5 * erfc((sqrt(dx * dx + dy * dy) - f->size) * k);
    case FEATURE_SQUARE: {
        double h = f->size / 2;
        return blurred_interval(a, -h, h, k) * blurred_interval(b, -h, h, k);
    }
    case FEATURE_L: {
        double arm1 = blurred_interval(a, 0, f->size, k) * blurred_interval(b, 0, f->width, k);
        double arm2 = blurred_interval(a, 0, f->width, k) * blurred_interval(b, 0, f->size, k);
        return arm1 > arm2 ? arm1 : arm2;
    }
    case FEATURE_EDGE: return a * k > 4 ? 1.0 : a * k < -4 ? 0.0 : 0.5 * erfc(-a * k);
    }
    return 0;
}

/* Distance from a feature's reference point beyond which its profile is zero (um); edges are unbounded. */
static double feature_reach(const simscope_feature *f, double sigma)
{
    switch (f->kind) {
    case FEATURE_PARTICLE: return f->size + PSF_REACH * sigma;
    case FEATURE_SQUARE: return f->size * M_SQRT1_2 + PSF_REACH * sigma;
    case FEATURE_L: return f->size * M_SQRT2 + PSF_REACH * sigma;
    case FEATURE_EDGE: return INFINITY;
    }
    return 0;
}

void simscope_render(const simscope_sample *s, const simscope_view *v, float *expected)
{
    int w = v->width, h = v->height;
    pixel_to_sample t = view_transform(s, v);
    double k = 1.0 / (M_SQRT2 * s->psf_sigma);
    /* expected first holds the summed contrast, then becomes counts */
    memset(expected, 0, (size_t)w * h * sizeof *expected);
    for (int i = 0; i < s->nfeatures; i++) {
        const simscope_feature *f = &s->features[i];
        if (f->removed || f->contrast == 0) continue;
        int u0 = 0, u1 = w - 1, v0 = 0, v1 = h - 1;
        double reach = feature_reach(f, s->psf_sigma);
        if (isfinite(reach)) {
            double cu, cv, r = reach / v->pixel_size + 1;
            simscope_sample_to_pixel(s, v, f->x, f->y, &cu, &cv);
            u0 = (int)floor(cu - r); u1 = (int)ceil(cu + r);
            v0 = (int)floor(cv - r); v1 = (int)ceil(cv + r);
            if (u0 < 0) u0 = 0;
            if (v0 < 0) v0 = 0;
            if (u1 > w - 1) u1 = w - 1;
            if (v1 > h - 1) v1 = h - 1;
        }
        for (int y = v0; y <= v1; y++) {
            for (int x = u0; x <= u1; x++) {
                double sx = t.ox + x * t.dux + y * t.dvx, sy = t.oy + x * t.duy + y * t.dvy;
                expected[(size_t)y * w + x] += (float)(f->contrast * profile(f, sx, sy, k));
            }
        }
    }
    double base = s->background * v->exposure;
    for (int y = 0; y < h; y++) {
        double gy = 1 + v->gradient_y * ((double)y / h - 0.5);
        for (int x = 0; x < w; x++) {
            double illum = gy + v->gradient_x * ((double)x / w - 0.5);
            float *p = &expected[(size_t)y * w + x];
            double value = base * illum * (1.0 + *p);
            *p = (float)(value > 0 ? value : 0);
        }
    }
}

/* splitmix64: small, fast, good enough for simulated noise, and reproducible from a seed. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *state) { return ((next_random(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

/* Normal deviates come from a table of 64 Ki Box-Muller samples picked by the random stream: a frame of
 * millions of pixels then costs one random number per deviate instead of a log, a sqrt and a cosine. */
#define NORMAL_TABLE_SIZE 65536
static float normal_table[NORMAL_TABLE_SIZE];
static pthread_once_t normal_table_once = PTHREAD_ONCE_INIT;

static void fill_normal_table(void)
{
    uint64_t state = 0x5151;
    for (int i = 0; i < NORMAL_TABLE_SIZE; i++)
        normal_table[i] = (float)(sqrt(-2.0 * log(uniform(&state))) * cos(2 * M_PI * uniform(&state)));
}

static double normal(uint64_t *state)
{
    return normal_table[next_random(state) >> 48];
}

static double poisson(double lambda, uint64_t *state)
{
    if (lambda > 30) {
        double x = lambda + sqrt(lambda) * normal(state) + 0.5;
        return x > 0 ? floor(x) : 0;
    }
    double limit = exp(-lambda), product = uniform(state);
    int n = 0;
    while (product > limit) {
        product *= uniform(state);
        n++;
    }
    return n;
}

void simscope_expose(const simscope_view *v, const float *expected, uint16_t *out)
{
    pthread_once(&normal_table_once, fill_normal_table);
    size_t n = (size_t)v->width * v->height;
    uint64_t state = v->seed;
    double gain = v->gain > 0 ? v->gain : 1;
    for (size_t i = 0; i < n; i++) {
        double value = expected[i];
        if (v->noise) {
            double electrons = poisson(value / gain, &state) + v->read_noise * normal(&state);
            value = electrons * gain;
        }
        value = value < 0 ? 0 : value > 65535 ? 65535 : value;
        out[i] = (uint16_t)(value + 0.5);
    }
}

void simscope_view_defaults(simscope_view *v, int width, int height)
{
    memset(v, 0, sizeof *v);
    v->width = width;
    v->height = height;
    v->pixel_size = 1.0;
    v->beam_x = (width - 1) / 2.0;
    v->beam_y = (height - 1) / 2.0;
    v->exposure = 1.0;
    v->gain = 1.0;
    v->read_noise = 2.0;
    v->noise = 1;
}
