/* state.c -- the channels the web page shows (stage position, move enable, beam pixel, particle positions,
 * labelled values such as the registration status or the macro queue) and stage moves, all through the record
 * database like any other client, or, for a name no record here has, through a channel to another IOC (the
 * links' libca client, db_ca_channel): subscriptions mark the state changed, the server thread reads it as JSON,
 * and moves and stops go through the one move path (drivers/motion): planned from the motors' positions and
 * soft limits at the moment of the request, put-callbacks on VAL, the motors' verdict reported back.
 *
 * Threads: everything here runs on the server thread, except the subscription callback (any thread that
 * posts a monitor, db lock held), which only sets `changed` and writes the wake eventfd, and the move's
 * completion (motion.h), which the caller of web_state_move handles. A stop to another IOC's all-stop waits on
 * the server thread (at most STOP_TIMEOUT_S) for that IOC's verdict, so that a refused stop is reported.
 */
#include "live/web/web_internal.h"

#include "core/base/base.h"
#include "core/db/db.h"
#include "drivers/motion/motion.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WEB_MAX_SHOWS 16
#define WEB_MAX_PARTICLES 4096
#define WEB_SHOW_TEXT 16384   /* a macro queue as text */
#define STOP_TIMEOUT_S 2.0    /* another IOC's all-stop answers within this (the server thread waits) */
#define WEB_SUBS_PER_STATE (2 * MOTION_MOTORS + 5 + WEB_MAX_SHOWS)

typedef struct web_channel {
    char name[DB_LINK_SIZE];
    db_addr addr;
    db_ca_channel *remote;   /* a PV of another IOC (no record here has the name; a motor's RBV/DMOV where
                              * drivers/motion moves that IOC's motors) */
    db_ca_channel *remote_egu;   /* particles: the units of the other IOC's array (px or a length) */
    int ok;   /* resolved at start */
} web_channel;

struct web_state {
    int wake_fd;
    atomic_int changed;
    motion_stage *stage;
    web_channel rbv[MOTION_MOTORS], dmov[MOTION_MOTORS];   /* watched: the page follows every motor */
    web_channel enable, particles_x, particles_y, beam_x, beam_y, stop_all;
    char show_label[WEB_MAX_SHOWS][64];
    web_channel show[WEB_MAX_SHOWS];
    int nshow;
    db_subscription *subs[WEB_SUBS_PER_STATE];
    int nsubs;
};

web_state *web_state_create(int wake_fd)
{
    web_state *st = xcalloc(1, sizeof *st);
    st->wake_fd = wake_fd;
    atomic_store(&st->changed, 1);
    return st;
}

static void set_channel(web_channel *ch, const char *record, const char *field)
{
    if (!record || !*record) {
        ch->name[0] = '\0';
        return;
    }
    snprintf(ch->name, sizeof ch->name, "%s%s", record, field);
}

void web_state_set_stage(web_state *st, const char *x_motor, const char *y_motor, const char *x_piezo,
                         const char *y_piezo)
{
    motion_stage_free(st->stage);
    st->stage = motion_stage_create("web view", x_motor, y_motor);
    if (x_piezo && y_piezo) motion_stage_set_piezo(st->stage, x_piezo, y_piezo);
    const char *motors[MOTION_MOTORS] = {x_motor, y_motor, x_piezo, y_piezo};
    for (int i = 0; i < MOTION_MOTORS; i++) {
        set_channel(&st->rbv[i], motors[i], ".RBV");
        set_channel(&st->dmov[i], motors[i], ".DMOV");
    }
}

void web_state_set_stop_all(web_state *st, const char *channel) { set_channel(&st->stop_all, channel, ""); }

void web_state_set_beam(web_state *st, const char *x_channel, const char *y_channel)
{
    set_channel(&st->beam_x, x_channel, "");
    set_channel(&st->beam_y, y_channel, "");
}

void web_state_set_particles(web_state *st, const char *x_array, const char *y_array)
{
    set_channel(&st->particles_x, x_array, "");
    set_channel(&st->particles_y, y_array, "");
}

void web_state_set_enable(web_state *st, const char *enable_channel) { set_channel(&st->enable, enable_channel, ""); }

void web_state_add_show(web_state *st, const char *label, const char *channel)
{
    if (st->nshow == WEB_MAX_SHOWS) {
        log_error("web", "at most %d shown values: %s left out", WEB_MAX_SHOWS, channel);
        return;
    }
    str_copy(st->show_label[st->nshow], label, sizeof st->show_label[0]);
    set_channel(&st->show[st->nshow++], channel, "");
}

static void on_change(void *user, const db_addr *addr, unsigned mask)
{
    web_state *st = user;
    if (atomic_exchange(&st->changed, 1)) return;   /* the server thread was already told */
    uint64_t one = 1;
    if (write(st->wake_fd, &one, sizeof one) < 0) log_debug("web", "wake: counter full");
}

static void on_remote_change(void *user)
{
    on_change(user, NULL, 0);
}

/* A channel of this IOC; with remote, a number of another IOC when no record here has the name. */
static void resolve(web_state *st, web_channel *ch, int watch, int remote)
{
    if (!ch->name[0]) return;
    ch->ok = db_name_to_addr(ch->name, &ch->addr) == DB_OK;
    if (!ch->ok && remote) {
        ch->remote = db_ca_channel_open(ch->name, "web view");
        if (ch->remote && watch) db_ca_channel_watch(ch->remote, on_remote_change, st);
        ch->ok = ch->remote != NULL;
        if (ch->ok) log_info("web", "%s is no record of this IOC: read through Channel Access", ch->name);
        return;
    }
    if (!ch->ok) {
        log_error("web", "channel %s does not exist: the web view leaves it out", ch->name);
        return;
    }
    db_subscription *sub = watch && st->nsubs < WEB_SUBS_PER_STATE ?
                           db_subscribe(&ch->addr, DBE_VALUE | DBE_ALARM, on_change, st) : NULL;
    if (sub) st->subs[st->nsubs++] = sub;
}

void web_state_start(web_state *st)
{
    if (st->stage) motion_stage_bind(st->stage);
    for (int i = 0; i < MOTION_MOTORS; i++) {
        int remote = st->stage && motion_motor_remote(st->stage, i);
        resolve(st, &st->rbv[i], 1, remote);
        resolve(st, &st->dmov[i], 1, remote);
    }
    resolve(st, &st->enable, 1, 1);
    resolve(st, &st->beam_x, 1, 1);
    resolve(st, &st->beam_y, 1, 1);
    resolve(st, &st->stop_all, 0, 1);
    resolve(st, &st->particles_x, 1, 1);
    resolve(st, &st->particles_y, 1, 1);
    if (st->particles_x.remote) {
        char egu[DB_LINK_SIZE + 8];
        snprintf(egu, sizeof egu, "%s.EGU", st->particles_x.name);
        st->particles_x.remote_egu = db_ca_channel_open(egu, "web view");
    }
    for (int i = 0; i < st->nshow; i++) resolve(st, &st->show[i], 1, 1);
}

int web_state_take_changed(web_state *st) { return atomic_exchange(&st->changed, 0); }

/* [locked] */
static int get_double(const web_channel *ch, double *out)
{
    long n = 1;
    if (ch->remote) return db_ca_channel_get(ch->remote, out, NULL, 0, NULL, 0);
    return ch->ok && db_get(&ch->addr, DBR_DOUBLE, out, &n) == DB_OK && n == 1 ? 0 : -1;
}

/* The stage position (coarse + piezo, um) and whether any of its motors moves. */
static void add_stage(cJSON *root, web_state *st)
{
    double xy[2];
    int moving = 0;
    db_lock();
    int have = st->stage && motion_stage_position(st->stage, xy, NULL, 0) == 0;
    for (int i = 0; i < MOTION_MOTORS && have; i++) {
        double done = 1;
        if (get_double(&st->dmov[i], &done) == 0 && done == 0) moving = 1;
    }
    db_unlock();
    if (!have) return;
    cJSON *stage = cJSON_AddObjectToObject(root, "stage");
    cJSON_AddNumberToObject(stage, "x", round(xy[0] * 1e3) / 1e3);   /* nm */
    cJSON_AddNumberToObject(stage, "y", round(xy[1] * 1e3) / 1e3);
    cJSON_AddBoolToObject(stage, "moving", moving);
    cJSON_AddStringToObject(stage, "x_motor", motion_motor_record(st->stage, MOTION_X));
    cJSON_AddStringToObject(stage, "y_motor", motion_motor_record(st->stage, MOTION_Y));
}

/* The calibrated beam pixel of the camera frame (the stage map's Live:BeamX/Y). */
static void add_beam(cJSON *root, web_state *st)
{
    double xy[2];
    db_lock();
    int have = get_double(&st->beam_x, &xy[0]) == 0 && get_double(&st->beam_y, &xy[1]) == 0;
    db_unlock();
    if (have && isfinite(xy[0]) && isfinite(xy[1])) cJSON_AddItemToObject(root, "beam", cJSON_CreateDoubleArray(xy, 2));
}

/* [locked] An array channel's elements (at most max; 0 or -1) and, when units is not NULL, its EGU. */
static int get_array(const web_channel *ch, double *values, long max, long *n, char *units, size_t unitslen)
{
    if (units) units[0] = '\0';
    if (ch->remote) {
        if (units && ch->remote_egu) db_ca_channel_get(ch->remote_egu, NULL, units, unitslen, NULL, 0);
        return db_ca_channel_get_array(ch->remote, values, max, n, NULL, 0) == 0 && *n > 0 ? 0 : -1;
    }
    if (units) {
        db_meta meta;
        db_get_meta(&ch->addr, &meta);
        str_copy(units, meta.units, unitslen);
    }
    *n = max;
    return db_current_elements(&ch->addr) > 0 && db_get(&ch->addr, DBR_DOUBLE, values, n) == DB_OK ? 0 : -1;
}

static void add_particles(cJSON *root, web_state *st, const web_geometry *view)
{
    if (!st->particles_x.ok || !st->particles_y.ok) return;
    double *xs = xmalloc(2 * WEB_MAX_PARTICLES * sizeof *xs), *ys = xs + WEB_MAX_PARTICLES;
    long nx = 0, ny = 0;
    char units[DB_STRING_SIZE];
    db_lock();
    int ok = get_array(&st->particles_x, xs, WEB_MAX_PARTICLES, &nx, units, sizeof units) == 0 &&
             get_array(&st->particles_y, ys, WEB_MAX_PARTICLES, &ny, NULL, 0) == 0;
    db_unlock();
    int pixels = !strcmp(units, "px");
    if (pixels && !view) ok = 0;   /* no frame to place them by yet */
    cJSON *list = cJSON_AddArrayToObject(root, "particles");
    long n = ok ? (nx < ny ? nx : ny) : 0;
    for (long i = 0; i < n; i++) {
        double xy[2] = {xs[i], ys[i]};
        if (pixels) {
            xy[0] = view->stage_x + (xs[i] - (view->width - 1) / 2.0) * view->pixel_size;
            xy[1] = view->stage_y + (ys[i] - (view->height - 1) / 2.0) * view->pixel_size;
        }
        for (int k = 0; k < 2; k++) xy[k] = round(xy[k] * 1e3) / 1e3;   /* nm: short JSON, several per frame */
        cJSON_AddItemToArray(list, cJSON_CreateDoubleArray(xy, 2));
    }
    free(xs);
}

/* A channel of this IOC as text: a CHAR waveform is text (areaDetector StatusMessage style), anything else as
 * the database writes it; returns its severity. */
static int local_text(const web_channel *ch, char *text, size_t len)
{
    db_meta meta;
    int is_text = (ch->addr.type == DBF_CHAR || ch->addr.type == DBF_UCHAR) && ch->addr.max_elements > 1;
    db_lock();
    long n = (long)len - 1;
    if (is_text && db_current_elements(&ch->addr) > 0 && db_get(&ch->addr, DBR_CHAR, text, &n) == DB_OK) text[n] = '\0';
    db_get_meta(&ch->addr, &meta);
    db_unlock();
    if (!is_text) db_get_text(&ch->addr, text, len);
    return meta.severity;
}

/* Another IOC's PV as text (a number or a string; empty while it cannot be read); returns its severity. */
static int remote_text(db_ca_channel *c, char *text, size_t len)
{
    char shown[64], *end;
    double value;
    if (db_ca_channel_get(c, &value, text, len, NULL, 0) == 0 && text[0] && (strtod(text, &end), *end == '\0')) {
        snprintf(shown, sizeof shown, "%.6g", value);      /* a number: short, as the database writes it */
        str_copy(text, shown, len);
    }
    return db_ca_channel_severity(c);
}

static void add_shows(cJSON *root, web_state *st)
{
    cJSON *list = cJSON_AddArrayToObject(root, "show");
    for (int i = 0; i < st->nshow; i++) {
        web_channel *ch = &st->show[i];
        if (!ch->ok) continue;
        char *text = xcalloc(1, WEB_SHOW_TEXT);
        int severity = ch->remote ? remote_text(ch->remote, text, WEB_SHOW_TEXT) : local_text(ch, text, WEB_SHOW_TEXT);
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "label", st->show_label[i]);
        cJSON_AddStringToObject(item, "channel", ch->name);
        cJSON_AddStringToObject(item, "value", text);
        cJSON_AddNumberToObject(item, "severity", severity);
        cJSON_AddItemToArray(list, item);
        free(text);
    }
}

cJSON *web_state_json(web_state *st, const web_geometry *view)
{
    cJSON *root = cJSON_CreateObject();
    add_stage(root, st);
    double enable = 0;
    db_lock();
    int have_enable = get_double(&st->enable, &enable) == 0;
    db_unlock();
    cJSON_AddBoolToObject(root, "move_enable", have_enable && enable != 0);
    add_beam(root, st);
    add_particles(root, st, view);
    add_shows(root, st);
    return root;
}

int web_state_move(web_state *st, double x_um, double y_um, int relative, motion_done_fn done, void *user,
                   char *msg, size_t msglen)
{
    if (!st->stage || !motion_stage_ready(st->stage))
        return snprintf(msg, msglen, "no stage motors configured"), 503;
    double enable = 0;
    db_lock();
    int have_enable = get_double(&st->enable, &enable) == 0;
    db_unlock();
    if (!have_enable || enable == 0)
        return snprintf(msg, msglen, "moves from the web view are disabled (%s is off)",
                        st->enable.name[0] ? st->enable.name : "no enable channel"), 403;
    const double target[2] = {x_um, y_um};
    motion_plan plan;
    char err[256];
    if (motion_move_start(st->stage, target, relative, done, user, &plan, err, sizeof err))
        return snprintf(msg, msglen, "move refused: %s", err), 409;
    return snprintf(msg, msglen, "moving to %.3f, %.3f um", plan.target_um[0], plan.target_um[1]), 0;
}

int web_state_stop_motors(web_state *st, char *msg, size_t msglen)
{
    char all_err[DB_LINK_SIZE + 300] = "", stage_err[256] = "";
    if (st->stop_all.remote) {   /* every motor of another IOC: its verdict awaited (a refused put is a failure) */
        char why[256];
        if (db_ca_channel_put_wait(st->stop_all.remote, 1, STOP_TIMEOUT_S, why, sizeof why))
            snprintf(all_err, sizeof all_err, "%s refused: %s", st->stop_all.name, why);
    } else if (st->stop_all.ok) {   /* every motor of the IOC (motor_util.db's allstop) */
        const short stop = 1;
        int rc = db_put_field(&st->stop_all.addr, DBR_SHORT, &stop, 1);
        if (rc != DB_OK) snprintf(all_err, sizeof all_err, "%s refused: %s", st->stop_all.name, db_strerror(rc));
    }
    if (st->stage && motion_stage_ready(st->stage)) motion_stage_stop(st->stage, stage_err, sizeof stage_err);
    if (!st->stop_all.ok && !(st->stage && motion_stage_ready(st->stage)))
        return snprintf(msg, msglen, "no motors configured"), 503;
    if (all_err[0] || stage_err[0]) {   /* both reasons when both failed */
        snprintf(msg, msglen, "%s%s%s", all_err, all_err[0] && stage_err[0] ? "; " : "", stage_err);
        log_warn("web", "stop from the web view failed: %s", msg);
        return 409;
    }
    log_info("web", "stop requested from the web view");
    return snprintf(msg, msglen, "stopped"), 0;
}

void web_state_unsubscribe(web_state *st)
{
    for (int i = 0; i < st->nsubs; i++) db_unsubscribe(st->subs[i]);
    st->nsubs = 0;
}

void web_state_free(web_state *st)
{
    if (!st) return;
    motion_stage_free(st->stage);
    free(st);
}
