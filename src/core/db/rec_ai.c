/* rec_ai.c -- the ai (analog input) record: VAL read through INP (Soft Channel) or from RVAL as
 * VAL = RVAL * ASLO + AOFF when device support returns raw values, then SMOO smoothing, alarm limits and
 * deadbands (db_recsup.c). */
#include "core/db/db_internal.h"

#include <math.h>

typedef struct ai_record {
    db_common common;
    db_analog an;
    double val;
    int32_t rval;
    double aslo, aoff, smoo;
    db_link inp;
} ai_record;

static void ai_convert(db_record *rec)
{
    ai_record *ai = (ai_record *)rec;
    double v = ai->rval * ai->aslo + ai->aoff;
    if (ai->smoo > 0 && !rec->udf && isfinite(ai->val)) v = ai->val * ai->smoo + v * (1 - ai->smoo);
    ai->val = v;
}

static const db_value_desc ai_value = {DBF_DOUBLE, offsetof(ai_record, val), 0, ai_convert};

static const db_field_desc ai_fields[] = {
    DB_FIELD(ai_record, "VAL", DBF_DOUBLE, val, DBFLD_PROCESS),
    DB_FIELD(ai_record, "INP", DBF_INLINK, inp, 0),
    DB_FIELD(ai_record, "RVAL", DBF_LONG, rval, DBFLD_PROCESS),
    DB_FIELD_INIT(ai_record, "ASLO", DBF_DOUBLE, aslo, 0, "1"),
    DB_FIELD(ai_record, "AOFF", DBF_DOUBLE, aoff, 0),
    DB_FIELD(ai_record, "SMOO", DBF_DOUBLE, smoo, 0),
    DB_ANALOG_FIELDS(ai_record),
};

static int ai_init(db_record *rec, int pass)
{
    if (pass == 1) recsup_analog_init(rec, &ai_value);
    return 0;
}

static long ai_process(db_record *rec)
{
    return recsup_analog_in_process(rec, &ai_value);
}

static const db_record_type ai_type = {
    .name = "ai", .size = sizeof(ai_record), .fields = ai_fields,
    .nfields = sizeof ai_fields / sizeof ai_fields[0], .init_record = ai_init, .process = ai_process,
    .get_meta = recsup_analog_meta,
};

void rec_ai_register(void)
{
    db_register_record_type(&ai_type);
}
