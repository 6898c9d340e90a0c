/* test_register.c -- unit tests of src/kernels/registration on synthetic scenes whose transform is known exactly: Gaussian
 * blobs drawn analytically at their true (shifted, rotated, scaled) positions, so no interpolation of ours or
 * anybody's enters the ground truth. */
#include "unit.h"
#include <math.h>

#include "kernels/registration/registration.h"

#if defined(__SANITIZE_ADDRESS__)
/* From the sanitizers' public interface (sanitizer/allocator_interface.h, which Debian ships with clang only). */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
#include <dlfcn.h>
#include <execinfo.h>
#include <string.h>
static volatile int allocations;
/* Counts the allocations made by reloc's code. FFTW's buffered solvers allocate their scratch at each execute of a
 * plan that uses one (fft_plans.c keeps them: forbidding them costs 20 % at 2048^2): those, recognised by an FFTW
 * library on the allocating stack, are not counted. backtrace() is primed before the hook is installed (its first
 * call loads the unwinder, which allocates). */
static void count_allocation(const volatile void *ptr, size_t size)
{
    (void)ptr;
    (void)size;
    void *frames[48];
    int n = backtrace(frames, 48);
    for (int i = 0; i < n; i++) {
        Dl_info at;
        if (dladdr(frames[i], &at) && at.dli_fname && strstr(at.dli_fname, "libfftw3f")) return;
    }
    allocations++;
}
static void ignore_free(const volatile void *ptr) { (void)ptr; }
#endif

#define N 128
#define BLOBS 400

typedef struct { double x, y, sigma, amp; } blob;

static blob scene[BLOBS];

static void make_scene(unsigned seed)
{
    srand(seed);
    for (int i = 0; i < BLOBS; i++) {
        scene[i].x = rand() / (double)RAND_MAX * (N + 40) - 20;
        scene[i].y = rand() / (double)RAND_MAX * (N + 40) - 20;
        scene[i].sigma = 1.5 + 3.0 * rand() / (double)RAND_MAX;
        scene[i].amp = 0.5 + rand() / (double)RAND_MAX;
    }
}

/* Draws the scene moved by moving = A (p - c) + c + t, A = scale * [[cos, sin], [-sin, cos]], c the frame centre
 * (register.h's model), into img (w x h). */
static void draw(float *img, int w, int h, double angle_deg, double scale, double tx, double ty)
{
    double th = angle_deg * M_PI / 180, c = cos(th), s = sin(th), cx = (N - 1) / 2.0, cy = (N - 1) / 2.0;
    for (int i = 0; i < w * h; i++) img[i] = 0;
    for (int b = 0; b < BLOBS; b++) {
        double dx = scene[b].x - cx, dy = scene[b].y - cy;
        double bx = scale * (c * dx + s * dy) + cx + tx, by = scale * (-s * dx + c * dy) + cy + ty;
        double sig = scene[b].sigma * scale;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double r2 = (x - bx) * (x - bx) + (y - by) * (y - by);
                img[y * w + x] += (float)(scene[b].amp * exp(-r2 / (2 * sig * sig)));
            }
    }
}

static void noise(float *img, int n, double sigma, unsigned seed)
{
    srand(seed);
    for (int i = 0; i < n; i += 2) {
        double u1 = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = rand() / (RAND_MAX + 1.0);
        double r = sqrt(-2 * log(u1));
        img[i] += (float)(sigma * r * cos(2 * M_PI * u2));
        if (i + 1 < n) img[i + 1] += (float)(sigma * r * sin(2 * M_PI * u2));
    }
}

static reg_view view_of(const float *img, int w, int h)
{
    reg_view v = {.data = img, .width = w, .height = h};
    return v;
}

/* A scene drawn as the reference (plus noise of ref_noise), a buffer for moving images, and a context made with
 * p that holds the reference. */
typedef struct fixture {
    float *ref, *mov;
    reg_ctx *ctx;
    reg_result r;
    char err[256];
} fixture;

static void fixture_open(fixture *fx, unsigned seed, double ref_noise, const reg_params *p, int similarity)
{
    make_scene(seed);
    fx->ref = malloc(sizeof(float) * N * N);
    fx->mov = malloc(sizeof(float) * N * N);
    draw(fx->ref, N, N, 0, 1, 0, 0);
    noise(fx->ref, N * N, ref_noise, seed + 1000);
    fx->ctx = reg_create(N, N, p, similarity, fx->err, sizeof fx->err);
    assert_non_null(fx->ctx);
    reg_view rv = view_of(fx->ref, N, N);
    assert_int_equal(reg_set_reference(fx->ctx, &rv, fx->err, sizeof fx->err), 0);
}

static void fixture_close(fixture *fx)
{
    reg_destroy(fx->ctx);
    free(fx->ref);
    free(fx->mov);
}

/* Registers fx->mov (whole, or the given view) by translation; returns reg_translate's status. */
static int translate(fixture *fx, const reg_view *v)
{
    reg_view whole = view_of(fx->mov, N, N);
    return reg_translate(fx->ctx, v ? v : &whole, &fx->r, fx->err, sizeof fx->err);
}

static int shift_within(const reg_result *r, double tx, double ty, double tol)
{
    return fabs(r->shift_x - tx) <= tol && fabs(r->shift_y - ty) <= tol;
}

static void translation_subpixel(void **state)
{
    (void)state;
    reg_params p;
    reg_params_default(&p);
    p.pixel_size = 0.5;
    fixture fx;
    fixture_open(&fx, 1, 0, &p, 0);
    const double shifts[][2] = {{0.25, -0.5}, {3.37, -7.81}, {-12.3, 20.6}, {0, 0}};
    for (int i = 0; i < 4; i++) {
        draw(fx.mov, N, N, 0, 1, shifts[i][0], shifts[i][1]);
        assert_int_equal(translate(&fx, NULL), 0);
        assert_true(shift_within(&fx.r, shifts[i][0], shifts[i][1], 0.05));
        assert_true(fabs(fx.r.shift_x_um - 0.5 * fx.r.shift_x) < 1e-9);
        assert_true(fx.r.confident);
        assert_true(fx.r.error < 0.5 && fx.r.correlation > 0.8);
        assert_true(fx.r.peak > 0.2 && fx.r.peak <= 1.0);
        assert_true(fx.r.phasediff == 0);
    }
    fixture_close(&fx);
}

static void unrelated_images_are_not_confident(void **state)
{
    (void)state;
    reg_params p;
    reg_params_default(&p);
    for (unsigned trial = 0; trial < 5; trial++) {
        /* Another scene: whitening turns blob scenes into sparse points that line up somewhere by chance. */
        fixture fx;
        fixture_open(&fx, 100 + trial, 0, &p, 0);
        make_scene(200 + trial);
        draw(fx.mov, N, N, 0, 1, 0, 0);
        assert_int_equal(translate(&fx, NULL), 0);
        assert_false(fx.r.confident);
        /* Pure noise against pure noise. */
        memset(fx.ref, 0, sizeof(float) * N * N);
        memset(fx.mov, 0, sizeof(float) * N * N);
        noise(fx.ref, N * N, 1, 300 + trial);
        noise(fx.mov, N * N, 1, 400 + trial);
        reg_view rv = view_of(fx.ref, N, N);
        assert_int_equal(reg_set_reference(fx.ctx, &rv, fx.err, sizeof fx.err), 0);
        assert_int_equal(translate(&fx, NULL), 0);
        assert_false(fx.r.confident);
        assert_true(fx.r.psr < p.min_psr);
        fixture_close(&fx);
    }
}

static void noisy_match_stays_confident_and_accurate(void **state)
{
    (void)state;
    reg_params p;
    reg_params_default(&p);
    p.band_high = 0.15;         /* the band-pass keeps the noise-only high frequencies from dominating */
    fixture fx;
    fixture_open(&fx, 7, 0.05, &p, 0);
    draw(fx.mov, N, N, 0, 1, 5.43, -2.18);
    noise(fx.mov, N * N, 0.05, 2);
    assert_int_equal(translate(&fx, NULL), 0);
    assert_true(fx.r.confident);
    assert_true(shift_within(&fx.r, 5.43, -2.18, 0.1));
    fixture_close(&fx);
}

static void roi_of_the_reference(void **state)
{
    (void)state;
    /* The moving image is a 64x48 crop of a shifted scene; only the crop's data is used. */
    reg_params p;
    reg_params_default(&p);
    fixture fx;
    fixture_open(&fx, 3, 0, &p, 0);
    draw(fx.mov, N, N, 0, 1, 2.6, -1.4);
    const int cw = 64, ch = 48, ox = 40, oy = 30;
    float *crop = malloc(sizeof(float) * cw * ch);
    for (int y = 0; y < ch; y++) memcpy(crop + y * cw, fx.mov + (oy + y) * N + ox, sizeof(float) * cw);
    /* A crop in its own pixels: the scene point p lands at p + t - crop origin. */
    reg_view cv = view_of(crop, cw, ch), mv = view_of(fx.mov, N, N);
    assert_int_equal(translate(&fx, &cv), 0);
    assert_true(fx.r.confident);
    assert_true(shift_within(&fx.r, 2.6 - ox, -1.4 - oy, 0.05));
    /* The same region selected by an ROI of the full moving image keeps the image's coordinates. */
    mv.roi_x = ox, mv.roi_y = oy, mv.roi_w = cw, mv.roi_h = ch;
    assert_int_equal(translate(&fx, &mv), 0);
    assert_true(shift_within(&fx.r, 2.6, -1.4, 0.05));
    /* An ROI outside the image is refused. */
    mv.roi_x = N - 10;
    assert_int_equal(translate(&fx, &mv), -1);
    assert_non_null(strstr(fx.err, "outside"));
    free(crop);
    fixture_close(&fx);
}

static void similarity_rotation_scale(void **state)
{
    (void)state;
    reg_params p;
    reg_params_default(&p);
    p.iterations = 4;
    fixture fx;
    fixture_open(&fx, 5, 0, &p, 1);
    const double cases[][4] = {{17.0, 1.0, 1.5, -2.5}, {-40.0, 1.15, 0, 0}, {150.0, 0.9, -3, 2}};
    reg_view mv = view_of(fx.mov, N, N);
    for (int i = 0; i < 3; i++) {
        draw(fx.mov, N, N, cases[i][0], cases[i][1], cases[i][2], cases[i][3]);
        assert_int_equal(reg_similarity(fx.ctx, &mv, &fx.r, fx.err, sizeof fx.err), 0);
        assert_true(fx.r.confident);
        assert_true(fabs(fx.r.angle_deg - cases[i][0]) <= 0.1);
        assert_true(fabs(fx.r.scale / cases[i][1] - 1) <= 0.002);
        assert_true(shift_within(&fx.r, cases[i][2], cases[i][3], 0.1));
    }
    fixture_close(&fx);
    /* A translation-only context refuses similarity. */
    fixture_open(&fx, 5, 0, &p, 0);
    assert_int_equal(reg_similarity(fx.ctx, &mv, &fx.r, fx.err, sizeof fx.err), -1);
    fixture_close(&fx);
}

/* With threads > 1 a helper thread registers two of the four verification quarters: the verdict and its error
 * estimate are those of one thread (each quarter runs the same one-thread transforms either way), for a right
 * match, a wrong one and similarity, frame after frame. */
static void quarters_on_a_helper_thread_agree(void **state)
{
    (void)state;
    reg_params p1, p2;
    reg_params_default(&p1);
    p1.iterations = 4;
    p2 = p1;
    p2.threads = 2;
    fixture one, two;
    fixture_open(&one, 9, 0.02, &p1, 1);
    fixture_open(&two, 9, 0.02, &p2, 1);
    const double moves[][4] = {{0, 1, 2.6, -1.4}, {0, 1, -11.3, 7.9}, {9, 1.05, 1.5, -2.5}};
    for (int i = 0; i < 4; i++) {
        if (i < 3) draw(one.mov, N, N, moves[i][0], moves[i][1], moves[i][2], moves[i][3]);
        else noise(one.mov, N * N, 1, 77);   /* nothing in common */
        memcpy(two.mov, one.mov, sizeof(float) * N * N);
        reg_view m1 = view_of(one.mov, N, N), m2 = view_of(two.mov, N, N);
        for (int similar = 0; similar < 2; similar++) {
            int (*run)(reg_ctx *, const reg_view *, reg_result *, char *, size_t) =
                similar ? reg_similarity : reg_translate;
            assert_int_equal(run(one.ctx, &m1, &one.r, one.err, sizeof one.err), 0);
            assert_int_equal(run(two.ctx, &m2, &two.r, two.err, sizeof two.err), 0);
            assert_int_equal(one.r.confident, two.r.confident);
            assert_true(fabs(one.r.error_px - two.r.error_px) <= 1e-3 ||
                        (isinf(one.r.error_px) && isinf(two.r.error_px)));
            assert_true(fabs(one.r.shift_x - two.r.shift_x) <= 1e-3 && fabs(one.r.shift_y - two.r.shift_y) <= 1e-3);
        }
        assert_int_equal(two.r.confident, i < 3);
    }
    fixture_close(&one);
    fixture_close(&two);
}

/* The live loop registers every camera frame: nothing may be allocated per frame. Counted through the
 * sanitizer's allocator hooks, so this runs in the ASan build (the one the test suite uses). */
static void no_allocation_per_frame(void **state)
{
    (void)state;
#if !defined(__SANITIZE_ADDRESS__)
    skip();
#else
    reg_params p;
    reg_params_default(&p);
    fixture fx;
    fixture_open(&fx, 13, 0, &p, 1);
    reg_view mv = view_of(fx.mov, N, N);
    draw(fx.mov, N, N, 8, 1.05, 9.5, -4.25);      /* a large shift: the overlap-window pass runs too */
    void *primer[4];
    backtrace(primer, 4);
    assert_int_equal(__sanitizer_install_malloc_and_free_hooks(count_allocation, ignore_free), 1);
    allocations = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(translate(&fx, NULL), 0);
        assert_int_equal(reg_similarity(fx.ctx, &mv, &fx.r, fx.err, sizeof fx.err), 0);
    }
    int counted = allocations;
    fixture_close(&fx);
    assert_int_equal(counted, 0);
#endif
}

static void parameters_are_checked(void **state)
{
    (void)state;
    reg_params p;
    reg_params_default(&p);
    char err[256];
    reg_ctx *ctx = reg_create(N, N, &p, 0, err, sizeof err);
    reg_result r;
    reg_view v = view_of(NULL, N, N);
    float img[16] = {0};
    reg_view small = view_of(img, 4, 4);
    assert_int_equal(reg_translate(ctx, &small, &r, err, sizeof err), -1);   /* no reference yet */
    assert_int_equal(reg_set_reference(ctx, &v, err, sizeof err), -1);      /* no data */
    reg_destroy(ctx);
    assert_null(reg_create(4, N, &p, 0, err, sizeof err));
    assert_int_equal(reg_params_set(&p, "upsample", "0", err, sizeof err), -1);
    reg_params_default(&p);
    assert_int_equal(reg_params_set(&p, "upsample", "2.5", err, sizeof err), -1);
    reg_params_default(&p);
    assert_int_equal(reg_params_set(&p, "window", "blackman", err, sizeof err), -1);
    assert_int_equal(reg_params_set(&p, "frobnicate", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown"));
    reg_params_default(&p);
    assert_int_equal(reg_params_set(&p, "whitening", "1.5", err, sizeof err), -1);
    reg_params_default(&p);
    assert_int_equal(reg_params_set(&p, "window", "tukey", err, sizeof err), 0);
    assert_int_equal(p.window, REG_WINDOW_TUKEY);
    assert_int_equal(reg_params_set(&p, "band-low", "0.02", err, sizeof err), 0);
    assert_int_equal(reg_params_set(&p, "band-high", "0.3", err, sizeof err), 0);
    assert_int_equal(reg_params_set(&p, "band-low", "0.4", err, sizeof err), -1);
}

static void band_pass_and_tukey_still_register(void **state)
{
    (void)state;
    reg_params p;
    reg_params_default(&p);
    p.window = REG_WINDOW_TUKEY;
    p.band_low = 0.01;
    p.band_high = 0.25;
    for (int invariant = 0; invariant < 2; invariant++) {
        p.contrast_invariant = invariant;
        fixture fx;
        fixture_open(&fx, 11, 0, &p, 0);
        draw(fx.mov, N, N, 0, 1, -4.72, 9.31);
        assert_int_equal(translate(&fx, NULL), 0);
        assert_true(shift_within(&fx.r, -4.72, 9.31, 0.05));
        /* Contrast inversion: found only when allowed, and then reported with phase pi. */
        for (int i = 0; i < N * N; i++) fx.mov[i] = -fx.mov[i];
        assert_int_equal(translate(&fx, NULL), 0);
        assert_int_equal(fx.r.confident, invariant);
        if (invariant) {
            assert_true(fabs(fx.r.phasediff - M_PI) < 1e-9);
            assert_true(shift_within(&fx.r, -4.72, 9.31, 0.05));
        }
        fixture_close(&fx);
    }
}

static void resample_area_and_bicubic(void **state)
{
    (void)state;
    /* Halving averages 2x2 blocks exactly. */
    float src[16];
    for (int i = 0; i < 16; i++) src[i] = (float)i;
    int w, h;
    float *half = reg_resample(src, 4, 4, 0.5, &w, &h);
    assert_int_equal(w, 2);
    assert_int_equal(h, 2);
    assert_true(fabsf(half[0] - (0 + 1 + 4 + 5) / 4.0f) < 1e-5f);
    assert_true(fabsf(half[3] - (10 + 11 + 14 + 15) / 4.0f) < 1e-5f);
    free(half);
    /* Enlarging a linear ramp keeps it linear in the interior (cubic convolution reproduces linear functions). */
    float ramp[64];
    for (int i = 0; i < 64; i++) ramp[i] = (float)(i % 8);
    float *big = reg_resample(ramp, 8, 8, 2, &w, &h);
    assert_int_equal(w, 16);
    for (int x = 4; x < 12; x++) assert_true(fabsf(big[5 * 16 + x] - ((x + 0.5f) / 2 - 0.5f)) < 1e-4f);
    free(big);
    assert_null(reg_resample(src, 4, 4, 0, &w, &h));
}

static void stack_alignment(void **state)
{
    (void)state;
    make_scene(9);
    const int count = 4;
    const double truth[4][2] = {{0, 0}, {1.25, -0.75}, {-3.5, 2.2}, {6.1, 4.4}};
    const double rel[4] = {1, 1, 1.05, 0.95};
    float *frames = malloc(sizeof(float) * N * N * count), *aligned = malloc(sizeof(float) * N * N * count);
    for (int k = 0; k < count; k++)
        draw(frames + (size_t)k * N * N, N, N, 0, 1 / rel[k], truth[k][0], truth[k][1]);
    reg_params p;
    reg_params_default(&p);
    reg_result res[4];
    char err[256];
    for (int neighbours = 0; neighbours < 2; neighbours++) {
        assert_int_equal(reg_align_stack(frames, N, N, count, 0, neighbours, rel, &p, res, aligned, NULL, NULL,
                                         err, sizeof err), 0);
        for (int k = 0; k < count; k++) {
            assert_true(fabs(res[k].shift_x - truth[k][0]) <= 0.05);
            assert_true(fabs(res[k].shift_y - truth[k][1]) <= 0.05);
            assert_true(fabs(res[k].scale - 1 / rel[k]) < 1e-12);
            assert_true(res[k].confident);
        }
    }
    assert_int_equal(reg_align_stack(frames, N, N, count, 7, 0, NULL, &p, res, NULL, NULL, NULL, err, sizeof err),
                     -1);
    free(frames);
    free(aligned);
}

/* The edge map keeps where an outline is and drops the grey level and the sign of the contrast: a bright disc and
 * a dark disc three times as deep give maps in ratio 3 exactly, zero inside and far outside, largest on the
 * outline. */
static void edge_map_keeps_the_outline_not_the_contrast(void **state)
{
    (void)state;
    enum { W = 48, H = 40 };
    static float bright[W * H], dark[W * H], eb[W * H], ed[W * H];
    const double cx = 23.5, cy = 19.0, r = 11.0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int in = hypot(x - cx, y - cy) < r;
            bright[y * W + x] = in ? 1.0f : 0.0f;
            dark[y * W + x] = in ? -3.0f : 0.0f;
        }
    assert_int_equal(reg_edge_map(bright, W, H, 1.0, eb), 0);
    assert_int_equal(reg_edge_map(dark, W, H, 1.0, ed), 0);
    double peak = 0, peak_radius = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            assert_true(fabs(ed[i] - 3 * eb[i]) <= 1e-5 * (1 + ed[i]));
            double d = hypot(x - cx, y - cy);
            if (d < r - 5 || d > r + 5) assert_true(eb[i] < 1e-3);
            if (eb[i] > peak) {
                peak = eb[i];
                peak_radius = d;
            }
        }
    assert_true(peak > 0.1 && fabs(peak_radius - r) < 1.0);
    assert_int_equal(reg_edge_map(bright, 2, H, 1.0, eb), -1);
    assert_int_equal(reg_edge_map(bright, W, H, -1.0, eb), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(translation_subpixel),
        cmocka_unit_test(unrelated_images_are_not_confident),
        cmocka_unit_test(noisy_match_stays_confident_and_accurate),
        cmocka_unit_test(roi_of_the_reference),
        cmocka_unit_test(similarity_rotation_scale),
        cmocka_unit_test(quarters_on_a_helper_thread_agree),
        cmocka_unit_test(no_allocation_per_frame),
        cmocka_unit_test(parameters_are_checked),
        cmocka_unit_test(band_pass_and_tukey_still_register),
        cmocka_unit_test(resample_area_and_bicubic),
        cmocka_unit_test(stack_alignment),
        cmocka_unit_test(edge_map_keeps_the_outline_not_the_contrast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
