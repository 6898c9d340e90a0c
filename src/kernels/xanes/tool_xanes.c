/* tool_xanes.c -- reloc-xanes: white-line analysis of an XANES stack from the command line.
 *
 *   reloc-xanes stack.h5[:/data] [--energy /energy] --edge Ni [options]     HDF5 stack with an energy axis
 *   reloc-xanes list.txt --edge Ni [options]                                 file list: "energy_eV path" lines
 *
 * The HDF5 dataset is (energies, y, x) for images or (energies, z, y, x) for volumes; the energy dataset holds
 * eV, or keV when it has the attribute units = "keV". A list names one image or volume per line (TIFF, PNG,
 * "file.h5:/dataset" of rank 2 or 3), paths relative to the list's folder; '#' starts a comment.
 * Writes the maps, mask, histogram and summary to HDF5, PNGs of the map (middle slice for volumes) and the
 * histogram, and prints the summary on stdout.
 */
#include "core/base/base.h"
#include "formats/h5array/h5array.h"
#include "formats/imageio/imageio.h"
#include "core/toolargs/toolargs.h"
#include "kernels/xanes/xanes.h"

#include <getopt.h>
#include <limits.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xraylib.h>

#define PATH_LEN 4096

static void usage(FILE *f)
{
    fprintf(f,
            "usage: reloc-xanes STACK.h5[:/data] | LIST.txt [options]\n"
            "  --energy DSET        energy dataset in the stack file (default /energy; eV, or attribute units=keV)\n"
            "  --edge EL            absorbing element (e.g. Ni): K-edge energy for the edge-jump mask\n"
            "  --edge-energy EV     edge energy in eV instead of --edge\n"
            "  --order N            polynomial order 2 (default), 3 or 4\n"
            "  --window LO:HI       fit window in eV (default: summed-spectrum maximum +- --half-width)\n"
            "  --half-width EV      half width of the automatic window (default 5)\n"
            "  --bin N | NXxNYxNZ   super-voxel binning (e.g. 5 or 5x5x5)\n"
            "  --mask edge-jump|mean --threshold T   analyse only voxels above T\n"
            "  --bins N             histogram bins (default 100)\n"
            "  --threads N          worker threads (default: one per CPU)\n"
            "  -o, --output FILE    HDF5 output (default: STACK stem + _xanes.h5)\n"
            "  --png PREFIX         write PREFIX_map.png and PREFIX_hist.png (default: output stem)\n");
}

static int parse_bin(const char *s, int bin[3])
{
    int n = sscanf(s, "%dx%dx%d", &bin[0], &bin[1], &bin[2]);
    if (n == 1) bin[1] = bin[2] = bin[0];
    else if (n == 2) bin[2] = 1;
    else if (n != 3) return -1;
    return bin[0] >= 1 && bin[1] >= 1 && bin[2] >= 1 ? 0 : -1;
}

static int edge_energy_ev(const char *symbol, double *out)
{
    xrl_error *e = NULL;
    int z = SymbolToAtomicNumber(symbol, &e);
    if (e) { xrl_error_free(e); return -1; }
    double kev = EdgeEnergy(z, K_SHELL, &e);
    if (e) { xrl_error_free(e); return -1; }
    *out = kev * 1000.0;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Frees stack samples read into memory, or unmaps them. */
static void release_stack_data(float *data, h5array_mapping *mapping)
{
    if (mapping->base) h5array_unmap(mapping);
    else free(data);
}

/* HDF5 stack: (E, y, x) or (E, z, y, x) plus the energy dataset. A contiguous float32 stack is mapped from the file
 * (*mapping set: the stack's data is the mapping, which the caller releases after the analysis, the stack never
 * writes it); any other is read as float straight into the stack (mapping->base NULL). */
static int load_hdf5_stack(const char *location, const char *energy_dset, xanes_stack *s, h5array_mapping *mapping,
                           char *err, size_t errlen)
{
    char file[PATH_LEN], dset[PATH_LEN];
    if (h5array_split(location, "/data", file, sizeof file, dset, sizeof dset) != 0) {
        snprintf(err, errlen, "bad stack location '%s'", location);
        return -1;
    }
    h5array shape, energy;
    char why[256];
    float *data = (float *)h5array_map_float(file, dset, &shape, mapping, why, sizeof why);
    if (!data) {
        log_info("xanes", "stack read into memory, not mapped: %s", why);
        if (!(data = h5array_read_float(file, dset, &shape, err, errlen))) return -1;
    }
    if (h5array_read(file, energy_dset, &energy, err, errlen) != 0) {
        release_stack_data(data, mapping);
        return -1;
    }
    int rc = -1;
    size_t ne = h5array_count(&energy);
    if (shape.rank != 3 && shape.rank != 4) {
        snprintf(err, errlen, "%s:%s has rank %d; expected (energy, y, x) or (energy, z, y, x)", file, dset,
                 shape.rank);
    } else if (energy.rank != 1) {
        snprintf(err, errlen, "%s:%s has rank %d; expected one energy per image (rank 1, %zu values)", file,
                 energy_dset, energy.rank, shape.dims[0]);
    } else if (ne != shape.dims[0]) {
        snprintf(err, errlen, "%s:%s holds %zu values but the stack has %zu energies", file, energy_dset, ne,
                 shape.dims[0]);
    } else if (ne > INT_MAX) {
        snprintf(err, errlen, "%s:%s: too many energies (%zu)", file, dset, ne);
    } else {
        char units[32];
        if (h5array_read_attr_string(file, energy_dset, "units", units, sizeof units) == 0 &&
            strcasecmp(units, "keV") == 0)
            for (size_t k = 0; k < ne; k++) energy.data[k] *= 1000.0;
        int nz = shape.rank == 4 ? (int)shape.dims[1] : 1;
        int ny = (int)shape.dims[shape.rank - 2], nx = (int)shape.dims[shape.rank - 1];
        rc = xanes_stack_adopt(s, nx, ny, nz, (int)ne, energy.data, data, err, errlen);
    }
    if (rc != 0) {
        release_stack_data(data, mapping);
        h5array_free(&energy);
    }
    return rc;
}

/* One list entry: 2D image through imageio, or a 2D/3D HDF5 dataset; returns its samples (free()) and shape. */
static float *load_entry(const char *path, h5array *shape, char *err, size_t errlen)
{
    char file[PATH_LEN], dset[PATH_LEN];
    if (strstr(path, ":/")) {
        float *data = NULL;
        if (h5array_split(path, "/data", file, sizeof file, dset, sizeof dset) != 0 ||
            !(data = h5array_read_float(file, dset, shape, err, errlen)))
            return NULL;
        if (shape->rank != 2 && shape->rank != 3) {
            snprintf(err, errlen, "%s has rank %d; expected an image or a volume", path, shape->rank);
            free(data);
            return NULL;
        }
        return data;
    }
    image img;
    if (image_read(path, &img, err, errlen) != 0) return NULL;
    memset(shape, 0, sizeof *shape);
    shape->rank = 2;
    shape->dims[0] = (size_t)img.height;
    shape->dims[1] = (size_t)img.width;
    size_t n = (size_t)img.width * img.height;
    float *data = xmalloc(n * sizeof(float));
    memcpy(data, img.data, n * sizeof(float));
    image_free(&img);
    return data;
}

static int load_list(const char *list, xanes_stack *s, char *err, size_t errlen)
{
    FILE *f = fopen(list, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open file list '%s'", list);
        return -1;
    }
    char dircopy[PATH_LEN];
    str_copy(dircopy, list, sizeof dircopy);
    const char *dir = dirname(dircopy);
    char line[PATH_LEN], path[PATH_LEN], full[2 * PATH_LEN + 2];
    int lineno = 0, rc = 0, started = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        double energy;
        char extra;
        int n = sscanf(line, "%lf %4095s %c", &energy, path, &extra);
        if (n <= 0) continue;
        if (n != 2) {
            snprintf(err, errlen, "%s:%d: expected 'energy_eV path'", list, lineno);
            rc = -1;
            break;
        }
        if (path[0] == '/') str_copy(full, path, sizeof full);
        else snprintf(full, sizeof full, "%s/%s", dir, path);
        h5array a;
        float *img = load_entry(full, &a, err, errlen);
        if (!img) { rc = -1; break; }
        int nz = a.rank == 3 ? (int)a.dims[0] : 1;
        int ny = (int)a.dims[a.rank - 2], nx = (int)a.dims[a.rank - 1];
        if (!started) {
            xanes_stack_init(s, nx, ny, nz);
            started = 1;
        } else if (nx != s->nx || ny != s->ny || nz != s->nz) {
            snprintf(err, errlen, "%s:%d: %s is %dx%dx%d, the first entry %dx%dx%d", list, lineno, path, nx, ny, nz,
                     s->nx, s->ny, s->nz);
            free(img);
            rc = -1;
            break;
        }
        rc = xanes_stack_add(s, energy, img, err, errlen);
        free(img);
    }
    fclose(f);
    if (rc == 0 && !started) {
        snprintf(err, errlen, "%s lists no images", list);
        rc = -1;
    }
    if (rc != 0 && started) xanes_stack_free(s);
    return rc;
}

/* Colour map for the energy map: dark blue - cyan - yellow - red; NaN (not fitted) is black. */
static void colour(double f, unsigned char rgb[3])
{
    static const double stops[4][3] = {{40, 30, 140}, {30, 190, 200}, {250, 220, 40}, {200, 30, 30}};
    if (!isfinite(f)) { rgb[0] = rgb[1] = rgb[2] = 0; return; }
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    double x = f * 3;
    int i = x >= 3 ? 2 : (int)x;
    double w = x - i;
    for (int c = 0; c < 3; c++) rgb[c] = (unsigned char)(stops[i][c] * (1 - w) + stops[i + 1][c] * w + 0.5);
}

static int write_map_png(const char *path, const xanes_result *r, char *err, size_t errlen)
{
    int z = r->nz / 2;
    size_t n = (size_t)r->nx * r->ny;
    const float *slice = r->peak_energy + (size_t)z * n;
    unsigned char *rgb = xmalloc_large(3 * n);
    for (size_t i = 0; i < n; i++) colour((slice[i] - r->hist_lo) / (r->hist_hi - r->hist_lo), rgb + 3 * i);
    int rc = image_write_png_rgb(path, rgb, r->nx, r->ny, err, errlen);
    free(rgb);
    return rc;
}

/* Bar chart of the histogram, with the centroid (red) and the summed-spectrum peak (blue) marked. */
static int write_hist_png(const char *path, const xanes_result *r, char *err, size_t errlen)
{
    enum { W = 600, H = 300, MARGIN = 10 };
    unsigned char *rgb = xmalloc(3 * W * H);
    memset(rgb, 255, 3 * W * H);
    long top = 1;
    for (int b = 0; b < r->hist_bins; b++) if (r->hist[b] > top) top = r->hist[b];
    int plot_w = W - 2 * MARGIN, plot_h = H - 2 * MARGIN;
    for (int x = 0; x < plot_w; x++) {
        int b = (int)((long)x * r->hist_bins / plot_w);
        int h = (int)((double)r->hist[b] / top * plot_h + 0.5);
        for (int y = 0; y < h; y++) {
            unsigned char *p = rgb + 3 * ((size_t)(H - MARGIN - 1 - y) * W + MARGIN + x);
            p[0] = p[1] = p[2] = 90;
        }
    }
    double marks[2] = {r->centroid, r->summed.peak_energy};
    const unsigned char mark_rgb[2][3] = {{220, 30, 30}, {30, 60, 220}};
    for (int m = 0; m < 2; m++) {
        if (!isfinite(marks[m])) continue;
        int x = MARGIN + (int)((marks[m] - r->hist_lo) / (r->hist_hi - r->hist_lo) * plot_w);
        if (x < MARGIN || x >= W - MARGIN) continue;
        for (int y = MARGIN; y < H - MARGIN; y++) memcpy(rgb + 3 * ((size_t)y * W + x), mark_rgb[m], 3);
    }
    int rc = image_write_png_rgb(path, rgb, W, H, err, errlen);
    free(rgb);
    return rc;
}

static int write_results(const char *path, const xanes_result *r, const xanes_params *p, const char *edge,
                         char *err, size_t errlen)
{
    h5out *out = h5out_create(path, err, errlen);
    if (!out) return -1;
    size_t n = (size_t)r->nx * r->ny * r->nz;
    size_t dims[3] = {(size_t)r->nz, (size_t)r->ny, (size_t)r->nx};
    int rank = r->nz > 1 ? 3 : 2;
    const size_t *d = rank == 3 ? dims : dims + 1;
    int *status = xmalloc_large(n * sizeof(int)), *mask = xmalloc_large(n * sizeof(int));
    for (size_t v = 0; v < n; v++) {
        status[v] = r->status[v];
        mask[v] = r->status[v] == XANES_OK || r->status[v] == XANES_NO_PEAK;
    }
    h5out_write_float(out, "/peak_energy", r->peak_energy, rank, d);
    h5out_write_float(out, "/rmse", r->rmse, rank, d);
    h5out_write_float(out, "/r2", r->r2, rank, d);
    h5out_write_float(out, "/adj_r2", r->adj_r2, rank, d);
    h5out_write_float(out, "/edge_jump", r->edge_jump, rank, d);
    h5out_write_float(out, "/mean_absorption", r->mean_absorption, rank, d);
    h5out_write_int(out, "/status", status, rank, d);
    h5out_write_int(out, "/mask", mask, rank, d);
    h5out_attr_string(out, "/status", "meaning", "0 fitted, 1 masked out, 2 no maximum inside the window, 3 bad data");
    free(status);
    free(mask);

    int nb = r->hist_bins;
    double *edges = xmalloc((size_t)(nb + 1) * sizeof(double)), *counts = xmalloc((size_t)nb * sizeof(double));
    for (int b = 0; b <= nb; b++) edges[b] = r->hist_lo + (r->hist_hi - r->hist_lo) * b / nb;
    for (int b = 0; b < nb; b++) counts[b] = (double)r->hist[b];
    size_t ne = (size_t)nb + 1, nc = (size_t)nb, ns = (size_t)r->spectrum_count;
    h5out_write_double(out, "/histogram/bin_edges", edges, 1, &ne);
    h5out_write_double(out, "/histogram/counts", counts, 1, &nc);
    h5out_write_double(out, "/summed_spectrum/energy", r->spectrum_energy, 1, &ns);
    h5out_write_double(out, "/summed_spectrum/intensity", r->summed_spectrum, 1, &ns);
    free(edges);
    free(counts);

    struct { const char *name; double value; } summary[] = {
        {"centroid", r->centroid}, {"std", r->std}, {"summed_peak_energy", r->summed.peak_energy},
        {"summed_r2", r->summed.r2}, {"n_fitted", (double)r->n_ok}, {"n_no_peak", (double)r->n_no_peak},
        {"n_masked", (double)r->n_masked}, {"n_bad", (double)r->n_bad}, {"window_lo", r->window_lo},
        {"window_hi", r->window_hi}, {"window_points", r->window_points}, {"order", p->order},
        {"edge_energy", p->edge_energy}, {"bin_x", p->bin[0]}, {"bin_y", p->bin[1]}, {"bin_z", p->bin[2]},
    };
    size_t one = 1;
    double zero = 0;
    h5out_write_double(out, "/summary", &zero, 1, &one);
    for (size_t i = 0; i < sizeof summary / sizeof summary[0]; i++)
        h5out_attr_double(out, "/summary", summary[i].name, summary[i].value);
    h5out_attr_string(out, "/summary", "edge", edge ? edge : "");
    return h5out_close(out, err, errlen);
}

/* What the command line asks for. */
typedef struct xanes_options {
    xanes_params p;
    const char *input, *energy_dset, *edge, *output, *png;
} xanes_options;

/* Parses the command line into o; returns -1 to go on, or the exit status (0 after --help, 2 for bad usage). */
static int parse_options(int argc, char **argv, xanes_options *o)
{
    static const struct option opts[] = {
        {"energy", required_argument, 0, 'e'}, {"edge", required_argument, 0, 'E'},
        {"edge-energy", required_argument, 0, 'k'}, {"order", required_argument, 0, 'n'},
        {"window", required_argument, 0, 'w'}, {"half-width", required_argument, 0, 'h'},
        {"bin", required_argument, 0, 'b'}, {"mask", required_argument, 0, 'm'},
        {"threshold", required_argument, 0, 't'}, {"bins", required_argument, 0, 'B'},
        {"threads", required_argument, 0, 'j'}, {"output", required_argument, 0, 'o'},
        {"png", required_argument, 0, 'p'}, {"help", no_argument, 0, '?'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    xanes_params *p = &o->p;
    xanes_params_default(p);
    o->energy_dset = "/energy";
    int c, bad = 0, have_threshold = 0, which = 0;
    while ((c = getopt_long(argc, argv, "o:", opts, &which)) != -1) {
        switch (c) {
        case 'e': o->energy_dset = optarg; break;
        case 'E':
            o->edge = optarg;
            if (edge_energy_ev(optarg, &p->edge_energy) != 0) {
                fprintf(stderr, "reloc-xanes: unknown element '%s'\n", optarg);
                return 2;
            }
            break;
        case 'k': bad |= toolargs_double(optarg, &p->edge_energy); break;
        case 'n': bad |= toolargs_int(optarg, 2, 4, &p->order); break;
        case 'w': if (sscanf(optarg, "%lf:%lf", &p->window_lo, &p->window_hi) != 2) bad = 1; break;
        case 'h': bad |= toolargs_double(optarg, &p->half_width); break;
        case 'b': bad |= parse_bin(optarg, p->bin); break;
        case 'm':
            if (strcmp(optarg, "edge-jump") == 0) p->mask_mode = XANES_MASK_EDGE_JUMP;
            else if (strcmp(optarg, "mean") == 0) p->mask_mode = XANES_MASK_MEAN;
            else bad = 1;
            break;
        case 't': bad |= toolargs_double(optarg, &p->mask_threshold); have_threshold = 1; break;
        case 'B': bad |= toolargs_int(optarg, 1, 1000000, &p->hist_bins); break;
        case 'j': bad |= toolargs_int(optarg, 0, 1024, &p->threads); break;
        case 'o': o->output = optarg; break;
        case 'p': o->png = optarg; break;
        default: usage(c == '?' && optopt == 0 ? stdout : stderr); return c == '?' && optopt == 0 ? 0 : 2;
        }
        if (bad) {
            fprintf(stderr, "reloc-xanes: bad value '%s' for --%s\n", optarg, opts[which].name);
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    o->input = argv[optind];
    if (p->mask_mode != XANES_MASK_NONE && !have_threshold) {
        fprintf(stderr, "reloc-xanes: --mask needs --threshold\n");
        return 2;
    }
    char err[256];
    if (xanes_params_check(p, err, sizeof err) != 0) {
        fprintf(stderr, "reloc-xanes: %s\n", err);
        return 2;
    }
    return -1;
}

/* Writes the maps (HDF5), the map and histogram pictures and the summary; returns the exit status. */
static int write_outputs(const xanes_options *o, const xanes_result *r)
{
    char err[4 * PATH_LEN];
    char stem[PATH_LEN], out_path[PATH_LEN + 16], png_map[PATH_LEN + 16], png_hist[PATH_LEN + 16];
    h5array_split(o->input, "/data", stem, sizeof stem, err, sizeof err);
    toolargs_strip_extension(stem);
    const char *output = o->output;
    if (!output) {
        snprintf(out_path, sizeof out_path, "%s_xanes.h5", stem);
        output = out_path;
    }
    char out_stem[PATH_LEN];
    str_copy(out_stem, o->png ? o->png : output, sizeof out_stem);
    if (!o->png) toolargs_strip_extension(out_stem);
    snprintf(png_map, sizeof png_map, "%s_map.png", out_stem);
    snprintf(png_hist, sizeof png_hist, "%s_hist.png", out_stem);
    double t_write = time_monotonic();
    int rc = write_results(output, r, &o->p, o->edge, err, sizeof err);
    if (rc == 0) log_info("xanes", "wrote the maps in %.3f s", time_monotonic() - t_write);
    if (rc == 0) rc = write_map_png(png_map, r, err, sizeof err);
    if (rc == 0) rc = write_hist_png(png_hist, r, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "reloc-xanes: %s\n", err);
        return 1;
    }
    printf("window %.2f..%.2f eV (%d energies), order %d\n", r->window_lo, r->window_hi, r->window_points,
           o->p.order);
    printf("voxels: %ld fitted, %ld without a maximum in the window, %ld masked, %ld bad\n", r->n_ok, r->n_no_peak,
           r->n_masked, r->n_bad);
    printf("histogram centroid %.3f eV, std %.3f eV\n", r->centroid, r->std);
    printf("summed spectrum peak %.3f eV (R^2 %.5f)\n", r->summed.peak_energy, r->summed.r2);
    printf("wrote %s, %s, %s\n", output, png_map, png_hist);
    return 0;
}

static int run(const xanes_options *o)
{
    char err[4 * PATH_LEN];
    double t_read = time_monotonic();
    xanes_stack s;
    h5array_mapping mapping = {0};
    int loaded = ends_with(o->input, ".txt") || ends_with(o->input, ".lst")
                     ? load_list(o->input, &s, err, sizeof err)
                     : load_hdf5_stack(o->input, o->energy_dset, &s, &mapping, err, sizeof err);
    if (loaded != 0) {
        fprintf(stderr, "reloc-xanes: %s\n", err);
        return 1;
    }
    log_info("xanes", "read %d energies %.2f..%.2f eV, %d x %d x %d voxels in %.3f s (%s); order %d", s.count,
             s.energy[0], s.energy[s.count - 1], s.nx, s.ny, s.nz, time_monotonic() - t_read,
             mapping.base ? "mapped from the file" : "copied", o->p.order);
    double t0 = time_monotonic(), cpu0 = time_process_cpu();
    xanes_result r;
    int rc = xanes_analyse(&s, &o->p, &r, err, sizeof err);
    double t_fit = time_monotonic() - t0, cpu_fit = time_process_cpu() - cpu0;
    if (mapping.base) { /* the samples are the file's mapping, not the stack's to free */
        s.data = NULL;
        h5array_unmap(&mapping);
    }
    xanes_stack_free(&s);
    if (rc != 0) {
        fprintf(stderr, "reloc-xanes: %s\n", err);
        return 1;
    }
    log_info("xanes", "fitted %ld voxels in %.3f s (CPU %.3f s, all threads)", r.n_ok + r.n_no_peak, t_fit,
             cpu_fit);
    rc = write_outputs(o, &r);
    xanes_result_free(&r);
    return rc;
}

int main(int argc, char **argv)
{
    xanes_options o;
    int status = parse_options(argc, argv, &o);
    return status >= 0 ? status : run(&o);
}
