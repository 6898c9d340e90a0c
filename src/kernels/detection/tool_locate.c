/* tool_locate.c -- reloc-locate: finds particles in an image (or every frame of an HDF5 stack) the way
 * trackpy's locate does, optionally links them across frames, and prints the feature table as CSV and/or
 * writes it to HDF5. --repeat N times the detection alone (no file I/O) for benchmarks. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"
#include "formats/imageio/imageio.h"
#include "kernels/detection/detection.h"

static void usage(FILE *f)
{
    fputs("usage: reloc-locate IMAGE [options]\n"
          "  IMAGE: .tif/.tiff/.png, or file.h5:/dataset (2D, or 3D = one frame per index of the first axis)\n"
          "detection (trackpy's locate):\n"
          "  --diameter N         odd feature diameter in pixels (default 11)\n"
          "  --minmass M          keep features with mass > M (default 0)\n"
          "  --maxsize S          keep features with size < S (default: no limit)\n"
          "  --separation S       minimum separation (default diameter + 1)\n"
          "  --noise-size S       Gaussian sigma of the band pass (default 1)\n"
          "  --smoothing-size N   odd boxcar side of the band pass (default diameter)\n"
          "  --threshold T        band-pass clip level (default 1 for integer, 1/255 for float images)\n"
          "  --invert             features darker than the background\n"
          "  --percentile P       peak percentile among non-zero pixels (default 64)\n"
          "  --topn N             keep the N most massive features\n"
          "  --no-preprocess      no band pass\n"
          "  --max-iterations N   centroid re-centrings (default 10)\n"
          "  --no-characterize    skip size, ecc, signal, raw_mass, ep\n"
          "  --roi X,Y,W,H        locate only inside this rectangle\n"
          "  --ring               bright-field ring locator (adds column r)\n"
          "linking (frames of a stack):\n"
          "  --link               link frames into particle IDs (adds frame, particle columns)\n"
          "  --search-range R     largest displacement between frames in pixels (default diameter)\n"
          "  --memory N           frames a particle may vanish and keep its ID (default 0)\n"
          "  --drift-range R      also search for an unknown common displacement up to R pixels per frame\n"
          "  --shifts FILE        known displacement of the content per frame: line k is 'dy,dx' of frame k\n"
          "                       relative to frame k-1 (stage motion or registration); line 0 is ignored\n"
          "output:\n"
          "  --csv FILE           write CSV here instead of standard output ('-' = standard output)\n"
          "  --hdf5 FILE[:/group] also write the table to HDF5 (default group /features)\n"
          "  --repeat N           run detection N times per frame and report the time per run on stderr\n"
          "  --threads N          threads one frame is split over (default 0: one per CPU; same table)\n",
          f);
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return errno || end == s || *end ? -1 : 0;
}

static int parse_int(const char *s, int *out)
{
    double v;
    if (parse_double(s, &v) || v != floor(v) || fabs(v) > 1e9) return -1;
    *out = (int)v;
    return 0;
}

/* Reads count "dy,dx" lines (missing lines mean no displacement). Returns 0, or -1 with a message. */
static int read_shifts(const char *path, int count, double *dy, double *dx, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read shifts file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[256];
    int k = 0, rc = 0;
    while (k < count && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lf,%lf", &dy[k], &dx[k]) != 2 || !isfinite(dy[k]) || !isfinite(dx[k])) {
            snprintf(err, errlen, "%s line %d: expected 'dy,dx'", path, k + 1);
            rc = -1;
            break;
        }
        k++;
    }
    fclose(f);
    return rc;
}

static double sample_max_of(pixel_type type)
{
    return (type == PIX_F32 || type == PIX_F64) ? 0.0 : pixel_type_max(type);
}

enum {
    OPT_DIAMETER = 256, OPT_MINMASS, OPT_MAXSIZE, OPT_SEPARATION, OPT_NOISE, OPT_SMOOTHING, OPT_THRESHOLD,
    OPT_INVERT, OPT_PERCENTILE, OPT_TOPN, OPT_NO_PREPROCESS, OPT_MAX_ITER, OPT_NO_CHAR, OPT_ROI, OPT_RING,
    OPT_LINK, OPT_SEARCH, OPT_MEMORY, OPT_DRIFT, OPT_SHIFTS, OPT_CSV, OPT_HDF5, OPT_REPEAT, OPT_THREADS, OPT_HELP
};

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"diameter", required_argument, 0, OPT_DIAMETER}, {"minmass", required_argument, 0, OPT_MINMASS},
        {"maxsize", required_argument, 0, OPT_MAXSIZE}, {"separation", required_argument, 0, OPT_SEPARATION},
        {"noise-size", required_argument, 0, OPT_NOISE}, {"smoothing-size", required_argument, 0, OPT_SMOOTHING},
        {"threshold", required_argument, 0, OPT_THRESHOLD}, {"invert", no_argument, 0, OPT_INVERT},
        {"percentile", required_argument, 0, OPT_PERCENTILE}, {"topn", required_argument, 0, OPT_TOPN},
        {"no-preprocess", no_argument, 0, OPT_NO_PREPROCESS}, {"max-iterations", required_argument, 0, OPT_MAX_ITER},
        {"no-characterize", no_argument, 0, OPT_NO_CHAR}, {"roi", required_argument, 0, OPT_ROI},
        {"ring", no_argument, 0, OPT_RING}, {"link", no_argument, 0, OPT_LINK},
        {"search-range", required_argument, 0, OPT_SEARCH}, {"memory", required_argument, 0, OPT_MEMORY},
        {"drift-range", required_argument, 0, OPT_DRIFT}, {"shifts", required_argument, 0, OPT_SHIFTS},
        {"csv", required_argument, 0, OPT_CSV}, {"hdf5", required_argument, 0, OPT_HDF5},
        {"repeat", required_argument, 0, OPT_REPEAT}, {"threads", required_argument, 0, OPT_THREADS},
        {"help", no_argument, 0, OPT_HELP}, {0, 0, 0, 0},
    };
    int diameter = 11, smoothing = -1, ring = 0, link = 0, repeat = 0, bad = 0;
    double separation = -1, search_range = -1;
    const char *csv_path = "-", *hdf5_arg = NULL, *shifts_path = NULL;
    locate_params p;
    locate_params_default(&p, diameter);
    link_params lp = {.search_range = 0, .memory = 0, .drift_range = 0};
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_DIAMETER: bad |= parse_int(optarg, &diameter); break;
        case OPT_MINMASS: bad |= parse_double(optarg, &p.minmass); break;
        case OPT_MAXSIZE: bad |= parse_double(optarg, &p.maxsize); break;
        case OPT_SEPARATION: bad |= parse_double(optarg, &separation); break;
        case OPT_NOISE: bad |= parse_double(optarg, &p.noise_size); break;
        case OPT_SMOOTHING: bad |= parse_int(optarg, &smoothing); break;
        case OPT_THRESHOLD: bad |= parse_double(optarg, &p.threshold); break;
        case OPT_INVERT: p.invert = 1; break;
        case OPT_PERCENTILE: bad |= parse_double(optarg, &p.percentile); break;
        case OPT_TOPN: bad |= parse_int(optarg, &p.topn); break;
        case OPT_NO_PREPROCESS: p.preprocess = 0; break;
        case OPT_MAX_ITER: bad |= parse_int(optarg, &p.max_iterations); break;
        case OPT_NO_CHAR: p.characterize = 0; break;
        case OPT_ROI:
            if (sscanf(optarg, "%d,%d,%d,%d", &p.roi_x, &p.roi_y, &p.roi_width, &p.roi_height) != 4) bad = 1;
            break;
        case OPT_RING: ring = 1; break;
        case OPT_LINK: link = 1; break;
        case OPT_SEARCH: bad |= parse_double(optarg, &search_range); break;
        case OPT_MEMORY: bad |= parse_int(optarg, &lp.memory); break;
        case OPT_DRIFT: bad |= parse_double(optarg, &lp.drift_range); break;
        case OPT_SHIFTS: shifts_path = optarg; break;
        case OPT_CSV: csv_path = optarg; break;
        case OPT_HDF5: hdf5_arg = optarg; break;
        case OPT_REPEAT: bad |= parse_int(optarg, &repeat); break;
        case OPT_THREADS: bad |= parse_int(optarg, &p.threads); break;
        case OPT_HELP: case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "reloc-locate: bad value '%s' for --%s\n", optarg ? optarg : "", options[opt - OPT_DIAMETER].name);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    p.diameter = diameter;
    p.separation = separation >= 0 ? separation : diameter + 1;
    p.smoothing_size = smoothing >= 0 ? smoothing : diameter;
    lp.search_range = search_range >= 0 ? search_range : diameter;

    char err[512];
    if (locate_params_check(&p, err, sizeof err)) {
        fprintf(stderr, "reloc-locate: %s\n", err);
        return 2;
    }
    image_stack stack;
    if (image_stack_read(argv[optind], &stack, err, sizeof err)) {
        fprintf(stderr, "reloc-locate: %s\n", err);
        return 1;
    }
    locate_ctx *ctx = locate_ctx_create(&p, stack.width, stack.height, sample_max_of(stack.type), err, sizeof err);
    linker *lk = NULL;
    if (ctx && link) lk = linker_create(&lp, err, sizeof err);
    if (!ctx || (link && !lk)) {
        fprintf(stderr, "reloc-locate: %s\n", err);
        locate_ctx_free(ctx);
        image_stack_free(&stack);
        return 2;
    }
    int (*locate_fn)(locate_ctx *, const float *, int, locate_table *) = ring ? locate_rings : locate_frame;
    double *shift_y = xcalloc((size_t)stack.count, sizeof(double)), *shift_x = xcalloc((size_t)stack.count, sizeof(double));
    if (shifts_path && read_shifts(shifts_path, stack.count, shift_y, shift_x, err, sizeof err)) {
        fprintf(stderr, "reloc-locate: %s\n", err);
        free(shift_y);
        free(shift_x);
        linker_free(lk);
        locate_ctx_free(ctx);
        image_stack_free(&stack);
        return 2;
    }

    locate_table frame_table, all;
    locate_table_init(&frame_table);
    locate_table_init(&all);
    size_t frame_size = (size_t)stack.width * stack.height;
    double seconds = 0;
    for (int k = 0; k < stack.count; k++) {
        const float *frame = stack.data + (size_t)k * frame_size;
        int runs = repeat > 0 ? repeat : 1;
        double t0 = time_monotonic();
        for (int run = 0; run < runs; run++) locate_fn(ctx, frame, k, &frame_table);
        seconds += time_monotonic() - t0;
        if (lk) linker_link_frame(lk, &frame_table, k ? shift_x[k] : 0, k ? shift_y[k] : 0);
        locate_table_append(&all, &frame_table);
    }
    if (repeat > 0)
        fprintf(stderr, "time per frame: %.6f s (%d frames x %d runs, %dx%d)\n", seconds / (stack.count * (double)repeat),
                stack.count, repeat, p.roi_width ? p.roi_width : stack.width, p.roi_height ? p.roi_height : stack.height);

    int status = 0;
    FILE *out = strcmp(csv_path, "-") == 0 ? stdout : fopen(csv_path, "w");
    if (!out) {
        fprintf(stderr, "reloc-locate: cannot write %s: %s\n", csv_path, strerror(errno));
        status = 1;
    } else {
        if (locate_table_write_csv(&all, out, link || stack.count > 1) != 0) status = 1;
        if (out != stdout && fclose(out) != 0) status = 1;
        if (status) fprintf(stderr, "reloc-locate: writing %s failed\n", csv_path);
    }
    if (hdf5_arg) {
        char path[4096];
        str_copy(path, hdf5_arg, sizeof path);
        const char *group = "/features";
        char *colon = strstr(path, ":/");
        if (colon) {
            *colon = '\0';
            group = colon + 1;
        }
        if (locate_table_write_hdf5(&all, path, group, &p, err, sizeof err)) {
            fprintf(stderr, "reloc-locate: %s\n", err);
            status = 1;
        }
    }
    free(shift_y);
    free(shift_x);
    locate_table_free(&frame_table);
    locate_table_free(&all);
    linker_free(lk);
    locate_ctx_free(ctx);
    image_stack_free(&stack);
    return status;
}
