/* controller.c -- the motor controller driver: one stream_port per controller plus one thread that runs the
 * axes' queued commands in order through the protocol file and polls every axis (every FAST_POLL seconds
 * while an axis moves or just after a command, every IDLE_POLL seconds otherwise).
 *
 * Threads and locks: controller->lock guards the command queue, the axes' snapshots and listeners, and
 * `stop`. The controller thread does all I/O without the lock and calls listeners without it (they may take
 * the db lock). registry_lock guards the list of controllers. */
#include "drivers/motor/motor.h"

#include "core/base/base.h"
#include "drivers/stream/stream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAST_POLL 0.05
#define IDLE_POLL 0.5
#define MAX_AXES  32

typedef struct queued_command {
    int axis;                          /* 1-based */
    unsigned long seq;
    motor_command command;
    struct queued_command *next;
} queued_command;

typedef struct axis_state {
    char name[12];                     /* $1 of the protocols: the axis number */
    motor_axis_snapshot snap;
    motor_listener_fn listener;
    void *listener_user;
} axis_state;

struct motor_controller {
    char name[64];
    stream_file *file;
    stream_port *port;
    int naxes;
    unsigned status_bits[7];           /* controller status-word mask for each MOTOR_* flag, in flag order */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    queued_command *head, *tail;
    int stop;
    axis_state axes[MAX_AXES];
    struct motor_controller *next;     /* registry */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static motor_controller *registry;

static const char *const status_bit_names[7] = {"MovingBit", "HighLimitBit", "LowLimitBit", "HomeSwitchBit",
                                                "HomedBit", "ProblemBit", "DirectionBit"};

static const char *protocol_for(motor_cmd_kind kind)
{
    switch (kind) {
    case MOTOR_CMD_MOVE: return "move";
    case MOTOR_CMD_STOP: return "stop";
    case MOTOR_CMD_HOME_FORWARD: return "home_forward";
    case MOTOR_CMD_HOME_REVERSE: return "home_reverse";
    case MOTOR_CMD_SET_POSITION: return "set_position";
    case MOTOR_CMD_SET_SPEED: return "set_speed";
    case MOTOR_CMD_ENABLE: return "enable";
    }
    return "?";
}

/* ------------------------------------------------------------------------------------------------------
 * The controller thread
 */
static void notify_if_changed(motor_controller *c, int axis, const motor_axis_snapshot *before)
{
    pthread_mutex_lock(&c->lock);
    axis_state *a = &c->axes[axis - 1];
    motor_axis_snapshot now = a->snap;
    now.stamp = before->stamp;   /* a poll that saw nothing new is no change */
    int changed = memcmp(before, &now, sizeof now) != 0;
    motor_listener_fn fn = a->listener;
    void *user = a->listener_user;
    pthread_mutex_unlock(&c->lock);
    if (changed && fn)
        fn(user);
}

static void run_command(motor_controller *c, const queued_command *q)
{
    stream_values values = {0};
    const motor_command *cmd = &q->command;
    stream_values_set_number(&values, "position", cmd->position);
    stream_values_set_number(&values, "velocity", cmd->velocity);
    stream_values_set_number(&values, "acceleration", cmd->acceleration);
    stream_values_set_number(&values, "enable", cmd->enable);
    const char *args[] = {c->axes[q->axis - 1].name};
    char err[256] = "";
    const char *protocol = protocol_for(cmd->kind);
    int rc = stream_has_protocol(c->file, protocol) ?
             stream_port_call(c->port, protocol, args, 1, &values, err, sizeof err) : STREAM_ERR_NO_PROTOCOL;
    if (rc == STREAM_ERR_NO_PROTOCOL)
        snprintf(err, sizeof err, "the protocol file has no '%s'", protocol);
    const stream_value *refusal = stream_values_get(&values, "error");

    pthread_mutex_lock(&c->lock);
    axis_state *a = &c->axes[q->axis - 1];
    motor_axis_snapshot before = a->snap;
    a->snap.executed = q->seq;
    if (rc != STREAM_OK) {
        a->snap.failed = q->seq;
        if (refusal)   /* the controller answered, with its reason for refusing */
            snprintf(err, sizeof err, "%s refused: %s", protocol, refusal->text);
        str_copy(a->snap.error, err, sizeof a->snap.error);
        a->snap.connected = stream_port_connected(c->port);
    }
    char why[sizeof a->snap.error];
    str_copy(why, a->snap.error, sizeof why);
    pthread_mutex_unlock(&c->lock);
    if (rc != STREAM_OK)
        log_warn("motor", "%s axis %d: %s failed: %s", c->name, q->axis, protocol, why);
    notify_if_changed(c, q->axis, &before);
}

static unsigned decode_status(const motor_controller *c, unsigned long word)
{
    unsigned flags = 0;
    for (int i = 0; i < 7; i++)
        if (c->status_bits[i] && (word & c->status_bits[i]))
            flags |= 1u << i;
    return flags;
}

/* Polls one axis; returns 1 when it is moving. */
static int poll_axis(motor_controller *c, int axis)
{
    pthread_mutex_lock(&c->lock);
    unsigned long executed = c->axes[axis - 1].snap.executed;
    pthread_mutex_unlock(&c->lock);

    stream_values values = {0};
    const char *args[] = {c->axes[axis - 1].name};
    char err[256] = "";
    int rc = stream_port_call(c->port, "poll", args, 1, &values, err, sizeof err);
    const stream_value *pos = stream_values_get(&values, "position");
    const stream_value *status = stream_values_get(&values, "status");
    if (rc == STREAM_OK && !pos) {
        rc = STREAM_ERR_MISMATCH;
        snprintf(err, sizeof err, "poll gave no 'position'");
    }

    pthread_mutex_lock(&c->lock);
    axis_state *a = &c->axes[axis - 1];
    motor_axis_snapshot before = a->snap;
    a->snap.stamp = time_wall();
    if (rc == STREAM_OK) {
        a->snap.connected = 1;
        a->snap.comm_ok = 1;
        a->snap.valid = 1;
        a->snap.position = pos->number;
        a->snap.flags = status ? decode_status(c, (unsigned long)status->number) : 0;
        a->snap.polled = executed;
    } else {
        a->snap.comm_ok = 0;
        a->snap.connected = stream_port_connected(c->port);
    }
    int moving = rc == STREAM_OK && (a->snap.flags & MOTOR_MOVING);
    pthread_mutex_unlock(&c->lock);
    if (rc != STREAM_OK && before.comm_ok)
        log_warn("motor", "%s axis %d: poll failed: %s", c->name, axis, err);
    if (rc == STREAM_OK && !before.comm_ok)
        log_info("motor", "%s axis %d: communication restored", c->name, axis);
    notify_if_changed(c, axis, &before);
    return moving;
}

static void *controller_thread(void *arg)
{
    motor_controller *c = arg;
    double next_poll = 0.0;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        double now = time_monotonic();
        if (!c->head && now < next_poll) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until = time_add(until, next_poll - now);
            pthread_cond_timedwait(&c->cond, &c->lock, &until);
            continue;
        }
        queued_command *batch = c->head;
        c->head = c->tail = NULL;
        pthread_mutex_unlock(&c->lock);
        int ran = batch != NULL;
        while (batch) {
            queued_command *q = batch;
            batch = q->next;
            run_command(c, q);
            free(q);
        }
        double started = time_monotonic();
        if (ran || started >= next_poll) {
            int moving = 0;
            for (int axis = 1; axis <= c->naxes; axis++)
                moving |= poll_axis(c, axis);
            /* Polls start on a fixed cadence, however long polling every axis took. */
            next_poll = started + (moving || ran ? FAST_POLL : IDLE_POLL);
        }
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------
 * Public API
 */
motor_controller *motor_controller_create(const char *name, const char *host_port, const char *protocol_file,
                                          int naxes, char *err, size_t errlen)
{
    if (naxes < 1 || naxes > MAX_AXES) {
        snprintf(err, errlen, "axes must be 1..%d", MAX_AXES);
        return NULL;
    }
    if (motor_controller_find(name)) {
        snprintf(err, errlen, "motor controller %s already exists", name);
        return NULL;
    }
    stream_file *file = stream_load(protocol_file, err, errlen);
    if (!file)
        return NULL;
    static const char *const required[] = {"poll", "move", "stop"};
    for (int i = 0; i < 3; i++) {
        if (!stream_has_protocol(file, required[i])) {
            snprintf(err, errlen, "protocol file %s has no '%s' protocol", protocol_file, required[i]);
            stream_free(file);
            return NULL;
        }
    }
    motor_controller *c = xcalloc(1, sizeof *c);
    str_copy(c->name, name, sizeof c->name);
    c->file = file;
    c->naxes = naxes;
    for (int i = 0; i < 7; i++) {
        const char *text = stream_variable(file, status_bit_names[i]);
        c->status_bits[i] = text ? (unsigned)strtoul(text, NULL, 0) : 0;
    }
    if (!c->status_bits[0]) {
        snprintf(err, errlen, "protocol file %s does not define MovingBit", protocol_file);
        stream_free(file);
        free(c);
        return NULL;
    }
    for (int i = 0; i < naxes; i++)
        snprintf(c->axes[i].name, sizeof c->axes[i].name, "%d", i + 1);
    c->port = stream_port_create(name, host_port, file, err, errlen);
    if (!c->port) {
        stream_free(file);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    pthread_create(&c->thread, NULL, controller_thread, c);
    pthread_mutex_lock(&registry_lock);
    c->next = registry;
    registry = c;
    pthread_mutex_unlock(&registry_lock);
    log_info("motor", "controller %s: %d axes on %s (%s)", name, naxes, host_port, protocol_file);
    return c;
}

motor_controller *motor_controller_find(const char *name)
{
    pthread_mutex_lock(&registry_lock);
    motor_controller *c = registry;
    while (c && strcmp(c->name, name))
        c = c->next;
    pthread_mutex_unlock(&registry_lock);
    return c;
}

void motor_controller_destroy(motor_controller *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&registry_lock);
    for (motor_controller **p = &registry; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    pthread_mutex_lock(&c->lock);
    c->stop = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    while (c->head) {
        queued_command *q = c->head;
        c->head = q->next;
        free(q);
    }
    stream_port_destroy(c->port);
    stream_free(c->file);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

void motor_controller_destroy_all(void)
{
    for (;;) {
        pthread_mutex_lock(&registry_lock);
        motor_controller *c = registry;
        pthread_mutex_unlock(&registry_lock);
        if (!c)
            return;
        motor_controller_destroy(c);
    }
}

int motor_controller_axes(const motor_controller *c)
{
    return c->naxes;
}

unsigned long motor_axis_command(motor_controller *c, int axis, const motor_command *command)
{
    queued_command *q = xcalloc(1, sizeof *q);
    q->axis = axis;
    q->command = *command;
    pthread_mutex_lock(&c->lock);
    q->seq = ++c->axes[axis - 1].snap.issued;
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    unsigned long seq = q->seq;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return seq;
}

void motor_axis_snapshot_get(motor_controller *c, int axis, motor_axis_snapshot *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->axes[axis - 1].snap;
    pthread_mutex_unlock(&c->lock);
}

void motor_axis_listen(motor_controller *c, int axis, motor_listener_fn fn, void *user)
{
    pthread_mutex_lock(&c->lock);
    c->axes[axis - 1].listener = fn;
    c->axes[axis - 1].listener_user = user;
    pthread_mutex_unlock(&c->lock);
}
