/* record.c -- the `motor` record type (fields and behaviour of the synApps motor record that screens and scan
 * tools use): user/dial/raw coordinates (VAL = DIR*DVAL + OFF, RVAL = DVAL/MRES), soft limits (LVIO), STOP and
 * SPMG, SET/USE calibration, tweaks and relative moves, jogs, homing, backlash and retries within RDBD, and the DMOV
 * 1->0->1 pulse around every commanded move.
 *
 * Processing model: every written value is checked first in special() and refused when no motor record could use
 * it (NaN/Inf, MRES 0, a speed <= 0: db then restores the field and fails the put). Client writes to drive fields
 * (VAL DVAL RVAL RLV TWF TWR JOGF HOMF HOMR STOP SPMG ...) act in special() at once, even while a move is in
 * progress; the processing a put starts stays asynchronous (PACT=1)
 * until the motion is over, so a put with completion on VAL completes only when DMOV returns to 1. The axis
 * driver's listener (devmotor.c) has the record processed again whenever the controller's state changes;
 * process() refreshes the readbacks (with the time of the controller's reply) and advances the motion phases.
 * All record state is guarded by the db lock; commands reach the controller only through the record's device
 * support (motor_dset in motor_internal.h), which queues them without blocking. */
#include "drivers/motor/motor_internal.h"

#include "core/base/base.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static const char *const spmg_choices[] = {"Stop", "Pause", "Move", "Go"};
static const char *const dir_choices[] = {"Pos", "Neg"};
static const char *const foff_choices[] = {"Variable", "Frozen"};
static const char *const set_choices[] = {"Use", "Set"};
static const char *const cnen_choices[] = {"Disable", "Enable"};
static const char *const yes_no_choices[] = {"No", "Yes"};
static const db_menu motorSPMG = {"motorSPMG", 4, spmg_choices};
static const db_menu motorDIR = {"motorDIR", 2, dir_choices};
static const db_menu motorFOFF = {"motorFOFF", 2, foff_choices};
static const db_menu motorSET = {"motorSET", 2, set_choices};
static const db_menu motorTORQ = {"motorTORQ", 2, cnen_choices};
static const db_menu motorUEIP = {"motorUEIP", 2, yes_no_choices};

enum { SPMG_STOP, SPMG_PAUSE, SPMG_MOVE, SPMG_GO };

#define F(NAME, TYPE, MEMBER, FLAGS) \
    {NAME, TYPE, offsetof(motor_record, MEMBER), sizeof(((motor_record *)0)->MEMBER), FLAGS, NULL, NULL}
#define FI(NAME, TYPE, MEMBER, FLAGS, INITIAL) \
    {NAME, TYPE, offsetof(motor_record, MEMBER), sizeof(((motor_record *)0)->MEMBER), FLAGS, NULL, INITIAL}
#define FM(NAME, MEMBER, FLAGS, MENU, INITIAL) \
    {NAME, DBF_MENU, offsetof(motor_record, MEMBER), sizeof(uint16_t), FLAGS, &MENU, INITIAL}

#define RO DBFLD_READONLY
#define CMD (DBFLD_SPECIAL | DBFLD_PROCESS)    /* a command: acts in special(), processes the record */
#define SP DBFLD_SPECIAL   /* checked (and refused when invalid) in special() */
#define PROP DBFLD_PROPERTY

static const db_field_desc motor_fields[] = {
    F("VAL", DBF_DOUBLE, val, CMD), F("DVAL", DBF_DOUBLE, dval, CMD), F("RVAL", DBF_LONG, rval, CMD),
    F("RLV", DBF_DOUBLE, rlv, CMD),
    F("RBV", DBF_DOUBLE, rbv, RO), F("DRBV", DBF_DOUBLE, drbv, RO), F("RRBV", DBF_LONG, rrbv, RO),
    F("RMP", DBF_LONG, rrbv, RO), F("DIFF", DBF_DOUBLE, diff, RO), F("RDIF", DBF_LONG, rdif, RO),
    FI("DMOV", DBF_SHORT, dmov, RO, "1"), F("MOVN", DBF_SHORT, movn, RO), F("STOP", DBF_SHORT, stop, CMD),
    FM("SPMG", spmg, CMD, motorSPMG, "Go"),
    FI("VELO", DBF_DOUBLE, velo, SP, "1"), F("VBAS", DBF_DOUBLE, vbas, SP), F("VMAX", DBF_DOUBLE, vmax, SP),
    FI("ACCL", DBF_DOUBLE, accl, SP, "0.2"), F("BDST", DBF_DOUBLE, bdst, SP), FI("BVEL", DBF_DOUBLE, bvel, SP, "1"),
    FI("BACC", DBF_DOUBLE, bacc, SP, "0.2"), FI("HVEL", DBF_DOUBLE, hvel, SP, "1"),
    F("HLM", DBF_DOUBLE, hlm, SP | PROP), F("LLM", DBF_DOUBLE, llm, SP | PROP),
    F("DHLM", DBF_DOUBLE, dhlm, SP | PROP), F("DLLM", DBF_DOUBLE, dllm, SP | PROP),
    F("HLS", DBF_SHORT, hls, RO), F("LLS", DBF_SHORT, lls, RO), F("LVIO", DBF_SHORT, lvio, RO),
    FI("TWV", DBF_DOUBLE, twv, SP, "1"), F("TWF", DBF_SHORT, twf, CMD), F("TWR", DBF_SHORT, twr, CMD),
    F("HOMF", DBF_SHORT, homf, CMD), F("HOMR", DBF_SHORT, homr, CMD),
    F("JOGF", DBF_SHORT, jogf, CMD), F("JOGR", DBF_SHORT, jogr, CMD), FI("JVEL", DBF_DOUBLE, jvel, SP, "1"),
    F("OFF", DBF_DOUBLE, off, SP), FM("DIR", dir, SP, motorDIR, "Pos"), FM("FOFF", foff, 0, motorFOFF, "Variable"),
    FM("SET", set, 0, motorSET, "Use"), FM("CNEN", cnen, SP, motorTORQ, "Enable"),
    FM("UEIP", ueip, 0, motorUEIP, "No"), FM("URIP", urip, 0, motorUEIP, "No"),
    F("EGU", DBF_STRING, egu, PROP), FI("PREC", DBF_SHORT, prec, PROP, "3"),
    FI("MRES", DBF_DOUBLE, mres, SP, "0.001"), FI("ERES", DBF_DOUBLE, eres, SP, "0.001"),
    FI("RDBD", DBF_DOUBLE, rdbd, SP, "0.002"), FI("RTRY", DBF_SHORT, rtry, SP, "10"),
    F("RCNT", DBF_SHORT, rcnt, RO), F("MISS", DBF_SHORT, miss, RO), F("DLY", DBF_DOUBLE, dly, SP),
    F("MSTA", DBF_ULONG, msta, RO), F("MIP", DBF_USHORT, mip, RO), F("TDIR", DBF_SHORT, tdir, RO),
    F("ATHM", DBF_SHORT, athm, RO), FI("VERS", DBF_FLOAT, vers, RO, "7.3"),
    F("OUT", DBF_OUTLINK, out, 0),
};

/* MIP bits (motion in progress) */
#define MIP_MOVE     0x0020u
#define MIP_HOMF     0x0004u
#define MIP_HOMR     0x0008u
#define MIP_JOGF     0x0001u
#define MIP_JOGR     0x0002u
#define MIP_BACKLASH 0x0040u
#define MIP_STOP     0x0100u
#define MIP_LOAD_P   0x1000u

/* MSTA bits (epics-facts 7.4) */
#define MSTA_DIRECTION  (1u << 0)
#define MSTA_DONE       (1u << 1)
#define MSTA_PLUS_LS    (1u << 2)
#define MSTA_HOMELS     (1u << 3)
#define MSTA_PROBLEM    (1u << 9)
#define MSTA_MOVING     (1u << 10)
#define MSTA_COMM_ERR   (1u << 12)
#define MSTA_MINUS_LS   (1u << 13)
#define MSTA_HOMED      (1u << 14)

/* ------------------------------------------------------------------------------------------------------
 * Small helpers: post on change, coordinates, limits
 */
static void post(motor_record *m, const void *field)
{
    db_post_events(&m->common, field, DBE_VALUE | DBE_LOG);
}

static void set_double(motor_record *m, double *field, double v)
{
    if (*field != v) {
        *field = v;
        post(m, field);
    }
}

static void set_short(motor_record *m, int16_t *field, int v)
{
    if (*field != v) {
        *field = (int16_t)v;
        post(m, field);
    }
}

static void set_long(motor_record *m, int32_t *field, double v)
{
    int32_t l = v > 2147483647.0 ? 2147483647 : v < -2147483648.0 ? (-2147483647 - 1) : (int32_t)llround(v);
    if (*field != l) {
        *field = l;
        post(m, field);
    }
}

static double dir_sign(const motor_record *m) { return m->dir ? -1.0 : 1.0; }
static double user_from_dial(const motor_record *m, double dial) { return dir_sign(m) * dial + m->off; }
static double dial_from_user(const motor_record *m, double user) { return (user - m->off) * dir_sign(m); }

static void derive_user_limits(motor_record *m)
{
    double a = user_from_dial(m, m->dhlm), b = user_from_dial(m, m->dllm);
    set_double(m, &m->hlm, fmax(a, b));
    set_double(m, &m->llm, fmin(a, b));
}

/* Whether a dial position is a step count the controller can be sent (a 32-bit raw position, as RVAL). */
static int raw_in_range(const motor_record *m, double dial)
{
    return fabs(dial / m->mres) < 2147483647.0;
}

static int outside_soft_limits(const motor_record *m, double dial)
{
    if (m->dhlm == 0.0 && m->dllm == 0.0)
        return 0;
    return dial > m->dhlm || dial < m->dllm;
}

/* Sets VAL, DVAL and RVAL from a dial target. */
static void set_targets_from_dial(motor_record *m, double dial)
{
    set_double(m, &m->dval, dial);
    set_double(m, &m->val, user_from_dial(m, dial));
    set_long(m, &m->rval, dial / m->mres);
}

/* After a stop, a homing or a limit: the targets follow the readback so nothing restarts. */
static void targets_to_readback(motor_record *m)
{
    set_targets_from_dial(m, m->drbv);
}

static void set_dmov(motor_record *m, int done)
{
    set_short(m, &m->dmov, done);
    motor_status_changed();
}

static void set_mip(motor_record *m, unsigned mip)
{
    if (m->mip != mip) {
        m->mip = (uint16_t)mip;
        post(m, &m->mip);
    }
}

/* ------------------------------------------------------------------------------------------------------
 * Commands to the axis
 */
/* The record's device support; NULL when its DTYP is not a motor device support (then it never moves). */
static const motor_dset *device(const motor_record *m)
{
    const db_dset *d = m->common.dset;
    return d && d->record_type && !strcmp(d->record_type, motor_record_type.name) ? (const motor_dset *)d : NULL;
}

/* Hands a command to device support; with a speed, a SET_SPEED precedes it. Returns the last sequence number. */
static unsigned long send(motor_record *m, motor_cmd_kind kind, double position, double speed_egu, double accl)
{
    const motor_dset *dev = device(m);
    if (!dev)
        return 0;
    double steps = fabs(m->mres);
    if (kind == MOTOR_CMD_MOVE || kind == MOTOR_CMD_HOME_FORWARD || kind == MOTOR_CMD_HOME_REVERSE) {
        double speed = speed_egu > 0.0 ? speed_egu : 1.0;
        if (m->vmax > 0.0 && speed > m->vmax)
            speed = m->vmax;
        motor_command sp = {.kind = MOTOR_CMD_SET_SPEED, .velocity = speed / steps,
                            .acceleration = speed / (accl > 0.0 ? accl : 0.01) / steps};
        unsigned long first = dev->issue(m, &sp);
        if (!m->first_seq)
            m->first_seq = first;
    }
    motor_command cmd = {.kind = kind, .position = position, .enable = m->cnen};
    unsigned long seq = dev->issue(m, &cmd);
    if (!m->first_seq)
        m->first_seq = seq;
    return seq;
}

static void start_leg(motor_record *m, double dial, double speed, double accl)
{
    m->seq = send(m, MOTOR_CMD_MOVE, llround(dial / m->mres), speed, accl);
}

/* Starts the motion to a dial target (VAL/DVAL/RVAL already set); refuses it outside the soft limits. */
static void begin_move(motor_record *m, double dial)
{
    double backlash_start = dial - m->bdst;
    int use_backlash = m->bdst != 0.0 && fabs(dial - m->drbv) > m->rdbd;
    /* Already approaching in the preferred direction and within one backlash distance: one slow leg. */
    int direct_slow = use_backlash && (dial - m->drbv) * m->bdst > 0.0 && fabs(dial - m->drbv) <= fabs(m->bdst);
    if (outside_soft_limits(m, dial) || (use_backlash && !direct_slow && outside_soft_limits(m, backlash_start)) ||
        !raw_in_range(m, dial) || !raw_in_range(m, backlash_start)) {
        set_short(m, &m->lvio, 1);
        log_info("motor", "%s: target %g outside soft limits %g..%g: not moving", m->common.name,
                 user_from_dial(m, dial), m->llm, m->hlm);
        set_targets_from_dial(m, m->last_dval);
        db_notify_fail(&m->common, DB_ERR_FAILED);   /* a put-callback on the refused move reports it */
        return;
    }
    set_short(m, &m->lvio, 0);
    m->target_dial = dial;
    set_short(m, &m->rcnt, 0);
    set_short(m, &m->miss, 0);
    m->first_seq = 0;
    if (m->spmg == SPMG_STOP || m->spmg == SPMG_PAUSE)
        return;   /* the target is kept; Go or Move starts it */
    if (use_backlash && !direct_slow) {
        m->phase = PHASE_BACKLASH;
        set_mip(m, MIP_MOVE | MIP_BACKLASH);
        start_leg(m, backlash_start, m->velo, m->accl);
    } else {
        m->phase = PHASE_MOVE;
        set_mip(m, MIP_MOVE);
        if (use_backlash)
            start_leg(m, dial, m->bvel, m->bacc);
        else
            start_leg(m, dial, m->velo, m->accl);
    }
}

static void stop_motion(motor_record *m, int phase)
{
    if (m->phase == PHASE_IDLE)
        return;
    m->seq = send(m, MOTOR_CMD_STOP, 0, 0, 0);
    m->phase = phase;
    set_mip(m, m->mip | MIP_STOP);
}

void motor_record_stop(motor_record *m)
{
    stop_motion(m, PHASE_STOP);
}

/* SET mode: a drive field write redefines positions instead of moving. */
static void calibrate(motor_record *m, int field_is_val)
{
    if (field_is_val && m->foff == 0) {   /* Variable offset: only OFF changes */
        set_double(m, &m->dval, m->last_dval);
        set_long(m, &m->rval, m->dval / m->mres);
        set_double(m, &m->off, m->val - dir_sign(m) * m->dval);
        set_double(m, &m->rbv, user_from_dial(m, m->drbv));
        derive_user_limits(m);
        return;
    }
    /* Load the new dial position into the controller. Variable keeps VAL (OFF absorbs it), Frozen keeps OFF. */
    if (m->foff == 0) {
        set_double(m, &m->val, m->last_val);
        set_double(m, &m->off, m->val - dir_sign(m) * m->dval);
        derive_user_limits(m);
    } else {
        set_double(m, &m->val, user_from_dial(m, m->dval));
    }
    m->first_seq = 0;
    m->seq = send(m, MOTOR_CMD_SET_POSITION, llround(m->dval / m->mres), 0, 0);
    m->phase = PHASE_LOAD;
    set_mip(m, MIP_LOAD_P);
}

typedef enum { DRIVE_USER, DRIVE_DIAL, DRIVE_RAW } drive_kind;

static void drive(motor_record *m, drive_kind kind)
{
    if (kind == DRIVE_USER) {
        set_double(m, &m->dval, dial_from_user(m, m->val));
        set_long(m, &m->rval, m->dval / m->mres);
    } else {
        if (kind == DRIVE_RAW)
            set_double(m, &m->dval, m->rval * m->mres);
        else
            set_long(m, &m->rval, m->dval / m->mres);
        set_double(m, &m->val, user_from_dial(m, m->dval));
    }
    post(m, &m->val);
    set_dmov(m, 0);
    if (m->set)
        calibrate(m, kind == DRIVE_USER);
    else
        begin_move(m, m->dval);
}

static void home(motor_record *m, int forward)
{
    set_dmov(m, 0);
    m->first_seq = 0;
    m->seq = send(m, forward ? MOTOR_CMD_HOME_FORWARD : MOTOR_CMD_HOME_REVERSE, 0, m->hvel, m->accl);
    m->phase = PHASE_HOME;
    set_mip(m, forward ? MIP_HOMF : MIP_HOMR);
}

/* Jog: run at JVEL towards the soft limit (or the hard limit when there are none) until released. */
static void jog(motor_record *m, int forward)
{
    int dial_up = forward == (m->dir == 0);
    double far = fabs(m->mres) * 2e9;
    double dial = m->dhlm == 0.0 && m->dllm == 0.0 ? (dial_up ? far : -far) : (dial_up ? m->dhlm : m->dllm);
    set_dmov(m, 0);
    set_short(m, &m->lvio, 0);
    m->first_seq = 0;
    m->phase = PHASE_JOG;
    set_mip(m, forward ? MIP_JOGF : MIP_JOGR);
    start_leg(m, dial, m->jvel, m->accl);
}

static void spmg_changed(motor_record *m)
{
    if (m->spmg == SPMG_STOP) {
        stop_motion(m, PHASE_STOP);
        return;
    }
    if (m->spmg == SPMG_PAUSE) {
        stop_motion(m, PHASE_PAUSE);
        return;
    }
    if (m->phase == PHASE_IDLE && fabs(m->dval - m->drbv) > m->rdbd) {   /* Go/Move resumes a kept target */
        set_dmov(m, 0);
        begin_move(m, m->dval);
    }
}

/* ------------------------------------------------------------------------------------------------------
 * Values no motor record accepts
 */
static int is_one_of(const char *name, const char *const *names)
{
    for (; *names; names++)
        if (!strcmp(name, *names))
            return 1;
    return 0;
}

/* Why a value just written to a field cannot be used (NULL: it can). Integer and menu fields never receive
 * NaN or Inf (db refuses them at the conversion); every double field is checked here. */
static const char *invalid_value(const motor_record *m, const db_field_desc *f, const void *value)
{
    static const char *const speeds[] = {"VELO", "BVEL", "HVEL", "JVEL", NULL};
    static const char *const not_negative[] = {"VBAS", "VMAX", "ACCL", "BACC", "RDBD", "DLY", NULL};
    if (f->type == DBF_SHORT)
        return !strcmp(f->name, "RTRY") && *(const int16_t *)value < 0 ? "a negative retry count" : NULL;
    if (f->type != DBF_DOUBLE)
        return NULL;
    double v = *(const double *)value;
    if (!isfinite(v))
        return "not a finite number";
    if ((!strcmp(f->name, "MRES") || !strcmp(f->name, "ERES")) && v == 0.0)
        return "a step size of 0";
    if (is_one_of(f->name, speeds) && v <= 0.0)
        return "a speed must be > 0";
    if (is_one_of(f->name, not_negative) && v < 0.0)
        return "must not be negative";
    if (!strcmp(f->name, "VBAS") && m->vmax > 0.0 && v > m->vmax)
        return "VBAS above VMAX";
    if (!strcmp(f->name, "VMAX") && v > 0.0 && v < m->vbas)
        return "VMAX below VBAS";
    return NULL;
}

/* VELO stays within VBAS..VMAX (VMAX 0: no maximum), as the motor record keeps it. */
static void clamp_velocity(motor_record *m)
{
    double velo = m->velo;
    if (m->vmax > 0.0 && velo > m->vmax)
        velo = m->vmax;
    if (velo < m->vbas)
        velo = m->vbas;
    if (velo != m->velo) {
        log_info("motor", "%s: VELO %g outside VBAS..VMAX %g..%g: set to %g", m->common.name, m->velo, m->vbas,
                 m->vmax, velo);
        set_double(m, &m->velo, velo);
    }
}

/* ------------------------------------------------------------------------------------------------------
 * Record support
 */
static int motor_special(const db_addr *addr, int after)
{
    motor_record *m = (motor_record *)addr->rec;
    const char *name = addr->field->name;
    if (!db_is_running())
        return 0;   /* load time: plain stores, init_record checks and derives the rest */
    if (!after) {
        m->last_val = m->val;
        m->last_dval = m->dval;
        return 0;
    }
    const void *value = db_field_ptr(addr->rec, addr->field);
    const char *why = invalid_value(m, addr->field, value);
    if (why) {
        double number = addr->field->type == DBF_DOUBLE ? *(const double *)value : *(const int16_t *)value;
        log_warn("motor", "%s.%s = %g refused: %s", m->common.name, name, number, why);
        return -1;   /* db puts the previous value back and fails the put */
    }
    m->common.time = time_wall();   /* what this put changes is posted with the time of the put */
    if (!strcmp(name, "VAL")) drive(m, DRIVE_USER);
    else if (!strcmp(name, "DVAL")) drive(m, DRIVE_DIAL);
    else if (!strcmp(name, "RVAL")) drive(m, DRIVE_RAW);
    else if (!strcmp(name, "RLV") || !strcmp(name, "TWF") || !strcmp(name, "TWR")) {
        double step = name[0] == 'R' ? m->rlv : name[2] == 'F' ? (m->twf ? m->twv : 0) : (m->twr ? -m->twv : 0);
        set_double(m, &m->rlv, 0);
        set_short(m, &m->twf, 0);
        set_short(m, &m->twr, 0);
        if (step != 0.0) {
            m->val += step;
            drive(m, DRIVE_USER);
        }
    } else if (!strcmp(name, "HOMF") || !strcmp(name, "HOMR")) {
        int forward = name[3] == 'F';
        if ((forward ? m->homf : m->homr) && m->phase == PHASE_IDLE && m->spmg >= SPMG_MOVE)
            home(m, forward);
        else if (m->phase != PHASE_HOME) {
            set_short(m, &m->homf, 0);
            set_short(m, &m->homr, 0);
        }
    } else if (!strcmp(name, "JOGF") || !strcmp(name, "JOGR")) {
        int forward = name[3] == 'F';
        int pressed = forward ? m->jogf : m->jogr;
        if (pressed && m->phase == PHASE_IDLE && m->spmg >= SPMG_MOVE)
            jog(m, forward);
        else if (!pressed && m->phase == PHASE_JOG)
            stop_motion(m, PHASE_STOP);
    } else if (!strcmp(name, "STOP")) {
        if (m->stop)
            stop_motion(m, PHASE_STOP);
        set_short(m, &m->stop, 0);
    } else if (!strcmp(name, "SPMG")) {
        spmg_changed(m);
    } else if (!strcmp(name, "OFF") || !strcmp(name, "DIR")) {
        set_double(m, &m->val, user_from_dial(m, m->dval));
        set_double(m, &m->rbv, user_from_dial(m, m->drbv));
        derive_user_limits(m);
    } else if (!strcmp(name, "HLM") || !strcmp(name, "LLM")) {
        /* A user limit sets the dial limit it maps to (which one depends on DIR). */
        int high_user = name[0] == 'H';
        double dial = dial_from_user(m, high_user ? m->hlm : m->llm);
        if (high_user != (m->dir != 0))
            set_double(m, &m->dhlm, dial);
        else
            set_double(m, &m->dllm, dial);
        derive_user_limits(m);
    } else if (!strcmp(name, "DHLM") || !strcmp(name, "DLLM")) {
        derive_user_limits(m);
    } else if (!strcmp(name, "MRES")) {
        set_long(m, &m->rval, m->dval / m->mres);
    } else if (!strcmp(name, "VELO") || !strcmp(name, "VBAS") || !strcmp(name, "VMAX")) {
        clamp_velocity(m);
    } else if (!strcmp(name, "CNEN")) {
        send(m, MOTOR_CMD_ENABLE, 0, 0, 0);
    }
    return 0;
}

static int motor_init(db_record *rec, int pass)
{
    motor_record *m = (motor_record *)rec;
    if (pass == 0)
        return 0;
    for (size_t i = 0; i < sizeof motor_fields / sizeof motor_fields[0]; i++) {
        const db_field_desc *f = &motor_fields[i];
        const char *why = (f->flags & SP) ? invalid_value(m, f, db_field_ptr(rec, f)) : NULL;
        if (why) {
            log_error("motor", "%s: field %s: %s", rec->name, f->name, why);
            return -1;
        }
    }
    clamp_velocity(m);
    rec->tse = -2;   /* time stamps are those of the readbacks (motor_process) and of the puts (special) */
    m->val = user_from_dial(m, m->dval);
    m->rval = (int32_t)llround(m->dval / m->mres);
    double a = user_from_dial(m, m->dhlm), b = user_from_dial(m, m->dllm);
    m->hlm = fmax(a, b);
    m->llm = fmin(a, b);
    m->dmov = 1;
    motor_records_add(m);
    return 0;
}

/* Readbacks, limit switches, MSTA and alarms from the latest axis snapshot. */
static void update_readback(motor_record *m, const motor_axis_snapshot *s)
{
    if (s->valid) {
        set_long(m, &m->rrbv, s->position);
        set_double(m, &m->drbv, m->rrbv * m->mres);
        set_double(m, &m->rbv, user_from_dial(m, m->drbv));
    }
    set_double(m, &m->diff, m->dval - m->drbv);
    set_long(m, &m->rdif, (m->dval - m->drbv) / m->mres);
    int moving = s->comm_ok && (s->flags & MOTOR_MOVING);   /* a lost controller moves nothing we know of */
    set_short(m, &m->movn, moving);
    /* User-sense switches: raw high is user high when MRES and DIR agree. */
    int raw_high_is_user_high = (m->mres > 0) == (m->dir == 0);
    int raw_high = (s->flags & MOTOR_HIGH_LIMIT) != 0, raw_low = (s->flags & MOTOR_LOW_LIMIT) != 0;
    set_short(m, &m->hls, raw_high_is_user_high ? raw_high : raw_low);
    set_short(m, &m->lls, raw_high_is_user_high ? raw_low : raw_high);
    set_short(m, &m->athm, (s->flags & MOTOR_HOME_SWITCH) != 0);
    set_short(m, &m->tdir, (s->flags & MOTOR_DIRECTION) != 0);
    uint32_t msta = (moving ? MSTA_MOVING : MSTA_DONE) | (raw_high ? MSTA_PLUS_LS : 0) |
                    (raw_low ? MSTA_MINUS_LS : 0) | ((s->flags & MOTOR_HOME_SWITCH) ? MSTA_HOMELS : 0) |
                    ((s->flags & MOTOR_HOMED) ? MSTA_HOMED : 0) | ((s->flags & MOTOR_PROBLEM) ? MSTA_PROBLEM : 0) |
                    ((s->flags & MOTOR_DIRECTION) ? MSTA_DIRECTION : 0) | (s->comm_ok ? 0 : MSTA_COMM_ERR);
    if (m->msta != msta) {
        m->msta = msta;
        post(m, &m->msta);
    }
    if (!s->comm_ok)
        db_alarm_raise(&m->common, STAT_COMM, INVALID_ALARM);
    else if (s->flags & MOTOR_PROBLEM)
        db_alarm_raise(&m->common, STAT_STATE, MAJOR_ALARM);
    if (m->refused)
        db_alarm_raise(&m->common, STAT_WRITE, MAJOR_ALARM);
}

/* A leg of the motion ended (controller done, readback fresh): backlash leg, retry, or done. */
static void leg_done(motor_record *m, const motor_axis_snapshot *s)
{
    int at_limit = (s->flags & (MOTOR_HIGH_LIMIT | MOTOR_LOW_LIMIT)) != 0;
    switch (m->phase) {
    case PHASE_BACKLASH:
        m->phase = PHASE_MOVE;
        set_mip(m, MIP_MOVE);
        start_leg(m, m->target_dial, m->bvel, m->bacc);
        return;
    case PHASE_MOVE:
        if (!at_limit && !(s->flags & MOTOR_PROBLEM) && fabs(m->target_dial - m->drbv) > m->rdbd) {
            if (m->rcnt < m->rtry) {
                set_short(m, &m->rcnt, m->rcnt + 1);
                start_leg(m, m->target_dial, m->bdst != 0.0 ? m->bvel : m->velo, m->accl);
                return;
            }
            set_short(m, &m->miss, 1);
        }
        break;
    case PHASE_HOME:
    case PHASE_STOP:
    case PHASE_JOG:
        targets_to_readback(m);
        break;
    default:
        break;
    }
    m->phase = PHASE_IDLE;
}

static long motor_process(db_record *rec)
{
    motor_record *m = (motor_record *)rec;
    const motor_dset *dev = device(m);
    motor_axis_snapshot s = {0};
    int has_axis = dev && dev->axis_state(m, &s) == 0;
    /* Every update carries the time of the readback it comes from (never earlier than the last put). */
    if (s.stamp.tv_sec > rec->time.tv_sec || (s.stamp.tv_sec == rec->time.tv_sec && s.stamp.tv_nsec > rec->time.tv_nsec))
        rec->time = s.stamp;
    /* Each pass re-evaluates the alarm from the latest state: a candidate raised on a pass that left the
     * motion running (no db_process_finish) must not outlive the condition that raised it. */
    rec->nsta = rec->nsev = 0;
    update_readback(m, &s);
    if (!s.comm_ok) {
        m->synced = 0;   /* when the controller is back, where it says the axis is wins over the targets */
    } else if (!m->synced && m->phase == PHASE_IDLE) {
        m->synced = 1;
        if (fabs(m->dval - m->drbv) > m->rdbd)
            log_warn("motor", "%s: controller (re)connected at %g: VAL %g set to the readback", rec->name, m->rbv,
                     m->val);
        targets_to_readback(m);
    }
    if (m->phase != PHASE_IDLE) {
        if (!has_axis || (m->first_seq && s.failed >= m->first_seq) ||
            (!s.connected && s.executed >= m->first_seq)) {
            /* The controller refused or could not be reached: the motion is over, with an alarm. */
            m->refused = has_axis && s.connected;
            log_warn("motor", "%s: motion aborted: %s", rec->name,
                     m->refused ? s.error : has_axis ? "connection to the controller lost" : "no controller");
            db_alarm_raise(rec, m->refused ? STAT_WRITE : STAT_COMM, m->refused ? MAJOR_ALARM : INVALID_ALARM);
            db_notify_fail(rec, DB_ERR_FAILED);   /* the put that started the move reports the failure */
            m->phase = PHASE_IDLE;
        } else if (s.polled >= m->seq && !(s.flags & MOTOR_MOVING)) {
            m->refused = 0;
            leg_done(m, &s);
        }
    }
    if (m->phase != PHASE_IDLE) {
        rec->pact = 1;
        return 0;
    }
    if (m->mip) {
        set_mip(m, 0);
        set_short(m, &m->homf, 0);
        set_short(m, &m->homr, 0);
        set_short(m, &m->jogf, 0);
        set_short(m, &m->jogr, 0);
        if (m->spmg == SPMG_MOVE) {
            m->spmg = SPMG_PAUSE;
            post(m, &m->spmg);
        }
    }
    if (!m->dmov)
        set_dmov(m, 1);
    db_process_finish(rec);
    return 0;
}

static void motor_meta(const db_addr *addr, db_meta *meta)
{
    const motor_record *m = (const motor_record *)addr->rec;
    const char *f = addr->field->name;
    int is_double = addr->field->type == DBF_DOUBLE;
    if (is_double) {
        str_copy(meta->units, m->egu, sizeof meta->units);
        meta->precision = m->prec;
    }
    double hi = 0, lo = 0;
    if (!strcmp(f, "VAL") || !strcmp(f, "RBV")) {
        hi = m->hlm;
        lo = m->llm;
    } else if (!strcmp(f, "DVAL") || !strcmp(f, "DRBV")) {
        hi = m->dhlm;
        lo = m->dllm;
    } else if (!strcmp(f, "RVAL") || !strcmp(f, "RRBV")) {
        hi = m->dhlm / m->mres;
        lo = m->dllm / m->mres;
    } else if (!strcmp(f, "VELO")) {
        hi = m->vmax;
        lo = m->vbas;
    }
    meta->disp_hi = meta->ctrl_hi = fmax(hi, lo);
    meta->disp_lo = meta->ctrl_lo = fmin(hi, lo);
}

static void motor_free(db_record *rec)
{
    motor_records_remove((motor_record *)rec);
    motor_device_free(rec);
}

const db_record_type motor_record_type = {
    .name = "motor", .size = sizeof(motor_record), .fields = motor_fields,
    .nfields = sizeof motor_fields / sizeof motor_fields[0], .init_record = motor_init, .process = motor_process,
    .special = motor_special, .get_meta = motor_meta, .free_record = motor_free,
};

void motor_record_register(void)
{
    static const db_menu *const menus[] = {&motorSPMG, &motorDIR, &motorFOFF, &motorSET, &motorTORQ, &motorUEIP};
    for (size_t i = 0; i < sizeof menus / sizeof menus[0]; i++)
        db_register_menu(menus[i]);
    db_register_record_type(&motor_record_type);
}
