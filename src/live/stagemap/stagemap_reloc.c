/* stagemap_reloc.c -- automated relocalization of particles chosen in a reference image (SEM, AFM, ...) after
 * the sample was remounted with an unknown offset and rotation:
 *   1. coarse: the features of the live camera frame are matched to the features detected in the reference
 *      image, mapped to the stage by the reference layer's prior transform; the rotation and offset most
 *      feature pairs agree on (a vote over rotations and 2 um offset bins) give the matched pairs, and a robust
 *      similarity fit of those gives reference pixel -> stage;
 *   2. each particle of the list is moved under the beam, detected in a fresh frame near the beam, the stage
 *      corrected by what the frame shows, until the particle is within the tolerance of the beam; every found
 *      particle joins the fit, so later predictions improve;
 *   3. a particle with no feature within the search radius is "not found" (never matched to a neighbour
 *      further away); two features within the radius make it "ambiguous".
 * Runs on the stage map's worker thread; Reloc:Pause holds it between steps, Reloc:Abort stops the motors.
 * Results (per particle: stage position, residual, status) are published as arrays and a CSV table. */
#include "live/stagemap/stagemap_internal.h"

#include "core/base/base.h"
#include "drivers/camera/camera.h"
#include "formats/imageio/imageio.h"
#include "kernels/detection/detection.h"
#include "core/shell/shell.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FEATURES 20000
#define VOTE_BIN_UM 2.0
#define FRAME_TIMEOUT_S 5.0
/* A frame counts as taken after a move when exposed this long after it: the camera reads the stage position
 * through links (readback, unit conversion) that may settle a few milliseconds after the move is done. */
#define FRAME_SETTLE_S 0.05

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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Features of both contrasts (dark and bright particles), keeping those whose mass is above mass_factor times
 * the median mass of all local maxima (noise maxima dominate the median). */
static int detect(const float *img, int w, int h, int diameter, double mass_factor, double sample_max, point_list *out,
                  char *err, size_t errlen)
{
    locate_table t;
    locate_table_init(&t);
    out->n = 0;
    for (int invert = 0; invert < 2; invert++) {
        locate_params p;
        locate_params_default(&p, diameter);
        p.invert = invert;
        p.characterize = 0;
        locate_ctx *ctx = locate_ctx_create(&p, w, h, sample_max, err, errlen);
        if (!ctx) {
            locate_table_free(&t);
            return -1;
        }
        locate_frame(ctx, img, 0, &t);
        locate_ctx_free(ctx);
        if (t.count == 0) continue;
        double *mass = xmalloc((size_t)t.count * sizeof *mass);
        memcpy(mass, t.mass, (size_t)t.count * sizeof *mass);
        qsort(mass, (size_t)t.count, sizeof *mass, cmp_double);
        double threshold = mass_factor * mass[t.count / 2];
        free(mass);
        for (int i = 0; i < t.count && out->n < MAX_FEATURES; i++)
            if (t.mass[i] > threshold) points_add(out, t.x[i], t.y[i]);
    }
    locate_table_free(&t);
    return 0;
}

/* Takes a frame exposed after `after` (wall clock), as float samples in *img (reallocated). */
static int fresh_frame(stagemap *m, struct timespec after, float **img, int *w, int *h, char *err, size_t errlen)
{
    double deadline = time_monotonic() + FRAME_TIMEOUT_S;
    while (time_monotonic() < deadline) {
        frame *f = frame_consumer_next(m->frames, 0.5);
        if (!f) continue;
        int fresh = f->stamp.tv_sec > after.tv_sec || (f->stamp.tv_sec == after.tv_sec && f->stamp.tv_nsec > after.tv_nsec);
        if (fresh) {
            *w = f->width;
            *h = f->height;
            *img = xrealloc(*img, (size_t)f->width * f->height * sizeof **img);
            for (size_t i = 0; i < (size_t)f->width * f->height; i++) (*img)[i] = f->data[i];
        }
        frame_consumer_done(m->frames, f);
        if (fresh) return 0;
    }
    return error_set(err, errlen, "no camera frame from %s within %.0f s (is it acquiring?)", m->camera_port,
                     FRAME_TIMEOUT_S);
}

/* The features of a fresh frame, in stage um (live layer at the current stage position). */
static int live_features(stagemap *m, point_list *out, float **img, char *err, size_t errlen)
{
    int w = 0, h = 0;
    if (fresh_frame(m, time_add(time_wall(), FRAME_SETTLE_S), img, &w, &h, err, errlen)) return -1;
    db_lock();
    affine2d t;
    int rc = stagemap_layer_transform(m, LAYER_LIVE, &t, err, errlen);
    int diameter = (int)param_get_int(m->port, P_RELOC_LIVE_DIAMETER);
    double factor = param_get_double(m->port, P_RELOC_MASS_FACTOR);
    db_unlock();
    if (rc || detect(*img, w, h, diameter, factor, 65535, out, err, errlen)) return -1;
    for (int i = 0; i < out->n; i++) affine_apply(&t, out->p[i][0], out->p[i][1], &out->p[i][0], &out->p[i][1]);
    return 0;
}

/* Step 1: reference pixel -> stage from the live frame's features and the reference's. pairs receive the
 * matched (reference pixel, stage) pairs. */
static int coarse_match(stagemap *m, const point_list *ref_px, const affine2d *prior, const point_list *live,
                        point_list *pair_src, point_list *pair_dst, char *err, size_t errlen)
{
    db_lock();
    double max_offset = param_get_double(m->port, P_RELOC_MAX_OFFSET);
    double max_rotation = param_get_double(m->port, P_RELOC_MAX_ROTATION);
    db_unlock();
    int nbins = (int)ceil(2 * max_offset / VOTE_BIN_UM) + 1;
    int *votes = xmalloc((size_t)nbins * nbins * sizeof *votes);
    double best_angle = 0, best_tx = 0, best_ty = 0;
    int best = 0;
    double (*stage)[2] = xmalloc((size_t)(ref_px->n ? ref_px->n : 1) * sizeof *stage);
    for (int i = 0; i < ref_px->n; i++) affine_apply(prior, ref_px->p[i][0], ref_px->p[i][1], &stage[i][0], &stage[i][1]);
    for (double angle = -max_rotation; angle <= max_rotation + 1e-9; angle += 0.25) {
        double c = cos(angle * M_PI / 180), s = sin(angle * M_PI / 180);
        memset(votes, 0, (size_t)nbins * nbins * sizeof *votes);
        for (int j = 0; j < ref_px->n; j++) {
            double rx = c * stage[j][0] - s * stage[j][1], ry = s * stage[j][0] + c * stage[j][1];
            for (int i = 0; i < live->n; i++) {
                double dx = live->p[i][0] - rx, dy = live->p[i][1] - ry;
                if (fabs(dx) >= max_offset || fabs(dy) >= max_offset) continue;
                int bx = (int)((dx + max_offset) / VOTE_BIN_UM), by = (int)((dy + max_offset) / VOTE_BIN_UM);
                int *v = &votes[(size_t)by * nbins + bx];
                if (++*v > best) {
                    best = *v;
                    best_angle = angle;
                    best_tx = (bx + 0.5) * VOTE_BIN_UM - max_offset;
                    best_ty = (by + 0.5) * VOTE_BIN_UM - max_offset;
                }
            }
        }
    }
    free(votes);
    /* the pairs that agree with the winning rotation and offset, each live feature used once */
    double c = cos(best_angle * M_PI / 180), s = sin(best_angle * M_PI / 180);
    for (int i = 0; i < live->n; i++) {
        int best_j = -1;
        double best_d = 1.5 * VOTE_BIN_UM;
        for (int j = 0; j < ref_px->n; j++) {
            double rx = c * stage[j][0] - s * stage[j][1] + best_tx, ry = s * stage[j][0] + c * stage[j][1] + best_ty;
            double d = hypot(live->p[i][0] - rx, live->p[i][1] - ry);
            if (d < best_d) best_d = d, best_j = j;
        }
        if (best_j >= 0) {
            points_add(pair_src, ref_px->p[best_j][0], ref_px->p[best_j][1]);
            points_add(pair_dst, live->p[i][0], live->p[i][1]);
        }
    }
    free(stage);
    if (pair_src->n < 4)
        return error_set(err, errlen, "coarse match failed: only %d features of the live frame agree with the "
                         "reference (need 4)", pair_src->n);
    db_lock();
    param_set_int(m->port, P_RELOC_MATCHES, pair_src->n);
    db_unlock();
    return 0;
}

static int fit_pairs(const point_list *src, const point_list *dst, affine2d *out, char *err, size_t errlen)
{
    fit_result *fit = xmalloc(sizeof *fit);
    int n = src->n > FIT_MAX_POINTS ? FIT_MAX_POINTS : src->n;
    int rc = transform_fit((const double (*)[2])src->p, (const double (*)[2])dst->p, n, FIT_SIMILARITY, n >= 5, 0,
                           fit, err, errlen);
    if (!rc) *out = fit->transform;
    free(fit);
    return rc;
}

static void state(stagemap *m, const char *text)
{
    param_set_string(m->port, P_RELOC_STATE, text);
    param_post(m->port);
    log_info("stagemap", "%s: relocalization: %s", m->port_name, text);
}

static int aborting(stagemap *m)
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

typedef struct particle_result {
    double x, y, residual;
    int status;
} particle_result;

/* Step 2 for one particle: move it under the beam, find it near the beam, correct, repeat. */
static int visit(stagemap *m, const double target[2], double radius, double tolerance, int max_iter,
                 particle_result *r, float **img, char *err, size_t errlen)
{
    double goal[2] = {target[0], target[1]};
    point_list live = {0};
    r->status = RELOC_NOT_CONVERGED;
    r->x = target[0], r->y = target[1], r->residual = NAN;
    int rc = 0;
    for (int iter = 0; iter < max_iter; iter++) {
        if (hold(m)) {
            r->status = RELOC_ABORTED;
            break;
        }
        if (stagemap_move_to(m, goal, err, errlen) || live_features(m, &live, img, err, errlen)) {
            int aborted = aborting(m);
            r->status = aborted ? RELOC_ABORTED : RELOC_NOT_FOUND;
            rc = aborted ? 0 : -1;
            break;
        }
        double here[2];
        db_lock();
        stagemap_axis_position(m, 0, &here[0]);
        stagemap_axis_position(m, 1, &here[1]);
        db_unlock();
        int nearest = -1, within = 0;
        double nearest_d = radius;
        for (int i = 0; i < live.n; i++) {
            double d = hypot(live.p[i][0] - goal[0], live.p[i][1] - goal[1]);
            if (d < radius) within++;
            if (d < nearest_d) nearest_d = d, nearest = i;
        }
        if (nearest < 0) {
            r->status = RELOC_NOT_FOUND;
            break;
        }
        r->x = live.p[nearest][0], r->y = live.p[nearest][1];
        r->residual = hypot(r->x - here[0], r->y - here[1]);
        if (within > 1) {
            r->status = RELOC_AMBIGUOUS;
            break;
        }
        if (r->residual <= tolerance) {
            r->status = RELOC_FOUND;
            break;
        }
        goal[0] = r->x, goal[1] = r->y;
        radius = fmax(tolerance * 2, radius / 2);     /* once seen, the particle is where the last frame put it */
    }
    free(live.p);
    return rc;
}

static void publish(stagemap *m, const particle_result *res, int n, int done, const point_list *px)
{
    double *x = xmalloc((size_t)(n ? n : 1) * sizeof *x), *y = xmalloc((size_t)(n ? n : 1) * sizeof *y),
           *resid = xmalloc((size_t)(n ? n : 1) * sizeof *resid);
    int32_t *status = xmalloc((size_t)(n ? n : 1) * sizeof *status);
    size_t cap = 128 + (size_t)n * 96, len = 0;
    char *table = xmalloc(cap);
    len += (size_t)snprintf(table, cap, "index,ref_u,ref_v,stage_x_um,stage_y_um,residual_um,status\n");
    static const char *names[] = {"pending", "found", "ambiguous", "not found", "aborted", "not converged"};
    int found = 0;
    for (int i = 0; i < n; i++) {
        x[i] = res[i].x, y[i] = res[i].y, resid[i] = res[i].residual, status[i] = res[i].status;
        found += res[i].status == RELOC_FOUND;
        len += (size_t)snprintf(table + len, cap - len, "%d,%.3f,%.3f,%.4f,%.4f,%.4f,%s\n", i, px->p[i][0], px->p[i][1],
                                res[i].x, res[i].y, res[i].residual, names[res[i].status]);
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
    param_set_int(p, P_RELOC_CURRENT, done < n ? done : -1);
    param_set_double(p, P_RELOC_PROGRESS, n ? 100.0 * done / n : 100.0);
    db_unlock();
    param_post(p);
    free(x), free(y), free(resid), free(status), free(table);
}

int stagemap_reloc_run(stagemap *m, char *err, size_t errlen)
{
    char path[1024];
    param_get_string(m->port, P_RELOC_REF_PATH, path, sizeof path);
    db_lock();
    affine2d prior = m->ref_pixel_to_stage;
    point_list chosen = {0};
    for (int i = 0; i < m->nparticles; i++) points_add(&chosen, m->particle[i][0], m->particle[i][1]);
    int ref_diameter = (int)param_get_int(m->port, P_RELOC_REF_DIAMETER);
    double factor = param_get_double(m->port, P_RELOC_MASS_FACTOR);
    double tolerance = param_get_double(m->port, P_RELOC_TOLERANCE), radius = param_get_double(m->port, P_RELOC_SEARCH_RADIUS);
    int max_iter = (int)param_get_int(m->port, P_RELOC_MAX_ITER);
    db_unlock();
    int n = chosen.n, rc = -1;
    particle_result *res = xcalloc((size_t)(n ? n : 1), sizeof *res);
    point_list ref_px = {0}, live = {0}, src = {0}, dst = {0};
    float *img = NULL;
    image ref;
    memset(&ref, 0, sizeof ref);
    state(m, "detecting features of the reference");
    if (n == 0) {
        error_set(err, errlen, "no particles: write their reference pixels to Particles");
        goto out;
    }
    if (image_read(path, &ref, err, errlen) ||
        detect(ref.data, ref.width, ref.height, ref_diameter, factor, ref.type == PIX_F32 || ref.type == PIX_F64 ? 0 :
               pixel_type_max(ref.type), &ref_px, err, errlen))
        goto out;
    state(m, "matching the live frame to the reference");
    affine2d to_stage;
    if (live_features(m, &live, &img, err, errlen) || coarse_match(m, &ref_px, &prior, &live, &src, &dst, err, errlen) ||
        fit_pairs(&src, &dst, &to_stage, err, errlen))
        goto out;
    double sx, sy, angle, shear;
    int mirrored;
    affine_decompose(&to_stage, &sx, &sy, &angle, &shear, &mirrored);
    db_lock();
    param_set_double(m->port, P_RELOC_ROTATION, angle);
    db_unlock();
    for (int k = 0; k < n; k++) {
        char what[64];
        snprintf(what, sizeof what, "particle %d of %d", k + 1, n);
        state(m, what);
        publish(m, res, n, k, &chosen);
        double target[2];
        affine_apply(&to_stage, chosen.p[k][0], chosen.p[k][1], &target[0], &target[1]);
        if (visit(m, target, radius, tolerance, max_iter, &res[k], &img, err, errlen)) goto out;
        if (res[k].status == RELOC_ABORTED) {
            for (int i = k; i < n; i++) res[i].status = RELOC_ABORTED;
            error_set(err, errlen, "aborted at particle %d", k);
            goto out;
        }
        if (res[k].status == RELOC_FOUND) {       /* a measured pair: the fit only gets better */
            points_add(&src, chosen.p[k][0], chosen.p[k][1]);
            points_add(&dst, res[k].x, res[k].y);
            affine2d refit;
            char ignored[128];
            if (fit_pairs(&src, &dst, &refit, ignored, sizeof ignored) == 0) to_stage = refit;
        }
    }
    db_lock();
    stagemap_ref_set_transform(m, &to_stage);
    db_unlock();
    rc = 0;
out:
    publish(m, res, n, rc == 0 ? n : 0, &chosen);
    state(m, rc == 0 ? "done" : err);
    image_free(&ref);
    free(res), free(img), free(chosen.p), free(ref_px.p), free(live.p), free(src.p), free(dst.p);
    return rc;
}

int stagemap_reloc_write(stagemap *m, const param_write *w, char *err, size_t errlen)
{
    int rc = 0;
    switch (w->index) {
    case P_RELOC_START:
        if (!w->ival) return 0;
        pthread_mutex_lock(&m->lock);
        if (!m->frames) rc = error_set(err, errlen, "no camera for relocalization (stagemapCamera in st.cmd)");
        else if (!motion_stage_ready(m->stage)) rc = error_set(err, errlen, "motors unavailable");
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
    case P_RELOC_TOLERANCE: case P_RELOC_SEARCH_RADIUS: case P_RELOC_MAX_OFFSET: case P_RELOC_MASS_FACTOR:
        if (!(w->dval > 0)) rc = error_set(err, errlen, "%s must be > 0", w->name);
        break;
    case P_RELOC_REF_DIAMETER: case P_RELOC_LIVE_DIAMETER:
        if (w->ival < 3 || w->ival > LOCATE_MAX_DIAMETER || w->ival % 2 == 0)
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

/* stagemapCamera(PORT, CAMERA_PORT): the camera whose frames relocalization uses. */
static int camera_cmd(int argc, char **argv, char *err, size_t errlen)
{
    stagemap *m = stagemap_find(argv[1]);
    if (!m) return error_set(err, errlen, "no stage map port %s (stagemapConfigure first)", argv[1]);
    camera *cam = camera_find(argv[2]);
    if (!cam) return error_set(err, errlen, "no camera port %s (cameraConfigure first)", argv[2]);
    if (m->frames) return error_set(err, errlen, "%s has a camera already", argv[1]);
    m->frames = frame_ring_add_consumer(camera_ring(cam), "relocalization", FRAMES_NEWEST);
    if (!m->frames) return error_set(err, errlen, "camera %s takes no more consumers", argv[2]);
    str_copy(m->camera_port, argv[2], sizeof m->camera_port);
    return 0;
}

void stagemap_reloc_register(void)
{
    shell_register("stagemapCamera", "stagemapCamera(PORT, CAMERA_PORT)", 2, 2, camera_cmd);
}
