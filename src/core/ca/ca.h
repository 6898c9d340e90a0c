/* ca.h -- the Channel Access server of reloc (public interface).
 *
 * ca_register() registers the shell commands (casr, casSetLimits) and db hooks that start the server at the
 * end of iocInit and stop it (SERVER_DISCONN to every channel) at db_shutdown. Access security (asSetFilename,
 * asInit) is core/access's. Everything else is internal to src/core/ca (see ca_internal.h).
 */
#ifndef RELOC_CA_H
#define RELOC_CA_H

void ca_register(void);

#endif
