/* motion.h -- the one move path: where the sample stage is and how to move it, for every part of reloc that
 * reads a stage position or moves the stage (the camera's stage inputs, the stage map and relocalization, the
 * scan-macro limit check, the web view).
 *
 * A stage is two axes, X and Y, each a coarse motor record and optionally a piezo record on top of it; the
 * position of an axis is the sum of both. Positions are micrometres: every record's EGU is converted with
 * um_per_length_unit (a motor whose EGU is not a length is not bound and the stage does not move). Nothing is
 * cached: positions, soft limits (HLM/LLM) and DISP are read from the records at the moment of the move. A
 * move is planned as a whole before any motor is told (a target outside a soft limit, a disabled motor or a
 * missing record refuses it with a message and nothing moves), then goes to the records as put-callbacks on
 * VAL, so the motor record's own checks, alarms and completion apply; a put-callback that fails or a motor
 * that refuses the target (LVIO) makes the move fail with the motor's reason. A target is absolute unless the
 * caller asks for a relative move.
 *
 * Threads and locks: a motion_stage is created and bound by its owner (st.cmd, iocInit); afterwards any
 * thread may use it. `lock` (inside) guards the move in flight and is taken after the db lock, never before.
 * Functions marked [locked] need the db lock held; the others take it themselves.
 */
#ifndef RELOC_MOTION_H
#define RELOC_MOTION_H

#include "core/db/db.h"

#include <stddef.h>

/* ---- a position as a sum of channels (the camera's stage inputs) ------------------------------------- */
#define MOTION_MAX_TERMS 2

typedef struct motion_position {
    int nterms;
    db_number term[MOTION_MAX_TERMS];       /* a record field here, or a PV of another IOC */
    double um_per_unit[MOTION_MAX_TERMS];   /* from each channel's EGU (here: at resolve; another IOC's: each read) */
} motion_position;

/* Resolves "P:samx.RBV" or "P:samx.RBV+P:pssx.RBV" (after iocInit; a name no record here has is a PV of another
 * IOC, owner names the user in its log lines): 0; 1 when a channel's units are not a length (it is then taken as
 * um, and err says so); -1 with err when a channel cannot be had. */
int motion_position_resolve(motion_position *pos, const char *spec, const char *owner, char *err, size_t errlen);
/* The sum in um (takes the db lock); fallback when pos has no channel; NaN while a PV of another IOC in it cannot
 * be read (not connected): a position that is not known is not made up. */
double motion_position_read(const motion_position *pos, double fallback);

/* ---- the stage --------------------------------------------------------------------------------------- */
enum { MOTION_X = 0, MOTION_Y = 1, MOTION_PIEZO_X = 2, MOTION_PIEZO_Y = 3, MOTION_MOTORS = 4 };

typedef struct motion_stage motion_stage;

/* Soft limits of a motor in um; low == high means none (the motor record's DHLM = DLLM = 0). */
typedef struct motion_limits {
    double low, high;
} motion_limits;

/* Before iocInit: the motor records (names without field). owner names the user in log lines. */
motion_stage *motion_stage_create(const char *owner, const char *x_motor, const char *y_motor);
void motion_stage_set_piezo(motion_stage *s, const char *x_piezo, const char *y_piezo);
/* At iocInit: resolves the records' fields; a missing record or a non-length EGU is logged and leaves the
 * stage unable to move. Returns 0 when every named motor is bound. */
int motion_stage_bind(motion_stage *s);
/* After db_shutdown's put-notifies have failed (db_at_exit). */
void motion_stage_free(motion_stage *s);

/* Both coarse motors bound. */
int motion_stage_ready(const motion_stage *s);
int motion_stage_has_piezo(const motion_stage *s);
/* After motion_stage_bind: the motor is a record of another IOC (moved through Channel Access). */
int motion_motor_remote(const motion_stage *s, int motor);
/* Record name of a motor (MOTION_X ...), "" when there is none. */
const char *motion_motor_record(const motion_stage *s, int motor);

/* [locked] The stage can be moved now: every named motor bound and its readback there (a motor of another IOC:
 * connected): 0, or -1 with the reason naming the motor. */
int motion_stage_available(const motion_stage *s, char *err, size_t errlen);
/* [locked] Stage position (coarse + piezo) in um, now. */
int motion_stage_position(const motion_stage *s, double um[2], char *err, size_t errlen);
/* [locked] Soft limits of one motor in um, now: 0, or -1 with err when the motor is not bound. */
int motion_motor_limits(const motion_stage *s, int motor, motion_limits *out, char *err, size_t errlen);

/* What a move will do: which motor of each axis moves and its target. */
typedef struct motion_plan {
    double target_um[2];   /* the stage position it goes to (coarse + piezo) */
    int motor[2];          /* MOTION_X or MOTION_PIEZO_X; MOTION_Y or MOTION_PIEZO_Y */
    double egu[2];         /* their VAL targets in EGU */
} motion_plan;

/* [locked] Plans a move to xy_um (relative: by xy_um from the position now) from the records now: within the
 * piezo's soft limits only the piezo moves, else the coarse motors (the piezo stays). -1 with the reason when
 * the move is refused. */
int motion_plan_move(const motion_stage *s, const double xy_um[2], int relative, motion_plan *plan, char *err,
                     size_t errlen);

/* Called once per move when both motors are done: ok 1, or 0 with the reason. Runs with the db lock held, on
 * the thread that completed the move (possibly inside motion_move_start): it must not block. */
typedef void (*motion_done_fn)(void *user, int ok, const char *message);

/* Plans and starts a move (not under the db lock). 0: started, done will be called (plan, when not NULL,
 * says where to); -1 with err: refused, nothing moved, done is not called. One move per stage at a time: a
 * second one is refused while the first runs. */
int motion_move_start(motion_stage *s, const double xy_um[2], int relative, motion_done_fn done, void *user,
                      motion_plan *plan, char *err, size_t errlen);
/* Worker threads (not under the db lock): moves and waits until done. should_stop (may be NULL) is polled;
 * when it returns non-zero the motors are stopped and the move fails with "stopped". 0, or -1 with err. */
int motion_move(motion_stage *s, const double xy_um[2], int relative, int (*should_stop)(void *), void *user,
                char *err, size_t errlen);
/* Stops every motor of the stage (STOP = 1); no enable needed. 0, or -1 with err naming a motor that did not
 * take it. */
int motion_stage_stop(motion_stage *s, char *err, size_t errlen);
/* A move started by motion_move_start is still running. */
int motion_stage_busy(motion_stage *s);

#endif
