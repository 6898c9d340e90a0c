/* commands.c -- the CA server's shell commands (casr, casSetLimits) and its registration: the server starts at
 * the end of iocInit and stops at db_shutdown (server.c). */
#include "core/ca/ca.h"
#include "core/ca/ca_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/db/db.h"
#include "core/shell/shell.h"

static int cmd_casr(int argc, char **argv, char *err, size_t errlen)
{
    long level = 0;
    if (argc > 1 && shell_arg_long(argv[1], "level", &level, err, errlen))
        return -1;
    char *text = ca_server_report((int)level);
    fputs(text ? text : "Channel Access server not running\n", stdout);
    fflush(stdout);
    free(text);
    return 0;
}

static int cmd_limits(int argc, char **argv, char *err, size_t errlen)
{
    long v[3];
    const char *what[3] = { "max_clients", "max_channels", "max_queue_bytes" };
    for (int i = 0; i < 3; i++)
        if (shell_arg_long(argv[i + 1], what[i], &v[i], err, errlen))
            return -1;
        else if (v[i] <= 0) {
            snprintf(err, errlen, "%s must be positive", what[i]);
            return -1;
        }
    (void)argc;
    ca_server_limits.max_clients = (unsigned)v[0];
    ca_server_limits.max_channels = (unsigned)v[1];
    ca_server_limits.max_queue_bytes = (size_t)v[2];
    return 0;
}

void ca_register(void)
{
    ca_limits_from_env();       /* casSetLimits in st.cmd, which runs later, overrides */
    shell_register("casr", "casr [level]  CA server report: 0 summary, 1 clients, 2 channels", 0, 1, cmd_casr);
    shell_register("casSetLimits", "casSetLimits max_clients max_channels_per_client max_queued_bytes", 3, 3,
                   cmd_limits);
    db_at_init(ca_server_start, NULL);
    db_at_shutdown(ca_server_stop, NULL);
}
