/* nt.c -- the Normative Type each channel is served as, following QSRV2 (pvxs ioc/): numeric scalars as
 * NTScalar (value, alarm, timeStamp, display, control, valueAlarm), strings as NTScalar with a short display,
 * DBF_ENUM/MENU fields as NTEnum, arrays as NTScalarArray. Builds the node tree (node index = BitSet bit),
 * writes its type descriptor, encodes values read from the record database and decodes put data.
 * Pure functions; value encoding runs with the db lock held. */
#include "core/pva/pva_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

/* ---------------------------------------------------------------------------------------------------
 * Building a tree (records here, structured PVs in ndarray.c)
 */
unsigned pva_build_add(pva_builder *b, const char *name, const char *id, uint8_t code, uint8_t role)
{
    pva_nt *nt = b->nt;
    if (nt->n >= PVA_MAX_NODES) {     /* the trees are fixed by this code: a mistake in it */
        log_error("pva", "a served structure has more than %d fields", PVA_MAX_NODES);
        abort();
    }
    unsigned i = nt->n++;
    nt->nodes[i] = (pva_node){ .name = name, .id = id, .code = code, .role = role,
                               .parent = b->depth ? b->stack[b->depth - 1] : 0, .end = (uint8_t)(i + 1) };
    for (int d = 0; d < b->depth; d++)
        nt->nodes[b->stack[d]].end = (uint8_t)(i + 1);
    return i;
}

unsigned pva_build_open(pva_builder *b, const char *name, const char *id, uint8_t code)
{
    unsigned i = pva_build_add(b, name, id, code, ROLE_STRUCT);
    b->stack[b->depth++] = (uint8_t)i;
    return i;
}

void pva_build_close(pva_builder *b)
{
    b->depth--;
}

unsigned pva_build_alarm(pva_builder *b)
{
    unsigned i = pva_build_open(b, "alarm", "alarm_t", PVA_STRUCT);
    pva_build_add(b, "severity", NULL, PVA_INT32, ROLE_SEVERITY);
    pva_build_add(b, "status", NULL, PVA_INT32, ROLE_STATUS);
    pva_build_add(b, "message", NULL, PVA_STRING, ROLE_MESSAGE);
    pva_build_close(b);
    return i;
}

unsigned pva_build_time(pva_builder *b, const char *name)
{
    unsigned i = pva_build_open(b, name, "time_t", PVA_STRUCT);
    pva_build_add(b, "secondsPastEpoch", NULL, PVA_INT64, ROLE_SECONDS);
    pva_build_add(b, "nanoseconds", NULL, PVA_INT32, ROLE_NANOS);
    pva_build_add(b, "userTag", NULL, PVA_INT32, ROLE_USERTAG);
    pva_build_close(b);
    return i;
}

static void add_enum(pva_builder *b, const char *name, uint8_t index_role, uint8_t choices_role)
{
    pva_build_open(b, name, "enum_t", PVA_STRUCT);
    pva_build_add(b, "index", NULL, PVA_INT32, index_role);
    pva_build_add(b, "choices", NULL, PVA_STRING | PVA_ARRAY, choices_role);
    pva_build_close(b);
}

static uint8_t value_code(dbf_type type, dbr_value_type *dbr)
{
    switch (type) {
    case DBF_CHAR: *dbr = DBR_CHAR; return PVA_INT8;
    case DBF_UCHAR: *dbr = DBR_CHAR; return PVA_UINT8;
    case DBF_SHORT: *dbr = DBR_SHORT; return PVA_INT16;
    case DBF_USHORT: *dbr = DBR_LONG; return PVA_UINT16;
    case DBF_LONG: *dbr = DBR_LONG; return PVA_INT32;
    case DBF_ULONG: *dbr = DBR_DOUBLE; return PVA_UINT32;
    case DBF_INT64: *dbr = DBR_DOUBLE; return PVA_INT64;
    case DBF_UINT64: *dbr = DBR_DOUBLE; return PVA_UINT64;
    case DBF_FLOAT: *dbr = DBR_FLOAT; return PVA_FLOAT;
    case DBF_DOUBLE: *dbr = DBR_DOUBLE; return PVA_DOUBLE;
    case DBF_ENUM: case DBF_MENU: case DBF_DEVICE: *dbr = DBR_ENUM; return PVA_INT32;
    default: *dbr = DBR_STRING; return PVA_STRING;
    }
}

/* The metadata EPICS Base's record support of each type reports (its rset's get_units, get_precision,
 * get_graphic_double, get_control_double, get_alarm_double): QSRV2 fills the matching fields only when the
 * record type has them, so an upstream client prints the same fields from us as from an upstream IOC.
 * Record types not listed (bi, mbbi, mbbo, stringin, stringout, lsi, lso, fanout, ...) have none. */
enum { META_UNITS = 1, META_PREC = 2, META_DISPLAY = 4, META_CONTROL = 8, META_ALARM = 16, META_ALL = 31 };

static unsigned record_meta(const db_record *rec)
{
    static const struct { const char *type; unsigned meta; } types[] = {
        { "ai", META_ALL }, { "ao", META_ALL }, { "calc", META_ALL }, { "calcout", META_ALL }, { "sel", META_ALL },
        { "sub", META_ALL }, { "aSub", META_ALL }, { "seq", META_ALL }, { "dfanout", META_ALL },
        { "motor", META_ALL }, { "longin", META_ALL & ~META_PREC }, { "longout", META_ALL & ~META_PREC },
        { "int64in", META_ALL & ~META_PREC }, { "int64out", META_ALL & ~META_PREC },
        { "waveform", META_ALL & ~META_ALARM }, { "aai", META_ALL & ~META_ALARM },
        { "aao", META_ALL & ~META_ALARM }, { "subArray", META_ALL & ~META_ALARM },
        { "compress", META_ALL & ~META_ALARM }, { "histogram", META_ALL & ~META_ALARM },
        { "bo", META_UNITS | META_PREC | META_CONTROL }, { "mbbiDirect", META_PREC }, { "mbboDirect", META_PREC },
    };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(rec->rtype->name, types[i].type))
            return types[i].meta;
    return 0;
}

/* The leaves QSRV2 fills: never control.minStep, valueAlarm.active, the alarm severities or hysteresis;
 * precision only for floating point fields; form.index only for VAL; the rest as record_meta() says. */
static uint64_t served_leaves(const pva_nt *nt, const db_addr *addr)
{
    unsigned meta = record_meta(addr->rec);
    if (addr->type != DBF_FLOAT && addr->type != DBF_DOUBLE)
        meta &= ~(unsigned)META_PREC;
    int val = !strcmp(addr->field->name, "VAL");
    uint64_t m = 0;
    for (unsigned i = 0; i < nt->n; i++) {
        const pva_node *n = &nt->nodes[i];
        if (n->code == PVA_STRUCT && n->end != i + 1)
            continue;
        unsigned needs = 0;
        switch (n->role) {
        case ROLE_MIN_STEP: case ROLE_VA_ACTIVE: case ROLE_VA_LOLO_SEV: case ROLE_VA_LOW_SEV:
        case ROLE_VA_HIGH_SEV: case ROLE_VA_HIHI_SEV: case ROLE_VA_HYST:
            continue;
        case ROLE_FORM_INDEX: if (!val) continue; break;
        case ROLE_UNITS: needs = META_UNITS; break;
        case ROLE_PRECISION: needs = META_PREC; break;
        case ROLE_DISP_LOW: case ROLE_DISP_HIGH: needs = META_DISPLAY; break;
        case ROLE_CTRL_LOW: case ROLE_CTRL_HIGH: needs = META_CONTROL; break;
        case ROLE_VA_LOLO: case ROLE_VA_LOW: case ROLE_VA_HIGH: case ROLE_VA_HIHI: needs = META_ALARM; break;
        default: break;
        }
        if ((meta & needs) == needs)
            m |= 1ull << i;
    }
    return m;
}

uint64_t pva_nt_subtree(const pva_nt *nt, unsigned i)
{
    uint64_t m = 0;
    for (unsigned k = i; k < nt->nodes[i].end; k++)
        m |= 1ull << k;
    return m;
}

void pva_nt_build(const db_addr *addr, pva_nt *nt)
{
    memset(nt, 0, sizeof *nt);
    pva_builder b = { .nt = nt };
    dbr_value_type dbr;
    uint8_t code = value_code(addr->type, &dbr);
    nt->dbr = dbr;
    nt->value_code = code;
    nt->is_enum = dbr == DBR_ENUM;
    nt->is_array = addr->max_elements > 1 && !nt->is_enum;
    int numeric = !nt->is_enum && code != PVA_STRING;
    pva_build_open(&b, NULL, nt->is_enum ? "epics:nt/NTEnum:1.0"
                   : nt->is_array ? "epics:nt/NTScalarArray:1.0" : "epics:nt/NTScalar:1.0", PVA_STRUCT);
    if (nt->is_enum)
        add_enum(&b, "value", ROLE_ENUM_INDEX, ROLE_ENUM_CHOICES);
    else
        pva_build_add(&b, "value", NULL, nt->is_array ? (uint8_t)(code | PVA_ARRAY) : code, ROLE_VALUE);
    nt->value_bits = pva_nt_subtree(nt, 1);
    nt->alarm_bits = pva_nt_subtree(nt, pva_build_alarm(&b));
    nt->time_bits = pva_nt_subtree(nt, pva_build_time(&b, "timeStamp"));
    unsigned props = nt->n;
    pva_build_open(&b, "display", NULL, PVA_STRUCT);
    if (numeric) {
        pva_build_add(&b, "limitLow", NULL, code, ROLE_DISP_LOW);
        pva_build_add(&b, "limitHigh", NULL, code, ROLE_DISP_HIGH);
    }
    pva_build_add(&b, "description", NULL, PVA_STRING, ROLE_DESCRIPTION);
    if (!nt->is_enum)
        pva_build_add(&b, "units", NULL, PVA_STRING, ROLE_UNITS);
    if (numeric) {
        pva_build_add(&b, "precision", NULL, PVA_INT32, ROLE_PRECISION);
        add_enum(&b, "form", ROLE_FORM_INDEX, ROLE_FORM_CHOICES);
    }
    pva_build_close(&b);
    if (numeric) {
        pva_build_open(&b, "control", NULL, PVA_STRUCT);
        pva_build_add(&b, "limitLow", NULL, code, ROLE_CTRL_LOW);
        pva_build_add(&b, "limitHigh", NULL, code, ROLE_CTRL_HIGH);
        pva_build_add(&b, "minStep", NULL, code, ROLE_MIN_STEP);
        pva_build_close(&b);
        pva_build_open(&b, "valueAlarm", NULL, PVA_STRUCT);
        pva_build_add(&b, "active", NULL, PVA_BOOL, ROLE_VA_ACTIVE);
        pva_build_add(&b, "lowAlarmLimit", NULL, code, ROLE_VA_LOLO);
        pva_build_add(&b, "lowWarningLimit", NULL, code, ROLE_VA_LOW);
        pva_build_add(&b, "highWarningLimit", NULL, code, ROLE_VA_HIGH);
        pva_build_add(&b, "highAlarmLimit", NULL, code, ROLE_VA_HIHI);
        pva_build_add(&b, "lowAlarmSeverity", NULL, PVA_INT32, ROLE_VA_LOLO_SEV);
        pva_build_add(&b, "lowWarningSeverity", NULL, PVA_INT32, ROLE_VA_LOW_SEV);
        pva_build_add(&b, "highWarningSeverity", NULL, PVA_INT32, ROLE_VA_HIGH_SEV);
        pva_build_add(&b, "highAlarmSeverity", NULL, PVA_INT32, ROLE_VA_HIHI_SEV);
        pva_build_add(&b, "hysteresis", NULL, PVA_DOUBLE, ROLE_VA_HYST);
        pva_build_close(&b);
    }
    pva_build_close(&b);
    nt->property_bits = 0;
    for (unsigned i = props; i < nt->n; i++)
        nt->property_bits |= 1ull << i;
    for (unsigned i = 0; i < props; i++)
        if (nt->nodes[i].role == ROLE_ENUM_CHOICES) {     /* a property: sent when the strings change */
            nt->value_bits &= ~(1ull << i);
            nt->property_bits |= 1ull << i;
        }
    nt->served_bits = served_leaves(nt, addr);
}

/* ---------------------------------------------------------------------------------------------------
 * Type descriptor
 */
static void put_type(pva_buf *b, const pva_nt *nt, unsigned i)
{
    const pva_node *n = &nt->nodes[i];
    pva_put8(b, n->code);
    if (n->code == (PVA_STRUCT | PVA_ARRAY))
        pva_put8(b, PVA_STRUCT);            /* the element structure's descriptor follows */
    else if (n->code != PVA_STRUCT && n->code != PVA_UNION)
        return;
    pva_put_string(b, n->id ? n->id : "");
    unsigned count = 0;
    for (unsigned k = i + 1; k < n->end; k = nt->nodes[k].end)
        count++;
    pva_put_size(b, count);
    for (unsigned k = i + 1; k < n->end; k = nt->nodes[k].end) {
        pva_put_string(b, nt->nodes[k].name);
        put_type(b, nt, k);
    }
}

void pva_nt_put_type(pva_buf *b, const pva_nt *nt)
{
    put_type(b, nt, 0);
}

uint64_t pva_nt_select(const pva_nt *nt, const char *path)
{
    unsigned node = 0;
    const char *p = path;
    while (*p) {
        size_t len = strcspn(p, ".");
        const pva_node *parent = &nt->nodes[node];
        unsigned found = 0;
        for (unsigned k = node + 1; k < parent->end; k = nt->nodes[k].end)
            if (strlen(nt->nodes[k].name) == len && !strncmp(nt->nodes[k].name, p, len)) {
                found = k;
                break;
            }
        if (!found)
            return 0;
        node = found;
        p += len;
        if (*p == '.')
            p++;
    }
    return pva_nt_subtree(nt, node);
}

/* ---------------------------------------------------------------------------------------------------
 * Values
 */
static const char *const form_choices[] = { "Default", "String", "Binary", "Decimal", "Hex", "Exponential",
                                            "Engineering" };

/* What one read of the channel gives, taken once per encoding. */
typedef struct snapshot {
    db_meta meta;
    const db_addr *addr;
    void *values;
    long nelem;
    int16_t enum_index;
} snapshot;

/* A double as an integer without undefined behaviour: NaN is 0, out of range saturates. */
static int64_t to_int64(double v)
{
    if (v != v)
        return 0;
    if (v >= 9.2e18)
        return INT64_MAX;
    if (v <= -9.2e18)
        return INT64_MIN;
    return (int64_t)v;
}

static void put_number(pva_buf *b, uint8_t code, double v)
{
    switch (code) {
    case PVA_BOOL: case PVA_INT8: case PVA_UINT8: pva_put8(b, (uint8_t)to_int64(v)); break;
    case PVA_INT16: case PVA_UINT16: pva_put16(b, (uint16_t)to_int64(v)); break;
    case PVA_INT32: case PVA_UINT32: pva_put32(b, (uint32_t)to_int64(v)); break;
    case PVA_INT64: pva_put64(b, (uint64_t)to_int64(v)); break;
    case PVA_UINT64: pva_put64(b, v <= 0 || v != v ? 0 : v >= 1.8e19 ? UINT64_MAX : (uint64_t)v); break;
    case PVA_FLOAT: {
        float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, 4);
        pva_put32(b, u);
        break;
    }
    default: pva_put_double(b, v); break;
    }
}

/* value elements as read from db (type nt->dbr) -> wire elements of nt->value_code */
static void put_elements(pva_buf *b, const pva_nt *nt, const void *values, long n)
{
    if (nt->dbr == DBR_STRING) {
        for (long i = 0; i < n; i++) {
            const char *s = (const char *)values + i * DB_STRING_SIZE;
            pva_put_string_n(b, s, strnlen(s, DB_STRING_SIZE));
        }
        return;
    }
    size_t w = pva_scalar_size(nt->value_code);
    if ((nt->dbr == DBR_CHAR && w == 1) || (nt->dbr == DBR_SHORT && w == 2) ||
        (nt->dbr == DBR_LONG && nt->value_code == PVA_INT32) || (nt->dbr == DBR_FLOAT) ||
        (nt->dbr == DBR_DOUBLE && nt->value_code == PVA_DOUBLE)) {
        /* Same representation: a host-order (little endian) copy. */
        pva_buf_append(b, values, (size_t)n * w);
        return;
    }
    for (long i = 0; i < n; i++) {
        double v = nt->dbr == DBR_LONG ? ((const int32_t *)values)[i] : ((const double *)values)[i];
        put_number(b, nt->value_code, v);
    }
}

static int32_t nt_status(uint16_t stat)
{
    switch (stat) {
    case STAT_NO_ALARM: return 0;
    case STAT_READ: case STAT_WRITE: case STAT_HIHI: case STAT_HIGH: case STAT_LOLO: case STAT_LOW:
    case STAT_STATE: case STAT_COS: case STAT_HWLIMIT: return 1;
    case STAT_COMM: case STAT_TIMEOUT: case STAT_UDF: return 2;
    case STAT_CALC: case STAT_SCAN: case STAT_LINK: case STAT_SOFT: case STAT_BAD_SUB: return 3;
    case STAT_DISABLE: case STAT_SIMM: case STAT_READ_ACCESS: case STAT_WRITE_ACCESS: return 4;
    default: return 6;
    }
}

static const char *const stat_names[] = {
    "NO_ALARM", "READ", "WRITE", "HIHI", "HIGH", "LOLO", "LOW", "STATE", "COS", "COMM", "TIMEOUT", "HWLIMIT",
    "CALC", "SCAN", "LINK", "SOFT", "BAD_SUB", "UDF", "DISABLE", "SIMM", "READ_ACCESS", "WRITE_ACCESS"
};

/* The alarm limit of a valueAlarm field, NaN when its severity field says NO_ALARM (as QSRV2). */
static double alarm_limit(const snapshot *s, const char *sev_field, double limit)
{
    const db_field_desc *f = db_find_field(s->addr->rec, sev_field);
    if (f && f->type == DBF_MENU && *(const uint16_t *)db_field_ptr(s->addr->rec, f) == NO_ALARM)
        return NAN;
    return limit;
}

static void put_leaf(pva_buf *b, const pva_nt *nt, const pva_node *n, const snapshot *s)
{
    const db_meta *m = &s->meta;
    switch (n->role) {
    case ROLE_VALUE:
        if (nt->is_array)
            pva_put_size(b, (size_t)s->nelem);
        put_elements(b, nt, s->values, nt->is_array ? s->nelem : 1);
        break;
    case ROLE_ENUM_INDEX: pva_put32(b, (uint32_t)(int32_t)s->enum_index); break;
    case ROLE_ENUM_CHOICES:
        pva_put_size(b, (size_t)m->nstrs);
        for (int i = 0; i < m->nstrs; i++)
            pva_put_string_n(b, m->strs[i], strnlen(m->strs[i], DB_ENUM_STR_SIZE));
        break;
    case ROLE_SEVERITY: pva_put32(b, m->severity); break;
    case ROLE_STATUS: pva_put32(b, (uint32_t)nt_status(m->status)); break;
    case ROLE_MESSAGE:
        pva_put_string(b, m->status == STAT_NO_ALARM ? "" : m->status < sizeof stat_names / sizeof *stat_names
                                                            ? stat_names[m->status] : "");
        break;
    case ROLE_SECONDS:
        /* POSIX seconds (db keeps them so); a never processed record shows the EPICS epoch, as QSRV2. */
        pva_put64(b, (uint64_t)(m->stamp.tv_sec ? m->stamp.tv_sec : DB_EPICS_EPOCH_OFFSET));
        break;
    case ROLE_NANOS: pva_put32(b, (uint32_t)m->stamp.tv_nsec); break;
    case ROLE_USERTAG: pva_put32(b, 0); break;
    case ROLE_DISP_LOW: put_number(b, n->code, m->disp_lo); break;
    case ROLE_DISP_HIGH: put_number(b, n->code, m->disp_hi); break;
    case ROLE_DESCRIPTION: pva_put_string(b, s->addr->rec->desc); break;
    case ROLE_UNITS: pva_put_string_n(b, m->units, strnlen(m->units, DB_EGU_SIZE)); break;
    case ROLE_PRECISION: pva_put32(b, (uint32_t)(int32_t)m->precision); break;
    case ROLE_FORM_INDEX: pva_put32(b, 0); break;
    case ROLE_FORM_CHOICES:
        pva_put_size(b, sizeof form_choices / sizeof *form_choices);
        for (size_t i = 0; i < sizeof form_choices / sizeof *form_choices; i++)
            pva_put_string(b, form_choices[i]);
        break;
    case ROLE_CTRL_LOW: put_number(b, n->code, m->ctrl_lo); break;
    case ROLE_CTRL_HIGH: put_number(b, n->code, m->ctrl_hi); break;
    case ROLE_MIN_STEP: put_number(b, n->code, 0); break;
    case ROLE_VA_ACTIVE: pva_put8(b, 0); break;
    case ROLE_VA_LOLO: put_number(b, n->code, alarm_limit(s, "LLSV", m->alarm_lo)); break;
    case ROLE_VA_LOW: put_number(b, n->code, alarm_limit(s, "LSV", m->warn_lo)); break;
    case ROLE_VA_HIGH: put_number(b, n->code, alarm_limit(s, "HSV", m->warn_hi)); break;
    case ROLE_VA_HIHI: put_number(b, n->code, alarm_limit(s, "HHSV", m->alarm_hi)); break;
    case ROLE_VA_LOLO_SEV: case ROLE_VA_LOW_SEV: case ROLE_VA_HIGH_SEV: case ROLE_VA_HIHI_SEV:
        pva_put32(b, 0);
        break;
    case ROLE_VA_HYST: pva_put_double(b, 0); break;
    default: break;
    }
}

static int take_snapshot_locked(const pva_nt *nt, const db_addr *addr, snapshot *s, pva_buf *scratch)
{
    memset(s, 0, sizeof *s);
    s->addr = addr;
    db_get_meta(addr, &s->meta);
    long cap = addr->max_elements > 0 ? addr->max_elements : 1;
    size_t w = nt->dbr == DBR_STRING ? DB_STRING_SIZE : nt->dbr == DBR_DOUBLE ? 8
             : nt->dbr == DBR_LONG || nt->dbr == DBR_FLOAT ? 4 : nt->dbr == DBR_SHORT || nt->dbr == DBR_ENUM ? 2 : 1;
    pva_buf_reset(scratch);
    s->values = pva_buf_reserve(scratch, (size_t)cap * w);
    memset(s->values, 0, (size_t)cap * w);
    s->nelem = nt->is_array ? 0 : 1;
    int st = db_get(addr, nt->dbr, s->values, &s->nelem);
    if (nt->is_enum)
        memcpy(&s->enum_index, s->values, 2);
    return st;
}

int pva_nt_put_value_locked(pva_buf *b, const pva_nt *nt, const db_addr *addr, uint64_t mask)
{
    static pva_buf scratch;     /* guarded by the db lock, as every caller holds it */
    snapshot s;
    if (take_snapshot_locked(nt, addr, &s, &scratch) != DB_OK)
        return -1;
    mask &= nt->served_bits;
    pva_put_bitset(b, mask);
    for (unsigned i = 0; i < nt->n; i++)
        if (mask >> i & 1)
            put_leaf(b, nt, &nt->nodes[i], &s);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * Put data
 */
static void take_number(pva_reader *r, uint8_t code, double *out)
{
    switch (code) {
    case PVA_BOOL: case PVA_UINT8: *out = pva_get8(r); break;
    case PVA_INT8: *out = (int8_t)pva_get8(r); break;
    case PVA_INT16: *out = (int16_t)pva_get16(r); break;
    case PVA_UINT16: *out = pva_get16(r); break;
    case PVA_INT32: *out = (int32_t)pva_get32(r); break;
    case PVA_UINT32: *out = pva_get32(r); break;
    case PVA_INT64: *out = (double)(int64_t)pva_get64(r); break;
    case PVA_UINT64: *out = (double)pva_get64(r); break;
    case PVA_FLOAT: {
        uint32_t u = pva_get32(r);
        float f;
        memcpy(&f, &u, 4);
        *out = f;
        break;
    }
    default: *out = pva_get_double(r); break;
    }
}

/* One element of the value into values (type nt->dbr). */
static void take_element(pva_reader *r, const pva_nt *nt, pva_buf *values)
{
    if (nt->dbr == DBR_STRING) {
        char *s = (char *)pva_buf_reserve(values, DB_STRING_SIZE);
        pva_get_string(r, s, DB_STRING_SIZE);
        return;
    }
    double v;
    take_number(r, nt->value_code, &v);
    int64_t i = to_int64(v);    /* the wire type of our own field: it fits, except an enum index */
    switch (nt->dbr) {
    case DBR_CHAR: *(int8_t *)pva_buf_reserve(values, 1) = (int8_t)i; break;
    case DBR_SHORT: { int16_t x = (int16_t)i; pva_buf_append(values, &x, 2); break; }
    case DBR_ENUM: {    /* an index out of range stays out of range: the record refuses it */
        uint16_t x = i < 0 || i > UINT16_MAX ? UINT16_MAX : (uint16_t)i;
        pva_buf_append(values, &x, 2);
        break;
    }
    case DBR_LONG: { int32_t x = (int32_t)i; pva_buf_append(values, &x, 4); break; }
    case DBR_FLOAT: { float x = (float)v; pva_buf_append(values, &x, 4); break; }
    default: pva_buf_append(values, &v, 8); break;
    }
}

/* Consumes the value of node i (whole subtree), keeping the value elements. */
static void take_node(pva_reader *r, const pva_nt *nt, unsigned i, pva_buf *values, long *nelem)
{
    const pva_node *n = &nt->nodes[i];
    if (n->code == PVA_STRUCT) {
        for (unsigned k = i + 1; k < n->end && !r->bad; k = nt->nodes[k].end)
            take_node(r, nt, k, values, nelem);
        return;
    }
    int keep = n->role == ROLE_VALUE || n->role == ROLE_ENUM_INDEX;
    if (n->code & PVA_ARRAY) {
        long count = pva_get_size(r);
        if (count < 0)
            count = 0;
        uint8_t base = n->code & ~PVA_ARRAY;
        if ((size_t)count > (size_t)(r->end - r->p)) {
            r->bad = 1;     /* every element takes at least a byte */
            return;
        }
        for (long e = 0; e < count && !r->bad; e++) {
            if (keep) {
                take_element(r, nt, values);
            } else if (base == PVA_STRING) {
                long k = pva_get_size(r);
                pva_skip(r, k > 0 ? (size_t)k : 0);
            } else {
                pva_skip(r, pva_scalar_size(base));
            }
        }
        if (keep)
            *nelem = count;
        return;
    }
    if (keep) {
        take_element(r, nt, values);
        *nelem = 1;
    } else if (n->code == PVA_STRING) {
        long k = pva_get_size(r);
        pva_skip(r, k > 0 ? (size_t)k : 0);
    } else {
        pva_skip(r, pva_scalar_size(n->code));
    }
}

int pva_nt_decode_put(pva_reader *r, const pva_nt *nt, pva_buf *values, long *nelem)
{
    pva_buf_reserve(values, 1);     /* never a NULL buffer, also for an empty array */
    pva_buf_reset(values);
    *nelem = -1;
    uint64_t mask = pva_get_bitset(r);
    for (unsigned i = 0; i < nt->n && !r->bad;) {
        if (mask >> i & 1) {
            take_node(r, nt, i, values, nelem);
            i = nt->nodes[i].end;
        } else {
            i++;
        }
    }
    return r->bad ? -1 : 0;
}
