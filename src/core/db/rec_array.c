/* rec_array.c -- waveform, aai and aao: arrays of NELM elements of type FTVL (any number type, STRING or
 * CHAR), NORD of them valid. waveform and aai read INP into VAL; aao takes VAL from clients (or DOL) and
 * writes it to OUT. VAL is allocated at iocInit and posted (DBE_VALUE|DBE_LOG) on every processing. */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <stdlib.h>
#include <string.h>

/* The three types share this layout; aao's output part is unused by the input types. */
typedef struct array_record {
    db_common common;
    db_analog an;            /* EGU, PREC, HOPR, LOPR */
    void *val;
    uint32_t nelm, nord;
    uint16_t ftvl;
    db_link inp;
    db_output o;
} array_record;

#define ARRAY_COMMON_FIELDS \
    DB_FIELD(array_record, "VAL", DBF_DOUBLE, val, DBFLD_ARRAY | DBFLD_PROCESS), \
    DB_FIELD_INIT(array_record, "NELM", DBF_ULONG, nelm, DBFLD_READONLY, "1"), \
    DB_FIELD(array_record, "NORD", DBF_ULONG, nord, DBFLD_READONLY | DBFLD_NOSAVE), \
    DB_MENU_FIELD(array_record, "FTVL", ftvl, DBFLD_READONLY, menuFtype, "DOUBLE"), \
    DB_DISPLAY_FIELDS(array_record)

static const db_field_desc input_fields[] = {
    ARRAY_COMMON_FIELDS,
    DB_FIELD(array_record, "INP", DBF_INLINK, inp, 0),
};

static const db_field_desc output_fields[] = {
    ARRAY_COMMON_FIELDS,
    DB_MENU_FIELD(array_record, "OMSL", o.omsl, 0, menuOmsl, NULL),
    DB_FIELD(array_record, "DOL", DBF_INLINK, o.dol, 0),
    DB_FIELD(array_record, "OUT", DBF_OUTLINK, o.out, 0),
};

static int is_val(const db_field_desc *f)
{
    return f->offset == offsetof(array_record, val);
}

static dbf_type array_field_type(const db_record *rec, const db_field_desc *f)
{
    const array_record *ar = (const array_record *)rec;
    return is_val(f) ? (dbf_type)ar->ftvl : f->type;
}

static int array_init(db_record *rec, int pass)
{
    array_record *ar = (array_record *)rec;
    if (pass != 0) return 0;
    if (ar->ftvl > DBF_ENUM) return -1;
    if (ar->nelm == 0) ar->nelm = 1;
    ar->val = xcalloc(ar->nelm, ar->ftvl == DBF_STRING ? DB_STRING_SIZE : dbf_value_size((dbf_type)ar->ftvl));
    ar->nord = 0;
    return 0;
}

static void array_free(db_record *rec)
{
    free(((array_record *)rec)->val);
}

static void *array_get(const db_addr *addr, long *nelem, long *capacity)
{
    array_record *ar = (array_record *)addr->rec;
    *nelem = ar->val ? ar->nord : 0;
    *capacity = ar->val ? ar->nelm : 0;
    return ar->val;
}

static void array_put(const db_addr *addr, long nelem)
{
    array_record *ar = (array_record *)addr->rec;
    if (ar->nord != (uint32_t)nelem) {
        ar->nord = (uint32_t)nelem;
        db_post_events(addr->rec, &ar->nord, DBE_VALUE | DBE_LOG);
    }
    addr->rec->udf = 0;
}

static void array_finish(db_record *rec)
{
    array_record *ar = (array_record *)rec;
    if (rec->udf) db_alarm_raise(rec, STAT_UDF, rec->udfs);
    unsigned mask = db_process_finish(rec);
    db_post_events(rec, &ar->val, mask | DBE_VALUE | DBE_LOG);
}

static long array_in_process(db_record *rec)
{
    int completing = rec->pact;
    long status = recsup_device_io(rec, 0);
    if (!completing && rec->pact) return 0;
    array_finish(rec);
    return status < 0 ? status : 0;
}

static long array_out_process(db_record *rec)
{
    array_record *ar = (array_record *)rec;
    int completing = rec->pact;
    if (!completing && ar->o.omsl == 1 && ar->o.dol.kind == LINK_DB) {
        db_addr val;
        recsup_field_addr(rec, "VAL", &val);
        db_span dst = {(dbf_type)ar->ftvl, ar->val, ar->ftvl == DBF_STRING ? DB_STRING_SIZE
                                                     : dbf_value_size((dbf_type)ar->ftvl), &val};
        long n = ar->nelm;
        if (db_link_read(rec, &ar->o.dol, &dst, &n) == 0) array_put(&val, n);
        else db_alarm_raise(rec, STAT_LINK, INVALID_ALARM);
    }
    long status = recsup_device_io(rec, 1);
    if (!completing && rec->pact) return 0;
    array_finish(rec);
    return status < 0 ? status : 0;
}

#define ARRAY_TYPE(NAME, FIELDS, PROCESS) \
    { \
        .name = NAME, .size = sizeof(array_record), .fields = FIELDS, \
        .nfields = sizeof FIELDS / sizeof FIELDS[0], .init_record = array_init, .process = PROCESS, \
        .get_array = array_get, .put_array = array_put, .get_meta = recsup_analog_meta, \
        .field_type = array_field_type, .free_record = array_free, \
    }

static const db_record_type array_types[] = {
    ARRAY_TYPE("waveform", input_fields, array_in_process),
    ARRAY_TYPE("aai", input_fields, array_in_process),
    ARRAY_TYPE("aao", output_fields, array_out_process),
};

void rec_array_register(void)
{
    for (size_t i = 0; i < sizeof array_types / sizeof array_types[0]; i++) db_register_record_type(&array_types[i]);
}
