/* generate.c -- expands an engine's templates for one ROI: the scan grid (step or point count), the soft-limit
 * check, the rectangle/particle mesh in absolute or relative form, and the row-by-row form of a polygon. */
#include "core/base/base.h"
#include "core/macsub/macsub.h"
#include "kernels/scanmacro/scanmacro_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INTERVALS 100000
#define GRID_EPS 1e-9

scan_roi roi_particle(const char *name, double cx, double cy, double diameter, double margin)
{
    scan_roi r;
    memset(&r, 0, sizeof r);
    str_copy(r.name, name, sizeof r.name);
    r.shape = ROI_RECT;
    double half = diameter / 2 + margin;
    r.x0 = cx - half;
    r.x1 = cx + half;
    r.y0 = cy - half;
    r.y1 = cy + half;
    return r;
}

/* One axis of the scan grid: start, step and number of intervals. */
typedef struct axis_grid {
    double start, step;
    int intervals;
} axis_grid;

static int make_grid(double lo, double hi, double step, int points, const char *axis, axis_grid *g, char *err,
                     size_t errlen)
{
    double width = hi - lo;
    if (step > 0) {
        double n = ceil(width / step - GRID_EPS);
        if (n > MAX_INTERVALS) return error_set(err, errlen, "%s step %g um gives more than %d intervals", axis, step,
                                                MAX_INTERVALS);
        g->intervals = n < 1 ? 1 : (int)n;
        g->step = step;
        g->start = (lo + hi) / 2 - g->intervals * step / 2;
        return 0;
    }
    if (points < 2 || points > MAX_INTERVALS + 1)
        return error_set(err, errlen, "give a %s step (um) or 2..%d points", axis, MAX_INTERVALS + 1);
    if (!(width > 0)) return error_set(err, errlen, "the ROI has no extent in %s: give a step instead of points", axis);
    g->intervals = points - 1;
    g->step = width / g->intervals;
    g->start = lo;
    return 0;
}

static double grid_end(const axis_grid *g)
{
    return g->start + g->intervals * g->step;
}

const char *scan_engine_motor(const scan_engines *engines, int engine, int axis, const scan_axis *stage_axis)
{
    const scan_engine *e = &engines->engine[engine];
    const char *alias = axis == 0 ? e->motor_x : e->motor_y;
    if (alias[0]) return alias;
    return stage_axis->record && stage_axis->record[0] ? stage_axis->record : NULL;
}

/* The scanned range [lo, hi] of one axis against the soft limits of the record that moves it. */
static int check_limits(const char *roi, const char *axis, const char *motor, const scan_axis *a, double lo,
                        double hi, char *err, size_t errlen)
{
    const axis_limits *lim = &a->limits;
    if (!isfinite(lim->low) || !isfinite(lim->high))
        return error_set(err, errlen, "ROI %s refused: the soft limits of %s are not numbers", roi, motor);
    if (lim->low == lim->high) return 0;
    char who[160];
    if (a->record && a->record[0] && strcmp(a->record, motor))
        snprintf(who, sizeof who, "%s (record %s, stage %s)", motor, a->record, axis);
    else
        snprintf(who, sizeof who, "%s (stage %s)", motor, axis);
    if (hi > lim->high + GRID_EPS)
        return error_set(err, errlen, "ROI %s refused: %s would reach %.4f um, beyond its high soft limit %.4f um",
                         roi, who, hi, lim->high);
    if (lo < lim->low - GRID_EPS)
        return error_set(err, errlen, "ROI %s refused: %s would reach %.4f um, beyond its low soft limit %.4f um",
                         roi, who, lo, lim->low);
    return 0;
}

/* A position in the engine's units, never "-0.000". */
static void define_position(macsub_table *t, const scan_engine *e, const char *name, double um)
{
    char buf[64];
    double v = um / e->um_per_unit;
    snprintf(buf, sizeof buf, "%.*f", e->precision, v);
    if (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1)) memmove(buf, buf + 1, strlen(buf));
    macsub_define(t, name, buf);
}

static void define_int(macsub_table *t, const char *name, int value)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%d", value);
    macsub_define(t, name, buf);
}

/* Appends the expansion of every line of tpl to *text. */
static int expand_lines(const macsub_table *t, const template_lines *tpl, char **text, size_t *len, char *err,
                        size_t errlen)
{
    for (int i = 0; i < tpl->count; i++) {
        char msg[200];
        char *line = macsub_expand(t, tpl->line[i], msg, sizeof msg);
        if (!line) return error_set(err, errlen, "template line \"%s\": %s", tpl->line[i], msg);
        size_t n = strlen(line);
        *text = xrealloc(*text, *len + n + 2);
        memcpy(*text + *len, line, n);
        (*text)[*len + n] = '\n';
        *len += n + 1;
        (*text)[*len] = '\0';
        free(line);
    }
    return 0;
}

/* x where the polygon's edges cross the row y (half-open rule), sorted. Returns how many. */
static int row_crossings(const scan_roi *roi, double y, double *x)
{
    int n = 0;
    for (int i = 0; i < roi->nvertices; i++) {
        const double *a = roi->vertex[i], *b = roi->vertex[(i + 1) % roi->nvertices];
        if ((a[1] <= y && y < b[1]) || (b[1] <= y && y < a[1])) x[n++] = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && x[j - 1] > x[j]; j--) {
            double tmp = x[j];
            x[j] = x[j - 1];
            x[j - 1] = tmp;
        }
    return n;
}

/* One block of polygon_row lines per run of grid columns covering the polygon's inside on each row. */
static int expand_polygon(macsub_table *t, const scan_engine *e, const scan_roi *roi, const axis_grid *gx,
                          const axis_grid *gy, double ymin, double ymax, char **text, size_t *len, char *err,
                          size_t errlen)
{
    double inset = (ymax - ymin) * 1e-6;
    for (int j = 0; j <= gy->intervals; j++) {
        double y = gy->start + j * gy->step;
        double probe = fmin(fmax(y, ymin + inset), ymax - inset);
        double cross[ROI_MAX_VERTICES];
        int n = row_crossings(roi, probe, cross);
        int last_end = -1;
        for (int k = 0; k + 1 < n; k += 2) {
            int ia = (int)floor((cross[k] - gx->start) / gx->step + GRID_EPS);
            int ib = (int)ceil((cross[k + 1] - gx->start) / gx->step - GRID_EPS);
            ia = ia < 0 ? 0 : ia;
            ib = ib > gx->intervals ? gx->intervals : ib;
            if (ib == ia) {
                if (ib < gx->intervals) ib++;
                else ia--;
            }
            if (ia <= last_end) ia = last_end + 1;        /* a concave row: do not scan a column twice */
            if (ib <= ia) continue;
            last_end = ib;
            define_position(t, e, "Y", y);
            define_position(t, e, "XA", gx->start + ia * gx->step);
            define_position(t, e, "XB", gx->start + ib * gx->step);
            define_int(t, "IXR", ib - ia);
            define_int(t, "NXR", ib - ia + 1);
            if (expand_lines(t, &e->polygon_row, text, len, err, errlen)) return -1;
        }
    }
    return 0;
}

static int roi_bounds(const scan_roi *roi, double *x0, double *x1, double *y0, double *y1, char *err, size_t errlen)
{
    if (roi->shape == ROI_RECT) {
        *x0 = fmin(roi->x0, roi->x1);
        *x1 = fmax(roi->x0, roi->x1);
        *y0 = fmin(roi->y0, roi->y1);
        *y1 = fmax(roi->y0, roi->y1);
    } else {
        if (roi->nvertices < 3 || roi->nvertices > ROI_MAX_VERTICES)
            return error_set(err, errlen, "ROI %s: a polygon needs 3..%d vertices", roi->name, ROI_MAX_VERTICES);
        *x0 = *y0 = INFINITY;
        *x1 = *y1 = -INFINITY;
        double twice_area = 0;
        for (int i = 0; i < roi->nvertices; i++) {
            const double *a = roi->vertex[i], *b = roi->vertex[(i + 1) % roi->nvertices];
            twice_area += a[0] * b[1] - b[0] * a[1];
            *x0 = fmin(*x0, roi->vertex[i][0]);
            *x1 = fmax(*x1, roi->vertex[i][0]);
            *y0 = fmin(*y0, roi->vertex[i][1]);
            *y1 = fmax(*y1, roi->vertex[i][1]);
        }
        if (!(fabs(twice_area) > 1e-9 * (*x1 - *x0) * (*y1 - *y0))) return error_set(err, errlen, "ROI %s: the polygon has no area", roi->name);
    }
    if (!isfinite(*x0) || !isfinite(*x1) || !isfinite(*y0) || !isfinite(*y1))
        return error_set(err, errlen, "ROI %s: coordinates must be finite", roi->name);
    return 0;
}

static void define_grid(macsub_table *t, const scan_engine *e, const axis_grid *gx, const axis_grid *gy, double dwell)
{
    double cx = (gx->start + grid_end(gx)) / 2, cy = (gy->start + grid_end(gy)) / 2;
    define_position(t, e, "X0", gx->start);
    define_position(t, e, "X1", grid_end(gx));
    define_position(t, e, "Y0", gy->start);
    define_position(t, e, "Y1", grid_end(gy));
    define_position(t, e, "CX", cx);
    define_position(t, e, "CY", cy);
    define_position(t, e, "RX0", gx->start - cx);
    define_position(t, e, "RX1", grid_end(gx) - cx);
    define_position(t, e, "RY0", gy->start - cy);
    define_position(t, e, "RY1", grid_end(gy) - cy);
    define_position(t, e, "SX", gx->step);
    define_position(t, e, "SY", gy->step);
    define_int(t, "IX", gx->intervals);
    define_int(t, "IY", gy->intervals);
    define_int(t, "NX", gx->intervals + 1);
    define_int(t, "NY", gy->intervals + 1);
    char buf[32];
    snprintf(buf, sizeof buf, "%g", dwell);
    macsub_define(t, "T", buf);
}

char *scan_macro_generate(const scan_engines *engines, int engine, const scan_roi *roi, const scan_sampling *s,
                          const scan_axis axes[2], char *err, size_t errlen)
{
    if (engine < 0 || engine >= engines->count) {
        error_set(err, errlen, "no scan engine %d", engine);
        return NULL;
    }
    const scan_engine *e = &engines->engine[engine];
    const char *mx = scan_engine_motor(engines, engine, 0, &axes[0]), *my = scan_engine_motor(engines, engine, 1, &axes[1]);
    if (!mx || !my) {
        error_set(err, errlen, "engine %s names no motor for %s and no record is given", e->name, mx ? "Y" : "X");
        return NULL;
    }
    double x0 = 0, x1 = 0, y0 = 0, y1 = 0;
    axis_grid gx, gy;
    if (roi_bounds(roi, &x0, &x1, &y0, &y1, err, errlen)) return NULL;
    if (!(s->dwell > 0) || !isfinite(s->dwell)) {
        error_set(err, errlen, "ROI %s: the dwell time must be a positive number of seconds", roi->name);
        return NULL;
    }
    if (make_grid(x0, x1, s->step_x, s->points_x, "X", &gx, err, errlen) ||
        make_grid(y0, y1, s->step_y, s->points_y, "Y", &gy, err, errlen) ||
        check_limits(roi->name, "X", mx, &axes[0], gx.start, grid_end(&gx), err, errlen) ||
        check_limits(roi->name, "Y", my, &axes[1], gy.start, grid_end(&gy), err, errlen))
        return NULL;

    macsub_table *t = macsub_create(NULL, 0);
    macsub_define(t, "MX", mx);
    macsub_define(t, "MY", my);
    macsub_define(t, "DETECTORS", e->detectors);
    macsub_define(t, "NAME", roi->name);
    define_grid(t, e, &gx, &gy, s->dwell);
    char *text = xcalloc(1, 1);
    size_t len = 0;
    int rc = expand_lines(t, &e->pre, &text, &len, err, errlen);
    if (!rc && roi->shape == ROI_POLYGON) rc = expand_polygon(t, e, roi, &gx, &gy, y0, y1, &text, &len, err, errlen);
    else if (!rc) rc = expand_lines(t, s->relative ? &e->relative : &e->absolute, &text, &len, err, errlen);
    if (!rc) rc = expand_lines(t, &e->post, &text, &len, err, errlen);
    macsub_free(t);
    if (rc) {
        free(text);
        return NULL;
    }
    return text;
}
