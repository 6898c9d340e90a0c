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
#include "formats/h5array/h5array.h"
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

/* What the command line asks for. */
typedef struct locate_options {
    locate_params p;
    link_params lp;
    int ring, link, repeat;
    const char *input, *csv_path, *hdf5_arg, *shifts_path;
} locate_options;

/* Parses the command line into o; returns -1 to go on, or the exit status (0 after --help, 2 for bad usage). */
static int parse_options(int argc, char **argv, locate_options *o)
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
    int diameter = 11, smoothing = -1, bad = 0;
    double separation = -1, search_range = -1;
    memset(o, 0, sizeof *o);
    o->csv_path = "-";
    locate_params *p = &o->p;
    locate_params_default(p, diameter);
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_DIAMETER: bad |= parse_int(optarg, &diameter); break;
        case OPT_MINMASS: bad |= parse_double(optarg, &p->minmass); break;
        case OPT_MAXSIZE: bad |= parse_double(optarg, &p->maxsize); break;
        case OPT_SEPARATION: bad |= parse_double(optarg, &separation); break;
        case OPT_NOISE: bad |= parse_double(optarg, &p->noise_size); break;
        case OPT_SMOOTHING: bad |= parse_int(optarg, &smoothing); break;
        case OPT_THRESHOLD: bad |= parse_double(optarg, &p->threshold); break;
        case OPT_INVERT: p->invert = 1; break;
        case OPT_PERCENTILE: bad |= parse_double(optarg, &p->percentile); break;
        case OPT_TOPN: bad |= parse_int(optarg, &p->topn); break;
        case OPT_NO_PREPROCESS: p->preprocess = 0; break;
        case OPT_MAX_ITER: bad |= parse_int(optarg, &p->max_iterations); break;
        case OPT_NO_CHAR: p->characterize = 0; break;
        case OPT_ROI:
            if (sscanf(optarg, "%d,%d,%d,%d", &p->roi_x, &p->roi_y, &p->roi_width, &p->roi_height) != 4) bad = 1;
            break;
        case OPT_RING: o->ring = 1; break;
        case OPT_LINK: o->link = 1; break;
        case OPT_SEARCH: bad |= parse_double(optarg, &search_range); break;
        case OPT_MEMORY: bad |= parse_int(optarg, &o->lp.memory); break;
        case OPT_DRIFT: bad |= parse_double(optarg, &o->lp.drift_range); break;
        case OPT_SHIFTS: o->shifts_path = optarg; break;
        case OPT_CSV: o->csv_path = optarg; break;
        case OPT_HDF5: o->hdf5_arg = optarg; break;
        case OPT_REPEAT: bad |= parse_int(optarg, &o->repeat); break;
        case OPT_THREADS: bad |= parse_int(optarg, &p->threads); break;
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
    o->input = argv[optind];
    p->diameter = diameter;
    p->separation = separation >= 0 ? separation : diameter + 1;
    p->smoothing_size = smoothing >= 0 ? smoothing : diameter;
    o->lp.search_range = search_range >= 0 ? search_range : diameter;
    char err[512];
    if (locate_params_check(p, err, sizeof err)) {
        fprintf(stderr, "reloc-locate: %s\n", err);
        return 2;
    }
    return -1;
}

/* Locates (and links) the features of every frame of stack into all; times the detection with --repeat. */
static void locate_stack(const locate_options *o, const image_stack *stack, locate_ctx *ctx, linker *lk,
                         const double *shift_y, const double *shift_x, locate_table *all)
{
    int (*locate_fn)(locate_ctx *, const float *, int, locate_table *) = o->ring ? locate_rings : locate_frame;
    locate_table frame_table;
    locate_table_init(&frame_table);
    size_t frame_size = (size_t)stack->width * stack->height;
    double seconds = 0;
    for (int k = 0; k < stack->count; k++) {
        const float *frame = stack->data + (size_t)k * frame_size;
        int runs = o->repeat > 0 ? o->repeat : 1;
        double t0 = time_monotonic();
        for (int run = 0; run < runs; run++) locate_fn(ctx, frame, k, &frame_table);
        seconds += time_monotonic() - t0;
        if (lk) linker_link_frame(lk, &frame_table, k ? shift_x[k] : 0, k ? shift_y[k] : 0);
        locate_table_append(all, &frame_table);
    }
    locate_table_free(&frame_table);
    if (o->repeat > 0)
        fprintf(stderr, "time per frame: %.6f s (%d frames x %d runs, %dx%d)\n",
                seconds / (stack->count * (double)o->repeat), stack->count, o->repeat,
                o->p.roi_width ? o->p.roi_width : stack->width, o->p.roi_height ? o->p.roi_height : stack->height);
}

/* Writes the table as CSV (with frame and particle columns for stacks and links) and, with --hdf5, to HDF5;
 * returns the exit status. */
static int write_table(const locate_options *o, const locate_table *all, int with_ids)
{
    int status = 0;
    FILE *out = strcmp(o->csv_path, "-") == 0 ? stdout : fopen(o->csv_path, "w");
    if (!out) {
        fprintf(stderr, "reloc-locate: cannot write %s: %s\n", o->csv_path, strerror(errno));
        status = 1;
    } else {
        if (locate_table_write_csv(all, out, with_ids) != 0) status = 1;
        if (out != stdout && fclose(out) != 0) status = 1;
        if (status) fprintf(stderr, "reloc-locate: writing %s failed\n", o->csv_path);
    }
    if (o->hdf5_arg) {
        char path[4096], group[1024], err[512];
        if (h5array_split(o->hdf5_arg, "/features", path, sizeof path, group, sizeof group) != 0) {
            fprintf(stderr, "reloc-locate: bad --hdf5 '%s'\n", o->hdf5_arg);
            status = 1;
        } else if (locate_table_write_hdf5(all, path, group, &o->p, err, sizeof err)) {
            fprintf(stderr, "reloc-locate: %s\n", err);
            status = 1;
        }
    }
    return status;
}

static int run(const locate_options *o)
{
    char err[512];
    image_stack stack;
    if (image_stack_read(o->input, &stack, err, sizeof err)) {
        fprintf(stderr, "reloc-locate: %s\n", err);
        return 1;
    }
    int status = 2;
    locate_ctx *ctx = locate_ctx_create(&o->p, stack.width, stack.height, sample_max_of(stack.type), err, sizeof err);
    linker *lk = NULL;
    double *shift_y = xcalloc((size_t)stack.count, sizeof(double)), *shift_x = xcalloc((size_t)stack.count, sizeof(double));
    if (ctx && o->link) lk = linker_create(&o->lp, err, sizeof err);
    if (!ctx || (o->link && !lk) ||
        (o->shifts_path && read_shifts(o->shifts_path, stack.count, shift_y, shift_x, err, sizeof err))) {
        fprintf(stderr, "reloc-locate: %s\n", err);
    } else {
        locate_table all;
        locate_table_init(&all);
        locate_stack(o, &stack, ctx, lk, shift_y, shift_x, &all);
        status = write_table(o, &all, o->link || stack.count > 1);
        locate_table_free(&all);
    }
    free(shift_y);
    free(shift_x);
    linker_free(lk);
    locate_ctx_free(ctx);
    image_stack_free(&stack);
    return status;
}

int main(int argc, char **argv)
{
    locate_options o;
    int status = parse_options(argc, argv, &o);
    return status >= 0 ? status : run(&o);
}
