/* autosave.h -- persistence of operator settings across restarts and crashes.
 *
 * A record asks for fields to be saved with info(autosaveFields, "VAL EGU ...") (blank- or comma-separated;
 * info(autosaveFields_pass0, ...) of EPICS autosave is read the same way). Naming a field the record does not
 * have stops iocInit.
 * After iocInit every such field is watched (db_subscribe); a change marks the set dirty, and a writer thread
 * writes all of them to the save file at most once per period (default 1 s), atomically: temporary file,
 * fsync, rename. Arrays are saved whole ("[1, 2, 3]"). At iocInit, before records initialize, the save file
 * is read and validated as a whole (header, every line, entry count and checksum in the end marker); only
 * a valid file is applied (scalars before db_init; arrays, whose storage exists only once records have
 * initialized, right after it), a corrupt or truncated one is logged and renamed to "<file>.bad" so that
 * the IOC starts on the .db values. On shutdown (a db_at_shutdown hook) the writer flushes pending changes.
 *
 * Save file format (text, one field per line, values quoted with C escapes):
 *     # reloc autosave 1
 *     IOC:m1.VAL "12.5"
 *     #END 1 fnv1a64=0123456789abcdef
 * The checksum covers every byte before the #END line.
 *
 * st.cmd: autosaveSetFile "path" (no file: autosave is off), autosaveSetPeriod SECONDS.
 * Threads: commands and restore run on the shell thread before iocInit; monitor callbacks (db lock held) only
 * set a flag under the module's mutex; the writer thread reads fields through db (never holding the mutex
 * while calling db) and does all file I/O.
 */
#ifndef RELOC_AUTOSAVE_H
#define RELOC_AUTOSAVE_H

#include <stddef.h>

/* Registers the st.cmd commands and the iocInit hooks (restore before db_init; after it, start watching and
 * register the db_shutdown hook that flushes and stops the writer). */
void autosave_register(void);
/* State for operators (a status PV): "off", "waiting", "saved HH:MM:SS", or a problem -- the save file of
 * this start was rejected, or the last write failed. Writes at most len bytes; returns 1 when there is a
 * problem. Any thread (takes only the module's mutex, so it may be called with the db lock held). */
int autosave_status(char *text, size_t len);

/* The save file, independent of the database (used by the module and its tests). */
typedef struct autosave_entry {
    char *channel;   /* "REC.FIELD" */
    char *value;     /* the field as text */
} autosave_entry;

typedef struct autosave_set {
    autosave_entry *entries;
    size_t n;
} autosave_set;

void autosave_set_add(autosave_set *set, const char *channel, const char *value);
void autosave_set_free(autosave_set *set);
/* Writes the set atomically (path.tmp, fsync, rename, fsync of the directory). 0 or -1 with err. */
int autosave_file_write(const char *path, const autosave_set *set, char *err, size_t errlen);
/* Reads and validates a whole save file. 0 (set filled), 1 when the file does not exist, or -1 with
 * "path:line: reason" in err and nothing in set. */
int autosave_file_read(const char *path, autosave_set *set, char *err, size_t errlen);

#endif
