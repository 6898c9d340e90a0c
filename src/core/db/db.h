/* db.h -- the record database: the interface between records and everything that uses them.
 *
 * Users of this header: the .db loader and st.cmd shell (create records, set fields, iocInit), the Channel
 * Access server (find channels, read and write fields with type conversion, subscribe to monitors, put with
 * completion), device support and drivers (motor, camera, analysis: attach to records through DTYP and
 * INP/OUT, post values, complete asynchronous processing), record types (register themselves), and
 * orchestration code (moves motors through records like any client).
 *
 * Model (as in EPICS Base): a record is a C struct of its record type whose first member is db_common.
 * Every field is described by a db_field_desc (name, type, offset, flags). A channel name "REC.FIELD" is
 * resolved once to a db_addr; "REC" alone means "REC.VAL"; "REC.FIELD$" reads a string field as a CHAR
 * array (long strings). Aliases resolve to their record.
 *
 * Locking -- ONE lock for the whole database (db_lock/db_unlock, a plain pthread mutex, not recursive).
 *   - Every read or write of record fields, every processing, every monitor post happens with it held.
 *   - Functions marked [locked] must be called with the lock held; the others take it themselves.
 *   - Callbacks that db calls (monitor callbacks, put-notify completion, device support) run with the
 *     lock held: they must not block, sleep, do I/O that can stall, or call an unlocked db function.
 *   - Lock order: the db lock is taken BEFORE any lock of another module (a CA client queue, a driver's
 *     state). A module must never call into db while holding its own lock.
 *   - Drivers that own threads never touch records directly: they hand values to their device support,
 *     which posts them under the lock (db_ioscan_request / db_request_process).
 */
#ifndef RELOC_DB_H
#define RELOC_DB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------------------
 * Types, codes, limits
 */
typedef enum {
    DBF_STRING, DBF_CHAR, DBF_UCHAR, DBF_SHORT, DBF_USHORT, DBF_LONG, DBF_ULONG, DBF_INT64, DBF_UINT64,
    DBF_FLOAT, DBF_DOUBLE, DBF_ENUM, DBF_MENU, DBF_DEVICE, DBF_INLINK, DBF_OUTLINK, DBF_FWDLINK,
    DBF_NOACCESS
} dbf_type;

/* The value types a client can request or write: the 7 CA primitive types, same numbers as CA DBR ids. */
typedef enum {
    DBR_STRING = 0, DBR_SHORT = 1, DBR_FLOAT = 2, DBR_ENUM = 3, DBR_CHAR = 4, DBR_LONG = 5, DBR_DOUBLE = 6
} dbr_value_type;

#define DB_NAME_SIZE     61   /* record name incl. NUL */
#define DB_STRING_SIZE   40   /* one DBR_STRING element: 39 chars + NUL */
#define DB_DESC_SIZE     41
#define DB_EGU_SIZE      16
#define DB_ENUM_STRS     16   /* enum states visible over CA */
#define DB_ENUM_STR_SIZE 26
#define DB_LINK_SIZE     256  /* link text incl. NUL */

/* Monitor event mask bits (as CA DBE_*). */
#define DBE_VALUE    1u
#define DBE_LOG      2u
#define DBE_ALARM    4u
#define DBE_PROPERTY 8u

/* Alarm severities and statuses (numbers as in EPICS menuAlarmSevr / menuAlarmStat). */
enum { NO_ALARM = 0, MINOR_ALARM = 1, MAJOR_ALARM = 2, INVALID_ALARM = 3 };
enum {
    STAT_NO_ALARM = 0, STAT_READ, STAT_WRITE, STAT_HIHI, STAT_HIGH, STAT_LOLO, STAT_LOW, STAT_STATE,
    STAT_COS, STAT_COMM, STAT_TIMEOUT, STAT_HWLIMIT, STAT_CALC, STAT_SCAN, STAT_LINK, STAT_SOFT,
    STAT_BAD_SUB, STAT_UDF, STAT_DISABLE, STAT_SIMM, STAT_READ_ACCESS, STAT_WRITE_ACCESS
};

/* Status codes returned by db functions: 0 success, negative failure. */
enum {
    DB_OK = 0,
    DB_ERR_NOT_FOUND = -1,   /* no such record or field */
    DB_ERR_READ_ONLY = -2,   /* field cannot be written by clients */
    DB_ERR_DISABLED = -3,    /* record disabled for puts (DISP=1) */
    DB_ERR_CONVERT = -4,     /* value could not be converted (bad number text, unknown enum state) */
    DB_ERR_BAD_TYPE = -5,    /* request type not valid for this field */
    DB_ERR_BUSY = -6,        /* a put with completion is already in progress on this record */
    DB_ERR_FAILED = -7,      /* the put or the processing it started failed (e.g. a move refused) */
    DB_ERR_SYNTAX = -8,      /* bad text given to a load-time function */
    DB_ERR_STATE = -9        /* not allowed in this phase (e.g. creating records after iocInit) */
};
const char *db_strerror(int status);

/* ------------------------------------------------------------------------------------------------------
 * Records and fields
 */
typedef struct db_menu {
    const char *name;                 /* "menuScan" */
    int nchoices;
    const char *const *choices;
} db_menu;

/* Field flags */
#define DBFLD_READONLY  0x01u   /* clients cannot write it (CA reports no write access) */
#define DBFLD_PROCESS   0x02u   /* a client put processes a Passive record ("pp(TRUE)") */
#define DBFLD_SPECIAL   0x04u   /* the record type's special() runs before and after a put */
#define DBFLD_ARRAY     0x08u   /* storage is an array managed by get_array_info/put_array_info */
#define DBFLD_PROPERTY  0x10u   /* a change is a property change (DBE_PROPERTY), e.g. EGU, HOPR, ZRST */
#define DBFLD_NOSAVE    0x20u   /* never persisted */

typedef struct db_field_desc {
    const char *name;           /* "VAL", "HIHI", ...: at most 4 upper-case letters as in EPICS */
    dbf_type type;
    size_t offset;              /* byte offset in the record struct */
    size_t size;                /* bytes of the storage (string capacity incl. NUL for DBF_STRING) */
    unsigned flags;             /* DBFLD_* */
    const db_menu *menu;        /* DBF_MENU: the menu */
    const char *initial;        /* default as text, NULL for zero */
} db_field_desc;

typedef enum { LINK_NONE, LINK_CONSTANT, LINK_DB, LINK_HW } db_link_kind;

/* Link modifiers from the link text ("REC.FIELD PP MS", "REC CP", "@asyn(PORT,0)x", "1.5"). */
#define DBLINK_PP  0x01u
#define DBLINK_CA  0x02u
#define DBLINK_CP  0x04u        /* monitored input: the target's changes process this record */
#define DBLINK_CPP 0x08u        /* as CP, but only when this record is Passive */
#define DBLINK_MS  0x10u        /* maximize severity: propagate the target's alarm */
#define DBLINK_MSS 0x20u
#define DBLINK_MSI 0x40u

struct db_addr;
typedef struct db_link {
    char text[DB_LINK_SIZE];    /* as written in the .db file, after macro expansion */
    db_link_kind kind;
    unsigned flags;             /* DBLINK_* */
    double constant;            /* LINK_CONSTANT: the value */
    struct db_addr *target;     /* LINK_DB to a record of this IOC: resolved at iocInit */
    struct db_ca_link *ca;      /* LINK_DB to another IOC (no such record here, or the CA modifier) */
} db_link;

struct db_record_type;
struct db_dset;
struct db_subscription_list;
struct db_put_notify;

/* Fields every record has. Record types put `db_common common;` first in their struct. */
typedef struct db_common {
    char name[DB_NAME_SIZE];     /* NAME */
    char desc[DB_DESC_SIZE];     /* DESC */
    char asg[32];                /* ASG: access security group ("" = DEFAULT) */
    uint16_t scan;               /* SCAN: menuScan index, see DB_SCAN_* */
    uint16_t pini;               /* PINI: process at iocInit (menuPini: NO, YES, RUN, ...) */
    int16_t phas;                /* PHAS: order within a scan list */
    int16_t evnt;                /* EVNT: event number for SCAN=Event */
    int16_t prio;                /* PRIO: 0 LOW, 1 MEDIUM, 2 HIGH */
    int16_t disv;                /* DISV: disable when SDIS value == DISV */
    int16_t disa;                /* DISA: current disable value */
    db_link sdis;                /* SDIS: scan disable link */
    uint16_t diss;               /* DISS: severity when disabled */
    uint8_t disp;                /* DISP: 1 = puts from clients rejected (except to DISP) */
    uint8_t proc;                /* PROC: writing any value processes the record */
    uint8_t pact;                /* PACT: processing active (asynchronous completion pending) */
    uint8_t udf;                 /* UDF: value undefined */
    uint16_t udfs;               /* UDFS: severity for UDF */
    uint16_t stat, sevr;         /* STAT, SEVR: current alarm */
    uint16_t nsta, nsev;         /* NSTA, NSEV: alarm being raised during this processing */
    uint16_t acks, ackt;         /* ACKS, ACKT: alarm acknowledgement */
    uint8_t tpro;                /* TPRO: trace processing to the log */
    uint8_t putf;                /* PUTF: processing started by a client put */
    uint8_t rpro;                /* RPRO: reprocess when the current processing completes */
    int16_t tse;                 /* TSE: time stamp event (0 = current time, -2 = set by device support) */
    struct timespec time;        /* TIME: time stamp of the last processing */
    char dtyp[40];               /* DTYP: device support name */
    db_link flnk;                /* FLNK: forward link */

    /* Private to db and the record's own support (not fields). */
    const struct db_record_type *rtype;
    const struct db_dset *dset;
    void *dpvt;                              /* device support private */
    struct db_subscription_list *subs;       /* monitors */
    uint64_t posts;                          /* db_post_events calls that reached a monitor (db lock) */
    struct db_put_notify *notify;            /* put-with-completion in progress */
    struct db_info *info;                    /* info(key, value) items */
    uint8_t finished;                        /* db_process_finish ran during this processing */
    uint8_t busy;                            /* process() is on the stack (breaks link recursion) */
    uint8_t queued;                          /* on the scan-once queue (guarded by the scan mutex) */
    struct db_cp_link *cp_links;             /* CP/CPP input links watching other records */
} db_common;

typedef db_common db_record;

/* menuScan indices */
enum {
    DB_SCAN_PASSIVE = 0, DB_SCAN_EVENT, DB_SCAN_IO_INTR, DB_SCAN_10S, DB_SCAN_5S, DB_SCAN_2S, DB_SCAN_1S,
    DB_SCAN_0_5S, DB_SCAN_0_2S, DB_SCAN_0_1S
};

/* A resolved channel: record, field and where its storage is. */
typedef struct db_addr {
    db_record *rec;
    const db_field_desc *field;
    dbf_type type;               /* field type as seen by clients (DBF_CHAR for a "FIELD$" channel) */
    long max_elements;           /* 1 for scalars; NELM for arrays; capacity for "FIELD$" */
    int long_string;             /* 1 when reached as "FIELD$" */
} db_addr;

/* Metadata of a field, everything CA's STS/TIME/GR/CTRL structures carry. */
typedef struct db_meta {
    uint16_t status, severity;
    uint16_t ackt, acks;
    struct timespec stamp;
    char units[DB_EGU_SIZE];
    int16_t precision;
    double disp_hi, disp_lo;         /* HOPR, LOPR */
    double alarm_hi, warn_hi, warn_lo, alarm_lo; /* HIHI, HIGH, LOW, LOLO (0 when none) */
    double ctrl_hi, ctrl_lo;         /* DRVH, DRVL (or HOPR/LOPR when the record has no drive limits) */
    int nstrs;                       /* enum states, 0 for non-enum fields */
    char strs[DB_ENUM_STRS][DB_ENUM_STR_SIZE];
    const char *class_name;          /* record type name */
} db_meta;

/* ------------------------------------------------------------------------------------------------------
 * Record types and device support (registered before records are loaded)
 */
typedef struct db_record_type {
    const char *name;                       /* "ai" */
    size_t size;                            /* sizeof the record struct */
    const db_field_desc *fields;            /* this type's own fields (db_common fields are added by db) */
    size_t nfields;
    /* pass 0: before links are resolved (allocate arrays); pass 1: after (device support init). */
    int (*init_record)(db_record *rec, int pass);
    /* [locked] Process: read/convert/compute, raise alarms (db_alarm_raise), post monitors, call
     * db_process_finish(). An asynchronous record sets pact=1 and returns; it is processed again when its
     * device support calls db_request_process(). */
    long (*process)(db_record *rec);
    /* [locked] Called before (after = 0) and after (after = 1) a client put to a DBFLD_SPECIAL field.
     * Returning non-zero before the put rejects it; after the put of a scalar, it refuses the value stored
     * (NaN, a zero step size, ...): db puts the previous value back and the put fails (DB_ERR_FAILED). */
    int (*special)(const db_addr *addr, int after);
    /* [locked] Array fields: current storage, element count and capacity. */
    void *(*get_array)(const db_addr *addr, long *nelem, long *capacity);
    /* [locked] Array fields: a put stored nelem elements. */
    void (*put_array)(const db_addr *addr, long nelem);
    /* [locked] Metadata of a field (units, precision, limits, enum strings). db fills status, severity, time
     * stamp and class name itself and zeros the rest before calling. */
    void (*get_meta)(const db_addr *addr, db_meta *meta);
    /* [locked] Enum fields (DBF_ENUM) with record-defined strings: text -> index; -1 if none matches. */
    int (*enum_index)(const db_addr *addr, const char *text);
    /* Optional: the type of a field whose type depends on the record (waveform VAL follows FTVL). */
    dbf_type (*field_type)(const db_record *rec, const db_field_desc *field);
    /* Optional: frees what init_record allocated (arrays), at db_shutdown. */
    void (*free_record)(db_record *rec);
} db_record_type;

typedef struct db_ioscan db_ioscan;

/* Device support: attaches a record to a driver. Chosen by DTYP name (and record type). */
typedef struct db_dset {
    const char *name;                       /* DTYP value, e.g. "Soft Channel", "reloc motor" */
    const char *record_type;                /* NULL: any record type */
    /* At iocInit, after links are resolved. Parses INP/OUT (link text after '@' or '#'). Non-zero: the record
     * is left in INVALID alarm and iocInit fails with the message logged. */
    int (*init_record)(db_record *rec);
    /* For SCAN = I/O Intr: the list the driver triggers. */
    int (*get_ioint)(db_record *rec, db_ioscan **list);
    /* [locked] Read (input records) or write (output records). Return 0 = done, 2 = done and do not
     * convert (value already in VAL), < 0 = failure (record goes to an alarm). To complete later, set
     * rec->pact = 1 and call db_request_process(rec) from the driver when done. */
    long (*io)(db_record *rec);
} db_dset;

/* Registers the record types, menus and soft device support ("Soft Channel") that come with db. */
void db_register_builtins(void);
int db_register_record_type(const db_record_type *type);
int db_register_menu(const db_menu *menu);
int db_register_dset(const db_dset *dset);
const db_record_type *db_find_record_type(const char *name);

/* ------------------------------------------------------------------------------------------------------
 * Lifecycle
 */
void db_lock(void);
void db_unlock(void);

/* Load phase (before db_init): create records and set fields from text. Creating an existing record of the
 * same type returns it (fields are then overridden), of another type is an error. err gets a message. Setting
 * VAL (a .db field, an autosave restore) defines the value: UDF 0, as in EPICS. */
db_record *db_create_record(const char *type_name, const char *name, char *err, size_t errlen);
int db_set_field_text(db_record *rec, const char *field, const char *value, char *err, size_t errlen);
int db_add_alias(db_record *rec, const char *alias, char *err, size_t errlen);
int db_add_info(db_record *rec, const char *key, const char *value);
const char *db_get_info(const db_record *rec, const char *key);   /* NULL if absent */

/* iocInit: resolve links, run init_record passes, attach device support, start scan threads, process PINI
 * records. Returns 0, or an error (all problems are logged with record names) and then nothing runs. */
int db_init(char *err, size_t errlen);
int db_is_running(void);
/* Stops scan threads and waits for them; pending put-notifies complete with DB_ERR_FAILED. Then frees the
 * whole database (records, subscriptions, I/O Intr lists, registrations, hooks): every db_record,
 * db_subscription, db_ioscan and db_put_notify handle is invalid afterwards, and the process can register
 * types, load records and db_init again (tests do). Safe to call when db_init never ran or failed. */
void db_shutdown(void);
/* Hooks run at the end of db_init and at the start of db_shutdown (drivers start/stop threads there). */
typedef void (*db_hook_fn)(void *user);
void db_at_init(db_hook_fn fn, void *user);
void db_at_shutdown(db_hook_fn fn, void *user);
/* Hooks run by db_shutdown after the scan threads have stopped and pending put-notifies have failed, before
 * records are freed: nothing processes records any more, so drivers free what their records point to here. */
void db_at_exit(db_hook_fn fn, void *user);

/* ------------------------------------------------------------------------------------------------------
 * Finding records and channels
 */
db_record *db_find_record(const char *name);                  /* name or alias */
int db_name_to_addr(const char *channel, db_addr *addr);       /* "REC", "REC.FIELD", "REC.FIELD$" */
const db_field_desc *db_find_field(const db_record *rec, const char *field);
/* Calls fn for each record in name order (for dbl, dbpr, autosave); stops when fn returns non-zero. */
int db_foreach_record(int (*fn)(db_record *rec, void *user), void *user);
/* Every field of a record type, db_common's included, in a stable order. */
size_t db_field_count(const db_record_type *type);
const db_field_desc *db_field_at(const db_record_type *type, size_t index);
/* The storage of a (scalar or string) field of a record. */
void *db_field_ptr(const db_record *rec, const db_field_desc *field);

/* ------------------------------------------------------------------------------------------------------
 * Reading and writing with conversion
 */
/* [locked] Elements currently held (NORD for arrays, 1 for scalars, strlen+1 for "FIELD$"). */
long db_current_elements(const db_addr *addr);
/* [locked] Converts up to *nelem elements (0: the current length) into buf as `type` (host byte order;
 * DBR_STRING elements are DB_STRING_SIZE bytes); sets *nelem to the count converted. */
int db_get(const db_addr *addr, dbr_value_type type, void *buf, long *nelem);
/* [locked] As db_get, for a network protocol: numbers are converted straight into big-endian order (one pass over a
 * camera frame) and 1 is returned; 0 when the elements were left in host order (strings, enums with states,
 * 64-bit types: the caller orders them). */
int db_get_wire(const db_addr *addr, dbr_value_type type, void *buf, long *nelem);
/* [locked] Metadata of the field (db_meta above). */
void db_get_meta(const db_addr *addr, db_meta *meta);
/* [locked] Converts and stores nelem elements (no processing); runs special(), posts the field's monitors. */
int db_put(const db_addr *addr, dbr_value_type type, const void *buf, long nelem);
/* A client put: takes the lock, refuses read-only fields and disabled records, stores like db_put, then
 * processes the record when the field is DBFLD_PROCESS and the record Passive (or the field is PROC). */
int db_put_field(const db_addr *addr, dbr_value_type type, const void *buf, long nelem);
/* Field value as text / from text (dbpr, dbgf, dbpf, autosave). Takes the lock. Numbers are written with
 * full precision (text that reads back as the same value, not rounded to PREC); arrays as "[1, 2, 3]";
 * db_put_text accepts the same forms (and a CHAR array takes the text itself). */
int db_get_text(const db_addr *addr, char *buf, size_t buflen);
int db_put_text(const db_addr *addr, const char *text);   /* like db_put_field */

/* Put with completion (CA WRITE_NOTIFY, caput -c, PV.put(wait=True)): as db_put_field, then `done` is called
 * exactly once, with DB_OK when the processing the put started -- including asynchronous processing such
 * as a motor move, and records reached by forward links -- has finished, or with a DB_ERR_* code. done runs
 * with the db lock held, on whatever thread finished the processing (or inside this call). Only one
 * put-notify per record at a time: a second one waits until the first completes. */
typedef void (*db_put_done_fn)(void *user, int status);
typedef struct db_put_notify db_put_notify;
/* Returns NULL when done was already called inside this call (an error, or the processing finished
 * synchronously); otherwise a handle that stays valid until done is called or it is cancelled. */
db_put_notify *db_put_notify_start(const db_addr *addr, dbr_value_type type, const void *buf, long nelem,
                                   db_put_done_fn done, void *user);
/* [locked] Cancels the pending put-notify started with done and user (the channel was cleared, the client is
 * gone): done is never called. One still waiting for its record never writes; one under way (a motor move)
 * runs to its end unreported. Returns 1, or 0 when there is none (done was called already). */
int db_put_notify_cancel(db_put_done_fn done, void *user);

/* ------------------------------------------------------------------------------------------------------
 * Monitors
 */
/* Called [locked] when an event matching mask is posted on the field; read the value with db_get. */
typedef void (*db_event_fn)(void *user, const db_addr *addr, unsigned mask);
typedef struct db_subscription db_subscription;
db_subscription *db_subscribe(const db_addr *addr, unsigned mask, db_event_fn fn, void *user);  /* takes lock */
void db_unsubscribe(db_subscription *sub);                                                    /* takes lock */
/* [locked] Record support posts a change of the field whose storage is pfield. */
void db_post_events(db_record *rec, const void *pfield, unsigned mask);

/* ------------------------------------------------------------------------------------------------------
 * Processing, for record and device support
 */
/* [locked] Processes a record now (honours DISA/SDIS, PACT, TPRO). */
long db_process(db_record *rec);
/* Any thread, any lock state except a module lock: queue the record for processing on a scan thread.
 * Device support uses it to complete asynchronous processing (the record runs again with pact still 1). */
void db_request_process(db_record *rec);
/* The `dbcar` report of links to other IOCs: those of record `name` ("" or "*": every record); level 1 adds a
 * line per unconnected link, 2 per connected link with its server and access. Takes the db lock. */
void db_ca_report(FILE *out, const char *name, int level);
/* A driver's channel to a PV of another IOC (db_ca.c, the links' libca client): the stage motors of a motor
 * IOC. Open at iocInit or later, after the records' links (the iocInit thread); it connects, subscribes and
 * reconnects by itself, and lives until db_shutdown (owners forget it then). `dbcar OWNER` reports it. */
typedef struct db_ca_link db_ca_channel;
db_ca_channel *db_ca_channel_open(const char *pv, const char *owner);
/* changed is told of every update and disconnect, on a libca thread with no lock of ours held: it must only
 * note it (wake a thread), never take the db lock or block. */
void db_ca_channel_watch(db_ca_channel *c, void (*changed)(void *user), void *user);
/* Any lock state: the newest update as a number and/or as text: 0, or -1 with err (not connected, no read
 * access, no update yet). */
int db_ca_channel_get(db_ca_channel *c, double *value, char *text, size_t textlen, char *err, size_t errlen);
/* Any lock state: the newest update of an array PV (one update: the elements belong together), at most max
 * elements into values, their number in *n: 0; 1 when connected but no update came yet (*n = 0); -1 with err
 * (not connected, no read access, a string PV). */
int db_ca_channel_get_array(db_ca_channel *c, double *values, long max, long *n, char *err, size_t errlen);
/* Any lock state: the alarm severity of the newest update (the other IOC's), INVALID while there is none. */
int db_ca_channel_severity(db_ca_channel *c);
/* Completion of a channel's put: ok 1, or 0 with why (the other IOC refused it -- a soft limit, DISP, access
 * rights -- or the channel went down first). Called once, with the db lock held, on db_ca's completion thread. */
typedef void (*db_ca_done_fn)(void *user, int ok, const char *why);
/* Not under the db lock: a put of value; with done, a put with completion (done is called later). 0, or -1
 * with err when it cannot be sent (not connected, no write access, a put with completion under way); done
 * is then not called. */
int db_ca_channel_put(db_ca_channel *c, double value, db_ca_done_fn done, void *user, char *err, size_t errlen);
/* Not under the db lock (the completion needs it): a put with completion of value, waiting up to timeout_s for
 * the other IOC's verdict. 0 when it completed; -1 with err when it could not be sent, was refused or failed,
 * or no verdict came in time (err names the PV and says which). */
int db_ca_channel_put_wait(db_ca_channel *c, double value, double timeout_s, char *err, size_t errlen);

/* A number st.cmd names by channel (db_number.c): a field of this IOC's records or, when no record here has the
 * name, a PV of another IOC (db_ca_channel, with its record's EGU). Resolve at iocInit or on the user's thread:
 * 0, or -1 with err. */
typedef struct db_number {
    char name[DB_NAME_SIZE + 8];
    int local;
    db_addr addr;                          /* local */
    db_ca_channel *remote, *remote_egu;    /* another IOC's */
} db_number;
int db_number_resolve(db_number *n, const char *name, const char *owner, char *err, size_t errlen);
/* [locked] The value (and, when units is not NULL, the units: EGU): 0, or -1 with err (another IOC's PV not
 * connected, no read access, no update yet). */
int db_number_read(const db_number *n, double *value, char *units, size_t unitslen, char *err, size_t errlen);
/* [locked] Record support: raise an alarm candidate (kept if more severe than the current candidate). */
void db_alarm_raise(db_record *rec, uint16_t status, uint16_t severity);
/* [locked] Record support at the end of process(): moves NSTA/NSEV to STAT/SEVR (returns the DBE_ALARM bit
 * when they changed) and sets the time stamp (TSE). When process() then returns, db clears PACT, follows
 * FLNK and completes a put-notify, so monitors the record posts after this call precede those. */
unsigned db_process_finish(db_record *rec);
/* [locked] Record or device support: the processing that a put-with-completion started on this record has
 * failed (a refused or aborted move, a driver error). Its `done` is then called with `status` (a DB_ERR_*
 * code) instead of DB_OK when the processing completes; the first failure reported wins. No effect when no
 * put-with-completion is waiting on the record. */
void db_notify_fail(db_record *rec, int status);
/* [locked] Read an input link into `type` (constant, db link with PP/MS, none); 0 when the link gave a value,
 * 1 when it has none (no link, or a hardware link for device support), < 0 on failure. Database links name
 * records of this IOC; one naming no record makes iocInit fail. */
int db_link_get(db_record *rec, db_link *link, dbr_value_type type, void *buf, long *nelem);
/* [locked] Write an output link. */
int db_link_put(db_record *rec, db_link *link, dbr_value_type type, const void *buf, long nelem);

/* I/O Intr scan lists: a driver creates one per signal, records join it through get_ioint, and any thread
 * calls db_ioscan_request to have every record on it processed (on a scan thread, never blocking the
 * caller). */
db_ioscan *db_ioscan_create(void);
void db_ioscan_request(db_ioscan *list);
/* SCAN = Event: process every record whose EVNT is `event` (post_event in EPICS). */
void db_post_event(int event);

/* Time stamps in the EPICS epoch (1990-01-01 UTC), as CA sends them. */
#define DB_EPICS_EPOCH_OFFSET 631152000L

#endif
