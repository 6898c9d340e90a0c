/* similarity.c -- rotation, scale and translation (similarity registration): rotation and scale from phase
 * correlation of log-polar magnitude spectra, then translation; every further iteration warps the moving image
 * by the estimate so far and measures what remains. The frame spectrum of the moving image is shared with the
 * translation stage (ctx->pc), the log-polar images have their own correlator (ctx->lpc). */
#include "kernels/registration/registration_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

/* Pixels warped beyond a disc's radius: room for the second pass to move the disc (see refine_translation). */
#define DISC_MARGIN 4

/* Frames with both sides at least twice this find rotation and scale at half resolution (see reg_ctx). */
#define COARSE_MIN_SIDE 256

/* A similarity transform in a context's frame coordinates (see register.h), and how it was found. */
typedef struct estimate {
    double angle, scale, tx, ty;
    double disc;                 /* radius of the disc windows of the last translation (0: rectangles) */
    pc_peak peak;                /* that translation's peak */
    int rounds, converged;
} estimate;

int similarity_init(reg_ctx *ctx, int outer, char *err, size_t errlen)
{
    ctx->similarity = 1;
    ctx->placed = xmalloc(sizeof(float) * (size_t)ctx->w * ctx->h);
    ctx->warped = xmalloc(sizeof(float) * (size_t)ctx->w * ctx->h);
    ctx->disc_win = xmalloc(sizeof(float) * (size_t)ctx->w * ctx->h);
    ctx->warped_band = xmalloc(sizeof(float) * ctx->pc.nspec);
    double high = ctx->p.band_high > 0 && ctx->p.band_high < WARPED_BAND_HIGH ? ctx->p.band_high : WARPED_BAND_HIGH;
    band_filter(ctx->w, ctx->h, ctx->p.band_low, high, ctx->warped_band);
    if (outer && ctx->w >= 2 * COARSE_MIN_SIDE && ctx->h >= 2 * COARSE_MIN_SIDE) {
        /* A coarse pixel is two of ours: the same translation lattice and tolerance in our pixels. */
        reg_params cp = ctx->p;
        cp.upsample = 2 * ctx->p.upsample < 10000 ? 2 * ctx->p.upsample : 10000;
        cp.tolerance = ctx->p.tolerance / 2;
        size_t half = (size_t)(ctx->w / 2) * (ctx->h / 2);
        ctx->coarse_ref = xmalloc(sizeof(float) * half);
        ctx->coarse_moving = xmalloc(sizeof(float) * half);
        ctx->coarse = context_make(ctx->w / 2, ctx->h / 2, &cp, 1, 0, err, errlen);
        return ctx->coarse ? 0 : -1;
    }
    logpolar_init(&ctx->lp, ctx->w, ctx->h);
    ctx->lp_params = ctx->p;
    ctx->lp_params.window = REG_WINDOW_NONE;   /* log_polar_sample windows the radius; angle is periodic */
    ctx->lp_params.whitening = 1;
    ctx->lp_params.band_low = ctx->lp_params.band_high = 0;
    ctx->lp_params.contrast_invariant = 0;
    return pc_init(&ctx->lpc, ctx->lp.radii, ctx->lp.angles, &ctx->lp_params, 0, err, errlen);
}

void similarity_free(reg_ctx *ctx)
{
    if (!ctx->similarity) return;
    reg_destroy(ctx->coarse);
    free(ctx->coarse_ref);
    free(ctx->coarse_moving);
    logpolar_free(&ctx->lp);
    pc_free(&ctx->lpc);
    free(ctx->placed);
    free(ctx->warped);
    free(ctx->disc_win);
    free(ctx->warped_band);
    ctx->similarity = 0;
}

/* The region pl of a placed frame (ctx->placed or ref_placed) halved into out, as a view for the coarse context. */
static reg_view halved_region(const reg_ctx *ctx, const float *placed, const placement *pl, float *out)
{
    decimate_half(placed + (size_t)pl->at_y * ctx->w + pl->at_x, pl->w, pl->h, (size_t)ctx->w, out);
    return (reg_view){.data = out, .width = pl->w / 2, .height = pl->h / 2};
}

int similarity_set_reference(reg_ctx *ctx, char *err, size_t errlen)
{
    if (ctx->coarse) {
        reg_view half = halved_region(ctx, ctx->ref_placed, &ctx->ref_pl, ctx->coarse_ref);
        return reg_set_reference(ctx->coarse, &half, err, errlen);
    }
    logpolar_sample(&ctx->lp, ctx->pc.spec_ref, ctx->w, ctx->h, ctx->lpc.real);
    pc_transform(&ctx->lpc, 1);
    return 0;
}

/* Rotation and scale that remain between the moving spectrum in ctx->pc.spec and the reference. A rotation by
 * theta and scaling by s of the content shift the log-polar image by (-theta rows, -ln s / step columns). */
static void residual_rotation_scale(reg_ctx *ctx, double *angle_deg, double *scale)
{
    logpolar_sample(&ctx->lp, ctx->pc.spec, ctx->w, ctx->h, ctx->lpc.real);
    pc_transform(&ctx->lpc, 0);
    pc_peak lp_peak;
    pc_correlate_against(&ctx->lpc, ctx->lpc.spec_ref, ctx->p.upsample, &lp_peak);
    *angle_deg = -lp_peak.dy * 180.0 / ctx->lp.angles;
    *scale = exp(-lp_peak.dx * ctx->lp.log_step);
}

/* With rotation and scale fixed, the translation that remains after (tx, ty): the placed moving image warped by
 * the estimate onto the reference's frame and registered, windowed over the reference's rectangle (disc == 0;
 * with the overlap-window pass) or over a disc of that radius (the reference's spectrum under the same disc in
 * ctx->spec_alt). Updates (tx, ty) to the total. */
static void refine_translation(reg_ctx *ctx, double angle_deg, double scale, double *tx, double *ty, float fill,
                               double disc, pc_peak *peak)
{
    double cx = (ctx->w - 1) / 2.0, cy = (ctx->h - 1) / 2.0;
    const placement *r = &ctx->ref_pl;
    double dx = r->at_x + (r->w - 1) / 2.0, dy = r->at_y + (r->h - 1) / 2.0;
    /* With a disc only the pixels it can read are warped: the disc moved by up to DISC_MARGIN - 1 pixels. */
    warp_clipped(ctx->placed, ctx->w, ctx->h, ctx->warped, ctx->w, ctx->h, angle_deg, scale, cx, cy, *tx, *ty, fill,
                 ctx->p.threads, dx, dy, disc > 0 ? disc + DISC_MARGIN : 0);
    if (disc > 0) {
        /* Twice: the second time with the moving disc moved onto the content the reference's disc holds, since
         * two windows at one place pull the shift toward zero. */
        peak->dx = peak->dy = 0;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1 && hypot(peak->dx, peak->dy) > DISC_MARGIN - 1)
                warp_threads(ctx->placed, ctx->w, ctx->h, ctx->warped, ctx->w, ctx->h, angle_deg, scale, cx, cy, *tx,
                             *ty, fill, ctx->p.threads);
            if (pass == 0) frame_apply_disc(ctx->warped, ctx->w, ctx->h, dx, dy, disc, ctx->disc_win, ctx->pc.real);
            else frame_load_disc(ctx->warped, ctx->w, ctx->h, dx + peak->dx, dy + peak->dy, disc, ctx->pc.real);
            pc_transform(&ctx->pc, 0);
            pc_correlate_against(&ctx->pc, ctx->spec_alt, pass ? ctx->p.upsample : REFINE_RATIO, peak);
        }
        pc_match_quality(&ctx->pc, ctx->spec_alt, ctx->alt_energy, peak);
    } else {
        placement rect = ctx->ref_pl;
        rect.roi_x = rect.at_x;
        rect.roi_y = rect.at_y;
        reg_view v = {.data = ctx->warped, .width = ctx->w, .height = ctx->h};
        translate_view(ctx, &v, &rect, 1, peak);
    }
    double th = angle_deg * M_PI / 180, c = scale * cos(th), s = scale * sin(th);
    *tx += c * peak->dx + s * peak->dy;
    *ty += -s * peak->dx + c * peak->dy;
}

/* The largest disc about the reference region's centre that the warped moving region (pl) covers completely
 * under (angle, scale, t), and the reference's spectrum under it in ctx->spec_alt. Returns the radius, or 0 when
 * less than 8 pixels (the rectangle windows are used then). */
static double prepare_disc(reg_ctx *ctx, const placement *pl, double angle_deg, double scale, double tx,
                           double ty)
{
    const placement *r = &ctx->ref_pl;
    double cx = (ctx->w - 1) / 2.0, cy = (ctx->h - 1) / 2.0;
    double dx = r->at_x + (r->w - 1) / 2.0, dy = r->at_y + (r->h - 1) / 2.0;
    double th = angle_deg * M_PI / 180, c = scale * cos(th), s = scale * sin(th);
    /* Where the disc's centre lands in the moving frame, and how far that is from the moving region's centre. */
    double mx = c * (dx - cx) + s * (dy - cy) + cx + tx, my = -s * (dx - cx) + c * (dy - cy) + cy + ty;
    double off = hypot(mx - (pl->at_x + (pl->w - 1) / 2.0), my - (pl->at_y + (pl->h - 1) / 2.0));
    double radius = fmin(fmin(r->w, r->h) / 2.0, (fmin(pl->w, pl->h) / 2.0 - off) / scale) - 1;
    if (radius < 8) return 0;
    disc_window(ctx->w, ctx->h, dx, dy, radius, ctx->disc_win);
    frame_apply_disc(ctx->ref_placed, ctx->w, ctx->h, dx, dy, radius, ctx->disc_win, ctx->pc.real);
    pc_transform_into(&ctx->pc, ctx->spec_alt, &ctx->alt_energy);
    ctx->alt_key.w = 0;
    return radius;
}

/* One coordinate of (angle, log scale) refined: probes at x - step, x, x + step with the translation found anew at
 * each, and the vertex of the parabola through the three correlations (kept within the probes). which: 0 varies
 * the angle (fixed: log scale in other), 1 varies log scale (other: angle). */
static double refine_by_parabola(reg_ctx *ctx, double x, double other, double step, int which, double *tx,
                                 double *ty, float fill, double disc, pc_peak *peak)
{
    double h[3];
    for (int i = 0; i < 3; i++) {
        double probe = x + (i - 1) * step, px = *tx, py = *ty;
        pc_peak pk;
        if (which == 0) refine_translation(ctx, probe, exp(other), &px, &py, fill, disc, &pk);
        else refine_translation(ctx, other, exp(probe), &px, &py, fill, disc, &pk);
        h[i] = pk.correlation;
        if (i == 1) *peak = pk;
    }
    double curvature = h[0] - 2 * h[1] + h[2];
    if (!(curvature < 0)) return h[0] > h[1] && h[0] > h[2] ? x - step : h[2] > h[1] ? x + step : x;
    double offset = 0.5 * (h[0] - h[2]) / curvature;
    return x + fmax(-1, fmin(1, offset)) * step;
}

/* The transform's verdict: the moving image warped by it onto the reference, checked in quarters (verify.c) over
 * the disc's inscribed square (or the reference's region when there is no disc). */
static double verify_similarity(reg_ctx *ctx, double angle_deg, double scale, double tx, double ty, float fill,
                                double disc)
{
    const placement *r = &ctx->ref_pl;
    double cx = (ctx->w - 1) / 2.0, cy = (ctx->h - 1) / 2.0;
    double dx = r->at_x + (r->w - 1) / 2.0, dy = r->at_y + (r->h - 1) / 2.0;
    /* The quarters read the disc's inscribed square only. */
    warp_clipped(ctx->placed, ctx->w, ctx->h, ctx->warped, ctx->w, ctx->h, angle_deg, scale, cx, cy, tx, ty, fill,
                 ctx->p.threads, dx, dy, disc > 0 ? disc + 1 : 0);
    reg_view v = {.data = ctx->warped, .width = ctx->w, .height = ctx->h};
    int x0 = r->at_x, y0 = r->at_y, x1 = r->at_x + r->w, y1 = r->at_y + r->h;
    if (disc > 0) {
        double half = disc / sqrt(2);
        x0 = (int)ceil(dx - half);
        y0 = (int)ceil(dy - half);
        x1 = (int)floor(dx + half) + 1;
        y1 = (int)floor(dy + half) + 1;
    }
    return verify_quarters(ctx, &v, 0, 0, 0, 0, x0, y0, x1, y1);
}

/* Switches the translations of ctx to the band of warped images (on != 0) or back to the parameters' band. */
static void warped_band_use(reg_ctx *ctx, int on, float **saved)
{
    if (on) {
        *saved = ctx->pc.band;
        ctx->pc.band = ctx->warped_band;
    } else {
        ctx->pc.band = *saved;
    }
    band_support(&ctx->pc, ctx->pc.band);
}

/* The whole estimate at this context's resolution for the moving region pl, already placed in ctx->placed (mean
 * fill): rotation and scale from the log-polar spectra, the 180-degree ambiguity, then rounds of refinement. */
static void estimate_here(reg_ctx *ctx, const reg_view *moving, const placement *pl, float fill, estimate *e)
{
    frame_load(moving, pl, &ctx->p, 0, 0, ctx->pc.real, ctx->w, ctx->h, ctx->wx, ctx->wy);
    pc_transform(&ctx->pc, 0);
    double angle, scale;
    residual_rotation_scale(ctx, &angle, &scale);
    float *band;
    warped_band_use(ctx, 1, &band);
    /* Magnitude spectra cannot tell theta from theta + 180: keep the one whose translation correlates better. */
    double tx = 0, ty = 0;
    pc_peak peak;
    refine_translation(ctx, angle, scale, &tx, &ty, fill, 0, &peak);
    double flip_tx = 0, flip_ty = 0, flip_angle = angle > 0 ? angle - 180 : angle + 180;
    pc_peak flip_peak;
    refine_translation(ctx, flip_angle, scale, &flip_tx, &flip_ty, fill, 0, &flip_peak);
    if (flip_peak.peak > peak.peak) {
        angle = flip_angle;
        tx = flip_tx;
        ty = flip_ty;
        peak = flip_peak;
    }
    /* Later rounds refine angle and scale directly on what matters, how well the images correlate once aligned,
     * by a parabola through three probes each, probe steps halving every round. (Correlating log-polar spectra
     * again would be biased toward zero: once the images nearly agree, the sampling artefacts they share
     * dominate the residual.) The log-polar estimate is good to a fraction of its bin; probes a quarter bin
     * apart stay on the parabolic top of the curve. Both images are windowed by the same disc, which the
     * rotated moving region covers entirely: its missing corners would otherwise bias the translation. */
    double step_angle = 45.0 / ctx->lp.angles, step_log_scale = ctx->lp.log_step / 4;
    double disc = ctx->p.iterations > 1 ? prepare_disc(ctx, pl, angle, scale, tx, ty) : 0;
    /* A round's update: how far it moves a pixel at the frame's RMS radius (at most). The probe steps halve every
     * round, so on noisy images, whose correlation curves wobble at fine steps, the updates still shrink. */
    double radius = sqrt(((double)ctx->w * ctx->w + (double)ctx->h * ctx->h) / 12);
    /* Translations are found on the 1/upsample lattice: a diagonal step of it is the finest update there is. */
    double tolerance = fmax(ctx->p.tolerance, 1.000001 * M_SQRT2 / ctx->p.upsample);
    int rounds = 0, converged = 0;
    while (!converged && rounds + 1 < ctx->p.iterations) {
        double angle0 = angle, scale0 = scale, tx0 = tx, ty0 = ty;
        angle = refine_by_parabola(ctx, angle, log(scale), step_angle, 0, &tx, &ty, fill, disc, &peak);
        scale = exp(refine_by_parabola(ctx, log(scale), angle, step_log_scale, 1, &tx, &ty, fill, disc, &peak));
        refine_translation(ctx, angle, scale, &tx, &ty, fill, disc, &peak);
        rounds++;
        double update = hypot(tx - tx0, ty - ty0) +
                        radius * (fabs(angle - angle0) * M_PI / 180 + fabs(log(scale / scale0)));
        converged = update <= tolerance;
        step_angle /= 2;
        step_log_scale /= 2;
    }
    warped_band_use(ctx, 0, &band);
    *e = (estimate){.angle = angle, .scale = scale, .tx = tx, .ty = ty, .disc = disc, .peak = peak,
                    .rounds = rounds, .converged = converged};
}

/* Rotation and scale found by the coarse context on both regions halved, the transform brought into this
 * context's frame, and the translation measured again here at full resolution. Returns 0 or -1 with a message. */
static int estimate_coarse(reg_ctx *ctx, const placement *pl, float fill, estimate *e, char *err, size_t errlen)
{
    reg_ctx *coarse = ctx->coarse;
    reg_view half = halved_region(ctx, ctx->placed, pl, ctx->coarse_moving);
    placement cpl;
    if (placement_of(&half, coarse->w, coarse->h, &cpl, err, errlen) != 0) return -1;
    estimate c;
    estimate_here(coarse, &half, &cpl, frame_place(&half, &cpl, coarse->placed, coarse->w, coarse->h), &c);
    /* Coarse frame point P_c = (P - at - 1/2) / 2 + coarse at (its pixel q covers ours 2q, 2q + 1 of the region):
     * moving M = A (P - C) + C + t with C our frame's centre and t = 2 A d + 2 (C_c + t_c - at_c,moving) + 1/2 +
     * at_moving - C, where d = (C - at_ref - 1/2) / 2 + at_c,ref - C_c (coarse pixels). */
    double th = c.angle * M_PI / 180, a = c.scale * cos(th), b = c.scale * sin(th);
    double cx = (ctx->w - 1) / 2.0, cy = (ctx->h - 1) / 2.0;
    double ccx = (coarse->w - 1) / 2.0, ccy = (coarse->h - 1) / 2.0;
    double dx = (cx - ctx->ref_pl.at_x - 0.5) / 2 + coarse->ref_pl.at_x - ccx;
    double dy = (cy - ctx->ref_pl.at_y - 0.5) / 2 + coarse->ref_pl.at_y - ccy;
    double tx = 2 * (a * dx + b * dy) + 2 * (ccx + c.tx - cpl.at_x) + 0.5 + pl->at_x - cx;
    double ty = 2 * (-b * dx + a * dy) + 2 * (ccy + c.ty - cpl.at_y) + 0.5 + pl->at_y - cy;
    float *band;
    warped_band_use(ctx, 1, &band);
    double disc = ctx->p.iterations > 1 ? prepare_disc(ctx, pl, c.angle, c.scale, tx, ty) : 0;
    pc_peak peak;
    refine_translation(ctx, c.angle, c.scale, &tx, &ty, fill, disc, &peak);
    warped_band_use(ctx, 0, &band);
    *e = (estimate){.angle = c.angle, .scale = c.scale, .tx = tx, .ty = ty, .disc = disc, .peak = peak,
                    .rounds = c.rounds, .converged = c.converged};
    return 0;
}

int reg_similarity(reg_ctx *ctx, const reg_view *moving, reg_result *out, char *err, size_t errlen)
{
    placement pl;
    if (!ctx->similarity) {
        snprintf(err, errlen, "context was made for translation only");
        return -1;
    }
    if (!ctx->have_ref) {
        snprintf(err, errlen, "no reference image set");
        return -1;
    }
    if (placement_of(moving, ctx->w, ctx->h, &pl, err, errlen) != 0) return -1;
    float fill = frame_place(moving, &pl, ctx->placed, ctx->w, ctx->h);
    estimate e;
    if (!ctx->coarse) estimate_here(ctx, moving, &pl, fill, &e);
    else if (estimate_coarse(ctx, &pl, fill, &e, err, errlen) != 0) return -1;
    double error_px = verify_similarity(ctx, e.angle, e.scale, e.tx, e.ty, fill, e.disc);
    double angle = e.angle;
    if (angle > 180) angle -= 360;
    if (angle <= -180) angle += 360;
    result_fill(ctx, &pl, angle, e.scale, e.tx, e.ty, &e.peak, error_px, e.converged, out);
    out->iterations = e.rounds;
    return 0;
}
