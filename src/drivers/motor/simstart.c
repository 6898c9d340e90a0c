/* simstart.c -- runs bin/reloc-sim-motor as a child process for st.cmd (simMotorStart) and tests: finds the
 * binary, starts it, reads the port it listens on from its first line of output, reaps it when it dies (one
 * reaper thread per simulator: no <defunct> child, a log line saying how to restart it), and stops it.
 * sim->lock guards exited/stopping between the reaper and motor_sim_stop. */
#include "drivers/motor/motor.h"

#include "core/base/base.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_MS 5000

struct motor_sim {
    pid_t pid;
    int port;
    pthread_t reaper;
    pthread_mutex_t lock;
    int exited;                    /* the child has exited: no signal may be sent to its pid any more */
    int stopping;                  /* motor_sim_stop asked it to exit */
};

extern char **environ;

static int find_binary(char *path, size_t cap)
{
    const char *bin = getenv("RELOC_BIN");
    if (bin && *bin) {
        snprintf(path, cap, "%s/reloc-sim-motor", bin);
        if (access(path, X_OK) == 0)
            return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    static const char *const relative[] = {"", "/../bin"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, cap, "%s%s/reloc-sim-motor", exe, relative[i]);
        if (access(path, X_OK) == 0)
            return 0;
    }
    return -1;
}

static void describe_exit(const siginfo_t *info, char *text, size_t len)
{
    if (info->si_code == CLD_EXITED)
        snprintf(text, len, "exit status %d", info->si_status);
    else
        snprintf(text, len, "killed by signal %d (%s)", info->si_status, strsignal(info->si_status));
}

/* Waits for the child to exit, marks it exited while it is still a zombie (its pid cannot be reused yet, so
 * motor_sim_stop never signals a stranger), then reaps it. */
static void *reaper_main(void *arg)
{
    motor_sim *sim = arg;
    siginfo_t info = {0};
    while (waitid(P_PID, (id_t)sim->pid, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&sim->lock);
    sim->exited = 1;
    int expected = sim->stopping;
    pthread_mutex_unlock(&sim->lock);
    waitpid(sim->pid, NULL, 0);
    if (!expected) {
        char how[96];
        describe_exit(&info, how, sizeof how);
        log_error("motor", "simulator pid %d on 127.0.0.1:%d %s; restart it on the same port with "
                  "simMotorStart %d (the controller reconnects by itself)", (int)sim->pid, sim->port, how, sim->port);
    }
    return NULL;
}

int motor_sim_exited(motor_sim *sim)
{
    pthread_mutex_lock(&sim->lock);
    int exited = sim->exited;
    pthread_mutex_unlock(&sim->lock);
    return exited;
}

int motor_sim_port(const motor_sim *sim)
{
    return sim->port;
}

motor_sim *motor_sim_start(int port, int axes, const char *extra_args, char *err, size_t errlen)
{
    char path[PATH_MAX + 32];
    if (find_binary(path, sizeof path) < 0) {
        snprintf(err, errlen, "cannot find reloc-sim-motor (set RELOC_BIN)");
        return NULL;
    }
    char port_text[16], axes_text[16], extra[256];
    snprintf(port_text, sizeof port_text, "%d", port);
    snprintf(axes_text, sizeof axes_text, "%d", axes);
    char *argv[32] = {path, "--port", port_text, "--axes", axes_text, "--exit-with-parent", "1"};
    int argc = 7;
    str_copy(extra, extra_args ? extra_args : "", sizeof extra);
    char *save = NULL;
    for (char *tok = strtok_r(extra, " ", &save); tok && argc < 31; tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;

    int pipefd[2];
    if (pipe(pipefd) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return NULL;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipefd[0]);
    /* Only stdin/stdout/stderr: the IOC's sockets (the CA port) must not stay open in a simulator that
     * outlives it. */
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
    /* The IOC blocks SIGTERM in every thread (it reads signals from a signalfd); the child must not inherit
     * that, or it could not be stopped. */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, path, &actions, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(pipefd[1]);
    if (rc) {
        close(pipefd[0]);
        snprintf(err, errlen, "cannot start %s: %s", path, strerror(rc));
        return NULL;
    }
    char line[128];
    size_t len = 0;
    struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
    while (len < sizeof line - 1 && !memchr(line, '\n', len) && poll(&pfd, 1, START_TIMEOUT_MS) == 1) {
        ssize_t n = read(pipefd[0], line + len, sizeof line - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(pipefd[0]);
    line[len] = '\0';
    const char *marker = strstr(line, "listening on port ");
    if (!marker) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "reloc-sim-motor did not start on port %d", port);
        return NULL;
    }
    motor_sim *sim = xcalloc(1, sizeof *sim);
    sim->pid = pid;
    sim->port = atoi(marker + strlen("listening on port "));
    pthread_mutex_init(&sim->lock, NULL);
    pthread_create(&sim->reaper, NULL, reaper_main, sim);
    log_info("motor", "simulator pid %d listening on 127.0.0.1:%d", pid, sim->port);
    return sim;
}

void motor_sim_stop(motor_sim *sim)
{
    if (!sim)
        return;
    pthread_mutex_lock(&sim->lock);
    sim->stopping = 1;
    if (!sim->exited)
        kill(sim->pid, SIGTERM);
    pthread_mutex_unlock(&sim->lock);
    pthread_join(sim->reaper, NULL);
    pthread_mutex_destroy(&sim->lock);
    free(sim);
}
