/* source_sim.c -- the "sim" frame source: renders the simulated microscope (src/drivers/simscope) at the stage
 * position and pixel size of each request. Owns the loaded sample description and a float buffer for the
 * noiseless image, both allocated once. */
#include "drivers/camera/camera_internal.h"

#include "core/base/base.h"
#include "drivers/simscope/simscope.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct sim_source {
    frame_source base;
    simscope_sample *sample;
    float *expected;
    simscope_view rendered;      /* the view `expected` shows: a camera at rest re-renders nothing */
    int have_rendered;
} sim_source;

/* Whether two views show the same expected image (noise seed aside). */
static int same_scene(const simscope_view *a, const simscope_view *b)
{
    return a->stage_x == b->stage_x && a->stage_y == b->stage_y && a->pixel_size == b->pixel_size &&
           a->exposure == b->exposure && a->width == b->width && a->height == b->height;
}

static int sim_next(frame_source *s, frame *f, const source_request *rq, double timeout_s, char *err, size_t errlen)
{
    sim_source *sim = (sim_source *)s;
    simscope_view view;
    simscope_view_defaults(&view, s->max_width, s->max_height);
    view.stage_x = rq->x;
    view.stage_y = rq->y;
    view.pixel_size = rq->pixel_size > 0 ? rq->pixel_size : 1.0;
    view.exposure = rq->exposure > 0 ? rq->exposure : 1.0;
    view.gain = rq->gain > 0 ? rq->gain : 1.0;
    view.seed = rq->seed;
    if (!sim->have_rendered || !same_scene(&view, &sim->rendered)) {
        simscope_render(sim->sample, &view, sim->expected);
        sim->rendered = view;
        sim->have_rendered = 1;
    }
    simscope_expose(&view, sim->expected, f->data);
    f->width = s->max_width;
    f->height = s->max_height;
    s->counters.received++;
    return 1;
}

static void sim_close(frame_source *s)
{
    sim_source *sim = (sim_source *)s;
    simscope_free(sim->sample);
    free(sim->expected);
    free(sim);
}

static const frame_source_ops sim_ops = {.kind = "sim", .next = sim_next, .close = sim_close};

frame_source *source_sim_open(const char *sample_path, int width, int height, char *err, size_t errlen)
{
    if (width < 8 || height < 8 || width > 8192 || height > 8192) {
        snprintf(err, errlen, "sim camera size %dx%d out of range (8..8192)", width, height);
        return NULL;
    }
    simscope_sample *sample = simscope_load(sample_path, err, errlen);
    if (!sample) return NULL;
    sim_source *sim = xcalloc(1, sizeof *sim);
    sim->base.ops = &sim_ops;
    sim->base.max_width = width;
    sim->base.max_height = height;
    sim->sample = sample;
    sim->expected = xmalloc((size_t)width * height * sizeof *sim->expected);
    return &sim->base;
}
