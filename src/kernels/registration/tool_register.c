/* tool_register.c -- reloc-register: registers a moving image against a reference and prints the result as
 * one JSON object on stdout.
 *
 *   reloc-register REF MOVING [--similarity] [--upsample N] [--window hann|tukey|none] [--tukey-alpha A]
 *       [--whitening P] [--band-low F] [--band-high F] [--contrast-invariant] [--min-psr V]
 *       [--min-correlation C] [--max-error PX] [--overlap-windows 0|1] [--iterations N]
 *       [--tolerance PX] [--threads N] [--effort estimate|measure|patient] [--wisdom FILE] [--pixel-size UM] [--moving-pixel-size UM]
 *       [--roi-ref X,Y,W,H] [--roi-moving X,Y,W,H] [--repeat N]
 *
 * REF and MOVING are anything image_read accepts. Pixel sizes default to those in the files; when both images'
 * pixel sizes are known and differ, the finer image is first resampled to the coarser pixel size (so scale
 * ratios far beyond 0.5-2 register), and the result is given back in the original images' pixels. --repeat N
 * registers N more times and adds the time per call, excluding file I/O, under "timing" (wall and CPU seconds,
 * also with the reference transformed every time, and the CPU seconds of the bare forward + inverse FFT of the
 * frame, the floor).
 * Exit status: 0 with a result (check "confident"), 1 when an image cannot be read or registered, 2 for usage. */
#include "formats/imageio/imageio.h"
#include "kernels/registration/registration.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"
#include "core/toolargs/toolargs.h"

static int usage(void)
{
    fprintf(stderr, "usage: reloc-register REF MOVING [--similarity] [--upsample N] [--window hann|tukey|none] "
                    "[--tukey-alpha A] [--whitening P] [--band-low F] [--band-high F] [--contrast-invariant] "
                    "[--min-psr V] [--min-correlation C] [--max-error PX] [--overlap-windows 0|1] [--iterations N] "
                    "[--tolerance PX] [--threads N] "
                    "[--effort estimate|measure|patient] "
                    "[--wisdom FILE] [--pixel-size UM] [--moving-pixel-size UM] [--roi-ref X,Y,W,H] "
                    "[--roi-moving X,Y,W,H] [--repeat N]\n");
    return 2;
}

static int parse_roi(const char *s, reg_view *v)
{
    char tail;
    return sscanf(s, "%d,%d,%d,%d%c", &v->roi_x, &v->roi_y, &v->roi_w, &v->roi_h, &tail) == 4 && v->roi_w > 0 &&
                   v->roi_h > 0 ? 0 : -1;
}

/* Replaces img by its resampling to factor (ROI scaled along), when factor != 1. */
static void resample_image(image *img, reg_view *v, double factor)
{
    if (factor == 1) return;
    int w, h;
    float *data = reg_resample(img->data, img->width, img->height, factor, &w, &h);
    free(img->data);
    img->data = data;
    img->width = w;
    img->height = h;
    v->roi_x = (int)floor(v->roi_x * factor);
    v->roi_y = (int)floor(v->roi_y * factor);
    v->roi_w = (int)floor(v->roi_w * factor);
    v->roi_h = (int)floor(v->roi_h * factor);
}

/* Seconds per call of a registration loop, wall and CPU (the CPU figure is steadier on a shared machine), and
 * of the live loop's CPU the part inside FFTW (fft_cpu). */
typedef struct timing {
    int repeat;
    double wall, cpu, fft_cpu, pair_wall, pair_cpu, floor_cpu;
} timing;

static void print_json(const reg_result *r, const reg_params *p, int similarity, int fw, int fh, double f_ref,
                       double f_mov, const timing *tm)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "mode", similarity ? "similarity" : "translation");
    cJSON_AddNumberToObject(o, "shift_x", r->shift_x);
    cJSON_AddNumberToObject(o, "shift_y", r->shift_y);
    if (p->pixel_size > 0) {
        cJSON_AddNumberToObject(o, "shift_x_um", r->shift_x_um);
        cJSON_AddNumberToObject(o, "shift_y_um", r->shift_y_um);
        cJSON_AddNumberToObject(o, "pixel_size_um", p->pixel_size);
    }
    cJSON_AddNumberToObject(o, "angle_deg", r->angle_deg);
    cJSON_AddNumberToObject(o, "scale", r->scale);
    cJSON_AddNumberToObject(o, "center_x", r->center_x);
    cJSON_AddNumberToObject(o, "center_y", r->center_y);
    cJSON_AddNumberToObject(o, "correlation", r->correlation);
    cJSON_AddNumberToObject(o, "min_correlation", p->min_correlation);
    cJSON_AddNumberToObject(o, "error", r->error);
    cJSON_AddNumberToObject(o, "phasediff", r->phasediff);
    cJSON_AddNumberToObject(o, "peak", r->peak);
    cJSON_AddNumberToObject(o, "psr", r->psr);
    cJSON_AddNumberToObject(o, "min_psr", p->min_psr);
    cJSON_AddNumberToObject(o, "error_px", r->error_px);
    cJSON_AddNumberToObject(o, "max_error_px", p->max_error);
    if (similarity) {
        cJSON_AddNumberToObject(o, "iterations", r->iterations);
        cJSON_AddBoolToObject(o, "converged", r->converged);
    }
    cJSON_AddBoolToObject(o, "confident", r->confident);
    cJSON_AddNumberToObject(o, "upsample", p->upsample);
    cJSON_AddNumberToObject(o, "frame_width", fw);
    cJSON_AddNumberToObject(o, "frame_height", fh);
    cJSON_AddNumberToObject(o, "ref_resampled", f_ref);
    cJSON_AddNumberToObject(o, "moving_resampled", f_mov);
    if (tm->repeat > 0) {
        cJSON *t = cJSON_AddObjectToObject(o, "timing");
        cJSON_AddNumberToObject(t, "repeat", tm->repeat);
        cJSON_AddNumberToObject(t, "seconds_per_registration", tm->wall);
        cJSON_AddNumberToObject(t, "cpu_seconds_per_registration", tm->cpu);
        /* Similarity's rotation and scale stages run on correlators reg_fft_seconds does not count. */
        if (!similarity) cJSON_AddNumberToObject(t, "cpu_seconds_in_fft_per_registration", tm->fft_cpu);
        cJSON_AddNumberToObject(t, "seconds_per_pair", tm->pair_wall);
        cJSON_AddNumberToObject(t, "cpu_seconds_per_pair", tm->pair_cpu);
        cJSON_AddNumberToObject(t, "cpu_seconds_transform_floor", tm->floor_cpu);
    }
    char *text = cJSON_PrintUnformatted(o);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
}

/* What the command line asks for. */
typedef struct register_options {
    reg_params p;
    reg_view ref, mov;             /* their ROIs (--roi-ref, --roi-moving) */
    const char *paths[2], *wisdom;
    int similarity, repeat;
    double ref_px, mov_px;         /* pixel sizes given on the command line; < 0: the files' */
} register_options;

/* Parses the command line into o; returns -1 to go on, or the exit status (2 for bad usage). */
static int parse_options(int argc, char **argv, register_options *o)
{
    memset(o, 0, sizeof *o);
    reg_params_default(&o->p);
    o->ref_px = o->mov_px = -1;
    int npaths = 0;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strncmp(a, "--", 2) != 0) {
            if (npaths == 2) return usage();
            o->paths[npaths++] = a;
        } else if (strcmp(a, "--similarity") == 0) o->similarity = 1;
        else if (strcmp(a, "--contrast-invariant") == 0) o->p.contrast_invariant = 1;
        else if (!val) return usage();
        else {
            i++;
            int ok = 1;
            if (strcmp(a, "--wisdom") == 0) o->wisdom = val;
            else if (strcmp(a, "--pixel-size") == 0) ok = toolargs_double(val, &o->ref_px) == 0;
            else if (strcmp(a, "--moving-pixel-size") == 0) ok = toolargs_double(val, &o->mov_px) == 0;
            else if (strcmp(a, "--repeat") == 0) ok = toolargs_int(val, 0, 1000000, &o->repeat) == 0;
            else if (strcmp(a, "--roi-ref") == 0) ok = parse_roi(val, &o->ref) == 0;
            else if (strcmp(a, "--roi-moving") == 0) ok = parse_roi(val, &o->mov) == 0;
            else if (reg_params_set(&o->p, a + 2, val, err, sizeof err) != 0) {
                fprintf(stderr, "reloc-register: %s\n", err);
                return 2;
            }
            if (!ok) {
                fprintf(stderr, "reloc-register: bad value for %s: '%s'\n", a, val);
                return 2;
            }
        }
    }
    return npaths != 2 || o->repeat < 0 ? usage() : -1;
}

/* --repeat: times the live case first (reference stored once, one moving frame per call), then the reference's
 * transform included, as tools that take a pair each time do. */
static void time_runs(reg_ctx *ctx, const register_options *o, const reg_view *ref, const reg_view *mov,
                      int (*run)(reg_ctx *, const reg_view *, reg_result *, char *, size_t), timing *tm)
{
    char err[512];
    reg_result scratch;
    double t0 = time_monotonic(), c0 = time_process_cpu(), fft0 = reg_fft_seconds(ctx);
    for (int i = 0; i < o->repeat; i++) run(ctx, mov, &scratch, err, sizeof err);
    double t1 = time_monotonic(), c1 = time_process_cpu();
    tm->cpu = (c1 - c0) / o->repeat;
    tm->fft_cpu = (reg_fft_seconds(ctx) - fft0) / o->repeat;
    for (int i = 0; i < o->repeat; i++) {
        reg_set_reference(ctx, ref, err, sizeof err);
        run(ctx, mov, &scratch, err, sizeof err);
    }
    tm->wall = (t1 - t0) / o->repeat;
    tm->pair_wall = (time_monotonic() - t1) / o->repeat;
    tm->pair_cpu = (time_process_cpu() - c1) / o->repeat;
    tm->floor_cpu = reg_transform_floor(ctx, o->repeat);
}

/* Registers the two images of o (resampled to a common pixel size); prints the JSON result. Exit status. */
static int run_registration(register_options *o, image img[2])
{
    char err[512];
    double ref_px = o->ref_px >= 0 ? o->ref_px : img[0].pixel_size_x;
    double mov_px = o->mov_px >= 0 ? o->mov_px : img[1].pixel_size_x;
    if (!(ref_px >= 0 && mov_px >= 0)) {
        fprintf(stderr, "reloc-register: pixel sizes must be >= 0\n");
        return 2;
    }
    /* Both pixel sizes known: bring the finer image to the coarser pixel size. */
    double f_ref = 1, f_mov = 1;
    if (ref_px > 0 && mov_px > 0 && fabs(ref_px / mov_px - 1) > 1e-3) {
        if (ref_px < mov_px) f_ref = ref_px / mov_px;
        else f_mov = mov_px / ref_px;
    }
    reg_params *p = &o->p;
    reg_view ref = o->ref, mov = o->mov;
    p->pixel_size = ref_px > mov_px ? ref_px : mov_px;
    resample_image(&img[0], &ref, f_ref);
    resample_image(&img[1], &mov, f_mov);
    ref.data = img[0].data, ref.width = img[0].width, ref.height = img[0].height;
    mov.data = img[1].data, mov.width = img[1].width, mov.height = img[1].height;
    int fw = ref.roi_w > 0 ? ref.roi_w : ref.width, fh = ref.roi_h > 0 ? ref.roi_h : ref.height;
    int mw = mov.roi_w > 0 ? mov.roi_w : mov.width, mh = mov.roi_h > 0 ? mov.roi_h : mov.height;
    if (mw > fw) fw = mw;
    if (mh > fh) fh = mh;

    int rc = 1;
    if (o->wisdom) reg_wisdom_load(o->wisdom);   /* a missing file only means nothing was measured yet */
    reg_ctx *ctx = reg_create(fw, fh, p, o->similarity, err, sizeof err);
    reg_result r;
    int (*run)(reg_ctx *, const reg_view *, reg_result *, char *, size_t) = o->similarity ? reg_similarity
                                                                                         : reg_translate;
    if (ctx && reg_set_reference(ctx, &ref, err, sizeof err) == 0 && run(ctx, &mov, &r, err, sizeof err) == 0) {
        timing tm = {.repeat = o->repeat};
        if (tm.repeat > 0) time_runs(ctx, o, &ref, &mov, run, &tm);
        reg_result_unresample(&r, f_ref, f_mov);
        print_json(&r, p, o->similarity, fw, fh, f_ref, f_mov, &tm);
        rc = 0;
        if (o->wisdom && reg_wisdom_save(o->wisdom) != 0)
            fprintf(stderr, "reloc-register: cannot write %s\n", o->wisdom);
    } else {
        fprintf(stderr, "reloc-register: %s\n", err);
    }
    reg_destroy(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    register_options o;
    int status = parse_options(argc, argv, &o);
    if (status >= 0) return status;
    image img[2];
    char err[512];
    for (int k = 0; k < 2; k++) {
        if (image_read(o.paths[k], &img[k], err, sizeof err) != 0) {
            fprintf(stderr, "reloc-register: %s\n", err);
            if (k) image_free(&img[0]);
            return 1;
        }
    }
    status = run_registration(&o, img);
    image_free(&img[0]);
    image_free(&img[1]);
    return status;
}
