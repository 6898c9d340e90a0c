/* stage.c -- the analysis stages' common machinery: the st.cmd configuration commands, the parameter port
 * (common parameters, validation of writes), the thread that takes the newest frame and hands it to the
 * kind's process hook, the frame statistics, and start/stop at iocInit/shutdown (analysis.h). */
#include "live/stages/stages_internal.h"

#include "core/base/base.h"
#include "core/shell/shell.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_FEATURES 4096

static analysis_stage **stages;   /* as many as st.cmd configures */
static int nstages;

void analysis_message(analysis_stage *s, const char *message)
{
    param_set_string(s->port, P_MESSAGE, message);
    param_post(s->port);
}

void analysis_note(analysis_stage *s, const char *message)
{
    if (message) param_set_string(s->port, P_MESSAGE, message);
    s->noted = 1;
}

void analysis_roi_resolve(int x, int y, int *width, int *height, int frame_width, int frame_height)
{
    if (x == 0 && y == 0 && *width == 0 && *height == 0) return;
    if (*width == 0) *width = frame_width - x > 0 ? frame_width - x : 1;
    if (*height == 0) *height = frame_height - y > 0 ? frame_height - y : 1;
}

/* [db locked] A record wrote a parameter: the common ones here, the kind's by its hook. A refusal also
 * goes to the Message parameter, so an operator sees why the record is in alarm. */
static int stage_write(void *driver, const param_write *w, char *err, size_t errlen)
{
    analysis_stage *s = driver;
    int rc = 0;
    if (w->index == P_ENABLE) {
        pthread_mutex_lock(&s->lock);
        s->enabled = w->ival != 0;
        pthread_mutex_unlock(&s->lock);
    } else if (w->index >= ANALYSIS_NCOMMON) {
        rc = s->kind->write(s, w, err, errlen);
    }
    if (rc < 0) {
        char message[300];
        snprintf(message, sizeof message, "%s refused: %s", w->name, err);
        analysis_message(s, message);
    }
    return rc;
}

/* [stage thread] Publishes Status (its record's ONSV raises the alarm), and Message when a frame failed or
 * the stage recovered: a refusal message stays visible while frames keep succeeding. */
static void publish_status(analysis_stage *s, int failed, const char *err)
{
    if (failed) param_set_string(s->port, P_MESSAGE, err);
    else if (s->last_status != 0 && !s->noted) param_set_string(s->port, P_MESSAGE, "OK");
    param_set_int(s->port, P_STATUS, failed);
    s->last_status = failed;
}

static void frame_to_pixels(analysis_stage *s, const frame *f)
{
    size_t n = (size_t)f->width * f->height;
    if (n > s->pixels_capacity) {
        s->pixels = xrealloc(s->pixels, n * sizeof *s->pixels);
        s->pixels_capacity = n;
    }
    for (size_t i = 0; i < n; i++) s->pixels[i] = f->data[i];
}

static void *stage_thread(void *arg)
{
    analysis_stage *s = arg;
    param_port *p = s->port;
    long processed = 0;
    while (!atomic_load(&s->stopping)) {
        if (s->kind->service) s->kind->service(s);
        frame *f = frame_consumer_next(s->consumer, 0.2);
        if (!f) continue;
        pthread_mutex_lock(&s->lock);
        int enabled = s->enabled;
        pthread_mutex_unlock(&s->lock);
        if (!enabled) {
            frame_consumer_done(s->consumer, f);
            continue;
        }
        double start = time_monotonic();
        char err[300] = "";
        s->noted = 0;
        frame_to_pixels(s, f);
        int failed = s->kind->process(s, f, s->pixels, err, sizeof err) != 0;
        double compute = time_monotonic() - start;
        uint64_t id = f->id;
        frame_consumer_done(s->consumer, f);

        frame_consumer_stats st;
        frame_consumer_stats_get(s->consumer, &st);
        param_set_int(p, P_FRAME_ID, (long)id);
        param_set_int(p, P_PROCESSED, ++processed);
        param_set_int(p, P_DROPPED, (long)st.dropped);
        param_set_double(p, P_RATE, st.rate_hz);
        param_set_double(p, P_LATENCY, st.latency_s);
        param_set_double(p, P_COMPUTE_TIME, compute);
        publish_status(s, failed, err);
        param_post(p);
        camera_post_result(s->cam, s->kind->name, failed || !s->summary[0] ? NULL : s->summary);
    }
    return NULL;
}

analysis_stage *analysis_configure(const analysis_kind *kind, const char *port, const char *camera_port,
                                   int max_items, char *err, size_t errlen)
{
    camera *cam = camera_find(camera_port);
    if (!cam) {
        error_set(err, errlen, "no camera port %s (cameraConfigure first)", camera_port);
        return NULL;
    }
    if (param_port_find(port)) {
        error_set(err, errlen, "parameter port %s exists already", port);
        return NULL;
    }
    frame_consumer *consumer = frame_ring_add_consumer(camera_ring(cam), kind->name, FRAMES_NEWEST);
    if (!consumer) {
        error_set(err, errlen, "camera %s is acquiring already: configure %s before iocInit", camera_port, port);
        return NULL;
    }
    analysis_stage *s = xcalloc(1, sizeof *s);
    s->port = param_port_create(port, stage_write, s);
    str_copy(s->name, port, sizeof s->name);
    s->kind = kind;
    s->cam = cam;
    s->consumer = consumer;
    static const param_def common[] = {ANALYSIS_COMMON_PARAMS(PARAM_DEF)};
    param_create_table(s->port, common, sizeof common / sizeof common[0]);
    param_create_table(s->port, kind->params, (size_t)kind->nparams);
    pthread_mutex_init(&s->lock, NULL);
    s->enabled = 1;
    s->last_status = -1;
    param_set_int(s->port, P_ENABLE, 1);
    param_set_string(s->port, P_MESSAGE, "waiting for frames");
    kind->create(s, max_items);
    stages = xrealloc(stages, (size_t)(nstages + 1) * sizeof *stages);
    stages[nstages++] = s;
    log_info("analysis", "%s: %s on the frames of camera %s", port, kind->name, camera_port);
    return s;
}

analysis_stage *analysis_find(const char *port, const analysis_kind *kind, char *err, size_t errlen)
{
    for (int i = 0; i < nstages; i++)
        if (!strcmp(stages[i]->name, port) && stages[i]->kind == kind) return stages[i];
    error_set(err, errlen, "no %s stage '%s' (%sConfigure first)", kind->name, port, kind->name);
    return NULL;
}

/* detectionConfigure(PORT, CAMERA_PORT [, MAX_FEATURES]), registrationConfigure(PORT, CAMERA_PORT),
 * featuresConfigure(PORT, CAMERA_PORT [, MAX_FEATURES]) */
static int configure_cmd(int argc, char **argv, char *err, size_t errlen)
{
    const analysis_kind *kind = strcmp(argv[0], "detectionConfigure") == 0 ? &detection_kind
                                : strcmp(argv[0], "featuresConfigure") == 0 ? &features_kind : &registration_kind;
    long max_items = DEFAULT_MAX_FEATURES;
    if (argc > 3 && shell_arg_long(argv[3], "MAX_FEATURES", &max_items, err, errlen)) return -1;
    if (max_items < 1 || max_items > 1000000) return error_set(err, errlen, "MAX_FEATURES must be 1..1000000");
    return analysis_configure(kind, argv[1], argv[2], (int)max_items, err, errlen) ? 0 : -1;
}

static void stages_start(void *user)
{
    for (int i = 0; i < nstages; i++) {
        analysis_stage *s = stages[i];
        atomic_store(&s->stopping, 0);
        s->running = pthread_create(&s->thread, NULL, stage_thread, s) == 0;
        if (!s->running) log_error("analysis", "%s: cannot start its thread", s->name);
    }
}

static void stages_stop(void *user)
{
    for (int i = 0; i < nstages; i++) {
        analysis_stage *s = stages[i];
        atomic_store(&s->stopping, 1);
        if (s->running) pthread_join(s->thread, NULL);
        s->running = 0;
    }
}

static void stages_free(void *user)
{
    for (int i = 0; i < nstages; i++) {
        analysis_stage *s = stages[i];
        s->kind->destroy(s);
        param_port_destroy(s->port);
        pthread_mutex_destroy(&s->lock);
        free(s->pixels);
        free(s);
    }
    free(stages);
    stages = NULL;
    nstages = 0;
}

void analysis_register(void)
{
    shell_register("detectionConfigure", "detectionConfigure(PORT, CAMERA_PORT [, MAX_FEATURES])", 2, 3, configure_cmd);
    shell_register("detectionPvaTable", "detectionPvaTable(PORT, PV_NAME)  features as an NTTable over pvAccess", 2, 2,
                   detection_pva_table_cmd);
    shell_register("featuresConfigure", "featuresConfigure(PORT, CAMERA_PORT [, MAX_FEATURES])  relocalization's views",
                   2, 3, configure_cmd);
    shell_register("registrationConfigure", "registrationConfigure(PORT, CAMERA_PORT)", 2, 2, configure_cmd);
    shell_register("registrationPvaResult", "registrationPvaResult(PORT, PV_NAME)  results as one PVA structure",
                   2, 2, registration_pva_result_cmd);
    shell_register("xanesLiveConfigure", "xanesLiveConfigure(PORT, CAMERA_PORT, ENERGY_CHANNEL, MAX_PIXELS)", 4, 4,
                   xanes_configure_cmd);
    db_at_init(stages_start, NULL);
    db_at_shutdown(stages_stop, NULL);
    db_at_exit(stages_free, NULL);
}
