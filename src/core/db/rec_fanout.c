/* rec_fanout.c -- the fanout record: processes the records on LNK0..LNKF -- all of them, the one SELN
 * (+OFFS) selects, or those whose bits are set in SELN >> SHFT -- in link order. SELN can come from SELL. */
#include "core/db/db_internal.h"

#define NLINKS 16

typedef struct fanout_record {
    db_common common;
    int32_t val;
    uint16_t selm, seln;
    int16_t offs, shft;
    db_link sell;
    db_link lnk[NLINKS];
} fanout_record;

static const char *const selm_choices[] = {"All", "Specified", "Mask"};
static const db_menu fanoutSELM = {"fanoutSELM", 3, selm_choices};

#define LNK(I, NAME) DB_FIELD(fanout_record, NAME, DBF_FWDLINK, lnk[I], 0)
static const db_field_desc fanout_fields[] = {
    DB_FIELD(fanout_record, "VAL", DBF_LONG, val, DBFLD_PROCESS),
    DB_MENU_FIELD(fanout_record, "SELM", selm, 0, fanoutSELM, NULL),
    DB_FIELD(fanout_record, "SELN", DBF_USHORT, seln, DBFLD_PROCESS),
    DB_FIELD(fanout_record, "SELL", DBF_INLINK, sell, 0),
    DB_FIELD(fanout_record, "OFFS", DBF_SHORT, offs, 0),
    DB_FIELD(fanout_record, "SHFT", DBF_SHORT, shft, 0),
    LNK(0, "LNK0"), LNK(1, "LNK1"), LNK(2, "LNK2"), LNK(3, "LNK3"), LNK(4, "LNK4"), LNK(5, "LNK5"),
    LNK(6, "LNK6"), LNK(7, "LNK7"), LNK(8, "LNK8"), LNK(9, "LNK9"), LNK(10, "LNKA"), LNK(11, "LNKB"),
    LNK(12, "LNKC"), LNK(13, "LNKD"), LNK(14, "LNKE"), LNK(15, "LNKF"),
};

static long fanout_process(db_record *rec)
{
    fanout_record *f = (fanout_record *)rec;
    db_span seln = {DBF_USHORT, &f->seln, sizeof f->seln, NULL};
    long one = 1;
    if (db_link_read(rec, &f->sell, &seln, &one) < 0) db_alarm_raise(rec, STAT_LINK, INVALID_ALARM);
    rec->udf = 0;
    if (f->selm == 0) {
        for (int i = 0; i < NLINKS; i++) db_forward(&f->lnk[i]);
    } else if (f->selm == 1) {
        int i = f->seln + f->offs;
        if (i >= 0 && i < NLINKS) db_forward(&f->lnk[i]);
        else db_alarm_raise(rec, STAT_SOFT, INVALID_ALARM);
    } else {
        unsigned bits = f->shft >= 0 ? (unsigned)f->seln >> f->shft : (unsigned)f->seln << -f->shft;
        for (int i = 0; i < NLINKS; i++)
            if (bits & (1u << i)) db_forward(&f->lnk[i]);
    }
    unsigned mask = db_process_finish(rec);
    if (mask) db_post_events(rec, &f->val, mask);
    return 0;
}

static const db_record_type fanout_type = {
    .name = "fanout", .size = sizeof(fanout_record), .fields = fanout_fields,
    .nfields = sizeof fanout_fields / sizeof fanout_fields[0], .process = fanout_process,
};

void rec_fanout_register(void)
{
    db_register_menu(&fanoutSELM);
    db_register_record_type(&fanout_type);
}
