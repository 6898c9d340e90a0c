/* sim_xrf.c -- reloc-sim-xrf: renders a ground-truth 3D phantom into detected XRF maps with reloc's forward model
 * (the physics the correction inverts), writes them to HDF5 with the truth, and can stream them over ZeroMQ PUSH
 * row chunk by row chunk as a fly scan would, in either scan direction.
 *
 * Phantom (the paper's binary cases, generalised to n elements): the first element's weight fraction is
 *   w0(x, y, z) = mean(x, y) + alpha * cos(2 pi nu (z + 0.5) / depth)
 * with a smooth mean map in [0.32, 0.78]; the other elements share the rest, with their own smooth patterns. The
 * configured matrix fractions are fixed and scale the measured ones by (1 - matrix total).
 *
 * Output: /raw/<El> (detected counts), /I0, /truth/<El> (what the detector would count without self-absorption:
 * I0 * sensitivity * depth-mean fraction), /truth_fractions/<El> (depth-mean weight fraction).
 * Streaming: rows of constant y (--axis y) or columns of constant x (--axis x), ascending or descending.
 */
#include "kernels/xrf/xrf.h"

#include "core/base/base.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

typedef struct options {
    const char *config, *out, *push, *direction, *axis;
    int width, height, chunk_lines, delay_ms, noise;
    double alpha, nu, i0;
    unsigned long long seed, scan;
} options;

/* splitmix64: a small, well-mixed generator; the simulator needs reproducibility, not cryptography. */
static uint64_t rng_state;

static double uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return ((z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Poisson deviate: multiplication method for small means, Hoermann's transformed rejection (PTRS) otherwise. */
static double poisson(double lambda)
{
    if (lambda < 10) {
        double limit = exp(-lambda), p = uniform();
        int k = 0;
        while (p > limit) {
            p *= uniform();
            k++;
        }
        return k;
    }
    double slam = sqrt(lambda), loglam = log(lambda);
    double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
    double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
        double u = uniform() - 0.5, v = uniform(), us = 0.5 - fabs(u);
        double k = floor((2 * a / us + b) * u + lambda + 0.43);
        if (us >= 0.07 && v <= vr) return k;
        if (k < 0 || (us < 0.013 && v > us)) continue;
        if (log(v) + log(inv_alpha) - log(a / (us * us) + b) <= -lambda + k * loglam - lgamma(k + 1)) return k;
    }
}

static double mean_first(int x, int y, int w, int h)
{
    double u = (x + 0.5) / w, v = (y + 0.5) / h;
    double m = 0.5 + 0.18 * sin(2 * M_PI * 1.5 * u) * cos(2 * M_PI * v);
    double dx = u - 0.3, dy = v - 0.6;
    if (dx * dx + dy * dy < 0.15 * 0.15) m += 0.1;
    return m;
}

/* Weight fractions of the measured elements, slice-major; slices is 1 when the phantom is uniform along z. */
static void render_phantom(const xrf_config *cfg, const options *o, int slices, double **w)
{
    int n = cfg->n_elements, width = o->width, height = o->height;
    size_t plane = (size_t)width * height;
    double scale = 1 - cfg->matrix_total;
    for (int s = 0; s < slices; s++) {
        double modulation = o->alpha * cos(2 * M_PI * o->nu * (s + 0.5) / cfg->depth_voxels);
        if (slices == 1) modulation = o->alpha;   /* nu == 0: a uniform shift */
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) {
                size_t v = (size_t)s * plane + (size_t)y * width + x;
                double first = fmin(fmax(mean_first(x, y, width, height) + modulation, 0.01), n == 1 ? 1 : 0.99);
                w[0][v] = scale * first;
                double share[XRF_MAX_ELEMENTS], total = 0;
                for (int c = 1; c < n; c++) {
                    share[c] = 1 + 0.5 * sin(2 * M_PI * (c * (x + 0.5) / width + (y + 0.5) / height));
                    total += share[c];
                }
                for (int c = 1; c < n; c++) w[c][v] = scale * (1 - first) * share[c] / total;
            }
    }
}

static int write_outputs(const xrf_config *cfg, const options *o, int slices, double **w, const xrf_maps *raw,
                         const double *i0)
{
    char err[512], name[64];
    size_t plane = (size_t)o->width * o->height;
    double *truth = xmalloc(plane * sizeof *truth), *fraction = xmalloc(plane * sizeof *fraction);
    int rc = xrf_h5_write_dataset(o->out, "/I0", i0, o->width, o->height, 1, err, sizeof err);
    for (int c = 0; c < cfg->n_elements && rc == 0; c++) {
        for (size_t p = 0; p < plane; p++) {
            double sum = 0;
            for (int s = 0; s < slices; s++) sum += w[c][(size_t)s * plane + p];
            fraction[p] = sum / slices;
            truth[p] = i0[p] * cfg->element[c].sensitivity * fraction[p];
        }
        snprintf(name, sizeof name, "/raw/%s", cfg->element[c].symbol);
        rc = xrf_h5_write_dataset(o->out, name, raw->map[c], o->width, o->height, 0, err, sizeof err);
        snprintf(name, sizeof name, "/truth/%s", cfg->element[c].symbol);
        if (rc == 0) rc = xrf_h5_write_dataset(o->out, name, truth, o->width, o->height, 0, err, sizeof err);
        snprintf(name, sizeof name, "/truth_fractions/%s", cfg->element[c].symbol);
        if (rc == 0) rc = xrf_h5_write_dataset(o->out, name, fraction, o->width, o->height, 0, err, sizeof err);
    }
    if (rc) log_error("sim-xrf", "%s", err);
    free(truth);
    free(fraction);
    return rc;
}

static void send_header(void *sock, cJSON *header, int more)
{
    char *text = cJSON_PrintUnformatted(header);
    zmq_send(sock, text, strlen(text), more ? ZMQ_SNDMORE : 0);
    free(text);
}

static cJSON *new_header(const xrf_config *cfg, const char *type, const options *o)
{
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "type", type);
    cJSON_AddNumberToObject(h, "scan", (double)o->scan);
    cJSON_AddNumberToObject(h, "width", o->width);
    cJSON *els = cJSON_AddArrayToObject(h, "elements");
    for (int c = 0; c < cfg->n_elements; c++) cJSON_AddItemToArray(els, cJSON_CreateString(cfg->element[c].symbol));
    return h;
}

/* One scan line block as the wire carries it: rows as they are in the map, columns gathered column after column. */
static void gather(const double *map, int width, int height, int columns, int line, int lines, double *out)
{
    if (!columns) {
        memcpy(out, map + (size_t)line * width, (size_t)lines * width * sizeof *out);
        return;
    }
    for (int l = 0; l < lines; l++)
        for (int y = 0; y < height; y++) out[(size_t)l * height + y] = map[(size_t)y * width + line + l];
}

/* Streams the map as a fly scan: start, chunks of chunk_lines rows (or columns) in scan order, end. */
static int push_scan(const xrf_config *cfg, const options *o, const xrf_maps *raw, const double *i0)
{
    int descending = !strcmp(o->direction, "descending"), columns = !strcmp(o->axis, "x");
    int n_lines = columns ? o->width : o->height, length = columns ? o->height : o->width;
    void *ctx = zmq_ctx_new(), *sock = zmq_socket(ctx, ZMQ_PUSH);
    int linger = 10000;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(sock, o->push) != 0) {
        log_error("sim-xrf", "cannot connect to %s: %s", o->push, zmq_strerror(zmq_errno()));
        zmq_close(sock);
        zmq_ctx_term(ctx);
        return -1;
    }
    cJSON *h = new_header(cfg, "start", o);
    cJSON_AddNumberToObject(h, "height", o->height);
    cJSON_AddStringToObject(h, "direction", descending ? "descending" : "ascending");
    cJSON_AddStringToObject(h, "axis", columns ? "x" : "y");
    send_header(sock, h, 0);
    cJSON_Delete(h);
    double *buffer = xmalloc((size_t)o->chunk_lines * length * sizeof *buffer);
    int seq = 0;
    for (int done = 0; done < n_lines; seq++) {
        int lines = o->chunk_lines < n_lines - done ? o->chunk_lines : n_lines - done;
        int line = descending ? n_lines - done - lines : done;
        h = new_header(cfg, "chunk", o);
        cJSON_DeleteItemFromObject(h, "width");
        cJSON_AddNumberToObject(h, "seq", seq);
        cJSON_AddNumberToObject(h, columns ? "col" : "row", line);
        cJSON_AddNumberToObject(h, columns ? "cols" : "rows", lines);
        cJSON_AddNumberToObject(h, columns ? "height" : "width", length);
        send_header(sock, h, 1);
        cJSON_Delete(h);
        size_t bytes = (size_t)lines * length * sizeof(double);
        for (int c = 0; c <= cfg->n_elements; c++) {
            gather(c < cfg->n_elements ? raw->map[c] : i0, o->width, o->height, columns, line, lines, buffer);
            zmq_send(sock, buffer, bytes, c < cfg->n_elements ? ZMQ_SNDMORE : 0);
        }
        done += lines;
        if (o->delay_ms > 0) usleep(o->delay_ms * 1000);
    }
    free(buffer);
    h = new_header(cfg, "end", o);
    send_header(sock, h, 0);
    cJSON_Delete(h);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    log_info("sim-xrf", "streamed %d %s in %d chunks to %s (%s)", n_lines, columns ? "columns" : "rows", seq, o->push,
             o->direction);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: reloc-sim-xrf --config CFG.json [--size N | --width W --height H] [--alpha A] [--nu NU]\n"
                    "         [--i0 COUNTS] [--noise] [--seed S] [--out SIM.h5]\n"
                    "         [--push ENDPOINT [--direction descending|ascending] [--axis y|x] [--chunk-lines N]"
                    " [--scan ID] [--delay-ms MS]]\n"
                    "  --axis y: the scan delivers rows of constant y (default); x: columns of constant x\n");
}

/* A finite number in [lo, hi] from an option's value; -1 with a message on stderr otherwise (NaN, Inf, trailing
 * text, out of range). */
static int parse_number(const char *option, const char *text, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "reloc-sim-xrf: %s '%s': expected a finite number in [%g, %g]\n", option, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_int(const char *option, const char *text, int lo, int hi, int *out)
{
    double v;
    if (parse_number(option, text, lo, hi, &v) < 0) return -1;
    if (v != floor(v)) {
        fprintf(stderr, "reloc-sim-xrf: %s '%s': expected an integer\n", option, text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The simulator holds the phantom (elements x slices x pixels doubles) and its maps in memory: bounded so that a
 * typo gives a message instead of an allocation failure. */
#define SIM_MAX_PIXELS 50000000
#define SIM_MAX_PHANTOM_BYTES ((size_t)4 << 30)

int main(int argc, char **argv)
{
    options o = {.width = 64, .height = 64, .chunk_lines = 1, .i0 = 1e6, .seed = 1, .scan = 1,
                 .direction = "descending", .axis = "y"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--noise")) { o.noise = 1; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!v) { fprintf(stderr, "reloc-sim-xrf: '%s' needs a value or is unknown\n", a); usage(); return 2; }
        i++;
        double seed;
        int rc = 0;
        if (!strcmp(a, "--config")) o.config = v;
        else if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--push")) o.push = v;
        else if (!strcmp(a, "--direction")) o.direction = v;
        else if (!strcmp(a, "--size")) {
            rc = parse_int(a, v, 1, 100000, &o.width);
            o.height = o.width;
        }
        else if (!strcmp(a, "--width")) rc = parse_int(a, v, 1, 100000, &o.width);
        else if (!strcmp(a, "--height")) rc = parse_int(a, v, 1, 100000, &o.height);
        else if (!strcmp(a, "--chunk-lines")) rc = parse_int(a, v, 1, 100000, &o.chunk_lines);
        else if (!strcmp(a, "--axis")) o.axis = v;
        else if (!strcmp(a, "--delay-ms")) rc = parse_int(a, v, 0, 60000, &o.delay_ms);
        else if (!strcmp(a, "--alpha")) rc = parse_number(a, v, -1, 1, &o.alpha);
        else if (!strcmp(a, "--nu")) rc = parse_number(a, v, 0, 1e6, &o.nu);
        else if (!strcmp(a, "--i0")) rc = parse_number(a, v, 1e-300, 1e300, &o.i0);
        else if (!strcmp(a, "--seed")) { rc = parse_number(a, v, 0, 9007199254740992.0, &seed); o.seed = seed; }
        else if (!strcmp(a, "--scan")) { rc = parse_number(a, v, 0, 9007199254740992.0, &seed); o.scan = seed; }
        else { fprintf(stderr, "reloc-sim-xrf: unknown option '%s'\n", a); usage(); return 2; }
        if (rc < 0) return 2;
    }
    if (!o.config || (!o.out && !o.push) ||
        (strcmp(o.direction, "ascending") && strcmp(o.direction, "descending")) ||
        (strcmp(o.axis, "x") && strcmp(o.axis, "y"))) {
        usage();
        return 2;
    }
    xrf_config cfg;
    char err[512];
    if (xrf_config_load(&cfg, o.config, err, sizeof err) < 0) {
        log_error("sim-xrf", "%s", err);
        return 1;
    }
    int slices = o.alpha != 0 && o.nu != 0 ? cfg.depth_voxels : 1;
    size_t plane = (size_t)o.width * o.height;
    if (plane > SIM_MAX_PIXELS || plane * slices * cfg.n_elements * sizeof(double) > SIM_MAX_PHANTOM_BYTES) {
        log_error("sim-xrf", "%dx%d pixels x %d slices x %d elements is too large to simulate (at most %d pixels and "
                  "%zu GiB of phantom)", o.width, o.height, slices, cfg.n_elements, SIM_MAX_PIXELS,
                  SIM_MAX_PHANTOM_BYTES >> 30);
        return 1;
    }
    rng_state = o.seed;
    double *w[XRF_MAX_ELEMENTS];
    for (int c = 0; c < cfg.n_elements; c++) w[c] = xmalloc(plane * slices * sizeof(double));
    render_phantom(&cfg, &o, slices, w);
    double *i0 = xmalloc(plane * sizeof *i0);
    for (size_t p = 0; p < plane; p++) i0[p] = o.i0;
    xrf_maps raw;
    int rc = xrf_forward(&cfg, o.width, o.height, slices, (const double *const *)w, i0, &raw, err, sizeof err);
    if (rc < 0) log_error("sim-xrf", "%s", err);
    if (rc == 0 && o.noise)
        for (int c = 0; c < cfg.n_elements; c++)
            for (size_t p = 0; p < plane; p++) raw.map[c][p] = poisson(raw.map[c][p]);
    if (rc == 0 && o.out) rc = write_outputs(&cfg, &o, slices, w, &raw, i0);
    if (rc == 0 && o.push) rc = push_scan(&cfg, &o, &raw, i0);
    for (int c = 0; c < cfg.n_elements; c++) free(w[c]);
    free(i0);
    xrf_maps_free(&raw);
    return rc == 0 ? 0 : 1;
}
