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
 * The quarters' reference spectra are kept and reused while the shared region stays the same. */
#include "kernels/registration/registration_internal.h"

#include <math.h>
#include <string.h>

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

int verify_init(reg_ctx *ctx, char *err, size_t errlen)
{
    for (int q = 0; q < 4; q++) ctx->qspec[q] = fftwf_alloc_complex((size_t)(ctx->h / 2) * (ctx->w / 4 + 1));
    return pc_init(&ctx->qpc, ctx->w / 2, ctx->h / 2, &ctx->p, 1, err, errlen);
}

void verify_free(reg_ctx *ctx)
{
    pc_free(&ctx->qpc);
    for (int q = 0; q < 4; q++) fftwf_free(ctx->qspec[q]);
}

void verify_forget_reference(reg_ctx *ctx)
{
    for (int q = 0; q < 4; q++) ctx->qkey[q].w = 0;
}

double verify_quarters(reg_ctx *ctx, const reg_view *mv, int off_x, int off_y, double expect_x, double expect_y,
                       int x0, int y0, int x1, int y1)
{
    pc_core *pc = &ctx->qpc;
    int half_w = (x1 - x0) / 2, half_h = (y1 - y0) / 2;
    if (half_w < 8 || half_h < 8) return INFINITY;
    /* Quarter steps are fine enough for a verdict at the half-pixel scale, and cheaper. */
    int upsample = ctx->p.upsample < 20 ? ctx->p.upsample : 20;
    reg_view ref = {.data = ctx->ref_placed, .width = ctx->w, .height = ctx->h};
    double res_x[4], res_y[4], at_x[4], at_y[4];
    for (int q = 0; q < 4; q++) {
        int qx = x0 + (q % 2) * half_w, qy = y0 + (q / 2) * half_h;
        placement rp = {qx, qy, half_w, half_h, (pc->w - half_w) / 2, (pc->h - half_h) / 2};
        if (memcmp(&rp, &ctx->qkey[q], sizeof rp) != 0) {
            frame_load(&ref, &rp, &ctx->p, 0, 0, pc->real, pc->w, pc->h, ctx->wx, ctx->wy);
            pc_transform_into(pc, ctx->qspec[q], &ctx->qenergy[q]);
            ctx->qkey[q] = rp;
        }
        placement mp = rp;
        mp.roi_x += off_x;
        mp.roi_y += off_y;
        /* The moving window sits on the content the reference's window holds (see translate_view). */
        frame_load(mv, &mp, &ctx->p, expect_x, expect_y, pc->real, pc->w, pc->h, ctx->wx, ctx->wy);
        pc_transform(pc, 0);
        pc_peak pk;
        pc_correlate_against(pc, ctx->qspec[q], upsample, &pk);
        res_x[q] = pk.dx - expect_x;
        res_y[q] = pk.dy - expect_y;
        at_x[q] = ((q % 2) - 0.5) * half_w;
        at_y[q] = ((q / 2) - 0.5) * half_h;
    }
    return mapping_error_estimate(res_x, res_y, at_x, at_y, ctx->ref_pl.w, ctx->ref_pl.h);
}
