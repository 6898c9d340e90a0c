/* image.c -- dispatch of image_read/image_stack_read by path form, sample type facts, freeing.
 * Format readers live in image_tiff.c, image_png.c and image_hdf5.c; each fills an `image` or reports. */
#include "formats/imageio/imageio_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int has_suffix(const char *path, const char *suffix)
{
    size_t n = strlen(path), m = strlen(suffix);
    return n >= m && strcasecmp(path + n - m, suffix) == 0;
}

/* "file.h5:/data[3]" -> file "file.h5", dataset "/data", frame 3 (-1 when no index). Returns 0 if path has
 * the HDF5 form. */
int imageio_split_hdf5(const char *path, char *file, size_t filelen, char *dataset, size_t dslen, long *frame)
{
    static const char *const exts[] = {".h5:", ".hdf5:", ".hdf:", ".nxs:"};
    const char *colon = NULL;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0] && !colon; i++) {
        const char *p = strcasestr(path, exts[i]);
        if (p) colon = p + strlen(exts[i]) - 1;
    }
    if (!colon || (size_t)(colon - path) >= filelen) return -1;
    memcpy(file, path, (size_t)(colon - path));
    file[colon - path] = '\0';
    str_copy(dataset, colon + 1, dslen);
    *frame = -1;
    char *bracket = strchr(dataset, '[');
    if (bracket) {
        char *end;
        long k = strtol(bracket + 1, &end, 10);
        if (end == bracket + 1 || *end != ']' || end[1] != '\0' || k < 0) return -1;
        *frame = k;
        *bracket = '\0';
    }
    return dataset[0] ? 0 : -1;
}

int image_read(const char *path, image *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char file[1024], dataset[512];
    long frame;
    if (imageio_split_hdf5(path, file, sizeof file, dataset, sizeof dataset, &frame) == 0)
        return imageio_read_hdf5(file, dataset, frame, out, err, errlen);
    if (has_suffix(path, ".tif") || has_suffix(path, ".tiff")) return imageio_read_tiff(path, out, err, errlen);
    if (has_suffix(path, ".png")) return imageio_read_png(path, out, err, errlen);
    error_set(err, errlen, "%s: unsupported image format (use .tif, .tiff, .png or file.h5:/dataset)", path);
    return -1;
}

int image_stack_read(const char *path, image_stack *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char file[1024], dataset[512];
    long frame;
    if (imageio_split_hdf5(path, file, sizeof file, dataset, sizeof dataset, &frame) == 0 && frame < 0)
        return imageio_read_hdf5_stack(file, dataset, out, err, errlen);
    image one;
    if (image_read(path, &one, err, errlen) != 0) return -1;
    out->width = one.width;
    out->height = one.height;
    out->count = 1;
    out->type = one.type;
    out->data = one.data;
    return 0;
}

void image_free(image *img)
{
    free(img->data);
    img->data = NULL;
}

void image_stack_free(image_stack *stack)
{
    free(stack->data);
    stack->data = NULL;
}

double pixel_type_max(pixel_type type)
{
    switch (type) {
    case PIX_U8: return 255.0;
    case PIX_I8: return 127.0;
    case PIX_U16: return 65535.0;
    case PIX_I16: return 32767.0;
    case PIX_U32: return 4294967295.0;
    case PIX_I32: return 2147483647.0;
    case PIX_F32:
    case PIX_F64: return 1.0;
    }
    return 1.0;
}

const char *pixel_type_name(pixel_type type)
{
    static const char *const names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                        "float64"};
    return (unsigned)type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* Image dimensions the readers accept: a frame must fit the int arithmetic of the kernels. */
int imageio_check_size(const char *path, long width, long height, char *err, size_t errlen)
{
    if (width <= 0 || height <= 0 || width > 65536 || height > 65536) {
        error_set(err, errlen, "%s: image size %ldx%ld out of range (1..65536 per axis)", path, width, height);
        return -1;
    }
    return 0;
}
