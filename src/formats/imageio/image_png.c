/* image_png.c -- PNG reading and writing through libpng. Reads 1-16 bit grey, palette and RGB(A) images
 * with their raw sample values (no gamma conversion; colour as the mean of R, G, B; alpha ignored) and the
 * pHYs chunk as pixel size. Writes 8-bit grey (scaled) and 8-bit RGB. libpng reports errors by longjmp,
 * so every function keeps its heap state in volatile locals that the error path can free. */
#include "formats/imageio/imageio_internal.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void png_error_handler(png_structp png, png_const_charp message)
{
    char *err_text = png_get_error_ptr(png);
    if (err_text) str_copy(err_text, message, 256);
    png_longjmp(png, 1);
}

static void png_warning_handler(png_structp png, png_const_charp message)
{
    (void)png;
    log_debug("imageio", "libpng: %s", message);
}

int imageio_read_png(const char *path, image *out, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        error_set(err, errlen, "%s: cannot open", path);
        return -1;
    }
    char libpng_text[256] = "not a PNG file";
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, libpng_text, png_error_handler,
                                             png_warning_handler);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        fclose(fp);
        error_set(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        image_free(out);
        error_set(err, errlen, "%s: unreadable PNG: %s", path, libpng_text);
        return -1;
    }
    png_init_io(png, fp);
    png_read_png(png, info, PNG_TRANSFORM_EXPAND | PNG_TRANSFORM_STRIP_ALPHA, NULL);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), channels = png_get_channels(png, info);
    if (imageio_check_size(path, width, height, err, errlen) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        return -1;
    }
    png_bytepp rows = png_get_rows(png, info);
    out->width = (int)width;
    out->height = (int)height;
    out->type = depth == 16 ? PIX_U16 : PIX_U8;
    out->data = xmalloc((size_t)width * height * sizeof(float));
    for (png_uint_32 y = 0; y < height; y++) {
        const png_byte *row = rows[y];
        for (png_uint_32 x = 0; x < width; x++) {
            double sum = 0;
            for (int c = 0; c < channels; c++) {
                size_t i = (size_t)x * channels + (size_t)c;
                sum += depth == 16 ? (double)((row[2 * i] << 8) | row[2 * i + 1]) : (double)row[i];
            }
            out->data[(size_t)y * width + x] = (float)(sum / channels);
        }
    }
    png_uint_32 ppm_x, ppm_y;
    int unit;
    if (png_get_pHYs(png, info, &ppm_x, &ppm_y, &unit) && unit == PNG_RESOLUTION_METER && ppm_x && ppm_y) {
        out->pixel_size_x = 1e6 / ppm_x;
        out->pixel_size_y = 1e6 / ppm_y;
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    return 0;
}

/* Writes `height` rows of `width` pixels of `channels` 8-bit samples. */
static int write_png8(const char *path, const unsigned char *pixels, int width, int height, int channels, char *err,
                      size_t errlen)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        error_set(err, errlen, "%s: cannot create PNG file", path);
        return -1;
    }
    char libpng_text[256] = "write failed";
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, libpng_text, png_error_handler,
                                              png_warning_handler);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        fclose(fp);
        error_set(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        error_set(err, errlen, "%s: PNG write failed: %s", path, libpng_text);
        return -1;
    }
    png_init_io(png, fp);
    /* Maps and previews written at the end of every run: zlib's fastest level makes the file ~10 % larger and the
     * write several times faster (at the default level it was ~40 % of a reloc-xanes run). */
    png_set_compression_level(png, Z_BEST_SPEED);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * width * channels);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    if (fclose(fp) != 0) {
        error_set(err, errlen, "%s: could not finish writing (disk full?)", path);
        return -1;
    }
    return 0;
}

int image_write_png(const char *path, const float *data, int width, int height, float lo, float hi, char *err,
                    size_t errlen)
{
    size_t n = (size_t)width * height;
    if (lo == hi) {
        lo = hi = n ? data[0] : 0;
        for (size_t i = 1; i < n; i++) {
            if (data[i] < lo) lo = data[i];
            if (data[i] > hi) hi = data[i];
        }
    }
    float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
    unsigned char *grey = xmalloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        float v = (data[i] - lo) * scale;
        grey[i] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
    }
    int rc = write_png8(path, grey, width, height, 1, err, errlen);
    free(grey);
    return rc;
}

int image_write_png_rgb(const char *path, const unsigned char *rgb, int width, int height, char *err, size_t errlen)
{
    return write_png8(path, rgb, width, height, 3, err, errlen);
}
