/* tool_tomo.c -- reloc-tomo: quantitative EDS-STEM tomography and HAADF-EDS bimodal tomography from the command
 * line.
 *
 *   reloc-tomo series.h5 --element Au=/eds/Au --element Ag=/eds/Ag [--factor Au=1 --factor Ag=1.6]
 *              [--haadf /haadf --alpha 0.7] [--angles /angles] [--iterations 100] [--threshold esf|VALUE]
 *              [--reference Au=/truth/Au ...] [-o out.h5] [--png PREFIX]
 *
 *   reloc-tomo phantom.h5 --project /slices [--angles /angles] [--detector N] -o sino.h5
 *
 * The second form only projects (n, n) or (slices, n, n) images and writes /sinogram, for simulations and checks.
 * Sinograms are (angles, beam positions) for one slice or (angles, slices, beam positions) for a tilt series of
 * images whose rows run along the tilt axis; angles are in degrees. Writes the reconstructions (EDS units, or for
 * HEBT each element's share of the HAADF tomogram), weight fractions, particle mask and metrics to HDF5, a PNG
 * of each map (middle slice), and progress per slice and iteration on stderr.
 */
#include "core/base/base.h"
#include "formats/h5array/h5array.h"
#include "formats/imageio/imageio.h"
#include "kernels/tomo/tomo.h"
#include "core/toolargs/toolargs.h"

#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ELEMENTS 16
#define NAME_LEN 64
#define PATH_LEN 4096

typedef struct element {
    char name[NAME_LEN];
    char dset[PATH_LEN];
    char reference[PATH_LEN];  /* "" when none */
    double factor;             /* f_A */
} element;

/* Progress lines and the passes each slice took: workers call progress() concurrently; the lock keeps lines
 * whole and the counts right. */
typedef struct progress {
    pthread_mutex_t lock;
    int slices_done;
    int every;                 /* print every this many passes */
    int *passes;               /* per slice: passes run */
    double *residual;          /* per slice: residual of the last pass */
    int *stop;                 /* per slice: why its passes ended (TOMO_STOP_*) */
} progress;

static void on_progress(void *user, int slice, int n_slices, int iteration, int iterations, double residual,
                        int stop)
{
    static const char *const why[] = {
        [TOMO_STOP_NONE] = "", [TOMO_STOP_FALLING] = " done (residual stopped falling)",
        [TOMO_STOP_NOISE] = " done (residual at the noise level)",
        [TOMO_STOP_LIMIT] = " done, NOT converged (pass limit reached before the stopping rule held)",
        [TOMO_STOP_PASSES] = " done"};
    progress *p = user;
    pthread_mutex_lock(&p->lock);
    p->passes[slice] = iteration;
    p->residual[slice] = residual;
    p->stop[slice] = stop;
    if (stop) p->slices_done++;
    if ((iteration % p->every == 0 && !isnan(residual)) || stop)
        fprintf(stderr, "slice %d/%d iteration %d/%d residual %.5f%s\n", slice + 1, n_slices, iteration, iterations,
                residual, why[stop]);
    if (stop) fprintf(stderr, "progress: %d/%d slices reconstructed\n", p->slices_done, n_slices);
    pthread_mutex_unlock(&p->lock);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: reloc-tomo SERIES.h5 --element EL=/dataset [--element ...] [options]\n"
            "  --factor EL=F        sensitivity factor f_A of Eq. 12 (default 1)\n"
            "  --haadf DSET         HAADF sinogram: HEBT with --alpha (default 0.5 when --haadf is given)\n"
            "  --alpha A            HAADF weight of the joint system, 0..1 (0: EDS-only)\n"
            "  --r EL=R             response-ratio factor instead of fitting it\n"
            "  --angles DSET        tilt angles in degrees (default /angles)\n"
            "  --iterations N       passes at most (default 100)\n"
            "  --subsets S          ordered subsets (OS-SART); 1 (default): SIRT\n"
            "  --tolerance T        stop when a pass lowers the residual by less than T (e.g. 0.01); default 0: never\n"
            "  --counts-per-unit C  the sinograms are Poisson counts / C: stop when the residual reaches the noise\n"
            "  --relaxation L       relaxation, 0..2 (default 1)\n"
            "  --allow-negative     no non-negativity constraint\n"
            "  --size N             reconstruct N x N slices (default: beam positions)\n"
            "  --beam-spacing D     distance between beam positions in slice pixels (default 1)\n"
            "  --centre-offset C    rotation axis position on the detector, in pixels from its centre (default 0)\n"
            "  --threshold esf|V    particle threshold on sum(X/f): edge-spread function (default) or value\n"
            "  --reference EL=DSET  reference map for SSIM and scaled MSE\n"
            "  --threads N          worker threads (default: one per CPU)\n"
            "  -o, --output FILE    HDF5 output (default: SERIES stem + _tomo.h5)\n"
            "  --png PREFIX         PNG prefix (default: output stem)\n"
            "  --project DSET       only project the (n, n) or (slices, n, n) images DSET into /sinogram\n"
            "  --detector N         beam positions per projection with --project (default n)\n");
}

static element *find_element(element *el, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(el[i].name, name) == 0) return &el[i];
    return NULL;
}

/* "EL=value": splits into name and value; -1 when malformed. */
static int split_pair(const char *arg, char *name, const char **value)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= NAME_LEN || !eq[1]) return -1;
    memcpy(name, arg, (size_t)(eq - arg));
    name[eq - arg] = '\0';
    *value = eq + 1;
    return 0;
}

/* Reads a sinogram set (angles, [slices,] beams) into slice-major order (slices, angles, beams). */
static float *read_sinogram(const char *file, const char *dset, int n_angles, int *n_slices, int *n_det, char *err,
                            size_t errlen)
{
    h5array a;
    if (h5array_read(file, dset, &a, err, errlen) != 0) return NULL;
    float *out = NULL;
    int slices = a.rank == 3 ? (int)a.dims[1] : 1, det = (int)a.dims[a.rank - 1];
    if ((a.rank != 2 && a.rank != 3) || (int)a.dims[0] != n_angles) {
        snprintf(err, errlen, "%s: expected (angles=%d, [slices,] beam positions), got rank %d with %zu angles",
                 dset, n_angles, a.rank, a.rank ? a.dims[0] : 0);
    } else if (*n_slices && (slices != *n_slices || det != *n_det)) {
        snprintf(err, errlen, "%s: %d slices x %d beam positions, but the first sinogram has %d x %d", dset, slices,
                 det, *n_slices, *n_det);
    } else {
        *n_slices = slices;
        *n_det = det;
        out = xmalloc((size_t)slices * n_angles * det * sizeof(float));
        for (int z = 0; z < slices; z++)
            for (int k = 0; k < n_angles; k++)
                for (int d = 0; d < det; d++)
                    out[((size_t)z * n_angles + k) * det + d] = (float)a.data[((size_t)k * slices + z) * det + d];
        for (size_t i = 0; i < (size_t)slices * n_angles * det; i++)
            if (!isfinite(out[i])) {
                snprintf(err, errlen, "%s holds non-finite values", dset);
                free(out);
                out = NULL;
                break;
            }
    }
    h5array_free(&a);
    return out;
}

/* Writes the middle slice as PNG, NaN as 0, scaled to the slice's finite range (or [0, 1] for fractions). */
static int write_png_slice(const char *prefix, const char *name, const char *kind, const float *vol, int n_slices,
                           int n, int unit_range, char *err, size_t errlen)
{
    char path[PATH_LEN + 2 * NAME_LEN];
    snprintf(path, sizeof path, "%s_%s_%s.png", prefix, name, kind);
    size_t np = (size_t)n * n;
    const float *s = vol + (size_t)(n_slices / 2) * np;
    float *img = xmalloc(np * sizeof(float)), lo = 0, hi = 1;
    if (!unit_range) hi = 0;
    for (size_t i = 0; i < np; i++) {
        img[i] = isfinite(s[i]) ? s[i] : 0.0f;
        if (!unit_range && img[i] > hi) hi = img[i];
    }
    if (hi <= lo) hi = lo + 1;
    int rc = image_write_png(path, img, n, n, lo, hi, err, errlen);
    free(img);
    return rc;
}

/* --project: slices (n, n) or (slices, n, n) -> /sinogram (angles, [slices,] n_det) in the file layout. */
static int project_only(const char *file, const char *dset, const h5array *angles, int n_det, double spacing,
                        double offset, const char *output, char *err, size_t errlen)
{
    h5array img;
    if (h5array_read(file, dset, &img, err, errlen) != 0) return -1;
    int rc = -1;
    int slices = img.rank == 3 ? (int)img.dims[0] : 1, n = (int)img.dims[img.rank - 1];
    if ((img.rank != 2 && img.rank != 3) || img.dims[img.rank - 2] != img.dims[img.rank - 1]) {
        snprintf(err, errlen, "%s: expected square (n, n) or (slices, n, n) images", dset);
        h5array_free(&img);
        return -1;
    }
    tomo_geometry g = {.n = n, .n_det = n_det ? n_det : n, .n_angles = (int)h5array_count(angles),
                       .angles_deg = angles->data, .det_spacing = spacing, .centre_offset = offset};
    if (tomo_geometry_check(&g, err, errlen) != 0) {
        h5array_free(&img);
        return -1;
    }
    size_t np = (size_t)n * n, ns = (size_t)g.n_angles * g.n_det;
    float *slice = xmalloc(np * sizeof(float)), *sino = xmalloc(ns * sizeof(float));
    float *all = xmalloc(ns * (size_t)slices * sizeof(float));
    for (int z = 0; z < slices; z++) {
        for (size_t i = 0; i < np; i++) slice[i] = (float)img.data[(size_t)z * np + i];
        tomo_project(&g, slice, sino);
        for (int a = 0; a < g.n_angles; a++)
            memcpy(all + ((size_t)a * slices + z) * g.n_det, sino + (size_t)a * g.n_det, g.n_det * sizeof(float));
    }
    h5out *out = h5out_create(output, err, errlen);
    if (out) {
        size_t dims[3] = {(size_t)g.n_angles, (size_t)slices, (size_t)g.n_det}, d2[2] = {dims[0], dims[2]};
        h5out_write_float(out, "/sinogram", all, img.rank, img.rank == 3 ? dims : d2);
        h5out_write_double(out, "/angles", angles->data, 1, (size_t[]){h5array_count(angles)});
        rc = h5out_close(out, err, errlen);
    }
    free(slice);
    free(sino);
    free(all);
    h5array_free(&img);
    return rc;
}

/* What the command line asks for. */
typedef struct tomo_options {
    element el[MAX_ELEMENTS];
    int n_el;
    tomo_params p;
    const char *file, *haadf_dset, *angles_dset, *output, *png, *project;
    double threshold;                  /* NAN: from the edge-spread function */
    double given_r[MAX_ELEMENTS];      /* --r, where have_r */
    int have_r[MAX_ELEMENTS];
    double spacing, offset;
    int size, detector;
} tomo_options;

/* Parses the command line into o; returns -1 to go on, or the exit status (0 after --help, 2 for bad usage). */
static int parse_options(int argc, char **argv, tomo_options *o)
{
    static const struct option opts[] = {
        {"element", required_argument, 0, 'e'}, {"factor", required_argument, 0, 'f'},
        {"haadf", required_argument, 0, 'H'}, {"alpha", required_argument, 0, 'a'},
        {"r", required_argument, 0, 'r'}, {"angles", required_argument, 0, 'A'},
        {"iterations", required_argument, 0, 'i'}, {"relaxation", required_argument, 0, 'l'},
        {"allow-negative", no_argument, 0, 'N'}, {"size", required_argument, 0, 's'},
        {"threshold", required_argument, 0, 't'}, {"reference", required_argument, 0, 'R'},
        {"threads", required_argument, 0, 'j'}, {"output", required_argument, 0, 'o'},
        {"png", required_argument, 0, 'p'}, {"project", required_argument, 0, 'P'},
        {"detector", required_argument, 0, 'D'}, {"beam-spacing", required_argument, 0, 'S'},
        {"centre-offset", required_argument, 0, 'C'}, {"subsets", required_argument, 0, 'O'},
        {"tolerance", required_argument, 0, 'T'}, {"counts-per-unit", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    tomo_params *p = &o->p;
    tomo_params_default(p);
    o->angles_dset = "/angles";
    o->threshold = NAN;
    o->spacing = 1.0;
    int c, which = 0, alpha_given = 0;
    char name[NAME_LEN];
    const char *value;
    while ((c = getopt_long(argc, argv, "o:", opts, &which)) != -1) {
        int bad = 0;
        double v = 0;
        element *e;
        switch (c) {
        case 'e':
            if (split_pair(optarg, name, &value) != 0 || o->n_el == MAX_ELEMENTS ||
                find_element(o->el, o->n_el, name)) {
                bad = 1;
                break;
            }
            str_copy(o->el[o->n_el].name, name, NAME_LEN);
            str_copy(o->el[o->n_el].dset, value, PATH_LEN);
            o->el[o->n_el++].factor = 1.0;
            break;
        case 'f':
        case 'r':
        case 'R':
            /* Refers to an element named earlier with --element. */
            if (split_pair(optarg, name, &value) != 0 || !(e = find_element(o->el, o->n_el, name))) {
                bad = 1;
                break;
            }
            if (c == 'R') str_copy(e->reference, value, PATH_LEN);
            else if (toolargs_double(value, &v) != 0 || v <= (c == 'f' ? 0 : -1e-300)) bad = 1;
            else if (c == 'f') e->factor = v;
            else {
                o->given_r[e - o->el] = v;
                o->have_r[e - o->el] = 1;
            }
            break;
        case 'H': o->haadf_dset = optarg; break;
        case 'a': bad = toolargs_double(optarg, &p->alpha); alpha_given = 1; break;
        case 'A': o->angles_dset = optarg; break;
        case 'i': bad = toolargs_int(optarg, 1, 1000000, &p->iterations); break;
        case 'l': bad = toolargs_double(optarg, &p->relaxation); break;
        case 'N': p->nonneg = 0; break;
        case 's': bad = toolargs_int(optarg, 1, 65536, &o->size); break;
        case 't':
            if (strcmp(optarg, "esf") != 0) bad = toolargs_double(optarg, &o->threshold);
            break;
        case 'j': bad = toolargs_int(optarg, 0, 1024, &p->threads); break;
        case 'o': o->output = optarg; break;
        case 'p': o->png = optarg; break;
        case 'P': o->project = optarg; break;
        case 'D': bad = toolargs_int(optarg, 1, 65536, &o->detector); break;
        case 'S': bad = toolargs_double(optarg, &o->spacing) || !(o->spacing > 0); break;
        case 'C': bad = toolargs_double(optarg, &o->offset); break;
        case 'O': bad = toolargs_int(optarg, 1, 65536, &p->subsets); break;
        case 'T': bad = toolargs_double(optarg, &p->tolerance) || !(p->tolerance >= 0 && p->tolerance < 1); break;
        case 'c': bad = toolargs_double(optarg, &p->counts_per_unit) || !(p->counts_per_unit > 0); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "reloc-tomo: bad value '%s' for --%s%s\n", optarg, c == 'o' ? "output" : opts[which].name,
                    c == 'f' || c == 'r' || c == 'R' ? " (EL=value, EL named by an earlier --element)" : "");
            return 2;
        }
    }
    if (optind != argc - 1 || (o->n_el == 0 && !o->project) || (o->project && !o->output)) {
        usage(stderr);
        return 2;
    }
    if (o->haadf_dset && !alpha_given) p->alpha = 0.5;
    o->file = argv[optind];
    return -1;
}

/* A reconstruction and its quantification, from the sinograms to what is written out. */
typedef struct tomo_job {
    tomo_geometry g;
    int n_slices, n_det, hebt;
    size_t nvox;
    float *eds[MAX_ELEMENTS], *haadf;
    float *rec[MAX_ELEMENTS], *frac[MAX_ELEMENTS], *signal;   /* maps, HAADF units for HEBT */
    unsigned char *mask;               /* voxels inside the particle */
    int *passes;                       /* per slice */
    double *residual;                  /* per slice */
    int *stop;                         /* per slice: TOMO_STOP_* */
    double r[MAX_ELEMENTS], r2;        /* response ratios (HEBT) and the R^2 of their fit (NAN when given) */
    double threshold;
    const char *method;                /* how the threshold was found */
    size_t inside;
} tomo_job;

static void job_free(tomo_job *j, int n_el)
{
    for (int e = 0; e < n_el; e++) {
        free(j->eds[e]);
        free(j->rec[e]);
        free(j->frac[e]);
    }
    free(j->haadf);
    free(j->signal);
    free(j->passes);
    free(j->residual);
    free(j->stop);
    free(j->mask);
}

/* HEBT: the response ratios r_A of HAADF ~ sum r_A EDS_A, given for every element (--r) or fitted. */
static int response_ratios(const tomo_options *o, tomo_job *j, char *err, size_t errlen)
{
    int all_given = 1, any_given = 0;
    for (int e = 0; e < o->n_el; e++) {
        all_given &= o->have_r[e];
        any_given |= o->have_r[e];
    }
    if (any_given && !all_given)
        return error_set(err, errlen, "--r must be given for every element or for none (then they are fitted)");
    size_t nsamp = (size_t)j->n_slices * j->g.n_angles * j->n_det;
    if (all_given) memcpy(j->r, o->given_r, sizeof j->r);
    else if (tomo_fit_response(nsamp, o->n_el, j->haadf, (const float *const *)j->eds, j->r, &j->r2, err, errlen) != 0)
        return -1;
    for (int e = 0; e < o->n_el; e++)
        log_info("tomo", "response ratio r_%s = %.6g%s", o->el[e].name, j->r[e], all_given ? " (given)" : "");
    if (!all_given) log_info("tomo", "HAADF ~ sum r_A EDS_A: R^2 = %.5f", j->r2);
    return 0;
}

/* Reads the sinograms, reconstructs every element (HEBT with a HAADF sinogram and alpha > 0, else EDS only),
 * finds the particle and its weight fractions. */
static int reconstruct(tomo_options *o, const h5array *angles, tomo_job *j, char *err, size_t errlen)
{
    int n_angles = (int)h5array_count(angles);
    for (int e = 0; e < o->n_el; e++)
        if (!(j->eds[e] = read_sinogram(o->file, o->el[e].dset, n_angles, &j->n_slices, &j->n_det, err, errlen)))
            return -1;
    if (o->haadf_dset &&
        !(j->haadf = read_sinogram(o->file, o->haadf_dset, n_angles, &j->n_slices, &j->n_det, err, errlen)))
        return -1;
    j->g = (tomo_geometry){.n = o->size ? o->size : j->n_det, .n_det = j->n_det, .n_angles = n_angles,
                           .angles_deg = angles->data, .det_spacing = o->spacing, .centre_offset = o->offset};
    if (tomo_geometry_check(&j->g, err, errlen) != 0) return -1;
    const tomo_geometry *g = &j->g;
    int n_slices = j->n_slices, n_el = o->n_el;
    tomo_params *p = &o->p;
    j->nvox = (size_t)n_slices * g->n * g->n;
    j->r2 = NAN;
    j->hebt = j->haadf && p->alpha > 0;
    if (j->hebt && response_ratios(o, j, err, errlen) != 0) return -1;
    log_info("tomo", "%s reconstruction: %d slice(s) of %d x %d, %d tilts, %s, at most %d passes%s",
             j->hebt ? "HEBT" : "EDS-only", n_slices, g->n, g->n, n_angles, p->subsets > 1 ? "OS-SART" : "SIRT",
             p->iterations, p->tolerance > 0 || p->counts_per_unit > 0 ? ", with a stopping rule on the residual" : "");
    for (int e = 0; e < n_el; e++) {
        j->rec[e] = xmalloc(j->nvox * sizeof(float));
        j->frac[e] = xmalloc(j->nvox * sizeof(float));
    }
    progress prog = {.every = p->iterations >= 10 ? p->iterations / 10 : 1};
    prog.passes = j->passes = xcalloc((size_t)n_slices, sizeof(int));
    prog.residual = j->residual = xcalloc((size_t)n_slices, sizeof(double));
    prog.stop = j->stop = xcalloc((size_t)n_slices, sizeof(int));
    p->residual_every = prog.every;
    pthread_mutex_init(&prog.lock, NULL);
    p->progress = on_progress;
    p->progress_user = &prog;
    double t0 = time_monotonic();
    int recon_rc = tomo_reconstruct(g, n_slices, n_el, (const float *const *)j->eds, j->haadf, j->r, p, j->rec, err,
                                    errlen);
    pthread_mutex_destroy(&prog.lock);
    if (recon_rc != 0) return -1;
    int most = 0, unconverged = 0;
    for (int i = 0; i < n_slices; i++) {
        most = j->passes[i] > most ? j->passes[i] : most;
        unconverged += j->stop[i] == TOMO_STOP_LIMIT;
    }
    log_info("tomo", "reconstructed %d slice(s) x %d element(s) x %d iterations in %.4f s", n_slices, n_el, most,
             time_monotonic() - t0);
    if (unconverged)
        log_warn("tomo", "%d of %d slice(s) did not converge: %d passes without the stopping rule holding", unconverged,
                 n_slices, p->iterations);

    /* HEBT maps in HAADF units y_A = r_A x_A, quantified with z_A = r_A f_A (Eq. 18). */
    double z[MAX_ELEMENTS];
    for (int e = 0; e < n_el; e++) {
        z[e] = o->el[e].factor;
        if (j->hebt) {
            for (size_t i = 0; i < j->nvox; i++) j->rec[e][i] *= (float)j->r[e];
            z[e] *= j->r[e];
        }
        if (!(z[e] > 0))
            return error_set(err, errlen,
                             "element %s has response ratio 0: it cannot be quantified from HEBT; give --r",
                             o->el[e].name);
    }
    j->signal = xmalloc(j->nvox * sizeof(float));
    j->mask = xmalloc(j->nvox);
    tomo_total_signal(j->nvox, n_el, (const float *const *)j->rec, z, j->signal);
    j->threshold = o->threshold;
    j->method = isnan(j->threshold) ? "edge-spread function" : "given";
    if (isnan(j->threshold)) {
        j->threshold = tomo_esf_threshold(j->signal, n_slices, g->n);
        if (isnan(j->threshold))
            return error_set(err, errlen,
                             "no particle edge found for the edge-spread-function threshold; give --threshold");
    }
    j->inside = tomo_quantify(j->nvox, n_el, (const float *const *)j->rec, z, j->threshold, j->frac, j->mask);
    log_info("tomo", "particle threshold %.6g (%s): %zu of %zu voxels inside", j->threshold, j->method, j->inside,
             j->nvox);
    return 0;
}

/* --reference: how close element e's map is to a known volume (SSIM parts, scaled MSE), written and printed. */
static int compare_to_reference(const tomo_options *o, const tomo_job *j, int e, h5out *out, char *err,
                                size_t errlen)
{
    const element *el = &o->el[e];
    h5array ref;
    if (h5array_read(o->file, el->reference, &ref, err, errlen) != 0) return -1;
    if (h5array_count(&ref) != j->nvox) {
        error_set(err, errlen, "reference %s has %zu values, the reconstruction %zu", el->reference,
                  h5array_count(&ref), j->nvox);
        h5array_free(&ref);
        return -1;
    }
    float *reff = xmalloc(j->nvox * sizeof(float));
    for (size_t i = 0; i < j->nvox; i++) reff[i] = (float)ref.data[i];
    h5array_free(&ref);
    tomo_metrics m;
    tomo_compare(j->nvox, j->rec[e], reff, NULL, &m);
    free(reff);
    char path[NAME_LEN + 32];
    snprintf(path, sizeof path, "/metrics/%.63s", el->name);
    size_t one = 1;
    h5out_write_double(out, path, &m.structure, 1, &one);
    h5out_attr_double(out, path, "ssim_structure", m.structure);
    h5out_attr_double(out, path, "ssim_luminance", m.luminance);
    h5out_attr_double(out, path, "ssim_contrast", m.contrast);
    h5out_attr_double(out, path, "ssim", m.ssim);
    h5out_attr_double(out, path, "mse_scaled", m.mse_scaled);
    h5out_attr_double(out, path, "scale", m.scale);
    printf("       vs %s: SSIM structure %.4f, SSIM %.4f, scaled MSE %.6g\n", el->reference, m.structure, m.ssim,
           m.mse_scaled);
    return 0;
}

/* Writes the maps, the mask, the per-slice passes and residuals and the settings to HDF5, PNG slices of every
 * map, and a summary on standard output. */
static int write_outputs(const tomo_options *o, const tomo_job *j, char *err, size_t errlen)
{
    char stem[PATH_LEN], out_path[PATH_LEN + 16], prefix[PATH_LEN];
    str_copy(stem, o->file, sizeof stem);
    toolargs_strip_extension(stem);
    const char *output = o->output;
    if (!output) {
        snprintf(out_path, sizeof out_path, "%s_tomo.h5", stem);
        output = out_path;
    }
    str_copy(prefix, o->png ? o->png : output, sizeof prefix);
    if (!o->png) toolargs_strip_extension(prefix);

    h5out *out = h5out_create(output, err, errlen);
    if (!out) return -1;
    const tomo_params *p = &o->p;
    int n_slices = j->n_slices, n = j->g.n;
    size_t nvox = j->nvox;
    size_t dims[3] = {(size_t)n_slices, (size_t)n, (size_t)n};
    int rank = n_slices > 1 ? 3 : 2;
    const size_t *d = rank == 3 ? dims : dims + 1;
    int *mask_int = xmalloc(nvox * sizeof(int));
    for (size_t i = 0; i < nvox; i++) mask_int[i] = j->mask[i];
    h5out_write_int(out, "/mask", mask_int, rank, d);
    free(mask_int);
    h5out_write_float(out, "/signal", j->signal, rank, d);
    h5out_attr_string(out, "/", "mode", j->hebt ? "HEBT" : "EDS");
    h5out_attr_double(out, "/", "alpha", j->hebt ? p->alpha : 0.0);
    h5out_attr_double(out, "/", "iterations", p->iterations);
    h5out_attr_double(out, "/", "subsets", p->subsets);
    h5out_attr_double(out, "/", "tolerance", p->tolerance);
    size_t n_z = (size_t)n_slices;
    h5out_write_int(out, "/passes", j->passes, 1, &n_z);
    h5out_write_double(out, "/residual", j->residual, 1, &n_z);
    /* 1: a stopping rule held, 0: the pass limit came first (not converged), -1: no rule asked for */
    int *converged = xmalloc(n_z * sizeof(int));
    for (size_t z = 0; z < n_z; z++)
        converged[z] = j->stop[z] == TOMO_STOP_PASSES ? -1 : j->stop[z] != TOMO_STOP_LIMIT;
    h5out_write_int(out, "/converged", converged, 1, &n_z);
    free(converged);
    h5out_attr_double(out, "/", "counts_per_unit", p->counts_per_unit);
    h5out_attr_double(out, "/", "threshold", j->threshold);
    h5out_attr_string(out, "/", "threshold_method", j->method);
    if (j->hebt) h5out_attr_double(out, "/", "r_fit_r2", j->r2);
    printf("%s, %d slice(s), threshold %.6g (%s), %zu voxels in the particle\n", j->hebt ? "HEBT" : "EDS-only",
           n_slices, j->threshold, j->method, j->inside);
    for (int e = 0; e < o->n_el; e++) {
        const element *el = &o->el[e];
        char path[NAME_LEN + 32];
        snprintf(path, sizeof path, "/reconstruction/%.63s", el->name);
        h5out_write_float(out, path, j->rec[e], rank, d);
        h5out_attr_double(out, path, "factor", el->factor);
        if (j->hebt) h5out_attr_double(out, path, "r", j->r[e]);
        snprintf(path, sizeof path, "/weight_fraction/%.63s", el->name);
        h5out_write_float(out, path, j->frac[e], rank, d);
        double sum = 0;
        for (size_t i = 0; i < nvox; i++) if (j->mask[i]) sum += j->frac[e][i];
        printf("  %-4s mean weight fraction %.4f%s", el->name, j->inside ? sum / j->inside : NAN,
               j->hebt ? "" : "\n");
        if (j->hebt) printf(", r = %.6g\n", j->r[e]);
        if (write_png_slice(prefix, el->name, "rec", j->rec[e], n_slices, n, 0, err, errlen) != 0 ||
            write_png_slice(prefix, el->name, "wt", j->frac[e], n_slices, n, 1, err, errlen) != 0 ||
            (el->reference[0] && compare_to_reference(o, j, e, out, err, errlen) != 0)) {
            h5out_close(out, NULL, 0);
            return -1;
        }
    }
    if (h5out_close(out, err, errlen) != 0) return -1;
    printf("wrote %s and %s_*.png\n", output, prefix);
    return 0;
}

static int run(tomo_options *o)
{
    char err[4 * PATH_LEN];
    h5array angles;
    if (h5array_read(o->file, o->angles_dset, &angles, err, sizeof err) != 0) {
        fprintf(stderr, "reloc-tomo: %s\n", err);
        return 1;
    }
    int rc;
    if (o->project) {
        rc = project_only(o->file, o->project, &angles, o->detector, o->spacing, o->offset, o->output, err,
                          sizeof err);
    } else {
        tomo_job job;
        memset(&job, 0, sizeof job);
        rc = reconstruct(o, &angles, &job, err, sizeof err);
        if (rc == 0) rc = write_outputs(o, &job, err, sizeof err);
        job_free(&job, o->n_el);
    }
    if (rc != 0) fprintf(stderr, "reloc-tomo: %s\n", err);
    h5array_free(&angles);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    tomo_options o;
    int status = parse_options(argc, argv, &o);
    return status >= 0 ? status : run(&o);
}
