/* motion.c -- the one move path (motion.h): motor records bound by name -- records of this IOC, or of another
 * IOC through Channel Access channels to their fields (db_ca_channel) -- positions and soft limits read from
 * them at the moment of a move, the coarse/piezo plan, put-callback moves that report the motor's verdict, and
 * positions summed from channels for the camera. */
#include "drivers/motion/motion.h"

#include "core/base/base.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOTION_STOP_GRACE_S 10.0   /* after a stop, how long a waiting worker waits for the motors to end */

/* The motor record fields used, in bind order. */
enum { F_VAL, F_RBV, F_HLM, F_LLM, F_LVIO, F_DISP, F_STOP, F_EGU, NFIELDS };
static const char *const field_names[NFIELDS] = {"VAL", "RBV", "HLM", "LLM", "LVIO", "DISP", "STOP", "EGU"};

typedef struct motion_motor {
    struct motion_stage *stage;
    char record[DB_NAME_SIZE];
    db_addr field[NFIELDS];             /* a record of this IOC */
    db_ca_channel *remote[NFIELDS];     /* a motor of another IOC (remote[0] != NULL): channels to its fields */
    double um_per_egu;                  /* this IOC's record: from EGU at bind; another IOC's: read at each use */
    int bound;
} motion_motor;

struct motion_stage {
    char owner[40];
    motion_motor motor[MOTION_MOTORS];
    pthread_mutex_t lock;           /* guards everything below */
    pthread_cond_t changed;
    int pending;                    /* put-callbacks of the move in flight not yet done */
    unsigned long started, finished;   /* serial of the last move started / finished */
    int failed;                     /* the move in flight has failed */
    char reason[256];               /* why (first failure) */
    int last_ok;                    /* outcome of move `finished` */
    char last_reason[256];
    motion_done_fn done;
    void *user;
};

/* ---- positions as sums of channels --------------------------------------------------------------------- */

int motion_position_resolve(motion_position *pos, const char *spec, const char *owner, char *err, size_t errlen)
{
    char copy[MOTION_MAX_TERMS * (DB_NAME_SIZE + 8)], *save = NULL;
    int rc = 0;
    pos->nterms = 0;
    if (str_copy(copy, spec, sizeof copy) >= sizeof copy) return error_set(err, errlen, "\"%s\" is too long", spec);
    for (char *name = strtok_r(copy, "+ ", &save); name; name = strtok_r(NULL, "+ ", &save)) {
        if (pos->nterms == MOTION_MAX_TERMS)
            return error_set(err, errlen, "at most %d channels are added", MOTION_MAX_TERMS);
        db_number *term = &pos->term[pos->nterms];
        if (db_number_resolve(term, name, owner, err, errlen)) return -1;
        double scale = 1;
        if (term->local) {
            db_meta meta;
            db_lock();
            db_get_meta(&term->addr, &meta);
            db_unlock();
            scale = um_per_length_unit(meta.units);
            if (scale == 0) {
                rc = 1;
                error_set(err, errlen, "channel %s has units \"%s\" (not a length): taken as um", name, meta.units);
                scale = 1;
            }
        }
        pos->um_per_unit[pos->nterms++] = scale;
    }
    return rc;
}

double motion_position_read(const motion_position *pos, double fallback)
{
    if (!pos->nterms) return fallback;
    double sum = 0;
    db_lock();
    for (int i = 0; i < pos->nterms; i++) {
        double v = NAN, scale = pos->um_per_unit[i];
        char units[DB_STRING_SIZE];
        if (pos->term[i].local) {
            db_number_read(&pos->term[i], &v, NULL, 0, NULL, 0);
        } else if (db_number_read(&pos->term[i], &v, units, sizeof units, NULL, 0) == 0) {
            scale = um_per_length_unit(units);
            if (scale == 0) scale = 1;            /* not a length: taken as um, as for this IOC's channels */
        }
        sum += v * scale;
    }
    db_unlock();
    return sum;
}

/* ---- the stage ------------------------------------------------------------------------------------------ */

motion_stage *motion_stage_create(const char *owner, const char *x_motor, const char *y_motor)
{
    motion_stage *s = xcalloc(1, sizeof *s);
    str_copy(s->owner, owner, sizeof s->owner);
    str_copy(s->motor[MOTION_X].record, x_motor ? x_motor : "", sizeof s->motor[0].record);
    str_copy(s->motor[MOTION_Y].record, y_motor ? y_motor : "", sizeof s->motor[0].record);
    for (int i = 0; i < MOTION_MOTORS; i++) s->motor[i].stage = s;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
    return s;
}

void motion_stage_set_piezo(motion_stage *s, const char *x_piezo, const char *y_piezo)
{
    str_copy(s->motor[MOTION_PIEZO_X].record, x_piezo ? x_piezo : "", sizeof s->motor[0].record);
    str_copy(s->motor[MOTION_PIEZO_Y].record, y_piezo ? y_piezo : "", sizeof s->motor[0].record);
}

/* A motor that is no record of this IOC: channels to the fields of the motor record of another IOC. */
static void bind_remote_motor(motion_stage *s, motion_motor *m)
{
    char name[DB_NAME_SIZE + 8];
    for (int i = 0; i < NFIELDS; i++) {
        snprintf(name, sizeof name, "%s.%s", m->record, field_names[i]);
        m->remote[i] = db_ca_channel_open(name, s->owner);
    }
    m->bound = m->remote[0] != NULL;
    log_info("motion", "%s: %s is no record of this IOC: moved through Channel Access", s->owner, m->record);
}

static int bind_motor(motion_stage *s, motion_motor *m)
{
    char name[DB_NAME_SIZE + 8], egu[DB_STRING_SIZE] = "";
    snprintf(name, sizeof name, "%s.VAL", m->record);
    if (db_name_to_addr(name, &m->field[F_VAL]) != DB_OK) {
        bind_remote_motor(s, m);
        return m->bound ? 0 : -1;
    }
    for (int i = 0; i < NFIELDS; i++) {
        snprintf(name, sizeof name, "%s.%s", m->record, field_names[i]);
        if (db_name_to_addr(name, &m->field[i]) != DB_OK) {
            log_error("motion", "%s: %s is not a motor record (no field %s): moves and limit checks refused",
                      s->owner, m->record, field_names[i]);
            return -1;
        }
    }
    db_get_text(&m->field[F_EGU], egu, sizeof egu);
    m->um_per_egu = um_per_length_unit(egu);
    if (m->um_per_egu == 0) {
        log_error("motion", "%s: motor %s has EGU \"%s\"; a length unit (mm, um, nm, m) is needed: moves refused",
                  s->owner, m->record, egu);
        return -1;
    }
    m->bound = 1;
    return 0;
}

int motion_stage_bind(motion_stage *s)
{
    int rc = 0;
    for (int i = 0; i < MOTION_MOTORS; i++)
        if (s->motor[i].record[0] && bind_motor(s, &s->motor[i])) rc = -1;
    return rc;
}

void motion_stage_free(motion_stage *s)
{
    if (!s) return;
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int motion_stage_ready(const motion_stage *s)
{
    for (int i = 0; i < MOTION_MOTORS; i++)   /* a piezo that is named but missing: the position is unknown */
        if ((i < 2 || s->motor[i].record[0]) && !s->motor[i].bound) return 0;
    return 1;
}

int motion_stage_has_piezo(const motion_stage *s)
{
    return s->motor[MOTION_PIEZO_X].bound && s->motor[MOTION_PIEZO_Y].bound;
}

const char *motion_motor_record(const motion_stage *s, int motor) { return s->motor[motor].record; }

int motion_motor_remote(const motion_stage *s, int motor) { return s->motor[motor].remote[0] != NULL; }

/* [locked] A field of a bound motor as a number: 0, or -1 with err. */
static int motor_get(const motion_motor *m, int field, double *value, char *err, size_t errlen)
{
    if (!m->bound) return error_set(err, errlen, "motor %s unavailable", m->record[0] ? m->record : "(none)");
    if (m->remote[0]) {
        if (db_ca_channel_get(m->remote[field], value, NULL, 0, err, errlen) == 0) return 0;
        char why[256];
        str_copy(why, err ? err : "", sizeof why);
        return error_set(err, errlen, "motor %s unavailable (%s)", m->record, why);
    }
    long n = 1;
    if (db_get(&m->field[field], DBR_DOUBLE, value, &n) == DB_OK && n == 1) return 0;
    return error_set(err, errlen, "motor %s unavailable", m->record);
}

/* [locked] um per EGU of a bound motor: fixed at bind for this IOC's records; from the other IOC's EGU now. */
static int motor_scale(const motion_motor *m, double *scale, char *err, size_t errlen)
{
    if (!m->remote[0]) {
        *scale = m->um_per_egu;
        return 0;
    }
    char egu[DB_STRING_SIZE], why[256];
    if (db_ca_channel_get(m->remote[F_EGU], NULL, egu, sizeof egu, why, sizeof why))
        return error_set(err, errlen, "motor %s unavailable (%s)", m->record, why);
    *scale = um_per_length_unit(egu);
    if (*scale == 0)
        return error_set(err, errlen, "motor %s has EGU \"%s\"; a length unit (mm, um, nm, m) is needed", m->record,
                         egu);
    return 0;
}

/* [locked] Readback of one motor in um. */
static int motor_position(const motion_motor *m, double *um, char *err, size_t errlen)
{
    double v, scale;
    if (motor_get(m, F_RBV, &v, err, errlen) || motor_scale(m, &scale, err, errlen)) return -1;
    *um = v * scale;
    return 0;
}

int motion_stage_position(const motion_stage *s, double um[2], char *err, size_t errlen)
{
    for (int i = 0; i < 2; i++) {
        double fine = 0;
        if (motor_position(&s->motor[i], &um[i], err, errlen)) return -1;
        if (s->motor[2 + i].record[0] && motor_position(&s->motor[2 + i], &fine, err, errlen)) return -1;
        um[i] += fine;
    }
    return 0;
}

int motion_stage_available(const motion_stage *s, char *err, size_t errlen)
{
    double xy[2];
    if (!motion_stage_ready(s)) return error_set(err, errlen, "no stage motors bound");
    return motion_stage_position(s, xy, err, errlen);
}

int motion_motor_limits(const motion_stage *s, int motor, motion_limits *out, char *err, size_t errlen)
{
    const motion_motor *m = &s->motor[motor];
    double hi, lo, scale;
    if (motor_get(m, F_HLM, &hi, err, errlen) || motor_get(m, F_LLM, &lo, err, errlen) ||
        motor_scale(m, &scale, err, errlen)) {
        char why[256];
        str_copy(why, err ? err : "", sizeof why);
        return error_set(err, errlen, "%s: soft limits unknown", why);
    }
    if (!isfinite(lo) || !isfinite(hi))   /* a limit that is not a number is no reason to move anywhere */
        return error_set(err, errlen, "soft limits of %s are not numbers (LLM %g, HLM %g)", m->record, lo, hi);
    out->low = fmin(lo, hi) * scale;
    out->high = fmax(lo, hi) * scale;
    return 0;
}

/* [locked] 0 when um is within the motor's soft limits now (or it has none), else -1 with the reason. */
static int within_limits(const motion_stage *s, int motor, double um, char *err, size_t errlen)
{
    motion_limits lim;
    if (motion_motor_limits(s, motor, &lim, err, errlen)) return -1;
    if ((lim.low == 0 && lim.high == 0) || (um >= lim.low && um <= lim.high)) return 0;   /* 0, 0: none */
    return error_set(err, errlen, "%s would go to %.3f um, outside its soft limits %.3f..%.3f um",
                     s->motor[motor].record, um, lim.low, lim.high);
}

int motion_plan_move(const motion_stage *s, const double xy_um[2], int relative, motion_plan *plan, char *err,
                     size_t errlen)
{
    if (!motion_stage_ready(s)) return error_set(err, errlen, "no stage motors bound");
    double coarse[2], fine[2] = {0, 0};
    int piezo = motion_stage_has_piezo(s);
    for (int i = 0; i < 2; i++) {
        if (!isfinite(xy_um[i])) return error_set(err, errlen, "the target is not a finite position");
        if (motor_position(&s->motor[i], &coarse[i], err, errlen)) return -1;
        if (piezo && motor_position(&s->motor[2 + i], &fine[i], err, errlen)) return -1;
        plan->target_um[i] = relative ? coarse[i] + fine[i] + xy_um[i] : xy_um[i];
    }
    /* Within the piezo's range only the piezo moves: fine, fast, and the coarse motors keep their place. */
    for (int i = 0; i < 2 && piezo; i++)
        piezo = within_limits(s, 2 + i, plan->target_um[i] - coarse[i], NULL, 0) == 0;
    for (int i = 0; i < 2; i++) {
        int motor = piezo ? 2 + i : i;
        double um = plan->target_um[i] - (piezo ? coarse[i] : fine[i]);
        const motion_motor *m = &s->motor[motor];
        double disp = 0, scale;
        if (within_limits(s, motor, um, err, errlen) || motor_scale(m, &scale, err, errlen)) return -1;
        if (motor_get(m, F_DISP, &disp, NULL, 0) == 0 && disp != 0)
            return error_set(err, errlen, "%s is disabled (DISP = 1)", m->record);
        plan->motor[i] = motor;
        plan->egu[i] = um / scale;
    }
    return 0;
}

/* [db locked] A motor's put-callback completed, failing with failure (NULL: done): the move fails when the put
 * failed or the motor refused the target (LVIO). The last one to complete tells the move's owner. */
static void motor_finished(motion_motor *m, const char *failure)
{
    motion_stage *s = m->stage;
    char why[512] = "";
    double lvio = 0;
    if (failure)
        snprintf(why, sizeof why, "%s: the move failed (%s)", m->record, failure);
    else if (motor_get(m, F_LVIO, &lvio, NULL, 0) == 0 && lvio != 0)
        snprintf(why, sizeof why, "%s refused the target: outside its soft limits (LVIO)", m->record);
    pthread_mutex_lock(&s->lock);
    if (why[0] && !s->failed) {
        s->failed = 1;
        str_copy(s->reason, why, sizeof s->reason);
    }
    motion_done_fn done = NULL;
    void *done_user = NULL;
    char reason[256];
    int ok = 0;
    if (--s->pending == 0) {
        s->finished = s->started;
        s->last_ok = ok = !s->failed;
        str_copy(s->last_reason, s->failed ? s->reason : "done", sizeof s->last_reason);
        str_copy(reason, s->last_reason, sizeof reason);
        done = s->done, done_user = s->user;
        s->done = NULL;
        pthread_cond_broadcast(&s->changed);
    }
    pthread_mutex_unlock(&s->lock);
    if (done) done(done_user, ok, reason);
}

/* [db locked] this IOC's motor record */
static void motor_done(void *user, int status)
{
    motion_motor *m = user;
    motor_finished(m, status == DB_OK ? NULL : db_strerror(status));
}

/* [db locked] another IOC's motor record (db_ca's completion thread) */
static void remote_motor_done(void *user, int ok, const char *why)
{
    motor_finished(user, ok ? NULL : why);
}

static int start_move(motion_stage *s, const double xy_um[2], int relative, motion_done_fn done, void *user,
                      motion_plan *out, unsigned long *serial, char *err, size_t errlen)
{
    motion_plan plan;
    db_lock();
    int rc = motion_plan_move(s, xy_um, relative, &plan, err, errlen);
    db_unlock();
    if (rc) return -1;
    pthread_mutex_lock(&s->lock);
    if (s->pending) {
        pthread_mutex_unlock(&s->lock);
        return error_set(err, errlen, "the stage is still moving (a move of %s runs)", s->owner);
    }
    s->pending = 2;
    s->failed = 0;
    s->done = done, s->user = user;
    *serial = ++s->started;
    pthread_mutex_unlock(&s->lock);
    if (out) *out = plan;
    log_info("motion", "%s: move to (%.3f, %.3f) um: %s %.6g, %s %.6g", s->owner, plan.target_um[0],
             plan.target_um[1], s->motor[plan.motor[0]].record, plan.egu[0], s->motor[plan.motor[1]].record, plan.egu[1]);
    for (int i = 0; i < 2; i++) {
        motion_motor *m = &s->motor[plan.motor[i]];
        char why[256];
        if (!m->remote[0])
            db_put_notify_start(&m->field[F_VAL], DBR_DOUBLE, &plan.egu[i], 1, motor_done, m);
        else if (db_ca_channel_put(m->remote[F_VAL], plan.egu[i], remote_motor_done, m, why, sizeof why)) {
            db_lock();                                   /* not sent: this motor's part fails now */
            motor_finished(m, why);
            db_unlock();
        }
    }
    return 0;
}

int motion_move_start(motion_stage *s, const double xy_um[2], int relative, motion_done_fn done, void *user,
                      motion_plan *plan, char *err, size_t errlen)
{
    unsigned long serial;
    return start_move(s, xy_um, relative, done, user, plan, &serial, err, errlen);
}

int motion_move(motion_stage *s, const double xy_um[2], int relative, int (*should_stop)(void *), void *user,
                char *err, size_t errlen)
{
    unsigned long serial;
    if (start_move(s, xy_um, relative, NULL, NULL, NULL, &serial, err, errlen)) return -1;
    int stopped = 0;
    double give_up = 0;
    pthread_mutex_lock(&s->lock);
    while (s->finished < serial) {
        pthread_mutex_unlock(&s->lock);
        if (!stopped && should_stop && should_stop(user)) {
            motion_stage_stop(s, NULL, 0);
            stopped = 1;
            give_up = time_monotonic() + MOTION_STOP_GRACE_S;
        }
        pthread_mutex_lock(&s->lock);
        if (stopped && time_monotonic() > give_up) break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until = time_add(until, 0.05);
        if (s->finished < serial) pthread_cond_timedwait(&s->changed, &s->lock, &until);
    }
    int ok = s->finished == serial && s->last_ok;
    char reason[256];
    str_copy(reason, s->finished == serial ? s->last_reason : "no answer from the motors", sizeof reason);
    pthread_mutex_unlock(&s->lock);
    if (stopped) return error_set(err, errlen, "stopped");
    return ok ? 0 : error_set(err, errlen, "%s", reason);
}

int motion_stage_stop(motion_stage *s, char *err, size_t errlen)
{
    const short stop = 1;
    int rc = 0;
    for (int i = 0; i < MOTION_MOTORS; i++) {
        motion_motor *m = &s->motor[i];
        if (!m->bound) continue;
        char why[256];
        int status = m->remote[0] ? (db_ca_channel_put(m->remote[F_STOP], stop, NULL, NULL, why, sizeof why) ? -1 : DB_OK)
                                  : db_put_field(&m->field[F_STOP], DBR_SHORT, &stop, 1);
        if (status != DB_OK && !rc)
            rc = error_set(err, errlen, "%s did not take STOP: %s", m->record, m->remote[0] ? why : db_strerror(status));
    }
    if (rc == 0) log_info("motion", "%s: stop", s->owner);
    return rc;
}

int motion_stage_busy(motion_stage *s)
{
    pthread_mutex_lock(&s->lock);
    int busy = s->pending > 0;
    pthread_mutex_unlock(&s->lock);
    return busy;
}
