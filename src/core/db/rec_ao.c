/* rec_ao.c -- the ao (analog output) record: VAL from clients or DOL (closed_loop), clipped to
 * DRVL..DRVH, written to OUT; RVAL = (VAL - AOFF) / ASLO for device support that writes raw values. */
#include <math.h>
#include "core/db/db_internal.h"

typedef struct ao_record {
    db_common common;
    db_analog an;
    double val;
    db_output o;
    int32_t rval;
    double aslo, aoff;
} ao_record;

static void ao_convert(db_record *rec)
{
    ao_record *ao = (ao_record *)rec;
    double raw = ao->aslo != 0 ? (ao->val - ao->aoff) / ao->aslo : ao->val - ao->aoff;
    ao->rval = isnan(raw) ? 0 : raw > 2147483647.0 ? 2147483647 : raw < -2147483648.0 ? (-2147483647 - 1) : (int32_t)raw;
}

static const db_value_desc ao_value = {DBF_DOUBLE, offsetof(ao_record, val), offsetof(ao_record, o), ao_convert};

static const db_field_desc ao_fields[] = {
    DB_FIELD(ao_record, "VAL", DBF_DOUBLE, val, DBFLD_PROCESS),
    DB_OUTPUT_FIELDS(ao_record),
    DB_FIELD(ao_record, "RVAL", DBF_LONG, rval, DBFLD_READONLY),
    DB_FIELD_INIT(ao_record, "ASLO", DBF_DOUBLE, aslo, 0, "1"),
    DB_FIELD(ao_record, "AOFF", DBF_DOUBLE, aoff, 0),
    DB_ANALOG_FIELDS(ao_record),
    DB_DRIVE_FIELDS(ao_record),
};

static int ao_init(db_record *rec, int pass)
{
    if (pass == 1) recsup_analog_init(rec, &ao_value);
    return 0;
}

static long ao_process(db_record *rec)
{
    return recsup_analog_out_process(rec, &ao_value);
}

static const db_record_type ao_type = {
    .name = "ao", .size = sizeof(ao_record), .fields = ao_fields,
    .nfields = sizeof ao_fields / sizeof ao_fields[0], .init_record = ao_init, .process = ao_process,
    .get_meta = recsup_analog_meta,
};

void rec_ao_register(void)
{
    db_register_record_type(&ao_type);
}
