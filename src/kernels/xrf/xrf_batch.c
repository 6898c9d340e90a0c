/* xrf_batch.c -- batch correction of a whole map: the triangular sweep from the detector edge inward (one sweep is
 * the converged answer), or the paper's Scheme 1 (Jacobi iteration over all pixels until sum Y_emit changes by less
 * than the tolerance), for either face model. Also the plain per-element map container.
 *
 * The state a row leaves for the rows before it: planar faces, the line-indexed exit state the sweep turns from row
 * to row in place (Scheme 1 keeps every row's as a stored exit row); face escape, its row of the depth map (the
 * solver reads the whole map). */
#include "kernels/xrf/xrf_internal.h"
#include "kernels/xrf/xrf.h"

#include "core/base/base.h"
#include "core/parallel/parallel.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int xrf_maps_alloc(xrf_maps *m, int width, int height, int n_elements)
{
    memset(m, 0, sizeof *m);
    if (width < 1 || height < 1 || n_elements < 1 || n_elements > XRF_MAX_ELEMENTS ||
        (size_t)width * height > ((size_t)1 << 32))
        return -1;
    m->width = width;
    m->height = height;
    m->n_elements = n_elements;
    for (int c = 0; c < n_elements; c++) m->map[c] = xmalloc_large((size_t)width * height * sizeof(double));
    return 0;
}

void xrf_maps_free(xrf_maps *m)
{
    for (int c = 0; c < m->n_elements; c++) free(m->map[c]);
    memset(m, 0, sizeof *m);
}

/* Row y of each map, as the row solver takes it. */
static void row_pointers(double *const *maps, int n, int width, int y, double **rows)
{
    for (int c = 0; c < n; c++) rows[c] = maps[c] + (size_t)y * width;
}

static void const_row_pointers(const double *const *maps, int n, int width, int y, const double **rows)
{
    for (int c = 0; c < n; c++) rows[c] = maps[c] + (size_t)y * width;
}

/* Sum over pixels and elements of Y_emit = corrected / (I0 * sensitivity). */
static double total_emission(const xrf_config *cfg, size_t pixels, const double *const *maps, const double *i0)
{
    double sum = 0;
    for (int c = 0; c < cfg->n_elements; c++)
        for (size_t p = 0; p < pixels; p++) sum += maps[c][p] / (i0[p] * cfg->element[c].sensitivity);
    return sum;
}

/* Solves row y reading the rows toward the detector from `read` (the state of every row: the depth map with face
 * escape, stored exit rows with planar faces). Face escape writes row y's depths into `work` (a depth map, which may
 * be `read`); planar faces load row y+1's exit row into `work` (the line-indexed state, xrf_exit_state_size doubles)
 * and solve in it. */
static void solve_row(const xrf_config *cfg, int width, int height, int y, const double *const *counts,
                      const double *i0, xrf_maps *corrected, xrf_maps *fractions, const double *read, double *work)
{
    const double *counts_row[XRF_MAX_ELEMENTS];
    double *corrected_row[XRF_MAX_ELEMENTS], *fractions_row[XRF_MAX_ELEMENTS];
    const_row_pointers(counts, cfg->n_elements, width, y, counts_row);
    row_pointers(corrected->map, cfg->n_elements, width, y, corrected_row);
    row_pointers(fractions->map, cfg->n_elements, width, y, fractions_row);
    if (cfg->num.faces == XRF_FACES_ESCAPE) {
        xrf_solve_span_escape(cfg, width, height, y, 0, width, counts_row, i0 + (size_t)y * width, read, work,
                              corrected_row, fractions_row);
        return;
    }
    double *scratch = xmalloc(xrf_span_scratch_size(cfg, width) * sizeof *scratch);
    int at_edge = y == height - 1;
    if (!at_edge) xrf_exit_state_load(cfg, width, height, y, 0, width, read + xrf_exit_row_size(cfg, width) * (y + 1), work);
    xrf_solve_span(cfg, width, height, y, 0, width, counts_row, i0 + (size_t)y * width, work, at_edge, corrected_row,
                   fractions_row, scratch);
    free(scratch);
}

static size_t all_rows_state_size(const xrf_config *cfg, int width, int height)
{
    return cfg->num.faces == XRF_FACES_ESCAPE ? xrf_depth_map_size(cfg, width, height)
                                              : xrf_exit_row_size(cfg, width) * height;
}

/* The planar sweep on both cores. Rows are solved one after the other (each needs the state of the row toward the
 * detector), each row in two spans at once: the calling thread takes [0, split), a helper thread [split, width).
 * A row's pixels do not depend on each other and each span runs the same row solver, so the result is the one
 * thread's, bit for bit. Ownership: the state of the row last finished is turned into the next row's in place,
 * each thread its own columns; a line crossing the split reads the other thread's entry, so the barrier after every
 * row keeps either thread from starting a row before the other has finished the last. */
typedef struct planar_sweep {
    const xrf_config *cfg;
    int width, height, split;
    const double *const *counts;
    const double *i0;
    xrf_maps *corrected, *fractions;
    double *state;
    parallel_barrier row_done;
} planar_sweep;

static void sweep_span(planar_sweep *job, int x0, int x1)
{
    const xrf_config *cfg = job->cfg;
    double *scratch = xmalloc(xrf_span_scratch_size(cfg, job->width) * sizeof *scratch);
    for (int y = job->height - 1; y >= 0; y--) {
        const double *counts_row[XRF_MAX_ELEMENTS];
        double *corrected_row[XRF_MAX_ELEMENTS], *fractions_row[XRF_MAX_ELEMENTS];
        const_row_pointers(job->counts, cfg->n_elements, job->width, y, counts_row);
        row_pointers(job->corrected->map, cfg->n_elements, job->width, y, corrected_row);
        row_pointers(job->fractions->map, cfg->n_elements, job->width, y, fractions_row);
        xrf_solve_span(cfg, job->width, job->height, y, x0, x1, counts_row, job->i0 + (size_t)y * job->width,
                       job->state, y == job->height - 1, corrected_row, fractions_row, scratch);
        if (job->split < job->width) parallel_barrier_wait(&job->row_done);
    }
    free(scratch);
}

static void *sweep_right_span(void *arg)
{
    planar_sweep *job = arg;
    sweep_span(job, job->split, job->width);
    return NULL;
}

/* Maps narrower than XRF_TWO_THREAD_MIN_WIDTH are swept by one thread: a barrier per row would cost more than it
 * saves. */
static int gauss_seidel(const xrf_config *cfg, int width, int height, const double *const *counts, const double *i0,
                        int threads, xrf_maps *corrected, xrf_maps *fractions)
{
    if (cfg->num.faces == XRF_FACES_ESCAPE) {
        /* Not initialised: a row reads only the rows toward the detector, solved before it. */
        double *map = xmalloc_large(xrf_depth_map_size(cfg, width, height) * sizeof *map);
        for (int y = height - 1; y >= 0; y--)
            solve_row(cfg, width, height, y, counts, i0, corrected, fractions, map, map);
        free(map);
        return 1;
    }
    /* Planar faces: only the previous row's state is needed. */
    planar_sweep job = {.cfg = cfg, .width = width, .height = height, .split = width, .counts = counts, .i0 = i0,
                        .corrected = corrected, .fractions = fractions};
    job.state = xmalloc(xrf_exit_state_size(cfg, width, height) * sizeof(double));
    pthread_t helper;
    if (threads > 1 && width >= XRF_TWO_THREAD_MIN_WIDTH && sysconf(_SC_NPROCESSORS_ONLN) > 1) {
        job.split = width / 2;
        parallel_barrier_init(&job.row_done, 2);
        if (pthread_create(&helper, NULL, sweep_right_span, &job) != 0) job.split = width;
    }
    sweep_span(&job, 0, job.split);
    if (job.split < width) {
        pthread_join(helper, NULL);
    }
    free(job.state);
    return 1;
}

/* The state of every row (exit rows, or the depth map with face escape) from the current weight fractions, built
 * from the detector edge inward in `work`: each pixel's absorption then comes from the whole current estimate. */
static void states_from_fractions(const xrf_config *cfg, int width, int height, xrf_maps *fractions, double *states,
                                  double *work)
{
    size_t row = xrf_exit_row_size(cfg, width);
    for (int y = height - 1; y >= 0; y--) {
        double *fractions_row[XRF_MAX_ELEMENTS];
        row_pointers(fractions->map, cfg->n_elements, width, y, fractions_row);
        if (cfg->num.faces == XRF_FACES_ESCAPE) {
            xrf_depth_row(cfg, width, height, y, (const double *const *)fractions_row, states);
            continue;
        }
        xrf_exit_state_row(cfg, width, height, y, (const double *const *)fractions_row, work, y == height - 1);
        xrf_exit_state_save(cfg, width, height, y, 0, width, work, states + row * y);
    }
}

/* Scheme 1 of the paper: start from the raw fractions; each iteration computes every pixel's absorption from the
 * whole current estimate and updates every pixel from it, until sum Y_emit changes by less than the tolerance.
 * Returns the iterations used, or -1 with a message when it has not converged within max_iterations. */
static int jacobi(const xrf_config *cfg, int width, int height, const double *const *counts, const double *i0,
                  xrf_maps *corrected, xrf_maps *fractions, char *err, size_t errlen)
{
    size_t size = all_rows_state_size(cfg, width, height), pixels = (size_t)width * height;
    size_t work_size = cfg->num.faces == XRF_FACES_ESCAPE ? size : xrf_exit_state_size(cfg, width, height);
    double *states = xmalloc_large(size * sizeof *states), *work = xmalloc_large(work_size * sizeof *work);
    for (size_t p = 0; p < pixels; p++) {
        double sum = 0;
        for (int c = 0; c < cfg->n_elements; c++) sum += counts[c][p] / cfg->element[c].sensitivity;
        for (int c = 0; c < cfg->n_elements; c++)
            fractions->map[c][p] = sum > 0 ? (1 - cfg->matrix_total) * counts[c][p] / cfg->element[c].sensitivity / sum
                                           : 0;
    }
    double emission = total_emission(cfg, pixels, counts, i0), change = HUGE_VAL;
    int iterations = 0;
    while (iterations < cfg->num.max_iterations && !(change < cfg->num.tolerance)) {
        iterations++;
        states_from_fractions(cfg, width, height, fractions, states, work);
        for (int y = 0; y < height; y++) solve_row(cfg, width, height, y, counts, i0, corrected, fractions, states, work);
        double updated = total_emission(cfg, pixels, (const double *const *)corrected->map, i0);
        change = fabs(updated - emission) / emission;
        emission = updated;
        log_info("xrf", "Scheme 1 iteration %d: sum of Y_emit changed by %.3g (tolerance %g)", iterations, change,
                 cfg->num.tolerance);
    }
    free(states);
    free(work);
    if (change < cfg->num.tolerance) return iterations;
    snprintf(err, errlen, "Jacobi iteration (Scheme 1) did not converge: sum of Y_emit still changed by %.3g after %d "
             "iterations (tolerance %g); raise max_iterations or use \"sweep\": \"gauss_seidel\"", change, iterations,
             cfg->num.tolerance);
    return -1;
}

/* Values that are not finite and above `low` (NaN and infinities included): one pass over a contiguous array
 * without branches, so that validating the input costs little beside the correction. */
RELOC_AVX512_AVX2_CLONES
static size_t count_outside(const double *v, size_t n, double low)
{
    size_t outside = 0;
    for (size_t i = 0; i < n; i++) outside += !(v[i] > low) | !(v[i] <= DBL_MAX);
    return outside;
}

int xrf_correct_batch(const xrf_config *cfg, int width, int height, const double *const *counts, const double *i0,
                      int threads, xrf_maps *corrected, xrf_maps *fractions, char *err, size_t errlen)
{
    size_t pixels = (size_t)width * height;
    int suspect = count_outside(i0, pixels, 0) > 0;
    for (int c = 0; c < cfg->n_elements; c++) suspect |= count_outside(counts[c], pixels, -DBL_TRUE_MIN) > 0;
    for (size_t p = 0; suspect && p < pixels; p++) {
        int bad = !(i0[p] > 0) || !isfinite(i0[p]);
        for (int c = 0; c < cfg->n_elements && !bad; c++) bad = !(counts[c][p] >= 0) || !isfinite(counts[c][p]);
        if (bad) {
            snprintf(err, errlen, "pixel (x=%zu, y=%zu): counts must be finite and >= 0, I0 finite and > 0",
                     p % width, p / width);
            return -1;
        }
    }
    if (xrf_maps_alloc(corrected, width, height, cfg->n_elements) < 0 ||
        xrf_maps_alloc(fractions, width, height, cfg->n_elements) < 0) {
        xrf_maps_free(corrected);
        snprintf(err, errlen, "bad map size %dx%d", width, height);
        return -1;
    }
    int iterations = cfg->num.sweep == XRF_SWEEP_JACOBI
                         ? jacobi(cfg, width, height, counts, i0, corrected, fractions, err, errlen)
                         : gauss_seidel(cfg, width, height, counts, i0, threads, corrected, fractions);
    if (iterations < 0) {
        xrf_maps_free(corrected);
        xrf_maps_free(fractions);
    }
    return iterations;
}
