/* image_tiff.c -- TIFF reading and writing through libtiff. Grey images of 8, 16 or 32 bits (unsigned,
 * signed or float) and 64-bit float; RGB(A) images are read as the mean of their colour samples. The
 * resolution tags give the pixel size when their unit is inch or centimetre. libtiff's own warnings and
 * errors are routed to our log instead of stderr. */
#include "formats/imageio/imageio_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

static void tiff_log_handler(const char *module, const char *fmt, va_list ap)
{
    char text[512];
    vsnprintf(text, sizeof text, fmt, ap);
    log_debug("imageio", "libtiff %s: %s", module ? module : "", text);
}

static void tiff_quiet(void)
{
    TIFFSetWarningHandler(tiff_log_handler);
    TIFFSetErrorHandler(tiff_log_handler);
}

static int tiff_pixel_type(uint16_t format, uint16_t bits, pixel_type *type)
{
    if (format == SAMPLEFORMAT_IEEEFP) {
        if (bits == 32) { *type = PIX_F32; return 0; }
        if (bits == 64) { *type = PIX_F64; return 0; }
        return -1;
    }
    int is_signed = format == SAMPLEFORMAT_INT;
    switch (bits) {
    case 8: *type = is_signed ? PIX_I8 : PIX_U8; return 0;
    case 16: *type = is_signed ? PIX_I16 : PIX_U16; return 0;
    case 32: *type = is_signed ? PIX_I32 : PIX_U32; return 0;
    default: return -1;
    }
}

static double sample_at(const unsigned char *row, pixel_type type, size_t index)
{
    switch (type) {
    case PIX_U8: return row[index];
    case PIX_I8: return ((const int8_t *)row)[index];
    case PIX_U16: return ((const uint16_t *)row)[index];
    case PIX_I16: return ((const int16_t *)row)[index];
    case PIX_U32: return ((const uint32_t *)row)[index];
    case PIX_I32: return ((const int32_t *)row)[index];
    case PIX_F32: return ((const float *)row)[index];
    case PIX_F64: return ((const double *)row)[index];
    }
    return 0;
}

static void tiff_pixel_size(TIFF *tif, image *out)
{
    float xres = 0, yres = 0;
    uint16_t unit = RESUNIT_INCH;
    TIFFGetFieldDefaulted(tif, TIFFTAG_RESOLUTIONUNIT, &unit);
    double um_per_unit = unit == RESUNIT_INCH ? 25400.0 : unit == RESUNIT_CENTIMETER ? 10000.0 : 0.0;
    if (um_per_unit > 0 && TIFFGetField(tif, TIFFTAG_XRESOLUTION, &xres) && xres > 0) out->pixel_size_x = um_per_unit / xres;
    if (um_per_unit > 0 && TIFFGetField(tif, TIFFTAG_YRESOLUTION, &yres) && yres > 0) out->pixel_size_y = um_per_unit / yres;
}

int imageio_read_tiff(const char *path, image *out, char *err, size_t errlen)
{
    tiff_quiet();
    TIFF *tif = TIFFOpen(path, "r");
    if (!tif) {
        error_set(err, errlen, "%s: cannot open as TIFF", path);
        return -1;
    }
    uint32_t width = 0, height = 0;
    uint16_t bits = 8, spp = 1, format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    int rc = -1;
    unsigned char *row = NULL;
    if (imageio_check_size(path, width, height, err, errlen) != 0) goto done;
    if (tiff_pixel_type(format, bits, &out->type) != 0) {
        error_set(err, errlen, "%s: unsupported TIFF samples (%u bits, format %u)", path, bits, format);
        goto done;
    }
    if (spp < 1 || spp > 4 || (spp > 1 && planar != PLANARCONFIG_CONTIG) || TIFFIsTiled(tif)) {
        error_set(err, errlen, "%s: unsupported TIFF layout (%u samples/pixel, %s, %s)", path, spp,
                      planar == PLANARCONFIG_CONTIG ? "contiguous" : "planar", TIFFIsTiled(tif) ? "tiled" : "strips");
        goto done;
    }
    int colours = spp == 4 || spp == 2 ? spp - 1 : spp;   /* alpha is ignored */
    out->width = (int)width;
    out->height = (int)height;
    out->data = xmalloc((size_t)width * height * sizeof(float));
    row = xmalloc((size_t)TIFFScanlineSize(tif));
    for (uint32_t y = 0; y < height; y++) {
        if (TIFFReadScanline(tif, row, y, 0) < 0) {
            error_set(err, errlen, "%s: TIFF data unreadable at row %u (truncated or corrupt)", path, y);
            goto done;
        }
        for (uint32_t x = 0; x < width; x++) {
            double sum = 0;
            for (int c = 0; c < colours; c++) sum += sample_at(row, out->type, (size_t)x * spp + (size_t)c);
            out->data[(size_t)y * width + x] = (float)(sum / colours);
        }
    }
    tiff_pixel_size(tif, out);
    rc = 0;
done:
    free(row);
    TIFFClose(tif);
    if (rc != 0) image_free(out);
    return rc;
}

int image_write_tiff(const char *path, const float *data, int width, int height, int as_u16, char *err, size_t errlen)
{
    tiff_quiet();
    TIFF *tif = TIFFOpen(path, "w");
    if (!tif) {
        error_set(err, errlen, "%s: cannot create TIFF file", path);
        return -1;
    }
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)width);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)height);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, as_u16 ? 16 : 32);
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, as_u16 ? SAMPLEFORMAT_UINT : SAMPLEFORMAT_IEEEFP);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif, 0));
    int rc = 0;
    uint16_t *row16 = as_u16 ? xmalloc((size_t)width * sizeof *row16) : NULL;
    for (int y = 0; y < height && rc == 0; y++) {
        const float *src = data + (size_t)y * width;
        void *row = (void *)src;
        if (as_u16) {
            for (int x = 0; x < width; x++) {
                float v = src[x] < 0 ? 0 : src[x] > 65535 ? 65535 : src[x];
                row16[x] = (uint16_t)(v + 0.5f);
            }
            row = row16;
        }
        if (TIFFWriteScanline(tif, row, (uint32_t)y, 0) < 0) {
            error_set(err, errlen, "%s: write failed at row %d (disk full or not writable?)", path, y);
            rc = -1;
        }
    }
    free(row16);
    if (rc == 0 && TIFFFlush(tif) != 1) {
        error_set(err, errlen, "%s: could not flush TIFF data (disk full?)", path);
        rc = -1;
    }
    TIFFClose(tif);
    return rc;
}
