/* main.c -- relocioc: the IOC process. Registers every module (the explicit list below), runs the st.cmd
 * script, refuses to start when it failed, then serves until SIGINT/SIGTERM (or exit/EOF on an interactive
 * terminal) and shuts down cleanly: drivers stopped through db_shutdown hooks, the save file flushed.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread (the mask is set before any thread starts) and
 * read from a signalfd by the main thread, so no handler runs in an arbitrary thread.
 * Exit status: 0 after a clean shutdown, 1 when startup failed, 2 on bad usage.
 */
#include "live/stages/stages.h"
#include "core/asyncdev/asyncdev.h"
#include "core/access/access.h"
#include "core/autosave/autosave.h"
#include "core/base/base.h"
#include "core/ca/ca.h"
#include "core/pva/pva.h"
#include "drivers/camera/camera.h"
#include "drivers/framepub/framepub.h"
#include "drivers/pvaimage/pvaimage.h"
#include "core/db/db.h"
#include "core/ioc/ioc.h"
#include "drivers/motor/motor.h"
#include "core/param/param.h"
#include "core/shell/shell.h"
#include "live/stagemap/stagemap.h"
#include "live/web/web.h"
#include "live/xrflive/xrflive.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* Every module of the IOC registers its record types, device support, st.cmd commands and hooks here. */
static void register_modules(void)
{
    iocstatus_register();
    shell_register_builtins();
    db_register_builtins();
    autosave_register();
    access_register();     /* before the CA server: rules are in place when it starts */
    ca_register();
    pva_register();        /* pvAccess beside CA, on the same records and rules */
    asyncdev_register();
    param_register();
    camera_register();
    analysis_register();   /* after the camera: its stages stop after the camera's threads */
    framepub_register();   /* likewise */
    pvaimage_register();   /* likewise */
    xrfioc_register();
    motor_register();
    stagemap_register();
    web_register();
}

static int open_signalfd(void)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a client that vanished is an error return, not a reason to die */
    return signalfd(-1, &stop, SFD_CLOEXEC);
}

/* Blocks until SIGINT or SIGTERM; returns the signal number. */
static int wait_for_signal(int sfd)
{
    struct signalfd_siginfo info;
    for (;;) {
        ssize_t n = read(sfd, &info, sizeof info);
        if (n == (ssize_t)sizeof info) return (int)info.ssi_signo;
        if (n < 0 && errno != EINTR) {
            log_error("ioc", "reading signals: %s", strerror(errno));
            return 0;
        }
    }
}

/* Drivers and autosave stop in their db_shutdown hooks; then db frees every record. */
static void shut_down(void)
{
    db_shutdown();
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s st.cmd\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);   /* command output interleaves with log lines in procServ logs */
    int sfd = open_signalfd();
    if (sfd < 0) {
        log_error("ioc", "signalfd: %s", strerror(errno));
        return 1;
    }
    shell_set_interrupt_fd(sfd);
    register_modules();
    log_info("ioc", "relocioc starting: %s", argv[1]);

    int failed = shell_run_file(argv[1]) < 0;
    if (!failed && !shell_iocinit_done() && !shell_exit_requested()) {
        log_error("ioc", "%s ended without iocInit", argv[1]);
        failed = 1;
    }
    if (failed) {
        log_error("ioc", "startup failed: the IOC does not start");
        shut_down();
        return 1;
    }

    if (!shell_exit_requested()) {
        if (isatty(STDIN_FILENO)) {
            if (shell_interactive_until(sfd)) log_info("ioc", "signal received: shutting down");
        } else {
            int sig = wait_for_signal(sfd);
            log_info("ioc", "%s received: shutting down", sig ? strsignal(sig) : "error");
        }
    }
    shut_down();
    log_info("ioc", "shut down cleanly");
    close(sfd);
    return 0;
}
