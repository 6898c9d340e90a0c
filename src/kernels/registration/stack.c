/* stack.c -- aligning a stack of images (tomographic projections, images at several X-ray energies) by
 * translation, to one reference frame or along the chain of neighbours, with each frame's pixel size relative
 * to the reference known beforehand (frames are brought to the reference's pixel size before registering).
 *
 * Threads: the frames are registered by params.threads workers (parallel_for), each with its own context and
 * scratch; worker w writes only results[k] and aligned frame k of the items it takes. Shifts along the chain of
 * neighbours are summed afterwards on the calling thread. The progress callback is called from the workers,
 * one call at a time (progress_lock). */
#include "kernels/registration/registration_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"
#include "core/parallel/parallel.h"

/* Brings frame (pixel size rel times the reference's) to the reference's pixel size in work: content appears
 * scaled by 1/rel about the centre. Returns the frame's mean, the fill where it has no data (a step to zero
 * would be an edge that correlates). */
static float to_reference_scale(const float *frame, int w, int h, double rel, float *work)
{
    double sum = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) sum += frame[i];
    float fill = (float)(sum / ((double)w * h));
    if (rel == 1) memcpy(work, frame, sizeof(float) * w * h);
    else reg_warp(frame, w, h, work, w, h, 0, 1 / rel, (w - 1) / 2.0, (h - 1) / 2.0, 0, 0, fill);
    return fill;
}

typedef struct worker {
    reg_ctx *ctx;
    float *moving, *neighbour;   /* frames at the reference's pixel size */
    int failed;
    char err[256];
} worker;

typedef struct job {
    const float *frames;
    int width, height, count, ref_index, neighbours;
    const double *rel;           /* pixel size relative to the reference, per frame */
    reg_result *results;
    worker *workers;
    void (*progress)(int done, int total, void *arg);
    void *progress_arg;
    pthread_mutex_t progress_lock;
    int done;                    /* under progress_lock */
} job;

/* Registers frame k at the reference's pixel size against the reference, or against its neighbour toward the
 * reference; the shift on the reference grid goes to results[k] (the chain is summed later). */
static void register_frame(void *arg, int k, int w)
{
    job *j = arg;
    worker *wk = &j->workers[w];
    size_t n = (size_t)j->width * j->height;
    reg_view v = {.data = wk->moving, .width = j->width, .height = j->height};
    int toward = k < j->ref_index ? k + 1 : k > j->ref_index ? k - 1 : k;
    to_reference_scale(j->frames + n * k, j->width, j->height, j->rel[k], wk->moving);
    int rc = 0;
    if (j->neighbours) {
        /* The worker's context holds whatever it was given last; here, the neighbour. */
        to_reference_scale(j->frames + n * toward, j->width, j->height, j->rel[toward], wk->neighbour);
        reg_view nv = {.data = wk->neighbour, .width = j->width, .height = j->height};
        rc = reg_set_reference(wk->ctx, &nv, wk->err, sizeof wk->err);
    }
    if (rc == 0) rc = reg_translate(wk->ctx, &v, &j->results[k], wk->err, sizeof wk->err);
    if (rc != 0 && !wk->failed) {
        wk->failed = 1;
        snprintf(wk->err + strlen(wk->err), sizeof wk->err - strlen(wk->err), " (frame %d)", k);
    }
    if (j->progress) {
        pthread_mutex_lock(&j->progress_lock);
        j->progress(++j->done, j->count, j->progress_arg);
        pthread_mutex_unlock(&j->progress_lock);
    }
}

typedef struct warp_job {
    const float *frames;
    float *aligned;
    int width, height;
    const reg_result *results;
} warp_job;

static void warp_frame(void *arg, int k, int w)
{
    (void)w;
    warp_job *j = arg;
    size_t n = (size_t)j->width * j->height;
    const float *frame = j->frames + n * k;
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += frame[i];
    const reg_result *r = &j->results[k];
    reg_warp(frame, j->width, j->height, j->aligned + n * k, j->width, j->height, 0, r->scale,
             (j->width - 1) / 2.0, (j->height - 1) / 2.0, r->shift_x, r->shift_y, (float)(sum / n));
}

int reg_align_stack(const float *frames, int width, int height, int count, int ref_index, int neighbours,
                    const double *scale, const reg_params *p, reg_result *results, float *aligned,
                    void (*progress)(int done, int total, void *arg), void *progress_arg, char *err,
                    size_t errlen)
{
    if (count < 1 || ref_index < 0 || ref_index >= count) {
        snprintf(err, errlen, "reference frame %d is not in a stack of %d", ref_index, count);
        return -1;
    }
    double *rel = xmalloc(sizeof(double) * count);
    for (int k = 0; k < count; k++) {
        if (scale && (!(scale[k] > 0) || !isfinite(scale[k]))) {
            snprintf(err, errlen, "frame %d: relative pixel size %g must be > 0", k, scale[k]);
            free(rel);
            return -1;
        }
        rel[k] = scale ? scale[k] / scale[ref_index] : 1;
    }
    /* Per worker one FFTW thread: the parallelism is over frames. Resampled frames use the band that
     * interpolation keeps faithful. */
    reg_params q = *p;
    int workers = parallel_workers(count, p->threads);
    q.threads = 1;
    for (int k = 0; k < count; k++)
        if (rel[k] != 1 && (q.band_high <= 0 || q.band_high > WARPED_BAND_HIGH)) q.band_high = WARPED_BAND_HIGH;
    job j = {.frames = frames, .width = width, .height = height, .count = count, .ref_index = ref_index,
             .neighbours = neighbours, .rel = rel, .results = results, .progress = progress,
             .progress_arg = progress_arg};
    pthread_mutex_init(&j.progress_lock, NULL);
    j.workers = xcalloc(workers, sizeof(worker));
    size_t n = (size_t)width * height;
    int rc = 0;
    reg_view rv = {.data = frames + n * ref_index, .width = width, .height = height};
    for (int w = 0; w < workers && rc == 0; w++) {
        worker *wk = &j.workers[w];
        wk->ctx = reg_create(width, height, &q, 0, err, errlen);
        rc = wk->ctx ? reg_set_reference(wk->ctx, &rv, err, errlen) : -1;
        wk->moving = xmalloc(sizeof(float) * n);
        wk->neighbour = xmalloc(sizeof(float) * n);
    }
    if (rc == 0) parallel_for(count, workers, register_frame, &j);
    for (int w = 0; w < workers; w++) {
        if (rc == 0 && j.workers[w].failed) {
            snprintf(err, errlen, "%s", j.workers[w].err);
            rc = -1;
        }
        reg_destroy(j.workers[w].ctx);
        free(j.workers[w].moving);
        free(j.workers[w].neighbour);
    }
    free(j.workers);
    pthread_mutex_destroy(&j.progress_lock);
    if (rc == 0) {
        /* Outward from the reference, summing along the chain of neighbours; then the shift found on the
         * reference grid is A d in the frame's own pixels (register.h's model), while in micrometres it stays
         * what was found on the reference grid. */
        for (int dir = -1; dir <= 1; dir += 2) {
            double tx = 0, ty = 0;
            for (int k = ref_index + dir; k >= 0 && k < count; k += dir) {
                reg_result *r = &results[k];
                tx = neighbours ? tx + r->shift_x : r->shift_x;
                ty = neighbours ? ty + r->shift_y : r->shift_y;
                r->shift_x = tx / rel[k];
                r->shift_y = ty / rel[k];
                r->shift_x_um = q.pixel_size > 0 ? tx * q.pixel_size : 0;
                r->shift_y_um = q.pixel_size > 0 ? ty * q.pixel_size : 0;
                r->scale = 1 / rel[k];
            }
        }
        if (aligned) {
            warp_job wj = {.frames = frames, .aligned = aligned, .width = width, .height = height,
                           .results = results};
            parallel_for(count, workers, warp_frame, &wj);
        }
    }
    free(rel);
    return rc;
}
