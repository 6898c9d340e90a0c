/* test_constellation.c -- unit tests of the constellation matcher (src/kernels/geometry/constellation.c): a
 * live-camera-sized window of a particle field, remounted with rotations over the whole circle, scales 0.9 and
 * 1.1, mirrored, with lost and spurious detections and position noise, is placed back where it came from; a
 * window of another sample is not placed anywhere convincingly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "kernels/geometry/geometry.h"

#define FIELD 480.0       /* um: particles in a square of this side, at least 12 um apart (sim/make_sample.py) */
#define NMODEL 400
#define VIEW 128.0        /* um: the live camera's field */

static uint64_t rng_state;

static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double gauss(void) { return sqrt(-2 * log(uniform() + 1e-300)) * cos(2 * M_PI * uniform()); }

static void particle_field(double (*p)[2], int n, uint64_t seed)
{
    rng_state = seed;
    for (int i = 0; i < n;) {
        double x = (uniform() - 0.5) * FIELD, y = (uniform() - 0.5) * FIELD;
        int clear = 1;
        for (int j = 0; j < i && clear; j++) clear = hypot(p[j][0] - x, p[j][1] - y) >= 12;
        if (clear) p[i][0] = x, p[i][1] = y, i++;
    }
}

typedef struct remount {
    double rotation_deg, scale, tx, ty;
    int mirrored;
} remount;

static void apply(const remount *r, const double *m, double *s)
{
    double a = r->rotation_deg * M_PI / 180, y = r->mirrored ? -m[1] : m[1];
    s[0] = r->scale * (cos(a) * m[0] - sin(a) * y) + r->tx;
    s[1] = r->scale * (sin(a) * m[0] + cos(a) * y) + r->ty;
}

/* The scene a camera at (cx, cy) of the model sees after the remount: 15 % of the particles not detected,
 * 4 spurious detections, 0.1 um noise. Returns the number of scene points; truth[i] is the model index or -1. */
static int view_of(const double (*model)[2], const remount *r, double cx, double cy, double (*scene)[2], int *truth)
{
    int n = 0;
    for (int k = 0; k < NMODEL; k++) {
        if (fabs(model[k][0] - cx) > VIEW / 2 || fabs(model[k][1] - cy) > VIEW / 2 || uniform() < 0.15) continue;
        apply(r, model[k], scene[n]);
        scene[n][0] += 0.1 * gauss(), scene[n][1] += 0.1 * gauss();
        truth[n++] = k;
    }
    double centre[2];
    apply(r, (double[]){cx, cy}, centre);
    for (int k = 0; k < 4; k++) {
        scene[n][0] = centre[0] + (uniform() - 0.5) * VIEW, scene[n][1] = centre[1] + (uniform() - 0.5) * VIEW;
        truth[n++] = -1;
    }
    return n;
}

static void remounts_are_found_over_the_whole_circle(void **state)
{
    (void)state;
    static double model[NMODEL][2], scene[NMODEL + 8][2];
    static int truth[NMODEL + 8], match[NMODEL + 8];
    particle_field(model, NMODEL, 7);
    constellation_params p;
    constellation_params_default(&p);
    const remount cases[] = {{0, 1, 230, -170, 0},    {3, 1, -140, 95, 0},    {-11, 1, -140, 95, 0},
                             {30, 0.9, 0, 0, 0},      {97.3, 1.1, 300, 0, 0}, {180, 1, -50, 260, 0},
                             {211.5, 0.95, 10, 20, 1}, {270, 1.05, -300, -10, 0}, {333, 1, 120, 120, 1},
                             {-47.9, 0.9, 0, -290, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const remount *r = &cases[c];
        double cx = (uniform() - 0.5) * (FIELD - VIEW), cy = (uniform() - 0.5) * (FIELD - VIEW);
        int n = view_of((const double (*)[2])model, r, cx, cy, scene, truth);
        constellation_result res;
        char err[128];
        assert_int_equal(constellation_match((const double (*)[2])model, NMODEL, (const double (*)[2])scene, n, &p,
                                             &res, match, err, sizeof err), 0);
        print_message("rotation %6.1f scale %.2f mirrored %d: %d of %d explained, runner-up %d, rms %.3f, %d proposals\n",
                      r->rotation_deg, r->scale, r->mirrored, res.matches, n, res.runner_up, res.rms, res.hypotheses);
        assert_int_equal(res.mirrored, r->mirrored);
        assert_true(res.matches >= n - 4 - 2);                 /* every real detection but at most 2 */
        assert_true(res.runner_up <= res.matches / 2);           /* no rival placement near it */
        assert_true(res.rms < 0.2);
        assert_true(fabs(res.scale - r->scale) < 0.005);
        double drot = fmod(res.rotation_deg - r->rotation_deg + 720, 360);
        assert_true(fmin(drot, 360 - drot) < 0.2);
        for (int i = 0; i < n; i++) {
            if (truth[i] < 0) continue;
            if (match[i] >= 0) assert_int_equal(match[i], truth[i]);          /* never a wrong pair */
            double s[2], t[2];                                                  /* the remount, recovered */
            apply(r, model[truth[i]], s);
            affine_apply(&res.transform, model[truth[i]][0], model[truth[i]][1], &t[0], &t[1]);
            assert_true(hypot(s[0] - t[0], s[1] - t[1]) < 0.3);
        }
    }
}

static void another_sample_is_not_placed_convincingly(void **state)
{
    (void)state;
    static double model[NMODEL][2], other[NMODEL][2], scene[NMODEL + 8][2];
    static int truth[NMODEL + 8];
    particle_field(model, NMODEL, 7);
    particle_field(other, NMODEL, 99);
    constellation_params p;
    constellation_params_default(&p);
    for (int trial = 0; trial < 4; trial++) {
        remount r = {trial * 77.0, 1, 0, 0, trial % 2};
        int n = view_of((const double (*)[2])other, &r, (uniform() - 0.5) * 300, (uniform() - 0.5) * 300, scene, truth);
        constellation_result res;
        char err[128];
        assert_int_equal(constellation_match((const double (*)[2])model, NMODEL, (const double (*)[2])scene, n, &p,
                                             &res, NULL, err, sizeof err), 0);
        print_message("foreign view of %d points: best placement explains %d, runner-up %d\n", n, res.matches,
                      res.runner_up);
        assert_true(res.matches <= 7);
        assert_true(res.matches < n / 3);
    }
}

static void bad_parameters_and_too_few_points_are_refused(void **state)
{
    (void)state;
    double pts[3][2] = {{0, 0}, {20, 0}, {0, 30}};
    constellation_params p;
    constellation_params_default(&p);
    constellation_result res;
    char err[128];
    p.tolerance = NAN;
    assert_int_equal(constellation_match((const double (*)[2])pts, 3, (const double (*)[2])pts, 3, &p, &res, NULL, err,
                                         sizeof err), -1);
    constellation_params_default(&p);
    p.scale_max = 0.5;
    assert_int_equal(constellation_match((const double (*)[2])pts, 3, (const double (*)[2])pts, 3, &p, &res, NULL, err,
                                         sizeof err), -1);
    constellation_params_default(&p);
    assert_int_equal(constellation_match((const double (*)[2])pts, 2, (const double (*)[2])pts, 3, &p, &res, NULL, err,
                                         sizeof err), -1);
    assert_int_equal(constellation_match((const double (*)[2])pts, 3, (const double (*)[2])pts, 3, &p, &res, NULL, err,
                                         sizeof err), 0);
    assert_true(res.matches <= 3);        /* three points prove nothing; whatever comes, nothing breaks */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(remounts_are_found_over_the_whole_circle),
        cmocka_unit_test(another_sample_is_not_placed_convincingly),
        cmocka_unit_test(bad_parameters_and_too_few_points_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
