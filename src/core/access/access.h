/* access.h -- access security: which client (user, host) may read or write which record.
 *
 * An access configuration file (ACF) in the EPICS syntax:
 *     UAG(ops) { alice, bob }            user access groups
 *     HAG(consoles) { bl-ws1, localhost } host access groups (host names as clients report them)
 *     ASG(DEFAULT) { RULE(1, READ) }
 *     ASG(MOTORS) {
 *         INPA("BL:interlock")            inputs A..L of CALC conditions (record values)
 *         RULE(1, WRITE) { UAG(ops) HAG(consoles) CALC("A=0") }
 *     }
 * A record joins the group named by its ASG field ("" or an unknown name: DEFAULT). A rule of level L
 * applies to fields of level <= L (VAL is level 0, every other field level 1). A client gets the highest
 * access of the rules whose UAG, HAG and CALC all match; no rule matching means no access. Without any
 * ACF loaded everybody may read and write.
 *
 * Thread model: the rule set is replaced atomically under the module's own lock; access_rights may be
 * called from any thread, also with the db lock held (the db lock is taken before this module's lock).
 * CALC inputs are read by access_refresh_inputs() [db locked].
 */
#ifndef RELOC_ACCESS_H
#define RELOC_ACCESS_H

#include <stddef.h>

#define ACCESS_READ  1u
#define ACCESS_WRITE 2u

/* Registers the st.cmd commands asSetFilename and asInit, and the reload at iocInit (when the records CALC
 * inputs name exist); call it before the CA server registers, so that rules are in place when it starts. */
void access_register(void);

/* asSetFilename: the file asInit loads. */
void access_set_file(const char *path);
/* asInit: (re)loads the file set by access_set_file (if any). On failure the previous rules stay and err
 * names file and line. */
int access_init(char *err, size_t errlen);
/* Parses ACF text and installs it (tests, and access_init after reading the file). */
int access_load_text(const char *text, const char *origin, char *err, size_t errlen);
/* Removes every rule: everybody may read and write. */
void access_clear(void);
/* ACCESS_READ | ACCESS_WRITE of a client for a field of level `level` in group `asg`. */
unsigned access_rights(const char *asg, int level, const char *user, const char *host);
/* [db locked] Reads the INPx records of CALC conditions; returns 1 when a value changed since last time. */
int access_refresh_inputs(void);
/* Increments whenever rules or CALC inputs change (clients then recompute their rights). */
unsigned long access_generation(void);

#endif
