/* imageio_internal.h -- shared between the format readers of src/formats/imageio; not part of its interface. */
#ifndef RELOC_IMAGEIO_INTERNAL_H
#define RELOC_IMAGEIO_INTERNAL_H

#include "core/base/base.h"
#include "formats/imageio/imageio.h"

int imageio_check_size(const char *path, long width, long height, char *err, size_t errlen);
int imageio_split_hdf5(const char *path, char *file, size_t filelen, char *dataset, size_t dslen, long *frame);

int imageio_read_tiff(const char *path, image *out, char *err, size_t errlen);
int imageio_read_png(const char *path, image *out, char *err, size_t errlen);
int imageio_read_hdf5(const char *file, const char *dataset, long frame, image *out, char *err, size_t errlen);
int imageio_read_hdf5_stack(const char *file, const char *dataset, image_stack *out, char *err, size_t errlen);

#endif
