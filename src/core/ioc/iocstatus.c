/* iocstatus.c -- "IOC uptime", "IOC start time", "IOC version" and "autosave status" device support (see iocstatus.h).
 * The start time is written once at registration, before any thread exists; io() runs with the db lock. */
#include "core/ioc/ioc.h"
#include "core/autosave/autosave.h"
#include "core/base/base.h"
#include "core/db/db.h"

#include <stdio.h>
#include <string.h>

static double start_monotonic;
static char start_text[DB_STRING_SIZE];

/* Writes a number into the record's VAL, whatever its numeric storage type. */
static long put_number(db_record *rec, double v)
{
    const db_field_desc *val = db_find_field(rec, "VAL");
    void *p = val ? db_field_ptr(rec, val) : NULL;
    if (!p) return -1;
    switch (val->type) {
    case DBF_DOUBLE: *(double *)p = v; break;
    case DBF_FLOAT: *(float *)p = (float)v; break;
    case DBF_LONG: *(int32_t *)p = (int32_t)v; break;
    case DBF_INT64: *(int64_t *)p = (int64_t)v; break;
    default: return -1;
    }
    rec->udf = 0;
    return 2;   /* value already in VAL: no conversion */
}

static long put_string(db_record *rec, const char *text)
{
    const db_field_desc *val = db_find_field(rec, "VAL");
    if (!val || val->type != DBF_STRING) return -1;
    str_copy(db_field_ptr(rec, val), text, val->size);
    rec->udf = 0;
    return 2;
}

static long read_uptime(db_record *rec) { return put_number(rec, time_monotonic() - start_monotonic); }
static long read_start_time(db_record *rec) { return put_string(rec, start_text); }
static long read_version(db_record *rec) { return put_string(rec, "reloc " RELOC_VERSION); }

/* A lost or unwritable save file is a MAJOR alarm: operators' settings are at stake. */
static long read_autosave_status(db_record *rec)
{
    char text[DB_STRING_SIZE];
    if (autosave_status(text, sizeof text)) db_alarm_raise(rec, STAT_STATE, MAJOR_ALARM);
    return put_string(rec, text);
}

/* Accepts records whose VAL can hold what the device support writes. */
static int init_numeric(db_record *rec)
{
    const db_field_desc *val = db_find_field(rec, "VAL");
    int ok = val && (val->type == DBF_DOUBLE || val->type == DBF_FLOAT || val->type == DBF_LONG ||
                     val->type == DBF_INT64);
    if (!ok) log_error("iocstatus", "%s: DTYP \"IOC uptime\" needs a numeric VAL (ai, longin, int64in)", rec->name);
    return ok ? 0 : -1;
}

static int init_string(db_record *rec)
{
    const db_field_desc *val = db_find_field(rec, "VAL");
    if (val && val->type == DBF_STRING) return 0;
    log_error("iocstatus", "%s: DTYP \"IOC start time\", \"IOC version\" and \"autosave status\" need a string VAL (stringin)", rec->name);
    return -1;
}

static const db_dset uptime_dset = {.name = "IOC uptime", .init_record = init_numeric, .io = read_uptime};
static const db_dset start_time_dset = {.name = "IOC start time", .init_record = init_string, .io = read_start_time};
static const db_dset version_dset = {.name = "IOC version", .init_record = init_string, .io = read_version};
static const db_dset autosave_dset = {.name = "autosave status", .init_record = init_string,
                                      .io = read_autosave_status};

void iocstatus_register(void)
{
    start_monotonic = time_monotonic();
    struct timespec now = time_wall();
    struct tm tm;
    localtime_r(&now.tv_sec, &tm);
    strftime(start_text, sizeof start_text, "%Y-%m-%d %H:%M:%S %Z", &tm);
    db_register_dset(&uptime_dset);
    db_register_dset(&start_time_dset);
    db_register_dset(&version_dset);
    db_register_dset(&autosave_dset);
}
