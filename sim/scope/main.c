/* reloc-sim-scope -- renders what the simulated microscope sees, to a TIFF file, for tests and demos that
 * need images with known content (e.g. an SEM-like reference of the sample, or a frame at a stage position).
 *   reloc-sim-scope SAMPLE.json OUT.tif [--size W H] [--pixel-size UM] [--stage X Y] [--beam U V]
 *                   [--rotation DEG] [--flip-x] [--flip-y] [--exposure E] [--gain G] [--read-noise E]
 *                   [--gradient GX GY] [--noiseless] [--seed N] [--float]
 * Prints, as CSV on stdout, the ground truth: id,x_px,y_px,stage_x,stage_y,removed for every particle. */
#include "core/base/base.h"
#include "formats/imageio/imageio.h"
#include "drivers/simscope/simscope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int need(int i, int n, int argc, const char *opt)
{
    if (i + n >= argc) {
        fprintf(stderr, "reloc-sim-scope: %s needs %d value(s)\n", opt, n);
        exit(2);
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SAMPLE.json OUT.tif [options]  (see the comment atop sim/scope/main.c)\n", argv[0]);
        return 2;
    }
    char err[512];
    simscope_sample *sample = simscope_load(argv[1], err, sizeof err);
    if (!sample) {
        fprintf(stderr, "reloc-sim-scope: %s\n", err);
        return 1;
    }
    simscope_view view;
    simscope_view_defaults(&view, 512, 512);
    int as_float = 0, beam_given = 0;
    for (int i = 3; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--size") && need(i, 2, argc, o)) {
            view.width = atoi(argv[++i]);
            view.height = atoi(argv[++i]);
        } else if (!strcmp(o, "--pixel-size") && need(i, 1, argc, o)) view.pixel_size = atof(argv[++i]);
        else if (!strcmp(o, "--stage") && need(i, 2, argc, o)) {
            view.stage_x = atof(argv[++i]);
            view.stage_y = atof(argv[++i]);
        } else if (!strcmp(o, "--beam") && need(i, 2, argc, o)) {
            view.beam_x = atof(argv[++i]);
            view.beam_y = atof(argv[++i]);
            beam_given = 1;
        } else if (!strcmp(o, "--rotation") && need(i, 1, argc, o)) view.camera_rotation_deg = atof(argv[++i]);
        else if (!strcmp(o, "--flip-x")) view.flip_x = 1;
        else if (!strcmp(o, "--flip-y")) view.flip_y = 1;
        else if (!strcmp(o, "--exposure") && need(i, 1, argc, o)) view.exposure = atof(argv[++i]);
        else if (!strcmp(o, "--gain") && need(i, 1, argc, o)) view.gain = atof(argv[++i]);
        else if (!strcmp(o, "--read-noise") && need(i, 1, argc, o)) view.read_noise = atof(argv[++i]);
        else if (!strcmp(o, "--gradient") && need(i, 2, argc, o)) {
            view.gradient_x = atof(argv[++i]);
            view.gradient_y = atof(argv[++i]);
        } else if (!strcmp(o, "--noiseless")) view.noise = 0;
        else if (!strcmp(o, "--seed") && need(i, 1, argc, o)) view.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(o, "--float")) as_float = 1;
        else {
            fprintf(stderr, "reloc-sim-scope: unknown option %s\n", o);
            return 2;
        }
    }
    if (view.width < 1 || view.height < 1 || view.width > 16384 || view.height > 16384 || view.pixel_size <= 0) {
        fprintf(stderr, "reloc-sim-scope: size must be 1..16384 pixels and pixel size positive\n");
        return 2;
    }
    if (!beam_given) {
        view.beam_x = (view.width - 1) / 2.0;
        view.beam_y = (view.height - 1) / 2.0;
    }
    size_t n = (size_t)view.width * view.height;
    float *expected = xmalloc(n * sizeof *expected);
    simscope_render(sample, &view, expected);
    int rc = 0;
    if (!as_float) {
        uint16_t *frame = xmalloc(n * sizeof *frame);
        simscope_expose(&view, expected, frame);
        for (size_t i = 0; i < n; i++) expected[i] = frame[i];
        free(frame);
    }
    if (image_write_tiff(argv[2], expected, view.width, view.height, !as_float, err, sizeof err) != 0) {
        fprintf(stderr, "reloc-sim-scope: %s\n", err);
        rc = 1;
    }
    printf("id,x_px,y_px,stage_x,stage_y,removed\n");
    for (int i = 0; i < sample->nfeatures; i++) {
        const simscope_feature *f = &sample->features[i];
        if (f->kind != FEATURE_PARTICLE) continue;
        double u, v, mx, my;
        simscope_sample_to_pixel(sample, &view, f->x, f->y, &u, &v);
        simscope_sample_to_stage(sample, f->x, f->y, &mx, &my);
        printf("%d,%.4f,%.4f,%.4f,%.4f,%d\n", f->id, u, v, mx, my, f->removed);
    }
    free(expected);
    simscope_free(sample);
    return rc;
}
