/* rec_string.c -- text records: stringin/stringout (40-character VAL) and lsi/lso (long strings of SIZV
 * characters, reachable in full as "VAL$"). Inputs read INP into VAL; outputs take VAL from clients or
 * DOL and write it to OUT. Monitors are posted when the text changes (OVAL keeps the last posted text). */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <stdlib.h>
#include <string.h>

typedef struct string_record {
    db_common common;
    char val[DB_STRING_SIZE];
    char oval[DB_STRING_SIZE];
    db_link inp;
    db_output o;
} string_record;

typedef struct lstring_record {
    db_common common;
    char *val, *oval;          /* SIZV bytes each, allocated at iocInit */
    uint16_t sizv, allocated;
    uint32_t len;
    db_link inp;
    db_output o;
} lstring_record;

static const db_field_desc stringin_fields[] = {
    DB_FIELD(string_record, "VAL", DBF_STRING, val, DBFLD_PROCESS),
    DB_FIELD(string_record, "OVAL", DBF_STRING, oval, DBFLD_READONLY | DBFLD_NOSAVE),
    DB_FIELD(string_record, "INP", DBF_INLINK, inp, 0),
};
static const db_field_desc stringout_fields[] = {
    DB_FIELD(string_record, "VAL", DBF_STRING, val, DBFLD_PROCESS),
    DB_FIELD(string_record, "OVAL", DBF_STRING, oval, DBFLD_READONLY | DBFLD_NOSAVE),
    DB_OUTPUT_FIELDS(string_record),
};

#define LSTRING_COMMON_FIELDS \
    DB_FIELD(lstring_record, "VAL", DBF_STRING, val, DBFLD_ARRAY | DBFLD_PROCESS), \
    DB_FIELD(lstring_record, "OVAL", DBF_STRING, oval, DBFLD_ARRAY | DBFLD_READONLY | DBFLD_NOSAVE), \
    DB_FIELD_INIT(lstring_record, "SIZV", DBF_USHORT, sizv, DBFLD_READONLY, "41"), \
    DB_FIELD(lstring_record, "LEN", DBF_ULONG, len, DBFLD_READONLY | DBFLD_NOSAVE)
static const db_field_desc lsi_fields[] = {
    LSTRING_COMMON_FIELDS,
    DB_FIELD(lstring_record, "INP", DBF_INLINK, inp, 0),
};
static const db_field_desc lso_fields[] = {
    LSTRING_COMMON_FIELDS,
    DB_OUTPUT_FIELDS(lstring_record),
};

/* Where VAL/OVAL live and how big they are, for both layouts. */
typedef struct text_value {
    char *val, *oval;
    size_t size;
    db_output *o;
} text_value;

static int is_long(const db_record *rec)
{
    return rec->rtype->get_array != NULL;
}

static text_value text_of(db_record *rec)
{
    if (is_long(rec)) {
        lstring_record *l = (lstring_record *)rec;
        return (text_value){l->val, l->oval, l->sizv, &l->o};
    }
    string_record *s = (string_record *)rec;
    return (text_value){s->val, s->oval, DB_STRING_SIZE, &s->o};
}

static void text_finish(db_record *rec, text_value *t)
{
    if (rec->udf) db_alarm_raise(rec, STAT_UDF, rec->udfs);
    unsigned mask = db_process_finish(rec);
    if (strcmp(t->val, t->oval) != 0) {
        mask |= DBE_VALUE | DBE_LOG;
        memcpy(t->oval, t->val, t->size);
        if (is_long(rec)) {
            lstring_record *l = (lstring_record *)rec;
            l->len = (uint32_t)strlen(l->val) + 1;
            db_post_events(rec, &l->len, DBE_VALUE | DBE_LOG);
        }
    }
    if (mask) db_post_events(rec, is_long(rec) ? (void *)&((lstring_record *)rec)->val : (void *)t->val, mask);
}

static long text_in_process(db_record *rec)
{
    text_value t = text_of(rec);
    int completing = rec->pact;
    long status = recsup_device_io(rec, 0);
    if (!completing && rec->pact) return 0;
    text_finish(rec, &t);
    return status < 0 ? status : 0;
}

static long text_out_process(db_record *rec)
{
    text_value t = text_of(rec);
    int completing = rec->pact;
    long status = 0;
    if (!completing) {
        db_span val = {DBF_STRING, t.val, t.size, NULL};
        if (recsup_fetch_dol(rec, t.o, &val) >= 0) rec->udf = 0;   /* processing defines the value */
        if (rec->udf) db_alarm_raise(rec, STAT_UDF, rec->udfs);
    }
    /* IVOV is a number and means nothing for text: any IVOA other than "Continue" skips the write. */
    int suppressed = !completing && rec->nsev >= INVALID_ALARM && t.o->ivoa != 0;
    if (!suppressed) status = recsup_device_io(rec, 1);
    if (!completing && rec->pact) return 0;
    text_finish(rec, &t);
    return status < 0 ? status : 0;
}

/* The buffers follow SIZV: allocated on first use (a .db file may set VAL before iocInit) and resized at
 * iocInit if SIZV was set afterwards. */
static void lstring_buffers(lstring_record *l)
{
    if (l->sizv < 2) l->sizv = 2;
    if (l->val && l->allocated == l->sizv) return;
    l->val = xrealloc(l->val, l->sizv);
    l->oval = xrealloc(l->oval, l->sizv);
    if (l->allocated < l->sizv) {
        memset(l->val + l->allocated, 0, l->sizv - l->allocated);
        memset(l->oval + l->allocated, 0, l->sizv - l->allocated);
    }
    l->val[l->sizv - 1] = l->oval[l->sizv - 1] = 0;
    l->allocated = l->sizv;
}

static int lstring_init(db_record *rec, int pass)
{
    if (pass == 0) lstring_buffers((lstring_record *)rec);
    return 0;
}

static void lstring_free(db_record *rec)
{
    lstring_record *l = (lstring_record *)rec;
    free(l->val);
    free(l->oval);
}

static void *lstring_get(const db_addr *addr, long *nelem, long *capacity)
{
    lstring_record *l = (lstring_record *)addr->rec;
    lstring_buffers(l);
    *capacity = l->sizv;
    *nelem = 1;
    return addr->field->offset == offsetof(lstring_record, val) ? l->val : l->oval;
}

static void lstring_put(const db_addr *addr, long nelem)
{
    addr->rec->udf = 0;
}

static const db_record_type string_types[] = {
    {.name = "stringin", .size = sizeof(string_record), .fields = stringin_fields,
     .nfields = sizeof stringin_fields / sizeof stringin_fields[0], .process = text_in_process},
    {.name = "stringout", .size = sizeof(string_record), .fields = stringout_fields,
     .nfields = sizeof stringout_fields / sizeof stringout_fields[0], .process = text_out_process},
    {.name = "lsi", .size = sizeof(lstring_record), .fields = lsi_fields,
     .nfields = sizeof lsi_fields / sizeof lsi_fields[0], .init_record = lstring_init, .process = text_in_process,
     .get_array = lstring_get, .put_array = lstring_put, .free_record = lstring_free},
    {.name = "lso", .size = sizeof(lstring_record), .fields = lso_fields,
     .nfields = sizeof lso_fields / sizeof lso_fields[0], .init_record = lstring_init, .process = text_out_process,
     .get_array = lstring_get, .put_array = lstring_put, .free_record = lstring_free},
};

void rec_string_register(void)
{
    for (size_t i = 0; i < sizeof string_types / sizeof string_types[0]; i++) db_register_record_type(&string_types[i]);
}
