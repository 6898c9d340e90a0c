/* ndarray.c -- the structured PVs' Normative Types: NTNDArray (member order of normativeTypesCPP with the
 * descriptor, alarm, timeStamp and display options areaDetector's NDPluginPva enables) and NTTable of double
 * columns. Writes their type descriptors once at creation and encodes each posted value once (pva.h); the
 * encoding runs on the posting thread, outside every lock. */
#include "core/pva/pva.h"
#include "core/pva/pva_internal.h"

#include <math.h>
#include <string.h>

#include "core/base/base.h"

#define USHORT_VALUE_INDEX 6    /* ushortValue in the value union */

static void member(pva_buf *b, const char *name, uint8_t code)
{
    pva_put_string(b, name);
    pva_put8(b, code);
}

static void struct_head(pva_buf *b, const char *name, uint8_t code, const char *id, size_t n)
{
    if (name)
        pva_put_string(b, name);
    pva_put8(b, code);
    if (code == (PVA_STRUCT | PVA_ARRAY))
        pva_put8(b, PVA_STRUCT);
    pva_put_string(b, id);
    pva_put_size(b, n);
}

static void time_type(pva_buf *b, const char *name)
{
    struct_head(b, name, PVA_STRUCT, "time_t", 3);
    member(b, "secondsPastEpoch", PVA_INT64);
    member(b, "nanoseconds", PVA_INT32);
    member(b, "userTag", PVA_INT32);
}

static void alarm_type(pva_buf *b)
{
    struct_head(b, "alarm", PVA_STRUCT, "alarm_t", 3);
    member(b, "severity", PVA_INT32);
    member(b, "status", PVA_INT32);
    member(b, "message", PVA_STRING);
}

static void put_time(pva_buf *b, struct timespec t)
{
    pva_put64(b, (uint64_t)t.tv_sec);
    pva_put32(b, (uint32_t)t.tv_nsec);
    pva_put32(b, 0);
}

static void put_no_alarm(pva_buf *b)
{
    pva_put32(b, 0);
    pva_put32(b, 0);
    pva_put_string(b, "");
}

/* ---------------------------------------------------------------------------------------------------
 * NTNDArray
 */
pva_source *pva_ndarray_source_add(const char *name, char *err, size_t errlen)
{
    pva_source *s = pva_source_new(name, err, errlen);
    if (!s)
        return NULL;
    static const char *const unions[][2] = {
        { "booleanValue", "\x08" }, { "byteValue", "\x28" }, { "shortValue", "\x29" }, { "intValue", "\x2a" },
        { "longValue", "\x2b" }, { "ubyteValue", "\x2c" }, { "ushortValue", "\x2d" }, { "uintValue", "\x2e" },
        { "ulongValue", "\x2f" }, { "floatValue", "\x4a" }, { "doubleValue", "\x4b" }
    };
    pva_buf *b = &s->type;
    struct_head(b, NULL, PVA_STRUCT, "epics:nt/NTNDArray:1.0", 11);
    struct_head(b, "value", PVA_UNION, "", 11);
    for (size_t i = 0; i < sizeof unions / sizeof *unions; i++)
        member(b, unions[i][0], (uint8_t)unions[i][1][0]);
    struct_head(b, "codec", PVA_STRUCT, "codec_t", 2);
    member(b, "name", PVA_STRING);
    member(b, "parameters", PVA_ANY);
    member(b, "compressedSize", PVA_INT64);
    member(b, "uncompressedSize", PVA_INT64);
    struct_head(b, "dimension", PVA_STRUCT | PVA_ARRAY, "dimension_t", 5);
    member(b, "size", PVA_INT32);
    member(b, "offset", PVA_INT32);
    member(b, "fullSize", PVA_INT32);
    member(b, "binning", PVA_INT32);
    member(b, "reverse", PVA_BOOL);
    member(b, "uniqueId", PVA_INT32);
    time_type(b, "dataTimeStamp");
    struct_head(b, "attribute", PVA_STRUCT | PVA_ARRAY, "epics:nt/NTAttribute:1.0", 5);
    member(b, "name", PVA_STRING);
    member(b, "value", PVA_ANY);
    member(b, "descriptor", PVA_STRING);
    member(b, "sourceType", PVA_INT32);
    member(b, "source", PVA_STRING);
    member(b, "descriptor", PVA_STRING);
    alarm_type(b);
    time_type(b, "timeStamp");
    struct_head(b, "display", PVA_STRUCT, "display_t", 5);
    member(b, "limitLow", PVA_DOUBLE);
    member(b, "limitHigh", PVA_DOUBLE);
    member(b, "description", PVA_STRING);
    member(b, "format", PVA_STRING);
    member(b, "units", PVA_STRING);
    pva_source_type_done(s);
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
    put_no_alarm(&b);
    put_time(&b, a->stamp);
    pva_put_double(&b, 0);                  /* display */
    pva_put_double(&b, 0);
    pva_put_string(&b, "");
    pva_put_string(&b, "");
    pva_put_string(&b, "");
    pva_source_publish(s, &b);
    pva_buf_free(&b);
}

/* ---------------------------------------------------------------------------------------------------
 * NTTable
 */
pva_source *pva_table_source_add(const char *name, int ncols, const char *const *labels, char *err, size_t errlen)
{
    pva_source *s = pva_source_new(name, err, errlen);
    if (!s)
        return NULL;
    s->ncols = ncols;
    pva_buf *b = &s->type;
    struct_head(b, NULL, PVA_STRUCT, "epics:nt/NTTable:1.0", 5);
    member(b, "labels", PVA_STRING | PVA_ARRAY);
    struct_head(b, "value", PVA_STRUCT, "", (size_t)ncols);
    for (int i = 0; i < ncols; i++)
        member(b, labels[i], PVA_DOUBLE | PVA_ARRAY);
    member(b, "descriptor", PVA_STRING);
    alarm_type(b);
    time_type(b, "timeStamp");
    pva_source_type_done(s);
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
    put_no_alarm(&b);
    put_time(&b, stamp);
    pva_source_publish(s, &b);
    pva_buf_free(&b);
}
