/* pva.h -- the pvAccess server of reloc (public interface).
 *
 * pva_register() registers the shell commands (pvasr, pvasSetLimits) and the db hooks that start the server
 * at the end of iocInit (beside the CA server, on the same records and access security) and stop it at
 * db_shutdown. Environment: EPICS_PVAS_INTF_ADDR_LIST, EPICS_PVAS_SERVER_PORT (5075), EPICS_PVAS_BROADCAST_PORT
 * (5076), EPICS_PVAS_BEACON_ADDR_LIST, RELOC_PVAS_MAX_CLIENTS / _MAX_CHANNELS / _MAX_QUEUE_BYTES /
 * _MAX_MESSAGE_BYTES. Everything else is internal to src/core/pva (see pva_internal.h).
 */
#ifndef RELOC_PVA_H
#define RELOC_PVA_H

void pva_register(void);

#endif
