/* tool_fit.c -- reloc-fit: fits the transform between two coordinate systems from fiducial pairs, as the
 * IOC does for image layers, and prints it as JSON with per-pair residuals.
 *   reloc-fit PAIRS.csv [--similarity | --affine] [--robust] [--threshold T]
 * PAIRS.csv: one pair per line, "src_x,src_y,dst_x,dst_y" (a header line and # comments are skipped).
 * Exit status 0, 1 when the fit is impossible (message on stderr), 2 on bad usage or input. */
#include "core/base/base.h"
#include "kernels/geometry/geometry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_pairs(const char *path, double (*src)[2], double (*dst)[2], int *n)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "reloc-fit: cannot open %s\n", path);
        return -1;
    }
    char line[512];
    int lineno = 0;
    *n = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\0') continue;
        double v[4];
        if (sscanf(p, "%lf , %lf , %lf , %lf", &v[0], &v[1], &v[2], &v[3]) != 4) {
            if (lineno == 1) continue;     /* a header */
            fprintf(stderr, "reloc-fit: %s:%d: expected src_x,src_y,dst_x,dst_y\n", path, lineno);
            fclose(fp);
            return -1;
        }
        if (*n == FIT_MAX_POINTS) {
            fprintf(stderr, "reloc-fit: %s: more than %d pairs\n", path, FIT_MAX_POINTS);
            fclose(fp);
            return -1;
        }
        src[*n][0] = v[0];
        src[*n][1] = v[1];
        dst[*n][0] = v[2];
        dst[*n][1] = v[3];
        (*n)++;
    }
    fclose(fp);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PAIRS.csv [--similarity | --affine] [--robust] [--threshold T]\n", argv[0]);
        return 2;
    }
    fit_kind kind = FIT_SIMILARITY;
    int robust = 0;
    double threshold = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--similarity")) kind = FIT_SIMILARITY;
        else if (!strcmp(argv[i], "--affine")) kind = FIT_AFFINE;
        else if (!strcmp(argv[i], "--robust")) robust = 1;
        else if (!strcmp(argv[i], "--threshold") && i + 1 < argc) threshold = atof(argv[++i]);
        else {
            fprintf(stderr, "reloc-fit: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    static double src[FIT_MAX_POINTS][2], dst[FIT_MAX_POINTS][2];
    int n;
    if (read_pairs(argv[1], src, dst, &n) != 0) return 2;
    static fit_result fit;
    char err[256];
    if (transform_fit((const double (*)[2])src, (const double (*)[2])dst, n, kind, robust, threshold, &fit, err,
                      sizeof err) != 0) {
        fprintf(stderr, "reloc-fit: %s\n", err);
        return 1;
    }
    double sx, sy, rot, shear;
    int mirrored;
    affine_decompose(&fit.transform, &sx, &sy, &rot, &shear, &mirrored);
    const affine2d *t = &fit.transform;
    printf("{\"kind\": \"%s\", \"matrix\": [[%.12g, %.12g], [%.12g, %.12g]], \"translation\": [%.12g, %.12g],\n",
           kind == FIT_SIMILARITY ? "similarity" : "affine", t->m[0][0], t->m[0][1], t->m[1][0], t->m[1][1], t->t[0],
           t->t[1]);
    printf(" \"scale_x\": %.12g, \"scale_y\": %.12g, \"rotation_deg\": %.12g, \"shear\": %.12g, \"mirrored\": %s,\n", sx,
           sy, rot, shear, mirrored ? "true" : "false");
    printf(" \"rms\": %.12g, \"inliers\": %d, \"pairs\": %d, \"residuals\": [", fit.rms, fit.ninliers, fit.n);
    for (int i = 0; i < n; i++) printf("%s%.12g", i ? ", " : "", fit.residual[i]);
    printf("], \"outliers\": [");
    for (int i = 0, first = 1; i < n; i++)
        if (!fit.inlier[i]) {
            printf("%s%d", first ? "" : ", ", i);
            first = 0;
        }
    printf("]}\n");
    return 0;
}
