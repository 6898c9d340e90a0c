/* ndarray.c -- the structured PVs' types: NTNDArray (member order of normativeTypesCPP with the descriptor, alarm,
 * timeStamp and display options areaDetector's NDPluginPva enables), NTTable of double columns, and structures of
 * named scalars with alarm and timeStamp. Writes their type descriptors once at creation and encodes each posted
 * value once (pva.h); the encoding runs on the posting thread, outside every lock. */
#include "core/pva/pva.h"
#include "core/pva/pva_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

#define USHORT_VALUE_INDEX 6    /* ushortValue in the value union */

/* A field of a structured PV: roles serve only the records' trees (nt.c). */
static void leaf(pva_builder *b, const char *name, uint8_t code)
{
    pva_build_add(b, name, NULL, code, ROLE_STRUCT);
}

typedef struct member {
    const char *name;
    uint8_t code;
} member;

/* A structure, union or structure array of scalar members. */
static void compound(pva_builder *b, const char *name, const char *id, uint8_t code, const member *m, size_t n)
{
    pva_build_open(b, name, id, code);
    for (size_t i = 0; i < n; i++)
        leaf(b, m[i].name, m[i].code);
    pva_build_close(b);
}

#define COMPOUND(b, name, id, code, members) compound(b, name, id, code, members, sizeof members / sizeof *members)

/* The descriptor of the tree into the source's type. */
static void type_done(pva_source *s, const pva_nt *tree)
{
    pva_nt_put_type(&s->type, tree);
    pva_source_type_done(s);
}

static void put_time(pva_buf *b, struct timespec t)
{
    pva_put64(b, (uint64_t)t.tv_sec);
    pva_put32(b, (uint32_t)t.tv_nsec);
    pva_put32(b, 0);
}

/* alarm_t: severity, status (RECORD when there is an alarm, as a record's own alarm), message. */
static void put_alarm(pva_buf *b, int severity, const char *message)
{
    pva_put32(b, (uint32_t)severity);
    pva_put32(b, severity ? 3 : 0);
    pva_put_string(b, message ? message : "");
}

/* A source whose type holds n members (columns of a table, scalars of a structure) besides other_nodes fixed
 * ones; refused, saying what, when there are none or the type tree cannot hold them all. */
static pva_source *source_of_members(const char *name, int n, int other_nodes, const char *what, char *err,
                                     size_t errlen)
{
    if (n < 1 || n > PVA_MAX_NODES - other_nodes) {
        error_set(err, errlen, "'%s': %d %s (1 to %d)", name, n, what, PVA_MAX_NODES - other_nodes);
        return NULL;
    }
    return pva_source_new(name, err, errlen);
}

/* ---------------------------------------------------------------------------------------------------
 * NTNDArray
 */
pva_source *pva_ndarray_source_add(const char *name, char *err, size_t errlen)
{
    pva_source *s = pva_source_new(name, err, errlen);
    if (!s)
        return NULL;
    static const member values[] = {       /* selector 0-10 in this order */
        { "booleanValue", PVA_BOOL | PVA_ARRAY }, { "byteValue", PVA_INT8 | PVA_ARRAY },
        { "shortValue", PVA_INT16 | PVA_ARRAY }, { "intValue", PVA_INT32 | PVA_ARRAY },
        { "longValue", PVA_INT64 | PVA_ARRAY }, { "ubyteValue", PVA_UINT8 | PVA_ARRAY },
        { "ushortValue", PVA_UINT16 | PVA_ARRAY }, { "uintValue", PVA_UINT32 | PVA_ARRAY },
        { "ulongValue", PVA_UINT64 | PVA_ARRAY }, { "floatValue", PVA_FLOAT | PVA_ARRAY },
        { "doubleValue", PVA_DOUBLE | PVA_ARRAY }
    };
    static const member codec[] = { { "name", PVA_STRING }, { "parameters", PVA_ANY } };
    static const member dimension[] = { { "size", PVA_INT32 }, { "offset", PVA_INT32 }, { "fullSize", PVA_INT32 },
                                        { "binning", PVA_INT32 }, { "reverse", PVA_BOOL } };
    static const member attribute[] = { { "name", PVA_STRING }, { "value", PVA_ANY }, { "descriptor", PVA_STRING },
                                        { "sourceType", PVA_INT32 }, { "source", PVA_STRING } };
    static const member display[] = { { "limitLow", PVA_DOUBLE }, { "limitHigh", PVA_DOUBLE },
                                      { "description", PVA_STRING }, { "format", PVA_STRING },
                                      { "units", PVA_STRING } };
    pva_nt tree = { 0 };
    pva_builder b = { .nt = &tree };
    pva_build_open(&b, NULL, "epics:nt/NTNDArray:1.0", PVA_STRUCT);
    COMPOUND(&b, "value", NULL, PVA_UNION, values);
    COMPOUND(&b, "codec", "codec_t", PVA_STRUCT, codec);
    leaf(&b, "compressedSize", PVA_INT64);
    leaf(&b, "uncompressedSize", PVA_INT64);
    COMPOUND(&b, "dimension", "dimension_t", PVA_STRUCT | PVA_ARRAY, dimension);
    leaf(&b, "uniqueId", PVA_INT32);
    pva_build_time(&b, "dataTimeStamp");
    COMPOUND(&b, "attribute", "epics:nt/NTAttribute:1.0", PVA_STRUCT | PVA_ARRAY, attribute);
    leaf(&b, "descriptor", PVA_STRING);
    pva_build_alarm(&b);
    pva_build_time(&b, "timeStamp");
    COMPOUND(&b, "display", "display_t", PVA_STRUCT, display);
    pva_build_close(&b);
    type_done(s, &tree);
    /* Until the first frame, as NDPluginPva: an empty array (a get or a monitor always has a value). */
    pva_ndarray_post(s, &(pva_ndarray){ 0 });
    return s;
}

void pva_ndarray_post(pva_source *s, const pva_ndarray *a)
{
    pva_buf b = { 0 };
    size_t n = (size_t)a->width * (size_t)a->height;
    pva_buf_reserve(&b, n * 2 + 1024);
    pva_buf_reset(&b);
    pva_put_size(&b, USHORT_VALUE_INDEX);
    pva_put_size(&b, n);
    uint8_t *px = pva_buf_reserve(&b, n * 2);
    for (size_t i = 0; i < n; i++) {       /* little endian on the wire, whatever the host */
        px[2 * i] = (uint8_t)a->data[i];
        px[2 * i + 1] = (uint8_t)(a->data[i] >> 8);
    }
    pva_put_string(&b, "");                 /* codec: not compressed */
    pva_put8(&b, PVA_NULL_TYPE);            /* codec parameters: none */
    pva_put64(&b, (uint64_t)(n * 2));
    pva_put64(&b, (uint64_t)(n * 2));
    pva_put_size(&b, 2);
    int sizes[2] = { a->width, a->height };
    for (int d = 0; d < 2; d++) {
        pva_put8(&b, 1);                    /* element present */
        pva_put32(&b, (uint32_t)sizes[d]);
        pva_put32(&b, 0);
        pva_put32(&b, (uint32_t)sizes[d]);
        pva_put32(&b, 1);
        pva_put8(&b, 0);
    }
    pva_put32(&b, (uint32_t)a->unique_id);
    put_time(&b, a->stamp);
    pva_put_size(&b, (size_t)a->nattr);
    for (int i = 0; i < a->nattr; i++) {
        pva_put8(&b, 1);
        pva_put_string(&b, a->attr_names[i]);
        pva_put8(&b, PVA_DOUBLE);           /* any: a double */
        pva_put_double(&b, a->attr_values[i]);
        pva_put_string(&b, "");
        pva_put32(&b, 0);                   /* sourceType: driver */
        pva_put_string(&b, "");
    }
    pva_put_string(&b, "");                 /* descriptor */
    put_alarm(&b, 0, NULL);
    put_time(&b, a->stamp);
    pva_put_double(&b, 0);                  /* display */
    pva_put_double(&b, 0);
    pva_put_string(&b, "");
    pva_put_string(&b, "");
    pva_put_string(&b, "");
    pva_source_publish(s, &b);
}

/* ---------------------------------------------------------------------------------------------------
 * NTTable
 */
pva_source *pva_table_source_add(const char *name, int ncols, const char *const *labels, char *err, size_t errlen)
{
    /* Besides the columns the tree holds 12 nodes: itself, labels, value, descriptor, alarm (4), timeStamp (4). */
    pva_source *s = source_of_members(name, ncols, 12, "columns", err, errlen);
    if (!s)
        return NULL;
    s->ncols = ncols;
    pva_nt tree = { 0 };
    pva_builder b = { .nt = &tree };
    pva_build_open(&b, NULL, "epics:nt/NTTable:1.0", PVA_STRUCT);
    leaf(&b, "labels", PVA_STRING | PVA_ARRAY);
    pva_build_open(&b, "value", NULL, PVA_STRUCT);
    for (int i = 0; i < ncols; i++)
        leaf(&b, labels[i], PVA_DOUBLE | PVA_ARRAY);
    pva_build_close(&b);
    leaf(&b, "descriptor", PVA_STRING);
    pva_build_alarm(&b);
    pva_build_time(&b, "timeStamp");
    pva_build_close(&b);
    type_done(s, &tree);
    /* The labels never change: kept after the type, copied into every value. */
    s->labels = xcalloc((size_t)ncols, sizeof *s->labels);
    for (int i = 0; i < ncols; i++)
        s->labels[i] = xstrdup(labels[i]);
    pva_table_post(s, NULL, 0, (struct timespec){ 0 });   /* empty until the first result */
    return s;
}

void pva_table_post(pva_source *s, const double *const *columns, long nrows, struct timespec stamp)
{
    pva_buf b = { 0 };
    pva_put_size(&b, (size_t)s->ncols);
    for (int i = 0; i < s->ncols; i++)
        pva_put_string(&b, s->labels[i]);
    for (int i = 0; i < s->ncols; i++) {
        pva_put_size(&b, (size_t)nrows);
        for (long r = 0; r < nrows; r++)
            pva_put_double(&b, columns[i] ? columns[i][r] : NAN);     /* a column the source lacks */
    }
    pva_put_string(&b, "");
    put_alarm(&b, 0, NULL);
    put_time(&b, stamp);
    pva_source_publish(s, &b);
}

/* ---------------------------------------------------------------------------------------------------
 * Structure of named scalars
 */
pva_source *pva_struct_source_add(const char *name, const char *type_id, int nmembers, const pva_member_def *members,
                                  char *err, size_t errlen)
{
    /* Besides the members the tree holds 9 nodes: itself, alarm (4), timeStamp (4). */
    pva_source *s = source_of_members(name, nmembers, 9, "members", err, errlen);
    if (!s)
        return NULL;
    static const uint8_t codes[] = { [PVA_MEMBER_DOUBLE] = PVA_DOUBLE, [PVA_MEMBER_INT] = PVA_INT32,
                                     [PVA_MEMBER_BOOL] = PVA_BOOL };
    s->nmembers = nmembers;
    s->member_codes = xcalloc((size_t)nmembers, sizeof *s->member_codes);
    pva_nt tree = { 0 };
    pva_builder b = { .nt = &tree };
    pva_build_open(&b, NULL, type_id, PVA_STRUCT);
    for (int i = 0; i < nmembers; i++) {
        s->member_codes[i] = codes[members[i].kind];
        leaf(&b, members[i].name, s->member_codes[i]);
    }
    pva_build_alarm(&b);
    pva_build_time(&b, "timeStamp");
    pva_build_close(&b);
    type_done(s, &tree);
    /* Until the first result: every member NaN or 0, in INVALID alarm ("no result yet"). */
    double *none = xcalloc((size_t)nmembers, sizeof *none);
    for (int i = 0; i < nmembers; i++)
        none[i] = members[i].kind == PVA_MEMBER_DOUBLE ? NAN : 0;
    pva_struct_post(s, none, 3, "no result yet", (struct timespec){ 0 });
    free(none);
    return s;
}

void pva_struct_post(pva_source *s, const double *values, int severity, const char *message, struct timespec stamp)
{
    pva_buf b = { 0 };
    for (int i = 0; i < s->nmembers; i++) {
        double v = values[i];
        switch (s->member_codes[i]) {
        case PVA_INT32:
            pva_put32(&b, (uint32_t)(isfinite(v) && fabs(v) <= INT32_MAX ? (int32_t)lround(v) : 0));
            break;
        case PVA_BOOL:
            pva_put8(&b, v != 0);
            break;
        default:
            pva_put_double(&b, v);
            break;
        }
    }
    put_alarm(&b, severity < 0 ? 0 : severity > 3 ? 3 : severity, message);
    put_time(&b, stamp);
    pva_source_publish(s, &b);
}
