/* test_tomo.c -- unit tests of src/kernels/tomo: the back-projector is the projector's transpose, batches of slices
 * (within the scratch budget) project and reconstruct each slice as it is alone, stopping rule included, response
 * ratios and weight fractions are exact on exact data, the edge-spread-function threshold sits halfway up a blurred
 * edge, the metrics behave as their definitions say, and the stopping rules stop when they say and report the
 * residual of what they return. */
#include "unit.h"
#include <math.h>
#include <string.h>

#include "kernels/tomo/tomo.h"

static double uniform(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return ((*state >> 8) & 0xffffff) / (double)0x1000000;
}

static void backprojector_is_the_transpose(void **state)
{
    (void)state;
    double angles[] = {-75, -45, -30, 0, 12.5, 45, 60, 90, 135, 179};
    struct { int n, n_det; double spacing, offset; } cases[] = {{33, 33, 0, 0}, {40, 57, 0.7, 3.2}, {25, 20, 1.5, -1}};
    unsigned seed = 1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tomo_geometry g = {.n = cases[c].n, .n_det = cases[c].n_det, .n_angles = 10, .angles_deg = angles,
                           .det_spacing = cases[c].spacing, .centre_offset = cases[c].offset};
        assert_int_equal(tomo_geometry_check(&g, NULL, 0), 0);
        size_t np = (size_t)g.n * g.n, ns = (size_t)g.n_angles * g.n_det;
        float *x = malloc(np * sizeof(float)), *wx = malloc(ns * sizeof(float));
        float *y = malloc(ns * sizeof(float)), *wty = malloc(np * sizeof(float));
        for (size_t i = 0; i < np; i++) x[i] = (float)uniform(&seed);
        for (size_t i = 0; i < ns; i++) y[i] = (float)uniform(&seed);
        tomo_project(&g, x, wx);
        tomo_backproject(&g, y, wty);
        double a = 0, b = 0;
        for (size_t i = 0; i < ns; i++) a += (double)wx[i] * y[i];
        for (size_t i = 0; i < np; i++) b += (double)x[i] * wty[i];
        assert_true(fabs(a - b) <= 1e-5 * fabs(a));
        free(x);
        free(wx);
        free(y);
        free(wty);
    }
}

/* A batch of slices (interleaved, tomo.h) projects and back-projects each slice as the one-slice projector does,
 * for the specialised batch sizes and another one, padding slices included. */
static void batches_equal_single_slices(void **state)
{
    (void)state;
    double angles[] = {-60, 0, 30, 45, 90, 120, 170};
    tomo_geometry g = {.n = 29, .n_det = 35, .n_angles = 7, .angles_deg = angles, .det_spacing = 0.9,
                       .centre_offset = 1.3};
    const size_t np = (size_t)g.n * g.n, ns = (size_t)g.n_angles * g.n_det;
    int batches[] = {1, 4, 8, 5};
    unsigned seed = 3;
    for (size_t c = 0; c < sizeof batches / sizeof batches[0]; c++) {
        int B = batches[c], used = B > 1 ? B - 1 : 1;
        float *x = malloc(np * B * sizeof(float)), *y = malloc(ns * B * sizeof(float));
        float *xb = malloc(np * B * sizeof(float)), *yb = malloc(ns * B * sizeof(float));
        float *wx = malloc(ns * B * sizeof(float)), *wty = malloc(np * B * sizeof(float));
        float *one_s = malloc(ns * sizeof(float)), *one_p = malloc(np * sizeof(float));
        for (size_t i = 0; i < np * B; i++) x[i] = (float)uniform(&seed);
        for (size_t i = 0; i < ns * B; i++) y[i] = (float)uniform(&seed);
        tomo_interleave(x, np, used, B, xb);
        tomo_interleave(y, ns, used, B, yb);
        tomo_project_batch(&g, B, xb, wx);
        tomo_backproject_batch(&g, B, yb, wty);
        for (int z = 0; z < B; z++) {
            if (z < used) {
                tomo_project(&g, x + z * np, one_s);
                tomo_backproject(&g, y + z * ns, one_p);
            } else {
                memset(one_s, 0, ns * sizeof(float));
                memset(one_p, 0, np * sizeof(float));
            }
            for (size_t i = 0; i < ns; i++) assert_true(fabsf(wx[i * B + z] - one_s[i]) <= 1e-5f * (1 + one_s[i]));
            for (size_t i = 0; i < np; i++) assert_true(fabsf(wty[i * B + z] - one_p[i]) <= 1e-5f * (1 + one_p[i]));
        }
        tomo_deinterleave(xb, np, used, B, wty);
        for (size_t i = 0; i < np * used; i++) assert_true(wty[i] == x[i]);
        free(x), free(y), free(xb), free(yb), free(wx), free(wty), free(one_s), free(one_p);
    }
}

/* The batch shrinks so that all workers' scratch stays within TOMO_SCRATCH_BUDGET: at n = 1024 (~17 MB a slice
 * for two elements) 16-slice batches would take 0.27 GB a worker; small slices still get the largest batch, and a
 * slice larger than the budget is reconstructed alone. */
static void batches_stay_within_the_scratch_budget(void **state)
{
    (void)state;
    double angles[180];
    for (int a = 0; a < 180; a++) angles[a] = a;
    tomo_geometry big = {.n = 1024, .n_det = 1024, .n_angles = 180, .angles_deg = angles};
    tomo_geometry small = {.n = 64, .n_det = 64, .n_angles = 180, .angles_deg = angles};
    size_t slice = tomo_reconstruct_slice_bytes(&big, 2);
    assert_true(slice > ((size_t)16 << 20));
    assert_int_equal(tomo_batch_size(1024, 1, tomo_reconstruct_slice_bytes(&small, 2)), TOMO_BATCH_MAX);
    int workers[] = {1, 2, 4, 8, 64};
    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        int B = tomo_batch_size(1024, workers[w], slice);
        assert_true(B >= 1 && B < TOMO_BATCH_MAX);
        assert_true((size_t)B * workers[w] * slice <= TOMO_SCRATCH_BUDGET || B == 1);
    }
    assert_int_equal(tomo_batch_size(1024, 1, slice), 8);                  /* 8 x 17 MB fit, 16 do not */
    assert_int_equal(tomo_batch_size(1024, 2, slice), 4);                  /* nor 2 workers x 8 */
    assert_int_equal(tomo_batch_size(1024, 1, TOMO_SCRATCH_BUDGET + 1), 1);
}

/* Records the pass on which each slice stopped. */
static void record_stop(void *user, int slice, int n_slices, int iteration, int iterations, double residual, int done)
{
    (void)n_slices, (void)iterations, (void)residual;
    if (done) ((int *)user)[slice] = iteration;
}

/* n_slices slices reconstructed together (one worker, so one batch of `batch` slices) give each slice the values
 * and the stopping pass it gets reconstructed alone; stop[] receives the passes. */
static void assert_batch_equals_slices_alone(const tomo_geometry *g, int n_slices, int batch, const float *sinos,
                                             tomo_params *p, int *stop)
{
    const size_t np = (size_t)g->n * g->n, ns = (size_t)g->n_angles * g->n_det;
    assert_int_equal(tomo_batch_size(n_slices, 1, tomo_reconstruct_slice_bytes(g, 1)), batch);
    float *all = malloc(np * n_slices * sizeof(float)), *one = malloc(np * sizeof(float));
    char err[128];
    p->threads = 1;
    p->progress = record_stop;
    p->progress_user = stop;
    assert_int_equal(tomo_reconstruct(g, n_slices, 1, &sinos, NULL, NULL, p, &all, err, sizeof err), 0);
    for (int z = 0; z < n_slices; z++) {
        const float *sino = sinos + z * ns;
        int alone = 0;
        p->progress_user = &alone;
        assert_int_equal(tomo_reconstruct(g, 1, 1, &sino, NULL, NULL, p, &one, err, sizeof err), 0);
        assert_int_equal(alone, stop[z]);
        for (size_t i = 0; i < np; i++) assert_true(fabsf(all[z * np + i] - one[i]) <= 1e-5f * (1 + fabsf(one[i])));
    }
    free(all);
    free(one);
}

/* Slices of n x n: z % 3 == 0 a disc (consistent data: the residual keeps falling), 1 the same disc with noise
 * added to its sinogram (the residual levels off at the noise: an early stop), 2 nothing (stops on its first
 * pass, residual 0); scaled by slice so that no two are alike. */
static float *mixed_sinograms(const tomo_geometry *g, int n_slices, unsigned seed)
{
    const size_t np = (size_t)g->n * g->n, ns = (size_t)g->n_angles * g->n_det;
    float *slice = malloc(np * sizeof(float)), *sinos = malloc(ns * n_slices * sizeof(float));
    for (int z = 0; z < n_slices; z++) {
        double r = g->n * (0.2 + 0.015 * z);
        for (int i = 0; i < g->n; i++)
            for (int j = 0; j < g->n; j++)
                slice[i * g->n + j] = hypot(i - g->n / 2, j - g->n / 3) < r ? 1.0f + 0.1f * z : 0.0f;
        tomo_project(g, slice, sinos + z * ns);
        for (size_t i = 0; i < ns; i++) {
            if (z % 3 == 1) sinos[z * ns + i] += (float)(3 * (uniform(&seed) - 0.5));
            if (z % 3 == 2) sinos[z * ns + i] = 0;
        }
    }
    free(slice);
    return sinos;
}

/* The stopping rule holds slice by slice within a batch: a slice that stops early is frozen while the others go
 * on, and every slice ends as it would alone. */
static void slices_of_a_batch_stop_on_their_own_passes(void **state)
{
    (void)state;
    double angles[24];
    for (int a = 0; a < 24; a++) angles[a] = a * 7.5;
    tomo_geometry g = {.n = 32, .n_det = 40, .n_angles = 24, .angles_deg = angles};
    float *sinos = mixed_sinograms(&g, 3, 5);
    tomo_params p;
    tomo_params_default(&p);
    p.iterations = 300;
    p.tolerance = 0.01;
    int stop[3];
    assert_batch_equals_slices_alone(&g, 3, 4, sinos, &p, stop);
    assert_true(stop[2] == 1 && stop[1] > 1 && stop[1] < stop[0] && stop[0] < p.iterations);
    free(sinos);
}

/* A full batch of TOMO_BATCH_MAX slices (OS-SART, slices stopping on different passes) equals one at a time. */
static void full_batch_equals_one_slice_at_a_time(void **state)
{
    (void)state;
    double angles[30];
    for (int a = 0; a < 30; a++) angles[a] = -60 + a * 4.1;
    tomo_geometry g = {.n = 24, .n_det = 31, .n_angles = 30, .angles_deg = angles, .centre_offset = 0.4};
    float *sinos = mixed_sinograms(&g, TOMO_BATCH_MAX, 9);
    tomo_params p;
    tomo_params_default(&p);
    p.iterations = 60;
    p.subsets = 3;
    p.tolerance = 0.002;
    int stop[TOMO_BATCH_MAX];
    assert_batch_equals_slices_alone(&g, TOMO_BATCH_MAX, TOMO_BATCH_MAX, sinos, &p, stop);
    assert_true(stop[2] == 1 && stop[1] != stop[0]);
    free(sinos);
}

/* Rays that pass far beside the slice (a huge detector offset or spacing: finite, so the geometry check lets them
 * through; an infinite one it refuses) meet nothing: zero projections, nothing back-projected, and no overflow on
 * the way (UBSan). */
static void rays_far_beside_the_slice_meet_nothing(void **state)
{
    (void)state;
    double angles[] = {0, 30, 45, 90, 150};
    struct { double spacing, offset; } cases[] = {{1, 1e12}, {1, -1e300}, {1e300, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tomo_geometry g = {.n = 16, .n_det = 3, .n_angles = 5, .angles_deg = angles,
                           .det_spacing = cases[c].spacing, .centre_offset = cases[c].offset};
        assert_int_equal(tomo_geometry_check(&g, NULL, 0), 0);
        float slice[16 * 16], sino[5 * 3], back[16 * 16];
        for (int i = 0; i < 16 * 16; i++) slice[i] = 1;
        for (int i = 0; i < 5 * 3; i++) sino[i] = 1;
        tomo_project(&g, slice, sino);
        for (int a = 0; a < 5; a++)
            for (int k = 0; k < 3; k++)
                if (k != 1 || g.centre_offset != 0) assert_true(sino[a * 3 + k] == 0);   /* the middle bin of a
                                                                                           * centred detector is t = 0 */
        for (int i = 0; i < 5 * 3; i++) sino[i] = (i % 3 == 1 && g.centre_offset == 0) ? 0 : 1;
        tomo_backproject(&g, sino, back);
        for (int i = 0; i < 16 * 16; i++) assert_true(back[i] == 0);
    }
    tomo_geometry infinite = {.n = 16, .n_det = 3, .n_angles = 5, .angles_deg = angles, .det_spacing = INFINITY};
    assert_int_equal(tomo_geometry_check(&infinite, NULL, 0), -1);
}

static void projection_of_a_constant_is_the_chord_length(void **state)
{
    (void)state;
    /* A uniform disc of radius 20 projects to 2 sqrt(R^2 - s^2) at every angle. */
    enum { N = 61 };
    double angles[] = {0, 30, 45, 70, 90};
    tomo_geometry g = {.n = N, .n_det = N, .n_angles = 5, .angles_deg = angles};
    float *disc = calloc(N * N, sizeof(float)), *sino = malloc(5 * N * sizeof(float));
    /* Supersampled disc, so that the pixel values carry the exact area fraction. */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            int in = 0;
            for (int a = 0; a < 8; a++)
                for (int b = 0; b < 8; b++) {
                    double x = j - 30 + (a + 0.5) / 8 - 0.5, y = 30 - i + (b + 0.5) / 8 - 0.5;
                    in += x * x + y * y <= 400;
                }
            disc[i * N + j] = in / 64.0f;
        }
    tomo_project(&g, disc, sino);
    for (int a = 0; a < 5; a++)
        for (int k = 5; k < N - 5; k += 5) {
            double s = k - 30, chord = fabs(s) < 20 ? 2 * sqrt(400 - s * s) : 0;
            if (fabs(fabs(s) - 20) < 2) continue;   /* the rim itself is blurred by the pixels */
            assert_true(fabs(sino[a * N + k] - chord) < 0.35);
        }
    free(disc);
    free(sino);
}

static void response_ratios_exact_and_non_negative(void **state)
{
    (void)state;
    enum { M = 500 };
    float e1[M], e2[M], e3[M], h[M];
    unsigned seed = 7;
    for (int i = 0; i < M; i++) {
        e1[i] = (float)uniform(&seed);
        e2[i] = (float)uniform(&seed);
        e3[i] = (float)uniform(&seed);
        h[i] = 3.0f * e1[i] + 0.5f * e2[i];
    }
    const float *eds[3] = {e1, e2, e3};
    double r[3], r2;
    char err[128];
    assert_int_equal(tomo_fit_response(M, 2, h, eds, r, &r2, err, sizeof err), 0);
    assert_true(fabs(r[0] - 3.0) < 1e-5 && fabs(r[1] - 0.5) < 1e-5 && fabs(r2 - 1) < 1e-9);
    /* A third signal anti-correlated with HAADF would get a negative factor: it is dropped instead. */
    for (int i = 0; i < M; i++) h[i] = 3.0f * e1[i] - 0.8f * e3[i];
    assert_int_equal(tomo_fit_response(M, 3, h, eds, r, &r2, err, sizeof err), 0);
    assert_true(r[0] >= 0 && r[1] >= 0 && r[2] == 0.0);
    memset(e1, 0, sizeof e1);
    memset(e2, 0, sizeof e2);
    assert_int_equal(tomo_fit_response(M, 2, h, eds, r, &r2, err, sizeof err), -1);
}

static void weight_fractions_follow_eq12(void **state)
{
    (void)state;
    float a[4] = {2, 0, 1, 0}, b[4] = {3, 0, 0, 0.1f}, fa[4], fb[4];
    const float *maps[2] = {a, b};
    float *fr[2] = {fa, fb};
    double f[2] = {1.0, 1.5};
    unsigned char mask[4];
    assert_int_equal(tomo_quantify(4, 2, maps, f, 0.5, fr, mask), 2);
    assert_true(fabs(fa[0] - 0.5) < 1e-6 && fabs(fb[0] - 0.5) < 1e-6);    /* 2/1 : 3/1.5 */
    assert_true(fabs(fa[2] - 1.0) < 1e-6 && fb[2] == 0.0f);
    assert_true(mask[1] == 0 && isnan(fa[1]) && mask[3] == 0 && isnan(fb[3]));
}

static void esf_threshold_sits_halfway_up_the_edge(void **state)
{
    (void)state;
    /* Two slices: a disc of level 10 on background 2, blurred (erf edge of width 2 px), and an empty slice. */
    enum { N = 64 };
    float *s = calloc(2 * N * N, sizeof(float));
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double r = hypot(i - 31.5, j - 31.5);
            s[i * N + j] = (float)(2 + 8 * 0.5 * erfc((r - 20) / (2 * sqrt(2.0))));
        }
    double t = tomo_esf_threshold(s, 2, N);
    assert_true(fabs(t - 6.0) < 0.3);
    assert_true(isnan(tomo_esf_threshold(s + N * N, 1, N)));
    free(s);
}

static void metrics_follow_their_definitions(void **state)
{
    (void)state;
    enum { M = 200 };
    float x[M], r[M], y[M];
    unsigned seed = 3;
    for (int i = 0; i < M; i++) {
        r[i] = (float)uniform(&seed);
        x[i] = 2.5f * r[i];                 /* same structure, other scale */
        y[i] = (float)uniform(&seed);       /* unrelated */
    }
    tomo_metrics m;
    tomo_compare(M, x, r, NULL, &m);
    assert_true(fabs(m.structure - 1) < 1e-6);
    assert_true(fabs(m.scale - 0.4) < 1e-6 && m.mse_scaled < 1e-10);
    assert_true(m.luminance < 1 && m.contrast < 1);
    tomo_compare(M, y, r, NULL, &m);
    assert_true(fabs(m.structure) < 0.3);
    tomo_compare(M, r, r, NULL, &m);
    assert_true(fabs(m.ssim - 1) < 1e-9);
}

/* The stopping rules on one 40 x 40 slice of a two-disc object with 30 angles, OS-SART with one angle per subset. */
enum { SN = 40, SA = 30, SMAX = 64 };
typedef struct pass_log {
    int calls, last, stop;
    double residual[SMAX + 1];
} pass_log;

static void log_pass(void *user, int slice, int n_slices, int iteration, int iterations, double residual, int stop)
{
    pass_log *l = user;
    assert_int_equal(slice, 0);
    assert_int_equal(n_slices, 1);
    assert_true(iteration == l->last + 1 && iteration <= iterations && iteration <= SMAX);
    l->calls++;
    l->last = iteration;
    l->stop = stop;
    l->residual[iteration] = residual;
}

/* Reconstructs sino with p (its progress set here); returns |b - W x| / |b| of the result, worked out here. */
static double run_logged(const tomo_geometry *g, const float *sino, tomo_params *p, pass_log *l, float *x)
{
    char err[128];
    const float *eds[1] = {sino};
    float *outs[1] = {x}, *wx = malloc(SA * SN * sizeof(float));
    memset(l, 0, sizeof *l);
    p->subsets = SA;
    p->threads = 1;
    p->progress = log_pass;
    p->progress_user = l;
    assert_int_equal(tomo_reconstruct(g, 1, 1, eds, NULL, NULL, p, outs, err, sizeof err), 0);
    tomo_project(g, x, wx);
    double r = 0, b = 0;
    for (int i = 0; i < SA * SN; i++) {
        r += ((double)sino[i] - wx[i]) * ((double)sino[i] - wx[i]);
        b += (double)sino[i] * sino[i];
    }
    free(wx);
    return sqrt(r / b);
}

static void stopping_rules_stop_when_they_say(void **state)
{
    (void)state;
    double angles[SA];
    for (int a = 0; a < SA; a++) angles[a] = a * 6.0;
    tomo_geometry g = {.n = SN, .n_det = SN, .n_angles = SA, .angles_deg = angles};
    float *obj = calloc(SN * SN, sizeof(float)), *sino = malloc(SA * SN * sizeof(float));
    float *noisy = malloc(SA * SN * sizeof(float)), *x = malloc(SN * SN * sizeof(float));
    for (int i = 0; i < SN; i++)
        for (int j = 0; j < SN; j++) {
            double u = j - 20, v = 20 - i;
            obj[i * SN + j] = (float)((u * u + v * v < 15 * 15) + 2.0 * ((u - 4) * (u - 4) + v * v < 5 * 5));
        }
    tomo_project(&g, obj, sino);   /* consistent data: the residual can go to 0 */
    tomo_params p;
    pass_log l;

    /* drop rule on consistent data: stops before the limit, after the first pass whose exact residual fell by less
     * than the tolerance, and the residual it reports is that of the slice it returns */
    tomo_params_default(&p);
    p.iterations = SMAX;
    p.tolerance = 0.2;
    double r = run_logged(&g, sino, &p, &l, x);
    assert_int_equal(l.stop, TOMO_STOP_FALLING);
    assert_true(l.last >= 3 && l.last < SMAX && l.calls == l.last);
    assert_true(fabs(l.residual[l.last] - r) <= 1e-4 * r + 1e-7);
    for (int it = 2; it <= l.last; it++) {
        double drop = l.residual[it - 1] - l.residual[it];
        assert_true(drop > 0);
        if (it < l.last) assert_true(drop >= p.tolerance * l.residual[it - 1]);
        else assert_true(drop < p.tolerance * l.residual[it - 1]);
    }

    /* the pass limit before the rule holds: the last call says not converged */
    p.iterations = 2;
    p.tolerance = 0.01;
    run_logged(&g, sino, &p, &l, x);
    assert_int_equal(l.stop, TOMO_STOP_LIMIT);
    assert_true(l.last == 2 && l.calls == 2);

    /* no rule: the residual is measured after the last pass only (residual_every 0) */
    p.iterations = 4;
    p.tolerance = 0;
    r = run_logged(&g, sino, &p, &l, x);
    assert_int_equal(l.stop, TOMO_STOP_PASSES);
    assert_true(l.last == 4 && isnan(l.residual[1]) && isnan(l.residual[3]));
    assert_true(fabs(l.residual[4] - r) <= 1e-4 * r + 1e-7);

    /* discrepancy rule: data of C counts per unit with Gaussian noise of Poisson variance b / C; stops after the
     * first pass at or below the noise level sqrt(sum b / C) / |b| */
    const double C = 50;
    unsigned seed = 7;
    double sum_b = 0, norm_b = 0;
    for (int i = 0; i < SA * SN; i++) {
        double u1 = uniform(&seed) + 1e-12, u2 = uniform(&seed);
        double v = sino[i] + sqrt(sino[i] / C) * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
        noisy[i] = (float)v;
        sum_b += v > 0 ? v : 0;
        norm_b += v * v;
    }
    double noise = sqrt(sum_b / C / norm_b);
    p.iterations = SMAX;
    p.counts_per_unit = C;
    r = run_logged(&g, noisy, &p, &l, x);
    assert_int_equal(l.stop, TOMO_STOP_NOISE);
    assert_true(l.last < SMAX && l.residual[l.last] <= noise && fabs(l.residual[l.last] - r) <= 1e-4 * r);
    for (int it = 1; it < l.last; it++) assert_true(l.residual[it] > noise);
    free(obj);
    free(sino);
    free(noisy);
    free(x);
}

static void bad_reconstruction_requests_are_rejected(void **state)
{
    (void)state;
    double angles[] = {0, 90};
    float sino[2 * 8] = {0}, out[8 * 8];
    const float *eds[1] = {sino};
    float *outs[1] = {out};
    double r[1] = {-1};
    char err[128];
    tomo_geometry g = {.n = 8, .n_det = 8, .n_angles = 2, .angles_deg = angles};
    tomo_params p;
    tomo_params_default(&p);
    p.alpha = 0.5;
    assert_int_equal(tomo_reconstruct(&g, 1, 1, eds, sino, r, &p, outs, err, sizeof err), -1);
    assert_non_null(strstr(err, ">= 0"));
    p.alpha = 1.5;
    assert_int_equal(tomo_reconstruct(&g, 1, 1, eds, NULL, NULL, &p, outs, err, sizeof err), -1);
    p.alpha = 0;
    p.iterations = 0;
    assert_int_equal(tomo_reconstruct(&g, 1, 1, eds, NULL, NULL, &p, outs, err, sizeof err), -1);
    p.iterations = 5;
    p.counts_per_unit = -1;
    assert_int_equal(tomo_reconstruct(&g, 1, 1, eds, NULL, NULL, &p, outs, err, sizeof err), -1);
    assert_non_null(strstr(err, "counts per unit"));
    p.counts_per_unit = 0;
    angles[1] = NAN;
    p.iterations = 5;
    assert_int_equal(tomo_reconstruct(&g, 1, 1, eds, NULL, NULL, &p, outs, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backprojector_is_the_transpose),
        cmocka_unit_test(batches_equal_single_slices),
        cmocka_unit_test(batches_stay_within_the_scratch_budget),
        cmocka_unit_test(slices_of_a_batch_stop_on_their_own_passes),
        cmocka_unit_test(full_batch_equals_one_slice_at_a_time),
        cmocka_unit_test(rays_far_beside_the_slice_meet_nothing),
        cmocka_unit_test(projection_of_a_constant_is_the_chord_length),
        cmocka_unit_test(response_ratios_exact_and_non_negative),
        cmocka_unit_test(weight_fractions_follow_eq12),
        cmocka_unit_test(esf_threshold_sits_halfway_up_the_edge),
        cmocka_unit_test(metrics_follow_their_definitions),
        cmocka_unit_test(stopping_rules_stop_when_they_say),
        cmocka_unit_test(bad_reconstruction_requests_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
