/* registration_internal.h -- what the files of src/kernels/registration share and nobody else sees: the phase-correlation
 * engine for one frame size (pc_core), frame preparation (windows, ROI placement), the FFTW planner lock and
 * the log-polar stage of similarity registration. */
#ifndef RELOC_REGISTER_INTERNAL_H
#define RELOC_REGISTER_INTERNAL_H

#include <complex.h>
#include <fftw3.h>

#include "kernels/registration/registration.h"

/* Largest side of the region evaluated by one level of subpixel refinement (2 * REFINE_RATIO + 1 points). */
#define REFINE_RATIO 4
#define REFINE_MAX (2 * REFINE_RATIO + 3)

/* Interpolation (bicubic) reproduces frequencies up to about 0.3 cycles/pixel faithfully; above that its errors,
 * equalized by whitening, bias the translation of warped images by a tenth of a pixel. Translations measured on
 * warped images use at most this band. */
#define WARPED_BAND_HIGH 0.3

/* fft_plans.c: FFTW's planner is not thread-safe; every plan creation/destruction and wisdom call takes this. */
void plans_lock(void);
void plans_unlock(void);
/* Makes the r2c/c2r pair for w x h under the lock, with threads and effort from p. Returns 0 or -1. */
int plans_make(int w, int h, const reg_params *p, float *real, fftwf_complex *spec, fftwf_plan *fwd,
               fftwf_plan *inv);
void plans_destroy(fftwf_plan plan);

/* resample.c: reg_warp on up to threads threads (bands of rows). */
void warp_threads(const float *src, int w, int h, float *dst, int dw, int dh, double angle_deg, double scale,
                  double cx, double cy, double tx, double ty, float fill, int threads);
/* The same, writing only the pixels of dst within clip_r of (clip_x, clip_y) (all when clip_r <= 0). */
void warp_clipped(const float *src, int w, int h, float *dst, int dw, int dh, double angle_deg, double scale,
                  double cx, double cy, double tx, double ty, float fill, int threads, double clip_x,
                  double clip_y, double clip_r);
/* dst (w/2 x h/2, rounded down) = the means of the 2 x 2 blocks of src (w x h, rows stride floats apart): output
 * pixel q covers input pixels 2q and 2q + 1, its centre sits at input coordinate 2q + 1/2. */
void decimate_half(const float *src, int w, int h, size_t stride, float *dst);

/* window.c */
/* The window over n samples, its centre moved by shift samples (zero where it leaves 0..n-1). */
void window_1d(reg_window kind, double tukey_alpha, int n, double shift, float *out);
/* Radial raised-cosine band-pass over the half spectrum (h x (w/2+1)); NULL-free: returns 0 and leaves band
 * untouched when the band is off (band_low <= 0 and band_high is 0 or >= 0.5). */
int band_filter(int w, int h, double band_low, double band_high, float *band);

/* Where a view's ROI sits in the frame. Frame coordinate = image coordinate - roi origin + place origin. */
typedef struct placement {
    int roi_x, roi_y, w, h;      /* ROI in the image */
    int at_x, at_y;              /* its top-left corner in the frame */
} placement;

int placement_of(const reg_view *v, int frame_w, int frame_h, placement *pl, char *err, size_t errlen);
/* Writes (v - weighted mean) * window into frame (frame_w x frame_h; zero outside the ROI), the window of
 * p->window over the ROI moved by (shift_x, shift_y) pixels. wx, wy: scratch of frame_w and frame_h floats. */
void frame_load(const reg_view *v, const placement *pl, const reg_params *p, double shift_x, double shift_y,
                float *frame, int frame_w, int frame_h, float *wx, float *wy);
/* Writes (data - weighted mean) * disc window into frame (w x h): a radial Hann window of radius r about
 * (cx, cy), for rotated content, whose valid region is a rotated rectangle that always contains such a disc. */
void frame_load_disc(const float *data, int w, int h, double cx, double cy, double r, float *frame);
/* Its parts, for many images under one disc: the window alone (zero outside), and data under a window made so
 * (frame may be win itself). */
void disc_window(int w, int h, double cx, double cy, double r, float *win);
void frame_apply_disc(const float *data, int w, int h, double cx, double cy, double r, const float *win,
                      float *frame);
/* Copies the ROI into frame unwindowed, padding with the ROI mean; returns that mean. */
float frame_place(const reg_view *v, const placement *pl, float *frame, int frame_w, int frame_h);

/* phasecorr.c: phase correlation of two real w x h arrays. */
typedef struct pc_core {
    int w, h, hw;                /* hw = w / 2 + 1 complex columns of the half spectrum */
    size_t n, nspec;
    const reg_params *p;         /* the owning context's parameters */
    float *real;                 /* w*h: FFT input, then the correlation surface */
    fftwf_complex *spec_ref;     /* reference spectrum (windowed) */
    fftwf_complex *spec;         /* moving spectrum */
    fftwf_complex *cross;        /* filtered, whitened cross-power spectrum (kept for the subpixel stage) */
    fftwf_complex *scratch;      /* c2r input (FFTW destroys it), then the unwhitened product */
    float *band;                 /* spectral filter over the half spectrum, or NULL */
    int band_rows, band_cols;    /* its support: |centred row frequency| < band_rows, column < band_cols */
    int *row_cols;               /* per row (h): its columns inside the band are below row_cols[k] */
    fftwf_plan fwd, inv;
    double ref_energy;           /* sum over the full spectrum of |F|^2 */
    float complex *ey, *ex;      /* subpixel refinement: h*REFINE_MAX, REFINE_MAX*hw */
    float *acc;                  /* 4*REFINE_MAX*hw */
    double *region;              /* REFINE_MAX^2 */
    double fft_seconds;          /* CPU seconds its transforms took, charged to the thread that owns the core */
} pc_core;

/* What phase correlation found, in frame pixels. */
typedef struct pc_peak {
    double dx, dy, peak, psr, correlation, error, phasediff;
    double value, norm;          /* raw peak value and the height of a perfect peak */
    int level;                   /* the subpixel grid reached: 1 / level pixels */
} pc_peak;

int pc_init(pc_core *pc, int w, int h, const reg_params *p, int use_band, char *err, size_t errlen);
void pc_free(pc_core *pc);
/* Sets band_rows/band_cols/row_cols from a band filter (NULL: the whole spectrum); call after replacing pc->band. */
void band_support(pc_core *pc, const float *band);
/* Transforms pc->real into spec_ref (reference != 0) or spec. */
void pc_transform(pc_core *pc, int reference);
/* Transforms pc->real into another reference spectrum out (nspec), with its energy. */
void pc_transform_into(pc_core *pc, fftwf_complex *out, double *energy);
/* Correlates spec against spec_ref (after pc_transform of both): everything in pc_peak. */
void pc_correlate(pc_core *pc, pc_peak *out);
/* The parts: the peak against a reference spectrum to 1/upsample pixel (psr, peak, phasediff), its refinement
 * continued to a finer upsample from the cross spectrum kept in pc, and the match quality (correlation, error)
 * at the peak found. */
void pc_correlate_against(pc_core *pc, const fftwf_complex *ref, int upsample, pc_peak *out);
void pc_refine(pc_core *pc, int upsample, pc_peak *out);
/* Refines a peak known to 1 / out->level pixel (out->dx, dy) against another reference spectrum ref, from the
 * cross spectrum alone (no inverse FFT); psr is left as it was. */
void pc_refine_against(pc_core *pc, const fftwf_complex *ref, int upsample, pc_peak *out);
void pc_match_quality(pc_core *pc, const fftwf_complex *ref, double ref_energy, pc_peak *out);

/* Weighted frame spectrum: columns 0 and w/2 (w even) appear once in the full spectrum, the others twice. */
static inline float half_weight(int l, int w)
{
    return (l == 0 || (w % 2 == 0 && l == w / 2)) ? 1.0f : 2.0f;
}

/* logpolar.c: log-polar transform of high-pass filtered magnitude spectra. */
typedef struct logpolar {
    int angles, radii;           /* output rows (0..180 deg) and columns (log radius) */
    double log_step;             /* natural-log radius increment per column */
    float *cos_a, *sin_a;        /* per row */
    float *rho;                  /* per column, cycles/pixel */
    float *highpass;             /* over the frame's half spectrum */
    float *radial_window;        /* per column */
    float *mag;                  /* scratch: filtered magnitude over the half spectrum */
} logpolar;

void logpolar_init(logpolar *lp, int frame_w, int frame_h);
void logpolar_free(logpolar *lp);
/* Samples |spec| * highpass (frame_w x frame_h half spectrum) into out (angles x radii), windowed along the
 * radius and with its mean removed. */
void logpolar_sample(logpolar *lp, const fftwf_complex *spec, int frame_w, int frame_h, float *out);

/* The context (see register.h). Owned by one thread; nothing in it is shared. */
struct reg_ctx {
    reg_params p;
    int w, h;
    pc_core pc;                  /* translation on the frame */
    float *wx, *wy;              /* window scratch, max(w, h) each */
    placement ref_pl;
    int have_ref;
    float *ref_placed;           /* the reference ROI in the frame, unwindowed (for overlap windows) */
    float *placed;               /* similarity: the moving ROI in the frame, unwindowed */
    fftwf_complex *spec_alt;     /* the reference's spectrum under another window (overlap, disc) */
    double alt_energy;
    placement alt_key;           /* the overlap part spec_alt was made for (w == 0: none, or the disc's) */
    int similarity;              /* the members below exist only when set */
    /* Frames with both sides at least 2 * COARSE_MIN_SIDE find rotation and scale on both images halved, in
     * coarse (its own context, which has no coarse one), and only the final translation and the verdict at full
     * resolution; coarse_ref and coarse_moving hold the halved regions. Without coarse, the log-polar members
     * below are this context's. */
    reg_ctx *coarse;
    float *coarse_ref, *coarse_moving;
    reg_params lp_params;        /* log-polar correlation: plain phase correlation, no window or band */
    logpolar lp;
    pc_core lpc;                 /* correlation of log-polar images */
    float *warped;               /* the moving image warped by the current estimate */
    float *warped_band;          /* the band filter of translations on warped images */
    float *disc_win;             /* the reference's disc window (prepare_disc), for the first pass of each probe */
    struct verifier *verifier;   /* verify.c: the quarter registrations' correlators, cached reference spectra and
                                    helper thread; NULL in a coarse context (context_make, outer == 0) */
};

/* context.c: fills out from a frame-coordinate transform found for a moving image placed as pl, with the
 * verification's estimated mapping error (error_px) and whether the iterations converged; sets the verdict. */
void result_fill(const reg_ctx *ctx, const placement *moving_pl, double angle_deg, double scale, double tx,
                 double ty, const pc_peak *peak, double error_px, int converged, reg_result *out);

/* context.c: registers the region pl of view v against the reference by translation, with the overlap-window
 * pass when overlap != 0 and the parameters ask for it. */
void translate_view(reg_ctx *ctx, const reg_view *v, const placement *pl, int overlap, pc_peak *out);

/* verify.c: the quarter registrations that check a result (see there). verify_quarters registers the reference's
 * region [x0, x1) x [y0, y1) (frame pixels), in quarters, against the same region of mv moved by (off_x, off_y)
 * pixels, where the residual shift should be (expect_x, expect_y); returns the RMS residual in pixels (INFINITY
 * when the region is too small to check). */
int verify_init(reg_ctx *ctx, char *err, size_t errlen);
void verify_free(reg_ctx *ctx);
void verify_forget_reference(reg_ctx *ctx);
/* The quarter correlators' fft_seconds, summed (call between frames: the helper is idle then). */
double verify_fft_seconds(const reg_ctx *ctx);
double verify_quarters(reg_ctx *ctx, const reg_view *mv, int off_x, int off_y, double expect_x, double expect_y,
                       int x0, int y0, int x1, int y1);

/* context.c: the region [x0, x1) x [y0, y1) of the reference's frame that the moving region pl, moved by the
 * integer shift (sx, sy), also covers. */
void shared_region(const reg_ctx *ctx, const placement *pl, int sx, int sy, int *x0, int *y0, int *x1, int *y1);

/* context.c: reg_create when outer != 0 (quarter verification, and similarity's coarse stage where the frame is
 * large enough); outer == 0 makes that coarse context itself, which neither halves nor verifies (its caller
 * estimates only: no quarter correlators, no helper thread). */
reg_ctx *context_make(int width, int height, const reg_params *p, int similarity, int outer, char *err,
                      size_t errlen);

/* similarity.c: the log-polar members of a context, or its coarse context (outer, frame large enough). */
int similarity_init(reg_ctx *ctx, int outer, char *err, size_t errlen);
void similarity_free(reg_ctx *ctx);
/* Computes the reference's log-polar spectrum from the frame spectrum in ctx->pc.spec_ref, or hands the halved
 * reference to the coarse context. Returns 0, or -1 with a message. */
int similarity_set_reference(reg_ctx *ctx, char *err, size_t errlen);

#endif
