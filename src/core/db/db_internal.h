/* db_internal.h -- what the files of src/core/db share with each other (and with the record types and soft
 * device support in src/core/db), but not with the rest of reloc: the registries, the record table, the
 * conversion core, link plumbing, the scan machinery and the helpers record types are built from.
 * Everything here follows the lock rules of db.h; functions are [locked] unless marked otherwise.
 */
#ifndef RELOC_DB_INTERNAL_H
#define RELOC_DB_INTERNAL_H

#include "core/db/db.h"

#include <stddef.h>

/* ---- Menus (db_menus.c) */
extern const db_menu menuScan, menuPini, menuPriority, menuAlarmSevr, menuAlarmStat, menuYesNo, menuOmsl,
    menuFtype, menuIvoa;

/* ---- Registry (db_registry.c); [unlocked]: registration happens before iocInit, on one thread. */
const db_dset *db_find_dset(const char *dtyp, const char *record_type);
void registry_clear(void);
extern const db_field_desc db_common_fields[];
extern const size_t db_common_nfields;
/* The RTYP pseudo-field: read-only record type name, no storage in the record. */
extern const db_field_desc *const db_rtyp_field;

/* ---- Record table (db_records.c) */
db_record *records_find(const char *name);           /* [unlocked]: the table is frozen after iocInit */
size_t records_count(void);
db_record *records_at(size_t index);                  /* in name order */
void records_clear(void);                             /* frees every record */
int db_is_initializing(void);

/* ---- Conversion (db_convert.c) */
/* A run of elements of one storage type. ctx names the field they belong to (for PREC and enum state
 * strings); NULL for a client's buffer. */
typedef struct db_span {
    dbf_type type;        /* DBF_STRING, DBF_CHAR .. DBF_DOUBLE, DBF_ENUM, DBF_MENU */
    void *data;
    size_t elem_size;     /* bytes per element (capacity for strings) */
    const db_addr *ctx;
} db_span;
int db_convert(const db_span *dst, const db_span *src, long n);
/* Whether db_convert(dst, src, n) takes the bulk number path: it then either fails before writing anything or
 * converts every element, so it may write straight into a field's storage. */
int db_convert_is_bulk(const db_span *dst, const db_span *src);
/* The bulk path with dst in network byte order (big-endian), converted and swapped in one pass; DB_ERR_BAD_TYPE
 * (nothing written) for spans it does not take. */
int db_convert_wire(const db_span *dst, const db_span *src, long n);
size_t dbf_value_size(dbf_type type);
dbf_type dbr_storage_type(dbr_value_type type);
size_t db_dbr_value_size(dbr_value_type type);
void db_format_double(char *buf, size_t size, double v, int precision);
int db_parse_double(const char *text, double *v);     /* whole text must be a number (blanks allowed) */
/* [locked] Storage of an addr's elements: data pointer, elements held, capacity, element size and type. */
typedef struct db_storage {
    void *data;
    long nelem, capacity;
    size_t elem_size;
    dbf_type type;
} db_storage;
int db_addr_storage(const db_addr *addr, db_storage *st);
/* Text -> field, before or after iocInit (strings of any length, links, menus, numbers, arrays). */
/* db_put from elements of any storage type (strings of any length). */
int db_put_span(const db_addr *addr, const db_span *src, long nelem);
int db_put_text_locked(const db_addr *addr, const char *text, char *err, size_t errlen);
int db_addr_for_field(db_record *rec, const db_field_desc *field, int long_string, db_addr *addr);

/* ---- Links (db_link.c) */
int db_link_parse(db_link *link, const char *text, char *err, size_t errlen);
/* At iocInit (or when a link field is written): a link naming a record of this IOC points at it; one naming
 * anything else, or carrying CA, becomes a link to another IOC (db_ca.c); a forward link must stay local. */
int db_link_resolve(db_record *rec, const db_field_desc *field, db_link *link, char *err, size_t errlen);
void db_link_release(db_link *link);
/* Load a constant link into storage at init (records' VAL, calc inputs); 0 when it did. */
int db_link_load_constant(const db_link *link, const db_span *dst);
/* Reads/writes a link into/from storage of any type; *nelem in: capacity/count, out: count read.
 * Returns 0 with a value, 1 when the link has no value to give (none or constant), < 0 on failure. */
int db_link_read(db_record *rec, db_link *link, const db_span *dst, long *nelem);
int db_link_write(db_record *rec, db_link *link, const db_span *src, long nelem);
/* Output links that complete ("Async Soft Channel"): a link to another IOC starts a put with completion and
 * returns 1 (the device support sets PACT; the record runs again when the other IOC reports, and then
 * db_link_write_finish gives the outcome: 0, or < 0 with LINK/INVALID raised); other links write at once as
 * db_link_write does. */
int db_link_write_start(db_record *rec, db_link *link, const db_span *src, long nelem);
int db_link_write_finish(db_record *rec, db_link *link);
/* ---- Links to other IOCs (db_ca.c, through libca) */
typedef struct db_ca_link db_ca_link;
/* At iocInit (the iocInit thread): a channel to pv for rec's link field (input: subscribed). */
db_ca_link *db_ca_link_open(db_record *rec, const db_link *link, const char *field, int input, const char *pv);
/* [locked] The newest update into dst (0, *nelem read, the remote alarm in stat/sevr), or -1 when there is none
 * (not connected, no read access, no update yet). */
int db_ca_link_read(db_ca_link *l, const db_span *dst, long *nelem, uint16_t *stat, uint16_t *sevr);
/* [locked] Sends a put (no completion): 0, or -1 when not connected, not writable or not convertible. */
int db_ca_link_write(db_ca_link *l, const db_span *src, long nelem);
/* [locked] Starts a put with completion (ca_put_callback): 0 when sent -- the record is processed again
 * (db_request_process) when the other IOC reports or the channel goes down -- or -1 as db_ca_link_write, or
 * when one is already under way. */
int db_ca_link_write_start(db_ca_link *l, const db_span *src, long nelem);
/* [locked] The outcome of the last put with completion: 0 done, -1 failed (refused by the other IOC, or the
 * channel went down first; logged), 1 still under way. */
int db_ca_link_write_outcome(db_ca_link *l);
/* Clears the channel (no module lock held). */
void db_ca_link_close(db_ca_link *l);
/* db_shutdown, after the shutdown hooks (the drivers' threads have stopped) and before the exit hooks free the
 * drivers, with no lock held: puts with completion of drivers' channels still under way fail, their completions
 * are called, and the completion thread ends. */
void db_ca_channels_stop(void);
/* After every link is closed: ends the client context (the iocInit thread). */
void db_ca_context_end(void);

/* CP/CPP links: subscribe to their targets at init, release at shutdown. */
int db_cp_links_start(db_record *rec);
void db_cp_links_free(db_record *rec);

/* ---- Monitors (db_monitor.c) */
db_subscription *db_subscribe_locked(const db_addr *addr, unsigned mask, db_event_fn fn, void *user);
void db_unsubscribe_locked(db_subscription *sub);
void db_monitors_free(db_record *rec);

/* ---- Scanning (db_scan.c) */
int db_scan_init(char *err, size_t errlen);           /* build scan lists, start threads */
void db_scan_stop(void);                              /* [unlocked] join threads */
void db_scan_clear(void);                             /* free lists and I/O Intr lists */
void db_scan_record_changed(db_record *rec, unsigned old_scan);  /* SCAN/EVNT/PHAS changed at run time */
int db_compare_phase(const void *a, const void *b);   /* qsort of db_record *: by PHAS, then name */

/* ---- Processing (db_process.c) */
void db_notify_fail_all(void);
void db_notify_clear(void);
/* [locked] Every processing goes through here; cause says who asked:
 *   PROCESS_NOW     record and device support, links, PINI (db_process): nothing while the record is active;
 *   PROCESS_PUT     a client put: sets PUTF; while the record is active it processes again when it completes;
 *   PROCESS_QUEUED  the scan-once queue (db_request_process, I/O Intr, events, CP links): processes, or
 *                   completes the asynchronous processing of an active record. */
typedef enum { PROCESS_NOW, PROCESS_PUT, PROCESS_QUEUED } db_process_cause;
long db_process_for(db_record *rec, db_process_cause cause);
/* Processes a forward link's target (Passive records, or any record through its PROC field). */
void db_forward(const db_link *link);
/* Client puts (db_access.c): may a client write this field now; does the put process the record. */
int db_client_put_check(const db_addr *addr);
int db_client_put_processes(const db_addr *addr);

/* ---- The lock (db_lock.c) and the lifecycle (db_lifecycle.c) */
int db_lock_held(void);
/* Record support's init_record: the reason it is about to fail, for iocInit's error message. */
void db_init_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- Record support helpers (db_recsup.c): fields and behaviour shared by record types. */
typedef struct db_analog {
    char egu[DB_EGU_SIZE];
    int16_t prec;
    double hopr, lopr, drvh, drvl;
    double hihi, high, low, lolo, hyst, lalm;
    uint16_t hhsv, hsv, lsv, llsv;
    double mdel, adel, mlst, alst;
} db_analog;

/* What every output record has: OMSL/DOL (closed loop), IVOA/IVOV (invalid output action), OUT. */
typedef struct db_output {
    uint16_t omsl;
    db_link dol;
    uint16_t ivoa;
    double ivov;
    db_link out;
} db_output;

#define DB_FIELD(T, NAME, TYPE, MEMBER, FLAGS) \
    {NAME, TYPE, offsetof(T, MEMBER), sizeof(((T *)0)->MEMBER), FLAGS, NULL, NULL}
#define DB_FIELD_INIT(T, NAME, TYPE, MEMBER, FLAGS, INITIAL) \
    {NAME, TYPE, offsetof(T, MEMBER), sizeof(((T *)0)->MEMBER), FLAGS, NULL, INITIAL}
#define DB_MENU_FIELD(T, NAME, MEMBER, FLAGS, MENU, INITIAL) \
    {NAME, DBF_MENU, offsetof(T, MEMBER), sizeof(uint16_t), FLAGS, &MENU, INITIAL}

/* Display and alarm-limit fields (T has `db_analog an`); alarm limits process a Passive record. */
#define DB_DISPLAY_FIELDS(T) \
    DB_FIELD(T, "EGU", DBF_STRING, an.egu, DBFLD_PROPERTY), \
    DB_FIELD(T, "PREC", DBF_SHORT, an.prec, DBFLD_PROPERTY), \
    DB_FIELD(T, "HOPR", DBF_DOUBLE, an.hopr, DBFLD_PROPERTY), \
    DB_FIELD(T, "LOPR", DBF_DOUBLE, an.lopr, DBFLD_PROPERTY)
#define DB_ANALOG_FIELDS(T) \
    DB_DISPLAY_FIELDS(T), \
    DB_FIELD(T, "HIHI", DBF_DOUBLE, an.hihi, DBFLD_PROPERTY | DBFLD_PROCESS), \
    DB_FIELD(T, "HIGH", DBF_DOUBLE, an.high, DBFLD_PROPERTY | DBFLD_PROCESS), \
    DB_FIELD(T, "LOW", DBF_DOUBLE, an.low, DBFLD_PROPERTY | DBFLD_PROCESS), \
    DB_FIELD(T, "LOLO", DBF_DOUBLE, an.lolo, DBFLD_PROPERTY | DBFLD_PROCESS), \
    DB_FIELD(T, "HYST", DBF_DOUBLE, an.hyst, 0), \
    DB_FIELD(T, "LALM", DBF_DOUBLE, an.lalm, DBFLD_READONLY), \
    DB_MENU_FIELD(T, "HHSV", an.hhsv, DBFLD_PROCESS, menuAlarmSevr, NULL), \
    DB_MENU_FIELD(T, "HSV", an.hsv, DBFLD_PROCESS, menuAlarmSevr, NULL), \
    DB_MENU_FIELD(T, "LSV", an.lsv, DBFLD_PROCESS, menuAlarmSevr, NULL), \
    DB_MENU_FIELD(T, "LLSV", an.llsv, DBFLD_PROCESS, menuAlarmSevr, NULL), \
    DB_FIELD(T, "MDEL", DBF_DOUBLE, an.mdel, 0), \
    DB_FIELD(T, "ADEL", DBF_DOUBLE, an.adel, 0), \
    DB_FIELD(T, "MLST", DBF_DOUBLE, an.mlst, DBFLD_READONLY), \
    DB_FIELD(T, "ALST", DBF_DOUBLE, an.alst, DBFLD_READONLY)
#define DB_DRIVE_FIELDS(T) \
    DB_FIELD(T, "DRVH", DBF_DOUBLE, an.drvh, DBFLD_PROPERTY | DBFLD_PROCESS), \
    DB_FIELD(T, "DRVL", DBF_DOUBLE, an.drvl, DBFLD_PROPERTY | DBFLD_PROCESS)
/* OMSL, DOL, IVOA, IVOV, OUT of an output record (T has `db_output o`). */
#define DB_OUTPUT_FIELDS(T) \
    DB_MENU_FIELD(T, "OMSL", o.omsl, 0, menuOmsl, NULL), \
    DB_FIELD(T, "DOL", DBF_INLINK, o.dol, 0), \
    DB_MENU_FIELD(T, "IVOA", o.ivoa, 0, menuIvoa, NULL), \
    DB_FIELD(T, "IVOV", DBF_DOUBLE, o.ivov, 0), \
    DB_FIELD(T, "OUT", DBF_OUTLINK, o.out, 0)

/* A numeric record: db_common, then db_analog (the analog helpers rely on this layout). */
typedef struct db_analog_record {
    db_common common;
    db_analog an;
} db_analog_record;

/* Where a record keeps its value, so processing can be shared between record types. */
typedef struct db_value_desc {
    dbf_type type;            /* storage type of VAL */
    size_t val_offset;        /* VAL */
    size_t output_offset;     /* db_output of an output record, 0 for input records */
    /* Optional: device support returned 0 (convert): input RVAL -> VAL, output VAL -> RVAL. */
    void (*convert)(db_record *rec);
} db_value_desc;

double recsup_value(const db_record *rec, const db_value_desc *vd);
void recsup_set_value(db_record *rec, const db_value_desc *vd, double value);
/* Alarm limits with hysteresis (EPICS checkAlarms); the UDF alarm first. */
void recsup_analog_alarms(db_record *rec, double value);
/* MDEL/ADEL deadbands: posts VAL with DBE_VALUE/DBE_LOG as crossed, plus `mask` (alarm bits). */
void recsup_analog_monitor(db_record *rec, const void *pval, double value, unsigned mask);
/* Pass-1 init of a numeric record: constant DOL into VAL, deadband and alarm memories = VAL. */
void recsup_analog_init(db_record *rec, const db_value_desc *vd);
/* get_meta for numeric records: EGU, PREC, HOPR/LOPR, alarm limits, DRVH/DRVL. */
void recsup_analog_meta(const db_addr *addr, db_meta *meta);
/* Shared processing of numeric input and output records. */
long recsup_analog_in_process(db_record *rec, const db_value_desc *vd);
long recsup_analog_out_process(db_record *rec, const db_value_desc *vd);
/* Output records: when OMSL is closed_loop, read DOL into dst; 0 when a value was read. */
int recsup_fetch_dol(db_record *rec, db_output *o, const db_span *dst);
/* Output records: 1 when IVOA says not to write (and VAL was not replaced by IVOV). */
int recsup_output_suppressed(db_record *rec, const db_value_desc *vd);
/* Calls the device support io(); raises READ/WRITE INVALID on failure. Returns io's status. */
long recsup_device_io(db_record *rec, int output);
/* The db_addr of a record's field by name (for link reads into a field's own storage). */
int recsup_field_addr(db_record *rec, const char *name, db_addr *addr);
/* Change-of-state and per-state severities of bi/bo/mbbi/mbbo. */
void recsup_state_alarms(db_record *rec, unsigned value, uint16_t state_sevr, uint16_t cosv, uint16_t *lalm);

/* ---- Registration of each record type (rec_*.c) and soft device support (dev_soft.c). */
void rec_ai_register(void);
void rec_ao_register(void);
void rec_integer_register(void);
void rec_discrete_register(void);
void rec_calc_register(void);
void rec_fanout_register(void);
void rec_string_register(void);
void rec_array_register(void);
void dev_soft_register(void);

#endif
