/* detection.h -- particle detection and tracking as trackpy users know it: Crocker-Grier location
 * ("locate"), a bright-field ring locator, nearest-neighbour linking across frames ("link"), and export
 * of the feature table to CSV and HDF5.
 *
 * Detection follows trackpy's locate step by step so that its parameters and columns mean the same:
 * band pass (Gaussian of noise_size truncated at 4 sigma with zero edges, minus a boxcar of smoothing_size
 * with nearest edges, clipped below threshold), rescaling to the full range of the file's integer sample
 * type (floats: 8 bits), local maxima by a square grey dilation within separation above a percentile of
 * the non-zero pixels, edge exclusion, centroid refinement in a circular mask of radius diameter/2 with up
 * to max_iterations one-pixel re-centrings, pruning of pairs closer than separation (lower mass dropped),
 * then minmass, maxsize and topn. Positions have their origin at the centre of pixel (0, 0).
 *
 * Usage for a live stream: create one locate_ctx per frame size and parameter set, call locate_frame on
 * every frame, keep one locate_table and reuse it. Neither allocates in steady state (the table grows only
 * when a frame has more features than any before). A ctx is not thread-safe: one thread owns it; the ctx
 * keeps threads - 1 helper threads of its own (for its lifetime) that work on that thread's frames with it.
 */
#ifndef RELOC_LOCATE_H
#define RELOC_LOCATE_H

#include <stddef.h>
#include <stdio.h>

#define LOCATE_MAX_DIAMETER 251
/* Whether locate accepts a feature diameter: odd, 3..LOCATE_MAX_DIAMETER. */
static inline int locate_diameter_valid(long diameter)
{
    return diameter >= 3 && diameter <= LOCATE_MAX_DIAMETER && diameter % 2 == 1;
}

typedef struct locate_params {
    int diameter;         /* odd feature diameter in pixels (3..251); the mask has radius diameter/2 */
    double minmass;       /* keep features with mass > minmass (>= 0) */
    double maxsize;       /* keep features with size < maxsize; 0 = no limit */
    double separation;    /* minimum separation between features (default diameter + 1) */
    double noise_size;    /* sigma of the Gaussian of the band pass (default 1) */
    int smoothing_size;   /* odd side of the boxcar of the band pass (default diameter) */
    double threshold;     /* band-pass clip level; negative = trackpy's default (1 integer, 1/255 float) */
    int invert;           /* features darker than the background (bright-field, SEM) */
    double percentile;    /* a maximum must be brighter than this percentile of non-zero pixels (64) */
    int topn;             /* keep only the topn most massive features; 0 = all */
    int preprocess;       /* 1 = band pass; 0 = locate on the raw image */
    int max_iterations;   /* maximum number of re-centrings of the refinement (10) */
    int characterize;     /* compute size, ecc, signal, raw_mass and ep (1) */
    int roi_x, roi_y;     /* region of interest; roi_width = roi_height = 0 means the whole frame */
    int roi_width, roi_height;
    int threads;          /* threads one frame is split over (0 = one per CPU); the table does not depend on it */
} locate_params;

/* trackpy's defaults for a feature diameter. */
void locate_params_default(locate_params *p, int diameter);
/* Checks parameters alone (no frame size): 0, or -1 with a sentence saying what is wrong in err. */
int locate_params_check(const locate_params *p, char *err, size_t errlen);

/* Features of one frame (or of many: frame and particle tell them apart), one array per column. */
typedef struct locate_table {
    int count, capacity;
    double *x, *y, *mass, *size, *ecc, *signal, *raw_mass, *ep;
    double *r;            /* ring radius (bright-field ring locator only; NaN otherwise) */
    int *frame;           /* frame index given to locate_frame (or the caller's) */
    long *particle;       /* particle ID from the linker; -1 before linking */
    int has_r;            /* the r column is meaningful */
} locate_table;

void locate_table_init(locate_table *t);
void locate_table_free(locate_table *t);
void locate_table_clear(locate_table *t);
/* Makes room for n rows (no allocation when the capacity already suffices). */
void locate_table_reserve(locate_table *t, int n);
/* Appends all rows of src to dst (for collecting a movie into one table). */
void locate_table_append(locate_table *dst, const locate_table *src);

typedef struct locate_ctx locate_ctx;

/* A context for frames of width x height with the given sample type: sample_max is the largest value of
 * the file's integer sample type (255 for 8-bit, 65535 for 16-bit, 32767 for signed 16-bit ...) or 0 for
 * floating-point samples; trackpy's integer rescaling and default threshold depend on it. Returns NULL
 * with a message in err for bad parameters or an ROI outside the frame. */
locate_ctx *locate_ctx_create(const locate_params *p, int width, int height, double sample_max, char *err,
                              size_t errlen);
void locate_ctx_free(locate_ctx *ctx);
const locate_params *locate_ctx_params(const locate_ctx *ctx);

/* Locates the features of one frame (width*height samples, x fastest) into out, replacing its rows; every
 * row gets frame index frame_index and particle -1. Positions are in full-frame pixels even with an ROI.
 * Rows come in raster order of the local maxima they started from (with topn, trackpy instead orders by
 * mass). Non-finite samples count as 0. A frame without features gives an empty table and returns 0. */
int locate_frame(locate_ctx *ctx, const float *frame, int frame_index, locate_table *out);

/* The band-passed ROI of the last frame (roi_width x roi_height doubles, before integer rescaling), and the
 * rescale factor applied after it (mass and signal are divided back by it). For tests and diagnostics. */
const double *locate_ctx_bandpassed(const locate_ctx *ctx, int *width, int *height);
double locate_ctx_scale_factor(const locate_ctx *ctx);

/* Bright-field ring locator (trackpy's locate_brightfield_ring): particles seen as a dark ring around a
 * brighter interior. Starting points come from locate on the frame (ctx's parameters, whose diameter is
 * the ring's approximate outer diameter); each is refined by sampling the image along rays, finding the
 * dark ring on every ray and fitting a circle. Rows get x, y and r (ring radius); rows whose fit fails
 * are dropped. */
int locate_rings(locate_ctx *ctx, const float *frame, int frame_index, locate_table *out);

/* Linking across frames: nearest neighbour within search_range of the predicted position, the pairs
 * assigned in order of increasing distance, with memory for particles that are missing for up to memory
 * frames. The prediction is the last position plus the known displacement of the sample since then
 * (registration or stage motion), so IDs survive moves larger than the particle spacing. */
typedef struct link_params {
    double search_range;  /* largest distance (pixels) between prediction and feature (> 0) */
    int memory;           /* frames a particle may be missing and keep its ID (>= 0) */
    double drift_range;   /* > 0: also search for an unknown common displacement up to this many pixels
                           * (on top of the prior): the one most particle-feature pairs agree on */
} link_params;

/* A linker keeps the particles of one stream; like a ctx it is owned by one thread. */
typedef struct linker linker;

linker *linker_create(const link_params *p, char *err, size_t errlen);
void linker_free(linker *lk);
/* Assigns particle IDs to the rows of t (one frame). dx, dy: displacement of the image content since the
 * previous frame given to the linker (0, 0 without a prior). IDs count up from 0. */
void linker_link_frame(linker *lk, locate_table *t, double dx, double dy);
/* Particles currently tracked (seen within memory frames). */
int linker_active_count(const linker *lk);

/* Export. CSV: header line then one line per row: frame,particle,y,x,mass,size,ecc,signal,raw_mass,ep
 * (with_ids = 0 leaves out frame and particle; r follows x when the table has ring radii). */
int locate_table_write_csv(const locate_table *t, FILE *f, int with_ids);
/* HDF5: one 1-D dataset per column in group (created or replaced) of path, plus the detection parameters
 * as attributes of the group when p is not NULL. An existing file keeps its other contents; an existing
 * file that is not HDF5 is refused, never overwritten. */
int locate_table_write_hdf5(const locate_table *t, const char *path, const char *group, const locate_params *p,
                            char *err, size_t errlen);

/* ---- Relocalization's view of a camera frame (features.c): used by the stage map and by a worker IOC. */
typedef struct view_features {
    double (*xy)[2];      /* feature positions (pixels) */
    int n, cap;
} view_features;
/* Features of both contrasts (dark and bright particles) of diameter, keeping those whose mass is above
 * mass_factor times the median mass of all local maxima (noise maxima dominate the median); at most max.
 * out is reused (view_features_free frees it). 0, or -1 with err. */
int view_features_detect(const float *img, int w, int h, int diameter, double mass_factor, double sample_max, int max,
                         view_features *out, char *err, size_t errlen);
void view_features_add(view_features *f, double x, double y);
void view_features_free(view_features *f);
#define VIEW_STRUCTURE_MIN 6.0   /* coarse structure (noise sigmas) below which a view is bare substrate */
/* Sharpness of a frame: how far the finest detail (3 px box minus 9 px box, its 99.9th percentile amplitude)
 * stands above the noise, in noise standard deviations of that band. In focus, particle edges give 10-25 on
 * the simulated sample; blurred by a few micrometres, under 6; noise alone about 3. NaN when the frame shows
 * no structure at a coarser scale either (9 px minus 33 px box under VIEW_STRUCTURE_MIN: bare substrate), so
 * that a blank view is not taken for a blurred one. */
double view_sharpness(const float *img, int w, int h);
/* A worker IOC serves one frame's view as one array of doubles (so that a client gets it whole, in one
 * update): these head elements, then VIEW_COUNT (x, y) pixel pairs. UNIQUE_ID: the frame's uniqueId at its
 * camera (the publisher's "frame" for frames received over ZeroMQ); STAMP: its exposure, POSIX seconds;
 * STAGE_X/Y: the stage position (um) the frame carried, NaN when unknown; DIAMETER, MASS_FACTOR: the settings
 * the features were detected with. */
enum { VIEW_UNIQUE_ID, VIEW_STAMP, VIEW_STAGE_X, VIEW_STAGE_Y, VIEW_WIDTH, VIEW_HEIGHT, VIEW_DIAMETER,
       VIEW_MASS_FACTOR, VIEW_SHARPNESS, VIEW_COUNT, VIEW_HEAD };
/* Relocalization's detection settings by default: a worker's Diameter and MassFactor (live/stages/features.c);
 * the stage map's Reloc:LiveDiameter and Reloc:MassFactor (db/stagemap.db, whose persisted settings take their
 * defaults from the records) start equal to them. */
#define VIEW_DEFAULT_DIAMETER 15
#define VIEW_DEFAULT_MASS_FACTOR 10.0
#define VIEW_MAX_SIDE 65536      /* a view's frame is at most this wide and high */
/* One view array as read from another IOC (untrusted): every head element checked -- finite, integers where
 * integers are meant, in range (the diameter one locate accepts, mass factor > 0, stage position and
 * sharpness finite or NaN) -- and the array's length equal to VIEW_HEAD + 2 count, every feature inside the
 * frame. xy points into the array. */
typedef struct view_parsed {
    double unique_id, stamp;     /* integer 0..2^53; POSIX seconds >= 0 */
    double stage_x, stage_y;     /* um, NaN: unknown */
    int width, height, diameter; /* 1..VIEW_MAX_SIDE; locate_diameter_valid */
    double mass_factor, sharpness;
    int count;
    const double (*xy)[2];
} view_parsed;
enum { VIEW_OK = 0, VIEW_MALFORMED = -1, VIEW_TOO_MANY = -2 };
/* VIEW_OK; VIEW_TOO_MANY when its head is well-formed but says more than max_features features (out then holds
 * the head, xy NULL); VIEW_MALFORMED otherwise; why says which ("too many features (N > max)", or what is wrong,
 * e.g. "width 0 is not a whole number 1..65536"). n may be less than the array's length when it was cut at
 * VIEW_HEAD + 2 max_features (then it has too many). */
int view_parse(const double *a, long n, int max_features, view_parsed *out, char *why, size_t whylen);

#endif
