/* detection_internal.h -- the detection context and the pipeline stages shared by the files of src/kernels/detection.
 * Not a public interface: callers use locate.h. The image buffers are sized once in locate_ctx_create for
 * the ROI; the per-feature lists (candidates, pair grid, ring scratch) only grow past their largest size so
 * far, so a stream of similar frames allocates nothing (tests/unit/test_locate.c checks it).
 * Threads: the ctx's team (team.c) runs the stages band by band. During a team_run a worker writes only the
 * rows of its band, the slots of its band (band_max, noise_*, band_peaks: index = band), the candidates of its
 * chunk and its own scratch; the thread that owns the ctx reads them after team_run has returned. */
#ifndef RELOC_LOCATE_INTERNAL_H
#define RELOC_LOCATE_INTERNAL_H

#include <stdint.h>

#include "kernels/detection/detection.h"

#define LOCATE_HIST_BINS 65536
#define LOCATE_HIST_ZERO_SLOTS 8     /* a worker's histogram has these past its bins (a power of two) */
#define LOCATE_MAX_THREADS 16
#define LOCATE_MAX_GAUSS_HALF 256   /* Gaussian taps on each side: int(4 noise_size + 0.5), noise_size <= 64 */
/* A frame is split into this many row bands (or column blocks) whatever the number of threads, so that sums
 * over bands are added in the same order and the table does not depend on the thread count. */
#define LOCATE_BANDS 16

/* team.c: worker threads kept by a ctx; team_run calls fn(arg, item, worker) for item = 0..count-1 on the
 * calling thread (worker 0) and the helpers, and returns when all are done. */
typedef struct locate_team locate_team;
typedef void (*team_fn)(void *arg, int item, int worker);
locate_team *team_create(int threads);
int team_size(const locate_team *t);
void team_run(locate_team *t, team_fn fn, void *arg, int count);
void team_free(locate_team *t);

/* Scratch space of one worker thread. */
typedef struct locate_scratch {
    double *line;             /* one row, with room for the Gaussian's zero padding; or column sums */
    double *sums, *column, *background;   /* a row each: the boxcar's column sums, means (with room for the
                                           * smoothing_size - 1 edge values), and its result */
    uint32_t *dilation;       /* one row's running maxima for the grey dilation (w + size) */
    uint32_t *hist;           /* histogram of the non-zero values of the worker's rows, then the zero slots */
    size_t nonzero;           /* their number */
    uint8_t *background_row;  /* background flags of one row (w) */
    uint8_t *nonzero_row;     /* non-zero flags of one row, LOCATE_DISTANCE_PAD zeros on either side */
} locate_scratch;

/* Padding of nonzero_row: more than the largest radius (diameter <= 251) plus one 32-byte vector. */
#define LOCATE_DISTANCE_PAD 160

/* The rows y0 <= y < y1 of band `band` of a frame of h rows (or the columns of block `band`, given w). */
static inline void locate_band(int band, int h, int *y0, int *y1)
{
    *y0 = (int)((long)h * band / LOCATE_BANDS);
    *y1 = (int)((long)h * (band + 1) / LOCATE_BANDS);
}

/* Candidate features between refinement and output (ROI coordinates, raw units before rescale). */
typedef struct locate_cands {
    int count, capacity;
    int *iy, *ix;             /* integer starting position (local maximum) */
    double *y, *x, *mass, *size, *ecc, *signal, *raw_mass;
    unsigned char *drop;
    int *order;               /* scratch for sorting by mass */
} locate_cands;

/* Local maxima found in one band of rows (grown, never shrunk). */
typedef struct locate_peaks {
    int count, capacity;
    int *iy, *ix;
} locate_peaks;

/* Points binned in square cells, for pair searches (close features, link candidates). Owned by one ctx or
 * linker; its arrays grow and are reused. cell_start[c]..cell_start[c+1] index order[] for cell c. */
typedef struct point_grid {
    int nx, ny;
    double x0, y0, cell;
    int *cell_start, *order, *cell_of;
    size_t cells_cap, points_cap;
} point_grid;

/* Walks the points of the 3x3 cells around a position: every point within one cell size is visited. */
typedef struct point_grid_iter {
    const point_grid *g;
    int gy, gx, cell, slot, end;
} point_grid_iter;

void point_grid_build(point_grid *g, const double *y, const double *x, int n, double cell);
void point_grid_near(const point_grid *g, double y, double x, point_grid_iter *it);
/* The next point's index, or -1 when the neighbourhood is exhausted. */
int point_grid_next(point_grid_iter *it);
void point_grid_free(point_grid *g);

/* Scratch of the ring locator: samples[ray * steps + step] along the rays, their sorted copy, and the ring
 * position per ray followed by the ring points' y and x. Grown, never shrunk. */
typedef struct ring_scratch {
    double *samples, *sorted, *edge;
    size_t samples_cap, rays_cap;
} ring_scratch;

struct locate_ctx {
    locate_params p;
    int frame_width;          /* row length of the frames given to locate_frame */
    int w, h;                 /* ROI size; ROI origin is p.roi_x, p.roi_y */
    int integer_samples;      /* the file's samples are integers */
    int int32_samples;        /* ... that fit 32-bit signed integers (most types: fast paths) */
    int small_sums;           /* ... whose boxcar sums stay within 2^24 in magnitude (means divided in float) */
    double sample_max;        /* largest value of the integer sample type (0 for floats) */
    double int_max;           /* the integer range trackpy rescales to: sample_max, or 255 for floats */
    double threshold;         /* band-pass clip level after defaults */
    int radius, margin;
    int dilate_size;          /* side of the square grey dilation */
    double scale;             /* rescale factor of the last frame */

    int gauss_half;           /* Gaussian taps: gauss[0..gauss_half], symmetric */
    double *gauss;

    /* Circular refinement mask: per-pixel weights, pixels in rows dy = 0..2r of the (2r+1)^2 square, each
     * row the run dx = r - disk_half[dy] .. r + disk_half[dy]. */
    int mask_count;
    int *mask_r2;             /* squared distance from the centre */
    double *mask_cos, *mask_sin;
    double mask_sum_y2;       /* sum of dy^2 over the mask (for ep) */
    int *disk_half;           /* half width of the mask's row at dy, index dy + radius */

    const float *frame;       /* the frame being loaded (during load_roi only) */
    float *raw;               /* ROI of the frame, inverted when asked (w*h) */
    float *zero_row;          /* w zeros: the rows outside the image for the Gaussian */
    double *bp;               /* band-passed ROI (w*h) */
    double bp_max;            /* its largest value */
    double band_max[LOCATE_BANDS];   /* largest band-pass value of each band */
    double *tmp;              /* pass buffer of the separable filters (w*h; float samples only) */
    uint32_t *img;            /* band pass rescaled to integers (w*h) */
    uint32_t *dil;            /* its grey dilation along x (w*h) */
    uint32_t *hist, *hist_fine; /* histograms of the non-zero values for the percentile */
    int hist_shift;           /* first-level bin = value >> hist_shift (0 up to 16-bit types) */
    uint8_t *row_distance;    /* distance to the nearest non-zero pixel in the row, capped (w*h) */
    double noise_sum[LOCATE_BANDS], noise_sq[LOCATE_BANDS];   /* background sums per band about noise_shift */
    size_t noise_count[LOCATE_BANDS];
    double noise_shift;

    uint32_t maxima_least;    /* a local maximum is at least this (above the percentile) */
    locate_peaks band_peaks[LOCATE_BANDS];

    locate_team *team;
    locate_scratch *scratch;  /* one per worker of the team */
    locate_cands cands;
    point_grid grid;
    ring_scratch ring;
};

/* bandpass.c: ctx->raw -> ctx->bp (clipped below threshold) and ctx->bp_max, as trackpy's bandpass. */
void locate_bandpass(locate_ctx *ctx);
/* bandpass.c: ctx->scale from ctx->bp_max (trackpy's convert_to_int), then, split over the team: rows of
 * ctx->bp -> ctx->img, and for each band locate_prepare_maxima_rows and locate_row_distance. */
void locate_rescale(locate_ctx *ctx);
/* maxima.c: the histogram of the non-zero values of rows y0..y1-1 of ctx->img (into the worker's scratch)
 * and their grey dilation along x (into ctx->dil). */
void locate_prepare_maxima_rows(locate_ctx *ctx, int y0, int y1, locate_scratch *s);
/* maxima.c: local maxima of ctx->img into ctx->cands (raster order), after locate_rescale. */
void locate_find_maxima(locate_ctx *ctx);
/* refine.c: per pixel of rows y0..y1-1, the distance to the nearest non-zero pixel of ctx->img in its row,
 * capped at radius + 1. */
void locate_row_distance(locate_ctx *ctx, int y0, int y1, locate_scratch *s);
/* refine.c: centroid refinement and characterization of every candidate. */
void locate_refine(locate_ctx *ctx);
/* refine.c: marks the lower-mass member of every pair closer than separation (trackpy's where_close);
 * with mass NULL, the member nearer the top-left corner. */
void locate_mark_close(point_grid *g, const double *y, const double *x, const double *mass, int n,
                       double separation, unsigned char *drop);
/* refine.c: background level and noise of the raw ROI away from any feature (trackpy's measure_noise). */
void locate_measure_noise(locate_ctx *ctx, double *black_level, double *noise);
/* sort.c: sorts n elements of size bytes in place into increasing order under cmp (not stable: make cmp
 * total), allocating nothing. */
typedef int (*locate_compare)(const void *a, const void *b, void *arg);
void locate_sort(void *array, size_t n, size_t size, locate_compare cmp, void *arg);

/* locate.c: keeps the rows of t whose keep flag is set, in order. */
void locate_table_compact(locate_table *t, const unsigned char *keep);
/* locate.c: grows the candidate list to hold n entries. */
void locate_cands_reserve(locate_cands *c, int n);

#endif
