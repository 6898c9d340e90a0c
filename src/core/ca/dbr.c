/* dbr.c -- the DBR types 0..38 of Channel Access: their sizes and value offsets (as db_access.h lays them
 * out), encoding a channel's value and metadata (read through db_get/db_get_meta) into big-endian DBR
 * structures, and decoding the value part of a client's put. */
#include "core/ca/ca_internal.h"

#include <math.h>
#include <string.h>

#include "core/base/base.h"

#define L(size, off, base) { size, off, base }
static const ca_dbr_layout layouts[CA_DBR_LAST + 1] = {
    /* plain */ L(40, 0, DBR_STRING), L(2, 0, DBR_SHORT), L(4, 0, DBR_FLOAT), L(2, 0, DBR_ENUM),
    L(1, 0, DBR_CHAR), L(4, 0, DBR_LONG), L(8, 0, DBR_DOUBLE),
    /* STS */ L(44, 4, DBR_STRING), L(6, 4, DBR_SHORT), L(8, 4, DBR_FLOAT), L(6, 4, DBR_ENUM),
    L(6, 5, DBR_CHAR), L(8, 4, DBR_LONG), L(16, 8, DBR_DOUBLE),
    /* TIME */ L(52, 12, DBR_STRING), L(16, 14, DBR_SHORT), L(16, 12, DBR_FLOAT), L(16, 14, DBR_ENUM),
    L(16, 15, DBR_CHAR), L(16, 12, DBR_LONG), L(24, 16, DBR_DOUBLE),
    /* GR */ L(44, 4, DBR_STRING), L(26, 24, DBR_SHORT), L(44, 40, DBR_FLOAT), L(424, 422, DBR_ENUM),
    L(20, 19, DBR_CHAR), L(40, 36, DBR_LONG), L(72, 64, DBR_DOUBLE),
    /* CTRL */ L(44, 4, DBR_STRING), L(30, 28, DBR_SHORT), L(52, 48, DBR_FLOAT), L(424, 422, DBR_ENUM),
    L(22, 21, DBR_CHAR), L(48, 44, DBR_LONG), L(88, 80, DBR_DOUBLE),
    /* PUT_ACKT, PUT_ACKS, STSACK_STRING, CLASS_NAME */
    L(2, 0, DBR_ENUM), L(2, 0, DBR_ENUM), L(48, 8, DBR_STRING), L(40, 0, DBR_STRING),
};
#undef L

enum { CLS_PLAIN, CLS_STS, CLS_TIME, CLS_GR, CLS_CTRL };

const ca_dbr_layout *ca_dbr_layout_of(unsigned type)
{
    return type <= CA_DBR_LAST ? &layouts[type] : NULL;
}

size_t ca_dbr_value_size(dbr_value_type base)
{
    static const uint8_t sizes[] = { DB_STRING_SIZE, 2, 4, 2, 1, 4, 8 };
    return sizes[base];
}

size_t ca_dbr_bytes(unsigned type, uint32_t count)
{
    const ca_dbr_layout *l = &layouts[type];
    size_t vs = ca_dbr_value_size(l->base);
    return count == 0 ? (size_t)l->size - vs : (size_t)l->size + ((size_t)count - 1) * vs;
}

dbr_value_type ca_native_type(dbf_type type)
{
    switch (type) {
    case DBF_CHAR: case DBF_UCHAR: return DBR_CHAR;
    case DBF_SHORT: return DBR_SHORT;
    case DBF_USHORT: case DBF_LONG: return DBR_LONG;
    case DBF_ULONG: case DBF_INT64: case DBF_UINT64: case DBF_DOUBLE: return DBR_DOUBLE;
    case DBF_FLOAT: return DBR_FLOAT;
    case DBF_ENUM: case DBF_MENU: case DBF_DEVICE: return DBR_ENUM;
    default: return DBR_STRING;
    }
}

/* Host order -> network order (and back: the operation is its own inverse) for n elements of size bytes. */
/* Host order <-> big-endian for n elements of 2, 4 or 8 bytes, in place (memcpy keeps unaligned access
 * defined; the compiler turns each loop into vector byte shuffles). */
#define SWAP_EACH(type, bswap)                                      \
    for (size_t i = 0; i < n; i++) {                                \
        type v;                                                     \
        memcpy(&v, p + sizeof v * i, sizeof v);                     \
        v = bswap(v);                                               \
        memcpy(p + sizeof v * i, &v, sizeof v);                     \
    }

/* Built for AVX2 as well (chosen at load time): byte shuffles of 4- and 8-byte elements need it to vectorise. */
RELOC_AVX2_CLONES
static void swap_elements(uint8_t *p, size_t size, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    switch (size) {
    case 2: SWAP_EACH(uint16_t, __builtin_bswap16); break;
    case 4: SWAP_EACH(uint32_t, __builtin_bswap32); break;
    case 8: SWAP_EACH(uint64_t, __builtin_bswap64); break;
    default: break;
    }
#else
    (void)p; (void)size; (void)n;
#endif
}

/* One limit of the base type, big-endian, clamped into the type's range. A limit that does not apply is NaN:
 * sent as NaN in FLOAT/DOUBLE (as rsrv does), as 0 in the integer types. */
static void put_limit(uint8_t *p, dbr_value_type base, double v)
{
    if (isnan(v) && base != DBR_FLOAT && base != DBR_DOUBLE)
        v = 0;
    switch (base) {
    case DBR_SHORT: ca_put16(p, (uint16_t)(int16_t)fmax(-32768, fmin(32767, v))); break;
    case DBR_CHAR: *p = (uint8_t)fmax(0, fmin(255, v)); break;
    case DBR_LONG: ca_put32(p, (uint32_t)(int32_t)fmax(-2147483648.0, fmin(2147483647.0, v))); break;
    case DBR_FLOAT: {
        float f = (float)v;
        memcpy(p, &f, 4);
        swap_elements(p, 4, 1);
        break;
    }
    case DBR_DOUBLE:
        memcpy(p, &v, 8);
        swap_elements(p, 8, 1);
        break;
    default: break;
    }
}

/* GR/CTRL of numeric types: precision (FLOAT/DOUBLE only), units, the 6 display/alarm limits and, for
 * CTRL, the 2 control limits, all consecutive in the base type right after the units. */
static void encode_limits(uint8_t *out, dbr_value_type base, const db_meta *m, int ctrl)
{
    int fp = base == DBR_FLOAT || base == DBR_DOUBLE;
    size_t units_off = fp ? 8 : 4;
    if (fp)
        ca_put16(out + 4, (uint16_t)m->precision);
    size_t ulen = strnlen(m->units, sizeof m->units);
    memcpy(out + units_off, m->units, ulen < 7 ? ulen : 7);
    const double lims[8] = { m->disp_hi, m->disp_lo, m->alarm_hi, m->warn_hi, m->warn_lo, m->alarm_lo,
                             m->ctrl_hi, m->ctrl_lo };
    size_t vs = ca_dbr_value_size(base);
    for (int i = 0; i < (ctrl ? 8 : 6); i++)
        put_limit(out + units_off + 8 + i * vs, base, lims[i]);
}

void ca_dbr_encode(uint8_t *out, unsigned type, const db_meta *m, uint32_t count)
{
    const ca_dbr_layout *l = &layouts[type];
    swap_elements(out + l->value_off, ca_dbr_value_size(l->base), count);
    if (type == DBR_STSACK_STRING) {
        ca_put16(out, m->status);
        ca_put16(out + 2, m->severity);
        ca_put16(out + 4, m->ackt);
        ca_put16(out + 6, m->acks);
        return;
    }
    if (type >= DBR_PUT_ACKT)
        return;
    int cls = (int)type / 7;
    if (cls == CLS_PLAIN)
        return;
    ca_put16(out, m->status);
    ca_put16(out + 2, m->severity);
    if (cls == CLS_TIME) {
        long sec = (long)m->stamp.tv_sec - DB_EPICS_EPOCH_OFFSET;
        ca_put32(out + 4, sec > 0 ? (uint32_t)sec : 0);
        ca_put32(out + 8, (uint32_t)m->stamp.tv_nsec);
        return;
    }
    if (cls == CLS_STS || l->base == DBR_STRING)
        return;
    if (l->base == DBR_ENUM) {
        int n = m->nstrs < 0 ? 0 : m->nstrs > DB_ENUM_STRS ? DB_ENUM_STRS : m->nstrs;
        ca_put16(out + 4, (uint16_t)n);
        for (int i = 0; i < n; i++)
            memcpy(out + 6 + i * DB_ENUM_STR_SIZE, m->strs[i], DB_ENUM_STR_SIZE - 1);
        return;
    }
    encode_limits(out, (dbr_value_type)l->base, m, cls == CLS_CTRL);
}

int ca_dbr_read(const db_addr *addr, unsigned type, uint32_t count, uint8_t *out)
{
    const ca_dbr_layout *l = ca_dbr_layout_of(type);
    if (!l)
        return ECA_BADTYPE;
    if (type == DBR_PUT_ACKT || type == DBR_PUT_ACKS)
        return ECA_GETFAIL;
    db_meta meta;
    memset(&meta, 0, sizeof meta);
    int cls = (int)type / 7;
    if (type <= DBR_DOUBLE + 7 * CLS_TIME && cls != CLS_PLAIN) {
        /* STS and TIME carry only the alarm and the time stamp: no record-support metadata on this path,
         * the one scalar gets and most monitors take */
        meta.status = addr->rec->stat;
        meta.severity = addr->rec->sevr;
        meta.stamp = addr->rec->time;
    } else if (cls != CLS_PLAIN) {
        db_get_meta(addr, &meta);
    }
    /* Every byte but the numbers db_get writes is cleared: metadata, strings (str_copy stops at the NUL) and
     * the elements past the channel's current count. A frame's elements are written once, not cleared first. */
    size_t vs = ca_dbr_value_size(l->base);
    memset(out, 0, l->base == DBR_STRING ? ca_dbr_bytes(type, count) : l->value_off);
    if (type == DBR_CLASS_NAME) {
        str_copy((char *)out, meta.class_name ? meta.class_name : "", DB_STRING_SIZE);
        return ECA_NORMAL;
    }
    uint32_t host_order = count;    /* elements ca_dbr_encode must put into network order */
    if (count > 0) {
        long n = (long)count;
        int swapped = db_get_wire(addr, (dbr_value_type)l->base, out + l->value_off, &n);
        if (swapped < 0)
            return ECA_GETFAIL;
        if (swapped)
            host_order = 0;         /* converted straight into network order */
        if (l->base == DBR_STRING)
            for (uint32_t i = 0; i < count; i++)
                out[l->value_off + i * DB_STRING_SIZE + DB_STRING_SIZE - 1] = 0;
        else if ((uint32_t)n < count)
            memset(out + l->value_off + (size_t)n * vs, 0, (count - (size_t)n) * vs);
    }
    ca_dbr_encode(out, type, &meta, host_order);
    return ECA_NORMAL;
}

void *ca_dbr_decode_values(uint8_t *payload, size_t len, unsigned type, uint32_t count, ca_bytes *room)
{
    const ca_dbr_layout *l = ca_dbr_layout_of(type);
    if (!l || count == 0)
        return NULL;
    size_t need = ca_dbr_bytes(type, count);
    if (need > len) {
        /* libca sends a single string trimmed to strlen+1 (padded to 8): widen it to its 40 bytes. */
        if (l->base != DBR_STRING || count != 1 || len <= l->value_off)
            return NULL;
        room->len = room->head = 0;
        uint8_t *wide = ca_bytes_reserve(room, need);
        memcpy(wide, payload, len);
        payload = wide;
    }
    uint8_t *values = payload + l->value_off;
    size_t vs = ca_dbr_value_size((dbr_value_type)l->base);
    if (l->base == DBR_STRING)
        for (uint32_t i = 0; i < count; i++)
            values[i * vs + vs - 1] = 0;
    else
        swap_elements(values, vs, count);
    return values;
}
