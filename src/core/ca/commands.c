/* commands.c -- the CA server's shell commands (casr, casSetLimits) and its registration: the server starts at
 * the end of iocInit and stops at db_shutdown (server.c). */
#include "core/ca/ca.h"
#include "core/ca/ca_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/db/db.h"
#include "core/netloop/netloop.h"
#include "core/shell/shell.h"

static int cmd_casr(int argc, char **argv, char *err, size_t errlen)
{
    return netloop_report_cmd(argc, argv, ca_server_report, "Channel Access server not running\n", err, errlen);
}

static int cmd_limits(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    return netloop_limits_cmd(argv, &ca_server_limits.max_clients, &ca_server_limits.max_channels,
                              &ca_server_limits.max_queue_bytes, err, errlen);
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
