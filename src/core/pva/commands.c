/* commands.c -- the pvAccess server's shell commands (pvasr, pvasSetLimits), its limits from the environment,
 * and its registration: the server starts at the end of iocInit and stops at db_shutdown (server.c). */
#include "core/pva/pva.h"
#include "core/pva/pva_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/base/base.h"
#include "core/ca/ca.h"
#include "core/db/db.h"
#include "core/netloop/netloop.h"
#include "core/shell/shell.h"

static int cmd_pvasr(int argc, char **argv, char *err, size_t errlen)
{
    return netloop_report_cmd(argc, argv, pva_server_report, "pvAccess server not running\n", err, errlen);
}

static int cmd_limits(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    return netloop_limits_cmd(argv, &pva_server_limits.max_clients, &pva_server_limits.max_channels,
                              &pva_server_limits.max_queue_bytes, err, errlen);
}

void pva_register(void)
{
    pva_limits *l = &pva_server_limits;     /* pvasSetLimits in st.cmd, which runs later, overrides */
    l->max_clients = (unsigned)ca_env_long("RELOC_PVAS_MAX_CLIENTS", NULL, l->max_clients);
    l->max_channels = (unsigned)ca_env_long("RELOC_PVAS_MAX_CHANNELS", NULL, l->max_channels);
    l->max_queue_bytes = (size_t)ca_env_long("RELOC_PVAS_MAX_QUEUE_BYTES", NULL, (long)l->max_queue_bytes);
    l->max_message_bytes = (size_t)ca_env_long("RELOC_PVAS_MAX_MESSAGE_BYTES", NULL, (long)l->max_message_bytes);
    const char *tmo = getenv("EPICS_PVA_CONN_TMO");
    char *end;
    double seconds = tmo ? strtod(tmo, &end) : 0;
    if (tmo && (end == tmo || *end || !(seconds > 0) || seconds > 1e6))
        log_warn("pva", "EPICS_PVA_CONN_TMO '%s' is not a positive number of seconds: %.0f s used", tmo,
                 l->idle_timeout * 3 / 4);
    else if (tmo)
        l->idle_timeout = seconds * 4 / 3 < 2 ? 2 : seconds * 4 / 3;     /* as pvxs: x 4/3, at least 2 s */
    shell_register("pvasr", "pvasr [level]  pvAccess server report: 0 summary, 1 clients, 2 channels", 0, 1,
                   cmd_pvasr);
    shell_register("pvasSetLimits", "pvasSetLimits max_clients max_channels_per_client max_queued_bytes", 3, 3,
                   cmd_limits);
    db_at_init(pva_server_start, NULL);
    db_at_shutdown(pva_server_stop, NULL);
    db_at_exit(pva_sources_free, NULL);
}
