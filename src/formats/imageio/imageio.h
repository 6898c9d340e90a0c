/* imageio.h -- reading and writing the 2D images and image stacks reloc works on: TIFF (libtiff), PNG
 * (libpng) and HDF5 datasets (libhdf5). Images are held as float samples, row-major with x fastest, plus
 * the sample type they had in the file (analysis such as trackpy-style detection depends on it) and the
 * pixel size when the file carries one. Analysis kernels take plain arrays; this module only turns files
 * into arrays and back. No function here keeps global state; all are thread-safe.
 *
 * Paths: "name.tif", "name.tiff", "name.png" by extension; HDF5 as "file.h5:/path/to/dataset" (2D
 * dataset, or one frame "file.h5:/data[7]" of a 3D dataset). Errors are returned as text in err.
 */
#ifndef RELOC_IMAGEIO_H
#define RELOC_IMAGEIO_H

#include <stddef.h>

typedef enum {
    PIX_U8, PIX_I8, PIX_U16, PIX_I16, PIX_U32, PIX_I32, PIX_F32, PIX_F64
} pixel_type;

typedef struct image {
    int width, height;         /* x runs fastest: data[y * width + x] */
    pixel_type type;           /* sample type in the file */
    float *data;               /* width * height samples, owned by the image */
    double pixel_size_x;       /* physical size of a pixel in micrometres; 0 when the file has none */
    double pixel_size_y;
} image;

typedef struct image_stack {
    int width, height, count;  /* count frames of width x height */
    pixel_type type;
    float *data;               /* frame k at data + k * width * height */
} image_stack;

/* Reads one image. Returns 0, or -1 with a message in err (unreadable file, unsupported format, wrong rank). */
int image_read(const char *path, image *out, char *err, size_t errlen);
/* Reads a 3D HDF5 dataset ("file.h5:/dataset", frames along the first axis) or, when path names a 2D image,
 * a stack of one. */
int image_stack_read(const char *path, image_stack *out, char *err, size_t errlen);
void image_free(image *img);
void image_stack_free(image_stack *stack);

/* Largest value the file's sample type can hold (255 for u8, 65535 for u16, ...; 1 for floats). */
double pixel_type_max(pixel_type type);
const char *pixel_type_name(pixel_type type);

/* Writes a float image as 32-bit float TIFF (exact) or 16-bit TIFF (rounded and clipped to 0..65535). */
int image_write_tiff(const char *path, const float *data, int width, int height, int as_u16, char *err, size_t errlen);
/* Writes an 8-bit grey PNG, mapping [lo, hi] to [0, 255] (lo == hi: use the image's min and max). */
int image_write_png(const char *path, const float *data, int width, int height, float lo, float hi, char *err,
                    size_t errlen);
/* Writes an 8-bit RGB PNG from width*height*3 bytes (for overlays drawn by demos and tools). */
int image_write_png_rgb(const char *path, const unsigned char *rgb, int width, int height, char *err, size_t errlen);

#endif
