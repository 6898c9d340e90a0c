/* context.c -- the public face of registration: the per-size context (plans and buffers made once), the
 * reference, translation-only registration with its overlap-window pass, the conversion of frame results into
 * image coordinates, and the timing aids (the FFT floor, the FFT share). */
#include "kernels/registration/registration_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

reg_ctx *reg_create(int width, int height, const reg_params *p, int similarity, char *err, size_t errlen)
{
    return context_make(width, height, p, similarity, 1, err, errlen);
}

reg_ctx *context_make(int width, int height, const reg_params *p, int similarity, int outer, char *err,
                      size_t errlen)
{
    if (width < 8 || height < 8 || width > 65536 || height > 65536) {
        snprintf(err, errlen, "frame %dx%d: sides must be 8..65536", width, height);
        return NULL;
    }
    if (reg_params_check(p, err, errlen) != 0) return NULL;
    reg_ctx *ctx = xcalloc(1, sizeof *ctx);
    ctx->p = *p;
    ctx->w = width;
    ctx->h = height;
    int side = width > height ? width : height;
    ctx->wx = xmalloc(sizeof(float) * side);
    ctx->wy = xmalloc(sizeof(float) * side);
    ctx->ref_placed = xmalloc(sizeof(float) * (size_t)width * height);
    ctx->spec_alt = fftwf_alloc_complex((size_t)height * (width / 2 + 1));
    if (pc_init(&ctx->pc, width, height, &ctx->p, 1, err, errlen) != 0 ||
        (outer && verify_init(ctx, err, errlen) != 0) ||
        (similarity && similarity_init(ctx, outer, err, errlen) != 0)) {
        reg_destroy(ctx);
        return NULL;
    }
    return ctx;
}

void reg_destroy(reg_ctx *ctx)
{
    if (!ctx) return;
    similarity_free(ctx);
    verify_free(ctx);
    pc_free(&ctx->pc);
    free(ctx->wx);
    free(ctx->wy);
    free(ctx->ref_placed);
    fftwf_free(ctx->spec_alt);
    free(ctx);
}

double reg_transform_floor(reg_ctx *ctx, int repeat)
{
    pc_core *pc = &ctx->pc;
    memset(pc->real, 0, sizeof(float) * pc->n);
    double t0 = time_process_cpu();
    for (int i = 0; i < repeat; i++) {
        fftwf_execute_dft_r2c(pc->fwd, pc->real, pc->spec);
        fftwf_execute_dft_c2r(pc->inv, pc->spec, pc->real);
    }
    return repeat > 0 ? (time_process_cpu() - t0) / repeat : 0;
}

double reg_fft_seconds(const reg_ctx *ctx) { return ctx->pc.fft_seconds + verify_fft_seconds(ctx); }

const reg_params *reg_get_params(const reg_ctx *ctx) { return &ctx->p; }

int reg_set_reference(reg_ctx *ctx, const reg_view *ref, char *err, size_t errlen)
{
    placement pl;
    if (placement_of(ref, ctx->w, ctx->h, &pl, err, errlen) != 0) return -1;
    frame_place(ref, &pl, ctx->ref_placed, ctx->w, ctx->h);
    frame_load(ref, &pl, &ctx->p, 0, 0, ctx->pc.real, ctx->w, ctx->h, ctx->wx, ctx->wy);
    pc_transform(&ctx->pc, 1);
    ctx->ref_pl = pl;
    ctx->have_ref = 1;
    ctx->alt_key.w = 0;
    if (ctx->verifier) verify_forget_reference(ctx);
    if (ctx->similarity && similarity_set_reference(ctx, err, errlen) != 0) {
        ctx->have_ref = 0;
        return -1;
    }
    return 0;
}

static int max_i(int a, int b) { return a > b ? a : b; }
static int min_i(int a, int b) { return a < b ? a : b; }

int reg_translate(reg_ctx *ctx, const reg_view *moving, reg_result *out, char *err, size_t errlen)
{
    placement pl;
    if (!ctx->have_ref) {
        snprintf(err, errlen, "no reference image set");
        return -1;
    }
    if (placement_of(moving, ctx->w, ctx->h, &pl, err, errlen) != 0) return -1;
    pc_peak peak;
    translate_view(ctx, moving, &pl, 1, &peak);
    /* The quarters of the shared region, the moving ones taken where the shift found puts their content. */
    int sx = (int)lround(peak.dx), sy = (int)lround(peak.dy), x0, y0, x1, y1;
    shared_region(ctx, &pl, sx, sy, &x0, &y0, &x1, &y1);
    double error_px = verify_quarters(ctx, moving, sx - pl.at_x + pl.roi_x, sy - pl.at_y + pl.roi_y, peak.dx - sx,
                                      peak.dy - sy, x0, y0, x1, y1);
    result_fill(ctx, &pl, 0, 1, peak.dx, peak.dy, &peak, error_px, 1, out);
    return 0;
}

void shared_region(const reg_ctx *ctx, const placement *pl, int sx, int sy, int *x0, int *y0, int *x1, int *y1)
{
    const placement *r = &ctx->ref_pl;
    *x0 = max_i(r->at_x, pl->at_x - sx);
    *x1 = min_i(r->at_x + r->w, pl->at_x + pl->w - sx);
    *y0 = max_i(r->at_y, pl->at_y - sy);
    *y1 = min_i(r->at_y + r->h, pl->at_y + pl->h - sy);
}

/* Windows the moving view's region pl (window moved by sx, sy) into the frame and transforms it. */
static void load_moving(reg_ctx *ctx, const reg_view *v, const placement *pl, double sx, double sy)
{
    frame_load(v, pl, &ctx->p, sx, sy, ctx->pc.real, ctx->w, ctx->h, ctx->wx, ctx->wy);
    pc_transform(&ctx->pc, 0);
}

void translate_view(reg_ctx *ctx, const reg_view *v, const placement *pl, int overlap, pc_peak *out)
{
    pc_core *pc = &ctx->pc;
    int upsample = ctx->p.upsample, may_overlap = overlap && ctx->p.overlap_windows;
    load_moving(ctx, v, pl, 0, 0);
    /* When a second pass may follow, this one only needs the shift to a quarter pixel. */
    pc_correlate_against(pc, pc->spec_ref, may_overlap && upsample > REFINE_RATIO ? REFINE_RATIO : upsample, out);
    /* Content at reference frame position p is at p + s in the moving frame: window both over the part they
     * share, the moving window moved by the subpixel rest of the shift, so that both windows sit on the same
     * content and no longer pull the peak toward zero. The pull grows with the shift's share of the frame;
     * below 1 % of it, it is negligible and the second pass is skipped. */
    int sx = (int)lround(out->dx), sy = (int)lround(out->dy), side = ctx->w < ctx->h ? ctx->w : ctx->h;
    int worth = abs(sx) >= 1 + side / 100 || abs(sy) >= 1 + side / 100;
    int x0, y0, x1, y1;
    shared_region(ctx, pl, sx, sy, &x0, &y0, &x1, &y1);
    if (!may_overlap || !worth || out->psr < ctx->p.min_psr || x1 - x0 < 8 || y1 - y0 < 8) {
        pc_refine(pc, upsample, out);
        pc_match_quality(pc, pc->spec_ref, pc->ref_energy, out);
        return;
    }
    /* The parts in frame coordinates, and in the images' own (frame - place origin + roi origin). */
    placement ref_part = {x0, y0, x1 - x0, y1 - y0, x0, y0};
    placement mov_part = {x0 + sx - pl->at_x + pl->roi_x, y0 + sy - pl->at_y + pl->roi_y, x1 - x0, y1 - y0,
                          x0 + sx, y0 + sy};
    /* The reference's part is transformed again only when it changed (a new reference, a new integer shift or a
     * similarity round that used spec_alt): a live stream with a steady shift reuses it. */
    if (memcmp(&ref_part, &ctx->alt_key, sizeof ref_part) != 0) {
        reg_view rv = {.data = ctx->ref_placed, .width = ctx->w, .height = ctx->h};
        frame_load(&rv, &ref_part, &ctx->p, 0, 0, pc->real, ctx->w, ctx->h, ctx->wx, ctx->wy);
        pc_transform_into(pc, ctx->spec_alt, &ctx->alt_energy);
        ctx->alt_key = ref_part;
    }
    load_moving(ctx, v, &mov_part, out->dx - sx, out->dy - sy);
    /* The first pass found the peak to a quarter pixel; the windows moved by less than that, so the refinement
     * continues around it from the new cross spectrum, without another inverse FFT and peak search. The peak-to-
     * side-lobe ratio stays the first pass's. */
    pc_refine_against(pc, ctx->spec_alt, upsample, out);
    pc_match_quality(pc, ctx->spec_alt, ctx->alt_energy, out);
}

void result_fill(const reg_ctx *ctx, const placement *moving_pl, double angle_deg, double scale, double tx,
                 double ty, const pc_peak *peak, double error_px, int converged, reg_result *out)
{
    /* Frame = image - roi origin + place origin, for both images; see the derivation in register.h's model:
     * t_image = t_frame + (ref offset) - (moving offset), c = frame centre - ref offset. */
    double ref_dx = ctx->ref_pl.at_x - ctx->ref_pl.roi_x, ref_dy = ctx->ref_pl.at_y - ctx->ref_pl.roi_y;
    double mov_dx = moving_pl->at_x - moving_pl->roi_x, mov_dy = moving_pl->at_y - moving_pl->roi_y;
    memset(out, 0, sizeof *out);
    out->angle_deg = angle_deg;
    out->scale = scale;
    out->center_x = (ctx->w - 1) / 2.0 - ref_dx;
    out->center_y = (ctx->h - 1) / 2.0 - ref_dy;
    out->shift_x = tx + ref_dx - mov_dx;
    out->shift_y = ty + ref_dy - mov_dy;
    if (ctx->p.pixel_size > 0) {
        out->shift_x_um = out->shift_x * ctx->p.pixel_size;
        out->shift_y_um = out->shift_y * ctx->p.pixel_size;
    }
    out->correlation = peak->correlation;
    out->error = peak->error;
    out->phasediff = peak->phasediff;
    out->peak = peak->peak;
    out->psr = peak->psr;
    out->error_px = error_px;
    out->converged = converged;
    double corr = ctx->p.contrast_invariant ? fabs(peak->correlation) : peak->correlation;
    out->confident = converged && error_px <= ctx->p.max_error && peak->psr >= ctx->p.min_psr &&
                     corr >= ctx->p.min_correlation;
}
