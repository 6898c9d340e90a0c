/* tool_tomoalign.c -- reloc-tomoalign: jitter and rotation-axis correction of tomographic projection series by
 * iterative reprojection, one series per energy, then registration of the energies' series to one reference energy.
 *
 *   reloc-tomoalign series.h5 [-o out.h5] [--iterations N] [--tolerance PX] [--passes P] [--subsets S]
 *                   [--outlier-mads K] [--threads N] [--reference K] [--match edges|intensity]
 *                   [--no-fit-magnification] [--max-rms PX]
 *
 * Input (the layout sim/spectrotomo.py writes, README "Spectro-tomography files"): /projections (energies,
 * angles, y, x) or (angles, y, x), linear (absorbance -ln(I/I0)), rows perpendicular to the rotation axis;
 * /angles (angles) in degrees; optional /energies (eV) and /pixel_size (nm) per energy, copied to the output.
 * Output: /aligned (as /projections), /shift_x and /shift_y (energies, angles; px, content moved by +shift),
 * /residual and /outlier (energies, angles), /axis_offset, /iterations, /converged (energies), and per energy
 * /max_update/<k> (px per iteration). Progress per iteration on stderr; a summary per energy on stdout. An energy
 * the reprojections do not explain (tomo.h: tomo_align_result.failed) is FAILED: projections written unshifted, shifts
 * and axis offset NaN, /converged 0.
 * With more than one energy, every energy's aligned series is registered to the reference energy's (tomo.h:
 * tomo_register_energy; nominal magnification from /pixel_size, else from /energies as pixel size ~ energy, else
 * 1): /registered (energies, angles, y, x) holds every series on the reference's pixel grid, /energy_shift_x,
 * /energy_shift_y (the fitted model) and /energy_match_x, /energy_match_y (single matches), reference px; per
 * energy /magnification, /magnification_nominal, /magnification_fitted, /pixel_size_off,
 * /registration_rms_px, /registration_error_px, /registration_error_nm, /registration_confidence,
 * /registration_correlation, /registration_failed, and /reference_energy. A line per energy on stdout and one
 * "failed energies:" line list what failed (jitter or registration); failed energies are not registered (their
 * /registered is NaN). Exit status 0 when every energy converged and registered, 3 otherwise (all results are
 * written, and the summary names them).
 */
#include "core/base/base.h"
#include "core/toolargs/toolargs.h"
#include "formats/h5array/h5array.h"
#include "kernels/tomo/tomo.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_LEN 4096

static void usage(FILE *f)
{
    fprintf(f,
            "usage: reloc-tomoalign SERIES.h5 [options]\n"
            "  -o, --output FILE    HDF5 output (default: SERIES stem + _aligned.h5)\n"
            "  --iterations N       reconstruct-reproject-register rounds at most (default 20)\n"
            "  --tolerance PX       converged when no shift changes by more (default 0.05)\n"
            "  --passes P           OS-SART passes per reconstruction (default 3)\n"
            "  --subsets S          OS-SART subsets (default 10)\n"
            "  --outlier-mads K     flag projections whose residual exceeds median + K MAD (default 6)\n"
            "  --threads N          worker threads (default: one per CPU)\n"
            "  --reference K        energy index the others are registered to (default 0, else the first not failed)\n"
            "  --match MODE         edges (gradient magnitude, default) or intensity (plain phase correlation)\n"
            "  --no-fit-magnification  use the magnification of the given pixel sizes as it is\n"
            "  --max-rms PX         an energy whose matches scatter more about the fit fails (default 1)\n");
}

typedef struct energy_progress {
    int energy, n_energies;
} energy_progress;

static void on_progress(void *user, int iteration, double max_update, double mean_residual)
{
    const energy_progress *e = user;
    fprintf(stderr, "energy %d/%d iteration %d: largest shift change %.4f px, mean residual %.5f\n", e->energy + 1,
            e->n_energies, iteration, max_update, mean_residual);
}

/* Copies an optional per-energy dataset to the output when it has one value per energy. */
static void copy_per_energy(const char *file, const char *dset, size_t n_energies, h5out *out)
{
    h5array a;
    char err[256];
    if (h5array_read(file, dset, &a, err, sizeof err) != 0) return;
    if (a.rank <= 1 && h5array_count(&a) == n_energies) h5out_write_double(out, dset, a.data, 1, &n_energies);
    h5array_free(&a);
}

/* Per-energy values of an optional dataset (NULL when absent or of another length); free() the result. */
static double *read_per_energy(const char *file, const char *dset, size_t n_energies)
{
    h5array a;
    char err[256];
    if (h5array_read(file, dset, &a, err, sizeof err) != 0) return NULL;
    double *v = NULL;
    if (a.rank <= 1 && h5array_count(&a) == n_energies) {
        v = xmalloc(n_energies * sizeof(double));
        memcpy(v, a.data, n_energies * sizeof(double));
    }
    h5array_free(&a);
    return v;
}

/* What the cross-energy registration needs besides the aligned series. */
typedef struct energy_job {
    const char *file;
    size_t ne, na;
    int ny, nx, reference;
    const double *angles;
    const int *failed;         /* per energy: the jitter alignment failed */
    tomo_energy_params p;
} energy_job;

/* Registers every energy's aligned series to the reference energy's and writes the results (see the header);
 * returns the number of energies that failed (jitter or registration), or -1 with a message. */
static int register_energies(const energy_job *job, const float *aligned, h5out *out, char *err, size_t errlen)
{
    size_t ne = job->ne, na = job->na, frames = na * (size_t)job->ny * job->nx, per[2] = {ne, na};
    int ref = job->reference;
    if (job->failed[ref])
        for (ref = 0; ref < (int)ne && job->failed[ref]; ref++) continue;
    if (ref >= (int)ne) {
        printf("energy registration: every energy failed its jitter alignment; nothing registered\n");
        return (int)ne;
    }
    double *pixel = read_per_energy(job->file, "/pixel_size", ne), *energy = read_per_energy(job->file, "/energies", ne);
    const double *size_of = pixel ? pixel : energy;
    printf("energy registration to energy %d (%s matching); magnification from %s\n", ref,
           job->p.match == TOMO_MATCH_EDGES ? "edge" : "intensity",
           pixel ? "/pixel_size" : energy ? "/energies (pixel size ~ energy)" : "nothing (taken as 1)");
    float *registered = xmalloc(ne * frames * sizeof(float));
    size_t nq = 10 * ne;
    double *q = xmalloc(nq * sizeof(double)), *sx = xmalloc(4 * ne * na * sizeof(double));
    double *sy = sx + ne * na, *mx = sy + ne * na, *my = mx + ne * na;
    double *mag = q, *mag_nom = q + ne, *mag_fit = q + 2 * ne, *off = q + 3 * ne, *rms = q + 4 * ne;
    double *epx = q + 5 * ne, *enm = q + 6 * ne, *conf = q + 7 * ne, *corr = q + 8 * ne, *failed = q + 9 * ne;
    int n_failed = 0, rc = 0;
    char list[1024] = "";
    for (size_t e = 0; e < ne; e++) {
        double m0 = size_of && size_of[e] > 0 ? size_of[ref] / size_of[e] : 1;
        tomo_energy_result r = {0};
        int jitter_failed = job->failed[e], is_ref = (int)e == ref;
        if (!jitter_failed && !is_ref &&
            tomo_register_energy(aligned + (size_t)ref * frames, aligned + e * frames, (int)na, job->ny, job->nx,
                                 job->angles, m0, &job->p, &r, registered + e * frames, err, errlen) != 0) {
            rc = -1;
            break;
        }
        int bad = jitter_failed || (!is_ref && r.failed);
        mag_nom[e] = m0;
        mag[e] = is_ref ? 1 : bad ? NAN : r.magnification;
        mag_fit[e] = is_ref || jitter_failed ? NAN : r.magnification_fitted;
        off[e] = !is_ref && !jitter_failed && r.pixel_size_off;
        rms[e] = is_ref ? 0 : jitter_failed ? NAN : r.rms_px;
        epx[e] = is_ref ? 0 : jitter_failed ? NAN : r.error_px;
        enm[e] = pixel ? epx[e] * pixel[ref] : NAN;
        conf[e] = is_ref ? 1 : jitter_failed ? 0 : r.confidence;
        corr[e] = is_ref ? 1 : jitter_failed ? NAN : r.correlation;
        failed[e] = bad;
        for (size_t a = 0; a < na; a++) {
            sx[e * na + a] = is_ref ? 0 : bad ? NAN : r.shift_x[a];
            sy[e * na + a] = is_ref ? 0 : bad ? NAN : r.shift_y[a];
            mx[e * na + a] = is_ref ? 0 : jitter_failed ? NAN : r.match_x[a];
            my[e * na + a] = is_ref ? 0 : jitter_failed ? NAN : r.match_y[a];
        }
        if (is_ref) memcpy(registered + e * frames, aligned + e * frames, frames * sizeof(float));
        else if (bad)
            for (size_t i = 0; i < frames; i++) registered[e * frames + i] = NAN;
        if (is_ref)
            printf("energy %zu: reference\n", e);
        else if (jitter_failed)
            printf("energy %zu: registration FAILED: its jitter alignment failed\n", e);
        else
            printf("energy %zu: registration %s%s%s: magnification %.5f (nominal %.5f, fitted %.5f%s); 3D shift "
                   "c %+.3f a %+.3f b %+.3f d %+.3f px; scatter %.3f px, estimated error %.3f px (%.2f nm), "
                   "%.0f %% of angles agree, median correlation %.3f\n",
                   e, r.failed ? "FAILED (" : "ok", r.failed ? r.why : "", r.failed ? ")" : "", r.magnification,
                   m0, r.magnification_fitted, r.pixel_size_off ? ": GIVEN PIXEL SIZE OFF, fitted value used" : "",
                   r.c, r.a, r.b, r.d, r.rms_px, r.error_px, enm[e], 100 * r.confidence, r.correlation);
        if (bad) {
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%zu", n_failed ? ", " : "", e);
            n_failed++;
        }
        tomo_energy_result_free(&r);
    }
    if (rc == 0) {
        printf("failed energies: %s\n", n_failed ? list : "none");
        h5out_write_float(out, "/registered", registered, 4, (size_t[]){ne, na, (size_t)job->ny, (size_t)job->nx});
        h5out_write_double(out, "/energy_shift_x", sx, 2, per);
        h5out_write_double(out, "/energy_shift_y", sy, 2, per);
        h5out_write_double(out, "/energy_match_x", mx, 2, per);
        h5out_write_double(out, "/energy_match_y", my, 2, per);
        static const char *names[] = {"/magnification", "/magnification_nominal", "/magnification_fitted",
                                      "/pixel_size_off", "/registration_rms_px", "/registration_error_px",
                                      "/registration_error_nm", "/registration_confidence",
                                      "/registration_correlation", "/registration_failed"};
        for (int k = 0; k < 10; k++) h5out_write_double(out, names[k], q + (size_t)k * ne, 1, &ne);
        int ref_out = ref;
        size_t one = 1;
        h5out_write_int(out, "/reference_energy", &ref_out, 1, &one);
        h5out_attr_string(out, "/energy_shift_x", "units",
                          "reference px; the energy's series, scaled by /magnification about the detector centre, "
                          "has its content moved by +shift relative to the reference");
    }
    free(registered);
    free(q);
    free(sx);
    free(pixel);
    free(energy);
    return rc == 0 ? n_failed : -1;
}

int main(int argc, char **argv)
{
    tomo_align_params p;
    tomo_align_params_default(&p);
    const char *output = NULL;
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"iterations", required_argument, 0, 'i'},
        {"tolerance", required_argument, 0, 't'}, {"passes", required_argument, 0, 'P'},
        {"subsets", required_argument, 0, 'S'}, {"outlier-mads", required_argument, 0, 'm'},
        {"threads", required_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
        {"reference", required_argument, 0, 'r'}, {"match", required_argument, 0, 'M'},
        {"no-fit-magnification", no_argument, 0, 'F'}, {"max-rms", required_argument, 0, 'R'}, {0, 0, 0, 0}};
    energy_job job = {.file = NULL};
    tomo_energy_params_default(&job.p);
    int c, which = 0;
    while ((c = getopt_long(argc, argv, "o:", opts, &which)) != -1) {
        int bad = 0;
        switch (c) {
        case 'o': output = optarg; break;
        case 'i': bad = toolargs_int(optarg, 1, 10000, &p.max_iterations); break;
        case 't': bad = toolargs_double(optarg, &p.tolerance) || !(p.tolerance > 0); break;
        case 'P': bad = toolargs_int(optarg, 1, 1000, &p.passes); break;
        case 'S': bad = toolargs_int(optarg, 1, 65536, &p.subsets); break;
        case 'm': bad = toolargs_double(optarg, &p.outlier_mads) || !(p.outlier_mads > 0); break;
        case 'j': bad = toolargs_int(optarg, 0, 1024, &p.threads); break;
        case 'r': bad = toolargs_int(optarg, 0, 1 << 20, &job.reference); break;
        case 'M':
            bad = strcmp(optarg, "edges") != 0 && strcmp(optarg, "intensity") != 0;
            job.p.match = strcmp(optarg, "intensity") == 0 ? TOMO_MATCH_INTENSITY : TOMO_MATCH_EDGES;
            break;
        case 'F': job.p.fit_magnification = 0; break;
        case 'R': bad = toolargs_double(optarg, &job.p.max_rms) || !(job.p.max_rms > 0); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "reloc-tomoalign: bad value '%s' for --%s\n", optarg, c == 'o' ? "output" : opts[which].name);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *file = argv[optind];
    char err[PATH_LEN + 256], out_path[PATH_LEN + 16];
    if (!output) {
        char stem[PATH_LEN];
        str_copy(stem, file, sizeof stem);
        toolargs_strip_extension(stem);
        snprintf(out_path, sizeof out_path, "%s_aligned.h5", stem);
        output = out_path;
    }
    h5array shape, angles;
    float *proj = h5array_read_float(file, "/projections", &shape, err, sizeof err);
    if (!proj) {
        fprintf(stderr, "reloc-tomoalign: %s\n", err);
        return 1;
    }
    if (h5array_read(file, "/angles", &angles, err, sizeof err) != 0) {
        fprintf(stderr, "reloc-tomoalign: %s\n", err);
        free(proj);
        return 1;
    }
    int rc = 1;
    h5out *out = NULL;
    double *sx = NULL, *sy = NULL, *res = NULL, *axis = NULL, *iters = NULL, *conv = NULL;
    int *outl = NULL, *jitter_failed = NULL;
    int rank = shape.rank;
    size_t n_energies = rank == 4 ? shape.dims[0] : 1, n_angles = rank >= 3 ? shape.dims[rank - 3] : 0;
    int ny = rank >= 3 ? (int)shape.dims[rank - 2] : 0, nx = rank >= 3 ? (int)shape.dims[rank - 1] : 0;
    if (rank != 3 && rank != 4) {
        snprintf(err, sizeof err, "%s:/projections has rank %d; expected ([energies,] angles, y, x)", file, rank);
        goto done;
    }
    if (angles.rank != 1 || h5array_count(&angles) != n_angles) {
        snprintf(err, sizeof err, "%s:/angles holds %zu values but there are %zu projections per energy", file,
                 h5array_count(&angles), n_angles);
        goto done;
    }
    if (job.reference >= (int)n_energies) {
        snprintf(err, sizeof err, "--reference %d: %s holds %zu energies", job.reference, file, n_energies);
        goto done;
    }
    size_t frames = n_angles * (size_t)ny * nx;
    for (size_t i = 0; i < n_energies * frames; i++)
        if (!isfinite(proj[i])) {
            snprintf(err, sizeof err, "%s:/projections holds non-finite values (projection %zu of energy %zu)", file,
                     (i % frames) / ((size_t)ny * nx), i / frames);
            goto done;
        }
    if (!(out = h5out_create(output, err, sizeof err))) goto done;
    size_t ne = n_energies, na_all = ne * n_angles, per[2] = {ne, n_angles};
    sx = xmalloc(na_all * sizeof(double));
    sy = xmalloc(na_all * sizeof(double));
    res = xmalloc(na_all * sizeof(double));
    outl = xmalloc(na_all * sizeof(int));
    axis = xmalloc(ne * sizeof(double));
    iters = xmalloc(ne * sizeof(double));
    conv = xmalloc(ne * sizeof(double));
    jitter_failed = xcalloc(ne, sizeof(int));
    float *aligned = xmalloc(ne * frames * sizeof(float));
    int all_converged = 1;
    for (size_t e = 0; e < ne; e++) {
        energy_progress ep = {(int)e, (int)ne};
        p.progress = on_progress;
        p.progress_user = &ep;
        tomo_align_result r;
        double t0 = time_monotonic();
        if (tomo_align_jitter(proj + e * frames, (int)n_angles, ny, nx, angles.data, &p, &r, aligned + e * frames, NULL,
                              err, sizeof err) != 0) {
            free(aligned);
            goto done;
        }
        double rms = 0;
        int failed = jitter_failed[e] = r.failed;
        if (failed) memcpy(aligned + e * frames, proj + e * frames, frames * sizeof(float));
        for (size_t a = 0; a < n_angles; a++) {
            sx[e * n_angles + a] = failed ? NAN : r.shift_x[a];
            sy[e * n_angles + a] = failed ? NAN : r.shift_y[a];
            res[e * n_angles + a] = r.residual[a];
            outl[e * n_angles + a] = r.outlier[a];
            rms += r.residual[a] * r.residual[a];
        }
        axis[e] = failed ? NAN : r.axis_offset;
        iters[e] = r.iterations;
        conv[e] = r.converged && !failed;
        all_converged &= r.converged && !failed;
        if (failed)
            printf("energy %zu: FAILED, not aligned: median residual %.3f (limit %.2f): the reprojections do not "
                   "explain the projections; written unshifted, shifts NaN\n", e, r.median_residual,
                   TOMO_ALIGN_MAX_RESIDUAL);
        else
            printf("energy %zu: %s after %d iterations (last change %.4f px) in %.2f s; axis offset %+.3f px; "
               "RMS residual %.5f; %d outlier projection(s)\n", e, r.converged ? "converged" : "NOT converged",
               r.iterations, r.max_update[r.iterations - 1], time_monotonic() - t0, r.axis_offset,
               sqrt(rms / n_angles), r.n_outliers);
        char path[64];
        snprintf(path, sizeof path, "/max_update/%zu", e);
        size_t n_it = (size_t)r.iterations;
        h5out_write_double(out, path, r.max_update, 1, &n_it);
        tomo_align_result_free(&r);
    }
    h5out_write_float(out, "/aligned", aligned, rank, shape.dims);
    int energies_failed = 0;
    if (ne > 1) {
        job.file = file;
        job.ne = ne;
        job.na = n_angles;
        job.ny = ny;
        job.nx = nx;
        job.angles = angles.data;
        job.failed = jitter_failed;
        job.p.threads = p.threads;
        energies_failed = register_energies(&job, aligned, out, err, sizeof err);
    }
    free(aligned);
    if (energies_failed < 0) goto done;
    h5out_write_double(out, "/angles", angles.data, 1, &n_angles);
    h5out_write_double(out, "/shift_x", sx, 2, per);
    h5out_write_double(out, "/shift_y", sy, 2, per);
    h5out_write_double(out, "/residual", res, 2, per);
    h5out_write_int(out, "/outlier", outl, 2, per);
    h5out_write_double(out, "/axis_offset", axis, 1, &ne);
    h5out_write_double(out, "/iterations", iters, 1, &ne);
    h5out_write_double(out, "/converged", conv, 1, &ne);
    h5out_attr_string(out, "/shift_x", "units", "px; content moved by +shift; includes the axis offset");
    copy_per_energy(file, "/energies", ne, out);
    copy_per_energy(file, "/pixel_size", ne, out);
    int closed = h5out_close(out, err, sizeof err);
    out = NULL;
    if (closed != 0) goto done;
    printf("wrote %s\n", output);
    rc = all_converged && energies_failed == 0 ? 0 : 3;
done:
    if (rc == 1) fprintf(stderr, "reloc-tomoalign: %s\n", err);
    if (out) h5out_close(out, NULL, 0);
    free(sx);
    free(sy);
    free(res);
    free(outl);
    free(axis);
    free(iters);
    free(conv);
    free(jitter_failed);
    free(proj);
    h5array_free(&angles);
    return rc;
}
