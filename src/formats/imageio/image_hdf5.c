/* image_hdf5.c -- images and stacks from HDF5 datasets through libhdf5 (a thread-safe build on Debian).
 * A 2D dataset is one image; a 3D dataset is a stack with frames along the first (slowest) axis, as
 * areaDetector and h5py write them. Samples are converted to float by HDF5 itself. The pixel size comes
 * from the dataset's attributes "pixel_size" (one or two numbers, y then x) or "pixel_size_x"/"pixel_size_y",
 * in micrometres. HDF5's automatic error printing is turned off; failures are reported through err. */
#include "formats/imageio/imageio_internal.h"
#include "formats/h5array/h5array.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hid_t file, dataset, space;
    int rank;
    hsize_t dims[3];
    pixel_type type;
} h5_source;

static pixel_type h5_pixel_type(hid_t dtype)
{
    size_t size = H5Tget_size(dtype);
    if (H5Tget_class(dtype) == H5T_FLOAT) return size > 4 ? PIX_F64 : PIX_F32;
    int is_signed = H5Tget_sign(dtype) == H5T_SGN_2;
    if (size == 1) return is_signed ? PIX_I8 : PIX_U8;
    if (size == 2) return is_signed ? PIX_I16 : PIX_U16;
    if (size <= 4) return is_signed ? PIX_I32 : PIX_U32;
    return PIX_F64;
}

static void h5_close(h5_source *src)
{
    if (src->space >= 0) H5Sclose(src->space);
    if (src->dataset >= 0) H5Dclose(src->dataset);
    if (src->file >= 0) H5Fclose(src->file);
}

static int h5_open(const char *file, const char *dataset, h5_source *src, char *err, size_t errlen)
{
    h5array_quiet();
    memset(src, 0, sizeof *src);
    src->file = src->dataset = src->space = -1;
    src->file = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (src->file < 0) {
        error_set(err, errlen, "%s: cannot open as HDF5", file);
        return -1;
    }
    src->dataset = H5Dopen2(src->file, dataset, H5P_DEFAULT);
    if (src->dataset < 0) {
        error_set(err, errlen, "%s: no dataset %s", file, dataset);
        h5_close(src);
        return -1;
    }
    hid_t dtype = H5Dget_type(src->dataset);
    H5T_class_t cls = H5Tget_class(dtype);
    if (cls == H5T_INTEGER || cls == H5T_FLOAT) src->type = h5_pixel_type(dtype);
    H5Tclose(dtype);
    src->space = H5Dget_space(src->dataset);
    src->rank = H5Sget_simple_extent_ndims(src->space);
    if ((cls != H5T_INTEGER && cls != H5T_FLOAT) || src->rank < 2 || src->rank > 3) {
        error_set(err, errlen, "%s:%s: not a numeric 2D image or 3D stack", file, dataset);
        h5_close(src);
        return -1;
    }
    H5Sget_simple_extent_dims(src->space, src->dims, NULL);
    return 0;
}

/* Reads `frames` frames starting at `first` (rank 3) or the whole image (rank 2) as float. */
static int h5_read_frames(h5_source *src, hsize_t first, hsize_t frames, float *dst)
{
    int r = src->rank;
    hsize_t start[3] = {0, 0, 0}, count[3] = {src->dims[0], src->dims[1], r == 3 ? src->dims[2] : 0};
    if (r == 3) {
        start[0] = first;
        count[0] = frames;
    }
    if (H5Sselect_hyperslab(src->space, H5S_SELECT_SET, start, NULL, count, NULL) < 0) return -1;
    hid_t mem = H5Screate_simple(r, count, NULL);
    herr_t status = H5Dread(src->dataset, H5T_NATIVE_FLOAT, mem, src->space, H5P_DEFAULT, dst);
    H5Sclose(mem);
    return status < 0 ? -1 : 0;
}

static double h5_attribute(hid_t dataset, const char *name, int index)
{
    double values[2] = {0, 0};
    if (H5Aexists(dataset, name) <= 0) return 0;
    hid_t attr = H5Aopen(dataset, name, H5P_DEFAULT);
    if (attr < 0) return 0;
    hid_t space = H5Aget_space(attr);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n >= 1 && n <= 2 && H5Aread(attr, H5T_NATIVE_DOUBLE, values) >= 0 && n == 1) values[1] = values[0];
    else if (n < 1 || n > 2) values[0] = values[1] = 0;
    H5Sclose(space);
    H5Aclose(attr);
    return values[index];
}

int imageio_read_hdf5(const char *file, const char *dataset, long frame, image *out, char *err, size_t errlen)
{
    h5_source src;
    if (h5_open(file, dataset, &src, err, errlen) != 0) return -1;
    int r = src.rank;
    hsize_t height = src.dims[r - 2], width = src.dims[r - 1];
    int rc = -1;
    if (r == 3 && frame < 0) frame = 0;
    if (r == 2 && frame > 0) {
        error_set(err, errlen, "%s:%s is a single 2D image; frame %ld does not exist", file, dataset, frame);
    } else if (r == 3 && (hsize_t)frame >= src.dims[0]) {
        error_set(err, errlen, "%s:%s has %llu frames; frame %ld does not exist", file, dataset,
                      (unsigned long long)src.dims[0], frame);
    } else if (imageio_check_size(file, (long)width, (long)height, err, errlen) == 0) {
        out->width = (int)width;
        out->height = (int)height;
        out->type = src.type;
        out->data = xmalloc((size_t)width * height * sizeof(float));
        if (h5_read_frames(&src, (hsize_t)(frame < 0 ? 0 : frame), 1, out->data) != 0) {
            error_set(err, errlen, "%s:%s: read failed (corrupt or truncated file)", file, dataset);
            image_free(out);
        } else {
            out->pixel_size_y = h5_attribute(src.dataset, "pixel_size", 0);
            out->pixel_size_x = h5_attribute(src.dataset, "pixel_size", 1);
            if (!out->pixel_size_x) out->pixel_size_x = h5_attribute(src.dataset, "pixel_size_x", 0);
            if (!out->pixel_size_y) out->pixel_size_y = h5_attribute(src.dataset, "pixel_size_y", 0);
            rc = 0;
        }
    }
    h5_close(&src);
    return rc;
}

int imageio_read_hdf5_stack(const char *file, const char *dataset, image_stack *out, char *err, size_t errlen)
{
    h5_source src;
    if (h5_open(file, dataset, &src, err, errlen) != 0) return -1;
    int r = src.rank;
    hsize_t frames = r == 3 ? src.dims[0] : 1, height = src.dims[r - 2], width = src.dims[r - 1];
    int rc = -1;
    if (imageio_check_size(file, (long)width, (long)height, err, errlen) == 0) {
        out->width = (int)width;
        out->height = (int)height;
        out->count = (int)frames;
        out->type = src.type;
        out->data = xmalloc((size_t)(width * height * frames) * sizeof(float));
        if (h5_read_frames(&src, 0, frames, out->data) != 0) {
            error_set(err, errlen, "%s:%s: read failed (corrupt or truncated file)", file, dataset);
            image_stack_free(out);
        } else {
            rc = 0;
        }
    }
    h5_close(&src);
    return rc;
}
