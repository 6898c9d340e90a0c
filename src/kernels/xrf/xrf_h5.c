/* xrf_h5.c -- XRF maps in HDF5: the result file that grows row by row while a scan streams in (raw, I0, corrected,
 * weight fractions, row states, the parameters and the xraylib version), and reading raw maps for batch runs.
 * Layout: /raw/<El>, /corrected/<El>, /fractions/<El>, /I0 (height x width float64), /row_state (uint8 per row:
 * 0 missing, 1 provisional, 2 final); root attributes "parameters" (JSON) and "xraylib_version". */
#include "kernels/xrf/xrf.h"

#include "core/base/base.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct xrf_h5 {
    hid_t file;
    int width, height, n_elements;
    hid_t raw[XRF_MAX_ELEMENTS], corrected[XRF_MAX_ELEMENTS], fractions[XRF_MAX_ELEMENTS], i0, row_state;
};

static hid_t create_2d(hid_t file, const char *name, int width, int height)
{
    hsize_t dims[2] = {(hsize_t)height, (hsize_t)width};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE);
    double fill = NAN;
    H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &fill);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F64LE, space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
    return ds;
}

static int set_string_attr(hid_t obj, const char *name, const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = attr >= 0 && H5Awrite(attr, type, value) >= 0 ? 0 : -1;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    return rc;
}

xrf_h5 *xrf_h5_create(const char *path, const xrf_config *cfg, int width, int height, int live, char *err,
                      size_t errlen)
{
    xrf_h5 *h = xcalloc(1, sizeof *h);
    h->width = width;
    h->height = height;
    h->n_elements = cfg->n_elements;
    /* Failures are reported in err; HDF5's own error stack printing is off for the call only. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (live) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);   /* SWMR needs the latest format */
    H5E_BEGIN_TRY { h->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl); } H5E_END_TRY;
    H5Pclose(fapl);
    if (h->file < 0) {
        snprintf(err, errlen, "cannot create HDF5 file %s", path);
        free(h);
        return NULL;
    }
    int ok = 1;
    char name[64];
    for (int c = 0; c < cfg->n_elements; c++) {
        snprintf(name, sizeof name, "/raw/%s", cfg->element[c].symbol);
        ok &= (h->raw[c] = create_2d(h->file, name, width, height)) >= 0;
        snprintf(name, sizeof name, "/corrected/%s", cfg->element[c].symbol);
        ok &= (h->corrected[c] = create_2d(h->file, name, width, height)) >= 0;
        snprintf(name, sizeof name, "/fractions/%s", cfg->element[c].symbol);
        ok &= (h->fractions[c] = create_2d(h->file, name, width, height)) >= 0;
    }
    ok &= (h->i0 = create_2d(h->file, "/I0", width, height)) >= 0;
    hsize_t rows = (hsize_t)height;
    hid_t space = H5Screate_simple(1, &rows, NULL);
    ok &= (h->row_state = H5Dcreate2(h->file, "/row_state", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT,
                                     H5P_DEFAULT)) >= 0;
    H5Sclose(space);
    char *json = xrf_config_to_json(cfg);
    ok &= set_string_attr(h->file, "parameters", json) == 0;
    ok &= set_string_attr(h->file, "xraylib_version", xrf_xraylib_version()) == 0;
    free(json);
    if (ok && live) ok &= H5Fstart_swmr_write(h->file) >= 0;
    if (!ok) {
        snprintf(err, errlen, "cannot create the datasets of %s", path);
        xrf_h5_close(h, err, 0);
        return NULL;
    }
    return h;
}

/* Writes the block rows [y0, y0+ny) x columns [x0, x0+nx) of a full-map array into a 2D dataset. */
static int write_block(hid_t ds, const double *map, int width, int height, int y0, int ny, int x0, int nx)
{
    hsize_t dims[2] = {(hsize_t)height, (hsize_t)width};
    hsize_t start[2] = {(hsize_t)y0, (hsize_t)x0}, count[2] = {(hsize_t)ny, (hsize_t)nx};
    hid_t file_space = H5Dget_space(ds), mem_space = H5Screate_simple(2, dims, NULL);
    H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, count, NULL);
    H5Sselect_hyperslab(mem_space, H5S_SELECT_SET, start, NULL, count, NULL);
    herr_t rc = H5Dwrite(ds, H5T_NATIVE_DOUBLE, mem_space, file_space, H5P_DEFAULT, map);
    H5Sclose(mem_space);
    H5Sclose(file_space);
    return rc < 0 ? -1 : 0;
}

static int write_map(hid_t ds, const double *map, int width, int height)
{
    return write_block(ds, map, width, height, 0, height, 0, width);
}

static int write_row_states(xrf_h5 *h, const unsigned char *states)
{
    return H5Dwrite(h->row_state, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, states) < 0 ? -1 : 0;
}

int xrf_h5_write_block(xrf_h5 *h, const xrf_stream *s, int y0, int ny, int x0, int nx, char *err, size_t errlen)
{
    int rc = 0, w = h->width, hh = h->height;
    for (int c = 0; c < h->n_elements; c++) {
        rc |= write_block(h->raw[c], xrf_stream_raw(s, c), w, hh, y0, ny, x0, nx);
        rc |= write_block(h->corrected[c], xrf_stream_corrected(s, c), w, hh, y0, ny, x0, nx);
        rc |= write_block(h->fractions[c], xrf_stream_fractions(s, c), w, hh, y0, ny, x0, nx);
    }
    rc |= write_block(h->i0, xrf_stream_i0(s), w, hh, y0, ny, x0, nx);
    unsigned char *states = xmalloc(h->height);
    for (int y = 0; y < h->height; y++) states[y] = (unsigned char)xrf_stream_row_state(s, y);
    rc |= write_row_states(h, states);
    free(states);
    if (rc || H5Fflush(h->file, H5F_SCOPE_LOCAL) < 0) {
        snprintf(err, errlen, "HDF5 write of rows %d..%d, columns %d..%d failed", y0, y0 + ny - 1, x0, x0 + nx - 1);
        return -1;
    }
    return 0;
}

int xrf_h5_write_maps(xrf_h5 *h, const double *const *raw, const double *i0, const xrf_maps *corrected,
                      const xrf_maps *fractions, int iterations, char *err, size_t errlen)
{
    int rc = 0;
    for (int c = 0; c < h->n_elements; c++) {
        rc |= write_map(h->raw[c], raw[c], h->width, h->height);
        rc |= write_map(h->corrected[c], corrected->map[c], h->width, h->height);
        rc |= write_map(h->fractions[c], fractions->map[c], h->width, h->height);
    }
    rc |= write_map(h->i0, i0, h->width, h->height);
    unsigned char *states = xmalloc(h->height);
    memset(states, XRF_ROW_FINAL, h->height);
    rc |= write_row_states(h, states);
    free(states);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(h->file, "iterations", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    rc |= attr < 0 || H5Awrite(attr, H5T_NATIVE_INT, &iterations) < 0;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    if (rc) {
        snprintf(err, errlen, "HDF5 write of the corrected maps failed");
        return -1;
    }
    return 0;
}

int xrf_h5_close(xrf_h5 *h, char *err, size_t errlen)
{
    if (!h) return 0;
    for (int c = 0; c < h->n_elements; c++) {
        if (h->raw[c] > 0) H5Dclose(h->raw[c]);
        if (h->corrected[c] > 0) H5Dclose(h->corrected[c]);
        if (h->fractions[c] > 0) H5Dclose(h->fractions[c]);
    }
    if (h->i0 > 0) H5Dclose(h->i0);
    if (h->row_state > 0) H5Dclose(h->row_state);
    herr_t rc = H5Fclose(h->file);
    free(h);
    if (rc < 0 && errlen) snprintf(err, errlen, "HDF5 close failed");
    return rc < 0 ? -1 : 0;
}

/* Reads a 2D dataset as doubles; checks or sets the shape. */
static double *read_2d(hid_t file, const char *name, int *width, int *height, char *err, size_t errlen)
{
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
        snprintf(err, errlen, "no dataset %s", name);
        return NULL;
    }
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) { snprintf(err, errlen, "cannot open %s", name); return NULL; }
    hid_t space = H5Dget_space(ds);
    hsize_t dims[2];
    double *data = NULL;
    if (H5Sget_simple_extent_ndims(space) != 2 || H5Sget_simple_extent_dims(space, dims, NULL) != 2 ||
        dims[0] < 1 || dims[1] < 1 || dims[0] > 100000 || dims[1] > 100000) {
        snprintf(err, errlen, "%s is not a 2D map", name);
    } else if (*width && (dims[1] != (hsize_t)*width || dims[0] != (hsize_t)*height)) {
        snprintf(err, errlen, "%s is %llux%llu, other maps %dx%d", name, (unsigned long long)dims[1],
                 (unsigned long long)dims[0], *width, *height);
    } else {
        *width = (int)dims[1];
        *height = (int)dims[0];
        data = xmalloc_large(dims[0] * dims[1] * sizeof *data);
        if (H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
            snprintf(err, errlen, "cannot read %s", name);
            free(data);
            data = NULL;
        }
    }
    H5Sclose(space);
    H5Dclose(ds);
    return data;
}

int xrf_h5_read_raw(const char *path, const xrf_config *cfg, int *width, int *height, xrf_maps *raw, double **i0,
                    char *err, size_t errlen)
{
    hid_t file;
    H5E_BEGIN_TRY { file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (file < 0) { snprintf(err, errlen, "cannot open HDF5 file %s", path); return -1; }
    memset(raw, 0, sizeof *raw);
    *width = *height = 0;
    *i0 = NULL;
    int rc = 0;
    char name[64];
    for (int c = 0; c < cfg->n_elements && rc == 0; c++) {
        snprintf(name, sizeof name, "/raw/%s", cfg->element[c].symbol);
        raw->map[c] = read_2d(file, name, width, height, err, errlen);
        raw->n_elements = c + 1;
        if (!raw->map[c]) rc = -1;
    }
    if (rc == 0) {
        raw->width = *width;
        raw->height = *height;
        if (H5Lexists(file, "/I0", H5P_DEFAULT) > 0) {
            *i0 = read_2d(file, "/I0", width, height, err, errlen);
            if (!*i0) rc = -1;
        } else {
            size_t n = (size_t)*width * *height;
            *i0 = xmalloc_large(n * sizeof **i0);
            for (size_t p = 0; p < n; p++) (*i0)[p] = 1;
        }
    }
    if (rc) {
        xrf_maps_free(raw);
        free(*i0);
        *i0 = NULL;
        char where[512];
        snprintf(where, sizeof where, "%s: %s", path, err);
        str_copy(err, where, errlen);
    }
    H5Fclose(file);
    return rc;
}

int xrf_h5_write_dataset(const char *path, const char *name, const double *data, int width, int height,
                         int truncate_file, char *err, size_t errlen)
{
    hid_t file;
    H5E_BEGIN_TRY {
        file = truncate_file ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
                             : H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    } H5E_END_TRY;
    if (file < 0) { snprintf(err, errlen, "cannot open HDF5 file %s for writing", path); return -1; }
    hid_t ds = create_2d(file, name, width, height);
    int rc = ds >= 0 ? write_map(ds, data, width, height) : -1;
    if (ds >= 0) H5Dclose(ds);
    if (H5Fclose(file) < 0) rc = -1;
    if (rc) snprintf(err, errlen, "cannot write %s:%s", path, name);
    return rc;
}
