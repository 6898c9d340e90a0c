/* constellation.c -- rotation-invariant matching of two point sets (detected particles of a reference image
 * and of live camera views): finds the similarity, of any rotation, a scale within bounds and either
 * handedness, that lays most scene points onto model points. Pair voting: every scene pair of suitable length
 * and every model pair of the same length (within the scale bounds) propose one transform; a proposal is
 * checked first on the scene neighbours of the pair, then on every scene point; proposals that place the
 * scene alike are pooled, so the best placement and the best *different* placement (the runner-up, which says
 * how ambiguous the answer is) are both known. The winner is refined by least squares on its matched pairs.
 * Plain C, no I/O; one call allocates and frees its own scratch. */
#include "kernels/geometry/geometry.h"

#include "core/base/base.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GRID_SIDE 2048
#define QUICK_NEIGHBOURS 16     /* scene neighbours of a pair's first point that a proposal must explain first */
#define QUICK_MIN 2             /* ... at least this many of them, or it is not scored on the whole scene */
#define MAX_PLACEMENTS 64
#define SAME_PLACEMENT 5.0     /* tolerances: proposals closer than this at the probes are pooled */
#define REFINE_ROUNDS 3

/* Model points bucketed in square cells for lookups within a radius. */
typedef struct point_grid {
    double x0, y0, cell;
    int nx, ny;
    int *start;                 /* nx * ny + 1 offsets into index */
    int *index;
    const double (*p)[2];
} point_grid;

static void grid_build(point_grid *g, const double (*p)[2], int n, double cell)
{
    double x0 = p[0][0], y0 = p[0][1], x1 = x0, y1 = y0;
    for (int i = 1; i < n; i++) {
        x0 = fmin(x0, p[i][0]), x1 = fmax(x1, p[i][0]);
        y0 = fmin(y0, p[i][1]), y1 = fmax(y1, p[i][1]);
    }
    cell = fmax(cell, fmax(x1 - x0, y1 - y0) / (MAX_GRID_SIDE - 1));
    g->x0 = x0, g->y0 = y0, g->cell = cell, g->p = p;
    g->nx = (int)((x1 - x0) / cell) + 1;
    g->ny = (int)((y1 - y0) / cell) + 1;
    g->start = xcalloc((size_t)g->nx * g->ny + 1, sizeof *g->start);
    g->index = xmalloc((size_t)n * sizeof *g->index);
    int *cell_of = xmalloc((size_t)n * sizeof *cell_of);
    for (int i = 0; i < n; i++) {
        cell_of[i] = (int)((p[i][1] - y0) / cell) * g->nx + (int)((p[i][0] - x0) / cell);
        g->start[cell_of[i] + 1]++;
    }
    for (int c = 0; c < g->nx * g->ny; c++) g->start[c + 1] += g->start[c];
    int *fill = xmalloc((size_t)g->nx * g->ny * sizeof *fill);
    memcpy(fill, g->start, (size_t)g->nx * g->ny * sizeof *fill);
    for (int i = 0; i < n; i++) g->index[fill[cell_of[i]]++] = i;
    free(fill);
    free(cell_of);
}

static void grid_free(point_grid *g)
{
    free(g->start);
    free(g->index);
}

/* The model point nearest to (x, y) within radius (at most one cell), or -1. */
static int grid_nearest(const point_grid *g, double x, double y, double radius)
{
    int cx = (int)floor((x - g->x0) / g->cell), cy = (int)floor((y - g->y0) / g->cell);
    int best = -1;
    double best_d2 = radius * radius;
    for (int yy = cy - 1; yy <= cy + 1; yy++) {
        if (yy < 0 || yy >= g->ny) continue;
        for (int xx = cx - 1; xx <= cx + 1; xx++) {
            if (xx < 0 || xx >= g->nx) continue;
            int c = yy * g->nx + xx;
            for (int k = g->start[c]; k < g->start[c + 1]; k++) {
                int i = g->index[k];
                double dx = g->p[i][0] - x, dy = g->p[i][1] - y, d2 = dx * dx + dy * dy;
                if (d2 <= best_d2) best_d2 = d2, best = i;
            }
        }
    }
    return best;
}

typedef struct point_pair {
    int a, b;
    double length;
} point_pair;

static int compare_pairs(const void *x, const void *y)
{
    double a = ((const point_pair *)x)->length, b = ((const point_pair *)y)->length;
    return (a > b) - (a < b);
}

typedef struct ordered_point {
    double x;
    int index;
} ordered_point;

static int compare_x(const void *a, const void *b)
{
    double x = ((const ordered_point *)a)->x, y = ((const ordered_point *)b)->x;
    return (x > y) - (x < y);
}

/* Every ordered pair of points whose distance lies in [lo, hi], sorted by length. */
static point_pair *pairs_within(const double (*p)[2], int n, double lo, double hi, int *count)
{
    ordered_point *order = xmalloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = (ordered_point){p[i][0], i};
    qsort(order, (size_t)n, sizeof *order, compare_x);
    int cap = 1024, m = 0;
    point_pair *out = xmalloc((size_t)cap * sizeof *out);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n && order[j].x - order[i].x <= hi; j++) {
            int a = order[i].index, b = order[j].index;
            double d = hypot(p[b][0] - p[a][0], p[b][1] - p[a][1]);
            if (d < lo || d > hi) continue;
            if (m + 2 > cap) out = xrealloc(out, (size_t)(cap *= 2) * sizeof *out);
            out[m++] = (point_pair){a, b, d};
            out[m++] = (point_pair){b, a, d};
        }
    free(order);
    qsort(out, (size_t)m, sizeof *out, compare_pairs);
    *count = m;
    return out;
}

/* A proposal: scene = a * mirror(model) + t, with a complex (scale and rotation), mirror (x, y) -> (x, -y). */
typedef struct proposal {
    double ar, ai, tx, ty;
    int mirrored, score;
} proposal;

static void to_model(const proposal *h, double x, double y, double *mx, double *my)
{
    double dx = x - h->tx, dy = y - h->ty, s2 = h->ar * h->ar + h->ai * h->ai;
    *mx = (dx * h->ar + dy * h->ai) / s2;
    *my = (dy * h->ar - dx * h->ai) / s2;
    if (h->mirrored) *my = -*my;
}

/* The model point a scene point q falls on under h, or -1. */
static int pairing(const proposal *h, const point_grid *g, const double *q, double tolerance)
{
    double mx, my;
    to_model(h, q[0], q[1], &mx, &my);
    return grid_nearest(g, mx, my, tolerance / hypot(h->ar, h->ai));
}

/* Largest distance (scene units) between where two proposals put the model under a few probe points. */
static double placement_distance(const proposal *a, const proposal *b, const double (*probe)[2])
{
    if (a->mirrored != b->mirrored) return INFINITY;
    double worst = 0;
    for (int k = 0; k < 3; k++) {
        double ax, ay, bx, by;
        to_model(a, probe[k][0], probe[k][1], &ax, &ay);
        to_model(b, probe[k][0], probe[k][1], &bx, &by);
        worst = fmax(worst, hypot(ax - bx, ay - by) * hypot(a->ar, a->ai));
    }
    return worst;
}

/* Keeps the best proposal of every distinct placement (at most MAX_PLACEMENTS, the weakest dropped). */
static void pool(proposal *placements, int *n, const proposal *h, const double (*probe)[2], double tolerance)
{
    int weakest = 0;
    for (int i = 0; i < *n; i++) {
        if (placement_distance(&placements[i], h, probe) <= SAME_PLACEMENT * tolerance) {
            if (h->score > placements[i].score) placements[i] = *h;
            return;
        }
        if (placements[i].score < placements[weakest].score) weakest = i;
    }
    if (*n < MAX_PLACEMENTS) placements[(*n)++] = *h;
    else if (h->score > placements[weakest].score) placements[weakest] = *h;
}

/* Least-squares refinement of the winner on the pairs it explains; fills out and scene_match. */
static void refine(const proposal *winner, const point_grid *g, const double (*model)[2], const double (*scene)[2],
                   int nscene, double tolerance, constellation_result *out, int *scene_match)
{
    proposal h = *winner;
    int n = nscene < FIT_MAX_POINTS ? nscene : FIT_MAX_POINTS;
    double (*src)[2] = xmalloc((size_t)n * sizeof *src), (*dst)[2] = xmalloc((size_t)n * sizeof *dst);
    fit_result *fit = xmalloc(sizeof *fit);
    int matched = 0;
    double sum2 = 0;
    for (int round = 0; round <= REFINE_ROUNDS; round++) {
        matched = 0, sum2 = 0;
        double s = hypot(h.ar, h.ai);
        for (int i = 0; i < nscene; i++) {
            double mx, my;
            to_model(&h, scene[i][0], scene[i][1], &mx, &my);
            int k = grid_nearest(g, mx, my, tolerance / s);
            if (scene_match) scene_match[i] = k;
            if (k < 0) continue;
            double px = model[k][0], py = h.mirrored ? -model[k][1] : model[k][1];
            double ex = h.ar * px - h.ai * py + h.tx - scene[i][0], ey = h.ai * px + h.ar * py + h.ty - scene[i][1];
            sum2 += ex * ex + ey * ey;
            if (matched < n) {
                src[matched][0] = px, src[matched][1] = py;
                dst[matched][0] = scene[i][0], dst[matched][1] = scene[i][1];
            }
            matched++;
        }
        char ignored[128];
        if (round == REFINE_ROUNDS || matched < 2 ||
            transform_fit((const double (*)[2])src, (const double (*)[2])dst, matched < n ? matched : n,
                          FIT_SIMILARITY, 0, 0, fit, ignored, sizeof ignored))
            break;
        h.ar = fit->transform.m[0][0], h.ai = fit->transform.m[1][0];
        h.tx = fit->transform.t[0], h.ty = fit->transform.t[1];
    }
    free(src), free(dst), free(fit);
    double f = h.mirrored ? -1 : 1;
    out->transform = (affine2d){{{h.ar, -h.ai * f}, {h.ai, h.ar * f}}, {h.tx, h.ty}};
    out->mirrored = h.mirrored;
    out->scale = hypot(h.ar, h.ai);
    out->rotation_deg = atan2(h.ai, h.ar) * 180 / M_PI;
    out->matches = matched;
    out->rms = matched ? sqrt(sum2 / matched) : NAN;
}

static uint64_t next_random(uint64_t *s) { return *s = *s * 6364136223846793005ULL + 1442695040888963407ULL; }

void constellation_params_default(constellation_params *p)
{
    *p = (constellation_params){.tolerance = 1.0, .scale_min = 0.9, .scale_max = 1.1, .pair_min = 15,
                                .pair_max = 70, .max_seed_pairs = 400, .allow_mirror = 1};
}

int constellation_match(const double (*model)[2], int nmodel, const double (*scene)[2], int nscene,
                        const constellation_params *p, constellation_result *out, int *scene_match, char *err,
                        size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->rms = NAN;
    if (!(p->tolerance > 0) || !(p->scale_min > 0) || !(p->scale_max >= p->scale_min) || !(p->pair_min > 0) ||
        !(p->pair_max > p->pair_min) || p->max_seed_pairs < 1)
        return error_set(err, errlen, "constellation: tolerance, scales and pair lengths must be positive and ordered");
    if (nmodel < 3 || nscene < 3)
        return error_set(err, errlen, "constellation: %d model and %d scene points (need 3 of each)", nmodel, nscene);
    point_grid g;
    grid_build(&g, model, nmodel, p->tolerance / p->scale_min);
    int nmodel_pairs = 0, nscene_pairs = 0;
    double margin = 2 * p->tolerance;
    point_pair *mp = pairs_within(model, nmodel, (p->pair_min - margin) / p->scale_max,
                                  (p->pair_max + margin) / p->scale_min, &nmodel_pairs);
    point_pair *sp = pairs_within(scene, nscene, p->pair_min, p->pair_max, &nscene_pairs);
    /* one direction of each scene pair (the model pairs hold both), a seeded spread when there are too many */
    int nseeds = 0;
    for (int i = 0; i < nscene_pairs; i++)
        if (sp[i].a < sp[i].b) sp[nseeds++] = sp[i];
    uint64_t rng = 0x5EED;
    for (int i = 0; i < nseeds; i++) {
        int j = i + (int)(next_random(&rng) >> 33) % (nseeds - i);
        point_pair t = sp[i];
        sp[i] = sp[j], sp[j] = t;
    }
    if (nseeds > p->max_seed_pairs) nseeds = p->max_seed_pairs;

    /* probes for telling placements apart: the scene's centre and two points on its extent */
    double cx = 0, cy = 0, extent = 0;
    for (int i = 0; i < nscene; i++) cx += scene[i][0] / nscene, cy += scene[i][1] / nscene;
    for (int i = 0; i < nscene; i++) extent = fmax(extent, hypot(scene[i][0] - cx, scene[i][1] - cy));
    double probe[3][2] = {{cx, cy}, {cx + extent, cy}, {cx, cy + extent}};

    proposal placements[MAX_PLACEMENTS];
    int nplacements = 0;
    int *near = xmalloc((size_t)nscene * QUICK_NEIGHBOURS * sizeof *near), *nnear = xcalloc((size_t)nscene, sizeof *nnear);
    for (int i = 0; i < nscene; i++) {      /* the QUICK_NEIGHBOURS nearest scene points of each (insertion) */
        int *list = &near[i * QUICK_NEIGHBOURS];
        double dist[QUICK_NEIGHBOURS];
        for (int j = 0; j < nscene; j++) {
            double d = hypot(scene[j][0] - scene[i][0], scene[j][1] - scene[i][1]);
            if (j == i || (nnear[i] == QUICK_NEIGHBOURS && d >= dist[QUICK_NEIGHBOURS - 1])) continue;
            int k = nnear[i] < QUICK_NEIGHBOURS ? nnear[i]++ : QUICK_NEIGHBOURS - 1;
            for (; k > 0 && dist[k - 1] > d; k--) dist[k] = dist[k - 1], list[k] = list[k - 1];
            dist[k] = d, list[k] = j;
        }
    }
    for (int s = 0; s < nseeds; s++) {
        const double *a = scene[sp[s].a], *b = scene[sp[s].b];
        double vx = b[0] - a[0], vy = b[1] - a[1];
        double lo = (sp[s].length - margin) / p->scale_max, hi = (sp[s].length + margin) / p->scale_min;
        int first = 0, last = nmodel_pairs;
        while (first < last) {       /* first model pair not shorter than lo */
            int mid = (first + last) / 2;
            if (mp[mid].length < lo) first = mid + 1;
            else last = mid;
        }
        for (int k = first; k < nmodel_pairs && mp[k].length <= hi; k++) {
            for (int mirrored = 0; mirrored <= (p->allow_mirror ? 1 : 0); mirrored++) {
                const double *ma = model[mp[k].a], *mb = model[mp[k].b];
                double f = mirrored ? -1 : 1;
                double ux = mb[0] - ma[0], uy = f * (mb[1] - ma[1]), u2 = ux * ux + uy * uy;
                proposal h = {.ar = (vx * ux + vy * uy) / u2, .ai = (vy * ux - vx * uy) / u2, .mirrored = mirrored};
                double scale = hypot(h.ar, h.ai);
                if (scale < p->scale_min || scale > p->scale_max) continue;
                h.tx = a[0] - (h.ar * ma[0] - h.ai * f * ma[1]);
                h.ty = a[1] - (h.ai * ma[0] + h.ar * f * ma[1]);
                int quick = 0;
                for (int q = 0; q < nnear[sp[s].a]; q++) {
                    int j = near[sp[s].a * QUICK_NEIGHBOURS + q];
                    if (j != sp[s].b) quick += pairing(&h, &g, scene[j], p->tolerance) >= 0;
                }
                if (quick < QUICK_MIN) continue;
                out->hypotheses++;
                for (int i = 0; i < nscene; i++) h.score += pairing(&h, &g, scene[i], p->tolerance) >= 0;
                pool(placements, &nplacements, &h, (const double (*)[2])probe, p->tolerance);
            }
        }
    }
    free(near), free(nnear), free(mp), free(sp);
    int best = -1;
    for (int i = 0; i < nplacements; i++)
        if (best < 0 || placements[i].score > placements[best].score) best = i;
    if (best < 0) {
        grid_free(&g);
        if (scene_match)
            for (int i = 0; i < nscene; i++) scene_match[i] = -1;
        return 0;
    }
    /* the runner-up: the best placement that pairs most of the scene points it explains differently */
    int *best_pairs = xmalloc((size_t)nscene * sizeof *best_pairs);
    for (int i = 0; i < nscene; i++) best_pairs[i] = pairing(&placements[best], &g, scene[i], p->tolerance);
    for (int k = 0; k < nplacements; k++) {
        if (k == best || placements[k].score <= out->runner_up) continue;
        int same = 0;
        for (int i = 0; i < nscene; i++) {
            int m = pairing(&placements[k], &g, scene[i], p->tolerance);
            same += m >= 0 && m == best_pairs[i];
        }
        if (2 * same < placements[k].score) out->runner_up = placements[k].score;
    }
    free(best_pairs);
    refine(&placements[best], &g, model, scene, nscene, p->tolerance, out, scene_match);
    grid_free(&g);
    return 0;
}
