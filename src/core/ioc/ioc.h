/* ioc.h -- device support that publishes the IOC's own state: how long it has run, when it started,
 * which reloc version it is and whether its settings are being saved. Used by db/reloc_ioc.db:
 *     record(ai,       "$(P)UPTIME")   { field(DTYP, "IOC uptime")     field(SCAN, "1 second") }
 *     record(stringin, "$(P)STARTTOD") { field(DTYP, "IOC start time") field(PINI, "YES") }
 *     record(stringin, "$(P)VERSION")  { field(DTYP, "IOC version")    field(PINI, "YES") }
 *     record(stringin, "$(P)AUTOSAVE_STATUS") { field(DTYP, "autosave status") field(SCAN, "1 second") }
 * The autosave status is MAJOR/STATE alarm while autosave has a problem (see autosave_status()).
 * "IOC uptime" works with ai (seconds, DOUBLE VAL) and longin (whole seconds).
 */
#ifndef RELOC_IOCSTATUS_H
#define RELOC_IOCSTATUS_H

#define RELOC_VERSION "0.1.0"

/* Registers the device support and remembers the start time (call it first thing in main). */
void iocstatus_register(void);

#endif
