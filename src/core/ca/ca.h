/* ca.h -- the Channel Access server of reloc (public interface).
 *
 * ca_register() registers the shell commands (casr, casSetLimits) and db hooks that start the server at the
 * end of iocInit and stop it (SERVER_DISCONN to every channel) at db_shutdown. Access security (asSetFilename,
 * asInit) is core/access's. Everything else is internal to src/core/ca (see ca_internal.h).
 */
#ifndef RELOC_CA_H
#define RELOC_CA_H

#include <netinet/in.h>
#include <stdint.h>

void ca_register(void);

/* EPICS network environment (config.c), shared with the pvAccess server (core/pva), which reads the same kind
 * of variables (EPICS_PVAS_*). */
/* The value of variable a, else of b (may be NULL); NULL when neither is set and non-empty. */
const char *ca_env_first(const char *a, const char *b);
/* A positive integer from a (else b), def when unset; a bad value is logged and def used. */
long ca_env_long(const char *a, const char *b, long def);
/* Whether a YES/NO variable says yes (def when unset). */
int ca_env_yes(const char *name, int def);
/* "ip[:port] ip[:port] ..." -> at most max addresses (port default_port when not given); returns the count. */
int ca_parse_addr_list(const char *list, uint16_t default_port, struct sockaddr_in *out, int max);

#endif
