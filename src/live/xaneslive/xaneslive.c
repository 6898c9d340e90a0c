/* xaneslive.c -- the live XANES driver (xanesioc.h): settings, the analysis thread and its parameters.
 * `lock` guards `settings` and `restart`. */
#include "live/xaneslive/xaneslive.h"

#include "core/base/base.h"
#include "drivers/camera/camera.h"
#include "core/db/db.h"
#include "core/param/param.h"
#include "core/shell/shell.h"
#include "kernels/xanes/xanes.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
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
    X(P_ANALYSIS_TIME, "AnalysisTime", PARAM_DOUBLE) \
    X(P_MESSAGE, "Message", PARAM_STRING)

enum { XANES_PARAMS(PARAM_ENUM) P_PEAK_MAP, P_R2_MAP, P_STATUS_MAP, P_HISTOGRAM, P_SPECTRUM_ENERGY, P_SPECTRUM };

typedef struct xanes_settings {
    int collect;
    double scale;
    xanes_params fit;
} xanes_settings;

typedef struct xanes_driver {
    char name[40];
    char camera_port[40];
    char energy_channel[DB_NAME_SIZE + 8];
    db_addr energy_addr;
    long max_pixels;
    param_port *port;
    frame_consumer *consumer;
    pthread_t thread;
    atomic_int stopping;
    int running;

    pthread_mutex_t lock;      /* guards settings and restart */
    xanes_settings settings;
    int restart;               /* Collect went to 1: start a new stack */
} xanes_driver;

static xanes_driver *driver;

/* The fit parameters as used: a window with only one edge set yet (an operator typing WindowLo before
 * WindowHi) means the automatic window until both are set. */
static xanes_params effective_fit(const xanes_params *fit)
{
    xanes_params p = *fit;
    if (p.window_lo == 0 || p.window_hi == 0) p.window_lo = p.window_hi = 0;
    return p;
}

/* [db locked] Record writes: check and store the settings. */
static int xanes_write(void *user, const param_write *w, char *err, size_t errlen)
{
    xanes_driver *d = user;
    pthread_mutex_lock(&d->lock);
    xanes_params fit = d->settings.fit;
    int rc = 0;
    switch (w->index) {
    case P_COLLECT:
        d->settings.collect = w->ival != 0;
        if (w->ival) d->restart = 1;
        break;
    case P_SCALE:
        if (!(w->dval > 0)) rc = error_set(err, errlen, "Scale must be positive");
        else d->settings.scale = w->dval;
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
    if (rc == 0) d->settings.fit = fit;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static double read_energy(xanes_driver *d)
{
    double energy = NAN;
    long n = 1;
    db_lock();
    db_get(&d->energy_addr, DBR_DOUBLE, &energy, &n);
    db_unlock();
    return energy;
}

static void publish_result(xanes_driver *d, const xanes_result *r, double seconds)
{
    param_port *p = d->port;
    long n = (long)r->nx * r->ny * r->nz;
    param_set_int(p, P_MAP_WIDTH, r->nx);
    param_set_int(p, P_MAP_HEIGHT, r->ny * r->nz);
    if (n <= d->max_pixels) {
        param_set_array(p, P_PEAK_MAP, r->peak_energy, n);
        param_set_array(p, P_R2_MAP, r->r2, n);
        unsigned char *status = r->status;
        param_set_array(p, P_STATUS_MAP, status, n);
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

static void *xanes_thread(void *arg)
{
    xanes_driver *d = arg;
    xanes_stack stack = {0};
    int have_stack = 0;
    double last_energy = NAN;
    float *image = NULL;
    size_t image_capacity = 0;
    while (!atomic_load(&d->stopping)) {
        frame *f = frame_consumer_next(d->consumer, 0.2);
        pthread_mutex_lock(&d->lock);
        xanes_settings s = d->settings;
        s.fit = effective_fit(&s.fit);
        int restart = d->restart;
        d->restart = 0;
        pthread_mutex_unlock(&d->lock);
        if (restart) {
            if (have_stack) xanes_stack_free(&stack);
            have_stack = 0;
            last_energy = NAN;
            param_set_int(d->port, P_COUNT, 0);
            param_set_string(d->port, P_MESSAGE, "collecting");
            param_post(d->port);
        }
        if (!f) continue;
        double energy = s.collect ? read_energy(d) : NAN;
        int add = s.collect && isfinite(energy) && !(energy == last_energy);
        if (add && have_stack && (f->width != stack.nx || f->height != stack.ny)) {
            param_set_string(d->port, P_MESSAGE, "frame size changed: press Collect to start a new stack");
            add = 0;
        }
        if (add && have_stack && stack.count >= MAX_ENERGIES) {
            param_set_string(d->port, P_MESSAGE, "stack full (512 energies)");
            add = 0;
        }
        if (add) {
            size_t n = (size_t)f->width * f->height;
            if (n > image_capacity) {
                image = xrealloc(image, n * sizeof *image);
                image_capacity = n;
            }
            for (size_t i = 0; i < n; i++) image[i] = (float)(f->data[i] * s.scale);
            if (!have_stack) {
                xanes_stack_init(&stack, f->width, f->height, 1);
                have_stack = 1;
            }
            char err[256];
            if (xanes_stack_add(&stack, energy, image, err, sizeof err) != 0) {
                param_set_string(d->port, P_MESSAGE, err);
            } else {
                last_energy = energy;
                param_set_int(d->port, P_COUNT, stack.count);
                param_set_double(d->port, P_LAST_ENERGY, energy);
                xanes_result result;
                double t0 = time_monotonic();
                if (stack.count >= s.fit.order + 1 && xanes_analyse(&stack, &s.fit, &result, err, sizeof err) == 0) {
                    publish_result(d, &result, time_monotonic() - t0);
                    xanes_result_free(&result);
                    param_set_string(d->port, P_MESSAGE, "analysed");
                } else {
                    param_set_string(d->port, P_MESSAGE, stack.count >= s.fit.order + 1 ? err : "collecting");
                }
            }
        }
        frame_consumer_done(d->consumer, f);
        param_post(d->port);
    }
    if (have_stack) xanes_stack_free(&stack);
    free(image);
    return NULL;
}

static int configure_cmd(int argc, char **argv, char *err, size_t errlen)
{
    long max_pixels;
    if (driver) return error_set(err, errlen, "live XANES is configured already (%s)", driver->name);
    if (shell_arg_long(argv[4], "MAX_PIXELS", &max_pixels, err, errlen)) return -1;
    if (max_pixels < 1 || max_pixels > 16L * 1024 * 1024) return error_set(err, errlen, "MAX_PIXELS must be 1..16Mi");
    if (!camera_find(argv[2])) return error_set(err, errlen, "no camera port %s (cameraConfigure first)", argv[2]);
    xanes_driver *d = xcalloc(1, sizeof *d);
    d->port = param_port_create(argv[1], xanes_write, d);
    if (!d->port) {
        free(d);
        return error_set(err, errlen, "parameter port %s exists already", argv[1]);
    }
    str_copy(d->name, argv[1], sizeof d->name);
    str_copy(d->camera_port, argv[2], sizeof d->camera_port);
    str_copy(d->energy_channel, argv[3], sizeof d->energy_channel);
    d->max_pixels = max_pixels;
    d->settings.scale = 1.0;
    xanes_params_default(&d->settings.fit);
    d->settings.fit.threads = 1;       /* one analysis thread; the IOC has other work */
    pthread_mutex_init(&d->lock, NULL);
    static const param_def defs[] = {XANES_PARAMS(PARAM_DEF)};
    param_create_table(d->port, defs, sizeof defs / sizeof defs[0]);
    param_create_array(d->port, "PeakMap", DBR_FLOAT, max_pixels);
    param_create_array(d->port, "R2Map", DBR_FLOAT, max_pixels);
    param_create_array(d->port, "StatusMap", DBR_CHAR, max_pixels);
    param_create_array(d->port, "Histogram", DBR_LONG, 1024);
    param_create_array(d->port, "SpectrumEnergy", DBR_DOUBLE, MAX_ENERGIES);
    param_create_array(d->port, "Spectrum", DBR_DOUBLE, MAX_ENERGIES);
    const xanes_params *fit = &d->settings.fit;
    param_set_double(d->port, P_SCALE, 1.0);
    param_set_int(d->port, P_ORDER, fit->order);
    param_set_double(d->port, P_HALF_WIDTH, fit->half_width);
    param_set_int(d->port, P_HIST_BINS, fit->hist_bins);
    param_set_string(d->port, P_MESSAGE, "idle");
    driver = d;
    return 0;
}

static void xanes_start(void *user)
{
    xanes_driver *d = driver;
    if (!d) return;
    if (db_name_to_addr(d->energy_channel, &d->energy_addr) != DB_OK) {
        log_error("xanes", "%s: energy channel %s does not exist; live XANES is off", d->name, d->energy_channel);
        param_set_string(d->port, P_MESSAGE, "energy channel does not exist");
        param_post(d->port);
        return;
    }
    d->consumer = frame_ring_add_consumer(camera_ring(camera_find(d->camera_port)), "xanes", FRAMES_NEWEST);
    if (!d->consumer) return;
    pthread_create(&d->thread, NULL, xanes_thread, d);
    d->running = 1;
}

static void xanes_stop(void *user)
{
    if (!driver || !driver->running) return;
    atomic_store(&driver->stopping, 1);
    pthread_join(driver->thread, NULL);
}

static void xanes_free(void *user)
{
    if (!driver) return;
    param_port_destroy(driver->port);
    pthread_mutex_destroy(&driver->lock);
    free(driver);
    driver = NULL;
}

void xanesioc_register(void)
{
    shell_register("xanesLiveConfigure", "xanesLiveConfigure(PORT, CAMERA_PORT, ENERGY_CHANNEL, MAX_PIXELS)", 4, 4,
                   configure_cmd);
    db_at_init(xanes_start, NULL);
    db_at_shutdown(xanes_stop, NULL);
    db_at_exit(xanes_free, NULL);
}
