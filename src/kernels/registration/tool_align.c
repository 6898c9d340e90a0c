/* tool_align.c -- reloc-align: aligns an image stack by translation and writes the aligned stack and the shifts.
 *
 *   reloc-align STACK|IMAGE... [--output OUT.h5] [--reference K] [--neighbours]
 *       [--pixel-sizes LIST|FILE.h5:/dataset] [--energies LIST|FILE.h5:/dataset] [--upsample N] [--window W]
 *       [--whitening P] [--band-low F] [--band-high F] [--min-psr V] [--threads N] [--pixel-size UM]
 *
 * STACK is a 3D HDF5 dataset ("file.h5:/data", frames along the first axis); several IMAGE arguments are frames
 * of the same size in that order. Every frame is registered to frame K (default 0), or with --neighbours to its
 * neighbour toward K (the aligned neighbour, so the chain follows slow drift). Per-frame pixel sizes (LIST:
 * comma-separated numbers) or energies (pixel size proportional to the energy) bring each frame to the
 * reference's pixel size first. OUT.h5 receives /aligned (float32, count x height x width, the frame's mean
 * where it has no data), and per frame /shift_x, /shift_y (pixels of that frame, content displacement as reloc-register
 * reports it), /shift_x_um, /shift_y_um (with --pixel-size), /scale, /psr, /error, /confident.
 * Prints one JSON object with the per-frame results; progress goes to stderr. Exit status 0, 1 on failure,
 * 2 for usage. */
#include "formats/imageio/imageio.h"
#include "kernels/registration/registration.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"
#include "formats/h5array/h5array.h"
#include "core/toolargs/toolargs.h"

static int usage(void)
{
    fprintf(stderr, "usage: reloc-align STACK|IMAGE... [--output OUT.h5] [--reference K] [--neighbours] "
                    "[--pixel-sizes LIST|FILE.h5:/dataset] [--energies LIST|FILE.h5:/dataset] [--upsample N] "
                    "[--window hann|tukey|none] [--whitening P] [--band-low F] [--band-high F] [--min-psr V] "
                    "[--threads N] [--pixel-size UM]\n");
    return 2;
}

/* Reads count numbers from "a,b,c" or from a 1D HDF5 dataset "file.h5:/path". */
static int read_numbers(const char *spec, int count, double *out, char *err, size_t errlen)
{
    if (strstr(spec, ":/")) {
        char file[1024], dset[512];
        h5array a = {0};
        int ok = h5array_split(spec, NULL, file, sizeof file, dset, sizeof dset) == 0 &&
                 h5array_read(file, dset, &a, err, errlen) == 0 && a.rank == 1 && (int)a.dims[0] == count;
        if (ok) memcpy(out, a.data, sizeof(double) * count);
        else if (a.data) snprintf(err, errlen, "%s: not a 1D dataset of %d numbers", spec, count);
        h5array_free(&a);
        return ok ? 0 : -1;
    }
    const char *s = spec;
    for (int i = 0; i < count; i++) {
        char item[64];
        size_t len = strcspn(s, ",");
        snprintf(item, sizeof item, "%.*s", (int)len, s);
        if (len >= sizeof item || toolargs_double(item, &out[i]) != 0 || (i < count - 1) != (s[len] == ',')) {
            snprintf(err, errlen, "'%s' is not a list of %d comma-separated numbers", spec, count);
            return -1;
        }
        s += len + 1;
    }
    return 0;
}

static int write_output(const char *path, const image_stack *st, const float *aligned, const reg_result *r,
                        int with_um, char *err, size_t errlen)
{
    h5out *out = h5out_create(path, err, errlen);
    if (!out) return -1;
    size_t dims[3] = {(size_t)st->count, (size_t)st->height, (size_t)st->width}, n = (size_t)st->count;
    h5out_write_float(out, "/aligned", aligned, 3, dims);
    static const char *names[] = {"/shift_x", "/shift_y", "/shift_x_um", "/shift_y_um", "/scale", "/psr",
                                  "/correlation", "/error", "/confident"};
    double *col = xmalloc(sizeof(double) * st->count);
    for (int c = 0; c < 9; c++) {
        if ((c == 2 || c == 3) && !with_um) continue;
        for (int k = 0; k < st->count; k++) {
            const reg_result *x = &r[k];
            double v[9] = {x->shift_x, x->shift_y, x->shift_x_um, x->shift_y_um, x->scale, x->psr,
                           x->correlation, x->error, x->confident};
            col[k] = v[c];
        }
        h5out_write_double(out, names[c], col, 1, &n);
    }
    free(col);
    return h5out_close(out, err, errlen);
}

static void print_progress(int done, int total, void *arg)
{
    (void)arg;
    fprintf(stderr, "reloc-align: %d/%d frames\n", done, total);
}

/* Frames from one 3D dataset, or from several images of one size. */
static int read_frames(char **paths, int npaths, image_stack *st, char *err, size_t errlen)
{
    if (npaths == 1) return image_stack_read(paths[0], st, err, errlen);
    memset(st, 0, sizeof *st);
    for (int i = 0; i < npaths; i++) {
        image img;
        if (image_read(paths[i], &img, err, errlen) != 0) return -1;
        if (i == 0) {
            st->width = img.width;
            st->height = img.height;
            st->type = img.type;
            st->data = xmalloc(sizeof(float) * (size_t)img.width * img.height * npaths);
        } else if (img.width != st->width || img.height != st->height) {
            snprintf(err, errlen, "%s is %dx%d, the first frame %dx%d", paths[i], img.width, img.height,
                     st->width, st->height);
            image_free(&img);
            return -1;
        }
        memcpy(st->data + (size_t)i * img.width * img.height, img.data, sizeof(float) * img.width * img.height);
        st->count = i + 1;
        image_free(&img);
    }
    return 0;
}

int main(int argc, char **argv)
{
    reg_params p;
    reg_params_default(&p);
    char **paths = xcalloc(argc, sizeof *paths);
    const char *output = NULL, *sizes_spec = NULL, *energies_spec = NULL;
    int npaths = 0, ref_index = 0, neighbours = 0;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strncmp(a, "--", 2) != 0) paths[npaths++] = argv[i];
        else if (strcmp(a, "--neighbours") == 0) neighbours = 1;
        else if (!val) { free(paths); return usage(); }
        else {
            i++;
            if (strcmp(a, "--output") == 0) output = val;
            else if (strcmp(a, "--pixel-sizes") == 0) sizes_spec = val;
            else if (strcmp(a, "--energies") == 0) energies_spec = val;
            else if (strcmp(a, "--reference") == 0) {
                if (toolargs_int(val, 0, 1 << 30, &ref_index) != 0) ref_index = -1;
            } else if (reg_params_set(&p, a + 2, val, err, sizeof err) != 0) {
                fprintf(stderr, "reloc-align: %s\n", err);
                free(paths);
                return 2;
            }
        }
    }
    if (npaths < 1 || (sizes_spec && energies_spec)) {
        free(paths);
        return usage();
    }
    image_stack st;
    int rc = 1;
    if (read_frames(paths, npaths, &st, err, sizeof err) != 0) {
        fprintf(stderr, "reloc-align: %s\n", err);
        free(paths);
        if (npaths > 1) free(st.data);
        return 1;
    }
    free(paths);
    double *scale = NULL;
    const char *spec = sizes_spec ? sizes_spec : energies_spec;
    if (spec) {
        scale = xmalloc(sizeof(double) * st.count);
        if (read_numbers(spec, st.count, scale, err, sizeof err) != 0) goto done;
    }
    reg_result *results = xcalloc(st.count, sizeof *results);
    float *aligned = xmalloc(sizeof(float) * (size_t)st.width * st.height * st.count);
    if (reg_align_stack(st.data, st.width, st.height, st.count, ref_index, neighbours, scale, &p, results, aligned,
                        print_progress, NULL, err, sizeof err) == 0 &&
        (!output || write_output(output, &st, aligned, results, p.pixel_size > 0, err, sizeof err) == 0)) {
        cJSON *o = cJSON_CreateObject(), *frames = cJSON_AddArrayToObject(o, "frames");
        cJSON_AddNumberToObject(o, "count", st.count);
        cJSON_AddNumberToObject(o, "reference", ref_index);
        cJSON_AddStringToObject(o, "mode", neighbours ? "neighbours" : "reference");
        int confident = 0;
        for (int k = 0; k < st.count; k++) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddNumberToObject(f, "shift_x", results[k].shift_x);
            cJSON_AddNumberToObject(f, "shift_y", results[k].shift_y);
            cJSON_AddNumberToObject(f, "scale", results[k].scale);
            cJSON_AddNumberToObject(f, "psr", results[k].psr);
            cJSON_AddNumberToObject(f, "correlation", results[k].correlation);
            cJSON_AddNumberToObject(f, "error", results[k].error);
            cJSON_AddBoolToObject(f, "confident", results[k].confident);
            cJSON_AddItemToArray(frames, f);
            confident += results[k].confident;
        }
        cJSON_AddNumberToObject(o, "confident_frames", confident);
        char *text = cJSON_PrintUnformatted(o);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(o);
        rc = 0;
    }
    free(results);
    free(aligned);
done:
    if (rc != 0) fprintf(stderr, "reloc-align: %s\n", err);
    free(scale);
    image_stack_free(&st);
    return rc;
}
