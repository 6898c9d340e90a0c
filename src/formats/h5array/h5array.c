/* h5array.c -- reading numeric HDF5 datasets as double or float arrays and writing result datasets (see h5array.h). */
#include "formats/h5array/h5array.h"
#include "core/base/base.h"

#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct h5out {
    hid_t file;
    int failed;
    char error[256];
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void h5array_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

int h5array_split(const char *location, const char *default_dset, char *file, size_t filelen, char *dset,
                  size_t dsetlen)
{
    const char *sep = strstr(location, ":/");
    if (!sep) {
        if (str_copy(file, location, filelen) >= filelen) return -1;
        return str_copy(dset, default_dset, dsetlen) >= dsetlen ? -1 : 0;
    }
    size_t n = (size_t)(sep - location);
    if (n == 0 || n >= filelen) return -1;
    memcpy(file, location, n);
    file[n] = '\0';
    return str_copy(dset, sep + 1, dsetlen) >= dsetlen ? -1 : 0;
}

size_t h5array_count(const h5array *a)
{
    size_t n = 1;
    for (int i = 0; i < a->rank; i++) n *= a->dims[i];
    return n;
}

void h5array_free(h5array *a)
{
    free(a->data);
    a->data = NULL;
    a->rank = 0;
}

/* Counts the samples HDF5 could not convert because they lie outside the memory type's range; the read is
 * aborted at the first, so a float read never turns 1e300 into an infinity without saying so. */
static H5T_conv_ret_t refuse_out_of_range(H5T_conv_except_t kind, hid_t src, hid_t dst, void *src_buf, void *dst_buf,
                                          void *user)
{
    if (kind != H5T_CONV_EXCEPT_RANGE_HI && kind != H5T_CONV_EXCEPT_RANGE_LOW) return H5T_CONV_UNHANDLED;
    (*(int *)user)++;
    return H5T_CONV_ABORT;
}

/* Reads a whole numeric dataset as mem_type (samples of elem_size bytes) into *data (malloc'd). */
static int read_dataset(const char *file, const char *dset, hid_t mem_type, size_t elem_size, h5array *shape,
                        void **data, char *err, size_t errlen)
{
    memset(shape, 0, sizeof *shape);
    *data = NULL;
    h5array_quiet();
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        set_err(err, errlen, "cannot open HDF5 file '%s'", file);
        return -1;
    }
    int rc = -1, out_of_range = 0;
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    hid_t space = -1, type = -1, xfer = -1;
    if (d < 0) {
        set_err(err, errlen, "%s: no dataset '%s'", file, dset);
        goto done;
    }
    type = H5Dget_type(d);
    H5T_class_t cls = H5Tget_class(type);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        set_err(err, errlen, "%s:%s is not a numeric dataset", file, dset);
        goto done;
    }
    space = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0 || rank > H5ARRAY_MAX_RANK) {
        set_err(err, errlen, "%s:%s has unsupported rank %d", file, dset, rank);
        goto done;
    }
    hsize_t dims[H5ARRAY_MAX_RANK];
    H5Sget_simple_extent_dims(space, dims, NULL);
    shape->rank = rank;
    for (int i = 0; i < rank; i++) shape->dims[i] = (size_t)dims[i];
    size_t n = h5array_count(shape);
    /* A contiguous dataset of a truncated or corrupt file may run past its end: HDF5 fills what is missing of a
     * small one with zeros instead of failing, so it is refused here. */
    haddr_t at = H5Dget_offset(d);
    hsize_t file_size;
    if (at != HADDR_UNDEF && H5Fget_filesize(f, &file_size) >= 0 &&
        (at > file_size || H5Dget_storage_size(d) > file_size - at)) {
        set_err(err, errlen, "%s:%s runs past the end of the file (%llu bytes): truncated or corrupt", file, dset,
                (unsigned long long)file_size);
        shape->rank = 0;
        goto done;
    }
    *data = xmalloc((n ? n : 1) * elem_size);
    xfer = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_type_conv_cb(xfer, refuse_out_of_range, &out_of_range);
    if (n && H5Dread(d, mem_type, H5S_ALL, H5S_ALL, xfer, *data) < 0) {
        if (out_of_range)
            set_err(err, errlen, "%s:%s holds values beyond the %s range", file, dset,
                    elem_size == sizeof(float) ? "float32" : "float64");
        else
            set_err(err, errlen, "%s:%s: read failed", file, dset);
        free(*data);
        *data = NULL;
        shape->rank = 0;
        goto done;
    }
    rc = 0;
done:
    if (xfer >= 0) H5Pclose(xfer);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    return rc;
}

int h5array_read(const char *file, const char *dset, h5array *out, char *err, size_t errlen)
{
    void *data;
    int rc = read_dataset(file, dset, H5T_NATIVE_DOUBLE, sizeof(double), out, &data, err, errlen);
    out->data = data;
    return rc;
}

float *h5array_read_float(const char *file, const char *dset, h5array *shape, char *err, size_t errlen)
{
    void *data;
    return read_dataset(file, dset, H5T_NATIVE_FLOAT, sizeof(float), shape, &data, err, errlen) == 0 ? data : NULL;
}

int h5array_read_attr_string(const char *file, const char *object, const char *name, char *out, size_t outlen)
{
    h5array_quiet();
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    int rc = -1;
    if (H5Aexists_by_name(f, object, name, H5P_DEFAULT) > 0) {
        hid_t a = H5Aopen_by_name(f, object, name, H5P_DEFAULT, H5P_DEFAULT);
        hid_t t = H5Aget_type(a);
        if (H5Tget_class(t) == H5T_STRING) {
            hid_t mem = H5Tcopy(H5T_C_S1);
            H5Tset_cset(mem, H5Tget_cset(t));
            if (H5Tis_variable_str(t) > 0) {
                char *s = NULL;
                H5Tset_size(mem, H5T_VARIABLE);
                if (H5Aread(a, mem, &s) >= 0 && s) {
                    str_copy(out, s, outlen);
                    H5free_memory(s);
                    rc = 0;
                }
            } else {
                size_t sz = H5Tget_size(t);
                char *buf = xcalloc(sz + 1, 1);
                H5Tset_size(mem, sz + 1);
                if (H5Aread(a, mem, buf) >= 0) {
                    str_copy(out, buf, outlen);
                    rc = 0;
                }
                free(buf);
            }
            H5Tclose(mem);
        } else {
            double v;
            if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) {
                snprintf(out, outlen, "%.17g", v);
                rc = 0;
            }
        }
        H5Tclose(t);
        H5Aclose(a);
    }
    H5Fclose(f);
    return rc;
}

static int fail(h5out *out, const char *what, const char *name)
{
    if (!out->failed) snprintf(out->error, sizeof out->error, "%s '%s' failed", what, name);
    out->failed = 1;
    return -1;
}

static h5out *output_of(hid_t file)
{
    h5out *out = xcalloc(1, sizeof *out);
    out->file = file;
    return out;
}

h5out *h5out_create(const char *file, char *err, size_t errlen)
{
    h5array_quiet();
    hid_t f = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        set_err(err, errlen, "cannot create HDF5 file '%s'", file);
        return NULL;
    }
    return output_of(f);
}

h5out *h5out_add(const char *file, char *err, size_t errlen)
{
    if (access(file, F_OK) != 0) return h5out_create(file, err, errlen);
    h5array_quiet();
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) {
        set_err(err, errlen, "%s exists and is not a writable HDF5 file", file);
        return NULL;
    }
    return output_of(f);
}

int h5out_remove(h5out *out, const char *object)
{
    if (H5Lexists(out->file, object, H5P_DEFAULT) <= 0) return 0;
    return H5Ldelete(out->file, object, H5P_DEFAULT) < 0 ? fail(out, "removing", object) : 0;
}

static int write_dataset(h5out *out, const char *dset, hid_t file_type, hid_t mem_type, const void *data, int rank,
                         const size_t *dims)
{
    hsize_t hd[H5ARRAY_MAX_RANK];
    if (rank < 1 || rank > H5ARRAY_MAX_RANK) return fail(out, "writing dataset", dset);
    hsize_t count = 1;
    for (int i = 0; i < rank; i++) count *= hd[i] = dims[i];
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = H5Screate_simple(rank, hd, NULL);
    hid_t d = H5Dcreate2(out->file, dset, file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (d >= 0 && (count == 0 || H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0)) ? 0 : -1;
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
    H5Pclose(lcpl);
    return rc == 0 ? 0 : fail(out, "writing dataset", dset);
}

int h5out_write_float(h5out *out, const char *dset, const float *data, int rank, const size_t *dims)
{
    return write_dataset(out, dset, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, rank, dims);
}

int h5out_write_double(h5out *out, const char *dset, const double *data, int rank, const size_t *dims)
{
    return write_dataset(out, dset, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data, rank, dims);
}

int h5out_write_int(h5out *out, const char *dset, const int *data, int rank, const size_t *dims)
{
    return write_dataset(out, dset, H5T_STD_I32LE, H5T_NATIVE_INT, data, rank, dims);
}

int h5out_write_long(h5out *out, const char *dset, const long *data, int rank, const size_t *dims)
{
    return write_dataset(out, dset, H5T_STD_I64LE, H5T_NATIVE_LONG, data, rank, dims);
}

static int write_attr(h5out *out, const char *object, const char *name, hid_t type, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(out->file, object, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, type, value) >= 0) ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return rc == 0 ? 0 : fail(out, "writing attribute", name);
}

int h5out_attr_double(h5out *out, const char *object, const char *name, double value)
{
    return write_attr(out, object, name, H5T_NATIVE_DOUBLE, &value);
}

int h5out_attr_string(h5out *out, const char *object, const char *name, const char *value)
{
    /* Variable-length UTF-8, as h5py writes strings, so readers get text rather than bytes. */
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = write_attr(out, object, name, t, &value);
    H5Tclose(t);
    return rc;
}

const char *h5out_error(const h5out *out)
{
    return out->failed ? out->error : "";
}

int h5out_close(h5out *out, char *err, size_t errlen)
{
    int rc = out->failed ? -1 : 0;
    if (out->failed) set_err(err, errlen, "%s", out->error);
    if (H5Fclose(out->file) < 0 && rc == 0) {
        set_err(err, errlen, "closing HDF5 output failed");
        rc = -1;
    }
    free(out);
    return rc;
}
