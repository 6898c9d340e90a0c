/* xanes.h -- statistical white-line analysis of XANES image stacks (Wang et al., "Statistical White-Line
 * Analysis in High-Throughput TXM-XANES for Chemical State Quantification", Photon Science 2026,
 * doi 10.1021/photonsci.5c00020).
 *
 * A stack holds the same field of view (2D image, or 3D volume) at several X-ray energies. For every pixel or
 * voxel (or super-voxel after binning) the spectrum inside an energy window around the white line is fitted
 * with a polynomial (order 2 by default, 3 or 4 on request) and the energy of the fitted maximum is the
 * white-line energy, an indicator of the oxidation state. No background subtraction or normalization is
 * done: thickness scales a spectrum but does not move its maximum. The histogram of these energies gives the
 * mean state (centroid) and its spread; it is compared with the peak of the volume-summed spectrum fitted the
 * same way.
 *
 * Choices where the issue is silent (documented here because they change numbers):
 * - Fit: least squares on the energies t = (E - c) / s, c the mean and s the half range of the window's
 *   energies, solved by Householder QR (no normal equations), so orders 2..4 stay well conditioned at
 *   E ~ 8 keV. The window is one energy interval for all voxels, so the QR is done once per analysis and gives
 *   the pseudo-inverse: each voxel's coefficients are the pseudo-inverse times its window samples, summed as the
 *   samples are read (one pass over the stack, in double), and its residual sum of squares follows from the same
 *   pass as RSS = sum y^2 - c^T (V^T V) c (the fit is a projection), clamped at 0.
 * - Window: [window_lo, window_hi] in eV when given; otherwise centred on the highest point of the summed
 *   spectrum (sum over the mask) with half width half_width. It must hold at least order + 2 energies.
 * - Peak: the local maximum of the fitted polynomial strictly inside the window's energy range; with several
 *   (orders 3, 4) the highest. A voxel with none is flagged XANES_NO_PEAK and its energy is NaN.
 * - Quality: RMSE = sqrt(RSS / m), R^2 = 1 - RSS / TSS, adjusted R^2 = 1 - (1 - R^2)(m - 1)/(m - order - 1)
 *   over the m window energies (R^2 is NaN for a flat spectrum).
 * - Mask: mean absorption = mean over all energies; edge jump = mean over E >= edge + edge_gap minus mean
 *   over E <= edge - edge_gap (needs energies on both sides). Voxels at or below the threshold are
 *   XANES_MASKED and not fitted. Binning happens before masking: the mask is per super-voxel.
 * - Binning: super-voxels of bin[0] x bin[1] x bin[2] (x, y, z) voxels hold the mean spectrum of the voxels
 *   in the block; blocks cut by the edge of the volume average what they hold.
 * - Statistics: the histogram spans the window with hist_bins bins over voxels with status XANES_OK; the
 *   centroid and standard deviation are those of the same energies (the histogram's limit of fine bins, so
 *   they do not depend on the bin width).
 *
 * Live use: an IOC appends images with xanes_stack_add() as an energy scan arrives and calls xanes_analyse()
 * after each image to refresh maps and histogram (the analysis is a full recomputation, about 0.05 s CPU per
 * million voxel spectra of 40 energies fitted over 20, see bench/bench_xanes.py). An optional aligner (the registration engine, stack mode) is called on each
 * image as it is added, with the first image as reference.
 *
 * Errors: functions taking err, errlen write a one-line message there (err must hold errlen > 0 bytes).
 *
 * Threads: xanes_analyse() fits voxels on params.threads pthreads (parallel.h); a stack and a result belong
 * to the caller's thread and have no locks: the caller must not add images while an analysis runs.
 */
#ifndef RELOC_XANES_H
#define RELOC_XANES_H

#include <stddef.h>

enum { XANES_MAX_ORDER = 4 };

typedef enum { XANES_OK = 0, XANES_MASKED = 1, XANES_NO_PEAK = 2, XANES_BAD_DATA = 3 } xanes_status;
typedef enum { XANES_MASK_NONE = 0, XANES_MASK_EDGE_JUMP, XANES_MASK_MEAN } xanes_mask_mode;

/* Aligns `image` in place onto `reference` (both nx*ny*nz, x fastest). Returns 0, or -1 with a message. */
typedef int (*xanes_align_fn)(void *user, const float *reference, float *image, int nx, int ny, int nz, char *err,
                              size_t errlen);

typedef struct xanes_stack {
    int nx, ny, nz;            /* voxels per image; nz = 1 for 2D */
    int count, capacity;       /* images held / allocated */
    double *energy;            /* eV, one per image, in arrival order (need not be sorted) */
    float *data;               /* image k at data + k * nx * ny * nz, x fastest */
    xanes_align_fn align;      /* NULL: images are used as given */
    void *align_user;
} xanes_stack;

typedef struct xanes_params {
    int order;                 /* polynomial order 2..4 */
    double window_lo, window_hi; /* eV; both 0: automatic (see above) */
    double half_width;         /* eV, half width of the automatic window */
    int bin[3];                /* super-voxel size along x, y, z; 1 = no binning */
    xanes_mask_mode mask_mode;
    double mask_threshold;
    double edge_energy;        /* eV, absorption edge (edge-jump mask) */
    double edge_gap;           /* eV, energies within edge +- gap are left out of the edge jump */
    int hist_bins;
    int threads;               /* 0: one per online CPU */
} xanes_params;

typedef struct xanes_fit {
    int status;                /* XANES_OK or XANES_NO_PEAK (XANES_BAD_DATA: non-finite samples) */
    double peak_energy;        /* eV, NaN unless XANES_OK */
    double peak_value;         /* fitted value at the peak */
    double rmse, r2, adj_r2;
    double coef[XANES_MAX_ORDER + 1]; /* in t = (E - centre) / scale, lowest power first */
    double centre, scale;
} xanes_fit;

typedef struct xanes_result {
    int nx, ny, nz;            /* map size, after binning */
    float *peak_energy;        /* eV; NaN unless status is XANES_OK */
    float *rmse, *r2, *adj_r2; /* NaN where not fitted */
    float *edge_jump;          /* NaN when the stack has no energies on one side of the edge */
    float *mean_absorption;
    unsigned char *status;     /* xanes_status per (super-)voxel */
    double window_lo, window_hi; /* the window used, eV */
    int window_points;
    int hist_bins;
    double hist_lo, hist_hi;   /* eV, bin k covers [lo + k w, lo + (k+1) w) */
    long *hist;
    long n_ok, n_no_peak, n_masked, n_bad;
    double centroid, std;      /* eV, over XANES_OK voxels; NaN when there are none */
    int spectrum_count;
    double *spectrum_energy;   /* the stack's energies, sorted */
    double *summed_spectrum;   /* sum over voxels inside the mask, per sorted energy */
    xanes_fit summed;          /* the summed spectrum fitted like a voxel */
} xanes_result;

void xanes_params_default(xanes_params *p);
/* Checks order, window, binning and histogram settings; returns 0 or -1 with a message. */
int xanes_params_check(const xanes_params *p, char *err, size_t errlen);

void xanes_stack_init(xanes_stack *s, int nx, int ny, int nz);
void xanes_stack_set_aligner(xanes_stack *s, xanes_align_fn fn, void *user);
/* Copies one image (nx*ny*nz floats) taken at `energy` eV into the stack, aligning it first when an aligner is
 * set. Returns 0, or -1 with a message (non-finite energy, aligner failure); the stack is unchanged on error. */
int xanes_stack_add(xanes_stack *s, double energy, const float *image, char *err, size_t errlen);
/* Makes s hold count images already in one array (image k at data + k*nx*ny*nz) taken at energy[k] eV, without
 * copying: on success the stack owns both arrays (malloc'd; freed by xanes_stack_free). Returns 0, or -1 with a
 * message (no images, no voxels, a non-finite energy), leaving the arrays to the caller. */
int xanes_stack_adopt(xanes_stack *s, int nx, int ny, int nz, int count, double *energy, float *data, char *err,
                      size_t errlen);
void xanes_stack_free(xanes_stack *s);

/* Fits one spectrum (n samples at energy[i], any order) over [lo, hi]. Returns 0, or -1 with a message when
 * the window holds fewer than order + 2 energies. */
int xanes_fit_spectrum(const double *energy, const double *mu, int n, int order, double lo, double hi,
                       xanes_fit *out, char *err, size_t errlen);

/* Full analysis of a stack (see the top of this file). Returns 0, or -1 with a message (empty stack, bad
 * parameters, window with too few energies, edge-jump mask without energies on both sides of the edge). */
int xanes_analyse(const xanes_stack *s, const xanes_params *p, xanes_result *r, char *err, size_t errlen);
void xanes_result_free(xanes_result *r);

#endif
