/* verify.c -- the calibrated verdict on a registration result. The reference and the moving image, brought
 * together by the transform found, are registered again by translation in the four quarters of the region they
 * share. A right transform leaves every quarter a residual shift near zero (its own measurement noise); a wrong
 * one leaves residuals of many pixels (a rotation or scale error grows with the distance from the centre), or
 * peaks that land anywhere (nothing in common). Four independent peaks falling within a pixel of where a wrong
 * answer predicts by chance is improbable beyond any practical concern, which the single peak's height (psr)
 * cannot say: sparse or smooth scenes give tall chance peaks.
 *
 * The estimated RMS mapping error over the reference's region, in pixels: the residuals at the quarter centres
 * fitted by a small similarity (shift t, rotation/scale M), its RMS over the region sqrt(|t|^2 + |M|^2 r_rms^2)
 * (r_rms the region's RMS radius; the quarter centres lie closer in, so an angle error is extrapolated, not
 * averaged), plus what the fit leaves over. Each quarter has a quarter of the data, so the noise part is about
 * twice the whole frame's and the estimate errs on the high side.
 * The quarters' reference spectra are kept and reused while the shared region stays the same.
 *
 * Threads. With params.threads > 1 a helper thread, started with the context and waiting on a condition variable
 * between frames, registers quarters 2 and 3 while the caller registers 0 and 1, each on its own correlator with
 * one-thread FFTW plans: the whole quarter (window, transforms, peak search, refinement) runs in parallel, not only
 * its FFTs. Each quarter is always done by the same thread and touches only its own cached spectrum, so nothing
 * else is shared; a frame allocates nothing. */
#include "kernels/registration/registration_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

/* One quarter correlator with its window scratch: the caller's, and the helper's. */
typedef struct quarter_core {
    pc_core pc;
    float *wx, *wy;
} quarter_core;

/* The frame's quarter registrations, as the caller hands them to the helper (see verify_quarters). */
typedef struct quarter_job {
    const reg_view *mv;
    int off_x, off_y, x0, y0, half_w, half_h, upsample;
    double expect_x, expect_y;
    double res_x[4], res_y[4];
} quarter_job;

typedef enum { HELPER_IDLE, HELPER_BUSY, HELPER_QUIT } helper_state;

struct verifier {
    const reg_ctx *ctx;
    reg_params params;           /* the context's, with one FFTW thread per correlator */
    quarter_core core[2];        /* [1]: the helper's, when there is one */
    fftwf_complex *qspec[4];     /* the reference's quarter spectra, with the regions they were made for (w == 0:
                                    none) */
    double qenergy[4];
    placement qkey[4];
    quarter_job job;
    int have_helper;
    pthread_t helper;
    pthread_mutex_t lock;
    pthread_cond_t wake, finished;
    helper_state state;          /* under lock */
};

/* The residuals (res) at the quarter centres (at, relative to the region's centre, symmetric about it) fitted by
 * res = t + M at, M = [[a, b], [-b, a]]; the RMS mapping error of that fit over a w x h region plus the RMS of
 * what it leaves. */
static double mapping_error_estimate(const double *res_x, const double *res_y, const double *at_x,
                                     const double *at_y, int w, int h)
{
    double tx = 0, ty = 0, a = 0, b = 0, norm = 0;
    for (int q = 0; q < 4; q++) {
        tx += res_x[q] / 4;
        ty += res_y[q] / 4;
        norm += at_x[q] * at_x[q] + at_y[q] * at_y[q];
    }
    for (int q = 0; q < 4; q++) {
        a += ((res_x[q] - tx) * at_x[q] + (res_y[q] - ty) * at_y[q]) / norm;
        b += ((res_x[q] - tx) * at_y[q] - (res_y[q] - ty) * at_x[q]) / norm;
    }
    double misfit2 = 0;
    for (int q = 0; q < 4; q++) {
        double ex = res_x[q] - (tx + a * at_x[q] + b * at_y[q]), ey = res_y[q] - (ty - b * at_x[q] + a * at_y[q]);
        misfit2 += (ex * ex + ey * ey) / 4;
    }
    double r2 = ((double)w * w + (double)h * h) / 12;
    return sqrt(tx * tx + ty * ty + (a * a + b * b) * r2 + misfit2);
}

/* Registers quarter q of the job on core c: residual shift in job->res_x/res_y[q]. */
static void quarter_residual(struct verifier *v, quarter_core *c, int q)
{
    quarter_job *job = &v->job;
    pc_core *pc = &c->pc;
    reg_view ref = {.data = v->ctx->ref_placed, .width = v->ctx->w, .height = v->ctx->h};
    int qx = job->x0 + (q % 2) * job->half_w, qy = job->y0 + (q / 2) * job->half_h;
    placement rp = {qx, qy, job->half_w, job->half_h, (pc->w - job->half_w) / 2, (pc->h - job->half_h) / 2};
    if (memcmp(&rp, &v->qkey[q], sizeof rp) != 0) {
        frame_load(&ref, &rp, &v->params, 0, 0, pc->real, pc->w, pc->h, c->wx, c->wy);
        pc_transform_into(pc, v->qspec[q], &v->qenergy[q]);
        v->qkey[q] = rp;
    }
    placement mp = rp;
    mp.roi_x += job->off_x;
    mp.roi_y += job->off_y;
    /* The moving window sits on the content the reference's window holds (see translate_view). */
    frame_load(job->mv, &mp, &v->params, job->expect_x, job->expect_y, pc->real, pc->w, pc->h, c->wx, c->wy);
    pc_transform(pc, 0);
    pc_peak pk;
    pc_correlate_against(pc, v->qspec[q], job->upsample, &pk);
    job->res_x[q] = pk.dx - job->expect_x;
    job->res_y[q] = pk.dy - job->expect_y;
}

static void *helper_main(void *arg)
{
    struct verifier *v = arg;
    pthread_mutex_lock(&v->lock);
    for (;;) {
        while (v->state == HELPER_IDLE) pthread_cond_wait(&v->wake, &v->lock);
        if (v->state == HELPER_QUIT) break;
        pthread_mutex_unlock(&v->lock);
        for (int q = 2; q < 4; q++) quarter_residual(v, &v->core[1], q);
        pthread_mutex_lock(&v->lock);
        v->state = HELPER_IDLE;
        pthread_cond_signal(&v->finished);
    }
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

static int core_init(quarter_core *c, const reg_ctx *ctx, const reg_params *p, char *err, size_t errlen)
{
    int side = ctx->w > ctx->h ? ctx->w : ctx->h;
    c->wx = xmalloc(sizeof(float) * side);
    c->wy = xmalloc(sizeof(float) * side);
    return pc_init(&c->pc, ctx->w / 2, ctx->h / 2, p, 1, err, errlen);
}

static void core_free(quarter_core *c)
{
    pc_free(&c->pc);
    free(c->wx);
    free(c->wy);
}

int verify_init(reg_ctx *ctx, char *err, size_t errlen)
{
    struct verifier *v = xcalloc(1, sizeof *v);
    ctx->verifier = v;
    v->ctx = ctx;
    v->params = ctx->p;
    v->params.threads = 1;
    pthread_mutex_init(&v->lock, NULL);
    pthread_cond_init(&v->wake, NULL);
    pthread_cond_init(&v->finished, NULL);
    for (int q = 0; q < 4; q++) v->qspec[q] = fftwf_alloc_complex((size_t)(ctx->h / 2) * (ctx->w / 4 + 1));
    int helped = ctx->p.threads > 1;
    if (core_init(&v->core[0], ctx, &v->params, err, errlen) != 0 ||
        (helped && core_init(&v->core[1], ctx, &v->params, err, errlen) != 0))
        return -1;
    /* Without the thread the caller registers all four quarters: slower, not wrong. */
    v->have_helper = helped && pthread_create(&v->helper, NULL, helper_main, v) == 0;
    return 0;
}

void verify_free(reg_ctx *ctx)
{
    struct verifier *v = ctx->verifier;
    if (!v) return;
    if (v->have_helper) {
        pthread_mutex_lock(&v->lock);
        v->state = HELPER_QUIT;
        pthread_cond_signal(&v->wake);
        pthread_mutex_unlock(&v->lock);
        pthread_join(v->helper, NULL);
    }
    pthread_mutex_destroy(&v->lock);
    pthread_cond_destroy(&v->wake);
    pthread_cond_destroy(&v->finished);
    core_free(&v->core[0]);
    core_free(&v->core[1]);
    for (int q = 0; q < 4; q++) fftwf_free(v->qspec[q]);
    free(v);
    ctx->verifier = NULL;
}

void verify_forget_reference(reg_ctx *ctx)
{
    for (int q = 0; q < 4; q++) ctx->verifier->qkey[q].w = 0;
}

double verify_fft_seconds(const reg_ctx *ctx)
{
    const struct verifier *v = ctx->verifier;
    return v ? v->core[0].pc.fft_seconds + v->core[1].pc.fft_seconds : 0;
}

double verify_quarters(reg_ctx *ctx, const reg_view *mv, int off_x, int off_y, double expect_x, double expect_y,
                       int x0, int y0, int x1, int y1)
{
    struct verifier *v = ctx->verifier;
    int half_w = (x1 - x0) / 2, half_h = (y1 - y0) / 2;
    if (half_w < 8 || half_h < 8) return INFINITY;
    /* Quarter steps are fine enough for a verdict at the half-pixel scale, and cheaper. */
    v->job = (quarter_job){.mv = mv, .off_x = off_x, .off_y = off_y, .x0 = x0, .y0 = y0, .half_w = half_w,
                           .half_h = half_h, .upsample = ctx->p.upsample < 20 ? ctx->p.upsample : 20,
                           .expect_x = expect_x, .expect_y = expect_y};
    if (v->have_helper) {
        pthread_mutex_lock(&v->lock);
        v->state = HELPER_BUSY;
        pthread_cond_signal(&v->wake);
        pthread_mutex_unlock(&v->lock);
    }
    for (int q = 0; q < (v->have_helper ? 2 : 4); q++) quarter_residual(v, &v->core[0], q);
    if (v->have_helper) {
        pthread_mutex_lock(&v->lock);
        while (v->state != HELPER_IDLE) pthread_cond_wait(&v->finished, &v->lock);
        pthread_mutex_unlock(&v->lock);
    }
    double at_x[4], at_y[4];
    for (int q = 0; q < 4; q++) {
        at_x[q] = ((q % 2) - 0.5) * half_w;
        at_y[q] = ((q / 2) - 0.5) * half_h;
    }
    return mapping_error_estimate(v->job.res_x, v->job.res_y, at_x, at_y, ctx->ref_pl.w, ctx->ref_pl.h);
}
