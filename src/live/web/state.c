/* state.c -- the channels the web page shows (stage readbacks, move enable, particle positions, labelled
 * values such as the registration status or the macro queue) and stage moves, all through the record
 * database like any other client: subscriptions mark the state changed, the server thread reads it as JSON,
 * and moves are db_put_field on the motors' VAL so soft limits, DISP and access rules apply.
 *
 * Threads: everything here runs on the server thread, except the subscription callback (any thread that
 * posts a monitor, db lock held), which only sets `changed` and writes the wake eventfd.
 */
#include "live/web/web_internal.h"

#include "core/base/base.h"
#include "core/db/db.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WEB_MAX_SHOWS 16
#define WEB_MAX_PARTICLES 4096
#define WEB_SHOW_TEXT 16384   /* a macro queue as text */
#define WEB_SUBS_PER_STATE (8 + WEB_MAX_SHOWS)

typedef struct web_channel {
    char name[DB_LINK_SIZE];
    db_addr addr;
    int ok;   /* resolved at start */
} web_channel;

typedef struct web_motor {
    web_channel val, rbv, dmov, egu;
} web_motor;

struct web_state {
    int wake_fd;
    atomic_int changed;
    web_motor x, y;
    web_channel enable, particles_x, particles_y;
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

void web_state_set_stage(web_state *st, const char *x_motor, const char *y_motor)
{
    const char *motors[2] = {x_motor, y_motor};
    web_motor *m[2] = {&st->x, &st->y};
    for (int i = 0; i < 2; i++) {
        set_channel(&m[i]->val, motors[i], ".VAL");
        set_channel(&m[i]->rbv, motors[i], ".RBV");
        set_channel(&m[i]->dmov, motors[i], ".DMOV");
        set_channel(&m[i]->egu, motors[i], ".EGU");
    }
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

static void resolve(web_state *st, web_channel *ch, int watch)
{
    if (!ch->name[0]) return;
    ch->ok = db_name_to_addr(ch->name, &ch->addr) == DB_OK;
    if (!ch->ok) {
        log_error("web", "channel %s does not exist: the web view leaves it out", ch->name);
        return;
    }
    if (watch && st->nsubs < WEB_SUBS_PER_STATE)
        st->subs[st->nsubs++] = db_subscribe(&ch->addr, DBE_VALUE | DBE_ALARM, on_change, st);
}

void web_state_start(web_state *st)
{
    web_motor *motors[2] = {&st->x, &st->y};
    for (int i = 0; i < 2; i++) {
        resolve(st, &motors[i]->val, 0);
        resolve(st, &motors[i]->rbv, 1);
        resolve(st, &motors[i]->dmov, 1);
        resolve(st, &motors[i]->egu, 0);
    }
    resolve(st, &st->enable, 1);
    resolve(st, &st->particles_x, 1);
    resolve(st, &st->particles_y, 1);
    for (int i = 0; i < st->nshow; i++) resolve(st, &st->show[i], 1);
}

int web_state_take_changed(web_state *st) { return atomic_exchange(&st->changed, 0); }

/* [locked] */
static int get_double(const web_channel *ch, double *out)
{
    long n = 1;
    return ch->ok && db_get(&ch->addr, DBR_DOUBLE, out, &n) == DB_OK && n == 1 ? 0 : -1;
}

/* um per EGU of a motor record (the page works in um, as the camera and the particle lists do). */
static double um_per_egu(const web_motor *m)
{
    char egu[DB_STRING_SIZE] = "";
    if (m->egu.ok) db_get_text(&m->egu.addr, egu, sizeof egu);
    return !strcmp(egu, "mm") ? 1000.0 : !strcmp(egu, "nm") ? 1e-3 : 1.0;
}

static void add_stage(cJSON *root, web_state *st)
{
    double x, y, dx = 1, dy = 1;
    double scale_x = um_per_egu(&st->x), scale_y = um_per_egu(&st->y);
    db_lock();
    int have = get_double(&st->x.rbv, &x) == 0 && get_double(&st->y.rbv, &y) == 0;
    if (have) {
        get_double(&st->x.dmov, &dx);
        get_double(&st->y.dmov, &dy);
    }
    db_unlock();
    if (!have) return;
    cJSON *stage = cJSON_AddObjectToObject(root, "stage");
    cJSON_AddNumberToObject(stage, "x", x * scale_x);
    cJSON_AddNumberToObject(stage, "y", y * scale_y);
    cJSON_AddBoolToObject(stage, "moving", dx == 0 || dy == 0);
    cJSON_AddStringToObject(stage, "x_motor", st->x.val.name);
    cJSON_AddStringToObject(stage, "y_motor", st->y.val.name);
}

static void add_particles(cJSON *root, web_state *st, const web_geometry *view)
{
    if (!st->particles_x.ok || !st->particles_y.ok) return;
    double *xs = xmalloc(2 * WEB_MAX_PARTICLES * sizeof *xs), *ys = xs + WEB_MAX_PARTICLES;
    long nx = WEB_MAX_PARTICLES, ny = WEB_MAX_PARTICLES;
    db_meta meta;
    db_lock();
    long cx = db_current_elements(&st->particles_x.addr), cy = db_current_elements(&st->particles_y.addr);
    int ok = cx > 0 && cy > 0 && db_get(&st->particles_x.addr, DBR_DOUBLE, xs, &nx) == DB_OK &&
             db_get(&st->particles_y.addr, DBR_DOUBLE, ys, &ny) == DB_OK;
    db_get_meta(&st->particles_x.addr, &meta);
    db_unlock();
    int pixels = !strcmp(meta.units, "px");
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

/* A CHAR waveform is text (areaDetector StatusMessage style); anything else as the database writes it. */
static void add_shows(cJSON *root, web_state *st)
{
    cJSON *list = cJSON_AddArrayToObject(root, "show");
    for (int i = 0; i < st->nshow; i++) {
        web_channel *ch = &st->show[i];
        if (!ch->ok) continue;
        char *text = xcalloc(1, WEB_SHOW_TEXT);
        db_meta meta;
        int is_text = (ch->addr.type == DBF_CHAR || ch->addr.type == DBF_UCHAR) && ch->addr.max_elements > 1;
        db_lock();
        long n = WEB_SHOW_TEXT - 1;
        if (is_text && db_current_elements(&ch->addr) > 0 && db_get(&ch->addr, DBR_CHAR, text, &n) == DB_OK)
            text[n] = '\0';
        db_get_meta(&ch->addr, &meta);
        db_unlock();
        if (!is_text) db_get_text(&ch->addr, text, WEB_SHOW_TEXT);
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "label", st->show_label[i]);
        cJSON_AddStringToObject(item, "channel", ch->name);
        cJSON_AddStringToObject(item, "value", text);
        cJSON_AddNumberToObject(item, "severity", meta.severity);
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
    add_particles(root, st, view);
    add_shows(root, st);
    return root;
}

int web_state_move(web_state *st, double x_um, double y_um, const web_geometry *view, char *msg, size_t msglen)
{
    if (!st->x.val.ok || !st->y.val.ok) return snprintf(msg, msglen, "no stage motors configured"), 503;
    double enable = 0, rbv[2] = {0, 0};
    db_lock();
    int have_enable = get_double(&st->enable, &enable) == 0;
    int have_rbv = get_double(&st->x.rbv, &rbv[0]) == 0 && get_double(&st->y.rbv, &rbv[1]) == 0;
    db_unlock();
    if (!have_enable || enable == 0)
        return snprintf(msg, msglen, "moves from the web view are disabled (%s)", st->enable.name), 403;
    web_motor *motors[2] = {&st->x, &st->y};
    double target_um[2] = {x_um, y_um};
    double view_um[2] = {view ? view->stage_x : 0, view ? view->stage_y : 0};
    for (int i = 0; i < 2; i++) {
        double scale = um_per_egu(motors[i]);
        /* The camera may see the coarse motors plus a piezo: move the motors by the distance in that view. */
        double target = view && have_rbv ? rbv[i] + (target_um[i] - view_um[i]) / scale : target_um[i] / scale;
        int rc = db_put_field(&motors[i]->val.addr, DBR_DOUBLE, &target, 1);
        if (rc != DB_OK)
            return snprintf(msg, msglen, "%s refused %.6g: %s", motors[i]->val.name, target, db_strerror(rc)), 409;
    }
    log_info("web", "move to (%.3f, %.3f) um requested from the web view", x_um, y_um);
    return snprintf(msg, msglen, "moving"), 0;
}

void web_state_free(web_state *st)
{
    if (!st) return;
    for (int i = 0; i < st->nsubs; i++)
        if (st->subs[i]) db_unsubscribe(st->subs[i]);
    free(st);
}
