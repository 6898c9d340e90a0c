/* h5array.h -- n-dimensional numeric arrays in and out of HDF5 files, for the command-line tools of the
 * analysis kernels (reloc-xanes, reloc-tomo). Arrays are read as float or double whatever the stored type
 * (HDF5 converts), with their shape; results are written as datasets with scalar attributes. Every call
 * opens and closes what it uses, so the functions are thread-safe as far as libhdf5 itself is (callers in
 * reloc use them from one thread). Errors are returned as text in err; HDF5's own error stack is silenced
 * (h5array_quiet, which every other user of libhdf5 in reloc calls too).
 *
 * Locations are "file.h5:/path/to/dataset"; h5array_split() parses them.
 */
#ifndef RELOC_H5ARRAY_H
#define RELOC_H5ARRAY_H

#include <stddef.h>

#define H5ARRAY_MAX_RANK 8

typedef struct h5array {
    int rank;
    size_t dims[H5ARRAY_MAX_RANK];   /* C order: the last dimension runs fastest */
    double *data;                     /* product(dims) samples, owned by the array */
} h5array;

/* Stops libhdf5 from printing its error stack for the calling thread (a thread-safe libhdf5 keeps one per
 * thread): reloc reports HDF5 failures itself, as text. Call it before HDF5 calls on each thread that makes them. */
void h5array_quiet(void);

/* Splits "file.h5:/dset" into file and dataset (default_dset when there is no ':/' part). Returns 0 or -1. */
int h5array_split(const char *location, const char *default_dset, char *file, size_t filelen, char *dset,
                  size_t dsetlen);
/* Reads a whole numeric dataset. Returns 0, or -1 with a message (missing file or dataset, not numeric,
 * rank above H5ARRAY_MAX_RANK, stored past the end of a truncated or corrupt file). */
int h5array_read(const char *file, const char *dset, h5array *out, char *err, size_t errlen);
/* Reads a whole numeric dataset as float in one call (no double copy: image stacks are large). Returns the
 * samples (free()) with the shape in *shape (shape->data stays NULL), or NULL with a message, which names values
 * beyond the float32 range rather than turning them into infinities. */
float *h5array_read_float(const char *file, const char *dset, h5array *shape, char *err, size_t errlen);
/* A whole dataset mapped read-only from its file (h5array_map.c). */
typedef struct h5array_mapping {
    void *base;
    size_t length;
} h5array_mapping;
/* Maps a float32 dataset (native byte order, stored contiguous: no chunks, no filters; what h5py and reloc write by
 * default) from its file without copying: the pages come straight from the page cache, all mapped in one call, where
 * reading would copy them into fresh memory page by page. Returns the samples with the shape in *shape
 * (shape->data stays NULL) and the mapping in *mapping (h5array_unmap releases it), or NULL when the dataset is
 * stored otherwise, starts at a file offset not aligned for float, runs past the end of the file (truncated or
 * corrupt: touching such pages would fault) or cannot be mapped (read it with h5array_read_float then, which reports
 * a broken file; err says why). The file must not be truncated while it is mapped. */
const float *h5array_map_float(const char *file, const char *dset, h5array *shape, h5array_mapping *mapping,
                               char *err, size_t errlen);
void h5array_unmap(h5array_mapping *mapping);
/* Reads a string or numeric scalar attribute of a dataset or group as text; -1 when absent. */
int h5array_read_attr_string(const char *file, const char *object, const char *name, char *out, size_t outlen);
size_t h5array_count(const h5array *a);
void h5array_free(h5array *a);

/* Output file, open for writing: h5out_create truncates; h5out_add opens an existing HDF5 file to add to it (or
 * creates it when there is none), and refuses a file that exists but is not writable HDF5. */
typedef struct h5out h5out;
h5out *h5out_create(const char *file, char *err, size_t errlen);
h5out *h5out_add(const char *file, char *err, size_t errlen);
/* Removes a dataset or group (with everything below it) when it exists, so that it can be written anew. */
int h5out_remove(h5out *out, const char *object);
/* Writes a dataset (float32 from float, float64 from double, int32 from int, int64 from long); intermediate
 * groups are created; a dataset may be empty. Returns 0 or -1 (message in the file's error text, see
 * h5out_error). */
int h5out_write_float(h5out *out, const char *dset, const float *data, int rank, const size_t *dims);
int h5out_write_double(h5out *out, const char *dset, const double *data, int rank, const size_t *dims);
int h5out_write_int(h5out *out, const char *dset, const int *data, int rank, const size_t *dims);
int h5out_write_long(h5out *out, const char *dset, const long *data, int rank, const size_t *dims);
/* Scalar attributes on an existing dataset or group ("/" for the file). */
int h5out_attr_double(h5out *out, const char *object, const char *name, double value);
int h5out_attr_string(h5out *out, const char *object, const char *name, const char *value);
const char *h5out_error(const h5out *out);
/* Closes the file; returns 0, or -1 when anything written since open failed or the close itself failed. */
int h5out_close(h5out *out, char *err, size_t errlen);

#endif
