/* stagemap_reloc.c -- automated relocalization of particles chosen in a reference image (SEM, AFM, ...) after
 * the sample was remounted with an unknown offset, any rotation, a pixel-size (scale) error of up to
 * Reloc:MaxScaleError and possibly mirrored:
 *   1. coarse: the reference's features, put on the stage by the reference layer's prior transform, are
 *      matched to the features of live camera views by a rotation-invariant constellation match
 *      (kernels/geometry constellation_match). The first view is where the prior puts the chosen particles;
 *      when it shows nothing usable, views follow on a square spiral within Reloc:SearchRadius (inside the soft
 *      limits), their features pooled, until the match is trustworthy: enough features explained, most of
 *      those over the reference, no rival placement near it, the scale within bounds. Otherwise the run
 *      stops before any particle is reported. The found mount (offset, rotation, scale, flip) and the
 *      residual of the fit are published.
 *   2. each particle of the list is moved under the beam and looked for in a fresh frame, nearest first: the next
 *      is the one the fit puts closest to a point it was measured on (the coarse match's features, the particles
 *      found so far), since the fit's error grows with the distance it extrapolates; "found" only when
 *      exactly one feature lies within Reloc:CaptureRadius, it is within Reloc:MatchTolerance of where the
 *      fit puts the particle, and the frame's other features agree with the fit; then the stage is corrected
 *      until the particle is within Reloc:Tolerance of the beam. Every found particle joins the fit.
 *   3. no feature there: "not found"; two, or a frame that disagrees with the fit: "ambiguous".
 * Runs on the stage map's worker thread; Reloc:Pause holds it between steps, Reloc:Abort stops the motors.
 * Views come from stagemap_view.c (this IOC's camera, or a worker IOC's results for frames exposed after
 * the move). Every move goes through reloc_move (one call site). Results (per particle: stage position, residual,
 * status) are published as arrays and a CSV table. */
#include "live/stagemap/stagemap_internal.h"

#include "core/base/base.h"
#include "formats/imageio/imageio.h"
#include "kernels/detection/detection.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FEATURES 20000
/* A frame counts as taken after a move when exposed this long after it: the camera reads the stage position
 * through links (readback, unit conversion) that may settle a few milliseconds after the move is done. */
#define FRAME_SETTLE_S 0.05
#define VIEW_STEP 0.8             /* search views step by this fraction of the camera's field (overlap) */
#define SAME_FEATURE_UM 1.0       /* features of overlapping views closer than this are one */
#define MIN_MATCHES 12            /* a coarse match explains at least this many live features ... */
#define MIN_SPREAD_UM 10.0        /* ... spread over the stage in both directions (not along one edge) ... */
#define MIN_EXPLAINED 0.5         /* ... and this fraction of those that lie over the reference ... */
#define MAX_RIVAL 0.4             /* ... and no other placement explains more than this fraction of that */
#define SCALE_MARGIN 0.01         /* the scale bounds allow for measurement error beyond Reloc:MaxScaleError */
#define PAIR_MIN_UM 15.0          /* feature pairs of this length seed the constellation match ... */
#define PAIR_MAX_FIELD 0.55       /* ... up to this fraction of the camera field */
#define MAX_COARSE_PAIRS (FIT_MAX_POINTS / 2)   /* coarse pairs in the fit; the rest is for found particles */

/* Reloc:Result */
enum { RESULT_RUNNING = 0, RESULT_DONE, RESULT_NO_MATCH, RESULT_ABORTED, RESULT_FAILED, RESULT_OUT_OF_FOCUS };
#define OUT_OF_FOCUS_VIEWS 3      /* this many blurred views and not one sharp: the run stops, out of focus */

typedef struct point_list {
    double (*p)[2];
    int n, cap;
} point_list;

static void points_add(point_list *l, double x, double y)
{
    if (l->n == l->cap) l->p = xrealloc(l->p, (size_t)(l->cap = l->cap ? 2 * l->cap : 256) * sizeof *l->p);
    l->p[l->n][0] = x;
    l->p[l->n][1] = y;
    l->n++;
}

/* The reference's features (view_features_detect, as the live views') as a point list. */
static int detect(const float *img, int w, int h, int diameter, double mass_factor, double sample_max, point_list *out,
                  char *err, size_t errlen)
{
    view_features found = {0};
    int rc = view_features_detect(img, w, h, diameter, mass_factor, sample_max, MAX_FEATURES, &found, err, errlen);
    out->n = 0;
    for (int i = 0; i < found.n; i++) points_add(out, found.xy[i][0], found.xy[i][1]);
    view_features_free(&found);
    return rc;
}

/* What one camera frame shows: its features in stage um, and where the frame lies on the stage. */
typedef struct live_view {
    point_list features;
    affine2d to_pixel;           /* stage um -> frame pixel */
    int width, height;
    double field_um;             /* the shorter side of the frame on the stage */
    double sharpness;            /* view_sharpness(); NaN: no structure */
} live_view;

/* The settings of one run, read once at its start: a change during the run applies to the next one. */
typedef struct reloc_settings {
    double tolerance, capture_radius, match_tolerance, search_radius, max_scale_error, min_sharpness;
    int max_iter, detect_flip;
    int live_diameter;           /* every view of the run is detected with these (a worker's: checked) */
    double mass_factor;
    double started;              /* time_monotonic() at the start */
} reloc_settings;

/* A view of the stage where it stands now (stagemap_view.c: from this IOC's camera or a worker IOC). */
static int take_view(stagemap *m, live_view *v, stagemap_view *sv, const reloc_settings *s, char *err, size_t errlen)
{
    stagemap_view_request rq = {.after = time_add(time_wall(), FRAME_SETTLE_S), .diameter = s->live_diameter,
                                .mass_factor = s->mass_factor};
    db_lock();
    affine2d t;
    int rc = stagemap_layer_transform(m, LAYER_LIVE, &t, err, errlen);
    for (int axis = 0; axis < 2; axis++)
        if (stagemap_axis_position(m, axis, &rq.stage[axis])) rq.stage[axis] = NAN;
    db_unlock();
    if (rc) return -1;
    if (affine_invert(&t, &v->to_pixel)) return error_set(err, errlen, "the live layer's geometry is singular");
    rq.stage_tolerance = hypot(t.m[0][0], t.m[1][0]);      /* one live pixel */
    if (stagemap_view_take(m, &rq, sv, err, errlen)) return -1;
    v->width = sv->width, v->height = sv->height, v->sharpness = sv->sharpness;
    v->features.n = 0;
    for (int i = 0; i < sv->features.n; i++) {
        double x, y;
        affine_apply(&t, sv->features.xy[i][0], sv->features.xy[i][1], &x, &y);
        points_add(&v->features, x, y);
    }
    v->field_um = fmin(v->width, v->height) * hypot(t.m[0][0], t.m[1][0]);
    db_lock();
    param_set_double(m->port, P_RELOC_SHARPNESS, v->sharpness);
    db_unlock();
    return 0;
}

/* Whether a stage point lies in the frame, at least margin pixels from its edges. */
static int in_view(const live_view *v, const double *stage, double margin)
{
    double u, w;
    affine_apply(&v->to_pixel, stage[0], stage[1], &u, &w);
    return u >= margin && w >= margin && u <= v->width - 1 - margin && w <= v->height - 1 - margin;
}

/* ---- the stage: every move of the run goes through reloc_move (stagemap_move_to: the one move path,
 * drivers/motion), every reachability check through reloc_reachable (motion_plan_move, from the records now). */
static int reloc_move(stagemap *m, const double target[2], char *err, size_t errlen)
{
    return stagemap_move_to(m, target, err, errlen);
}

static int reloc_reachable(stagemap *m, const double target[2])
{
    motion_plan plan;
    char ignored[256];
    db_lock();
    int rc = motion_plan_move(m->stage, target, 0, &plan, ignored, sizeof ignored);
    db_unlock();
    return rc == 0;
}

static void state(stagemap *m, const char *text)
{
    param_set_string(m->port, P_RELOC_STATE, text);
    param_post(m->port);
    log_info("stagemap", "%s: relocalization: %s", m->port_name, text);
}

int stagemap_aborting(stagemap *m)
{
    pthread_mutex_lock(&m->lock);
    int stop = m->abort || m->stopping;
    pthread_mutex_unlock(&m->lock);
    return stop;
}

/* Waits while paused (Reloc:State says "paused"); returns 1 when aborted. */
static int hold(stagemap *m)
{
    pthread_mutex_lock(&m->lock);
    int waited = 0;
    while (m->paused && !m->abort && !m->stopping) {
        if (!waited) {
            pthread_mutex_unlock(&m->lock);
            state(m, "paused");
            pthread_mutex_lock(&m->lock);
            waited = 1;
            continue;
        }
        pthread_cond_wait(&m->wake, &m->lock);
    }
    int stop = m->abort || m->stopping;
    pthread_mutex_unlock(&m->lock);
    if (waited && !stop) state(m, "resumed");
    return stop;
}

typedef struct search_view {
    double x, y, distance, angle;
} search_view;

static int cmp_search_view(const void *a, const void *b)
{
    const search_view *x = a, *y = b;
    if (fabs(x->distance - y->distance) > 1e-6) return (x->distance > y->distance) - (x->distance < y->distance);
    return (x->angle > y->angle) - (x->angle < y->angle);
}

/* The positions of the search after the first view (at centre): a square grid of the given step, ring by
 * ring out to radius, nearest first, without the positions outside the soft limits. */
static int search_plan(stagemap *m, const double centre[2], double radius, double step, search_view **out)
{
    int k = (int)ceil(radius / step), n = 0;
    search_view *v = xmalloc((size_t)(2 * k + 1) * (2 * k + 1) * sizeof *v);
    for (int j = -k; j <= k; j++)
        for (int i = -k; i <= k; i++) {
            double d = hypot(i * step, j * step);
            double here[2] = {centre[0] + i * step, centre[1] + j * step};
            if ((i || j) && d <= radius && reloc_reachable(m, here))
                v[n++] = (search_view){here[0], here[1], d, atan2(j, i)};
        }
    qsort(v, (size_t)n, sizeof *v, cmp_search_view);
    *out = v;
    return n;
}

/* Whether a coarse match can be trusted; says why not. over_reference: scene points that the match puts
 * over the reference's features (their bounding box), the only ones it could explain. */
static int trustworthy(const constellation_result *r, int over_reference, double spread, const reloc_settings *s,
                       char *why, size_t len)
{
    if (r->matches < MIN_MATCHES)
        return snprintf(why, len, "best placement explains %d features (need %d)", r->matches, MIN_MATCHES), 0;
    if (r->matches < MIN_EXPLAINED * over_reference)
        return snprintf(why, len, "best placement explains only %d of the %d features over the reference",
                        r->matches, over_reference), 0;
    if (r->runner_up > MAX_RIVAL * r->matches)
        return snprintf(why, len, "ambiguous: another placement explains %d features, the best %d", r->runner_up,
                        r->matches), 0;
    if (spread < MIN_SPREAD_UM)
        return snprintf(why, len, "the %d features it explains lie along a line (spread %.1f um)", r->matches,
                        spread), 0;
    if (fabs(r->scale - 1) > s->max_scale_error / 100 + SCALE_MARGIN)
        return snprintf(why, len, "scale %.3f outside the allowed error", r->scale), 0;
    return 1;
}

/* The spread of the matched scene points: the standard deviation along their narrowest direction. */
static double matched_spread(const point_list *scene, const int *pairing)
{
    double n = 0, mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
    for (int i = 0; i < scene->n; i++)
        if (pairing[i] >= 0) n++, mx += scene->p[i][0], my += scene->p[i][1];
    if (n < 2) return 0;
    mx /= n, my /= n;
    for (int i = 0; i < scene->n; i++)
        if (pairing[i] >= 0) {
            double dx = scene->p[i][0] - mx, dy = scene->p[i][1] - my;
            sxx += dx * dx / n, syy += dy * dy / n, sxy += dx * dy / n;
        }
    double half_trace = (sxx + syy) / 2, root = sqrt(fmax(0, half_trace * half_trace - (sxx * syy - sxy * sxy)));
    return sqrt(fmax(0, half_trace - root));
}

static int count_over(const constellation_result *r, const point_list *model, const point_list *scene)
{
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (int i = 0; i < model->n; i++)
        for (int d = 0; d < 2; d++) lo[d] = fmin(lo[d], model->p[i][d]), hi[d] = fmax(hi[d], model->p[i][d]);
    affine2d back;
    if (affine_invert(&r->transform, &back)) return scene->n;
    int n = 0;
    for (int i = 0; i < scene->n; i++) {
        double x, y;
        affine_apply(&back, scene->p[i][0], scene->p[i][1], &x, &y);
        n += x >= lo[0] && x <= hi[0] && y >= lo[1] && y <= hi[1];
    }
    return n;
}

static void publish_search(stagemap *m, int view, int views, const constellation_result *r, const reloc_settings *s)
{
    db_lock();
    param_set_int(m->port, P_RELOC_VIEW, view);
    param_set_int(m->port, P_RELOC_VIEWS, views);
    param_set_int(m->port, P_RELOC_MATCHES, r->matches);
    param_set_int(m->port, P_RELOC_RUNNER_UP, r->runner_up);
    param_set_double(m->port, P_RELOC_ELAPSED, time_monotonic() - s->started);
    db_unlock();
    param_post(m->port);
}

/* Step 1: where the reference's features (ref_px; model: the same on the stage under the prior) are on the
 * stage. Takes views from centre outwards until the match is trustworthy. On success *match maps prior stage
 * -> stage and matched_px/matched_stage receive the matched pairs; -1 with err (and *result) otherwise. */
static int coarse_match(stagemap *m, const point_list *ref_px, const point_list *model, const double centre[2],
                        const reloc_settings *s, constellation_result *match, point_list *matched_px,
                        point_list *matched_stage, int *result, stagemap_view *sv, char *err, size_t errlen)
{
    point_list scene = {0};
    live_view v = {0};
    search_view *plan = NULL;
    int views = 1, rc = -1, *pairing = NULL, blurred = 0, sharp = 0;
    char why[256] = "no features in any view";
    memset(match, 0, sizeof *match);
    *result = RESULT_FAILED;
    for (int k = 0; k < views; k++) {
        double here[2] = {k ? plan[k - 1].x : centre[0], k ? plan[k - 1].y : centre[1]};
        char what[96];
        snprintf(what, sizeof what, "looking for the sample: view %d of %d", k + 1, views);
        state(m, what);
        publish_search(m, k + 1, views, match, s);
        if (hold(m) || reloc_move(m, here, err, errlen) || take_view(m, &v, sv, s, err, errlen)) {
            if (stagemap_aborting(m)) *result = RESULT_ABORTED, error_set(err, errlen, "aborted while looking for the sample");
            goto out;
        }
        if (k == 0) views = 1 + search_plan(m, centre, s->search_radius, VIEW_STEP * v.field_um, &plan);
        if (isnan(v.sharpness)) continue;            /* bare substrate: its "features" are noise */
        if (v.sharpness < s->min_sharpness) {        /* structure, but blurred: matching it would match noise */
            log_warn("stagemap", "%s: view %d: sharpness %.3f below Reloc:MinSharpness %.3f: out of focus", m->port_name,
                     k + 1, v.sharpness, s->min_sharpness);
            if (++blurred >= OUT_OF_FOCUS_VIEWS && !sharp) {
                *result = RESULT_OUT_OF_FOCUS;
                error_set(err, errlen, "stopped: out of focus (sharpness %.3f below Reloc:MinSharpness %.3f in %d views, "
                          "none sharp): check the sample height", v.sharpness, s->min_sharpness, blurred);
                goto out;
            }
            continue;
        }
        sharp++;
        for (int i = 0; i < v.features.n; i++) {       /* pool the view's features, once each */
            int seen = 0;
            for (int j = 0; j < scene.n && !seen; j++)
                seen = hypot(scene.p[j][0] - v.features.p[i][0], scene.p[j][1] - v.features.p[i][1]) < SAME_FEATURE_UM;
            if (!seen) points_add(&scene, v.features.p[i][0], v.features.p[i][1]);
        }
        if (scene.n < MIN_MATCHES || model->n < 3) continue;
        constellation_params p;
        constellation_params_default(&p);
        p.tolerance = s->match_tolerance;
        p.scale_min = 1 - s->max_scale_error / 100 - SCALE_MARGIN, p.scale_max = 1 + s->max_scale_error / 100 + SCALE_MARGIN;
        p.pair_min = PAIR_MIN_UM, p.pair_max = fmax(2 * PAIR_MIN_UM, PAIR_MAX_FIELD * v.field_um);
        p.allow_mirror = s->detect_flip;
        pairing = xrealloc(pairing, (size_t)scene.n * sizeof *pairing);
        if (constellation_match((const double (*)[2])model->p, model->n, (const double (*)[2])scene.p, scene.n, &p,
                                match, pairing, err, errlen))
            goto out;
        publish_search(m, k + 1, views, match, s);
        int over = count_over(match, model, &scene);
        int trusted = trustworthy(match, over, matched_spread(&scene, pairing), s, why, sizeof why);
        log_info("stagemap", "%s: view %d of %d: %d features (%d over the reference); best placement explains %d "
                 "(rotation %.2f, scale %.4f%s, rms %.3f um), runner-up %d: %s", m->port_name, k + 1, views, scene.n,
                 over, match->matches, match->rotation_deg, match->scale, match->mirrored ? ", mirrored" : "",
                 match->rms, match->runner_up, trusted ? "trusted" : why);
        if (trusted) {
            for (int i = 0; i < scene.n; i++)
                if (pairing[i] >= 0 && matched_px->n < MAX_COARSE_PAIRS) {
                    points_add(matched_px, ref_px->p[pairing[i]][0], ref_px->p[pairing[i]][1]);
                    points_add(matched_stage, scene.p[i][0], scene.p[i][1]);
                }
            rc = 0;
            goto out;
        }
    }
    *result = blurred > sharp ? RESULT_OUT_OF_FOCUS : RESULT_NO_MATCH;
    if (blurred > sharp) snprintf(why + strlen(why), sizeof why - strlen(why), "; %d views out of focus", blurred);
    error_set(err, errlen, "stopped: no trustworthy match of the reference within %.0f um (%d views, %d features): %s",
              s->search_radius, views, scene.n, why);
out:
    free(scene.p), free(v.features.p), free(plan), free(pairing);
    return rc;
}

/* Least-squares similarity of either handedness: dst ~= T(src), mirrored when `mirrored` (robust from 5 pairs). */
static int fit_pairs(const point_list *src, const point_list *dst, int mirrored, affine2d *out, double *rms,
                     char *err, size_t errlen)
{
    fit_result *fit = xmalloc(sizeof *fit);
    int n = src->n > FIT_MAX_POINTS ? FIT_MAX_POINTS : src->n;
    double (*flipped)[2] = xmalloc((size_t)(n ? n : 1) * sizeof *flipped);
    double f = mirrored ? -1 : 1;
    for (int i = 0; i < n; i++) flipped[i][0] = src->p[i][0], flipped[i][1] = f * src->p[i][1];
    int rc = transform_fit((const double (*)[2])flipped, (const double (*)[2])dst->p, n, FIT_SIMILARITY, n >= 5, 0,
                           fit, err, errlen);
    if (!rc) {
        affine2d mirror = {{{1, 0}, {0, f}}, {0, 0}};
        *out = affine_compose(&fit->transform, &mirror);
        *rms = fit->rms;
    }
    free(flipped), free(fit);
    return rc;
}

/* Publishes the mount the fit found, relative to the prior: offset of the reference pixel (Ref:RefPixelX/Y),
 * rotation, scale and whether it is mirrored (then as a flip of x, like Ref:FlipX). */
static void publish_mount(stagemap *m, const affine2d *prior, const affine2d *to_stage, double rms)
{
    affine2d inverse_prior, relative;
    if (affine_invert(prior, &inverse_prior)) return;
    relative = affine_compose(to_stage, &inverse_prior);
    double sx, sy, angle, shear;
    int mirrored;
    affine_decompose(&relative, &sx, &sy, &angle, &shear, &mirrored);
    if (mirrored) angle -= 180;            /* R(a) diag(1, -1) = R(a - 180) diag(-1, 1) */
    angle = remainder(angle, 360.0);
    db_lock();
    double u = param_get_double(m->port, P_REF_REF_PIXEL_X), v = param_get_double(m->port, P_REF_REF_PIXEL_Y);
    double was[2], now[2];
    affine_apply(prior, u, v, &was[0], &was[1]);
    affine_apply(to_stage, u, v, &now[0], &now[1]);
    param_set_double(m->port, P_RELOC_MOUNT_X, now[0] - was[0]);
    param_set_double(m->port, P_RELOC_MOUNT_Y, now[1] - was[1]);
    param_set_double(m->port, P_RELOC_ROTATION, angle);
    param_set_double(m->port, P_RELOC_MOUNT_SCALE, sqrt(sx * sy));
    param_set_int(m->port, P_RELOC_MOUNT_FLIP, mirrored);
    param_set_double(m->port, P_RELOC_MOUNT_RMS, rms);
    db_unlock();
    param_post(m->port);
}

typedef struct particle_result {
    double x, y, residual;
    int status;
    int visit; /* 1 for the first visited (nearest first), 0 not visited */
} particle_result;

/* Whether a frame agrees with the fit, apart from the particle looked for (within radius of target): a frame
 * in which the fit expects 3 or more reference features but shows fewer than 2 of them is not where the fit
 * says. Counts go to *predicted and *seen; the mean offset of the seen features from where the fit puts them
 * to local[] (0 when none is seen): the fit's error here, which the particle shares. */
static int frame_agrees(const live_view *v, const point_list *ref_px, const affine2d *to_stage, const double target[2],
                        double radius, double match_tolerance, int *predicted, int *seen, double local[2])
{
    *predicted = *seen = 0;
    local[0] = local[1] = 0;
    for (int k = 0; k < ref_px->n; k++) {
        double at[2];
        affine_apply(to_stage, ref_px->p[k][0], ref_px->p[k][1], &at[0], &at[1]);
        if (!in_view(v, at, 0) || hypot(at[0] - target[0], at[1] - target[1]) < radius) continue;
        ++*predicted;
        int nearest = -1;
        double nearest_d = match_tolerance;
        for (int i = 0; i < v->features.n; i++) {
            double d = hypot(v->features.p[i][0] - at[0], v->features.p[i][1] - at[1]);
            if (d <= nearest_d) nearest_d = d, nearest = i;
        }
        if (nearest < 0) continue;
        ++*seen;
        local[0] += v->features.p[nearest][0] - at[0];
        local[1] += v->features.p[nearest][1] - at[1];
    }
    if (*seen) local[0] /= *seen, local[1] /= *seen;
    return *predicted < 3 || *seen >= 2;
}

/* Step 2 for one particle: move it under the beam, find it near the beam, correct, repeat. */
static int visit(stagemap *m, const double target[2], const point_list *ref_px, const affine2d *to_stage,
                 const reloc_settings *s, particle_result *r, stagemap_view *sv, char *err, size_t errlen)
{
    double goal[2] = {target[0], target[1]}, radius = s->capture_radius;
    live_view v = {0};
    r->status = RELOC_NOT_CONVERGED;
    r->x = target[0], r->y = target[1], r->residual = NAN;
    int rc = 0;
    for (int iter = 0; iter < s->max_iter; iter++) {
        if (hold(m)) {
            r->status = RELOC_ABORTED;
            break;
        }
        if (reloc_move(m, goal, err, errlen) || take_view(m, &v, sv, s, err, errlen)) {
            int aborted = stagemap_aborting(m);
            r->status = aborted ? RELOC_ABORTED : RELOC_NOT_FOUND;
            rc = aborted ? 0 : -1;
            break;
        }
        double here[2];
        db_lock();
        stagemap_axis_position(m, 0, &here[0]);
        stagemap_axis_position(m, 1, &here[1]);
        db_unlock();
        if (v.sharpness < s->min_sharpness) {         /* NaN (nothing there) is a verdict; blur is not */
            log_warn("stagemap", "%s: the frame at (%.2f, %.2f) um is out of focus (sharpness %.3f): no verdict on the "
                     "particle", m->port_name, here[0], here[1], v.sharpness);
            r->status = RELOC_AMBIGUOUS;
            break;
        }
        int predicted, seen;
        double local[2];
        if (!frame_agrees(&v, ref_px, to_stage, goal, s->capture_radius, s->match_tolerance, &predicted, &seen, local)) {
            log_warn("stagemap", "%s: the frame at (%.2f, %.2f) um shows %d of the %d reference features the fit "
                     "expects there: no verdict on the particle", m->port_name, here[0], here[1], seen, predicted);
            r->status = RELOC_AMBIGUOUS;        /* not where the fit says: no verdict */
            break;
        }
        /* The first look expects the particle where the fit puts it, moved by the fit's error that the frame's
         * other reference features show (the fit extrapolates from the views of the coarse match; its error
         * near the particle is mostly an offset). Later looks expect it where the last frame saw it. */
        double expect[2] = {goal[0], goal[1]};
        if (iter == 0 && seen >= 3) expect[0] += local[0], expect[1] += local[1];
        int nearest = -1, within = 0;
        double nearest_d = radius;
        for (int i = 0; i < v.features.n; i++) {
            double d = hypot(v.features.p[i][0] - expect[0], v.features.p[i][1] - expect[1]);
            if (d < radius) within++;
            if (d < nearest_d) nearest_d = d, nearest = i;
        }
        if (nearest < 0) {
            r->status = RELOC_NOT_FOUND;
            break;
        }
        r->x = v.features.p[nearest][0], r->y = v.features.p[nearest][1];
        r->residual = hypot(r->x - here[0], r->y - here[1]);
        if (within > 1 || (iter == 0 && nearest_d > s->match_tolerance)) {
            log_warn("stagemap", "%s: %d features within %.2f um of (%.2f, %.2f) um, the nearest %.2f um away: "
                     "ambiguous", m->port_name, within, radius, expect[0], expect[1], nearest_d);
            r->status = RELOC_AMBIGUOUS;
            break;
        }
        if (r->residual <= s->tolerance) {
            r->status = RELOC_FOUND;
            break;
        }
        goal[0] = r->x, goal[1] = r->y;
        radius = fmax(s->tolerance * 2, radius / 2);     /* once seen, the particle is where the last frame put it */
    }
    free(v.features.p);
    return rc;
}

/* The unvisited particle (status pending) the fit puts nearest a point of measured, the stage points the fit was
 * made from: extrapolating the least, it is the best-placed to find next, and once found it moves the fit's
 * support toward the particles still to come. */
static int nearest_unvisited(const point_list *chosen, const particle_result *res, const affine2d *to_stage,
                             const point_list *measured)
{
    int best = -1;
    double best_d = INFINITY;
    for (int i = 0; i < chosen->n; i++) {
        if (res[i].status != RELOC_PENDING) continue;
        double at[2], d = INFINITY;
        affine_apply(to_stage, chosen->p[i][0], chosen->p[i][1], &at[0], &at[1]);
        for (int j = 0; j < measured->n; j++) d = fmin(d, hypot(measured->p[j][0] - at[0], measured->p[j][1] - at[1]));
        if (best < 0 || d < best_d) best = i, best_d = d;
    }
    return best;
}

/* Publishes the results so far: done particles visited, current the index of the one under way (-1: none). */
static void publish(stagemap *m, const particle_result *res, int n, int done, int current, const point_list *px,
                    int result, const reloc_settings *s)
{
    double *x = xmalloc((size_t)(n ? n : 1) * sizeof *x), *y = xmalloc((size_t)(n ? n : 1) * sizeof *y),
           *resid = xmalloc((size_t)(n ? n : 1) * sizeof *resid);
    int32_t *status = xmalloc((size_t)(n ? n : 1) * sizeof *status);
    size_t cap = 128 + (size_t)n * 128, len = 0;
    char *table = xmalloc(cap);
    len += (size_t)snprintf(table, cap, "index,ref_u,ref_v,stage_x_um,stage_y_um,residual_um,status,visit\n");
    static const char *names[] = {"pending", "found", "ambiguous", "not found", "aborted", "not converged"};
    int found = 0;
    for (int i = 0; i < n; i++) {
        x[i] = res[i].x, y[i] = res[i].y, resid[i] = res[i].residual, status[i] = res[i].status;
        found += res[i].status == RELOC_FOUND;
        len += (size_t)snprintf(table + len, cap - len, "%d,%.3f,%.3f,%.4f,%.4f,%.4f,%s,%d\n", i, px->p[i][0],
                                px->p[i][1], res[i].x, res[i].y, res[i].residual, names[res[i].status], res[i].visit);
    }
    db_lock();
    m->nrelocated = 0;
    for (int i = 0; i < n; i++)
        if (res[i].status == RELOC_FOUND) {
            m->relocated[m->nrelocated][0] = res[i].x;
            m->relocated[m->nrelocated][1] = res[i].y;
            m->relocated_index[m->nrelocated++] = i;
        }
    param_port *p = m->port;
    param_set_array(p, P_RELOC_STAGE_X, x, n);
    param_set_array(p, P_RELOC_STAGE_Y, y, n);
    param_set_array(p, P_RELOC_RESIDUAL, resid, n);
    param_set_array(p, P_RELOC_STATUS, status, n);
    param_set_string(p, P_RELOC_TABLE, table);
    param_set_int(p, P_RELOC_FOUND, found);
    param_set_int(p, P_RELOC_CURRENT, current);
    param_set_double(p, P_RELOC_PROGRESS, n ? 100.0 * done / n : 100.0);
    param_set_int(p, P_RELOC_RESULT, result);
    param_set_double(p, P_RELOC_ELAPSED, time_monotonic() - s->started);
    db_unlock();
    param_post(p);
    free(x), free(y), free(resid), free(status), free(table);
}

int stagemap_reloc_run(stagemap *m, char *err, size_t errlen)
{
    char path[1024];
    reloc_settings s = {.started = time_monotonic()};
    param_get_string(m->port, P_RELOC_REF_PATH, path, sizeof path);
    db_lock();
    affine2d prior = m->ref_pixel_to_stage;
    point_list chosen = {0};
    for (int i = 0; i < m->nparticles; i++) points_add(&chosen, m->particle[i][0], m->particle[i][1]);
    param_port *port = m->port;
    int ref_diameter = (int)param_get_int(port, P_RELOC_REF_DIAMETER);
    s.live_diameter = (int)param_get_int(port, P_RELOC_LIVE_DIAMETER);
    s.mass_factor = param_get_double(port, P_RELOC_MASS_FACTOR);
    s.tolerance = param_get_double(port, P_RELOC_TOLERANCE);
    s.capture_radius = param_get_double(port, P_RELOC_CAPTURE_RADIUS);
    s.match_tolerance = param_get_double(port, P_RELOC_MATCH_TOLERANCE);
    s.search_radius = param_get_double(port, P_RELOC_SEARCH_RADIUS);
    s.max_scale_error = param_get_double(port, P_RELOC_MAX_SCALE_ERROR);
    s.detect_flip = (int)param_get_int(port, P_RELOC_DETECT_FLIP);
    s.max_iter = (int)param_get_int(port, P_RELOC_MAX_ITER);
    s.min_sharpness = param_get_double(port, P_RELOC_MIN_SHARPNESS);
    db_unlock();
    int n = chosen.n, rc = -1, result = RESULT_FAILED;
    particle_result *res = xcalloc((size_t)(n ? n : 1), sizeof *res);
    point_list ref_px = {0}, model = {0}, src = {0}, dst = {0};
    stagemap_view sv = {0};
    image ref;
    memset(&ref, 0, sizeof ref);
    publish(m, res, n, 0, -1, &chosen, RESULT_RUNNING, &s);
    state(m, "detecting features of the reference");
    if (n == 0) {
        error_set(err, errlen, "no particles: write their reference pixels to Particles");
        goto out;
    }
    if (stagemap_view_settings(m, s.live_diameter, s.mass_factor, err, errlen)) goto out;
    if (image_read(path, &ref, err, errlen) ||
        detect(ref.data, ref.width, ref.height, ref_diameter, s.mass_factor,
               ref.type == PIX_F32 || ref.type == PIX_F64 ? 0 : pixel_type_max(ref.type), &ref_px, err, errlen))
        goto out;
    double centre[2] = {0, 0};
    for (int i = 0; i < ref_px.n; i++) {
        double x, y;
        affine_apply(&prior, ref_px.p[i][0], ref_px.p[i][1], &x, &y);
        points_add(&model, x, y);
    }
    for (int i = 0; i < n; i++) {           /* the first view: where the prior puts the chosen particles */
        double x, y;
        affine_apply(&prior, chosen.p[i][0], chosen.p[i][1], &x, &y);
        centre[0] += x / n, centre[1] += y / n;
    }
    constellation_result match;
    if (coarse_match(m, &ref_px, &model, centre, &s, &match, &src, &dst, &result, &sv, err, errlen)) goto out;
    int mirrored = match.mirrored ^ (prior.m[0][0] * prior.m[1][1] - prior.m[0][1] * prior.m[1][0] < 0);
    affine2d to_stage;
    double rms;
    if (fit_pairs(&src, &dst, mirrored, &to_stage, &rms, err, errlen)) goto out;
    publish_mount(m, &prior, &to_stage, rms);
    for (int k = 0; k < n; k++) {
        int i = nearest_unvisited(&chosen, res, &to_stage, &dst);
        char what[64];
        snprintf(what, sizeof what, "particle %d (%d of %d)", i + 1, k + 1, n);
        state(m, what);
        res[i].visit = k + 1;
        publish(m, res, n, k, i, &chosen, RESULT_RUNNING, &s);
        double target[2];
        affine_apply(&to_stage, chosen.p[i][0], chosen.p[i][1], &target[0], &target[1]);
        if (visit(m, target, &ref_px, &to_stage, &s, &res[i], &sv, err, errlen)) goto out;
        if (res[i].status == RELOC_ABORTED) {
            for (int j = 0; j < n; j++)
                if (res[j].status == RELOC_PENDING) res[j].status = RELOC_ABORTED;
            result = RESULT_ABORTED;
            error_set(err, errlen, "aborted at particle %d", i);
            goto out;
        }
        if (res[i].status == RELOC_FOUND) {       /* a measured pair: the fit only gets better */
            points_add(&src, chosen.p[i][0], chosen.p[i][1]);
            points_add(&dst, res[i].x, res[i].y);
            affine2d refit;
            char ignored[128];
            if (fit_pairs(&src, &dst, mirrored, &refit, &rms, ignored, sizeof ignored) == 0) to_stage = refit;
        }
    }
    publish_mount(m, &prior, &to_stage, rms);
    db_lock();
    stagemap_ref_set_transform(m, &to_stage);
    db_unlock();
    rc = 0;
    result = RESULT_DONE;
out:
    publish(m, res, n, rc == 0 ? n : 0, -1, &chosen, result, &s);
    if (rc == 0) {
        char done[128];
        snprintf(done, sizeof done, "done in %.1f s", time_monotonic() - s.started);
        state(m, done);
    } else {
        state(m, err);
    }
    image_free(&ref);
    stagemap_view_free(&sv);
    free(res), free(chosen.p), free(ref_px.p), free(model.p), free(src.p), free(dst.p);
    return rc;
}

int stagemap_reloc_write(stagemap *m, const param_write *w, char *err, size_t errlen)
{
    int rc = 0;
    switch (w->index) {
    case P_RELOC_START:
        if (!w->ival) return 0;
        pthread_mutex_lock(&m->lock);
        if (stagemap_view_available(m, err, errlen)) rc = -1;
        else if (motion_stage_available(m->stage, err, errlen)) rc = -1;
        else if (!param_get_int(m->port, P_MOVE_ENABLE)) rc = error_set(err, errlen, "moves are disabled (Move:Enable = 0)");
        else if (m->job) rc = error_set(err, errlen, "busy with a move, load or relocalization");
        else m->job = JOB_RELOC, m->job_param = P_RELOC_START, m->abort = m->paused = 0;
        pthread_cond_broadcast(&m->wake);
        pthread_mutex_unlock(&m->lock);
        if (rc) break;
        param_set_int(m->port, P_MOVE_BUSY, 1);
        return PARAM_ASYNC;
    case P_RELOC_PAUSE:
    case P_RELOC_ABORT:
        pthread_mutex_lock(&m->lock);
        if (w->index == P_RELOC_PAUSE) m->paused = w->ival != 0;
        else if (w->ival && m->job) m->abort = 1;
        pthread_cond_broadcast(&m->wake);
        pthread_mutex_unlock(&m->lock);
        break;
    case P_RELOC_TOLERANCE: case P_RELOC_CAPTURE_RADIUS: case P_RELOC_MATCH_TOLERANCE: case P_RELOC_MASS_FACTOR:
        if (!(w->dval > 0) || !isfinite(w->dval)) rc = error_set(err, errlen, "%s must be a number > 0", w->name);
        break;
    case P_RELOC_SEARCH_RADIUS:
        if (!(w->dval >= 0) || w->dval > 1e5)
            rc = error_set(err, errlen, "%s must be 0 (the first view only) .. 100000 um", w->name);
        break;
    case P_RELOC_MAX_SCALE_ERROR:
        if (!(w->dval >= 0) || w->dval > 30) rc = error_set(err, errlen, "%s must be 0..30 %%", w->name);
        break;
    case P_RELOC_MIN_SHARPNESS:
        if (!(w->dval >= 0) || w->dval > 1000) rc = error_set(err, errlen, "%s must be 0 (off) .. 1000", w->name);
        break;
    case P_RELOC_REF_DIAMETER: case P_RELOC_LIVE_DIAMETER:
        if (!locate_diameter_valid(w->ival))
            rc = error_set(err, errlen, "%s must be odd, 3..%d", w->name, LOCATE_MAX_DIAMETER);
        break;
    case P_RELOC_MAX_ITER:
        if (w->ival < 1 || w->ival > 50) rc = error_set(err, errlen, "%s must be 1..50", w->name);
        break;
    default:
        break;
    }
    if (rc) stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 1, "%s", err);
    return rc;
}
