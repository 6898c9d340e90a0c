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

/* A field of a structured PV: roles serve only the records' trees (nt.c). */
static void leaf(pva_builder *b, const char *name, uint8_t code)
{
    pva_build_add(b, name, NULL, code, ROLE_STRUCT);
}

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
    static const struct { const char *name; uint8_t code; } unions[] = {
        { "booleanValue", PVA_BOOL }, { "byteValue", PVA_INT8 }, { "shortValue", PVA_INT16 },
        { "intValue", PVA_INT32 }, { "longValue", PVA_INT64 }, { "ubyteValue", PVA_UINT8 },
        { "ushortValue", PVA_UINT16 }, { "uintValue", PVA_UINT32 }, { "ulongValue", PVA_UINT64 },
        { "floatValue", PVA_FLOAT }, { "doubleValue", PVA_DOUBLE }
    };
    pva_nt tree = { 0 };
    pva_builder b = { .nt = &tree };
    pva_build_open(&b, NULL, "epics:nt/NTNDArray:1.0", PVA_STRUCT);
    pva_build_open(&b, "value", NULL, PVA_UNION);
    for (size_t i = 0; i < sizeof unions / sizeof *unions; i++)
        leaf(&b, unions[i].name, unions[i].code | PVA_ARRAY);
    pva_build_close(&b);
    pva_build_open(&b, "codec", "codec_t", PVA_STRUCT);
    leaf(&b, "name", PVA_STRING);
    leaf(&b, "parameters", PVA_ANY);
    pva_build_close(&b);
    leaf(&b, "compressedSize", PVA_INT64);
    leaf(&b, "uncompressedSize", PVA_INT64);
    pva_build_open(&b, "dimension", "dimension_t", PVA_STRUCT | PVA_ARRAY);
    leaf(&b, "size", PVA_INT32);
    leaf(&b, "offset", PVA_INT32);
    leaf(&b, "fullSize", PVA_INT32);
    leaf(&b, "binning", PVA_INT32);
    leaf(&b, "reverse", PVA_BOOL);
    pva_build_close(&b);
    leaf(&b, "uniqueId", PVA_INT32);
    pva_build_time(&b, "dataTimeStamp");
    pva_build_open(&b, "attribute", "epics:nt/NTAttribute:1.0", PVA_STRUCT | PVA_ARRAY);
    leaf(&b, "name", PVA_STRING);
    leaf(&b, "value", PVA_ANY);
    leaf(&b, "descriptor", PVA_STRING);
    leaf(&b, "sourceType", PVA_INT32);
    leaf(&b, "source", PVA_STRING);
    pva_build_close(&b);
    leaf(&b, "descriptor", PVA_STRING);
    pva_build_alarm(&b);
    pva_build_time(&b, "timeStamp");
    pva_build_open(&b, "display", "display_t", PVA_STRUCT);
    leaf(&b, "limitLow", PVA_DOUBLE);
    leaf(&b, "limitHigh", PVA_DOUBLE);
    leaf(&b, "description", PVA_STRING);
    leaf(&b, "format", PVA_STRING);
    leaf(&b, "units", PVA_STRING);
    pva_build_close(&b);
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
    if (ncols < 1 || ncols > PVA_MAX_NODES - 16) {     /* the tree's other fields take 12 nodes */
        error_set(err, errlen, "'%s': %d columns (1 to %d)", name, ncols, PVA_MAX_NODES - 16);
        return NULL;
    }
    pva_source *s = pva_source_new(name, err, errlen);
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
    put_no_alarm(&b);
    put_time(&b, stamp);
    pva_source_publish(s, &b);
    pva_buf_free(&b);
}
