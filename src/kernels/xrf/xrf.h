/* xrf.h -- self-absorption correction of 2D X-ray fluorescence maps (Ge, Yan, Huang & Chu, Sci. Rep. 13, 7271,
 * 2023), in batch and while a fly scan delivers the map chunk by chunk.
 *
 * Geometry. The map has `height` rows (y) of `width` pixels (x), stored row-major, x fastest. The beam runs along
 * +z through the sample thickness (depth_voxels voxels of thickness/depth_voxels each); the detector looks along +y,
 * so the fluorescence of pixel (x, y) crosses the pixels (x', y' > y) on its way out. Per pixel and element c:
 *
 *     Y_det^c = I0 * S_c * Y_emit^c * A_beam * A_FL^c
 *
 * with A_beam = (1/N) sum_n exp(-n d mu_E) the incident-beam attenuation averaged over depth, A_FL^c the exit
 * attenuation averaged over the detector cone, mu = rho * sum_a w_a mu_a (xraylib CS_Total, cm^2/g) and the
 * composition w taken from the corrected yields: w_c = (1 - sum of fixed matrix fractions) * Y_c / sum_c' Y_c'.
 *
 * Numerical choices the paper leaves open (each a field of xrf_numerics, named in the JSON configuration):
 *  - n_theta x n_phi directions, a midpoint grid over the cone: theta across x in the x-y plane, phi along z.
 *  - path factor: "oblique" charges 1/(cos theta cos phi) path per row crossed; "normal" charges 1.
 *  - averaging: "mean_exp" averages exp(-tau) over directions (the paper's formula); "exp_mean" takes exp of the
 *    cone-averaged optical depth (the author's public 3D code).
 *  - face escape: "planar" exit rays keep the depth of their source voxel and never leave through the z faces;
 *    "escape" rays climb or sink by tan(phi)/cos(theta) pixel per row crossed and stop attenuating where they leave
 *    the slab, so the exit factor is resolved per depth voxel: Y_det = I0 S Y_emit (1/N) sum_n A_beam(n) A_FL(n).
 *    Escape paths are summed ray by ray (O(rows to the edge) per pixel and direction), planar ones recursively.
 *  - source voxel: "exclude" (the fluorescence starts at the edge of its pixel) or "half" (it crosses half of it).
 *  - exit path integration (planar): the straight ray from the pixel centre, from the top edge of the pixel to
 *    where it leaves the map (top or side; outside the map is empty), each row crossed costing the depth of the
 *    pixel crossed. Summed by a running accumulator per direction along digital lines, with the ray's exact
 *    clipped length at the sides charged at the depth where the line ends (xrf_physics.c). O(directions) per
 *    pixel. (escape): the sum over the rows crossed of mu linearly interpolated at x + k tan theta.
 *  - density of a pixel: a fixed value, or volume-additive from the element densities (1/rho = sum w_a/rho_a).
 *  - sweep: "gauss_seidel" solves rows from the detector edge inward; since a pixel depends only on pixels between
 *    it and the detector, one sweep is the converged answer. "jacobi" is the paper's Scheme 1: every iteration
 *    computes all pixels' absorption from the whole current estimate and updates them, until sum Y_emit changes by
 *    less than `tolerance`; not converged within max_iterations is an error.
 *
 * Nothing here keeps global state. A config is read-only once prepared and may be shared between threads; an
 * xrf_stream belongs to the one thread that calls it (callbacks run on that thread).
 */
#ifndef RELOC_XRF_H
#define RELOC_XRF_H

#include <stddef.h>
#include <stdint.h>

#define XRF_MAX_ELEMENTS 8     /* measured elements */
#define XRF_MAX_MATRIX 8       /* absorbing, not measured elements with fixed weight fractions */
#define XRF_MAX_THETA 32
#define XRF_MAX_PHI 32

typedef enum { XRF_PATH_OBLIQUE, XRF_PATH_NORMAL } xrf_path_factor;
typedef enum { XRF_AVG_MEAN_EXP, XRF_AVG_EXP_MEAN } xrf_averaging;
typedef enum { XRF_SOURCE_EXCLUDE, XRF_SOURCE_HALF } xrf_source_voxel;
typedef enum { XRF_SWEEP_GAUSS_SEIDEL, XRF_SWEEP_JACOBI } xrf_sweep;
typedef enum { XRF_FACES_PLANAR, XRF_FACES_ESCAPE } xrf_faces;

typedef struct xrf_element {
    char symbol[4];
    int z;
    char line_name[8];         /* "KA", "KB", "LA", "LB", "KA1", "LA1" */
    double line_kev;           /* xraylib LineEnergy unless the configuration overrides it */
    double sensitivity;        /* counts per unit I0 per unit weight fraction, unattenuated */
    double density;            /* g/cm^3, xraylib ElementDensity unless given */
} xrf_element;

typedef struct xrf_matrix_element {
    char symbol[4];
    int z;
    double fraction;           /* fixed weight fraction */
    double density;
} xrf_matrix_element;

typedef struct xrf_numerics {
    int n_theta, n_phi;
    xrf_path_factor path_factor;
    xrf_averaging averaging;
    xrf_source_voxel source_voxel;
    xrf_sweep sweep;
    xrf_faces faces;
    double tolerance;          /* relative change of sum Y_emit that stops the Jacobi iteration (0.01) */
    int max_iterations;
} xrf_numerics;

typedef struct xrf_config {
    double energy_kev;
    int n_elements;
    xrf_element element[XRF_MAX_ELEMENTS];
    int n_matrix;
    xrf_matrix_element matrix[XRF_MAX_MATRIX];
    double density;            /* g/cm^3; 0: volume-additive from element densities */
    double thickness_um;
    int depth_voxels;
    double pixel_um;
    /* Detector: half-angles come from the active size and distance unless given directly (degrees). */
    double distance_mm, active_x_mm, active_z_mm;
    double half_angle_x_deg, half_angle_z_deg;
    double tilt_xy_deg;        /* cone axis turned from +y toward +x, in the map plane */
    double tilt_z_deg;         /* cone axis raised from the map plane toward +z (downstream) */
    xrf_numerics num;

    /* Derived by xrf_config_prepare. Energies: index 0 the incident beam, 1 + c the line of element c.
     * Absorbers: the measured elements, then the matrix elements. */
    double mu_mass[XRF_MAX_ELEMENTS + XRF_MAX_MATRIX][1 + XRF_MAX_ELEMENTS];   /* cm^2/g */
    double theta_slope[XRF_MAX_THETA];                 /* x advance per row crossed */
    double path_weight[XRF_MAX_THETA][XRF_MAX_PHI];    /* path length per row crossed, in pixels */
    int n_distinct[XRF_MAX_THETA];                     /* distinct path weights per theta (phi and -phi agree) */
    double distinct_weight[XRF_MAX_THETA][XRF_MAX_PHI];
    int distinct_count[XRF_MAX_THETA][XRF_MAX_PHI];
    double z_step_um[XRF_MAX_THETA][XRF_MAX_PHI];      /* depth change of an exit ray per row crossed */
    double matrix_total;                               /* sum of the fixed matrix fractions */
    int ghost_columns;                                 /* exit state kept beyond each side of a row (planar) */
} xrf_config;

/* Defaults for everything but the elements: 12 keV, 50 nm pixels, 100 voxels of 50 nm, a 10 mm detector at 20 mm,
 * 5 x 3 directions, oblique path, mean_exp, source excluded, gauss_seidel, tolerance 0.01. */
void xrf_config_defaults(xrf_config *cfg);
/* Adds a measured element (line "KA", "LA", ...; line_kev <= 0: from xraylib). Returns -1 with a message. */
int xrf_config_add_element(xrf_config *cfg, const char *symbol, const char *line, double line_kev,
                           double sensitivity, char *err, size_t errlen);
int xrf_config_add_matrix(xrf_config *cfg, const char *symbol, double fraction, char *err, size_t errlen);
/* Checks the configuration and fills the derived fields from xraylib. Returns -1 with a message. */
int xrf_config_prepare(xrf_config *cfg, char *err, size_t errlen);
/* Parses a JSON configuration (see README) and prepares it. */
int xrf_config_from_json(xrf_config *cfg, const char *json_text, char *err, size_t errlen);
int xrf_config_load(xrf_config *cfg, const char *path, char *err, size_t errlen);
/* The prepared configuration, derived coefficients included, as a JSON text (caller frees). */
char *xrf_config_to_json(const xrf_config *cfg);
/* The xraylib version reloc was built against. */
const char *xrf_xraylib_version(void);

/* ---- Correction kernel (xrf_correct.c) ---- */

/* Maps of one scan: per element, width*height doubles. xrf_maps_alloc does not initialise them (every caller writes
 * each pixel), so the solver's own writes take the first-touch page faults, on huge pages (xmalloc_large). */
typedef struct xrf_maps {
    int width, height, n_elements;
    double *map[XRF_MAX_ELEMENTS];
} xrf_maps;

int xrf_maps_alloc(xrf_maps *m, int width, int height, int n_elements);
void xrf_maps_free(xrf_maps *m);

/* Batch correction of a whole map. counts[c] and i0 are width*height. Writes corrected counts (what the detector
 * would see without self-absorption) and weight fractions. threads: 1 solves on the calling thread alone; 2 (or
 * more) splits each row of the planar sweep between it and a helper thread when the map is at least
 * XRF_TWO_THREAD_MIN_WIDTH wide and the machine has a second core. The maps are the same bit for bit either way.
 * Returns the number of iterations used (sweeps), or -1 with a message. */
#define XRF_TWO_THREAD_MIN_WIDTH 32
int xrf_correct_batch(const xrf_config *cfg, int width, int height, const double *const *counts, const double *i0,
                      int threads, xrf_maps *corrected, xrf_maps *fractions, char *err, size_t errlen);

/* Row solver shared by the batch and streaming paths: solves pixels [x0, x1) of row y. `exit_state` holds the exit
 * state of row y+1 (per element and direction, the running optical depth of each digital line and the depth where
 * it ends; not read when at_edge, nothing toward the detector) and is turned in place into row y's for [x0, x1), and
 * for the ghost columns beyond a side when the span reaches it. It is xrf_exit_state_size doubles; the row arrays
 * are whole rows (by x). It is indexed by line, so its size grows with the lines' drift over the height; a
 * caller that keeps every row's state stores rows of xrf_exit_row_size doubles (indexed by column) and moves a
 * span's entries in (row y+1's, before solving row y) and out (row y's, after) with xrf_exit_state_load/_save. */
size_t xrf_exit_state_size(const xrf_config *cfg, int width, int height);
size_t xrf_exit_row_size(const xrf_config *cfg, int width);
void xrf_exit_state_load(const xrf_config *cfg, int width, int height, int y, int x0, int x1, const double *next_row,
                         double *state);
void xrf_exit_state_save(const xrf_config *cfg, int width, int height, int y, int x0, int x1, const double *state,
                         double *row);
/* Working memory of one xrf_solve_span call (doubles), owned by the caller so that a sweep allocates it once. */
size_t xrf_span_scratch_size(const xrf_config *cfg, int width);
void xrf_solve_span(const xrf_config *cfg, int width, int height, int y, int x0, int x1,
                    const double *const *counts_row, const double *i0_row, double *exit_state, int at_edge,
                    double *const *corrected_row, double *const *fractions_row, double *span_scratch);
/* Pixel x of a row reads pixels [x + lowest, x + highest] of the next row toward the detector (planar faces). */
void xrf_exit_stencil(const xrf_config *cfg, int *lowest, int *highest);

/* The same for face escape: `depth_read` holds per element line c the optical depth per pixel length of every
 * pixel (n_elements * height * width doubles; rows above y are read), row y's is written to `depth_write` (which
 * may be the same array). */
size_t xrf_depth_map_size(const xrf_config *cfg, int width, int height);
/* Row y of a depth map for known measured weight fractions (the Jacobi iteration's starting point). */
void xrf_depth_row(const xrf_config *cfg, int width, int height, int y, const double *const *fractions_row,
                   double *depth_write);
void xrf_solve_span_escape(const xrf_config *cfg, int width, int height, int y, int x0, int x1,
                           const double *const *counts_row, const double *i0_row, const double *depth_read,
                           double *depth_write, double *const *corrected_row, double *const *fractions_row);
/* The exit state of a row whose measured weight fractions are known (the forward model's step; the starting
 * point of the Jacobi iteration), made in place as xrf_solve_span does. */
void xrf_exit_state_row(const xrf_config *cfg, int width, int height, int y, const double *const *fractions_row,
                        double *exit_state, int at_edge);

/* ---- Forward model (xrf_forward.c): the physics above, run on a 3D phantom ---- */

/* fractions[c] (measured elements; the matrix fractions are the configured ones) are width*height*slices doubles,
 * slice-major (slice s at offset s*width*height). slices == 1: uniform along the beam (depth_voxels voxels);
 * slices == depth_voxels: one slice per voxel. Writes the detected counts for the given I0 per pixel. */
int xrf_forward(const xrf_config *cfg, int width, int height, int slices, const double *const *fractions,
                const double *i0, xrf_maps *detected, char *err, size_t errlen);

/* ---- Streaming (xrf_stream.c) ---- */

typedef enum {
    XRF_SCAN_Y_DESCENDING,     /* rows of constant y, first y = height-1 (detector side): each row final on arrival */
    XRF_SCAN_Y_ASCENDING,      /* rows of constant y, first y = 0: provisional until the detector-side row arrives */
    XRF_SCAN_X_ASCENDING,      /* columns of constant x, first x = 0: pixels become final in a staircase */
    XRF_SCAN_X_DESCENDING      /* columns of constant x, first x = width-1 */
} xrf_scan_direction;

typedef enum { XRF_ROW_MISSING = 0, XRF_ROW_PROVISIONAL = 1, XRF_ROW_FINAL = 2 } xrf_row_state;

typedef enum {
    XRF_OK = 0,
    XRF_ERR_NO_SCAN,           /* no scan started, or the scan already ended */
    XRF_ERR_WRONG_SCAN,        /* chunk of another scan id */
    XRF_ERR_OUT_OF_ORDER,      /* a gap: rows or sequence number ahead of what is expected */
    XRF_ERR_DUPLICATE,         /* rows or sequence number already received */
    XRF_ERR_SHAPE,             /* width, element list or row range that does not fit the scan */
    XRF_ERR_TRUNCATED,         /* fewer (or more) bytes than the header announces */
    XRF_ERR_BAD_VALUE,         /* NaN, infinite or negative counts, I0 <= 0 */
    XRF_ERR_MALFORMED,         /* header that is not the expected JSON */
    XRF_ERR_INCOMPLETE         /* end of scan with rows missing */
} xrf_status;

const char *xrf_status_name(xrf_status st);

/* A block of consecutive scan lines [line, line + lines): rows of constant y (length = width) or, in column scans,
 * columns of constant x (length = height). Data is line after line, each line contiguous (x, resp. y, ascending). */
typedef struct xrf_chunk {
    uint64_t scan_id;
    uint32_t seq;              /* 0, 1, 2, ... within a scan */
    int columns;               /* 0: lines are rows; 1: lines are columns (must match the scan) */
    int line, lines, length, n_elements;
    const double *counts[XRF_MAX_ELEMENTS];   /* lines*length each, in the configuration's element order */
    const double *i0;                         /* lines*length */
} xrf_chunk;

typedef struct xrf_stream xrf_stream;

/* Called for every span of pixels [x0, x1) of row y whose published values change: when first corrected
 * (provisional or final) and when provisional pixels become final. corrected/fractions point at the whole row
 * (width values per element). A pixel published as final is never published again. */
typedef void (*xrf_row_callback)(void *user, int y, int x0, int x1, xrf_row_state state,
                                 const double *const *corrected, const double *const *fractions, int width);

xrf_stream *xrf_stream_new(const xrf_config *cfg);
void xrf_stream_free(xrf_stream *s);
void xrf_stream_set_callback(xrf_stream *s, xrf_row_callback cb, void *user);
/* Starts a scan (any scan in progress is dropped). Returns XRF_OK or XRF_ERR_SHAPE with a message. */
xrf_status xrf_stream_begin(xrf_stream *s, uint64_t scan_id, int width, int height, xrf_scan_direction dir,
                            char *err, size_t errlen);
/* Validates and applies a chunk. On any error nothing of the stream changes. */
xrf_status xrf_stream_push(xrf_stream *s, const xrf_chunk *chunk, char *err, size_t errlen);
/* Ends the scan: XRF_ERR_INCOMPLETE when rows are missing (the scan stays open), else every row is final. */
xrf_status xrf_stream_end(xrf_stream *s, char *err, size_t errlen);
void xrf_stream_abort(xrf_stream *s);

typedef struct xrf_stream_info {
    int active;                /* a scan is open */
    int ended;                 /* the scan ended complete */
    uint64_t scan_id;
    int width, height;
    xrf_scan_direction direction;
    int lines_received;        /* rows, or columns in a column scan */
    int rows_final;
    uint32_t chunks_accepted, chunks_rejected;   /* since the scan began */
    xrf_status last_status;
    char last_error[256];
    double last_latency_s;     /* correction time of the last accepted chunk */
    double max_latency_s;
} xrf_stream_info;

void xrf_stream_get_info(const xrf_stream *s, xrf_stream_info *info);
/* A row is final when all its pixels are, provisional when any has a value. */
xrf_row_state xrf_stream_row_state(const xrf_stream *s, int y);
xrf_row_state xrf_stream_pixel_state(const xrf_stream *s, int x, int y);
/* Whole maps (width*height per element, NaN where no row has arrived), owned by the stream. */
const double *xrf_stream_corrected(const xrf_stream *s, int element);
const double *xrf_stream_fractions(const xrf_stream *s, int element);
const double *xrf_stream_raw(const xrf_stream *s, int element);
const double *xrf_stream_i0(const xrf_stream *s);
const xrf_config *xrf_stream_config(const xrf_stream *s);

/* ---- HDF5 results (xrf_h5.c) ---- */

typedef struct xrf_h5 xrf_h5;

/* Creates the file with /raw, /I0, /corrected, /fractions (one dataset per element, NaN until written),
 * /row_state and /parameters (configuration JSON, xraylib version, attenuation coefficients). */
/* live: the file is written in single-writer/multiple-reader (SWMR) mode, so that readers opening it with SWMR
 * (h5py: libver="latest", swmr=True) see the map grow while the scan runs; no attribute can be added later. */
xrf_h5 *xrf_h5_create(const char *path, const xrf_config *cfg, int width, int height, int live, char *err,
                      size_t errlen);
/* Writes rows [y0, y0 + ny) x columns [x0, x0 + nx) of the stream's maps, and the row states, and flushes, so
 * that readers see the map grow. */
int xrf_h5_write_block(xrf_h5 *h, const xrf_stream *s, int y0, int ny, int x0, int nx, char *err, size_t errlen);
/* Writes whole maps from the batch path (a file created with live == 0: adds the "iterations" attribute). */
int xrf_h5_write_maps(xrf_h5 *h, const double *const *raw, const double *i0, const xrf_maps *corrected,
                      const xrf_maps *fractions, int iterations, char *err, size_t errlen);
int xrf_h5_close(xrf_h5 *h, char *err, size_t errlen);

/* Reads /raw/<symbol> for each configured element and /I0 (absent: I0 = 1). */
int xrf_h5_read_raw(const char *path, const xrf_config *cfg, int *width, int *height, xrf_maps *raw, double **i0,
                    char *err, size_t errlen);
/* Writes a 2D double dataset (groups created as needed): for the simulator's truth maps. */
int xrf_h5_write_dataset(const char *path, const char *name, const double *data, int width, int height,
                         int truncate_file, char *err, size_t errlen);

/* ---- ZeroMQ ingest (xrf_zmq.c) ----
 *
 * Wire format, PULL side. Every message is multipart; part 0 is a JSON header with "type":
 *   {"type":"start","scan":ID,"width":W,"height":H,"direction":"descending"|"ascending","axis":"y"|"x",
 *    "elements":["Fe","Ni"]}        axis "y" (default): the scan delivers rows of constant y; "x": columns
 *   {"type":"chunk","scan":ID,"seq":K,"row":Y0,"rows":R,"width":W,"elements":[...]}
 *       followed by one part per element (R*W float64 little-endian counts) and one part of I0 (R*W float64)
 *   {"type":"chunk","scan":ID,"seq":K,"col":X0,"cols":C,"height":H,"elements":[...]}
 *       the same for columns: C*H float64 per part, column after column, y ascending within a column
 *   {"type":"end","scan":ID}      {"type":"abort","scan":ID}
 * PUB side, per accepted or rejected message: {"type":"status","scan":ID,"seq":K,"status":"ok"|name,"message":...,
 * "lines_received":..,"rows_final":..,"progress":..,"iterations":1,"latency_s":..}; per span of a row whose
 * values changed: {"type":"row","scan":ID,"y":Y,"x0":X0,"x1":X1,"state":"final"|"provisional","width":W,
 * "elements":[...]} followed by one part per element of corrected counts and one per element of weight
 * fractions (X1-X0 float64 each).
 */
typedef struct xrf_ingest xrf_ingest;

/* Binds PULL (when pull_endpoint is not NULL) and PUB (when pub_endpoint is not NULL). out_dir: where
 * xrf_scan_<id>.h5 files go (NULL: none). */
xrf_ingest *xrf_ingest_new(const xrf_config *cfg, const char *pull_endpoint, const char *pub_endpoint,
                           const char *out_dir, char *err, size_t errlen);
void xrf_ingest_free(xrf_ingest *ing);
/* Handles one message if one arrives on PULL within timeout_ms. Returns 1 when a message was handled, else 0. */
int xrf_ingest_poll(xrf_ingest *ing, int timeout_ms);
/* Number of scans that ended complete so far. */
int xrf_ingest_scans_done(const xrf_ingest *ing);
/* Handles one message given as its parts (the wire format above) from any transport, e.g. PVs. */
void xrf_ingest_handle(xrf_ingest *ing, const void *const *parts, const size_t *sizes, int n_parts);
xrf_stream *xrf_ingest_stream(xrf_ingest *ing);
/* Status of the last message handled, text of the last refusal, and chunks refused in this scan (by the stream
 * or before reaching it). */
void xrf_ingest_last(const xrf_ingest *ing, xrf_status *status, char *error, size_t errlen, uint32_t *rejected);
/* The address a socket is bound to (a '*' port resolved), "" when that socket is not open. pull: 1 PULL, 0 PUB. */
void xrf_ingest_endpoint(xrf_ingest *ing, int pull, char *buf, size_t len);

#endif
