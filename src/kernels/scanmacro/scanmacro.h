/* scanmacro.h -- scan macros for the beamline's scan engine: for a particle or a region of interest (rectangle or
 * polygon, stage micrometres) the text that Sardana, SPEC, Bluesky or any engine described in the engines file
 * runs, checked against the motors' soft limits; and the queue of accepted macros an operator builds up.
 * Plain C: no IOC, no locks (the IOC's macro driver owns one queue and guards it with its own mutex).
 *
 * Engines file (JSON, e.g. protocols/scan_engines.json): { "engines": { "NAME": { ... }, ... } } with per engine
 *   "motor_x", "motor_y"    the engine's aliases of the motors the stage map moves as X and Y (e.g. "samx", "samy"
 *                           for the records $(P)samx, $(P)samy); absent or "": the record name itself
 *   "um_per_unit"           micrometres per engine position unit (1000 when the engine works in mm; default 1)
 *   "precision"             digits after the decimal point of positions (default 4)
 *   "detectors"             text for $(DETECTORS) (default "")
 *   "absolute", "relative"  lines of the mesh over the ROI; relative = positions relative to the ROI centre,
 *                           after pre-scan lines that move there
 *   "polygon_row"           lines scanning one row of a polygon (a polygon becomes one such block per row
 *                           segment inside it, on the grid of its bounding box)
 *   "pre", "post"           optional lines before and after every macro
 * Templates are expanded with macro.h ($(NAME)). Names (positions in engine units):
 *   MX MY DETECTORS NAME T         axis names, detectors, ROI name, dwell time (s)
 *   X0 X1 Y0 Y1 CX CY              scanned range and its centre (absolute)
 *   RX0 RX1 RY0 RY1                the range relative to the centre
 *   IX IY NX NY SX SY              intervals, points (= intervals + 1) and step per axis
 *   Y XA XB IXR NXR                polygon rows: the row position, its first and last point, intervals, points
 * Sardana and SPEC count intervals (mesh m x0 x1 IX ...), Bluesky counts points (grid_scan(..., NX)).
 *
 * Sampling. With a step, the range is the smallest whole number of steps covering the ROI, centred on it (the
 * step is kept exactly); with a number of points, the points span the ROI's extent exactly. X is the fast axis.
 */
#ifndef RELOC_MACROS_H
#define RELOC_MACROS_H

#include <stddef.h>

#define ROI_NAME_LEN 40
#define ROI_MAX_VERTICES 64

typedef enum { ROI_RECT, ROI_POLYGON } roi_shape;

typedef struct scan_roi {
    char name[ROI_NAME_LEN];
    roi_shape shape;
    double x0, y0, x1, y1;                         /* rectangle corners (stage um, any order) */
    int nvertices;                                 /* polygon: 3..ROI_MAX_VERTICES vertices (stage um) */
    double vertex[ROI_MAX_VERTICES][2];
} scan_roi;

/* The square ROI around a particle: centre, diameter, and a margin added on every side (um). */
scan_roi roi_particle(const char *name, double cx, double cy, double diameter, double margin);

typedef struct scan_sampling {
    double step_x, step_y;       /* um; used when > 0 */
    int points_x, points_y;      /* used when the step is 0: points per axis (>= 2) */
    double dwell;                /* seconds per point */
    int relative;                /* 1: the engine's relative form, around the ROI centre */
} scan_sampling;

/* Soft limits of one stage axis in um; low == high means no limit (as the motor record's DHLM == DLLM == 0). */
typedef struct axis_limits {
    double low, high;
} axis_limits;

typedef struct scan_engines scan_engines;

/* Loads an engines file. NULL with a message (file, engine and key) on any error. */
scan_engines *scan_engines_load(const char *path, char *err, size_t errlen);
void scan_engines_free(scan_engines *engines);
int scan_engines_count(const scan_engines *engines);
const char *scan_engine_name(const scan_engines *engines, int index);
/* Index of an engine by name, or -1. */
int scan_engine_find(const scan_engines *engines, const char *name);

/* A stage axis a macro moves: the motor record and its soft limits, read when the macro is made. */
typedef struct scan_axis {
    const char *record;    /* the record (e.g. "RELOC:samx"); NULL or "" when unknown (bin/reloc-macro) */
    axis_limits limits;
} scan_axis;

/* The engine's name of the motor of axis 0 (X) or 1 (Y): its alias, else the record name; NULL when neither. */
const char *scan_engine_motor(const scan_engines *engines, int engine, int axis, const scan_axis *stage_axis);

/* The macro text (lines ending in '\n'; free() it) for one ROI, or NULL with a message when the ROI or the
 * sampling is invalid, the engine names no motor for an axis, or the scan would take an axis beyond the soft
 * limits of the record it moves, e.g. "ROI p3 refused: samx (record RELOC:samx, stage X) would reach
 * 10500.0000 um, beyond its high soft limit 9500.0000 um". */
char *scan_macro_generate(const scan_engines *engines, int engine, const scan_roi *roi, const scan_sampling *s,
                          const scan_axis axes[2], char *err, size_t errlen);

/* The queue of accepted macros. Entries are numbered from 0. */
#define MACRO_QUEUE_MAX 256

typedef struct macro_queue {
    char *entry[MACRO_QUEUE_MAX];
    int count;
} macro_queue;

/* Each returns 0, or -1 with a message (queue full, no such entry). */
int macro_queue_append(macro_queue *q, const char *text, char *err, size_t errlen);
int macro_queue_remove(macro_queue *q, int index, char *err, size_t errlen);
/* Moves entry index by delta places (-1 up, +1 down); its new index in *new_index. */
int macro_queue_move(macro_queue *q, int index, int delta, int *new_index, char *err, size_t errlen);
void macro_queue_clear(macro_queue *q);
/* Writes every entry in order to path (replacing it atomically). */
int macro_queue_export(const macro_queue *q, const char *path, char *err, size_t errlen);

#endif
