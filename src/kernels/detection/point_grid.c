/* point_grid.c -- points binned into square cells so that pair searches (features closer than the
 * separation, link candidates within the search range) look at neighbouring cells only. The arrays grow
 * to the largest input seen and are then reused, so a live stream does not allocate per frame. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"
#include "kernels/detection/detection_internal.h"

/* Largest grid side in cells: a few points spread very far apart must not ask for a huge grid. */
#define GRID_MAX_SIDE 2048

static int point_grid_cell(const point_grid *g, double y, double x, int *gy, int *gx)
{
    double fy = (y - g->y0) / g->cell, fx = (x - g->x0) / g->cell;
    *gy = fy < 0 ? 0 : (fy >= g->ny ? g->ny - 1 : (int)fy);
    *gx = fx < 0 ? 0 : (fx >= g->nx ? g->nx - 1 : (int)fx);
    return *gy * g->nx + *gx;
}

void point_grid_build(point_grid *g, const double *y, const double *x, int n, double cell)
{
    double y0 = INFINITY, x0 = INFINITY, y1 = -INFINITY, x1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        y0 = fmin(y0, y[i]);
        y1 = fmax(y1, y[i]);
        x0 = fmin(x0, x[i]);
        x1 = fmax(x1, x[i]);
    }
    if (n == 0) y0 = x0 = y1 = x1 = 0;
    g->cell = cell;
    g->y0 = y0;
    g->x0 = x0;
    double span_y = (y1 - y0) / cell + 1, span_x = (x1 - x0) / cell + 1;
    g->ny = span_y > GRID_MAX_SIDE ? GRID_MAX_SIDE : (int)span_y;
    g->nx = span_x > GRID_MAX_SIDE ? GRID_MAX_SIDE : (int)span_x;
    size_t cells = (size_t)g->nx * g->ny;
    if (cells + 1 > g->cells_cap) {
        g->cells_cap = cells + 1;
        g->cell_start = xrealloc(g->cell_start, g->cells_cap * sizeof *g->cell_start);
    }
    if ((size_t)n > g->points_cap) {
        g->points_cap = (size_t)n;
        g->order = xrealloc(g->order, g->points_cap * sizeof *g->order);
        g->cell_of = xrealloc(g->cell_of, g->points_cap * sizeof *g->cell_of);
    }
    memset(g->cell_start, 0, (cells + 1) * sizeof *g->cell_start);
    for (int i = 0; i < n; i++) {
        int gy, gx;
        g->cell_of[i] = point_grid_cell(g, y[i], x[i], &gy, &gx);
        g->cell_start[g->cell_of[i] + 1]++;
    }
    for (size_t c = 0; c < cells; c++) g->cell_start[c + 1] += g->cell_start[c];
    /* Fill cells back to front so that each cell lists its points in increasing index. */
    for (int i = n - 1; i >= 0; i--) {
        int c = g->cell_of[i];
        int slot = --g->cell_start[c + 1];
        g->order[slot] = i;
    }
    /* cell_start[c + 1] now holds the start of cell c: shift it into place. */
    memmove(g->cell_start, g->cell_start + 1, cells * sizeof *g->cell_start);
    g->cell_start[cells] = n;
}

void point_grid_near(const point_grid *g, double y, double x, point_grid_iter *it)
{
    it->g = g;
    point_grid_cell(g, y, x, &it->gy, &it->gx);
    it->cell = -1;   /* index 0..8 within the 3x3 block; -1 = before the first */
    it->slot = it->end = 0;
}

int point_grid_next(point_grid_iter *it)
{
    const point_grid *g = it->g;
    while (it->slot >= it->end) {
        if (++it->cell >= 9) return -1;
        int ny = it->gy + it->cell / 3 - 1, nx = it->gx + it->cell % 3 - 1;
        if (ny < 0 || nx < 0 || ny >= g->ny || nx >= g->nx) continue;
        int c = ny * g->nx + nx;
        it->slot = g->cell_start[c];
        it->end = g->cell_start[c + 1];
    }
    return g->order[it->slot++];
}

void point_grid_free(point_grid *g)
{
    free(g->cell_start);
    free(g->order);
    free(g->cell_of);
    memset(g, 0, sizeof *g);
}
