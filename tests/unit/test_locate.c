/* test_locate.c -- unit tests of src/kernels/detection: parameter validation, empty and flat frames, the band pass
 * against a direct (non-separable) evaluation of its definition, one rendered spot, CSV output, and the
 * linker's IDs under displacement priors and memory. */
#include "unit.h"
#include <math.h>

#include "kernels/detection/detection.h"

#if defined(__SANITIZE_ADDRESS__)
/* Exported by libasan (declared in LLVM's sanitizer/allocator_interface.h, which gcc does not ship). */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
static volatile int mallocs_seen;
static void count_malloc(const volatile void *ptr, size_t size) { (void)ptr; (void)size; mallocs_seen++; }
static void ignore_free(const volatile void *ptr) { (void)ptr; }
#endif

static void refuses_bad_parameters(void **state)
{
    (void)state;
    char err[256];
    locate_params p;
    locate_params_default(&p, 10);
    assert_int_equal(locate_params_check(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "diameter must be an odd integer"));

    locate_params_default(&p, 11);
    assert_int_equal(locate_params_check(&p, err, sizeof err), 0);
    p.minmass = -1;
    assert_int_equal(locate_params_check(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "minmass"));

    locate_params_default(&p, 11);
    p.smoothing_size = 3;
    p.noise_size = 3;
    assert_int_equal(locate_params_check(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than noise_size"));

    locate_params_default(&p, 11);
    p.maxsize = NAN;
    assert_int_equal(locate_params_check(&p, err, sizeof err), -1);

    locate_params_default(&p, 11);
    p.roi_x = 50;
    p.roi_y = 0;
    p.roi_width = 60;
    p.roi_height = 20;
    assert_null(locate_ctx_create(&p, 100, 100, 65535, err, sizeof err));
    assert_non_null(strstr(err, "does not fit"));
    assert_null(locate_ctx_create(&p, 0, 100, 65535, err, sizeof err));
}

static void empty_and_flat_frames_give_no_rows(void **state)
{
    (void)state;
    char err[256];
    locate_params p;
    locate_params_default(&p, 7);
    int w = 64, h = 48;
    float *frame = calloc((size_t)w * h, sizeof *frame);
    locate_ctx *ctx = locate_ctx_create(&p, w, h, 65535, err, sizeof err);
    assert_non_null(ctx);
    locate_table t;
    locate_table_init(&t);
    assert_int_equal(locate_frame(ctx, frame, 0, &t), 0);
    assert_int_equal(t.count, 0);
    for (int i = 0; i < w * h; i++) frame[i] = 777;
    assert_int_equal(locate_frame(ctx, frame, 1, &t), 0);
    assert_int_equal(t.count, 0);
    locate_table_free(&t);
    locate_ctx_free(ctx);
    free(frame);
}

/* The band pass by its definition, one output pixel at a time: 2D Gaussian with zero outside, minus the
 * boxcar mean with nearest edges truncated to an integer per axis (trackpy's in-place integer boxcar). */
static double direct_bandpass(const float *img, int w, int h, int y, int x, int box)
{
    double g[9], total = 0;
    for (int i = -4; i <= 4; i++) total += g[i + 4] = exp(-0.5 * i * i);
    double smooth = 0;
    for (int dy = -4; dy <= 4; dy++)
        for (int dx = -4; dx <= 4; dx++) {
            int yy = y + dy, xx = x + dx;
            if (yy >= 0 && yy < h && xx >= 0 && xx < w) smooth += img[yy * w + xx] * g[dy + 4] * g[dx + 4];
        }
    smooth /= total * total;
    double row_means[64];
    int half = box / 2;
    for (int dx = -half; dx <= half; dx++) {
        int xx = x + dx < 0 ? 0 : (x + dx >= w ? w - 1 : x + dx);
        double s = 0;
        for (int dy = -half; dy <= half; dy++) {
            int yy = y + dy < 0 ? 0 : (y + dy >= h ? h - 1 : y + dy);
            s += img[yy * w + xx];
        }
        row_means[dx + half] = floor(s / box);
    }
    double s = 0;
    for (int k = 0; k < box; k++) s += row_means[k];
    double v = smooth - floor(s / box);
    return v >= 1 ? v : 0;
}

static void bandpass_follows_its_definition(void **state)
{
    (void)state;
    char err[256];
    int w = 40, h = 33, box = 9;
    float *frame = malloc((size_t)w * h * sizeof *frame);
    srand(7);
    for (int i = 0; i < w * h; i++) frame[i] = (float)(100 + rand() % 400);
    locate_params p;
    locate_params_default(&p, 9);
    p.smoothing_size = box;
    locate_ctx *ctx = locate_ctx_create(&p, w, h, 65535, err, sizeof err);
    assert_non_null(ctx);
    locate_table t;
    locate_table_init(&t);
    locate_frame(ctx, frame, 0, &t);
    int bw, bh;
    const double *bp = locate_ctx_bandpassed(ctx, &bw, &bh);
    assert_int_equal(bw, w);
    assert_int_equal(bh, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) assert_true(fabs(bp[y * w + x] - direct_bandpass(frame, w, h, y, x, box)) < 1e-9);
    locate_table_free(&t);
    locate_ctx_free(ctx);
    free(frame);
}

static void render_spot(float *frame, int w, int h, double y0, double x0, double amplitude, double sigma)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            frame[y * w + x] += (float)(amplitude * exp(-((y - y0) * (y - y0) + (x - x0) * (x - x0)) / (2 * sigma * sigma)));
}

/* A w x h frame of background 100 with one spot of amplitude 1000 and sigma 1.8 px at (y0, x0). */
static float *one_spot_frame(int w, int h, double y0, double x0)
{
    float *frame = malloc((size_t)w * h * sizeof *frame);
    for (int i = 0; i < w * h; i++) frame[i] = 100;
    render_spot(frame, w, h, y0, x0, 1000, 1.8);
    return frame;
}

static void finds_one_spot_where_it_is(void **state)
{
    (void)state;
    char err[256];
    int w = 64, h = 64;
    float *frame = one_spot_frame(w, h, 20.3, 37.8);
    for (int i = 0; i < w * h; i++) frame[i] = roundf(frame[i]);
    locate_params p;
    locate_params_default(&p, 11);
    p.minmass = 100;
    locate_ctx *ctx = locate_ctx_create(&p, w, h, 65535, err, sizeof err);
    locate_table t;
    locate_table_init(&t);
    locate_frame(ctx, frame, 3, &t);
    assert_int_equal(t.count, 1);
    assert_true(fabs(t.y[0] - 20.3) < 0.05);
    assert_true(fabs(t.x[0] - 37.8) < 0.05);
    assert_int_equal(t.frame[0], 3);
    assert_int_equal(t.particle[0], -1);
    /* raw_mass: the spot's sum inside the mask plus the flat background under it. */
    assert_true(t.raw_mass[0] > 2 * M_PI * 1.8 * 1.8 * 1000 * 0.9);
    assert_true(t.size[0] > 1.5 && t.size[0] < 3.0);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(locate_table_write_csv(&t, f, 1), 0);
    fclose(f);
    assert_true(strncmp(text, "frame,particle,y,x,mass,size,ecc,signal,raw_mass,ep\n3,-1,20.", 60) == 0);
    free(text);
    locate_table_free(&t);
    locate_ctx_free(ctx);
    free(frame);
}

static void set_rows(locate_table *t, int n, const double *y, const double *x)
{
    locate_table_clear(t);
    locate_table_reserve(t, n);
    for (int i = 0; i < n; i++) {
        t->y[i] = y[i];
        t->x[i] = x[i];
        t->particle[i] = -1;
    }
    t->count = n;
}

static void linker_keeps_ids_with_prior_and_memory(void **state)
{
    (void)state;
    char err[256];
    link_params lp = {.search_range = 3, .memory = 2};
    assert_null(linker_create(&(link_params){.search_range = 0, .memory = 0}, err, sizeof err));
    assert_null(linker_create(&(link_params){.search_range = 2, .memory = -1}, err, sizeof err));
    assert_null(linker_create(&(link_params){.search_range = 2, .drift_range = -1}, err, sizeof err));
    linker *lk = linker_create(&lp, err, sizeof err);
    locate_table t;
    locate_table_init(&t);
    double y0[3] = {10, 10, 30}, x0[3] = {10, 30, 10};
    set_rows(&t, 3, y0, x0);
    linker_link_frame(lk, &t, 0, 0);
    assert_int_equal(t.particle[0], 0);
    assert_int_equal(t.particle[1], 1);
    assert_int_equal(t.particle[2], 2);

    /* Content moved by 20 px in x (one spacing): with the prior each keeps its ID; rows given shuffled. */
    double y1[3] = {30.5, 10.2, 9.8}, x1[3] = {30.1, 50.3, 29.7};
    set_rows(&t, 3, y1, x1);
    linker_link_frame(lk, &t, 20, 0);
    assert_int_equal(t.particle[0], 2);
    assert_int_equal(t.particle[1], 1);
    assert_int_equal(t.particle[2], 0);

    /* Particle 1 blinks out for two frames (memory 2) and comes back where the motion predicts. */
    double y2[2] = {30.5, 9.8}, x2[2] = {35.1, 34.7};
    set_rows(&t, 2, y2, x2);
    linker_link_frame(lk, &t, 5, 0);
    assert_int_equal(t.particle[0], 2);
    assert_int_equal(t.particle[1], 0);
    set_rows(&t, 2, y2, x2);
    linker_link_frame(lk, &t, 0, 0);
    assert_int_equal(linker_active_count(lk), 3);
    double y3[3] = {30.5, 9.8, 10.1}, x3[3] = {35.1, 34.7, 55.0};
    set_rows(&t, 3, y3, x3);
    linker_link_frame(lk, &t, 0, 0);
    assert_int_equal(t.particle[2], 1);

    /* Gone for longer than memory: a new ID. */
    for (int k = 0; k < 3; k++) {
        set_rows(&t, 2, y2, x2);
        linker_link_frame(lk, &t, 0, 0);
    }
    set_rows(&t, 3, y3, x3);
    linker_link_frame(lk, &t, 0, 0);
    assert_int_equal(t.particle[2], 3);

    /* Without the prior a move beyond search_range starts new particles. */
    double y4[3] = {30.5, 9.8, 10.1}, x4[3] = {85.1, 84.7, 105.0};
    set_rows(&t, 3, y4, x4);
    linker_link_frame(lk, &t, 0, 0);
    assert_true(t.particle[0] >= 4 && t.particle[1] >= 4 && t.particle[2] >= 4);
    locate_table_free(&t);
    linker_free(lk);
}

/* Non-finite samples (NaN, infinities) count as 0 instead of poisoning the running sums of the band pass
 * along their row and column: the spot whose row and column hold them is still found where it is. */
static void broken_samples_do_not_hide_a_particle(void **state)
{
    (void)state;
    char err[256];
    int w = 64, h = 64;
    float *frame = one_spot_frame(w, h, 30.2, 29.7);
    frame[2 * w + 30] = NAN;
    frame[4 * w + 29] = INFINITY;
    frame[30 * w + 3] = -INFINITY;
    frame[29 * w + 60] = NAN;
    for (int invert = 0; invert < 2; invert++) {
        for (int integer = 0; integer < 2; integer++) {
            float *input = frame, *flipped = NULL;
            if (invert) {   /* a dark particle: the same spot below the background */
                flipped = malloc((size_t)w * h * sizeof *flipped);
                for (int i = 0; i < w * h; i++) flipped[i] = (integer ? 2000.0f : 1.0f) - frame[i] / (integer ? 1.0f : 2000.0f);
                input = flipped;
            } else if (!integer) {
                flipped = malloc((size_t)w * h * sizeof *flipped);
                for (int i = 0; i < w * h; i++) flipped[i] = frame[i] / 2000.0f;
                input = flipped;
            }
            locate_params p;
            locate_params_default(&p, 11);
            p.invert = invert;
            p.minmass = integer ? 100 : 0.05;
            locate_ctx *ctx = locate_ctx_create(&p, w, h, integer ? 65535 : 0, err, sizeof err);
            locate_table t;
            locate_table_init(&t);
            assert_int_equal(locate_frame(ctx, input, 0, &t), 0);
            assert_int_equal(t.count, 1);
            assert_true(fabs(t.y[0] - 30.2) < 0.1 && fabs(t.x[0] - 29.7) < 0.1);
            locate_table_free(&t);
            locate_ctx_free(ctx);
            free(flipped);
        }
    }
    free(frame);
}

/* A live stream: after the first frames, locating, ring fitting and linking allocate nothing. */
static void steady_state_does_not_allocate(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    char err[256];
    int w = 160, h = 120;
    float *frames[2];
    for (int k = 0; k < 2; k++) {
        frames[k] = calloc((size_t)w * h, sizeof(float));
        for (int i = 0; i < w * h; i++) frames[k][i] = 100 + (float)((i * 7919 + k * 31) % 13);
        for (int p = 0; p < 12; p++) render_spot(frames[k], w, h, 20 + (p / 4) * 30 + k, 20 + (p % 4) * 35 - k, 900, 1.8);
    }
    locate_params p;
    locate_params_default(&p, 11);
    p.minmass = 100;
    p.topn = 10;
    locate_ctx *ctx = locate_ctx_create(&p, w, h, 65535, err, sizeof err);
    linker *lk = linker_create(&(link_params){.search_range = 5, .memory = 1, .drift_range = 20}, err, sizeof err);
    locate_table t;
    locate_table_init(&t);
    for (int k = 0; k < 4; k++) {
        locate_frame(ctx, frames[k % 2], k, &t);
        linker_link_frame(lk, &t, k % 2 ? 1 : -1, k % 2 ? -1 : 1);
        locate_rings(ctx, frames[k % 2], k, &t);
    }
    mallocs_seen = 0;
    __sanitizer_install_malloc_and_free_hooks(count_malloc, ignore_free);
    for (int k = 4; k < 10; k++) {
        locate_frame(ctx, frames[k % 2], k, &t);
        linker_link_frame(lk, &t, k % 2 ? 1 : -1, k % 2 ? -1 : 1);
        locate_rings(ctx, frames[k % 2], k, &t);
    }
    __sanitizer_install_malloc_and_free_hooks(NULL, NULL);
    assert_int_equal(mallocs_seen, 0);
    locate_table_free(&t);
    linker_free(lk);
    locate_ctx_free(ctx);
    free(frames[0]);
    free(frames[1]);
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refuses_bad_parameters),
        cmocka_unit_test(empty_and_flat_frames_give_no_rows),
        cmocka_unit_test(bandpass_follows_its_definition),
        cmocka_unit_test(finds_one_spot_where_it_is),
        cmocka_unit_test(linker_keeps_ids_with_prior_and_memory),
        cmocka_unit_test(broken_samples_do_not_hide_a_particle),
        cmocka_unit_test(steady_state_does_not_allocate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
