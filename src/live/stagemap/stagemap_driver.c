/* stagemap_driver.c -- the stage-map port: st.cmd configuration, parameter table, dispatch of parameter
 * writes to the macro, layer and move handlers, the motors it drives, and start/stop with the IOC. */
#include "live/stagemap/stagemap_internal.h"

#include "core/base/base.h"
#include "core/shell/shell.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MAPS 8        /* one port per reference layer (SEM, AFM, XRF map, ...) */

static stagemap *maps[MAX_MAPS];
static int nmaps;

stagemap *stagemap_find(const char *port)
{
    for (int i = 0; i < nmaps; i++)
        if (!strcmp(maps[i]->port_name, port)) return maps[i];
    return NULL;
}

void stagemap_message(stagemap *m, int param, int status_param, int failed, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    param_set_string(m->port, param, text);
    param_set_int(m->port, status_param, failed ? 1 : 0);
    param_set_alarm(m->port, status_param, failed ? 18 /* WRITE */ : 0, failed ? MINOR_ALARM : NO_ALARM);
    if (failed) log_warn("stagemap", "%s: %s", m->port_name, text);
}

int stagemap_axis_position(const stagemap *m, int axis, double *um)
{
    double xy[2];
    if (motion_stage_position(m->stage, xy, NULL, 0)) return -1;
    *um = xy[axis];
    return 0;
}

int stagemap_copy_pairs(const param_write *w, double (*pairs)[2], int max, char *err, size_t errlen)
{
    if (w->nelem % 2) return error_set(err, errlen, "%s: give x,y pairs (an even number of values)", w->name);
    int n = (int)(w->nelem / 2) < max ? (int)(w->nelem / 2) : max;
    const double *v = w->array;
    for (int i = 0; i < 2 * n; i++)   /* one bad number spoils the list: nothing of it is kept */
        if (!isfinite(v[i])) return error_set(err, errlen, "%s: value %d is not a finite number", w->name, i);
    for (int i = 0; i < n; i++) pairs[i][0] = v[2 * i], pairs[i][1] = v[2 * i + 1];
    return n;
}

/* [db locked] A record wrote a parameter. */
static int stagemap_write(void *driver, const param_write *w, char *err, size_t errlen)
{
    stagemap *m = driver;
    int rc;
    if (!strncmp(w->name, "Macro:", 6)) rc = stagemap_macro_write(m, w, err, errlen);
    else if (!strncmp(w->name, "Reloc:", 6)) rc = stagemap_reloc_write(m, w, err, errlen);
    else if (!strncmp(w->name, "Move:", 5)) rc = stagemap_move_write(m, w, err, errlen);
    else rc = stagemap_layer_write(m, w, err, errlen);
    param_post(m->port);
    return rc;
}

static void create_params(stagemap *m)
{
    static const param_def defs[] = {STAGEMAP_PARAMS(PARAM_DEF)};
    param_port *p = m->port;
    param_create_table(p, defs, sizeof defs / sizeof defs[0]);
    param_create_array(p, "Macro:Polygon", DBR_DOUBLE, 2 * ROI_MAX_VERTICES);
    param_create_array(p, "Fid:Pixel", DBR_DOUBLE, 2 * FIT_MAX_POINTS);
    param_create_array(p, "Fid:Stage", DBR_DOUBLE, 2 * FIT_MAX_POINTS);
    param_create_array(p, "Fid:Residuals", DBR_DOUBLE, FIT_MAX_POINTS);
    param_create_array(p, "Fid:Inliers", DBR_LONG, FIT_MAX_POINTS);
    param_create_array(p, "Ref:Matrix", DBR_DOUBLE, 6);
    param_create_array(p, "Particles", DBR_DOUBLE, 2 * STAGEMAP_MAX_PARTICLES);
    param_create_array(p, "Ref:Outline", DBR_DOUBLE, 8);
    param_create_array(p, "Reloc:StageX", DBR_DOUBLE, STAGEMAP_MAX_PARTICLES);
    param_create_array(p, "Reloc:StageY", DBR_DOUBLE, STAGEMAP_MAX_PARTICLES);
    param_create_array(p, "Reloc:Residual", DBR_DOUBLE, STAGEMAP_MAX_PARTICLES);
    param_create_array(p, "Reloc:Status", DBR_LONG, STAGEMAP_MAX_PARTICLES);
    param_set_string(p, P_RELOC_STATE, "idle");

    /* settings that are persisted get their defaults from the records (db/stagemap.db) at iocInit */
    char names[512] = "";
    for (int i = 0; i < scan_engines_count(m->engines); i++) {
        if (i) strncat(names, " ", sizeof names - strlen(names) - 1);
        strncat(names, scan_engine_name(m->engines, i), sizeof names - strlen(names) - 1);
    }
    param_set_string(p, P_MACRO_ENGINES, names);
    param_set_string(p, P_MACRO_NAME, "roi");
    param_set_int(p, P_MACRO_SELECTED, -1);
    param_set_string(p, P_MACRO_MESSAGE, "empty queue");
    param_set_string(p, P_MACRO_EXPORT_PATH, "macros.txt");
    param_set_string(p, P_MAP_MESSAGE, "idle");
    m->ref_pixel_to_stage = affine_identity();
    stagemap_ref_set_transform(m, &m->ref_pixel_to_stage);
}

static int configure_cmd(int argc, char **argv, char *err, size_t errlen)
{
    if (stagemap_find(argv[1])) return error_set(err, errlen, "stage map port %s exists already", argv[1]);
    if (nmaps == MAX_MAPS) return error_set(err, errlen, "at most %d stage map ports", MAX_MAPS);
    char msg[512];
    scan_engines *engines = scan_engines_load(argv[4], msg, sizeof msg);
    if (!engines) return error_set(err, errlen, "%s", msg);
    stagemap *m = xcalloc(1, sizeof *m);
    m->port = param_port_create(argv[1], stagemap_write, m);
    if (!m->port) {
        scan_engines_free(engines);
        free(m);
        return error_set(err, errlen, "parameter port %s exists already", argv[1]);
    }
    str_copy(m->port_name, argv[1], sizeof m->port_name);
    m->stage = motion_stage_create(argv[1], argv[2], argv[3]);
    m->engines = engines;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->wake, NULL);
    pthread_mutex_init(&m->view_lock, NULL);
    pthread_cond_init(&m->view_changed, NULL);
    create_params(m);
    maps[nmaps++] = m;
    log_info("stagemap", "%s: motors %s %s, %d scan engines from %s", argv[1], argv[2], argv[3],
             scan_engines_count(engines), argv[4]);
    return 0;
}

static void maps_start(void *user)
{
    for (int i = 0; i < nmaps; i++) {
        motion_stage_bind(maps[i]->stage);
        stagemap_view_bind(maps[i]);
        stagemap_worker_start(maps[i]);
    }
}

static void maps_stop(void *user)
{
    for (int i = 0; i < nmaps; i++) stagemap_worker_stop(maps[i]);
}

static void maps_free(void *user)
{
    for (int i = 0; i < nmaps; i++) {
        stagemap *m = maps[i];
        param_port_destroy(m->port);
        motion_stage_free(m->stage);
        scan_engines_free(m->engines);
        macro_queue_clear(&m->queue);
        pthread_cond_destroy(&m->wake);
        pthread_cond_destroy(&m->view_changed);
        pthread_mutex_destroy(&m->view_lock);
        pthread_mutex_destroy(&m->lock);
        free(m);
    }
    nmaps = 0;
}

/* stagemapPiezo(PORT, X_PIEZO, Y_PIEZO): fine stages on top of the coarse motors. */
static int piezo_cmd(int argc, char **argv, char *err, size_t errlen)
{
    stagemap *m = stagemap_find(argv[1]);
    if (!m) return error_set(err, errlen, "no stage map port %s (stagemapConfigure first)", argv[1]);
    motion_stage_set_piezo(m->stage, argv[2], argv[3]);
    return 0;
}

void stagemap_register(void)
{
    shell_register("stagemapPiezo", "stagemapPiezo(PORT, X_PIEZO, Y_PIEZO)", 3, 3, piezo_cmd);
    shell_register("stagemapConfigure", "stagemapConfigure(PORT, X_MOTOR, Y_MOTOR, ENGINES_FILE)", 4, 4,
                   configure_cmd);
    stagemap_register_commands();
    stagemap_view_register();
    db_at_init(maps_start, NULL);
    db_at_shutdown(maps_stop, NULL);
    db_at_exit(maps_free, NULL);
}
