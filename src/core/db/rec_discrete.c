/* rec_discrete.c -- bi, bo, mbbi and mbbo: records whose VAL is a state index with a name and a
 * severity per state (bi/bo: ZNAM/ONAM, ZSV/OSV; mbbi/mbbo: ZRST..FFST, ZRVL..FFVL, ZRSV..FFSV, UNSV),
 * change-of-state alarms (COSV), and raw values (RVAL) for device support that reads or writes bits.
 * The four types share one layout; each exposes its own fields. */
#include "core/db/db_internal.h"

#include <string.h>

#define NSTATES 16

typedef struct discrete_record {
    db_common common;
    uint16_t val;
    uint32_t rval, mask;
    uint16_t shft;
    char strs[NSTATES][DB_ENUM_STR_SIZE];   /* bi/bo: [0] ZNAM, [1] ONAM */
    uint32_t vals[NSTATES];
    uint16_t svs[NSTATES];                  /* bi/bo: [0] ZSV, [1] OSV */
    uint16_t unsv, cosv, lalm, mlst;
    db_link inp;
    db_output o;
} discrete_record;

#define T discrete_record
#define DISCRETE_COMMON_FIELDS \
    DB_FIELD(T, "VAL", DBF_ENUM, val, DBFLD_PROCESS), \
    DB_MENU_FIELD(T, "COSV", cosv, DBFLD_PROCESS, menuAlarmSevr, NULL), \
    DB_FIELD(T, "MASK", DBF_ULONG, mask, 0), \
    DB_FIELD(T, "LALM", DBF_USHORT, lalm, DBFLD_READONLY | DBFLD_NOSAVE), \
    DB_FIELD(T, "MLST", DBF_USHORT, mlst, DBFLD_READONLY | DBFLD_NOSAVE)
#define BINARY_FIELDS \
    DISCRETE_COMMON_FIELDS, \
    DB_FIELD(T, "ZNAM", DBF_STRING, strs[0], DBFLD_PROPERTY), \
    DB_FIELD(T, "ONAM", DBF_STRING, strs[1], DBFLD_PROPERTY), \
    DB_MENU_FIELD(T, "ZSV", svs[0], DBFLD_PROCESS, menuAlarmSevr, NULL), \
    DB_MENU_FIELD(T, "OSV", svs[1], DBFLD_PROCESS, menuAlarmSevr, NULL)
#define STATE(P, I) \
    DB_FIELD(T, P "ST", DBF_STRING, strs[I], DBFLD_PROPERTY), \
    DB_FIELD(T, P "VL", DBF_ULONG, vals[I], DBFLD_PROCESS), \
    DB_MENU_FIELD(T, P "SV", svs[I], DBFLD_PROCESS, menuAlarmSevr, NULL)
#define MBB_FIELDS \
    DISCRETE_COMMON_FIELDS, \
    STATE("ZR", 0), STATE("ON", 1), STATE("TW", 2), STATE("TH", 3), STATE("FR", 4), STATE("FV", 5), \
    STATE("SX", 6), STATE("SV", 7), STATE("EI", 8), STATE("NI", 9), STATE("TE", 10), STATE("EL", 11), \
    STATE("TV", 12), STATE("TT", 13), STATE("FT", 14), STATE("FF", 15), \
    DB_MENU_FIELD(T, "UNSV", unsv, DBFLD_PROCESS, menuAlarmSevr, NULL), \
    DB_FIELD(T, "SHFT", DBF_USHORT, shft, 0)

static const db_field_desc bi_fields[] = {
    BINARY_FIELDS,
    DB_FIELD(T, "RVAL", DBF_ULONG, rval, DBFLD_PROCESS),
    DB_FIELD(T, "INP", DBF_INLINK, inp, 0),
};
static const db_field_desc bo_fields[] = {
    BINARY_FIELDS,
    DB_FIELD(T, "RVAL", DBF_ULONG, rval, DBFLD_READONLY),
    DB_OUTPUT_FIELDS(T),
};
static const db_field_desc mbbi_fields[] = {
    MBB_FIELDS,
    DB_FIELD(T, "RVAL", DBF_ULONG, rval, DBFLD_PROCESS),
    DB_FIELD(T, "INP", DBF_INLINK, inp, 0),
};
static const db_field_desc mbbo_fields[] = {
    MBB_FIELDS,
    DB_FIELD(T, "RVAL", DBF_ULONG, rval, DBFLD_READONLY),
    DB_OUTPUT_FIELDS(T),
};
#undef T

static const db_value_desc discrete_value = {DBF_ENUM, offsetof(discrete_record, val),
                                             offsetof(discrete_record, o), NULL};

static int is_binary(const db_record *rec)
{
    return strcmp(rec->rtype->name, "bi") == 0 || strcmp(rec->rtype->name, "bo") == 0;
}

/* Number of named states as clients see them: 2 for bi/bo, up to the last named state for mbb. */
static int state_count(const discrete_record *d)
{
    if (is_binary(&d->common)) return 2;
    int n = 0;
    for (int i = 0; i < NSTATES; i++)
        if (d->strs[i][0]) n = i + 1;
    return n;
}

/* mbb states are "defined" when any has a name or a raw value; otherwise VAL = RVAL directly. */
static int states_defined(const discrete_record *d)
{
    for (int i = 0; i < NSTATES; i++)
        if (d->strs[i][0] || d->vals[i]) return 1;
    return 0;
}

static void discrete_meta(const db_addr *addr, db_meta *meta)
{
    const discrete_record *d = (const discrete_record *)addr->rec;
    if (addr->type != DBF_ENUM || addr->long_string) return;
    meta->nstrs = state_count(d);
    for (int i = 0; i < meta->nstrs; i++) memcpy(meta->strs[i], d->strs[i], DB_ENUM_STR_SIZE);
}

static int discrete_enum_index(const db_addr *addr, const char *text)
{
    const discrete_record *d = (const discrete_record *)addr->rec;
    int n = state_count(d);
    for (int i = 0; i < n; i++)
        if (d->strs[i][0] && strcmp(d->strs[i], text) == 0) return i;
    return -1;
}

static void raw_to_value(discrete_record *d)
{
    uint32_t raw = d->mask ? d->rval & d->mask : d->rval;
    if (is_binary(&d->common)) {
        d->val = raw != 0;
        return;
    }
    raw >>= d->shft;
    if (!states_defined(d)) {
        d->val = (uint16_t)raw;
        return;
    }
    d->val = UINT16_MAX;            /* unknown state: raises UNSV */
    for (int i = 0; i < NSTATES; i++)
        if (d->vals[i] == raw) d->val = (uint16_t)i;
}

static int value_to_raw(discrete_record *d)
{
    if (is_binary(&d->common)) {
        d->rval = d->val ? (d->mask ? d->mask : 1) : 0;
        return 0;
    }
    if (!states_defined(d)) d->rval = (uint32_t)d->val << d->shft;
    else if (d->val < NSTATES) d->rval = d->vals[d->val] << d->shft;
    else return -1;
    if (d->mask) d->rval &= d->mask;
    return 0;
}

static void discrete_alarms(discrete_record *d)
{
    uint16_t sevr;
    if (is_binary(&d->common)) sevr = d->svs[d->val ? 1 : 0];
    else sevr = d->val < NSTATES ? d->svs[d->val] : d->unsv;
    recsup_state_alarms(&d->common, d->val, sevr, d->cosv, &d->lalm);
}

static void discrete_finish(discrete_record *d)
{
    unsigned mask = db_process_finish(&d->common);
    if (d->mlst != d->val) {
        mask |= DBE_VALUE | DBE_LOG;
        d->mlst = d->val;
    }
    if (mask) db_post_events(&d->common, &d->val, mask);
}

static long discrete_in_process(db_record *rec)
{
    discrete_record *d = (discrete_record *)rec;
    int completing = rec->pact;
    long status = recsup_device_io(rec, 0);
    if (!completing && rec->pact) return 0;
    if (status == 0) {
        raw_to_value(d);
        rec->udf = 0;
    }
    discrete_alarms(d);
    discrete_finish(d);
    return status < 0 ? status : 0;
}

static long discrete_out_process(db_record *rec)
{
    discrete_record *d = (discrete_record *)rec;
    int completing = rec->pact;
    long status = 0;
    if (!completing) {
        db_span val = {DBF_USHORT, &d->val, sizeof d->val, NULL};
        int fetched = recsup_fetch_dol(rec, &d->o, &val);
        if (fetched == 0 && is_binary(rec)) d->val = d->val != 0;
        if (fetched >= 0) rec->udf = 0;     /* processing writes the value it has: defined from now on */
        discrete_alarms(d);
        if (recsup_output_suppressed(rec, &discrete_value)) {
            discrete_finish(d);
            return 0;
        }
        if (value_to_raw(d) != 0) db_alarm_raise(rec, STAT_SOFT, INVALID_ALARM);
    }
    status = recsup_device_io(rec, 1);
    if (!completing && rec->pact) return 0;
    discrete_finish(d);
    return status < 0 ? status : 0;
}

static int discrete_init(db_record *rec, int pass)
{
    discrete_record *d = (discrete_record *)rec;
    if (pass != 1) return 0;
    db_span val = {DBF_USHORT, &d->val, sizeof d->val, NULL};
    if (db_link_load_constant(&d->o.dol, &val) == 0) rec->udf = 0;
    d->mlst = d->lalm = d->val;
    return 0;
}

#define DISCRETE_TYPE(NAME, FIELDS, PROCESS) \
    { \
        .name = NAME, .size = sizeof(discrete_record), .fields = FIELDS, \
        .nfields = sizeof FIELDS / sizeof FIELDS[0], .init_record = discrete_init, .process = PROCESS, \
        .get_meta = discrete_meta, .enum_index = discrete_enum_index, \
    }

static const db_record_type discrete_types[] = {
    DISCRETE_TYPE("bi", bi_fields, discrete_in_process),
    DISCRETE_TYPE("bo", bo_fields, discrete_out_process),
    DISCRETE_TYPE("mbbi", mbbi_fields, discrete_in_process),
    DISCRETE_TYPE("mbbo", mbbo_fields, discrete_out_process),
};

void rec_discrete_register(void)
{
    for (size_t i = 0; i < sizeof discrete_types / sizeof discrete_types[0]; i++)
        db_register_record_type(&discrete_types[i]);
}
