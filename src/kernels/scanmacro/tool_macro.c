/* tool_macro.c -- reloc-macro: the scan macro for one ROI, as the IOC's macro queue generates it.
 *   reloc-macro ENGINES.json ENGINE (--rect X0 Y0 X1 Y1 | --particle CX CY DIAMETER | --polygon X,Y X,Y X,Y ...)
 *               (--step SX SY | --points NX NY) --dwell T [--margin M] [--relative] [--name NAME]
 *               [--limits XLO XHI YLO YHI]
 * Coordinates in stage micrometres. Prints the macro on stdout. Exit status 0, 1 when the macro is refused
 * (message on stderr: out of the soft limits, bad ROI), 2 on bad usage. */
#include "core/base/base.h"
#include "kernels/scanmacro/scanmacro.h"
#include "core/toolargs/toolargs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *why)
{
    fprintf(stderr, "reloc-macro: %s\nusage: reloc-macro ENGINES.json ENGINE (--rect X0 Y0 X1 Y1 | --particle CX CY D "
            "| --polygon X,Y X,Y X,Y ...) (--step SX SY | --points NX NY) --dwell T [--margin M] [--relative] "
            "[--name NAME] [--limits XLO XHI YLO YHI]\n", why);
    return 2;
}

/* Parses count numbers from argv[*i + 1 ...]; advances *i. */
static int numbers(int argc, char **argv, int *i, int count, double *out)
{
    if (*i + count >= argc) return -1;
    for (int k = 0; k < count; k++)
        if (toolargs_double(argv[*i + 1 + k], &out[k])) return -1;
    *i += count;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) return usage("missing arguments");
    char err[512];
    scan_roi roi;
    memset(&roi, 0, sizeof roi);
    scan_sampling s = {0};
    scan_axis axes[2] = {{NULL, {0, 0}}, {NULL, {0, 0}}};   /* the engine's aliases name the motors */
    const char *name = "roi";
    double particle[3], margin = 0;
    int have_roi = 0, is_particle = 0;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        double v[4];
        if (!strcmp(a, "--rect")) {
            if (numbers(argc, argv, &i, 4, v)) return usage("--rect needs 4 numbers");
            roi.shape = ROI_RECT;
            roi.x0 = v[0], roi.y0 = v[1], roi.x1 = v[2], roi.y1 = v[3];
            have_roi = 1;
        } else if (!strcmp(a, "--particle")) {
            if (numbers(argc, argv, &i, 3, particle)) return usage("--particle needs 3 numbers");
            have_roi = is_particle = 1;
        } else if (!strcmp(a, "--polygon")) {
            roi.shape = ROI_POLYGON;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2)) {
                if (roi.nvertices == ROI_MAX_VERTICES) return usage("too many polygon vertices");
                double *p = roi.vertex[roi.nvertices++];
                if (sscanf(argv[++i], "%lf,%lf", &p[0], &p[1]) != 2) return usage("polygon vertices are X,Y");
            }
            have_roi = 1;
        } else if (!strcmp(a, "--step")) {
            if (numbers(argc, argv, &i, 2, v) || !(v[0] > 0) || !(v[1] > 0)) return usage("--step needs 2 positive numbers");
            s.step_x = v[0], s.step_y = v[1];
        } else if (!strcmp(a, "--points")) {
            if (i + 2 >= argc || toolargs_int(argv[i + 1], 2, 100001, &s.points_x) ||
                toolargs_int(argv[i + 2], 2, 100001, &s.points_y))
                return usage("--points needs 2 integers >= 2");
            i += 2;
        } else if (!strcmp(a, "--dwell")) {
            if (numbers(argc, argv, &i, 1, &s.dwell)) return usage("--dwell needs a number");
        } else if (!strcmp(a, "--margin")) {
            if (numbers(argc, argv, &i, 1, &margin)) return usage("--margin needs a number");
        } else if (!strcmp(a, "--relative")) {
            s.relative = 1;
        } else if (!strcmp(a, "--name") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(a, "--limits")) {
            if (numbers(argc, argv, &i, 4, v)) return usage("--limits needs 4 numbers");
            axes[0].limits = (axis_limits){v[0], v[1]};
            axes[1].limits = (axis_limits){v[2], v[3]};
        } else {
            return usage("unknown option");
        }
    }
    if (!have_roi) return usage("give a ROI");
    if (is_particle) roi = roi_particle(name, particle[0], particle[1], particle[2], margin);
    str_copy(roi.name, name, sizeof roi.name);

    scan_engines *engines = scan_engines_load(argv[1], err, sizeof err);
    if (!engines) {
        fprintf(stderr, "reloc-macro: %s\n", err);
        return 2;
    }
    int engine = scan_engine_find(engines, argv[2]);
    if (engine < 0) {
        fprintf(stderr, "reloc-macro: no engine \"%s\" in %s\n", argv[2], argv[1]);
        scan_engines_free(engines);
        return 2;
    }
    char *text = scan_macro_generate(engines, engine, &roi, &s, axes, err, sizeof err);
    scan_engines_free(engines);
    if (!text) {
        fprintf(stderr, "reloc-macro: %s\n", err);
        return 1;
    }
    fputs(text, stdout);
    free(text);
    return 0;
}
