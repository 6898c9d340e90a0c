/* param.h -- driver parameters, and the device support that connects records to them (what asyn's
 * asynPortDriver and devAsyn* are to an EPICS IOC).
 *
 * A driver (camera, analysis stage, ...) owns a param_port: a named table of typed values ("Acquire",
 * "ArrayCounter", "ShiftX", ...). Records attach with  field(DTYP, "reloc param")  and
 * field(INP or OUT, "@PORT NAME"). Then:
 *   - an input record reads the parameter when it processes; with SCAN "I/O Intr" it processes whenever
 *     the driver posts a change (param_post), so values reach clients without polling;
 *   - an output record hands its value to the driver's write function when it processes. The driver
 *     accepts (the parameter takes the value), refuses (the record goes to WRITE/INVALID alarm, its VAL
 *     goes back to the value the driver accepted last, so neither monitors nor autosave keep the refused one,
 *     and a client's put fails; NaN and Inf never reach a driver), or completes later (PARAM_ASYNC, then param_write_done): a put-with-completion
 *     on such a record (e.g. Acquire = 1) returns only when the driver says the operation finished;
 *   - at iocInit an output record takes the parameter's current value when the driver set one, so screens
 *     show the driver's state, not zeros.
 * Supported records: ai ao bi bo mbbi mbbo longin longout stringin stringout waveform (numeric FTVL, or
 * CHAR for text longer than 40 characters).
 *
 * Locks: one mutex per port guards its values. Record processing holds the db lock and then takes the
 * port lock (db before port, as db.h requires); driver threads call param_set_* and param_post without
 * holding any lock of their own that record processing could need. The write function runs with the db
 * lock held: it must only record the request and wake the driver's thread, never block.
 */
#ifndef RELOC_PARAM_H
#define RELOC_PARAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/db/db.h"

typedef enum { PARAM_INT, PARAM_DOUBLE, PARAM_STRING, PARAM_ARRAY } param_type;

#define PARAM_ASYNC 1        /* write function: accepted, completes later with param_write_done */

typedef struct param_port param_port;

/* A write from an output record: the value as the parameter's type (arrays: element type and count). */
typedef struct param_write {
    int index;
    const char *name;
    long ival;
    double dval;
    const char *sval;
    dbr_value_type array_type;
    const void *array;
    long nelem;
} param_write;

/* Returns 0 (accepted: the parameter now holds the value), PARAM_ASYNC, or -1 with a message in err. */
typedef int (*param_write_fn)(void *driver, const param_write *w, char *err, size_t errlen);

/* Creates a port before records load (driver configuration commands in st.cmd). NULL if the name is taken. */
param_port *param_port_create(const char *name, param_write_fn write, void *driver);
param_port *param_port_find(const char *name);
/* Frees the port and the device-support state of its records. The driver calls it from its db_at_shutdown
 * hook after its threads have stopped (no param_* call may follow). */
void param_port_destroy(param_port *port);
/* Adds a parameter; returns its index (>= 0) or -1 when the name exists. Arrays keep up to max_elements
 * elements of array_type. */
int param_create(param_port *port, const char *name, param_type type);
int param_create_array(param_port *port, const char *name, dbr_value_type array_type, long max_elements);
int param_index(param_port *port, const char *name);

/* A driver's scalar parameters as a table, usually generated from the same X-macro list as its index enum:
 *   #define MY_PARAMS(X) X(P_ACQUIRE, "Acquire", PARAM_INT) ...
 *   enum { MY_PARAMS(PARAM_ENUM) ... };  static const param_def defs[] = {MY_PARAMS(PARAM_DEF)};
 * param_create_table creates them in table order, so on an empty port table index i is parameter i. */
typedef struct param_def {
    const char *name;
    param_type type;
} param_def;
#define PARAM_ENUM(id, name, type) id,
#define PARAM_DEF(id, name, type) {name, type},
void param_create_table(param_port *port, const param_def *defs, size_t count);

/* Driver side: set values (marked changed until the next param_post). */
void param_set_int(param_port *port, int index, long value);
void param_set_double(param_port *port, int index, double value);
void param_set_string(param_port *port, int index, const char *value);
/* Copies nelem elements (at most max_elements) of the parameter's array type. */
void param_set_array(param_port *port, int index, const void *data, long nelem);
/* Alarm carried to the records reading this parameter (NO_ALARM to clear). */
void param_set_alarm(param_port *port, int index, uint16_t status, uint16_t severity);
/* 1 when the last write a record made to the parameter was refused (by the driver, or as NaN/Inf, which never
 * reaches the driver): work that depends on the value (Beam:Calibrate on Beam:ClickX) can refuse to use it. */
int param_write_refused(param_port *port, int index);
long param_get_int(param_port *port, int index);
double param_get_double(param_port *port, int index);
void param_get_string(param_port *port, int index, char *buf, size_t len);
/* Copies up to max elements of an array parameter into dst; returns the count copied. */
long param_get_array(param_port *port, int index, void *dst, long max);
long param_array_length(param_port *port, int index);
/* Processes the I/O Intr records of every parameter changed since the last post. Any thread, no lock held. */
void param_post(param_port *port);
/* Completes the PARAM_ASYNC writes pending on a parameter (status 0 = success). Any thread. */
void param_write_done(param_port *port, int index, int status);

/* Registers the device support ("reloc param") and the shell command `paramReport [port]`. */
void param_register(void);

#endif
