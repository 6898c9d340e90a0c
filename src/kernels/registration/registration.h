/* registration.h -- DFT image registration: subpixel translation by phase correlation (Guizar-Sicairos et al.,
 * Opt. Lett. 33, 156 (2008)), rotation and scale from log-polar magnitude spectra, and stack alignment.
 *
 * Model. A context (reg_ctx) is made once per frame size and parameter set: it owns the FFTW plans and every
 * buffer, so registering a frame allocates nothing. reg_set_reference() stores the reference's spectrum;
 * reg_translate() / reg_similarity() then register any number of moving images against it. A context is not
 * shared: one thread (e.g. the IOC's analysis thread) owns it and calls everything on it; different contexts may
 * be used from different threads at once (plan creation is serialized internally).
 *
 * Conventions. Images are float, row-major, x fastest. Results describe where the reference's content is in the
 * moving image:  moving(A (p - c) + c + t) = reference(p),  A = scale * R(angle),  with p and t in pixels
 * (x right, y down), angle in degrees counter-clockwise on screen (as scipy.ndimage.rotate and
 * skimage.transform.rotate turn content): A = scale * [[cos, sin], [-sin, cos]] acting on (x, y); c is the centre
 * of the analysis frame expressed in reference-image pixels (reg_result.center_x/y).
 * A pure translation is shift = t: content that moved by +t.  scikit-image's phase_cross_correlation(ref,
 * moving) returns -t (the shift that moves the moving image back onto the reference).
 *
 * Confidence. The verdict (confident = 1; anything else must not be used as a match) is a calibrated statement:
 * - error_px, the estimated RMS mapping error over the frame in pixels: the reference and the moving image,
 *   brought together by the result, are registered again in the four quarters of their shared region; a right
 *   result leaves residual shifts near zero, a wrong one residuals of many pixels or peaks anywhere. The
 *   residuals, fitted by a small similarity, give the error over the whole frame (verify.c). Must be at most
 *   params.max_error (default REG_DEFAULT_MAX_ERROR).
 * - similarity: the refinement converged (converged) within params.iterations rounds.
 * - psr, the peak-to-side-lobe ratio of the integer-pixel phase-correlation surface, (peak - mean) / standard
 *   deviation outside an 11x11 box around the peak, at least params.min_psr; and correlation, the normalized
 *   cross-correlation of the windowed images at the shift found (not whitened), at least params.min_correlation
 *   (REG_DEFAULT_MIN_CORRELATION; lower it for images of different modalities, whose contrast differs). Alone,
 *   these two are not enough: smooth, sparse or very noisy scenes give tall chance peaks (psr 12-30 with
 *   correlation 0.3-0.4 at a wrong angle was seen); error_px is what separates right from wrong.
 * On 80 real-image pairs across signal-to-noise ratios (tests/registration/real_pairs.py) no pair with a mapping
 * error above 1 px is confident, and most right ones (< 0.5 px) are.
 */
#ifndef RELOC_REGISTER_H
#define RELOC_REGISTER_H

#include <stddef.h>

#define REG_DEFAULT_MIN_PSR 10.0
/* A match is confident when its estimated mapping error is at most this many pixels. */
#define REG_DEFAULT_MAX_ERROR 0.5
/* Similarity refinement stops once a round moves no pixel of the frame by more than this (pixels), or after
 * REG_DEFAULT_MAX_ITERATIONS rounds without converging. */
#define REG_DEFAULT_TOLERANCE 0.01
#define REG_DEFAULT_MAX_ITERATIONS 12
#define REG_DEFAULT_MIN_CORRELATION 0.3
/* Whitening gives every frequency the same weight, and the top of the band carries mostly noise, aliasing and
 * window leakage: on smooth or noisy images it biases shifts by a tenth of a pixel. Set band_high to 0 for the
 * full band (what scikit-image's phase_cross_correlation uses). */
#define REG_DEFAULT_BAND_HIGH 0.3
/* Partial whitening (cross-power divided by |F G|^0.5) keeps the sharp peak of phase correlation while weighting
 * frequencies by how much signal they carry: on noisy frames it halves the error of full whitening (1). */
#define REG_DEFAULT_WHITENING 0.5

typedef enum { REG_WINDOW_NONE = 0, REG_WINDOW_HANN, REG_WINDOW_TUKEY } reg_window;
typedef enum { REG_PLAN_ESTIMATE = 0, REG_PLAN_MEASURE, REG_PLAN_PATIENT } reg_plan_effort;

typedef struct reg_params {
    int upsample;            /* subpixel refinement: shifts are found to 1/upsample px (1 = integer pixels) */
    reg_window window;       /* apodization applied over the region that holds data */
    double tukey_alpha;      /* fraction of the Tukey window that tapers (0 = box, 1 = Hann) */
    double whitening;        /* cross-power spectrum divided by |F G|^whitening: 1 = phase correlation, 0 = plain
                                cross-correlation, in between = partial whitening */
    double band_low;         /* spectral band-pass in cycles/pixel (radial, raised-cosine edges): frequencies */
    double band_high;        /* below band_low or above band_high are suppressed; 0 and 0.5 (or 0) = off */
    int contrast_invariant;  /* also accept a negative peak (inverted contrast); phasediff is then pi */
    int overlap_windows;     /* after a shift of more than 1 % of the frame, register again with both images
                                windowed over their common part: a window fixed to the frame pulls shifts toward
                                zero (a few hundredths of a pixel at 10 % of the frame) */
    double min_psr;          /* confidence thresholds (see Confidence above) */
    double min_correlation;
    double pixel_size;       /* micrometres per reference pixel (0 = unknown: no stage-unit outputs) */
    int iterations;          /* similarity: at most this many refinement rounds of rotation/scale (>= 1) */
    double tolerance;        /* similarity: rounds stop once the last one moved no pixel by more than this
                                (pixels; never finer than the translation lattice, sqrt(2) / upsample) */
    double max_error;        /* confident only when the estimated mapping error is at most this (pixels) */
    int threads;             /* FFTW threads of one registration, and above 1 a helper thread for half of the
                                verification quarters; workers over frames in reg_align_stack */
    reg_plan_effort effort;  /* FFTW planning rigour; MEASURE (default) and PATIENT plans are slow to make the
                                first time and then come from the wisdom file */
} reg_params;

/* Fills p with the defaults: upsample 100, Hann window, Tukey alpha 0.25, whitening REG_DEFAULT_WHITENING,
 * band 0 to REG_DEFAULT_BAND_HIGH, overlap windows on, min_psr REG_DEFAULT_MIN_PSR, min_correlation
 * REG_DEFAULT_MIN_CORRELATION, max_error REG_DEFAULT_MAX_ERROR, at most REG_DEFAULT_MAX_ITERATIONS similarity rounds
 * with tolerance REG_DEFAULT_TOLERANCE, 1 thread, FFTW_MEASURE plans (kept as wisdom). */
void reg_params_default(reg_params *p);
/* Returns 0 when p is usable, else -1 with the reason in err. */
int reg_params_check(const reg_params *p, char *err, size_t errlen);
/* Sets one parameter by name: upsample, window (hann|tukey|none), tukey-alpha, whitening, band-low, band-high,
 * contrast-invariant (0|1), overlap-windows (0|1), min-psr, min-correlation, max-error, pixel-size, iterations,
 * tolerance, threads,
 * effort (estimate|measure|patient).
 * Returns 0, or -1 with a message (unknown name, malformed or out-of-range value; p is then invalid). */
int reg_params_set(reg_params *p, const char *name, const char *value, char *err, size_t errlen);

/* An image to register, and the part of it that holds usable data. roi_w == 0 or roi_h == 0: the whole image.
 * The ROI is centred in the analysis frame and the rest of the frame is padding, so a moving image that covers
 * only part of the reference (or the reverse) is registered with the data it has. */
typedef struct reg_view {
    const float *data;
    int width, height;
    int stride;              /* samples between rows (0 = width) */
    int roi_x, roi_y, roi_w, roi_h;
} reg_view;

typedef struct reg_result {
    double shift_x, shift_y;     /* t, pixels (see Conventions) */
    double shift_x_um, shift_y_um; /* t * pixel_size when pixel_size > 0, else 0 */
    double angle_deg;            /* 0 for translation-only registration */
    double scale;                /* 1 for translation-only registration */
    double center_x, center_y;   /* c, in reference pixels */
    double correlation;          /* normalized cross-correlation r_fg / sqrt(E_f E_g) at the shift, -1..1 */
    double error;                /* normalized RMS registration error sqrt(1 - correlation^2), 0..1 */
    double phasediff;            /* phase of the correlation peak: 0, or pi for a contrast-inverted match */
    double peak;                 /* height of the normalized correlation peak (1 = identical up to the shift) */
    double psr;                  /* peak-to-side-lobe ratio */
    double error_px;             /* estimated RMS mapping error over the frame, pixels (see Confidence) */
    int iterations;              /* similarity: refinement rounds run */
    int converged;               /* similarity: the last round moved no pixel by more than params.tolerance */
    int confident;               /* the verdict (see Confidence) */
} reg_result;

typedef struct reg_ctx reg_ctx;

/* Makes a context for frames of width x height with parameters p (copied). similarity != 0 also plans the
 * log-polar stage. Returns NULL with a message in err for bad sizes or parameters. */
reg_ctx *reg_create(int width, int height, const reg_params *p, int similarity, char *err, size_t errlen);
void reg_destroy(reg_ctx *ctx);
const reg_params *reg_get_params(const reg_ctx *ctx);

/* Stores the reference. Returns 0, or -1 with a message (ROI outside the image or larger than the frame). */
int reg_set_reference(reg_ctx *ctx, const reg_view *ref, char *err, size_t errlen);
/* Registers a moving image against the reference by translation only. Returns 0 or -1 with a message. */
int reg_translate(reg_ctx *ctx, const reg_view *moving, reg_result *out, char *err, size_t errlen);
/* Registers by rotation, scale and translation (context made with similarity != 0). Rotation is found modulo
 * 360 degrees; scale within about 0.5-2 (beyond that, resample first with reg_resample and known pixel sizes).
 * Frames of at least 512 x 512 find rotation and scale on both regions halved (2 x 2 means; a quarter of the
 * work), then the translation and the verdict at full resolution. */
int reg_similarity(reg_ctx *ctx, const reg_view *moving, reg_result *out, char *err, size_t errlen);

/* Resamples src (w x h) by factor (> 0; output size round(w*factor) x round(h*factor) in *dw, *dh) so that
 * output pixel q covers input coordinates [q/factor, (q+1)/factor): area averaging when shrinking, bicubic
 * interpolation when enlarging. Returns a new array (free()), or NULL when the output would be empty. */
float *reg_resample(const float *src, int w, int h, double factor, int *dw, int *dh);

/* Turns a result found between a reference resampled by f_ref and a moving image resampled by f_mov (with
 * reg_resample) into the original images' pixels: centre, shift and scale change, angle and the confidence
 * figures do not (nor shift_*_um, a physical displacement). */
void reg_result_unresample(reg_result *r, double f_ref, double f_mov);

/* Warps src (w x h) into dst (dw x dh): dst(p) = src(A (p - c) + c + t) with A = scale * R(angle) (bicubic;
 * fill outside src). Used to bring a moving image onto the reference once a transform is known. */
void reg_warp(const float *src, int w, int h, float *dst, int dw, int dh, double angle_deg, double scale,
              double cx, double cy, double tx, double ty, float fill);

/* Benchmark aid: the CPU seconds one forward (r2c) and one inverse (c2r) transform of the context's frame take,
 * averaged over repeat runs: the floor under any registration of a frame against a stored reference. Leaves
 * the reference untouched. */
double reg_transform_floor(reg_ctx *ctx, int repeat);
/* Benchmark aid: the CPU seconds the context's translation registrations have spent inside FFTW since it was
 * made (the frame's transforms, the overlap pass's, the verdict's quarters), each charged to the thread that ran
 * it; with params.threads > 1 FFTW's worker threads are not counted. The difference over a run is the FFT share
 * of its time. Call between registrations. */
double reg_fft_seconds(const reg_ctx *ctx);

/* Edge map for contrast-robust matching (edges.c): dst (w x h) = |gradient| of src smoothed by a Gaussian of
 * sigma pixels (central differences, borders repeated). The map drops the grey levels and the sign of the
 * contrast and keeps where the edges are. Returns 0, or -1 for sizes below 3 x 3 or sigma outside [0, 64]. */
int reg_edge_map(const float *src, int w, int h, double sigma, float *dst);

/* FFTW wisdom (measured plans kept across runs; see fft_plans.c). By default it lives in $RELOC_FFTW_WISDOM, else
 * $XDG_CACHE_HOME/reloc/fftw-wisdom, else $HOME/.cache/reloc/fftw-wisdom, is read before the first measured plan
 * and rewritten whenever a plan had to be measured. reg_wisdom_load() reads path instead and makes it the file
 * new plans are saved to; reg_wisdom_save() writes the wisdom to path. Both return 0 or -1. reg_wisdom_path():
 * the file in use ("" when there is none). */
int reg_wisdom_load(const char *path);
int reg_wisdom_save(const char *path);
const char *reg_wisdom_path(void);

/* Stack alignment: frames (count of width x height, frame k at data + k*width*height) are registered by
 * translation to frame ref_index (neighbours == 0) or each to its neighbour toward ref_index with the shifts
 * accumulated (neighbours != 0). scale (may be NULL) gives each frame's pixel size relative to the reference
 * frame's (e.g. from energy): frames are first resampled to the reference pixel size. Results go to
 * results[count]; aligned (may be NULL, count*width*height) receives each frame moved onto the reference grid
 * (filled with the frame's mean where it has no data). Frames are registered by p->threads workers at once;
 * progress (may be NULL) is called from them, one call at a time.
 * Returns 0 or -1 with a message. */
int reg_align_stack(const float *frames, int width, int height, int count, int ref_index, int neighbours,
                    const double *scale, const reg_params *p, reg_result *results, float *aligned,
                    void (*progress)(int done, int total, void *arg), void *progress_arg, char *err,
                    size_t errlen);

#endif
