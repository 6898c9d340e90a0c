/* link.c -- nearest-neighbour linking of features across frames into particle IDs, with memory.
 *
 * Each tracked particle has a predicted position: where it was last seen, moved by the known displacement
 * of the image content since (stage motion or registration), so a move of several particle spacings
 * between frames keeps the IDs. Candidate pairs (particle, feature) closer than search_range are assigned
 * in order of increasing distance, each particle and feature at most once (trackpy instead minimizes the
 * total displacement within each subnetwork; the two agree unless neighbours compete for one feature).
 * Unmatched particles stay predicted for up to memory frames; unmatched features start new particles.
 * Without a prior (or with a poor one), drift_range > 0 estimates the common displacement first: every
 * particle-feature difference up to drift_range votes in a histogram of search_range bins, and the mean of
 * the differences around the winning bin becomes the correction.
 * The linker owns its arrays and grows them only when a frame has more particles than ever before. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"
#include "kernels/detection/detection_internal.h"

typedef struct link_pair {
    double dist2;
    int track, feature;
} link_pair;

struct linker {
    link_params p;
    int count, capacity;      /* tracked particles */
    double *y, *x;            /* predicted positions */
    long *id;
    int *missing;             /* consecutive frames without a feature */
    unsigned char *matched;
    long next_id;
    link_pair *pairs;
    size_t pair_count, pair_capacity;
    int *votes;               /* displacement histogram for drift_range */
    int vote_side;
    unsigned char *feature_taken;
    int feature_capacity;
    point_grid grid;
};

linker *linker_create(const link_params *p, char *err, size_t errlen)
{
    if (!(p->search_range > 0) || !isfinite(p->search_range)) {
        snprintf(err, errlen, "search_range must be > 0 pixels (got %g)", p->search_range);
        return NULL;
    }
    if (p->memory < 0) {
        snprintf(err, errlen, "memory must be >= 0 frames (got %d)", p->memory);
        return NULL;
    }
    if (!(p->drift_range >= 0) || p->drift_range > 100 * p->search_range) {
        snprintf(err, errlen, "drift_range must be within 0..100 search ranges (got %g)", p->drift_range);
        return NULL;
    }
    linker *lk = xcalloc(1, sizeof *lk);
    lk->p = *p;
    return lk;
}

void linker_free(linker *lk)
{
    if (!lk) return;
    free(lk->y);
    free(lk->x);
    free(lk->id);
    free(lk->missing);
    free(lk->matched);
    free(lk->pairs);
    free(lk->feature_taken);
    free(lk->votes);
    point_grid_free(&lk->grid);
    free(lk);
}

int linker_active_count(const linker *lk) { return lk->count; }

static void reserve_tracks(linker *lk, int n)
{
    if (n <= lk->capacity) return;
    int cap = lk->capacity ? lk->capacity : 256;
    while (cap < n) cap *= 2;
    lk->y = xrealloc(lk->y, (size_t)cap * sizeof *lk->y);
    lk->x = xrealloc(lk->x, (size_t)cap * sizeof *lk->x);
    lk->id = xrealloc(lk->id, (size_t)cap * sizeof *lk->id);
    lk->missing = xrealloc(lk->missing, (size_t)cap * sizeof *lk->missing);
    lk->matched = xrealloc(lk->matched, (size_t)cap);
    lk->capacity = cap;
}

static void push_pair(linker *lk, double dist2, int track, int feature)
{
    if (lk->pair_count == lk->pair_capacity) {
        lk->pair_capacity = lk->pair_capacity ? 2 * lk->pair_capacity : 1024;
        lk->pairs = xrealloc(lk->pairs, lk->pair_capacity * sizeof *lk->pairs);
    }
    lk->pairs[lk->pair_count++] = (link_pair){dist2, track, feature};
}

static int by_distance(const void *a, const void *b, void *unused)
{
    const link_pair *p = a, *q = b;
    if (p->dist2 != q->dist2) return p->dist2 < q->dist2 ? -1 : 1;
    if (p->track != q->track) return p->track - q->track;
    return p->feature - q->feature;
}

/* Candidate pairs: every tracked particle against the features in the grid cells around its prediction. */
static void collect_pairs(linker *lk, const locate_table *t)
{
    double range2 = lk->p.search_range * lk->p.search_range;
    lk->pair_count = 0;
    if (t->count == 0) return;
    point_grid *g = &lk->grid;
    point_grid_build(g, t->y, t->x, t->count, lk->p.search_range);
    for (int k = 0; k < lk->count; k++) {
        point_grid_iter it;
        point_grid_near(g, lk->y[k], lk->x[k], &it);
        for (int f; (f = point_grid_next(&it)) >= 0;) {
            double dy = t->y[f] - lk->y[k], dx = t->x[f] - lk->x[k];
            double d2 = dy * dy + dx * dx;
            if (d2 <= range2) push_pair(lk, d2, k, f);
        }
    }
}

/* Mean of the particle-feature differences within search_range of (cy, cx); returns how many there were. */
static int mean_difference(linker *lk, const locate_table *t, double cy, double cx, double *my, double *mx)
{
    double range2 = lk->p.search_range * lk->p.search_range, sy = 0, sx = 0;
    int n = 0;
    for (int k = 0; k < lk->count; k++) {
        point_grid_iter it;
        point_grid_near(&lk->grid, lk->y[k], lk->x[k], &it);
        for (int f; (f = point_grid_next(&it)) >= 0;) {
            double dy = t->y[f] - lk->y[k], dx = t->x[f] - lk->x[k];
            if ((dy - cy) * (dy - cy) + (dx - cx) * (dx - cx) > range2) continue;
            sy += dy;
            sx += dx;
            n++;
        }
    }
    *my = n ? sy / n : 0;
    *mx = n ? sx / n : 0;
    return n;
}

/* The common displacement of the particles since their prediction, or (0, 0) when fewer than 3 pairs (or
 * under a fifth of the particles) agree on one. */
static void estimate_drift(linker *lk, const locate_table *t, double *ey, double *ex)
{
    *ey = *ex = 0;
    double range = lk->p.drift_range, bin = lk->p.search_range;
    int half = (int)ceil(range / bin), side = 2 * half + 1;
    if (side * side > lk->vote_side * lk->vote_side) {
        lk->votes = xrealloc(lk->votes, (size_t)side * side * sizeof *lk->votes);
        lk->vote_side = side;
    }
    memset(lk->votes, 0, (size_t)side * side * sizeof *lk->votes);
    point_grid_build(&lk->grid, t->y, t->x, t->count, range);
    int best = -1;
    for (int k = 0; k < lk->count; k++) {
        point_grid_iter it;
        point_grid_near(&lk->grid, lk->y[k], lk->x[k], &it);
        for (int f; (f = point_grid_next(&it)) >= 0;) {
            double dy = t->y[f] - lk->y[k], dx = t->x[f] - lk->x[k];
            if (dy * dy + dx * dx > range * range) continue;
            int by = (int)floor(dy / bin + 0.5) + half, bx = (int)floor(dx / bin + 0.5) + half;
            int cell = by * side + bx;
            lk->votes[cell]++;
            if (best < 0 || lk->votes[cell] > lk->votes[best]) best = cell;
        }
    }
    if (best < 0) return;
    double cy = (best / side - half) * bin, cx = (best % side - half) * bin, my, mx;
    int agree = mean_difference(lk, t, cy, cx, &my, &mx);
    agree = mean_difference(lk, t, my, mx, &my, &mx);   /* once more, centred on the first mean */
    int fewest = lk->count < t->count ? lk->count : t->count;
    if (agree < 3 || agree * 5 < fewest) return;
    *ey = my;
    *ex = mx;
}

void linker_link_frame(linker *lk, locate_table *t, double dx, double dy)
{
    for (int k = 0; k < lk->count; k++) {
        lk->y[k] += dy;
        lk->x[k] += dx;
        lk->matched[k] = 0;
    }
    if (lk->p.drift_range > 0 && lk->count && t->count) {
        double ey, ex;
        estimate_drift(lk, t, &ey, &ex);
        for (int k = 0; k < lk->count; k++) {
            lk->y[k] += ey;
            lk->x[k] += ex;
        }
    }
    if (t->count > lk->feature_capacity) {
        lk->feature_capacity = t->count;
        lk->feature_taken = xrealloc(lk->feature_taken, (size_t)t->count);
    }
    if (t->count) memset(lk->feature_taken, 0, (size_t)t->count);

    collect_pairs(lk, t);
    locate_sort(lk->pairs, lk->pair_count, sizeof *lk->pairs, by_distance, NULL);
    for (size_t i = 0; i < lk->pair_count; i++) {
        const link_pair *pr = &lk->pairs[i];
        if (lk->matched[pr->track] || lk->feature_taken[pr->feature]) continue;
        lk->matched[pr->track] = 1;
        lk->feature_taken[pr->feature] = 1;
        t->particle[pr->feature] = lk->id[pr->track];
        lk->y[pr->track] = t->y[pr->feature];
        lk->x[pr->track] = t->x[pr->feature];
        lk->missing[pr->track] = 0;
    }

    /* Forget particles missing for longer than memory; keep the rest in order. */
    int kept = 0;
    for (int k = 0; k < lk->count; k++) {
        if (!lk->matched[k] && ++lk->missing[k] > lk->p.memory) continue;
        lk->y[kept] = lk->y[k];
        lk->x[kept] = lk->x[k];
        lk->id[kept] = lk->id[k];
        lk->missing[kept] = lk->missing[k];
        kept++;
    }
    lk->count = kept;

    for (int f = 0; f < t->count; f++) {
        if (lk->feature_taken[f]) continue;
        reserve_tracks(lk, lk->count + 1);
        int k = lk->count++;
        lk->y[k] = t->y[f];
        lk->x[k] = t->x[f];
        lk->id[k] = lk->next_id++;
        lk->missing[k] = 0;
        lk->matched[k] = 1;
        t->particle[f] = lk->id[k];
    }
}
