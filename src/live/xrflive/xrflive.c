/* xrflive.c -- the XRF correction driver (xrfioc.h): configuration, parameters, the ingest thread and the
 * queue of chunks written through PVs. `lock` guards the request queue and the abort flag. */
#include "live/xrflive/xrflive.h"

#include "core/base/base.h"
#include "core/db/db.h"
#include "core/param/param.h"
#include "core/shell/shell.h"
#include "kernels/xrf/xrf.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PV_QUEUE 8
#define HEADER_SIZE 1024
#define MAX_CHUNK_VALUES (1 << 20)

#define XRF_PARAMS(X) \
    X(P_ACTIVE, "Active", PARAM_INT) \
    X(P_ENDED, "Ended", PARAM_INT) \
    X(P_SCAN_ID, "ScanId", PARAM_INT) \
    X(P_WIDTH, "Width", PARAM_INT) \
    X(P_HEIGHT, "Height", PARAM_INT) \
    X(P_DIRECTION, "Direction", PARAM_STRING) \
    X(P_LINES, "LinesReceived", PARAM_INT) \
    X(P_ROWS_FINAL, "RowsFinal", PARAM_INT) \
    X(P_PROGRESS, "Progress", PARAM_DOUBLE) \
    X(P_ACCEPTED, "ChunksAccepted", PARAM_INT) \
    X(P_REJECTED, "ChunksRejected", PARAM_INT) \
    X(P_LAST_STATUS, "LastStatus", PARAM_STRING) \
    X(P_LAST_ERROR, "LastError", PARAM_STRING) \
    X(P_LATENCY, "Latency", PARAM_DOUBLE) \
    X(P_MAX_LATENCY, "MaxLatency", PARAM_DOUBLE) \
    X(P_SCANS_DONE, "ScansDone", PARAM_INT) \
    X(P_ITERATIONS, "Iterations", PARAM_INT) \
    X(P_ELEMENTS, "Elements", PARAM_STRING) \
    X(P_N_ELEMENTS, "NElements", PARAM_INT) \
    X(P_PULL_ENDPOINT, "PullEndpoint", PARAM_STRING) \
    X(P_PUB_ENDPOINT, "PubEndpoint", PARAM_STRING) \
    X(P_XRAYLIB, "XraylibVersion", PARAM_STRING) \
    X(P_MAP_RATE, "MapRate", PARAM_DOUBLE) \
    X(P_ABORT, "Abort", PARAM_INT) \
    X(P_CHUNK_HEADER, "ChunkHeader", PARAM_STRING) \
    X(P_CHUNK_PUSH, "ChunkPush", PARAM_INT) \
    X(P_QUEUE_FREE, "QueueFree", PARAM_INT)

enum { XRF_PARAMS(PARAM_ENUM) P_CHUNK_DATA };

typedef struct pv_chunk {
    char header[HEADER_SIZE];
    double *data;
    long nvalues;
} pv_chunk;

typedef struct xrf_driver {
    char name[40];
    param_port *port;
    xrf_config cfg;
    xrf_ingest *ingest;
    long max_pixels;
    int map_param[2][XRF_MAX_ELEMENTS];     /* [0] corrected, [1] weight fraction, per element */
    pthread_t thread;
    atomic_int stopping;
    double map_rate;

    pthread_mutex_t lock;                    /* guards the fields below */
    pv_chunk queue[PV_QUEUE];
    int queued;
    int abort_requested;
} xrf_driver;

static xrf_driver *driver;     /* one correction engine per IOC */

static const char *const direction_names[] = {"y descending", "y ascending", "x ascending", "x descending"};

/* [db locked] Record writes: queue work for the ingest thread, never touch the stream here. */
static int xrf_write(void *user, const param_write *w, char *err, size_t errlen)
{
    xrf_driver *d = user;
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    switch (w->index) {
    case P_ABORT:
        if (w->ival) d->abort_requested = 1;
        break;
    case P_MAP_RATE:
        if (w->dval <= 0 || w->dval > 50) rc = error_set(err, errlen, "MapRate must be > 0 and <= 50 Hz");
        else d->map_rate = w->dval;
        break;
    case P_CHUNK_PUSH: {
        if (!w->ival) break;
        if (d->queued == PV_QUEUE) {
            rc = error_set(err, errlen, "%d chunks already waiting; push again later", PV_QUEUE);
            break;
        }
        pv_chunk *c = &d->queue[d->queued];
        param_get_string(d->port, P_CHUNK_HEADER, c->header, sizeof c->header);
        long n = param_array_length(d->port, P_CHUNK_DATA);
        c->data = xmalloc((size_t)(n ? n : 1) * sizeof *c->data);
        c->nvalues = param_get_array(d->port, P_CHUNK_DATA, c->data, n);
        d->queued++;
        break;
    }
    default:
        break;
    }
    param_set_int(d->port, P_QUEUE_FREE, PV_QUEUE - d->queued);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* A PV chunk as ingest message parts: the header, then n_elements + 1 equal parts of the data. */
static void handle_pv_chunk(xrf_driver *d, pv_chunk *c)
{
    const void *parts[2 + XRF_MAX_ELEMENTS];
    size_t sizes[2 + XRF_MAX_ELEMENTS];
    parts[0] = c->header;
    sizes[0] = strlen(c->header);
    int nparts = 1;
    if (c->nvalues > 0) {
        int data_parts = d->cfg.n_elements + 1;
        long per_part = c->nvalues / data_parts;
        /* a length that does not split evenly is passed on as is, so the ingest reports it as truncated */
        for (int i = 0; i < data_parts; i++) {
            parts[nparts] = c->data + (size_t)i * per_part;
            sizes[nparts++] = (size_t)(i + 1 < data_parts ? per_part : c->nvalues - per_part * i) * sizeof(double);
        }
    }
    xrf_ingest_handle(d->ingest, parts, sizes, nparts);
}

static void publish_status(xrf_driver *d)
{
    xrf_stream_info info;
    xrf_stream_get_info(xrf_ingest_stream(d->ingest), &info);
    param_port *p = d->port;
    param_set_int(p, P_ACTIVE, info.active);
    param_set_int(p, P_ENDED, info.ended);
    param_set_int(p, P_SCAN_ID, (long)info.scan_id);
    param_set_int(p, P_WIDTH, info.width);
    param_set_int(p, P_HEIGHT, info.height);
    param_set_string(p, P_DIRECTION, direction_names[info.direction]);
    param_set_int(p, P_LINES, info.lines_received);
    param_set_int(p, P_ROWS_FINAL, info.rows_final);
    param_set_double(p, P_PROGRESS, info.height > 0 ? 100.0 * info.rows_final / info.height : 0);
    xrf_status last;
    char error[256];
    uint32_t rejected;
    xrf_ingest_last(d->ingest, &last, error, sizeof error, &rejected);
    param_set_int(p, P_ACCEPTED, (long)info.chunks_accepted);
    param_set_int(p, P_REJECTED, (long)rejected);
    param_set_string(p, P_LAST_STATUS, xrf_status_name(last));
    param_set_string(p, P_LAST_ERROR, error);
    param_set_alarm(p, P_LAST_STATUS, last == XRF_OK ? STAT_NO_ALARM : STAT_STATE, last == XRF_OK ? NO_ALARM : MINOR_ALARM);
    param_set_double(p, P_LATENCY, info.last_latency_s * 1e3);
    param_set_double(p, P_MAX_LATENCY, info.max_latency_s * 1e3);
    param_set_int(p, P_SCANS_DONE, xrf_ingest_scans_done(d->ingest));
    param_set_int(p, P_ITERATIONS, info.active || info.ended ? 1 : 0);
}

static void publish_maps(xrf_driver *d)
{
    xrf_stream *s = xrf_ingest_stream(d->ingest);
    xrf_stream_info info;
    xrf_stream_get_info(s, &info);
    long n = (long)info.width * info.height;
    if (n <= 0 || n > d->max_pixels) return;
    for (int c = 0; c < d->cfg.n_elements; c++) {
        param_set_array(d->port, d->map_param[0][c], xrf_stream_corrected(s, c), n);
        param_set_array(d->port, d->map_param[1][c], xrf_stream_fractions(s, c), n);
    }
}

static void *ingest_thread(void *arg)
{
    xrf_driver *d = arg;
    double last_maps = 0;
    int last_ended = 0;
    uint32_t last_seen = (uint32_t)-1;
    while (!atomic_load(&d->stopping)) {
        int handled = xrf_ingest_poll(d->ingest, 100);
        pthread_mutex_lock(&d->lock);
        int n = d->queued, abort_now = d->abort_requested;
        pv_chunk work[PV_QUEUE];
        memcpy(work, d->queue, (size_t)n * sizeof *work);
        d->queued = 0;
        d->abort_requested = 0;
        param_set_int(d->port, P_QUEUE_FREE, PV_QUEUE);
        pthread_mutex_unlock(&d->lock);
        for (int i = 0; i < n; i++) {
            handle_pv_chunk(d, &work[i]);
            free(work[i].data);
        }
        if (abort_now) {
            xrf_stream_abort(xrf_ingest_stream(d->ingest));
            log_info("xrf", "%s: scan aborted from a PV", d->name);
        }
        xrf_stream_info info;
        xrf_stream_get_info(xrf_ingest_stream(d->ingest), &info);
        xrf_status last;
        char error[256];
        uint32_t rejected;
        xrf_ingest_last(d->ingest, &last, error, sizeof error, &rejected);
        uint32_t seen = info.chunks_accepted + rejected;
        if (handled || n || abort_now || seen != last_seen) publish_status(d);
        double now = time_monotonic();
        int ended_now = info.ended && !last_ended;
        if ((seen != last_seen && now - last_maps >= 1.0 / d->map_rate) || ended_now) {
            publish_maps(d);
            last_maps = now;
        }
        last_seen = seen;
        last_ended = info.ended;
        param_post(d->port);
    }
    return NULL;
}

/* OUT_DIR and the folders above it are created when missing (mkdir -p), so a fresh data folder just works. */
static int make_directories(const char *path, char *err, size_t errlen)
{
    char partial[1024];
    if (str_copy(partial, path, sizeof partial) >= sizeof partial) return error_set(err, errlen, "OUT_DIR is too long");
    for (char *p = partial + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char was = *p;
        *p = '\0';
        if (mkdir(partial, 0775) != 0 && errno != EEXIST)
            return error_set(err, errlen, "cannot create the XRF output folder %s: %s", partial, strerror(errno));
        *p = was;
        if (!was) break;
    }
    struct stat info;
    if (stat(path, &info) != 0 || !S_ISDIR(info.st_mode))
        return error_set(err, errlen, "XRF output folder %s is not a folder", path);
    return 0;
}

static int configure_cmd(int argc, char **argv, char *err, size_t errlen)
{
    long max_pixels;
    if (driver) return error_set(err, errlen, "the XRF correction is configured already (%s)", driver->name);
    if (shell_arg_long(argv[6], "MAX_PIXELS", &max_pixels, err, errlen)) return -1;
    if (max_pixels < 1 || max_pixels > 16L * 1024 * 1024) return error_set(err, errlen, "MAX_PIXELS must be 1..16Mi");
    if (argv[5][0] && make_directories(argv[5], err, errlen)) return -1;
    xrf_driver *d = xcalloc(1, sizeof *d);
    if (xrf_config_load(&d->cfg, argv[2], err, errlen) != 0) {
        free(d);
        return -1;
    }
    d->ingest = xrf_ingest_new(&d->cfg, argv[3], argv[4][0] ? argv[4] : NULL, argv[5][0] ? argv[5] : NULL, err, errlen);
    if (!d->ingest) {
        free(d);
        return -1;
    }
    d->port = param_port_create(argv[1], xrf_write, d);
    if (!d->port) {
        xrf_ingest_free(d->ingest);
        free(d);
        return error_set(err, errlen, "parameter port %s exists already", argv[1]);
    }
    str_copy(d->name, argv[1], sizeof d->name);
    d->max_pixels = max_pixels;
    d->map_rate = 2.0;
    pthread_mutex_init(&d->lock, NULL);
    static const param_def defs[] = {XRF_PARAMS(PARAM_DEF)};
    param_create_table(d->port, defs, sizeof defs / sizeof defs[0]);
    param_create_array(d->port, "ChunkData", DBR_DOUBLE, MAX_CHUNK_VALUES);
    char elements[XRF_MAX_ELEMENTS * 8] = "", name[32];
    for (int c = 0; c < d->cfg.n_elements; c++) {
        snprintf(name, sizeof name, "Corrected%d", c);
        d->map_param[0][c] = param_create_array(d->port, name, DBR_DOUBLE, max_pixels);
        snprintf(name, sizeof name, "Fraction%d", c);
        d->map_param[1][c] = param_create_array(d->port, name, DBR_DOUBLE, max_pixels);
        snprintf(name, sizeof name, "Element%d", c);
        param_set_string(d->port, param_create(d->port, name, PARAM_STRING), d->cfg.element[c].symbol);
        strcat(elements, c ? " " : "");
        strcat(elements, d->cfg.element[c].symbol);
    }
    char endpoint[256];
    xrf_ingest_endpoint(d->ingest, 1, endpoint, sizeof endpoint);
    param_set_string(d->port, P_PULL_ENDPOINT, endpoint);
    xrf_ingest_endpoint(d->ingest, 0, endpoint, sizeof endpoint);
    param_set_string(d->port, P_PUB_ENDPOINT, endpoint);
    param_set_string(d->port, P_ELEMENTS, elements);
    param_set_int(d->port, P_N_ELEMENTS, d->cfg.n_elements);
    param_set_string(d->port, P_XRAYLIB, xrf_xraylib_version());
    param_set_double(d->port, P_MAP_RATE, d->map_rate);
    param_set_int(d->port, P_QUEUE_FREE, PV_QUEUE);
    param_set_string(d->port, P_LAST_STATUS, "idle");
    driver = d;
    log_info("xrf", "%s: correcting %s from %s", d->name, elements, argv[3]);
    return 0;
}

static void xrf_start(void *user)
{
    if (driver) pthread_create(&driver->thread, NULL, ingest_thread, driver);
}

static void xrf_stop(void *user)
{
    if (!driver) return;
    atomic_store(&driver->stopping, 1);
    pthread_join(driver->thread, NULL);
}

static void xrf_free(void *user)
{
    xrf_driver *d = driver;
    if (!d) return;
    for (int i = 0; i < d->queued; i++) free(d->queue[i].data);
    xrf_ingest_free(d->ingest);
    param_port_destroy(d->port);
    pthread_mutex_destroy(&d->lock);
    free(d);
    driver = NULL;
}

void xrfioc_register(void)
{
    shell_register("xrfCorrectionConfigure",
                   "xrfCorrectionConfigure(PORT, CONFIG_JSON, PULL_ENDPOINT, PUB_ENDPOINT, OUT_DIR, MAX_PIXELS)", 6, 6,
                   configure_cmd);
    db_at_init(xrf_start, NULL);
    db_at_shutdown(xrf_stop, NULL);
    db_at_exit(xrf_free, NULL);
}
