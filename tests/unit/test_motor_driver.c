/* test_motor_driver.c -- the motor controller driver against the real simulator (bin/reloc-sim-motor) through
 * protocols/simmotor.proto: moves end where asked, status bits decode, a refused command fails with the
 * controller's reason, garbage replies and a killed controller mark the axis disconnected, commands made
 * while disconnected fail (never replayed later), and the driver reconnects by itself. */
#include "unit.h"
#include <limits.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "core/base/base.h"
#include "drivers/motor/motor.h"

static char proto_path[PATH_MAX + 64];

static void find_protocol_file(void)
{
    const char *top = getenv("RELOC_TOP");
    if (top) {
        snprintf(proto_path, sizeof proto_path, "%s/protocols/simmotor.proto", top);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);   /* build/<variant>/tests/test_... */
    assert_true(n > 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(proto_path, sizeof proto_path, "%s/../../../protocols/simmotor.proto", exe);
}

/* Waits until pred holds for the axis snapshot (or fails the test after timeout seconds). */
typedef int (*snapshot_pred)(const motor_axis_snapshot *s, unsigned long seq);

static motor_axis_snapshot wait_for(motor_controller *c, int axis, snapshot_pred pred, unsigned long seq,
                                    double timeout)
{
    motor_axis_snapshot s;
    double end = time_monotonic() + timeout;
    do {
        motor_axis_snapshot_get(c, axis, &s);
        if (pred(&s, seq))
            return s;
        usleep(10000);
    } while (time_monotonic() < end);
    fail_msg("axis %d: condition not reached in %.1f s (connected %d pos %.0f flags %x executed %lu polled %lu)",
             axis, timeout, s.connected, s.position, s.flags, s.executed, s.polled);
    return s;
}

static int is_connected(const motor_axis_snapshot *s, unsigned long seq) { (void)seq; return s->comm_ok; }
static int poll_failing(const motor_axis_snapshot *s, unsigned long seq) { (void)seq; return !s->comm_ok; }
static int is_disconnected(const motor_axis_snapshot *s, unsigned long seq) { (void)seq; return !s->connected; }
static int is_done(const motor_axis_snapshot *s, unsigned long seq)
{
    return s->failed < seq && s->polled >= seq && !(s->flags & MOTOR_MOVING);
}
static int has_run(const motor_axis_snapshot *s, unsigned long seq) { return s->executed >= seq; }
static int is_moving(const motor_axis_snapshot *s, unsigned long seq)
{
    return s->polled >= seq && (s->flags & MOTOR_MOVING);
}

static unsigned long command(motor_controller *c, int axis, motor_cmd_kind kind, double position)
{
    motor_command cmd = {.kind = kind, .position = position, .velocity = 20000, .acceleration = 200000,
                         .enable = (int)position};
    return motor_axis_command(c, axis, &cmd);
}

/* Sends a command on a connection of its own, as a test harness would, and waits for its reply. */
static void send_fault(int port, const char *line)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    char buf[128];
    snprintf(buf, sizeof buf, "%s\n", line);
    assert_true(write(fd, buf, strlen(buf)) == (ssize_t)strlen(buf));
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    assert_true(read(fd, buf, sizeof buf) > 0);
    close(fd);
}

/* The simulator of the running test; the teardown stops it even when an assertion failed. */
static motor_sim *sim;

static void stop_sim(void)
{
    motor_sim_stop(sim);
    sim = NULL;
}

static int stop_simulator(void **state)
{
    (void)state;
    stop_sim();
    return 0;
}

static void moves_home_and_status(void **state)
{
    (void)state;
    char err[256];
    sim = motor_sim_start(0, 3, "--noise 0 --range 50000", err, sizeof err);
    assert_non_null(sim);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", motor_sim_port(sim));
    motor_controller *c = motor_controller_create("T1", where, proto_path, 3, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    wait_for(c, 1, is_connected, 0, 5.0);

    command(c, 1, MOTOR_CMD_SET_SPEED, 0);
    unsigned long seq = command(c, 1, MOTOR_CMD_MOVE, 12345);
    unsigned long other = command(c, 2, MOTOR_CMD_MOVE, -4000);
    wait_for(c, 1, is_moving, seq, 5.0);
    motor_axis_snapshot s = wait_for(c, 1, is_done, seq, 10.0);
    assert_true(s.position == 12345.0);
    assert_true(s.flags & MOTOR_DIRECTION);
    s = wait_for(c, 2, is_done, other, 10.0);
    assert_true(s.position == -4000.0);

    /* Past the hard limit: the move ends on the switch with the limit bit set. */
    seq = command(c, 3, MOTOR_CMD_SET_SPEED, 0);
    seq = command(c, 3, MOTOR_CMD_MOVE, 60000);
    s = wait_for(c, 3, is_done, seq, 10.0);
    assert_true(s.position == 50000.0);
    assert_true(s.flags & MOTOR_HIGH_LIMIT);

    /* Homing ends on the switch at 0 with HOMED. */
    seq = command(c, 3, MOTOR_CMD_HOME_REVERSE, 0);
    s = wait_for(c, 3, is_done, seq, 10.0);
    assert_true(s.position == 0.0);
    assert_true(s.flags & MOTOR_HOMED);
    assert_true(s.flags & MOTOR_HOME_SWITCH);

    /* Redefining the position moves nothing. */
    seq = command(c, 1, MOTOR_CMD_SET_POSITION, 100);
    s = wait_for(c, 1, is_done, seq, 5.0);
    assert_true(s.position == 100.0);

    /* A disabled axis refuses to move: the command fails with the controller's reason. */
    command(c, 2, MOTOR_CMD_ENABLE, 0);
    seq = command(c, 2, MOTOR_CMD_MOVE, 10);
    s = wait_for(c, 2, has_run, seq, 5.0);
    assert_int_equal(s.failed, seq);
    assert_non_null(strstr(s.error, "disabled"));
    assert_true(s.connected);

    motor_controller_destroy(c);
    stop_sim();
}

static void faults_disconnect_and_reconnect(void **state)
{
    (void)state;
    char err[256];
    sim = motor_sim_start(0, 2, "--noise 0", err, sizeof err);
    assert_non_null(sim);
    int port = motor_sim_port(sim);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    motor_controller *c = motor_controller_create("T2", where, proto_path, 2, err, sizeof err);
    assert_non_null(c);
    wait_for(c, 1, is_connected, 0, 5.0);

    /* Garbage replies: the poll fails and the axis shows it, then recovers by itself. */
    send_fault(port, "FAULT GARBAGE 4");
    motor_axis_snapshot g = wait_for(c, 1, poll_failing, 0, 5.0);
    assert_true(g.connected);   /* a garbled reply is not a lost connection */
    wait_for(c, 1, is_connected, 0, 5.0);

    /* Slow replies beyond ReplyTimeout: disconnected, and connected again once the delay ends. */
    send_fault(port, "FAULT DELAY 800");
    wait_for(c, 1, is_disconnected, 0, 5.0);
    send_fault(port, "FAULT CLEAR");
    wait_for(c, 1, is_connected, 0, 10.0);

    /* The controller dies mid-move: the axis goes disconnected; a move asked meanwhile fails and is not
     * replayed when a new controller appears on the same port. */
    command(c, 1, MOTOR_CMD_SET_SPEED, 0);
    unsigned long seq = command(c, 1, MOTOR_CMD_MOVE, 1000000);
    wait_for(c, 1, is_moving, seq, 5.0);
    stop_sim();
    wait_for(c, 1, is_disconnected, 0, 5.0);
    seq = command(c, 1, MOTOR_CMD_MOVE, 777);
    motor_axis_snapshot s = wait_for(c, 1, has_run, seq, 5.0);
    assert_int_equal(s.failed, seq);
    sim = motor_sim_start(port, 2, "--noise 0", err, sizeof err);
    assert_non_null(sim);
    s = wait_for(c, 1, is_connected, 0, 10.0);
    usleep(300000);
    motor_axis_snapshot_get(c, 1, &s);
    assert_true(s.position == 0.0);              /* fresh controller: the failed move did not run */
    assert_false(s.flags & MOTOR_MOVING);
    seq = command(c, 1, MOTOR_CMD_MOVE, 500);     /* and the next move works */
    s = wait_for(c, 1, is_done, seq, 10.0);
    assert_true(s.position == 500.0);

    motor_controller_destroy(c);
    stop_sim();
}

static void bad_configuration_is_refused(void **state)
{
    (void)state;
    char err[256];
    assert_null(motor_controller_create("B1", "127.0.0.1:1", "/nonexistent.proto", 2, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    assert_null(motor_controller_create("B2", "nohostport", proto_path, 2, err, sizeof err));
    assert_non_null(strstr(err, "host:port"));
    assert_null(motor_controller_create("B3", "127.0.0.1:1", proto_path, 0, err, sizeof err));
}

int main(void)
{
    find_protocol_file();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(moves_home_and_status, stop_simulator),
        cmocka_unit_test_teardown(faults_disconnect_and_reconnect, stop_simulator),
        cmocka_unit_test(bad_configuration_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
