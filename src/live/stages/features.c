/* features.c -- the "features" stage of a worker IOC: relocalization's view of every frame (kernels/detection
 * view_features_detect and view_sharpness, the code the stage map runs on its own frames) served as one array
 * PV, View_RBV, tagged with the frame it came from, so that a camera IOC's stage map can take its views from
 * this IOC over Channel Access and know which exposure (and stage position) each belongs to. Layout of View_RBV
 * in detection.h (VIEW_*). Records: db/features.db. */
#include "live/stages/stages_internal.h"

#include "core/base/base.h"
#include "kernels/detection/detection.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FEATURES_PARAMS(X) \
    X(P_DIAMETER, "Diameter", PARAM_INT) \
    X(P_MASS_FACTOR, "MassFactor", PARAM_DOUBLE) \
    X(P_COUNT, "Count", PARAM_INT) \
    X(P_SHARPNESS, "Sharpness", PARAM_DOUBLE)

enum { FEATURES_BEFORE_FIRST = ANALYSIS_NCOMMON - 1, FEATURES_PARAMS(PARAM_ENUM) P_VIEW };

static const param_def features_params[] = {FEATURES_PARAMS(PARAM_DEF)};

typedef struct features {
    int max_features;
    /* guarded by the stage lock */
    int diameter;
    double mass_factor;
    /* stage thread only */
    view_features found;
    double *view;                  /* VIEW_HEAD + 2 * max_features */
} features;

static int features_write(analysis_stage *s, const param_write *w, char *err, size_t errlen)
{
    features *f = s->impl;
    if (w->index == P_DIAMETER && !locate_diameter_valid(w->ival))
        return error_set(err, errlen, "Diameter must be odd, 3..%d", LOCATE_MAX_DIAMETER);
    if (w->index == P_MASS_FACTOR && (!(w->dval > 0) || !isfinite(w->dval)))
        return error_set(err, errlen, "MassFactor must be a number > 0");
    pthread_mutex_lock(&s->lock);
    if (w->index == P_DIAMETER) f->diameter = (int)w->ival;
    if (w->index == P_MASS_FACTOR) f->mass_factor = w->dval;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int features_process(analysis_stage *s, const frame *fr, const float *pixels, char *err, size_t errlen)
{
    features *f = s->impl;
    pthread_mutex_lock(&s->lock);
    int diameter = f->diameter;
    double mass_factor = f->mass_factor;
    pthread_mutex_unlock(&s->lock);
    if (view_features_detect(pixels, fr->width, fr->height, diameter, mass_factor, 65535, f->max_features, &f->found,
                             err, errlen))
        return -1;
    double sharp = view_sharpness(pixels, fr->width, fr->height);
    double *v = f->view;
    v[VIEW_UNIQUE_ID] = (double)fr->origin_id;
    v[VIEW_STAMP] = (double)fr->stamp.tv_sec + fr->stamp.tv_nsec * 1e-9;
    v[VIEW_STAGE_X] = fr->stage_x;
    v[VIEW_STAGE_Y] = fr->stage_y;
    v[VIEW_WIDTH] = fr->width;
    v[VIEW_HEIGHT] = fr->height;
    v[VIEW_DIAMETER] = diameter;
    v[VIEW_MASS_FACTOR] = mass_factor;
    v[VIEW_SHARPNESS] = sharp;
    v[VIEW_COUNT] = f->found.n;
    memcpy(v + VIEW_HEAD, f->found.xy, (size_t)f->found.n * sizeof *f->found.xy);
    param_set_int(s->port, P_COUNT, f->found.n);
    param_set_double(s->port, P_SHARPNESS, sharp);
    param_set_array(s->port, P_VIEW, v, VIEW_HEAD + 2L * f->found.n);
    snprintf(s->summary, sizeof s->summary, "{\"frame\": %llu, \"count\": %d}", (unsigned long long)fr->origin_id,
             f->found.n);
    return 0;
}

static void features_create(analysis_stage *s, int max_features)
{
    features *f = xcalloc(1, sizeof *f);
    f->max_features = max_features;
    f->diameter = VIEW_DEFAULT_DIAMETER;
    f->mass_factor = VIEW_DEFAULT_MASS_FACTOR;
    f->view = xcalloc(VIEW_HEAD + 2 * (size_t)max_features, sizeof *f->view);
    s->impl = f;
    param_create_array(s->port, "View", DBR_DOUBLE, VIEW_HEAD + 2L * max_features);
    param_set_int(s->port, P_DIAMETER, f->diameter);
    param_set_double(s->port, P_MASS_FACTOR, f->mass_factor);
}

static void features_destroy(analysis_stage *s)
{
    features *f = s->impl;
    view_features_free(&f->found);
    free(f->view);
    free(f);
}

const analysis_kind features_kind = {
    .name = "features",
    .params = features_params,
    .nparams = sizeof features_params / sizeof features_params[0],
    .create = features_create,
    .write = features_write,
    .process = features_process,
    .destroy = features_destroy,
};
