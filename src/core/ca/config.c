/* config.c -- the CA server's configuration from the environment: EPICS_CAS_* / EPICS_CA_* variables, address
 * lists, and the limits (RELOC_CAS_*, EPICS_CA_MAX_ARRAY_BYTES) that casSetLimits may override. Start-up
 * thread only. */
#include "core/ca/ca_internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base/base.h"

const char *ca_env_first(const char *a, const char *b)
{
    const char *v = getenv(a);
    if ((!v || !*v) && b)
        v = getenv(b);
    return v && *v ? v : NULL;
}

long ca_env_long(const char *a, const char *b, long def)
{
    const char *v = ca_env_first(a, b);
    char *end;
    long n = v ? strtol(v, &end, 10) : def;
    if (v && (*end || n <= 0)) {
        log_warn("ca", "ignoring %s=%s (not a positive integer)", a, v);
        n = def;
    }
    return n;
}

int ca_env_yes(const char *name, int def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    return strcasecmp(v, "NO") != 0 && strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0;
}

/* "ip[:port] ip[:port] ..." -> addresses; returns the count. */
int ca_parse_addr_list(const char *list, uint16_t default_port, struct sockaddr_in *out, int max)
{
    int n = 0;
    char buf[1024];
    str_copy(buf, list ? list : "", sizeof buf);
    for (char *save = NULL, *tok = strtok_r(buf, " \t,", &save); tok && n < max;
         tok = strtok_r(NULL, " \t,", &save)) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(default_port) };
        char *colon = strchr(tok, ':');
        if (colon) {
            *colon = 0;
            long p = strtol(colon + 1, NULL, 10);
            if (p > 0 && p < 65536)
                sa.sin_port = htons((uint16_t)p);
        }
        if (inet_pton(AF_INET, tok, &sa.sin_addr) != 1) {
            log_warn("ca", "ignoring address '%s' (not an IPv4 address)", tok);
            continue;
        }
        out[n++] = sa;
    }
    return n;
}

void ca_limits_from_env(void)
{
    ca_server_limits.max_clients = (unsigned)ca_env_long("RELOC_CAS_MAX_CLIENTS", NULL, ca_server_limits.max_clients);
    ca_server_limits.max_channels =
        (unsigned)ca_env_long("RELOC_CAS_MAX_CHANNELS", NULL, ca_server_limits.max_channels);
    ca_server_limits.max_queue_bytes =
        (size_t)ca_env_long("RELOC_CAS_MAX_QUEUE_BYTES", NULL, (long)ca_server_limits.max_queue_bytes);
    /* Arrays up to EPICS_CA_MAX_ARRAY_BYTES when it is set (never below the classic 16 KiB). */
    long array_bytes = ca_env_long("EPICS_CA_MAX_ARRAY_BYTES", NULL, (long)ca_server_limits.max_message_bytes);
    ca_server_limits.max_message_bytes = (size_t)(array_bytes < 16384 ? 16384 : array_bytes);
}
