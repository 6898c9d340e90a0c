/* h5array_map.c -- float32 datasets mapped read-only from their HDF5 file (see h5array.h): where the dataset's bytes
 * are in the file (contiguous layout, native float), whether they can be mapped (aligned for float, inside the
 * file), and the mapping of those pages. */
#include "formats/h5array/h5array.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* File offset and shape of a contiguous native-float dataset holding all its samples; 0, or -1 with a message. */
static int locate(const char *file, const char *dset, h5array *shape, uint64_t *offset, char *err, size_t errlen)
{
    h5array_quiet();
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        snprintf(err, errlen, "cannot open HDF5 file '%s'", file);
        return -1;
    }
    int rc = -1;
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT), type = -1, space = -1, dcpl = -1;
    if (d < 0) {
        snprintf(err, errlen, "%s: no dataset '%s'", file, dset);
        goto done;
    }
    type = H5Dget_type(d);
    space = H5Dget_space(d);
    dcpl = H5Dget_create_plist(d);
    int rank = H5Sget_simple_extent_ndims(space);
    if (H5Tequal(type, H5T_NATIVE_FLOAT) <= 0 || H5Pget_layout(dcpl) != H5D_CONTIGUOUS || rank < 1 ||
        rank > H5ARRAY_MAX_RANK) {
        snprintf(err, errlen, "%s:%s is not a contiguous native float32 dataset", file, dset);
        goto done;
    }
    hsize_t dims[H5ARRAY_MAX_RANK];
    H5Sget_simple_extent_dims(space, dims, NULL);
    memset(shape, 0, sizeof *shape);
    shape->rank = rank;
    for (int i = 0; i < rank; i++) shape->dims[i] = (size_t)dims[i];
    haddr_t at = H5Dget_offset(d);
    size_t n = h5array_count(shape);
    if (n > SIZE_MAX / sizeof(float)) {
        snprintf(err, errlen, "%s:%s is too large to map", file, dset);
        goto done;
    }
    if (n == 0 || at == HADDR_UNDEF || H5Dget_storage_size(d) != n * sizeof(float)) {
        snprintf(err, errlen, "%s:%s has no samples stored in the file", file, dset);
        goto done;
    }
    *offset = (uint64_t)at;
    rc = 0;
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    return rc;
}

const float *h5array_map_float(const char *file, const char *dset, h5array *shape, h5array_mapping *mapping,
                               char *err, size_t errlen)
{
    memset(mapping, 0, sizeof *mapping);
    uint64_t offset;
    if (locate(file, dset, shape, &offset, err, errlen) != 0) return NULL;
    /* The mapping starts on a page, so the samples are as aligned as their offset in the file: HDF5 packs raw data
     * byte by byte (a 1-byte dataset written before the stack puts it at an odd offset). */
    if (offset % _Alignof(float) != 0) {
        snprintf(err, errlen, "%s:%s starts at file offset %llu, not aligned for float", file, dset,
                 (unsigned long long)offset);
        return NULL;
    }
    size_t bytes = h5array_count(shape) * sizeof(float);   /* no overflow: locate checked */
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open '%s': %s", file, strerror(errno));
        return NULL;
    }
    /* Pages of the mapping past the end of the file fault (SIGBUS) when touched: a truncated or corrupt file whose
     * dataset runs past its end is left to the read, which reports it. */
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat '%s': %s", file, strerror(errno));
        close(fd);
        return NULL;
    }
    if (offset > (uint64_t)st.st_size || bytes > (uint64_t)st.st_size - offset) {
        snprintf(err, errlen, "%s:%s runs past the end of the file (%lld bytes): truncated or corrupt", file, dset,
                 (long long)st.st_size);
        close(fd);
        return NULL;
    }
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), start = offset - offset % page;
    size_t length = (size_t)(offset - start) + bytes;
    void *base = mmap(NULL, length, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, (off_t)start);
    close(fd);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %s:%s: %s", file, dset, strerror(errno));
        return NULL;
    }
    mapping->base = base;
    mapping->length = length;
    return (const float *)((const char *)base + (offset - start));
}

void h5array_unmap(h5array_mapping *mapping)
{
    if (mapping->base) munmap(mapping->base, mapping->length);
    memset(mapping, 0, sizeof *mapping);
}
