/* xanes.c -- the live XANES stage (stages.h): while an energy scan runs, each frame taken at a new energy joins
 * the stack and the white-line map, fit quality, histogram, centroid, spread and the summed spectrum's peak are
 * recomputed (src/kernels/xanes) and published. The stage machinery (stage.c) runs the thread and publishes
 * Enable/Message/Status/FrameId/Processed/Dropped/Rate/Latency/ComputeTime; this file is the kind's hooks and its
 * st.cmd command. s->lock guards `settings` and `restart`; the stack belongs to the stage's thread. */
#include "live/stages/stages_internal.h"

#include "core/base/base.h"
#include "core/db/db.h"
#include "core/shell/shell.h"
#include "kernels/xanes/xanes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENERGIES 512

#define XANES_PARAMS(X) \
    X(P_COLLECT, "Collect", PARAM_INT) \
    X(P_COUNT, "Count", PARAM_INT) \
    X(P_LAST_ENERGY, "LastEnergy", PARAM_DOUBLE) \
    X(P_SCALE, "Scale", PARAM_DOUBLE) \
    X(P_ORDER, "Order", PARAM_INT) \
    X(P_HALF_WIDTH, "HalfWidth", PARAM_DOUBLE) \
    X(P_WINDOW_LO, "WindowLo", PARAM_DOUBLE) \
    X(P_WINDOW_HI, "WindowHi", PARAM_DOUBLE) \
    X(P_MASK_MODE, "MaskMode", PARAM_INT) \
    X(P_MASK_THRESHOLD, "MaskThreshold", PARAM_DOUBLE) \
    X(P_EDGE_ENERGY, "EdgeEnergy", PARAM_DOUBLE) \
    X(P_HIST_BINS, "HistBins", PARAM_INT) \
    X(P_MAP_WIDTH, "MapWidth", PARAM_INT) \
    X(P_MAP_HEIGHT, "MapHeight", PARAM_INT) \
    X(P_CENTROID, "Centroid", PARAM_DOUBLE) \
    X(P_STD, "Std", PARAM_DOUBLE) \
    X(P_SUMMED_PEAK, "SummedPeak", PARAM_DOUBLE) \
    X(P_N_OK, "NOk", PARAM_INT) \
    X(P_N_NO_PEAK, "NNoPeak", PARAM_INT) \
    X(P_N_MASKED, "NMasked", PARAM_INT) \
    X(P_HIST_LO, "HistLo", PARAM_DOUBLE) \
    X(P_HIST_HI, "HistHi", PARAM_DOUBLE) \
    X(P_ANALYSIS_TIME, "AnalysisTime", PARAM_DOUBLE)

enum { XANES_FIRST = ANALYSIS_NCOMMON - 1, XANES_PARAMS(PARAM_ENUM) P_PEAK_MAP, P_R2_MAP, P_STATUS_MAP, P_HISTOGRAM,
       P_SPECTRUM_ENERGY, P_SPECTRUM };
static const param_def xanes_params_table[] = {XANES_PARAMS(PARAM_DEF)};

typedef struct xanes_settings {
    int collect;
    double scale;
    xanes_params fit;
} xanes_settings;

typedef struct xanes_live {
    char energy_channel[DB_NAME_SIZE + 8];
    db_number energy;              /* a record here, or the mono of another IOC */
    int energy_resolved;           /* [thread] 1 found, -1 missing (said once), 0 not yet looked up */
    long max_pixels;
    /* [s->lock] */
    xanes_settings settings;
    int restart;                   /* Collect went to 1: start a new stack */
    /* [thread] */
    xanes_stack stack;
    int have_stack;
    double last_energy;
    float *image;
    size_t image_capacity;
} xanes_live;

/* The fit parameters as used: a window with only one edge set yet (an operator typing WindowLo before
 * WindowHi) means the automatic window until both are set. */
static xanes_params effective_fit(const xanes_params *fit)
{
    xanes_params p = *fit;
    if (p.window_lo == 0 || p.window_hi == 0) p.window_lo = p.window_hi = 0;
    return p;
}

static void xanes_create(analysis_stage *s, int max_pixels)
{
    xanes_live *x = xcalloc(1, sizeof *x);
    x->max_pixels = max_pixels;
    x->settings.scale = 1.0;
    x->last_energy = NAN;
    xanes_params_default(&x->settings.fit);
    x->settings.fit.threads = 1;       /* one analysis thread; the IOC has other work */
    s->impl = x;
    param_port *p = s->port;
    param_create_array(p, "PeakMap", DBR_FLOAT, max_pixels);
    param_create_array(p, "R2Map", DBR_FLOAT, max_pixels);
    param_create_array(p, "StatusMap", DBR_CHAR, max_pixels);
    param_create_array(p, "Histogram", DBR_LONG, 1024);
    param_create_array(p, "SpectrumEnergy", DBR_DOUBLE, MAX_ENERGIES);
    param_create_array(p, "Spectrum", DBR_DOUBLE, MAX_ENERGIES);
    const xanes_params *fit = &x->settings.fit;
    param_set_double(p, P_SCALE, 1.0);
    param_set_int(p, P_ORDER, fit->order);
    param_set_double(p, P_HALF_WIDTH, fit->half_width);
    param_set_int(p, P_HIST_BINS, fit->hist_bins);
    param_set_string(p, P_MESSAGE, "idle");
}

/* [db locked] Record writes: check and store the settings. */
static int xanes_write(analysis_stage *s, const param_write *w, char *err, size_t errlen)
{
    xanes_live *x = s->impl;
    pthread_mutex_lock(&s->lock);
    xanes_params fit = x->settings.fit;
    int rc = 0;
    switch (w->index) {
    case P_COLLECT:
        x->settings.collect = w->ival != 0;
        if (w->ival) x->restart = 1;
        break;
    case P_SCALE:
        if (!(w->dval > 0)) rc = error_set(err, errlen, "Scale must be positive");
        else x->settings.scale = w->dval;
        break;
    case P_ORDER: fit.order = (int)w->ival; break;
    case P_HALF_WIDTH: fit.half_width = w->dval; break;
    case P_WINDOW_LO: fit.window_lo = w->dval; break;
    case P_WINDOW_HI: fit.window_hi = w->dval; break;
    case P_MASK_MODE: fit.mask_mode = (xanes_mask_mode)w->ival; break;
    case P_MASK_THRESHOLD: fit.mask_threshold = w->dval; break;
    case P_EDGE_ENERGY: fit.edge_energy = w->dval; break;
    case P_HIST_BINS: fit.hist_bins = (int)w->ival; break;
    default: break;
    }
    if (rc == 0 && (w->index == P_MASK_MODE && (w->ival < 0 || w->ival > XANES_MASK_MEAN)))
        rc = error_set(err, errlen, "MaskMode must be 0 (none), 1 (edge jump) or 2 (mean)");
    xanes_params check = effective_fit(&fit);
    if (rc == 0 && xanes_params_check(&check, err, errlen) != 0) rc = -1;
    if (rc == 0) x->settings.fit = fit;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* [thread] Finds the energy channel once (records exist from iocInit on), and starts a new stack when Collect
 * went to 1. */
static void xanes_service(analysis_stage *s)
{
    xanes_live *x = s->impl;
    if (!x->energy_resolved) {
        char err[256];
        x->energy_resolved = db_number_resolve(&x->energy, x->energy_channel, s->name, err, sizeof err) == 0 ? 1 : -1;
        if (x->energy_resolved < 0) {
            log_error("xanes", "%s: energy channel: %s; no frame is added", s->name, err);
            analysis_message(s, "energy channel does not exist");
        }
    }
    pthread_mutex_lock(&s->lock);
    int restart = x->restart;
    x->restart = 0;
    pthread_mutex_unlock(&s->lock);
    if (!restart) return;
    if (x->have_stack) xanes_stack_free(&x->stack);
    x->have_stack = 0;
    x->last_energy = NAN;
    param_set_int(s->port, P_COUNT, 0);
    analysis_message(s, "collecting");
}

/* The mono energy now: 0, or -1 with err (the mono of another IOC not connected). */
static int read_energy(xanes_live *x, double *energy, char *err, size_t errlen)
{
    db_lock();
    int rc = db_number_read(&x->energy, energy, NULL, 0, err, errlen);
    db_unlock();
    return rc;
}

static void publish_result(analysis_stage *s, const xanes_result *r, double seconds)
{
    xanes_live *x = s->impl;
    param_port *p = s->port;
    long n = (long)r->nx * r->ny * r->nz;
    param_set_int(p, P_MAP_WIDTH, r->nx);
    param_set_int(p, P_MAP_HEIGHT, r->ny * r->nz);
    if (n <= x->max_pixels) {
        param_set_array(p, P_PEAK_MAP, r->peak_energy, n);
        param_set_array(p, P_R2_MAP, r->r2, n);
        param_set_array(p, P_STATUS_MAP, r->status, n);
    }
    int32_t hist[1024];
    int bins = r->hist_bins < 1024 ? r->hist_bins : 1024;
    for (int i = 0; i < bins; i++) hist[i] = (int32_t)r->hist[i];
    param_set_array(p, P_HISTOGRAM, hist, bins);
    param_set_double(p, P_HIST_LO, r->hist_lo);
    param_set_double(p, P_HIST_HI, r->hist_hi);
    param_set_double(p, P_CENTROID, r->centroid);
    param_set_double(p, P_STD, r->std);
    param_set_double(p, P_SUMMED_PEAK, r->summed.status == XANES_OK ? r->summed.peak_energy : NAN);
    param_set_int(p, P_N_OK, r->n_ok);
    param_set_int(p, P_N_NO_PEAK, r->n_no_peak);
    param_set_int(p, P_N_MASKED, r->n_masked);
    param_set_array(p, P_SPECTRUM_ENERGY, r->spectrum_energy, r->spectrum_count);
    param_set_array(p, P_SPECTRUM, r->summed_spectrum, r->spectrum_count);
    param_set_double(p, P_ANALYSIS_TIME, seconds * 1e3);
}

/* [thread] A frame: added to the stack (value = pixel * Scale) when collecting and the energy channel shows a
 * new energy, then the stack is analysed. Frames at an energy already in the stack are left out. */
static int xanes_process(analysis_stage *s, const frame *f, const float *pixels, char *err, size_t errlen)
{
    xanes_live *x = s->impl;
    analysis_note(s, NULL);            /* Message tells the stack's progress, not "OK" */
    pthread_mutex_lock(&s->lock);
    xanes_settings set = x->settings;
    pthread_mutex_unlock(&s->lock);
    set.fit = effective_fit(&set.fit);
    if (!set.collect || x->energy_resolved < 0) return 0;
    double energy = NAN;
    char why[256];
    if (read_energy(x, &energy, why, sizeof why)) return error_set(err, errlen, "energy unknown: %s", why);
    if (!isfinite(energy) || energy == x->last_energy) return 0;
    if (x->have_stack && (f->width != x->stack.nx || f->height != x->stack.ny))
        return error_set(err, errlen, "frame size changed: press Collect to start a new stack");
    if (x->have_stack && x->stack.count >= MAX_ENERGIES)
        return error_set(err, errlen, "stack full (%d energies)", MAX_ENERGIES);
    size_t n = (size_t)f->width * f->height;
    if (n > x->image_capacity) {
        x->image = xrealloc(x->image, n * sizeof *x->image);
        x->image_capacity = n;
    }
    for (size_t i = 0; i < n; i++) x->image[i] = (float)(pixels[i] * set.scale);
    if (!x->have_stack) {
        xanes_stack_init(&x->stack, f->width, f->height, 1);
        x->have_stack = 1;
    }
    if (xanes_stack_add(&x->stack, energy, x->image, err, errlen) != 0) return -1;
    x->last_energy = energy;
    param_set_int(s->port, P_COUNT, x->stack.count);
    param_set_double(s->port, P_LAST_ENERGY, energy);
    if (x->stack.count < set.fit.order + 1) {
        analysis_note(s, "collecting");
        return 0;
    }
    xanes_result result;
    double t0 = time_monotonic();
    if (xanes_analyse(&x->stack, &set.fit, &result, err, errlen) != 0) return -1;
    publish_result(s, &result, time_monotonic() - t0);
    xanes_result_free(&result);
    analysis_note(s, "analysed");
    return 0;
}

static void xanes_destroy(analysis_stage *s)
{
    xanes_live *x = s->impl;
    if (x->have_stack) xanes_stack_free(&x->stack);
    free(x->image);
    free(x);
}

const analysis_kind xanes_kind = {
    .name = "xanes",
    .params = xanes_params_table,
    .nparams = sizeof xanes_params_table / sizeof xanes_params_table[0],
    .create = xanes_create,
    .write = xanes_write,
    .service = xanes_service,
    .process = xanes_process,
    .destroy = xanes_destroy,
};

/* xanesLiveConfigure(PORT, CAMERA_PORT, ENERGY_CHANNEL, MAX_PIXELS) */
int xanes_configure_cmd(int argc, char **argv, char *err, size_t errlen)
{
    long max_pixels;
    if (shell_arg_long(argv[4], "MAX_PIXELS", &max_pixels, err, errlen)) return -1;
    if (max_pixels < 1 || max_pixels > 16L * 1024 * 1024) return error_set(err, errlen, "MAX_PIXELS must be 1..16Mi");
    analysis_stage *s = analysis_configure(&xanes_kind, argv[1], argv[2], (int)max_pixels, err, errlen);
    if (!s) return -1;
    xanes_live *x = s->impl;
    str_copy(x->energy_channel, argv[3], sizeof x->energy_channel);
    return 0;
}
