/* rec_integer.c -- longin, longout, int64in and int64out: the analog records' behaviour (db_recsup.c:
 * alarm limits, deadbands, DOL, DRVH/DRVL, IVOA) on 32- and 64-bit integer values. The four types differ
 * only in the C type of VAL, so one macro defines an input/output pair per integer type. */
#include "core/db/db_internal.h"

#define INTEGER_RECORDS(IN, OUT, CTYPE, DBF) \
    typedef struct IN##_record { \
        db_common common; \
        db_analog an; \
        CTYPE val; \
        db_link inp; \
    } IN##_record; \
    typedef struct OUT##_record { \
        db_common common; \
        db_analog an; \
        CTYPE val; \
        db_output o; \
    } OUT##_record; \
    static const db_value_desc IN##_value = {DBF, offsetof(IN##_record, val), 0, NULL}; \
    static const db_value_desc OUT##_value = {DBF, offsetof(OUT##_record, val), offsetof(OUT##_record, o), NULL}; \
    static const db_field_desc IN##_fields[] = { \
        DB_FIELD(IN##_record, "VAL", DBF, val, DBFLD_PROCESS), \
        DB_FIELD(IN##_record, "INP", DBF_INLINK, inp, 0), \
        DB_ANALOG_FIELDS(IN##_record), \
    }; \
    static const db_field_desc OUT##_fields[] = { \
        DB_FIELD(OUT##_record, "VAL", DBF, val, DBFLD_PROCESS), \
        DB_OUTPUT_FIELDS(OUT##_record), \
        DB_ANALOG_FIELDS(OUT##_record), \
        DB_DRIVE_FIELDS(OUT##_record), \
    }; \
    static int IN##_init(db_record *rec, int pass) \
    { \
        if (pass == 1) recsup_analog_init(rec, &IN##_value); \
        return 0; \
    } \
    static int OUT##_init(db_record *rec, int pass) \
    { \
        if (pass == 1) recsup_analog_init(rec, &OUT##_value); \
        return 0; \
    } \
    static long IN##_process(db_record *rec) { return recsup_analog_in_process(rec, &IN##_value); } \
    static long OUT##_process(db_record *rec) { return recsup_analog_out_process(rec, &OUT##_value); } \
    static const db_record_type IN##_type = { \
        .name = #IN, .size = sizeof(IN##_record), .fields = IN##_fields, \
        .nfields = sizeof IN##_fields / sizeof IN##_fields[0], .init_record = IN##_init, \
        .process = IN##_process, .get_meta = recsup_analog_meta, \
    }; \
    static const db_record_type OUT##_type = { \
        .name = #OUT, .size = sizeof(OUT##_record), .fields = OUT##_fields, \
        .nfields = sizeof OUT##_fields / sizeof OUT##_fields[0], .init_record = OUT##_init, \
        .process = OUT##_process, .get_meta = recsup_analog_meta, \
    };

INTEGER_RECORDS(longin, longout, int32_t, DBF_LONG)
INTEGER_RECORDS(int64in, int64out, int64_t, DBF_INT64)

void rec_integer_register(void)
{
    db_register_record_type(&longin_type);
    db_register_record_type(&longout_type);
    db_register_record_type(&int64in_type);
    db_register_record_type(&int64out_type);
}
