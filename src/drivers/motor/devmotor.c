/* devmotor.c -- binds records to the motor driver and configures it from st.cmd:
 *   - device support "reloc motor" (motor records, OUT "@CONTROLLER AXIS"): issues the commands record support
 *     plans to the axis's controller, gives the axis's state back, and has the record processed whenever the
 *     controller's view of the axis changes (the axis listener);
 *   - "reloc motor allstop" (bo: writing 1 stops every motor) and "reloc motor status" (bi: 1 when every motor
 *     is done, i.e. alldone; longin: how many motors are moving), I/O Intr on every DMOV change;
 *   - st.cmd commands simMotorStart and motorControllerCreate, and motor_register().
 * The list of motor records and the status scan list are guarded by the db lock; the simulators started here
 * by sims_lock (the shell thread starts them, the shutdown hook or exit stops them). */
#include "drivers/motor/motor_internal.h"

#include "core/base/base.h"
#include "core/shell/shell.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static motor_record **records;      /* every motor record (db lock) */
static size_t nrecords, records_cap;
static db_ioscan *status_scan;      /* alldone/moving records (db lock; freed by db_shutdown) */

#define MAX_SIMS 8
static pthread_mutex_t sims_lock = PTHREAD_MUTEX_INITIALIZER;
static motor_sim *sims[MAX_SIMS];
static int nsims;
static int shutdown_hook_set;       /* shell thread only */

/* ------------------------------------------------------------------------------------------------------
 * Motor records
 */
void motor_records_add(motor_record *m)
{
    if (nrecords == records_cap) {
        records_cap = records_cap ? 2 * records_cap : 16;
        records = xrealloc(records, records_cap * sizeof *records);
    }
    records[nrecords++] = m;
}

void motor_records_remove(motor_record *m)
{
    for (size_t i = 0; i < nrecords; i++) {
        if (records[i] == m) {
            records[i] = records[--nrecords];
            break;
        }
    }
    if (!nrecords) {
        free(records);
        records = NULL;
        records_cap = 0;
        status_scan = NULL;   /* db_shutdown frees the scan lists with the records */
    }
}

void motor_status_changed(void)
{
    if (status_scan)
        db_ioscan_request(status_scan);
}

static size_t moving_count(void)
{
    size_t n = 0;
    for (size_t i = 0; i < nrecords; i++)
        n += records[i]->dmov == 0;
    return n;
}

/* The axis a motor record drives (dpvt), from OUT "@CONTROLLER AXIS". */
typedef struct motor_axis_binding {
    motor_controller *controller;
    int axis;
} motor_axis_binding;

static void axis_changed(void *user)
{
    db_request_process(user);
}

static unsigned long motor_dev_issue(motor_record *m, const motor_command *command)
{
    motor_axis_binding *b = m->common.dpvt;
    return b ? motor_axis_command(b->controller, b->axis, command) : 0;
}

static int motor_dev_axis_state(motor_record *m, motor_axis_snapshot *out)
{
    motor_axis_binding *b = m->common.dpvt;
    if (!b) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    motor_axis_snapshot_get(b->controller, b->axis, out);
    return 0;
}

/* OUT "@MC1 2": controller MC1, axis 2. */
static int motor_dev_init(db_record *rec)
{
    motor_record *m = (motor_record *)rec;
    const char *p = m->out.text;
    while (*p == '@' || isspace((unsigned char)*p))
        p++;
    char name[64];
    int axis, used = 0;
    if (sscanf(p, "%63s %d %n", name, &axis, &used) < 2 || p[used]) {
        log_error("motor", "%s: OUT '%s' is not \"@CONTROLLER AXIS\"", rec->name, m->out.text);
        return -1;
    }
    motor_controller *c = motor_controller_find(name);
    if (!c) {
        log_error("motor", "%s: no motor controller '%s' (motorControllerCreate first)", rec->name, name);
        return -1;
    }
    if (axis < 1 || axis > motor_controller_axes(c)) {
        log_error("motor", "%s: controller %s has axes 1..%d, not %d", rec->name, name, motor_controller_axes(c),
                  axis);
        return -1;
    }
    motor_axis_binding *b = xcalloc(1, sizeof *b);
    b->controller = c;
    b->axis = axis;
    rec->dpvt = b;
    motor_axis_listen(c, axis, axis_changed, rec);
    return 0;
}

void motor_device_free(db_record *rec)
{
    free(rec->dpvt);
    rec->dpvt = NULL;
}

/* ------------------------------------------------------------------------------------------------------
 * allstop, alldone, moving
 */
static long allstop_io(db_record *rec)
{
    uint16_t *val = db_field_ptr(rec, db_find_field(rec, "VAL"));
    if (*val) {
        log_info("motor", "%s: stopping every motor", rec->name);
        for (size_t i = 0; i < nrecords; i++)
            motor_record_stop(records[i]);
        *val = 0;
        db_post_events(rec, val, DBE_VALUE | DBE_LOG);
    }
    return 0;
}

static int status_ioint(db_record *rec, db_ioscan **list)
{
    if (!status_scan)
        status_scan = db_ioscan_create();
    *list = status_scan;
    return 0;
}

static int status_init(db_record *rec)
{
    const db_field_desc *val = db_find_field(rec, "VAL");
    return val && (val->type == DBF_LONG || val->type == DBF_ENUM) ? 0 : -1;
}

static long status_io(db_record *rec)
{
    const db_field_desc *val = db_find_field(rec, "VAL");
    size_t moving = moving_count();
    if (val->type == DBF_LONG)
        *(int32_t *)db_field_ptr(rec, val) = (int32_t)moving;
    else
        *(uint16_t *)db_field_ptr(rec, val) = moving == 0;
    rec->udf = 0;
    return 2;
}

static const motor_dset reloc_motor_dset = {
    .common = {.name = "reloc motor", .record_type = "motor", .init_record = motor_dev_init},
    .issue = motor_dev_issue,
    .axis_state = motor_dev_axis_state,
};
static const db_dset allstop_dset = {.name = "reloc motor allstop", .record_type = "bo", .io = allstop_io};
static const db_dset alldone_dset = {.name = "reloc motor status", .record_type = "bi", .init_record = status_init,
                                     .get_ioint = status_ioint, .io = status_io};
static const db_dset moving_dset = {.name = "reloc motor status", .record_type = "longin",
                                    .init_record = status_init, .get_ioint = status_ioint, .io = status_io};

/* ------------------------------------------------------------------------------------------------------
 * st.cmd commands
 */
static void stop_sims(void)
{
    pthread_mutex_lock(&sims_lock);
    for (int i = 0; i < nsims; i++)
        motor_sim_stop(sims[i]);
    nsims = 0;
    pthread_mutex_unlock(&sims_lock);
}

static void on_shutdown(void *user)
{
    (void)user;
    motor_controller_destroy_all();
    stop_sims();
    shutdown_hook_set = 0;
}

static void ensure_shutdown_hook(void)
{
    if (!shutdown_hook_set) {
        db_at_shutdown(on_shutdown, NULL);
        shutdown_hook_set = 1;
    }
}

static int cmd_sim_start(int argc, char **argv, char *err, size_t errlen)
{
    long port, axes = 6;
    if (shell_arg_long(argv[1], "port", &port, err, errlen) < 0 ||
        (argc > 2 && shell_arg_long(argv[2], "axes", &axes, err, errlen) < 0))
        return -1;
    pthread_mutex_lock(&sims_lock);
    for (int i = 0; i < nsims; i++) {   /* a simulator that died (and was reaped) frees its slot and port */
        if (motor_sim_exited(sims[i])) {
            motor_sim_stop(sims[i]);
            sims[i--] = sims[--nsims];
        }
    }
    int full = nsims == MAX_SIMS;
    pthread_mutex_unlock(&sims_lock);
    if (full) {
        snprintf(err, errlen, "at most %d simulators", MAX_SIMS);
        return -1;
    }
    motor_sim *sim = motor_sim_start((int)port, (int)axes, argc > 3 ? argv[3] : NULL, err, errlen);
    if (!sim)
        return -1;
    static int atexit_set;
    if (!atexit_set) {
        atexit(stop_sims);   /* also when st.cmd fails before iocInit */
        atexit_set = 1;
    }
    pthread_mutex_lock(&sims_lock);
    sims[nsims++] = sim;
    pthread_mutex_unlock(&sims_lock);
    if (!shell_iocinit_done()) {   /* st.cmd can then say "127.0.0.1:$(MOTOR_SIM_PORT)"; no setenv among threads */
        char text[16];
        snprintf(text, sizeof text, "%d", motor_sim_port(sim));
        setenv("MOTOR_SIM_PORT", text, 1);
    }
    ensure_shutdown_hook();
    return 0;
}

static int cmd_controller_create(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    long axes;
    if (shell_arg_long(argv[4], "axes", &axes, err, errlen) < 0)
        return -1;
    if (!motor_controller_create(argv[1], argv[2], argv[3], (int)axes, err, errlen))
        return -1;
    ensure_shutdown_hook();
    return 0;
}

void motor_device_register(void)
{
    db_register_dset(&reloc_motor_dset.common);
    db_register_dset(&allstop_dset);
    db_register_dset(&alldone_dset);
    db_register_dset(&moving_dset);
}

void motor_register(void)
{
    motor_record_register();
    motor_device_register();
    shell_register("simMotorStart", "simMotorStart(port, [axes], [\"options\"]): start reloc-sim-motor on "
                   "127.0.0.1:port (0 = any free port), stopped when the IOC exits; after iocInit it restarts a "
                   "simulator that died: simMotorStart $(MOTOR_SIM_PORT)", 1, 3, cmd_sim_start);
    shell_register("motorControllerCreate", "motorControllerCreate(name, \"host:port\", \"file.proto\", axes): "
                   "a motor controller driven through a protocol file (STREAM_PROTOCOL_PATH)", 4, 4,
                   cmd_controller_create);
}
