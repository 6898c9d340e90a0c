/* tool_imageinfo.c -- reloc-imageinfo: tells what reloc reads from an image file, as JSON.
 *   reloc-imageinfo IMAGE [--raw OUT.f32]
 * IMAGE is anything image_read accepts (.tif, .png, file.h5:/dataset[k]). --raw writes the samples as
 * little-endian float32, row-major, so that scripts can compare reloc's reading with their own.
 * Exit status 0, or 1 with the reason on stderr when the image cannot be read. */
#include "formats/imageio/imageio.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *raw_path = NULL;
    if (argc == 4 && strcmp(argv[2], "--raw") == 0) raw_path = argv[3];
    else if (argc != 2) {
        fprintf(stderr, "usage: %s IMAGE [--raw OUT.f32]\n", argv[0]);
        return 2;
    }
    image img;
    char err[512];
    if (image_read(argv[1], &img, err, sizeof err) != 0) {
        fprintf(stderr, "reloc-imageinfo: %s\n", err);
        return 1;
    }
    size_t n = (size_t)img.width * img.height;
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        sum += img.data[i];
        if (img.data[i] < lo) lo = img.data[i];
        if (img.data[i] > hi) hi = img.data[i];
    }
    printf("{\"width\": %d, \"height\": %d, \"type\": \"%s\", \"pixel_size_x\": %.9g, \"pixel_size_y\": %.9g, "
           "\"min\": %.9g, \"max\": %.9g, \"mean\": %.12g}\n",
           img.width, img.height, pixel_type_name(img.type), img.pixel_size_x, img.pixel_size_y, lo, hi, sum / n);
    int rc = 0;
    if (raw_path) {
        FILE *fp = fopen(raw_path, "wb");
        if (!fp || fwrite(img.data, sizeof(float), n, fp) != n) {
            fprintf(stderr, "reloc-imageinfo: cannot write %s\n", raw_path);
            rc = 1;
        }
        if (fp && fclose(fp) != 0) rc = 1;
    }
    image_free(&img);
    return rc;
}
