/* dev_soft.c -- "Soft Channel" device support for every record type with INP or OUT: an input record
 * reads its INP link into VAL (whatever VAL's type: number, string, long string, array), an output record
 * writes VAL to OUT (calcout has its own, writing OVAL: rec_calc.c). Constant INP links are loaded into VAL once at iocInit.
 * "Async Soft Channel" (output records) writes OUT with completion: through a link to another IOC the record
 * stays active (PACT) until that IOC reports the put done, and fails when it refuses it or the link drops.
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <string.h>

/* The link and value fields of a record, found by name (INP or OUT, and VAL). */
typedef struct soft_fields {
    db_link *link;
    db_addr value;
    int output;
} soft_fields;

/* The link and VAL fields of each record type, looked up by name once (a type never changes once registered):
 * every processing of a soft record needs them, and three name searches cost more than the rest of an ao's
 * put. Guarded by the db lock (device support runs with it held). */
typedef struct soft_type {
    const db_record_type *rtype;
    const db_field_desc *link, *value;
    int output;                             /* link is OUT */
} soft_type;
enum { SOFT_TYPES = 64 };
static soft_type soft_types[SOFT_TYPES];
static int n_soft_types;

static soft_type *type_fields(const db_record *rec)
{
    static soft_type beyond;                /* more types than the table holds: looked up every time */
    for (int i = 0; i < n_soft_types; i++)
        if (soft_types[i].rtype == rec->rtype) return &soft_types[i];
    soft_type *t = n_soft_types < SOFT_TYPES ? &soft_types[n_soft_types++] : &beyond;
    t->rtype = rec->rtype;
    t->link = db_find_field(rec, "INP");
    t->output = !t->link;
    if (!t->link) t->link = db_find_field(rec, "OUT");
    t->value = db_find_field(rec, "VAL");
    return t;
}

static int find_fields(db_record *rec, soft_fields *sf)
{
    const soft_type *t = type_fields(rec);
    if (!t->link || !t->value) return -1;
    sf->output = t->output;
    sf->link = db_field_ptr(rec, t->link);
    return db_addr_for_field(rec, t->value, 0, &sf->value);
}

static int soft_init(db_record *rec)
{
    soft_fields sf;
    if (find_fields(rec, &sf) != 0) return -1;
    if (sf.output || sf.link->kind != LINK_CONSTANT) return sf.link->kind == LINK_HW ? -1 : 0;
    db_storage st;
    if (db_addr_storage(&sf.value, &st) != DB_OK || !st.data) return 0;
    db_span dst = {st.type, st.data, st.elem_size, &sf.value};
    if (db_link_load_constant(sf.link, &dst) != 0) return -1;
    rec->udf = 0;
    return 0;
}

static long soft_io(db_record *rec)
{
    soft_fields sf;
    db_storage st;
    if (find_fields(rec, &sf) != 0 || db_addr_storage(&sf.value, &st) != DB_OK || !st.data) return -1;
    const db_field_desc *f = sf.value.field;
    if (sf.output) {
        db_span src = {st.type, st.data, st.elem_size, &sf.value};
        return db_link_write(rec, sf.link, &src, st.nelem > 0 ? st.nelem : 1) < 0 ? -1 : 0;
    }
    db_span dst = {st.type, st.data, st.elem_size, &sf.value};
    long n = st.capacity;
    int status = db_link_read(rec, sf.link, &dst, &n);
    if (status < 0) {
        db_alarm_raise(rec, STAT_LINK, INVALID_ALARM);
        return -1;
    }
    if (status == 0) {
        rec->udf = 0;
        if ((f->flags & DBFLD_ARRAY) && f->type != DBF_STRING) rec->rtype->put_array(&sf.value, n);
    }
    return 2;
}

static int async_init(db_record *rec)
{
    soft_fields sf;
    if (find_fields(rec, &sf) != 0 || !sf.output) {
        log_error("db", "%s: Async Soft Channel is for output records (OUT)", rec->name);
        return -1;
    }
    return sf.link->kind == LINK_HW ? -1 : 0;
}

static long async_io(db_record *rec)
{
    soft_fields sf;
    db_storage st;
    if (find_fields(rec, &sf) != 0 || db_addr_storage(&sf.value, &st) != DB_OK || !st.data) return -1;
    if (rec->pact) return db_link_write_finish(rec, sf.link) < 0 ? -1 : 0;     /* the other IOC reported */
    db_span src = {st.type, st.data, st.elem_size, &sf.value};
    int status = db_link_write_start(rec, sf.link, &src, st.nelem > 0 ? st.nelem : 1);
    if (status == 1) rec->pact = 1;                                  /* completes in db_request_process */
    return status < 0 ? -1 : 0;
}

static const db_dset soft_channel = {"Soft Channel", NULL, soft_init, NULL, soft_io};
static const db_dset async_soft_channel = {"Async Soft Channel", NULL, async_init, NULL, async_io};

void dev_soft_register(void)
{
    db_register_dset(&soft_channel);
    db_register_dset(&async_soft_channel);
}
