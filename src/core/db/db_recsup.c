/* db_recsup.c -- behaviour shared by record types: reading/writing a numeric VAL whatever its type,
 * alarm limits with hysteresis, MDEL/ADEL deadbands, metadata of numeric records, the common in/out
 * processing of ai/longin/int64in and ao/longout/int64out, closed-loop DOL, IVOA, state alarms.
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <math.h>
#include <string.h>

static db_analog *analog_of(const db_record *rec)
{
    return &((db_analog_record *)rec)->an;
}

static db_span value_span(const db_record *rec, const db_value_desc *vd)
{
    db_span s = {vd->type, (char *)rec + vd->val_offset, dbf_value_size(vd->type), NULL};
    return s;
}

double recsup_value(const db_record *rec, const db_value_desc *vd)
{
    double v = 0;
    db_span src = value_span(rec, vd);
    db_span dst = {DBF_DOUBLE, &v, sizeof v, NULL};
    db_convert(&dst, &src, 1);
    return v;
}

void recsup_set_value(db_record *rec, const db_value_desc *vd, double value)
{
    db_span dst = value_span(rec, vd);
    db_span src = {DBF_DOUBLE, &value, sizeof value, NULL};
    db_convert(&dst, &src, 1);
}

void recsup_analog_alarms(db_record *rec, double value)
{
    db_analog *an = analog_of(rec);
    if (rec->udf) {
        db_alarm_raise(rec, STAT_UDF, rec->udfs);
        return;
    }
    /* A limit stays in alarm until the value has moved HYST back past it (lalm remembers which). */
    double hyst = an->hyst, lalm = an->lalm;
    if (an->hhsv && (value >= an->hihi || (lalm == an->hihi && value >= an->hihi - hyst))) {
        db_alarm_raise(rec, STAT_HIHI, an->hhsv);
        an->lalm = an->hihi;
    } else if (an->llsv && (value <= an->lolo || (lalm == an->lolo && value <= an->lolo + hyst))) {
        db_alarm_raise(rec, STAT_LOLO, an->llsv);
        an->lalm = an->lolo;
    } else if (an->hsv && (value >= an->high || (lalm == an->high && value >= an->high - hyst))) {
        db_alarm_raise(rec, STAT_HIGH, an->hsv);
        an->lalm = an->high;
    } else if (an->lsv && (value <= an->low || (lalm == an->low && value <= an->low + hyst))) {
        db_alarm_raise(rec, STAT_LOW, an->lsv);
        an->lalm = an->low;
    } else {
        an->lalm = value;
    }
}

/* EPICS recGblCheckDeadband: NaN and infinities always count as a change. */
static unsigned crossed(double *last, double value, double deadband, unsigned bits)
{
    double delta = *last - value;
    if (!(fabs(delta) <= deadband) || (isnan(*last) != isnan(value))) {
        *last = value;
        return bits;
    }
    return 0;
}

void recsup_analog_monitor(db_record *rec, const void *pval, double value, unsigned mask)
{
    db_analog *an = analog_of(rec);
    mask |= crossed(&an->mlst, value, an->mdel, DBE_VALUE);
    mask |= crossed(&an->alst, value, an->adel, DBE_LOG);
    if (mask) db_post_events(rec, pval, mask);
}

void recsup_analog_init(db_record *rec, const db_value_desc *vd)
{
    if (vd->output_offset) {
        db_output *o = (db_output *)((char *)rec + vd->output_offset);
        db_span val = value_span(rec, vd);
        if (db_link_load_constant(&o->dol, &val) == 0) rec->udf = 0;
    }
    db_analog *an = analog_of(rec);
    double v = recsup_value(rec, vd);
    an->mlst = an->alst = an->lalm = v;
}

static int numeric_type(dbf_type t)
{
    return t >= DBF_CHAR && t <= DBF_DOUBLE;
}

/* The fields shown on the value's scale (EPICS ai/ao get_graphic_double): alarm limits and last values. */
static int on_value_scale(const char *field)
{
    static const char *const names[] = {"HIHI", "HIGH", "LOW", "LOLO", "LALM", "ALST", "MLST", "OVAL", "PVAL",
                                        "SVAL", "IVOV", "HOPR", "LOPR"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(field, names[i]) == 0) return 1;
    return 0;
}

/* The full range of a field type (EPICS recGbl's getMaxRangeValues). */
static void type_range(dbf_type t, double *hi, double *lo)
{
    switch (t) {
    case DBF_CHAR: *hi = INT8_MAX; *lo = INT8_MIN; break;
    case DBF_UCHAR: *hi = UINT8_MAX; *lo = 0; break;
    case DBF_SHORT: *hi = INT16_MAX; *lo = INT16_MIN; break;
    case DBF_USHORT: case DBF_ENUM: case DBF_MENU: case DBF_DEVICE: *hi = UINT16_MAX; *lo = 0; break;
    case DBF_LONG: *hi = INT32_MAX; *lo = INT32_MIN; break;
    case DBF_ULONG: *hi = UINT32_MAX; *lo = 0; break;
    case DBF_INT64: *hi = 9223372036854775808.0; *lo = -9223372036854775808.0; break;
    case DBF_UINT64: *hi = 18446744073709551615.0; *lo = 0; break;
    case DBF_FLOAT: *hi = 1e30; *lo = -1e30; break;
    default: *hi = 1e300; *lo = -1e300; break;
    }
}

/* Metadata of a field other than VAL, as EPICS record support gives it: engineering units only on
 * floating-point fields (not on the raw-conversion coefficients), the record's precision on those and 0 on
 * integers, the value's display range for the fields on its scale and the type's full range otherwise, and
 * no alarm limits. */
static void other_field_meta(const db_addr *addr, const db_analog *an, db_meta *meta)
{
    const char *name = addr->field->name;
    int fp = addr->type == DBF_FLOAT || addr->type == DBF_DOUBLE;
    int coefficient = strcmp(name, "ASLO") == 0 || strcmp(name, "AOFF") == 0 || strcmp(name, "SMOO") == 0 ||
                      strcmp(name, "ESLO") == 0 || strcmp(name, "EOFF") == 0;
    if (fp && !coefficient) str_copy(meta->units, an->egu, sizeof meta->units);
    meta->precision = fp ? (an->prec < 0 ? 0 : an->prec > 15 ? 15 : an->prec) : 0;
    if (on_value_scale(name)) {
        meta->disp_hi = an->hopr;
        meta->disp_lo = an->lopr;
    } else {
        type_range(addr->type, &meta->disp_hi, &meta->disp_lo);
    }
    meta->ctrl_hi = meta->disp_hi;
    meta->ctrl_lo = meta->disp_lo;
    meta->alarm_hi = meta->warn_hi = meta->warn_lo = meta->alarm_lo = NAN;
}

void recsup_analog_meta(const db_addr *addr, db_meta *meta)
{
    if (addr->long_string || !numeric_type(addr->type)) return;
    db_analog *an = analog_of(addr->rec);
    if (strcmp(addr->field->name, "VAL") != 0) {
        other_field_meta(addr, an, meta);
        return;
    }
    str_copy(meta->units, an->egu, sizeof meta->units);
    meta->precision = (addr->type == DBF_FLOAT || addr->type == DBF_DOUBLE) ? an->prec : 0;
    meta->disp_hi = an->hopr;
    meta->disp_lo = an->lopr;
    /* a limit whose severity is NO_ALARM does not apply: NaN, as EPICS sends it */
    meta->alarm_hi = an->hhsv ? an->hihi : NAN;
    meta->warn_hi = an->hsv ? an->high : NAN;
    meta->warn_lo = an->lsv ? an->low : NAN;
    meta->alarm_lo = an->llsv ? an->lolo : NAN;
    int has_drive = db_find_field(addr->rec, "DRVH") != NULL && an->drvh > an->drvl;
    meta->ctrl_hi = has_drive ? an->drvh : an->hopr;
    meta->ctrl_lo = has_drive ? an->drvl : an->lopr;
}

long recsup_device_io(db_record *rec, int output)
{
    if (!rec->dset || !rec->dset->io) return 2;
    long status = rec->dset->io(rec);
    if (status < 0) {
        db_alarm_raise(rec, output ? STAT_WRITE : STAT_READ, INVALID_ALARM);
        db_notify_fail(rec, DB_ERR_FAILED);      /* a caput -c / put(wait=True) reports the failure */
    }
    return status;
}

long recsup_analog_in_process(db_record *rec, const db_value_desc *vd)
{
    int completing = rec->pact;
    long status = recsup_device_io(rec, 0);
    if (!completing && rec->pact) return 0;          /* asynchronous: completes later */
    if (status == 0 && vd->convert) vd->convert(rec);
    double v = recsup_value(rec, vd);
    if (status >= 0 && (vd->type == DBF_DOUBLE || vd->type == DBF_FLOAT)) rec->udf = isnan(v);
    recsup_analog_alarms(rec, v);
    unsigned mask = db_process_finish(rec);
    recsup_analog_monitor(rec, (char *)rec + vd->val_offset, v, mask);
    return status < 0 ? status : 0;
}

int recsup_fetch_dol(db_record *rec, db_output *o, const db_span *dst)
{
    if (o->omsl != 1 || o->dol.kind != LINK_DB) return 1;
    long n = 1;
    int status = db_link_read(rec, &o->dol, dst, &n);
    if (status < 0) db_alarm_raise(rec, STAT_LINK, INVALID_ALARM);
    return status;
}

int recsup_output_suppressed(db_record *rec, const db_value_desc *vd)
{
    db_output *o = (db_output *)((char *)rec + vd->output_offset);
    if (rec->nsev < INVALID_ALARM) return 0;
    if (o->ivoa == 1) return 1;
    if (o->ivoa == 2) recsup_set_value(rec, vd, o->ivov);
    return 0;
}

long recsup_analog_out_process(db_record *rec, const db_value_desc *vd)
{
    int completing = rec->pact;
    db_analog *an = analog_of(rec);
    long status = 0;
    if (!completing) {
        db_output *o = (db_output *)((char *)rec + vd->output_offset);
        db_span val = value_span(rec, vd);
        int fetched = recsup_fetch_dol(rec, o, &val);
        double v = recsup_value(rec, vd);
        if (fetched >= 0) rec->udf = isnan(v);     /* processing writes the value it has: defined unless NaN */
        if (an->drvh > an->drvl && (v > an->drvh || v < an->drvl))
            recsup_set_value(rec, vd, v > an->drvh ? an->drvh : an->drvl);
        recsup_analog_alarms(rec, recsup_value(rec, vd));
        if (recsup_output_suppressed(rec, vd)) goto finish;
        if (vd->convert) vd->convert(rec);
    }
    status = recsup_device_io(rec, 1);
    if (!completing && rec->pact) return 0;
finish:;
    double v = recsup_value(rec, vd);
    unsigned mask = db_process_finish(rec);
    recsup_analog_monitor(rec, (char *)rec + vd->val_offset, v, mask);
    return status < 0 ? status : 0;
}

int recsup_field_addr(db_record *rec, const char *name, db_addr *addr)
{
    const db_field_desc *f = db_find_field(rec, name);
    if (!f) return DB_ERR_NOT_FOUND;
    return db_addr_for_field(rec, f, 0, addr);
}

void recsup_state_alarms(db_record *rec, unsigned value, uint16_t state_sevr, uint16_t cosv, uint16_t *lalm)
{
    if (rec->udf) {
        db_alarm_raise(rec, STAT_UDF, rec->udfs);
        return;
    }
    db_alarm_raise(rec, STAT_STATE, state_sevr);
    if (*lalm != value) db_alarm_raise(rec, STAT_COS, cosv);
    *lalm = (uint16_t)value;
}
