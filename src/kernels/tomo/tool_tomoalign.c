/* tool_tomoalign.c -- reloc-tomoalign: jitter and rotation-axis correction of tomographic projection series by
 * iterative reprojection, one series per energy.
 *
 *   reloc-tomoalign series.h5 [-o out.h5] [--iterations N] [--tolerance PX] [--passes P] [--subsets S]
 *                   [--outlier-mads K] [--threads N]
 *
 * Input (the layout sim/spectrotomo.py writes, README "Spectro-tomography files"): /projections (energies,
 * angles, y, x) or (angles, y, x), linear (absorbance -ln(I/I0)), rows perpendicular to the rotation axis;
 * /angles (angles) in degrees; optional /energies (eV) and /pixel_size (nm) per energy, copied to the output.
 * Output: /aligned (as /projections), /shift_x and /shift_y (energies, angles; px, content moved by +shift),
 * /residual and /outlier (energies, angles), /axis_offset, /iterations, /converged (energies), and per energy
 * /max_update/<k> (px per iteration). Progress per iteration on stderr; a summary per energy on stdout. An energy
 * the reprojections do not explain (tomo.h: tomo_align_result.failed) is FAILED: projections written unshifted, shifts
 * and axis offset NaN, /converged 0. Exit status 0 when every energy converged, 3 when one did not or failed (all
 * results are written, and the summary names them).
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
            "  --threads N          worker threads (default: one per CPU)\n");
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

int main(int argc, char **argv)
{
    tomo_align_params p;
    tomo_align_params_default(&p);
    const char *output = NULL;
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"iterations", required_argument, 0, 'i'},
        {"tolerance", required_argument, 0, 't'}, {"passes", required_argument, 0, 'P'},
        {"subsets", required_argument, 0, 'S'}, {"outlier-mads", required_argument, 0, 'm'},
        {"threads", required_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
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
    int *outl = NULL;
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
        int failed = r.failed;
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
    free(aligned);
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
    rc = all_converged ? 0 : 3;
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
    free(proj);
    h5array_free(&angles);
    return rc;
}
