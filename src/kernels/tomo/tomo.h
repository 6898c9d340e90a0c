/* tomo.h -- quantitative EDS-STEM tomography and HAADF-EDS bimodal tomography (HEBT) of 2D slices and slice
 * series, after Yuan et al., "Extraction of 3D quantitative maps using EDS-STEM tomography and HAADF-EDS bimodal
 * tomography", Ultramicroscopy 2020 (doi 10.1016/j.ultramic.2020.113166).
 *
 * Geometry (parallel beam, one slice perpendicular to the tilt axis): the slice is n x n square pixels of size
 * 1, row-major, row 0 at the top; pixel (row i, column j) has its centre at x = j - c, y = c - i with
 * c = floor(n / 2). A projection at tilt angle theta (degrees) has n_det beam positions (detector bins) at
 * s_k = (k - floor(n_det / 2)) * det_spacing + centre_offset; the beam at s_k integrates the slice along the
 * line x cos(theta) + y sin(theta) = s_k. So the rotation axis passes through the centre of pixel floor(n/2)
 * and of bin floor(n_det/2) for odd and even sizes alike: scikit-image's radon()/iradon() convention (and
 * tomopy's default centre n_det/2); for odd sizes it is the middle pixel. Sinograms are n_angles x n_det,
 * angle-major.
 *
 * Projector: Joseph's ray-driven method (linear interpolation between the two pixels a ray crosses in each row,
 * or column for rays closer to horizontal, times the path length per row); the back-projector applies exactly
 * the transposed weights, so <W x, y> = <x, W^T y> to rounding.
 *
 * Reconstruction: ordered-subsets SART (OS-SART; Wang and Jiang's ordered-subset simultaneous algebraic
 * reconstruction, SIRT when there is one subset). The angles, sorted over [0, 180) degrees, are dealt out in
 * turn to S subsets (so each spans the whole range), visited in golden-ratio order; per subset s,
 * x <- max(0, x + lambda C_s A_s^T R_s (b_s - A_s x)) with R_s and C_s the inverse row and column sums of the
 * subset's rows of the system matrix A (rows or columns with zero sum are left out), x starting at 0. One pass
 * (iteration) visits every subset once, so it costs one projection and one back-projection of the data, as a
 * SIRT iteration does, but updates S times. Non-negativity is optional; lambda is the relaxation (default 1).
 * Residual: |b - A x| / |b| of the estimate after a pass, exact: all angles projected once more (in the order
 * the subsets visit them, so the next pass's first subset reuses its part; with one subset, SIRT, it costs
 * nothing). It is measured after every pass when a stopping rule is on, else, when progress is set, only every
 * residual_every passes and after the last (tomoalign's fixed passes pay nothing). Stopping rules (either ends a slice's passes; both may be
 * on): the discrepancy rule, when the data are Poisson counts of known scale (value b = counts / counts_per_unit):
 * stop after the first pass whose residual is at or below the noise level sqrt(sum max(b, 0) / counts_per_unit)
 * / |b| (the expected |noise| / |b|: fitting further fits the noise); the drop rule: stop after a pass (the second
 * or later) whose residual fell by less than tolerance times the previous pass's (the data are explained as well
 * as this method can: noise or inconsistency remains); and a residual of 0 ends it. A slice that reaches
 * `iterations` passes with a rule on and none met has not converged, which its last progress call says
 * (TOMO_STOP_LIMIT).
 *
 * EDS-STEM tomography: every element's sinogram is reconstructed on its own (A = W); quantification (Eq. 12):
 * C_A = (X_A / f_A) / sum_B (X_B / f_B), with f_A the user's sensitivity factors.
 *
 * HEBT, our reading of the method (the choices the paper does not pin down are noted):
 * - Model: the HAADF projection is a linear combination of the elements' EDS projections, p_H = sum_A r_A p_A
 *   (HAADF grows with the mass thickness of each element, as EDS does). The response-ratio factors r_A are the
 *   least-squares fit over all sinogram samples, without intercept (vacuum gives no signal in either), and
 *   constrained to r_A >= 0 (active set: elements whose unconstrained factor is negative are dropped and the
 *   rest refitted); R^2 = 1 - RSS / TSS about the mean HAADF value.
 * - Joint system (Eq. 17) with HAADF weight alpha in [0, 1]: rows alpha * (sum_A r_A W x_A) = alpha * p_H and
 *   (1 - alpha) * W x_A = (1 - alpha) * p_A for every element, solved for all x_A at once by the same SIRT.
 *   alpha = 0 is EDS-only tomography; alpha = 1 leaves the elements undetermined apart from the HAADF sum.
 *   The HAADF rows are divided by sum_A r_A first, so both blocks are in EDS units and alpha alone sets their
 *   balance whatever the detectors' gains.
 *   The unknowns x_A are in EDS units; y_A = r_A x_A is element A's share of the HAADF tomogram.
 * - Quantification (Eq. 18): C_A = (y_A / z_A) / sum_B (y_B / z_B) with z_A = r_A f_A, which equals Eq. 12
 *   applied to x_A.
 * - Particle threshold: before normalization, pixels whose signal S = sum_A (X_A / f_A) is at or below the
 *   threshold are outside the particle (fractions NaN). The threshold is given, or found by the edge-spread-
 *   function method: the particle boundary is where the edge-spread function rises fastest (the peak of the
 *   line-spread function), halfway between background and particle for a symmetric blur. The boundary is found
 *   as the ridge of the gradient magnitude of S smoothed by a Gaussian of sigma 1.5 pixels (central
 *   differences, non-maximum suppression along the gradient, ridge points at least half as strong as the
 *   strongest in their slice), and the threshold is the median of smoothed S on it, pooled over all slices.
 * - Metrics against a reference image r (Eq. 19-22), from the statistics of the whole image (one window): the
 *   SSIM luminance l = (2 mu_x mu_r + C1)/(mu_x^2 + mu_r^2 + C1), contrast c = (2 s_x s_r + C2)/(s_x^2 + s_r^2
 *   + C2), structure s = (s_xr + C3)/(s_x s_r + C3), C1 = (0.01 L)^2, C2 = (0.03 L)^2, C3 = C2 / 2, L the
 *   reference's range, (co)variances with n - 1; and the MSE after scaling x by the factor a = <x, r>/<x, x>
 *   that minimizes it. Luminance and contrast compare absolute levels, so they mean something only when x and
 *   r share units; the structure term and the scaled MSE do not depend on x's scale.
 *
 * Threads: tomo_reconstruct() reconstructs slices in parallel (parallel.h); each worker owns the slice it
 * works on and its scratch buffers; the progress callback is called from worker threads and must be
 * thread-safe. Other functions are single-threaded and keep no state.
 */
#ifndef RELOC_TOMO_H
#define RELOC_TOMO_H

#include <stddef.h>

typedef struct tomo_geometry {
    int n;                     /* slice is n x n pixels */
    int n_det;                 /* beam positions per projection */
    int n_angles;
    const double *angles_deg;  /* tilt angles, degrees, n_angles of them */
    double det_spacing;        /* distance between beam positions, in pixels (1 when 0) */
    double centre_offset;      /* position of the rotation axis on the detector, in pixels */
} tomo_geometry;

/* Why a slice's passes ended (the progress call of its last pass), or TOMO_STOP_NONE (more passes follow). */
enum {
    TOMO_STOP_NONE = 0,
    TOMO_STOP_FALLING,         /* the drop rule held (or the residual is 0): converged */
    TOMO_STOP_NOISE,           /* the residual reached the noise level (discrepancy rule): converged */
    TOMO_STOP_LIMIT,           /* `iterations` passes with a rule on and none met: not converged */
    TOMO_STOP_PASSES,          /* `iterations` passes, no rule asked for */
};
/* Called after every pass of every slice, from worker threads; residual = |b - A x| / |b| (see above; NaN when
 * not measured after this pass); stop is TOMO_STOP_NONE, or on the slice's last pass why it ended. */
typedef void (*tomo_progress_fn)(void *user, int slice, int n_slices, int iteration, int iterations,
                                 double residual, int stop);

typedef struct tomo_params {
    int iterations;            /* passes at most; default 100 */
    int subsets;               /* ordered subsets, 1..n_angles; 1 (default): SIRT */
    double tolerance;          /* drop rule: stop when a pass lowers the residual by less than this fraction; 0: off */
    double counts_per_unit;    /* discrepancy rule: the data are Poisson counts / this; 0 (default): off */
    int residual_every;        /* without a rule, measure the residual every this many passes too; 0: last only */
    double relaxation;         /* default 1 */
    int nonneg;                /* default 1 */
    double alpha;              /* HAADF weight of HEBT; 0: EDS-only */
    int threads;               /* 0: one per online CPU */
    tomo_progress_fn progress;
    void *progress_user;
} tomo_params;

typedef struct tomo_metrics {
    double luminance, contrast, structure, ssim;
    double scale;              /* a minimizing |a x - r|^2 */
    double mse_scaled;         /* mean (a x - r)^2 */
} tomo_metrics;

void tomo_params_default(tomo_params *p);
/* Checks sizes, angles and parameters; returns 0 or -1 with a message. */
int tomo_geometry_check(const tomo_geometry *g, char *err, size_t errlen);

/* sino (n_angles x n_det) = W slice (n x n); overwrites sino. */
void tomo_project(const tomo_geometry *g, const float *slice, float *sino);
/* slice (n x n) = W^T sino; overwrites slice. */
void tomo_backproject(const tomo_geometry *g, const float *sino, float *slice);

/* Batches of slices: B slices projected together, their values interleaved slice-innermost (slice z of pixel
 * (i, j) at [(i n + j) B + z], of ray (a, k) at [(a n_det + k) B + z]); each ray's samples and weights are worked
 * out once for the B slices. Any B >= 1 works; 1, 4, 8 and 16 have loops of their own (vectorized). */
#define TOMO_BATCH_MAX 16
/* The most memory the scratch of all workers' batches may take together (256 MiB): at n = 1024 (180 angles, two
 * elements) a slice of a reconstruction batch needs ~17 MB, so 16-slice batches on two workers would take 0.55 GB. */
#define TOMO_SCRATCH_BUDGET ((size_t)256 << 20)
/* The batch (1, 4, 8 or TOMO_BATCH_MAX) for n_slices slices on `workers` workers that ends soonest: large batches
 * cost less per slice, but must not leave workers idle or be mostly padding. slice_bytes is the scratch a worker
 * needs per slice of its batch: a batch whose workers' scratch would exceed TOMO_SCRATCH_BUDGET is not chosen
 * (batch 1 always may be: it is what one slice needs). The batch changes no result (tomo_reconstruct). */
int tomo_batch_size(int n_slices, int workers, size_t slice_bytes);
void tomo_project_batch(const tomo_geometry *g, int batch, const float *slices, float *sino);
void tomo_backproject_batch(const tomo_geometry *g, int batch, const float *sino, float *slices);
/* slices (used slices of count values, one after the other) into block (count x batch, slice innermost), the
 * slices from used to batch zero; and back. */
void tomo_interleave(const float *slices, size_t count, int used, int batch, float *block);
void tomo_deinterleave(const float *block, size_t count, int used, int batch, float *slices);
/* sinos (n_slices x n_angles x n_det) = W slices (n_slices x n x n), batches of slices in parallel on `threads`
 * workers (0: one per online CPU). */
void tomo_project_slices(const tomo_geometry *g, int n_slices, const float *slices, float *sinos, int threads);

/* Scratch a worker of tomo_reconstruct needs per slice of its batch, in bytes (n_el elements). */
size_t tomo_reconstruct_slice_bytes(const tomo_geometry *g, int n_el);
/* Reconstructs n_slices slices of n_el elements. eds[e] holds element e's sinograms, slice after slice
 * (n_slices x n_angles x n_det). With haadf (same layout) and p->alpha > 0 the joint HEBT system is solved with
 * the factors r (n_el); otherwise each element alone (haadf and r may be NULL). out[e] receives n_slices x n x n
 * values in EDS units (x_A). Returns 0, or -1 with a message. */
int tomo_reconstruct(const tomo_geometry *g, int n_slices, int n_el, const float *const *eds, const float *haadf,
                     const double *r, const tomo_params *p, float *const *out, char *err, size_t errlen);

/* Fits haadf ~ sum_e r[e] eds[e] over count samples (see above); writes r (n_el) and *r2. Returns 0, or -1
 * with a message (no signal, singular system). */
int tomo_fit_response(size_t count, int n_el, const float *haadf, const float *const *eds, double *r, double *r2,
                      char *err, size_t errlen);

/* S = sum_e maps[e] / factor[e] per pixel, into signal (count values). */
void tomo_total_signal(size_t count, int n_el, const float *const *maps, const double *factor, float *signal);
/* The edge-spread-function threshold of n_slices slices of n x n signal values (see above); NaN when the
 * slices hold no edge. */
double tomo_esf_threshold(const float *signal, int n_slices, int n);
/* fractions[e] = (maps[e] / factor[e]) / S where S > threshold, else NaN; mask = 1 inside. Returns the number
 * of pixels inside. */
size_t tomo_quantify(size_t count, int n_el, const float *const *maps, const double *factor, double threshold,
                     float *const *fractions, unsigned char *mask);

/* Metrics of x against the reference r over count pixels (only where mask is 1, when mask is not NULL). */
void tomo_compare(size_t count, const float *x, const float *r, const unsigned char *mask, tomo_metrics *m);

/* ---- The projection shifts of a 3D translation of the object (gauge.c) ----
 * In a parallel-beam series, moving the object by a 3D vector moves its projection at angle theta by
 * x = c + a cos(theta) + b sin(theta) (c = 0 for a pure translation; an axis off the detector centre adds to c)
 * and y = d. tomo_fit_translation fits k = {c, a, b, d} by least squares to the shifts (x, y) of the n angles
 * whose skip is 0 (all when skip is NULL); returns 0, or -1 when the angles cannot tell the sinusoid from a
 * constant (then a = b = 0 and c is the mean) or none is used (all 0). */
int tomo_fit_translation(int n, const double *angles_deg, const double *x, const double *y,
                         const unsigned char *skip, double k[4]);
/* x of the fitted model at angle_deg. */
double tomo_translation_x(const double k[4], double angle_deg);

/* ---- Jitter correction of a projection series by iterative reprojection (align.c) ----
 *
 * Projections (n_angles x ny x nx, x fastest; linear quantities such as absorbance -ln(I/I0), zero outside the
 * object) of a parallel-beam series whose rows run perpendicular to the rotation axis (slice y of the volume is
 * row y of every projection) each moved by an unknown shift (jitter; content moved by +shift, pixels) and the
 * rotation axis off the detector centre by an unknown offset. After Guersoy et al., J. Synchrotron Rad. 24 (2017)
 * 1042 ("joint" iterative reprojection), starting from each projection's centre of mass (line integrals keep
 * the mass, so it follows the jitter), per iteration: shift every projection back by its current estimate,
 * reconstruct all slices (OS-SART above, slices in parallel), reproject, and register each original projection
 * to its reprojection by translation (the registration kernel, subpixel), which gives the new absolute estimate.
 * Constraints: shifts that move a reconstruction as a whole are not determined by the data (horizontal
 * a cos(theta) + b sin(theta), vertical a constant), so they are removed each iteration: the horizontal shifts
 * are fitted by c + a cos + b sin and a cos + b sin taken away, the vertical ones have their mean taken away.
 * c, a common horizontal shift, is the rotation axis offset (reported). Stops when no shift changed by more than
 * tolerance px (default 0.05) in an iteration (converged) or after max_iterations (not converged, said so).
 * Residual per projection: |aligned - reprojection| / |reprojection|. A projection whose residual lies above
 * median + outlier_mads * 1.4826 MAD of all residuals is flagged an outlier and left out of the next
 * reconstructions (its shift is still estimated). The registration's confidence is counted, not used: smooth
 * projections of a blob-like particle give right answers with a low peak-to-side-lobe ratio.
 * Threads: the slices of a reconstruction and the registrations run on p->threads workers (one registration
 * context each); progress is called from the calling thread only. */
/* Relative residual above which a series is not explained by its reconstruction: aligned real objects leave
 * 0.05-0.2 (noise, the reconstruction's blur); noise leaves about 1. */
#define TOMO_ALIGN_MAX_RESIDUAL 0.5

typedef struct tomo_align_params {
    int max_iterations;        /* default 20 */
    double tolerance;          /* px; default 0.01 */
    int passes, subsets;       /* OS-SART per reconstruction; default 3 passes of 10 subsets */
    double outlier_mads;       /* default 6 */
    int threads;               /* 0: one per online CPU */
    void (*progress)(void *user, int iteration, double max_update, double mean_residual);
    void *progress_user;
} tomo_align_params;

typedef struct tomo_align_result {
    int n_angles;
    double *shift_x, *shift_y; /* per projection, px: content moved by +shift (axis offset included in x) */
    double *residual;          /* per projection, after the last iteration */
    unsigned char *outlier;    /* per projection */
    int n_outliers;
    int n_unconfident;         /* registrations not confident in the last iteration */
    double median_residual;    /* of the last iteration */
    int failed;                /* the median residual is above TOMO_ALIGN_MAX_RESIDUAL: the reprojections do not
                                  explain the projections (noise, no object); the shifts must not be used */
    double axis_offset;        /* px, rotation axis position right of the detector centre (bin nx / 2) */
    int iterations, converged;
    double *max_update;        /* per iteration: largest shift change, px */
} tomo_align_result;

void tomo_align_params_default(tomo_align_params *p);
/* Aligns proj (see above); aligned (may be NULL) receives the shifted projections, volume (may be NULL, ny x nx x
 * nx) the last reconstruction. Returns 0, or -1 with a message (sizes, angles, parameters). */
int tomo_align_jitter(const float *proj, int n_angles, int ny, int nx, const double *angles_deg,
                      const tomo_align_params *p, tomo_align_result *r, float *aligned, float *volume, char *err,
                      size_t errlen);
void tomo_align_result_free(tomo_align_result *r);

/* ---- Registration of whole tomograms across energies (energies.c) ----
 *
 * Two projection series of one object at two energies, each already aligned on its own (tomo_align_jitter: the
 * jitter is gone and the rotation axis sits on bin nx / 2 of both), differ by the detector's magnification
 * (pixel size ~ energy), by contrast (below and above an absorption edge the grains change, the outline stays),
 * and by a 3D translation of the object: what the jitter alignment of each series leaves free. A 3D translation
 * moves the projection at angle theta by x(theta) = c + a cos(theta) + b sin(theta), y(theta) = d (c is 0 for
 * series aligned on the same axis, kept for series that are not). So the moving series is registered angle by
 * angle to the reference (each projection scaled about the detector centre (nx / 2, ny / 2) by m, the reference's
 * pixel size over the moving one's, then translated by the registration kernel), and the per-angle shifts are
 * fitted by that model, robustly (angles further than max(3 x 1.4826 MAD, 0.5 px) from the fit are left out and
 * the fit repeated): 4 numbers from every angle instead of 2 per angle, which averages the noise of single
 * matches away and holds the series together.
 * Matching: TOMO_MATCH_EDGES registers the gradient magnitude of the projections smoothed by a Gaussian of
 * edge_sigma px (reg_edge_map), which keeps the outline and the grain boundaries and drops the grey levels that
 * change across an edge; TOMO_MATCH_INTENSITY registers the projections themselves (plain phase correlation).
 * Magnification: m comes from the given pixel sizes; with fit_magnification it is also fitted (the m within
 * +-magnification_range of the nominal one that maximizes the mean correlation of the matches over a subset of
 * angles: a 1 % grid, then golden-section search) and used instead of the nominal one when they differ by more
 * than magnification_tolerance (relative): the given pixel sizes are then off, which the result says.
 * Quality: rms_px, the scatter of the per-angle matches about the fit (px of the reference); error_px, the
 * estimated RMS error of the fitted shift over the angles, sqrt((3 rms_x^2 + rms_y^2) / n_used) (3 parameters in
 * x, 1 in y), error_nm = error_px times the reference pixel size; confidence, the fraction of angles the fit
 * kept; correlation, the median correlation of the matches. This error estimate holds for errors that vary from
 * angle to angle; a bias common to all angles (a contrast change that moves every edge) it cannot see, which is
 * why the matching is measured against the simulator's truth (tests/tomo). The energy fails (failed = 1, with the
 * reason in why; the shifts must not be used) when fewer than half of the angles are kept, rms_px exceeds
 * max_rms, or the median correlation is below min_correlation: a series of noise gives scattered matches.
 * Threads: angles are matched on p->threads workers, one registration context each; single call, no state. */
typedef enum { TOMO_MATCH_EDGES = 0, TOMO_MATCH_INTENSITY } tomo_match;

typedef struct tomo_energy_params {
    tomo_match match;              /* default TOMO_MATCH_EDGES */
    double edge_sigma;             /* px; default 1 */
    int fit_magnification;         /* default 1 */
    double magnification_range;    /* relative; default 0.1 */
    double magnification_tolerance;/* relative; default 0.005: on the simulator the fit is off by 0.4 % at 64 px,
                                      0.2 % at 128 px (about 0.07 px at the particle edge) */
    double max_rms;                /* px; default 1 */
    double min_correlation;        /* default 0.2 */
    int threads;                   /* 0: one per online CPU */
} tomo_energy_params;

typedef struct tomo_energy_result {
    int n_angles;
    double magnification_nominal;  /* reference pixel size / moving pixel size, as given */
    double magnification_fitted;   /* NaN when not fitted */
    double magnification;          /* used */
    int pixel_size_off;            /* the fitted magnification was used: the given pixel sizes are off */
    double c, a, b, d;             /* the fitted model, reference px */
    double *shift_x, *shift_y;     /* per angle: the model, reference px (content of the moving series, scaled,
                                      moved by +shift relative to the reference) */
    double *match_x, *match_y;     /* per angle: the single matches, reference px */
    unsigned char *used;           /* per angle: kept by the robust fit */
    double rms_px, error_px, confidence, correlation;
    int failed;
    char why[128];
} tomo_energy_result;

void tomo_energy_params_default(tomo_energy_params *p);
/* Registers the series mov to ref (both n_angles x ny x nx, the same angles in degrees) with nominal
 * magnification m_nominal (reference pixel size / moving pixel size; 1 when they are equal). registered (may be
 * NULL, n_angles x ny x nx) receives mov on the reference grid (scaled and shifted by the model; 0 outside).
 * Returns 0 (a failed registration included: see r->failed), or -1 with a message (sizes, parameters). */
int tomo_register_energy(const float *ref, const float *mov, int n_angles, int ny, int nx, const double *angles_deg,
                         double m_nominal, const tomo_energy_params *p, tomo_energy_result *r, float *registered,
                         char *err, size_t errlen);
void tomo_energy_result_free(tomo_energy_result *r);

#endif
