/* motor.h -- motor stages: the protocol-file driven controller driver, the synApps-like `motor` record type,
 * its device support, and the st.cmd commands that configure them.
 *
 * st.cmd (after motor_register()):
 *   simMotorStart(port, axes)                       start bin/reloc-sim-motor on 127.0.0.1:port (stopped at exit)
 *   motorControllerCreate("MC1", "127.0.0.1:port", "simmotor.proto", axes)
 *   record(motor, "$(P)samx") { field(DTYP, "reloc motor") field(OUT, "@MC1 1") ... }   axis 1 of MC1
 *   record(bo, "$(P)allstop") { field(DTYP, "reloc motor allstop") }   1 stops every motor
 *   record(bi, "$(P)alldone")/record(longin, "$(P)moving") { field(DTYP, "reloc motor status") SCAN I/O Intr }
 *
 * Driver model: a controller owns a stream_port (its I/O thread) and one thread of its own that executes
 * queued axis commands in order and polls every axis (fast while any axis moves, slowly when idle). Each
 * command gets a sequence number; an axis snapshot says which commands have run, which failed, and which
 * ones the latest poll already reflects, so a caller knows when "not moving" really means "my move is done".
 * Commands made while the controller is disconnected fail at once: nothing is queued for replay.
 */
#ifndef RELOC_MOTOR_H
#define RELOC_MOTOR_H

#include <stddef.h>
#include <time.h>

/* Registers the motor record type, its device support and the st.cmd commands. */
void motor_register(void);

/* ------------------------------------------------------------------------------------------------------
 * Controller driver (also used directly by C tests)
 */
typedef struct motor_controller motor_controller;

typedef enum {
    MOTOR_CMD_MOVE,            /* position (raw steps) */
    MOTOR_CMD_STOP,
    MOTOR_CMD_HOME_FORWARD,
    MOTOR_CMD_HOME_REVERSE,
    MOTOR_CMD_SET_POSITION,    /* position: redefine the current raw position */
    MOTOR_CMD_SET_SPEED,       /* velocity (steps/s), acceleration (steps/s^2) */
    MOTOR_CMD_ENABLE           /* enable: 0/1 */
} motor_cmd_kind;

typedef struct motor_command {
    motor_cmd_kind kind;
    double position;
    double velocity, acceleration;
    int enable;
} motor_command;

/* Axis status flags (decoded from the controller's status word by the protocol file's *Bit variables). */
#define MOTOR_MOVING      0x01u
#define MOTOR_HIGH_LIMIT  0x02u
#define MOTOR_LOW_LIMIT   0x04u
#define MOTOR_HOME_SWITCH 0x08u
#define MOTOR_HOMED       0x10u
#define MOTOR_PROBLEM     0x20u
#define MOTOR_DIRECTION   0x40u

typedef struct motor_axis_snapshot {
    int connected;                 /* the controller's connection is up */
    int comm_ok;                   /* connected, and the last poll of this axis got a valid reply */
    int valid;                     /* at least one poll succeeded since the controller was created */
    double position;               /* raw readback */
    unsigned flags;                /* MOTOR_* */
    unsigned long issued;          /* highest command sequence number handed out for this axis */
    unsigned long executed;        /* highest sequence number that has run (successfully or not) */
    unsigned long failed;          /* highest sequence number that failed (0: none) */
    unsigned long polled;          /* the latest successful poll ran after every command up to this one */
    struct timespec stamp;         /* wall-clock time of the latest poll reply (or of the poll that failed) */
    char error[128];               /* why `failed` failed */
} motor_axis_snapshot;

/* Called (from the controller thread, no lock held) when an axis's snapshot changed. */
typedef void (*motor_listener_fn)(void *user);

motor_controller *motor_controller_create(const char *name, const char *host_port, const char *protocol_file,
                                          int naxes, char *err, size_t errlen);
motor_controller *motor_controller_find(const char *name);
void motor_controller_destroy(motor_controller *controller);
/* Destroys every controller (IOC shutdown). */
void motor_controller_destroy_all(void);
int motor_controller_axes(const motor_controller *controller);

/* Queues a command for axis (1..naxes); returns its sequence number (never 0). Never blocks on I/O. */
unsigned long motor_axis_command(motor_controller *controller, int axis, const motor_command *command);
void motor_axis_snapshot_get(motor_controller *controller, int axis, motor_axis_snapshot *out);
/* One listener per axis (the record's device support). */
void motor_axis_listen(motor_controller *controller, int axis, motor_listener_fn fn, void *user);

/* ------------------------------------------------------------------------------------------------------
 * The simulator as a child process (st.cmd simMotorStart, tests). The binary is looked up in $RELOC_BIN, then
 * next to the running executable, then in ../bin relative to it. port 0 picks a free port. A simulator that
 * dies is reaped at once and logged; a new one can then be started on the same port.
 */
typedef struct motor_sim motor_sim;

/* extra_args: further command-line options (e.g. "--noise 0"), may be NULL. NULL with err on failure. */
motor_sim *motor_sim_start(int port, int axes, const char *extra_args, char *err, size_t errlen);
int motor_sim_port(const motor_sim *sim);                   /* the port it listens on */
int motor_sim_exited(motor_sim *sim);                       /* 1 once it has exited (it is reaped) */
/* SIGTERM unless it already exited, wait, free. */
void motor_sim_stop(motor_sim *sim);

#endif
