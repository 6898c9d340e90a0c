/* test_xanes.c -- unit tests of src/kernels/xanes: exact fits of known polynomials, the alignment hook, and the live
 * use (images appended one by one in any energy order, analysis refreshed after each). */
#include "unit.h"
#include <math.h>

#include "kernels/xanes/xanes.h"

/* mu(E) = 2 - 0.05 (E - 8350)^2 + 0.004 (E - 8350)^3: maximum at E = 8350 inside a window of 8342..8356. */
static double cubic(double e)
{
    double d = e - 8350.0;
    return 2 - 0.05 * d * d + 0.004 * d * d * d;
}

static void fit_spectrum_recovers_polynomial_maxima(void **state)
{
    (void)state;
    double energy[30], mu[30];
    for (int i = 0; i < 30; i++) {
        energy[i] = 8335.0 + i;
        mu[i] = cubic(energy[i]);
    }
    char err[256];
    xanes_fit f;
    for (int order = 3; order <= 4; order++) {
        assert_int_equal(xanes_fit_spectrum(energy, mu, 30, order, 8342, 8356, &f, err, sizeof err), 0);
        assert_int_equal(f.status, XANES_OK);
        assert_true(fabs(f.peak_energy - 8350.0) < 1e-8);
        assert_true(f.r2 > 1 - 1e-12);
        assert_true(f.rmse < 1e-9);
    }
    /* A window above the maximum holds only the falling side: no maximum inside, flagged. */
    assert_int_equal(xanes_fit_spectrum(energy, mu, 30, 2, 8352, 8362, &f, err, sizeof err), 0);
    assert_int_equal(f.status, XANES_NO_PEAK);
    assert_true(isnan(f.peak_energy));
    /* Too few energies for the order. */
    assert_int_equal(xanes_fit_spectrum(energy, mu, 30, 4, 8350, 8353, &f, err, sizeof err), -1);
    assert_non_null(strstr(err, "needs at least 6"));
}

typedef struct align_log {
    int calls;
    const float *reference_seen;
    int fail_next;
} align_log;

/* Stands in for the registration engine: records its calls and adds 1 to every sample. */
static int fake_align(void *user, const float *reference, float *image, int nx, int ny, int nz, char *err,
                      size_t errlen)
{
    align_log *log = user;
    if (log->fail_next) {
        snprintf(err, errlen, "registration failed");
        return -1;
    }
    log->calls++;
    log->reference_seen = reference;
    for (int i = 0; i < nx * ny * nz; i++) image[i] += 1.0f;
    return 0;
}

static void aligner_runs_on_each_image_after_the_first(void **state)
{
    (void)state;
    xanes_stack s;
    xanes_stack_init(&s, 3, 2, 1);
    align_log log = {0};
    xanes_stack_set_aligner(&s, fake_align, &log);
    float img[6] = {0};
    char err[256];
    for (int k = 0; k < 3; k++) assert_int_equal(xanes_stack_add(&s, 8340.0 + k, img, err, sizeof err), 0);
    assert_int_equal(log.calls, 2);
    assert_ptr_equal(log.reference_seen, s.data);
    assert_true(s.data[0] == 0.0f && s.data[6] == 1.0f && s.data[12] == 1.0f);
    log.fail_next = 1;
    assert_int_equal(xanes_stack_add(&s, 8343.0, img, err, sizeof err), -1);
    assert_string_equal(err, "registration failed");
    assert_int_equal(s.count, 3);
    assert_int_equal(xanes_stack_add(&s, NAN, img, err, sizeof err), -1);
    xanes_stack_free(&s);
}

/* Pixel p has its maximum at 8348 + 0.1 p. */
static void fill_image(float *img, int n, double energy)
{
    for (int p = 0; p < n; p++) {
        double d = energy - (8348.0 + 0.1 * p);
        img[p] = (float)((1 + 0.2 * p) * (3 - 0.02 * d * d));
    }
}

static void live_accumulation_in_any_energy_order(void **state)
{
    (void)state;
    enum { N = 12, NE = 21 };
    xanes_params p;
    xanes_params_default(&p);
    p.window_lo = 8340;
    p.window_hi = 8356;
    p.threads = 2;
    xanes_stack s;
    xanes_stack_init(&s, 4, 3, 1);
    float img[N];
    char err[256];
    int analysed = 0;
    for (int i = 0; i < NE; i++) {
        int k = (i * 8) % NE;              /* a permutation of 0..20: energies arrive out of order */
        double e = 8338.0 + k;
        fill_image(img, N, e);
        assert_int_equal(xanes_stack_add(&s, e, img, err, sizeof err), 0);
        xanes_result r;
        if (xanes_analyse(&s, &p, &r, err, sizeof err) != 0) continue;   /* too few energies in the window yet */
        analysed++;
        assert_int_equal(r.n_ok + r.n_no_peak, N);
        if (r.window_points >= 5 && r.n_ok == N)
            for (int px = 0; px < N; px++) assert_true(fabs(r.peak_energy[px] - (8348.0 + 0.1 * px)) < 2e-3);
        xanes_result_free(&r);
    }
    assert_true(analysed > 10);
    xanes_result r;
    assert_int_equal(xanes_analyse(&s, &p, &r, err, sizeof err), 0);
    assert_int_equal(r.window_points, 17);
    assert_int_equal(r.n_ok, N);
    for (int px = 0; px < N; px++) assert_true(fabs(r.peak_energy[px] - (8348.0 + 0.1 * px)) < 2e-3);
    for (int k = 1; k < r.spectrum_count; k++) assert_true(r.spectrum_energy[k] > r.spectrum_energy[k - 1]);
    xanes_result_free(&r);
    xanes_stack_free(&s);
}

static void bad_parameters_are_rejected(void **state)
{
    (void)state;
    xanes_params p;
    char err[256];
    xanes_params_default(&p);
    p.order = 1;
    assert_int_equal(xanes_params_check(&p, err, sizeof err), -1);
    xanes_params_default(&p);
    p.window_lo = 8350;
    p.window_hi = 8340;
    assert_int_equal(xanes_params_check(&p, err, sizeof err), -1);
    xanes_params_default(&p);
    p.bin[2] = 0;
    assert_int_equal(xanes_params_check(&p, err, sizeof err), -1);
    xanes_params_default(&p);
    p.mask_mode = XANES_MASK_EDGE_JUMP;
    assert_int_equal(xanes_params_check(&p, err, sizeof err), -1);
    xanes_stack s;
    xanes_stack_init(&s, 2, 2, 1);
    xanes_result r;
    xanes_params_default(&p);
    assert_int_equal(xanes_analyse(&s, &p, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "energies"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fit_spectrum_recovers_polynomial_maxima),
        cmocka_unit_test(aligner_runs_on_each_image_after_the_first),
        cmocka_unit_test(live_accumulation_in_any_energy_order),
        cmocka_unit_test(bad_parameters_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
