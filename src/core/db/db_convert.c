/* db_convert.c -- the conversion core: any field storage type to and from any other (the 7 client value
 * types are storage types too), numbers <-> text with the field's precision, enum/menu indices <-> state
 * strings, and where a field's elements live (scalars, strings, long strings "FIELD$", arrays).
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t dbf_value_size(dbf_type type)
{
    switch (type) {
    case DBF_STRING: return DB_STRING_SIZE;
    case DBF_CHAR: case DBF_UCHAR: return 1;
    case DBF_SHORT: case DBF_USHORT: case DBF_ENUM: case DBF_MENU: case DBF_DEVICE: return 2;
    case DBF_LONG: case DBF_ULONG: case DBF_FLOAT: return 4;
    case DBF_INT64: case DBF_UINT64: case DBF_DOUBLE: return 8;
    default: return 0;
    }
}

dbf_type dbr_storage_type(dbr_value_type type)
{
    static const dbf_type map[] = {DBF_STRING, DBF_SHORT, DBF_FLOAT, DBF_USHORT, DBF_UCHAR, DBF_LONG, DBF_DOUBLE};
    return map[type];
}

size_t db_dbr_value_size(dbr_value_type type)
{
    return dbf_value_size(dbr_storage_type(type));
}

static int is_enum_type(dbf_type t)
{
    return t == DBF_ENUM || t == DBF_MENU || t == DBF_DEVICE;
}

static long double load_num(dbf_type t, const void *p)
{
    union { int8_t c; uint8_t uc; int16_t s; uint16_t us; int32_t l; uint32_t ul; int64_t q; uint64_t uq;
            float f; double d; } v;
    memcpy(&v, p, dbf_value_size(t));
    switch (t) {
    case DBF_CHAR: return v.c;
    case DBF_UCHAR: return v.uc;
    case DBF_SHORT: return v.s;
    case DBF_USHORT: case DBF_ENUM: case DBF_MENU: case DBF_DEVICE: return v.us;
    case DBF_LONG: return v.l;
    case DBF_ULONG: return v.ul;
    case DBF_INT64: return v.q;
    case DBF_UINT64: return v.uq;
    case DBF_FLOAT: return v.f;
    case DBF_DOUBLE: return v.d;
    default: return 0;
    }
}

/* Integers: truncation toward zero as a C cast, but clamped to the type's range (and NaN -> 0). */
static long double clamp(long double v, long double lo, long double hi)
{
    if (isnan(v)) return 0;
    return v < lo ? lo : v > hi ? hi : v;
}

static void store_num(dbf_type t, void *p, long double v)
{
    union { int8_t c; uint8_t uc; int16_t s; uint16_t us; int32_t l; uint32_t ul; int64_t q; uint64_t uq;
            float f; double d; } u;
    switch (t) {
    case DBF_CHAR: u.c = (int8_t)clamp(v, INT8_MIN, INT8_MAX); break;
    case DBF_UCHAR: u.uc = (uint8_t)clamp(v, 0, UINT8_MAX); break;
    case DBF_SHORT: u.s = (int16_t)clamp(v, INT16_MIN, INT16_MAX); break;
    case DBF_USHORT: case DBF_ENUM: case DBF_MENU: case DBF_DEVICE: u.us = (uint16_t)clamp(v, 0, UINT16_MAX); break;
    case DBF_LONG: u.l = (int32_t)clamp(v, INT32_MIN, INT32_MAX); break;
    case DBF_ULONG: u.ul = (uint32_t)clamp(v, 0, UINT32_MAX); break;
    case DBF_INT64: u.q = (int64_t)clamp(v, (long double)INT64_MIN, (long double)INT64_MAX); break;
    case DBF_UINT64: u.uq = (uint64_t)clamp(v, 0, (long double)UINT64_MAX); break;
    case DBF_FLOAT: u.f = (float)v; break;
    case DBF_DOUBLE: u.d = (double)v; break;
    default: return;
    }
    memcpy(p, &u, dbf_value_size(t));
}

void db_format_double(char *buf, size_t size, double v, int precision)
{
    if (isnan(v)) { str_copy(buf, "NaN", size); return; }
    if (isinf(v)) { str_copy(buf, v > 0 ? "Inf" : "-Inf", size); return; }
    if (precision < 0) {      /* no PREC: shortest text that reads back as the same number */
        for (int p = 15; p <= 17; p++) {
            snprintf(buf, size, "%.*g", p, v);
            if (strtod(buf, NULL) == v) return;
        }
        return;
    }
    if (precision > 17) precision = 17;
    int n = fabs(v) < 1e15 ? snprintf(buf, size, "%.*f", precision, v) : -1;
    if (n < 0 || (size_t)n >= size) snprintf(buf, size, "%.*e", precision < 10 ? precision : 10, v);
}

static const char *skip_blanks(const char *s)
{
    while (isspace((unsigned char)*s)) s++;
    return s;
}

int db_parse_double(const char *text, double *v)
{
    const char *s = skip_blanks(text);
    if (!*s) return -1;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *skip_blanks(end)) return -1;
    *v = d;
    return 0;
}

/* Integer text: decimal, 0x hex, or a number with a fraction/exponent (truncated, as EPICS does). */
static int parse_number(const char *text, long double *v)
{
    const char *s = skip_blanks(text);
    if (!*s) return -1;
    char *end;
    errno = 0;
    int neg = *s == '-';
    const char *digits = (*s == '-' || *s == '+') ? s + 1 : s;
    if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
        unsigned long long u = strtoull(digits, &end, 16);
        if (end == digits || *skip_blanks(end) || errno) return -1;
        *v = neg ? -(long double)u : (long double)u;
        return 0;
    }
    long long q = strtoll(s, &end, 10);
    if (end != s && !*skip_blanks(end) && !errno) { *v = q; return 0; }
    double d;
    if (db_parse_double(s, &d) != 0) return -1;
    *v = d;
    return 0;
}

/* Enum state strings of the field a span belongs to: a menu's choices, or the record's strings. */
typedef struct enum_states {
    int loaded, n;
    const char *const *menu;
    db_meta meta;
} enum_states;

static void load_states(enum_states *es, const db_addr *ctx)
{
    if (es->loaded) return;
    es->loaded = 1;
    if (ctx->field->type == DBF_MENU && ctx->field->menu) {
        es->menu = ctx->field->menu->choices;
        es->n = ctx->field->menu->nchoices;
    } else if (ctx->rec->rtype->get_meta) {
        memset(&es->meta, 0, sizeof es->meta);
        ctx->rec->rtype->get_meta(ctx, &es->meta);
        es->n = es->meta.nstrs;
    }
}

static const char *state_string(enum_states *es, unsigned index)
{
    if ((int)index >= es->n) return NULL;
    const char *s = es->menu ? es->menu[index] : es->meta.strs[index];
    return *s ? s : NULL;
}

static int state_index(enum_states *es, const db_addr *ctx, const char *text)
{
    if (ctx->field->type != DBF_MENU && ctx->rec->rtype->enum_index) return ctx->rec->rtype->enum_index(ctx, text);
    for (int i = 0; i < es->n; i++) {
        const char *s = state_string(es, (unsigned)i);
        if (s && strcmp(s, text) == 0) return i;
    }
    return -1;
}

static int field_precision(const db_addr *ctx)
{
    if (!ctx || !ctx->rec->rtype->get_meta) return -1;
    db_meta m;
    memset(&m, 0, sizeof m);
    m.precision = -1;
    ctx->rec->rtype->get_meta(ctx, &m);
    return m.precision;
}

static int menu_choices(const db_span *span)
{
    if (!span->ctx || span->type != DBF_MENU || !span->ctx->field->menu) return -1;
    return span->ctx->field->menu->nchoices;
}

/* A put into an integer or enum field (dst->ctx names the field) refuses NaN and Inf rather than storing 0 or a
 * clamped extreme: a raw motor target or a menu index must never come from a value the client did not mean.
 * Reads (no ctx) keep converting, so a client can still ask for a NaN reading as a LONG. */
static int refuses_non_finite(const db_span *dst, long double v)
{
    return dst->ctx && dst->type != DBF_FLOAT && dst->type != DBF_DOUBLE && !isfinite(v);
}

/* ---- Numbers to numbers in bulk: the path of every array get and put (a camera frame is a million
 * elements). One loop per (source, destination) pair of the 8 number kinds, over contiguous elements, so that
 * the compiler sees both C types: a same-type copy is one memmove, a widening conversion (USHORT -> LONG,
 * anything -> DOUBLE) is a plain vectorised cast, and the clamp of a narrowing one is branch-free. The rules
 * are store_num's: integers clamped into the destination's range (floating point truncated toward zero, NaN
 * -> 0 when read), floating point cast. A put of NaN/Inf into an integer field is refused before anything is
 * written (refuses_non_finite), so a bulk conversion either fails untouched or completes. 64-bit integers,
 * enums with state strings (menus) and strings take the per-element path of db_convert. */
typedef enum { K_I8, K_U8, K_I16, K_U16, K_I32, K_U32, K_F32, K_F64, K_NONE } number_kind;

static number_kind kind_of(dbf_type t)
{
    switch (t) {
    case DBF_CHAR: return K_I8;
    case DBF_UCHAR: return K_U8;
    case DBF_SHORT: return K_I16;
    case DBF_USHORT: case DBF_ENUM: case DBF_MENU: case DBF_DEVICE: return K_U16;
    case DBF_LONG: return K_I32;
    case DBF_ULONG: return K_U32;
    case DBF_FLOAT: return K_F32;
    case DBF_DOUBLE: return K_F64;
    default: return K_NONE;
    }
}

static int is_float_kind(number_kind k)
{
    return k == K_F32 || k == K_F64;
}

/* NaN would pass both comparisons of the clamp: a floating point source maps it to 0 first (as a read does;
 * a put of NaN into an integer field never gets here). */
static inline double nan_to_zero(double x)
{
    return x != x ? 0 : x;
}
#define NAN_TO_ZERO(x) _Generic((x), double: nan_to_zero((double)(x)), default: (x))

/* n elements of C type ST at s into DT at d (memcpy: element addresses inside a CA message need not be aligned).
 * MT is what the clamp computes in: int64_t for integer sources (exact), double for floating point ones.
 * IS_FP: DT is floating point (a plain cast of the source, NaN and infinities kept). */
#define BULK_LOOP(ST, MT, DT, LO, HI, IS_FP)                                                  \
    for (long i = 0; i < n; i++) {                                                             \
        ST v;                                                                                  \
        memcpy(&v, s + (size_t)i * sizeof(ST), sizeof v);                                     \
        MT x = NAN_TO_ZERO((MT)v);                                                             \
        DT w = (IS_FP) ? (DT)v : x < (MT)(LO) ? (DT)(LO) : x > (MT)(HI) ? (DT)(HI) : (DT)x;   \
        STORE_ORDERED(d + (size_t)i * sizeof(DT), w);                                          \
    }

/* w into p, byte-reversed when `wire` (network order on a little-endian host): the same pass as the conversion. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define STORE_ORDERED(p, w)                                                                    \
    do {                                                                                       \
        if (wire && sizeof(w) == 2) {                                                          \
            uint16_t u_;                                                                       \
            memcpy(&u_, &(w), 2);                                                              \
            u_ = __builtin_bswap16(u_);                                                        \
            memcpy((p), &u_, 2);                                                               \
        } else if (wire && sizeof(w) == 4) {                                                   \
            uint32_t u_;                                                                       \
            memcpy(&u_, &(w), 4);                                                              \
            u_ = __builtin_bswap32(u_);                                                        \
            memcpy((p), &u_, 4);                                                               \
        } else if (wire && sizeof(w) == 8) {                                                   \
            uint64_t u_;                                                                       \
            memcpy(&u_, &(w), 8);                                                              \
            u_ = __builtin_bswap64(u_);                                                        \
            memcpy((p), &u_, 8);                                                               \
        } else {                                                                               \
            memcpy((p), &(w), sizeof(w));                                                      \
        }                                                                                      \
    } while (0)
#else
#define STORE_ORDERED(p, w) memcpy((p), &(w), sizeof(w))
#endif

#define TO_EVERY_KIND(ST, MT)                                                    \
    switch (dk) {                                                                \
    case K_I8: BULK_LOOP(ST, MT, int8_t, INT8_MIN, INT8_MAX, 0) break;           \
    case K_U8: BULK_LOOP(ST, MT, uint8_t, 0, UINT8_MAX, 0) break;                \
    case K_I16: BULK_LOOP(ST, MT, int16_t, INT16_MIN, INT16_MAX, 0) break;       \
    case K_U16: BULK_LOOP(ST, MT, uint16_t, 0, UINT16_MAX, 0) break;             \
    case K_I32: BULK_LOOP(ST, MT, int32_t, INT32_MIN, INT32_MAX, 0) break;       \
    case K_U32: BULK_LOOP(ST, MT, uint32_t, 0, UINT32_MAX, 0) break;             \
    case K_F32: BULK_LOOP(ST, MT, float, 0, 0, 1) break;                         \
    case K_F64: BULK_LOOP(ST, MT, double, 0, 0, 1) break;                        \
    default: break;                                                              \
    }

/* Built for AVX2 as well (chosen at load time): twice the elements per instruction on a camera frame, and
 * byte shuffles of 4- and 8-byte elements need it to vectorise. wire: d in network byte order. */
RELOC_AVX2_CLONES
static void convert_kinds(number_kind dk, char *d, number_kind sk, const char *s, long n, int wire)
{
    switch (sk) {
    case K_I8: TO_EVERY_KIND(int8_t, int64_t) break;
    case K_U8: TO_EVERY_KIND(uint8_t, int64_t) break;
    case K_I16: TO_EVERY_KIND(int16_t, int64_t) break;
    case K_U16: TO_EVERY_KIND(uint16_t, int64_t) break;
    case K_I32: TO_EVERY_KIND(int32_t, int64_t) break;
    case K_U32: TO_EVERY_KIND(uint32_t, int64_t) break;
    case K_F32: TO_EVERY_KIND(float, double) break;
    case K_F64: TO_EVERY_KIND(double, double) break;
    default: break;
    }
}
#undef TO_EVERY_KIND
#undef BULK_LOOP

/* Whether any of n FLOAT/DOUBLE elements at s is NaN or infinite. */
static int has_non_finite(number_kind sk, const char *s, long n)
{
    int found = 0;
    for (long i = 0; i < n; i++) {
        double v;
        if (sk == K_F32) {
            float f;
            memcpy(&f, s + (size_t)i * sizeof f, sizeof f);
            v = f;
        } else {
            memcpy(&v, s + (size_t)i * sizeof v, sizeof v);
        }
        found |= !isfinite(v);
    }
    return found;
}

int db_convert_is_bulk(const db_span *dst, const db_span *src)
{
    number_kind sk = kind_of(src->type), dk = kind_of(dst->type);
    return sk != K_NONE && dk != K_NONE && menu_choices(dst) < 0 &&
           src->elem_size == dbf_value_size(src->type) && dst->elem_size == dbf_value_size(dst->type);
}

static int convert_numbers(const db_span *dst, const db_span *src, long n, int wire)
{
    number_kind sk = kind_of(src->type), dk = kind_of(dst->type);
    if (sk == dk && !wire) {
        memmove(dst->data, src->data, (size_t)n * src->elem_size);
        return DB_OK;
    }
    if (dst->ctx && is_float_kind(sk) && !is_float_kind(dk) && has_non_finite(sk, src->data, n))
        return DB_ERR_CONVERT;                        /* a put of NaN/Inf into an integer field */
    convert_kinds(dk, dst->data, sk, src->data, n, wire);
    return DB_OK;
}

int db_convert_wire(const db_span *dst, const db_span *src, long n)
{
    if (!db_convert_is_bulk(dst, src)) return DB_ERR_BAD_TYPE;
    return convert_numbers(dst, src, n, 1);
}

int db_convert(const db_span *dst, const db_span *src, long n)
{
    if (db_convert_is_bulk(dst, src)) return convert_numbers(dst, src, n, 0);
    enum_states src_states = {0}, dst_states = {0};
    int precision = -2;
    int nchoices = menu_choices(dst);
    for (long i = 0; i < n; i++) {
        const char *s = (const char *)src->data + (size_t)i * src->elem_size;
        char *d = (char *)dst->data + (size_t)i * dst->elem_size;
        if (src->type == DBF_STRING && dst->type == DBF_STRING) {
            size_t len = strnlen(s, src->elem_size);
            if (len >= dst->elem_size) len = dst->elem_size - 1;
            memmove(d, s, len);
            d[len] = 0;
        } else if (dst->type == DBF_STRING) {
            char text[64];
            if (is_enum_type(src->type) && src->ctx) {
                load_states(&src_states, src->ctx);
                unsigned index = (unsigned)load_num(src->type, s);
                const char *state = state_string(&src_states, index);
                if (state) str_copy(text, state, sizeof text);
                else snprintf(text, sizeof text, "%u", index);
            } else if (src->type == DBF_FLOAT || src->type == DBF_DOUBLE) {
                if (precision == -2) precision = field_precision(src->ctx);
                double v = (double)load_num(src->type, s);
                if (precision == -1 && src->type == DBF_FLOAT) snprintf(text, sizeof text, "%.7g", v);
                else db_format_double(text, sizeof text, v, precision);
            } else if (src->type == DBF_UINT64) {
                snprintf(text, sizeof text, "%" PRIu64, (uint64_t)load_num(src->type, s));
            } else {
                snprintf(text, sizeof text, "%" PRId64, (int64_t)load_num(src->type, s));
            }
            str_copy(d, text, dst->elem_size);
        } else if (src->type == DBF_STRING) {
            char text[DB_LINK_SIZE];
            size_t len = strnlen(s, src->elem_size);
            if (len >= sizeof text) return DB_ERR_CONVERT;
            memcpy(text, s, len);
            text[len] = 0;
            long double v;
            int index = -1;
            if (is_enum_type(dst->type) && dst->ctx) {
                load_states(&dst_states, dst->ctx);
                index = state_index(&dst_states, dst->ctx, skip_blanks(text));
            }
            if (index >= 0) v = index;
            else if (parse_number(text, &v) != 0 || refuses_non_finite(dst, v)) return DB_ERR_CONVERT;
            if (is_enum_type(dst->type) && (v < 0 || (nchoices >= 0 && v >= nchoices))) return DB_ERR_CONVERT;
            store_num(dst->type, d, v);
        } else {
            long double v = load_num(src->type, s);
            if (refuses_non_finite(dst, v) || (nchoices >= 0 && (v < 0 || v >= nchoices))) return DB_ERR_CONVERT;
            store_num(dst->type, d, v);
        }
    }
    return DB_OK;
}

/* ---- Where elements live */

static int is_link_type(dbf_type t)
{
    return t == DBF_INLINK || t == DBF_OUTLINK || t == DBF_FWDLINK;
}

int db_addr_for_field(db_record *rec, const db_field_desc *field, int long_string, db_addr *addr)
{
    memset(addr, 0, sizeof *addr);
    addr->rec = rec;
    addr->field = field;
    addr->type = rec->rtype->field_type ? rec->rtype->field_type(rec, field) : field->type;
    addr->max_elements = 1;
    if (long_string) {
        if (field->type != DBF_STRING && !is_link_type(field->type)) return DB_ERR_BAD_TYPE;
        addr->long_string = 1;
        addr->type = DBF_CHAR;
    }
    if (long_string || (field->flags & DBFLD_ARRAY)) {
        db_storage st;
        if (db_addr_storage(addr, &st) == DB_OK) addr->max_elements = st.capacity > 0 ? st.capacity : 1;
    }
    return DB_OK;
}

int db_addr_storage(const db_addr *addr, db_storage *st)
{
    const db_field_desc *f = addr->field;
    memset(st, 0, sizeof *st);
    if (f->type == DBF_NOACCESS) return DB_ERR_BAD_TYPE;
    if (is_link_type(f->type)) {
        db_link *link = db_field_ptr(addr->rec, f);
        st->data = link->text;
        st->capacity = DB_LINK_SIZE;
    } else if (f == db_rtyp_field) {
        st->data = (void *)addr->rec->rtype->name;
        st->capacity = (long)strlen(addr->rec->rtype->name) + 1;
    } else if (f->flags & DBFLD_ARRAY) {
        st->data = addr->rec->rtype->get_array(addr, &st->nelem, &st->capacity);
        if (f->type == DBF_STRING) {     /* a string whose buffer the record allocates (lsi/lso) */
            st->type = DBF_STRING;
            st->elem_size = (size_t)st->capacity;
            st->nelem = st->data ? 1 : 0;
            if (!addr->long_string) { st->capacity = 1; return DB_OK; }
        } else {
            st->type = addr->type;
            st->elem_size = dbf_value_size(addr->type);
            return DB_OK;
        }
    } else {
        st->data = db_field_ptr(addr->rec, f);
        st->capacity = (long)f->size;
    }
    /* Strings and links: one string element, or a CHAR array when reached as "FIELD$". */
    if (addr->long_string) {
        st->type = DBF_CHAR;
        st->elem_size = 1;
        st->nelem = st->data ? (long)strnlen(st->data, (size_t)st->capacity) + 1 : 0;
        if (st->nelem > st->capacity) st->nelem = st->capacity;
        return DB_OK;
    }
    if (f->type == DBF_STRING || is_link_type(f->type)) {
        st->type = DBF_STRING;
        st->elem_size = (size_t)st->capacity;
        st->nelem = st->capacity = 1;
        return DB_OK;
    }
    st->type = f->type;
    st->elem_size = dbf_value_size(f->type);
    st->nelem = st->capacity = 1;
    return DB_OK;
}

/* ---- Text -> field, for the loader, autosave and dbpf */

static void describe_choices(const db_field_desc *f, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; f->menu && i < f->menu->nchoices && used + 4 < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s\"%s\"", i ? ", " : "", f->menu->choices[i]);
}

static int put_array_text(const db_addr *addr, const char *text, char *err, size_t errlen)
{
    db_storage st;
    db_addr_storage(addr, &st);
    if (!st.data || st.capacity <= 0) {
        snprintf(err, errlen, "%s.%s: array storage is not allocated yet (set it after iocInit)", addr->rec->name,
                 addr->field->name);
        return DB_ERR_STATE;
    }
    if (st.type == DBF_CHAR || st.type == DBF_UCHAR) {   /* a CHAR array from text holds the text */
        size_t len = strlen(text) + 1;
        if ((long)len > st.capacity) len = (size_t)st.capacity;
        memcpy(st.data, text, len);
        ((char *)st.data)[len - 1] = 0;
        addr->rec->rtype->put_array(addr, (long)len);
        return DB_OK;
    }
    char *copy = xstrdup(text);
    long n = 0;
    int status = DB_OK;
    for (char *save, *tok = strtok_r(copy, "[], \t\n", &save); tok; tok = strtok_r(NULL, "[], \t\n", &save)) {
        if (n >= st.capacity) break;
        db_span src = {DBF_STRING, tok, strlen(tok) + 1, NULL};
        db_span dst = {st.type, (char *)st.data + (size_t)n * st.elem_size, st.elem_size, addr};
        if (db_convert(&dst, &src, 1) != DB_OK) {
            snprintf(err, errlen, "%s.%s: element %ld '%s' is not a number", addr->rec->name, addr->field->name, n,
                     tok);
            status = DB_ERR_CONVERT;
            break;
        }
        n++;
    }
    free(copy);
    if (status == DB_OK) addr->rec->rtype->put_array(addr, n);
    return status;
}

/* Before iocInit (the .db, autosave): text into the field's storage, without processing. */
static int put_text_at_load(const db_addr *addr, const char *text, char *err, size_t errlen);

int db_put_text_locked(const db_addr *addr, const char *text, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    const db_field_desc *f = addr->field;
    db_record *rec = addr->rec;
    if (is_link_type(f->type)) {
        db_link parsed;
        if (db_link_parse(&parsed, text, err, errlen) != DB_OK) return DB_ERR_SYNTAX;
        if ((db_is_running() || db_is_initializing()) && db_link_resolve(rec, f, &parsed, err, errlen) != DB_OK) {
            db_link_release(&parsed);
            return DB_ERR_NOT_FOUND;
        }
        db_link *link = db_field_ptr(rec, f);
        db_link_release(link);
        *link = parsed;
        return DB_OK;
    }
    if (db_is_running() && !(f->flags & DBFLD_ARRAY)) {
        db_span src = {DBF_STRING, (void *)text, strlen(text) + 1, NULL};
        int status = db_put_span(addr, &src, 1);
        if (status != DB_OK) snprintf(err, errlen, "%s.%s: cannot put '%s': %s", rec->name, f->name, text,
                                      db_strerror(status));
        return status;
    }
    int status = put_text_at_load(addr, text, err, errlen);
    if (status == DB_OK && strcmp(f->name, "VAL") == 0) {
        /* A VAL given in the .db (or restored) is defined, as EPICS dbPutString makes it: the record starts
         * with UDF cleared and without the UDF severity of a record never set. */
        rec->udf = 0;
        if (rec->stat == STAT_UDF) rec->sevr = NO_ALARM;
    }
    return status;
}

static int put_text_at_load(const db_addr *addr, const char *text, char *err, size_t errlen)
{
    const db_field_desc *f = addr->field;
    db_record *rec = addr->rec;
    if ((f->flags & DBFLD_ARRAY) && f->type != DBF_STRING) return put_array_text(addr, text, err, errlen);
    db_storage st;
    if (db_addr_storage(addr, &st) != DB_OK || !st.data) {
        snprintf(err, errlen, "field %s.%s cannot be set from text", rec->name, f->name);
        return DB_ERR_BAD_TYPE;
    }
    if (st.type == DBF_STRING || addr->long_string) {
        size_t cap = addr->long_string ? (size_t)st.capacity : st.elem_size;
        if (strlen(text) >= cap) {
            snprintf(err, errlen, "%s.%s: '%s' is longer than the field's %zu characters", rec->name, f->name, text,
                     cap - 1);
            return DB_ERR_CONVERT;
        }
        memcpy(st.data, text, strlen(text) + 1);
        return DB_OK;
    }
    db_span src = {DBF_STRING, (void *)text, strlen(text) + 1, NULL};
    db_span dst = {st.type, st.data, st.elem_size, addr};
    if (db_convert(&dst, &src, 1) != DB_OK) {
        if (f->type == DBF_MENU) {
            char choices[512];
            describe_choices(f, choices, sizeof choices);
            snprintf(err, errlen, "%s.%s: '%s' is not one of %s", rec->name, f->name, text, choices);
        } else {
            snprintf(err, errlen, "%s.%s: cannot convert '%s' to a number", rec->name, f->name, text);
        }
        return DB_ERR_CONVERT;
    }
    return DB_OK;
}
