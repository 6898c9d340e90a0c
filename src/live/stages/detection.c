/* detection.c -- the live detection stage: trackpy-style location (src/kernels/detection) on every frame, linking
 * across frames with the stage motion as the displacement prior, the feature table as PVs, and its export
 * to CSV or HDF5 on request (records: db/detection.db). */
#include "live/stages/stages_internal.h"

#include "core/base/base.h"
#include "core/pva/pva.h"
#include "formats/h5array/h5array.h"
#include "kernels/detection/detection.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DETECTION_PARAMS(X) \
    X(P_DIAMETER, "Diameter", PARAM_INT) \
    X(P_MINMASS, "MinMass", PARAM_DOUBLE) \
    X(P_MAXSIZE, "MaxSize", PARAM_DOUBLE) \
    X(P_SEPARATION, "Separation", PARAM_DOUBLE) \
    X(P_NOISE_SIZE, "NoiseSize", PARAM_DOUBLE) \
    X(P_SMOOTHING_SIZE, "SmoothingSize", PARAM_INT) \
    X(P_THRESHOLD, "Threshold", PARAM_DOUBLE) \
    X(P_PERCENTILE, "Percentile", PARAM_DOUBLE) \
    X(P_TOPN, "TopN", PARAM_INT) \
    X(P_INVERT, "Invert", PARAM_INT) \
    X(P_MAX_ITERATIONS, "MaxIterations", PARAM_INT) \
    X(P_ROI_X, "RoiX", PARAM_INT) \
    X(P_ROI_Y, "RoiY", PARAM_INT) \
    X(P_ROI_WIDTH, "RoiWidth", PARAM_INT) \
    X(P_ROI_HEIGHT, "RoiHeight", PARAM_INT) \
    X(P_SEARCH_RANGE, "SearchRange", PARAM_DOUBLE) \
    X(P_MEMORY, "Memory", PARAM_INT) \
    X(P_EXPORT_PATH, "ExportPath", PARAM_STRING) \
    X(P_EXPORT, "Export", PARAM_INT) \
    X(P_COUNT, "Count", PARAM_INT) \
    X(P_TRACKED, "Tracked", PARAM_INT)

enum { DETECTION_BEFORE_FIRST = ANALYSIS_NCOMMON - 1, DETECTION_PARAMS(PARAM_ENUM)
       P_X, P_Y, P_MASS, P_SIZE, P_ECC, P_ID };

static const param_def detection_params[] = {DETECTION_PARAMS(PARAM_DEF)};

/* What records asked for. Separation 0 and smoothing size 0 follow the diameter (trackpy's defaults), so
 * changing the diameter alone keeps a consistent parameter set. */
typedef struct detection_settings {
    locate_params locate;
    link_params link;
} detection_settings;

typedef struct detection {
    int max_features;
    /* guarded by the stage lock */
    detection_settings wanted;
    long generation;               /* bumped by every accepted change of wanted */
    int export_pending;
    char export_path[512];
    /* stage thread only */
    locate_ctx *ctx;
    long ctx_generation;
    int ctx_width, ctx_height;
    linker *linker;
    link_params linker_params;
    locate_table table;            /* the last frame's features, with IDs */
    int have_previous;
    double previous_x, previous_y, previous_pixel;
    int32_t *ids;
    pva_source *table_pv;          /* detectionPvaTable: set before iocInit, NULL when not configured */
    double *id_column;             /* [thread] ids as the table's double column */
} detection;

#define TABLE_COLUMNS 7

/* The locate parameters a settings set stands for on frames of width x height (automatic values resolved). */
static locate_params effective(const detection_settings *s, int width, int height)
{
    locate_params p = s->locate;
    if (p.separation == 0) p.separation = p.diameter + 1;
    if (p.smoothing_size == 0) p.smoothing_size = p.diameter;
    analysis_roi_resolve(p.roi_x, p.roi_y, &p.roi_width, &p.roi_height, width, height);
    return p;
}

/* The checks that need no frame (the ROI against the frame size waits for a frame). */
static int settings_check(const detection_settings *s, char *err, size_t errlen)
{
    locate_params p = effective(s, INT_MAX, INT_MAX);
    if (locate_params_check(&p, err, errlen)) return -1;
    if (!(s->link.search_range > 0) || !isfinite(s->link.search_range))
        return error_set(err, errlen, "search range must be > 0 pixels (got %g)", s->link.search_range);
    if (s->link.memory < 0) return error_set(err, errlen, "memory must be >= 0 frames (got %d)", s->link.memory);
    return 0;
}

/* Applies one parameter write to a settings set; 1 when the index is a detection setting. */
static int settings_apply(detection_settings *s, const param_write *w)
{
    locate_params *p = &s->locate;
    int v = (int)w->ival;
    switch (w->index) {
    case P_DIAMETER: p->diameter = v; break;
    case P_MINMASS: p->minmass = w->dval; break;
    case P_MAXSIZE: p->maxsize = w->dval; break;
    case P_SEPARATION: p->separation = w->dval; break;
    case P_NOISE_SIZE: p->noise_size = w->dval; break;
    case P_SMOOTHING_SIZE: p->smoothing_size = v; break;
    case P_THRESHOLD: p->threshold = w->dval; break;
    case P_PERCENTILE: p->percentile = w->dval; break;
    case P_TOPN: p->topn = v; break;
    case P_INVERT: p->invert = v != 0; break;
    case P_MAX_ITERATIONS: p->max_iterations = v; break;
    case P_ROI_X: p->roi_x = v; break;
    case P_ROI_Y: p->roi_y = v; break;
    case P_ROI_WIDTH: p->roi_width = v; break;
    case P_ROI_HEIGHT: p->roi_height = v; break;
    case P_SEARCH_RANGE: s->link.search_range = w->dval; break;
    case P_MEMORY: s->link.memory = v; break;
    default: return 0;
    }
    return 1;
}

static int export_is_csv(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".csv") == 0;
}

static int export_is_hdf5(const char *path)
{
    char file[512], group[256];
    if (h5array_split(path, "/features", file, sizeof file, group, sizeof group)) return 0;
    size_t n = strlen(file);
    return (n > 3 && strcmp(file + n - 3, ".h5") == 0) || (n > 5 && strcmp(file + n - 5, ".hdf5") == 0);
}

/* [db locked] */
static int detection_write(analysis_stage *s, const param_write *w, char *err, size_t errlen)
{
    detection *d = s->impl;
    int rc = 0;
    if (w->index == P_EXPORT) {
        if (!w->ival) return 0;
        char path[512];
        param_get_string(s->port, P_EXPORT_PATH, path, sizeof path);
        if (!export_is_csv(path) && !export_is_hdf5(path))
            return error_set(err, errlen, "ExportPath \"%s\" must name a .csv, .h5 or .hdf5 file (HDF5: file.h5:/group)",
                             path);
        pthread_mutex_lock(&s->lock);
        if (d->export_pending) {
            rc = error_set(err, errlen, "an export is already running");
        } else {
            d->export_pending = 1;
            str_copy(d->export_path, path, sizeof d->export_path);
            rc = PARAM_ASYNC;
        }
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    pthread_mutex_lock(&s->lock);
    detection_settings candidate = d->wanted;
    if (settings_apply(&candidate, w)) {
        rc = settings_check(&candidate, err, errlen);
        if (rc == 0) {
            d->wanted = candidate;
            d->generation++;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* [stage thread] Writes the last frame's table where ExportPath said; completes the Export write. */
static void detection_service(analysis_stage *s)
{
    detection *d = s->impl;
    char path[512];
    pthread_mutex_lock(&s->lock);
    int pending = d->export_pending;
    str_copy(path, d->export_path, sizeof path);
    pthread_mutex_unlock(&s->lock);
    if (!pending) return;
    char err[700] = "";
    int rc;
    if (export_is_csv(path)) {
        FILE *f = fopen(path, "w");
        rc = f ? locate_table_write_csv(&d->table, f, 1) : -1;
        if (f && fclose(f) != 0) rc = -1;
        if (rc) snprintf(err, sizeof err, "cannot write %s: %s", path, strerror(errno));
    } else {
        char file[512], group[256];
        h5array_split(path, "/features", file, sizeof file, group, sizeof group);
        rc = locate_table_write_hdf5(&d->table, file, group, d->ctx ? locate_ctx_params(d->ctx) : NULL, err, sizeof err);
    }
    if (rc == 0) snprintf(err, sizeof err, "exported %d features to %s", d->table.count, path);
    pthread_mutex_lock(&s->lock);
    d->export_pending = 0;
    pthread_mutex_unlock(&s->lock);
    analysis_message(s, err);
    param_write_done(s->port, P_EXPORT, rc);
}

/* [stage thread] A context for this frame size and the current settings; the linker is kept unless its own
 * parameters changed, so IDs survive a change of detection parameters. */
static int prepare(analysis_stage *s, detection *d, const frame *f, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->lock);
    detection_settings want = d->wanted;
    long generation = d->generation;
    pthread_mutex_unlock(&s->lock);
    if (!d->ctx || generation != d->ctx_generation || f->width != d->ctx_width || f->height != d->ctx_height) {
        locate_ctx_free(d->ctx);
        locate_params p = effective(&want, f->width, f->height);
        d->ctx = locate_ctx_create(&p, f->width, f->height, 65535, err, errlen);
        d->ctx_generation = generation;
        d->ctx_width = f->width;
        d->ctx_height = f->height;
        if (!d->ctx) return -1;
    }
    if (!d->linker || memcmp(&want.link, &d->linker_params, sizeof want.link) != 0) {
        linker_free(d->linker);
        d->linker = linker_create(&want.link, err, errlen);
        d->linker_params = want.link;
        d->have_previous = 0;
        if (!d->linker) return -1;
    }
    return 0;
}

static void publish_table(analysis_stage *s, detection *d, struct timespec stamp)
{
    const locate_table *t = &d->table;
    long n = t->count < d->max_features ? t->count : d->max_features;
    for (long i = 0; i < n; i++) d->ids[i] = (int32_t)t->particle[i];
    param_port *p = s->port;
    param_set_int(p, P_COUNT, t->count);
    param_set_array(p, P_X, t->x, n);
    param_set_array(p, P_Y, t->y, n);
    param_set_array(p, P_MASS, t->mass, n);
    param_set_array(p, P_SIZE, t->size, n);
    param_set_array(p, P_ECC, t->ecc, n);
    param_set_array(p, P_ID, d->ids, n);
    param_set_int(p, P_TRACKED, linker_active_count(d->linker));
    if (d->table_pv) {
        for (long i = 0; i < n; i++) d->id_column[i] = d->ids[i];
        const double *columns[TABLE_COLUMNS] = {t->x, t->y, t->mass, t->size, t->ecc, t->signal, d->id_column};
        pva_table_post(d->table_pv, columns, n, stamp);
    }
}

int detection_pva_table_cmd(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    analysis_stage *s = analysis_find(argv[1], &detection_kind, err, errlen);
    if (!s) return -1;
    detection *d = s->impl;
    if (d->table_pv) return error_set(err, errlen, "%s has its table PV already", argv[1]);
    static const char *const labels[TABLE_COLUMNS] = {"x", "y", "mass", "size", "ecc", "signal", "id"};
    d->table_pv = pva_table_source_add(argv[2], TABLE_COLUMNS, labels, err, errlen);
    if (!d->table_pv) return -1;
    d->id_column = xcalloc((size_t)d->max_features, sizeof *d->id_column);
    return 0;
}

static int detection_process(analysis_stage *s, const frame *f, const float *pixels, char *err, size_t errlen)
{
    detection *d = s->impl;
    if (prepare(s, d, f, err, errlen)) {
        locate_table_clear(&d->table);
        param_set_int(s->port, P_COUNT, 0);
        return -1;
    }
    locate_frame(d->ctx, pixels, (int)(f->id & INT_MAX), &d->table);    /* frame column: the camera's UniqueId */
    /* The prior: moving the stage by +d moves the image content by -d / pixel size. A new pixel size (zoom)
     * breaks the correspondence of pixels, so the tracks start over. */
    double pixel = f->pixel_size > 0 ? f->pixel_size : 1.0;
    double dx = 0, dy = 0;
    if (d->have_previous && pixel != d->previous_pixel) {
        linker_free(d->linker);
        d->linker = linker_create(&d->linker_params, err, errlen);
    } else if (d->have_previous) {
        dx = -(f->stage_x - d->previous_x) / pixel;
        dy = -(f->stage_y - d->previous_y) / pixel;
    }
    linker_link_frame(d->linker, &d->table, dx, dy);
    d->have_previous = 1;
    d->previous_x = f->stage_x;
    d->previous_y = f->stage_y;
    d->previous_pixel = pixel;
    publish_table(s, d, f->stamp);
    snprintf(s->summary, sizeof s->summary, "{\"frame\": %llu, \"count\": %d, \"tracked\": %d}",
             (unsigned long long)f->id, d->table.count, linker_active_count(d->linker));
    return 0;
}

static void detection_create(analysis_stage *s, int max_features)
{
    detection *d = xcalloc(1, sizeof *d);
    d->max_features = max_features;
    /* The defaults of db/detection.db (it explains them): particles of about a pixel on the default camera. */
    locate_params_default(&d->wanted.locate, 5);
    d->wanted.locate.minmass = 150;
    d->wanted.locate.maxsize = 1.1;
    d->wanted.locate.invert = 1;
    d->wanted.locate.separation = 0;
    d->wanted.locate.smoothing_size = 0;
    d->wanted.link = (link_params){.search_range = 5, .memory = 3};
    locate_table_init(&d->table);
    d->ids = xcalloc((size_t)max_features, sizeof *d->ids);
    s->impl = d;
    param_port *p = s->port;
    static const char *const columns[] = {"X", "Y", "Mass", "Size", "Ecc"};      /* P_X .. P_ECC */
    for (int i = 0; i < 5; i++) param_create_array(p, columns[i], DBR_DOUBLE, max_features);
    param_create_array(p, "ID", DBR_LONG, max_features);
    const locate_params *l = &d->wanted.locate;
    param_set_int(p, P_DIAMETER, l->diameter);
    param_set_double(p, P_MINMASS, l->minmass);
    param_set_double(p, P_MAXSIZE, l->maxsize);
    param_set_int(p, P_INVERT, l->invert);
    param_set_double(p, P_NOISE_SIZE, l->noise_size);
    param_set_double(p, P_THRESHOLD, l->threshold);
    param_set_double(p, P_PERCENTILE, l->percentile);
    param_set_int(p, P_MAX_ITERATIONS, l->max_iterations);
    param_set_double(p, P_SEARCH_RANGE, d->wanted.link.search_range);
    param_set_int(p, P_MEMORY, d->wanted.link.memory);
    param_set_string(p, P_EXPORT_PATH, "features.csv");
}

static void detection_destroy(analysis_stage *s)
{
    detection *d = s->impl;
    locate_ctx_free(d->ctx);
    linker_free(d->linker);
    locate_table_free(&d->table);
    free(d->ids);
    free(d->id_column);
    free(d);
}

const analysis_kind detection_kind = {
    .name = "detection",
    .params = detection_params,
    .nparams = sizeof detection_params / sizeof detection_params[0],
    .create = detection_create,
    .write = detection_write,
    .service = detection_service,
    .process = detection_process,
    .destroy = detection_destroy,
};
