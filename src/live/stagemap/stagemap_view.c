/* stagemap_view.c -- where relocalization's views come from, chosen in st.cmd:
 *   stagemapCamera(PORT, CAMERA_PORT)  this IOC's camera: frames from its ring, features and sharpness computed
 *                                      here (kernels/detection view_features_detect, view_sharpness);
 *   stagemapWorker(PORT, PREFIX, CAMERA_PORT)  a worker IOC (its featuresConfigure stage, records
 *                                      db/features.db at PREFIX, e.g. "W:feat1:") that runs the same code on the
 *                                      frames CAMERA_PORT makes and this IOC publishes (framePublishConfigure):
 *                                      its View_RBV read over Channel Access (db_ca_channel, the links' libca
 *                                      client), every view checked (kernels/detection view_parse, and of
 *                                      CAMERA_PORT's frame size) before it is used.
 * Either way a view counts only when it comes from a frame exposed after the stage settled: the first frame
 * stamped after the settle time may have been begun before it (the camera reads the stage, then exposes), so
 * the one after it is taken; and when the frame carries the stage position of its exposure, that must be the
 * stage's position now (within one live pixel). A worker's view must also have been detected with this run's
 * settings (written to the worker with completion when the run starts). A worker that is away (naming each
 * channel that is), or whose view is malformed, has too many features or is of another frame size, refuses
 * Reloc:Start and fails a run waiting for its view, with the reason.
 *
 * Threads: configuration and stagemap_view_bind on the iocInit thread; everything else on the stage map's
 * worker thread. view_lock guards view_updates, which the channel's libca callback bumps.
 */
#include "live/stagemap/stagemap_internal.h"

#include "core/base/base.h"
#include "core/shell/shell.h"
#include "drivers/camera/camera.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_TIMEOUT_S 5.0
#define MAX_VIEW_FEATURES 20000
#define SETTINGS_TIMEOUT_S 5.0    /* the worker confirms a setting within this */

static int stamped_after(struct timespec stamp, struct timespec after)
{
    return stamp.tv_sec > after.tv_sec || (stamp.tv_sec == after.tv_sec && stamp.tv_nsec > after.tv_nsec);
}

/* Whether a frame (its stamp and stage position) may be used for rq; *seen_after notes the first frame stamped
 * after rq->after, which is itself never used. */
static int frame_fits(const stagemap_view_request *rq, struct timespec stamp, double stage_x, double stage_y,
                      int *seen_after)
{
    int use = *seen_after;
    *seen_after |= stamped_after(stamp, rq->after);
    if (!use) return 0;
    double dx = stage_x - rq->stage[0], dy = stage_y - rq->stage[1];
    return !(fabs(dx) > rq->stage_tolerance || fabs(dy) > rq->stage_tolerance);   /* NaN (unknown): fits */
}

static int take_local(stagemap *m, const stagemap_view_request *rq, stagemap_view *v, char *err, size_t errlen)
{
    double deadline = time_monotonic() + FRAME_TIMEOUT_S;
    int seen_after = 0;
    while (time_monotonic() < deadline) {
        frame *f = frame_consumer_next(m->frames, 0.5);
        if (!f) continue;
        int use = frame_fits(rq, f->stamp, f->stage_x, f->stage_y, &seen_after);
        if (use) {
            size_t n = (size_t)f->width * f->height;
            if (n > v->img_capacity) v->img = xrealloc(v->img, (v->img_capacity = n) * sizeof *v->img);
            for (size_t i = 0; i < n; i++) v->img[i] = f->data[i];
            v->width = f->width, v->height = f->height, v->unique_id = f->origin_id;
        }
        frame_consumer_done(m->frames, f);
        if (!use) continue;
        if (view_features_detect(v->img, v->width, v->height, rq->diameter, rq->mass_factor, 65535,
                                 MAX_VIEW_FEATURES, &v->features, err, errlen))
            return -1;
        v->sharpness = view_sharpness(v->img, v->width, v->height);
        return 0;
    }
    return error_set(err, errlen, "no camera frame from %s within %.0f s (is it acquiring?)", m->camera_port,
                     FRAME_TIMEOUT_S);
}

static unsigned long view_updates(stagemap *m)
{
    pthread_mutex_lock(&m->view_lock);
    unsigned long n = m->view_updates;
    pthread_mutex_unlock(&m->view_lock);
    return n;
}

/* Waits up to timeout_s for an update after the one counted `seen`. */
static void wait_update(stagemap *m, unsigned long seen, double timeout_s)
{
    struct timespec until = time_add(time_wall(), timeout_s);
    pthread_mutex_lock(&m->view_lock);
    while (m->view_updates == seen)
        if (pthread_cond_timedwait(&m->view_changed, &m->view_lock, &until)) break;
    pthread_mutex_unlock(&m->view_lock);
}

/* libca's thread, no lock of ours held: only notes the update (or disconnect). */
static void on_view_update(void *user)
{
    stagemap *m = user;
    pthread_mutex_lock(&m->view_lock);
    m->view_updates++;
    pthread_cond_broadcast(&m->view_changed);
    pthread_mutex_unlock(&m->view_lock);
}

/* Whether a view array of the worker is one this run (rq; NULL: any run) can use: 1 yes (p holds it); 0 not this
 * run's (detected with other settings: a view from before the run's settings arrived), why says so; -1 never
 * usable, with why: a malformed view (view_parse), one with too many features, or of frames of another size
 * than the camera's. */
static int view_check(stagemap *m, const stagemap_view_request *rq, const double *a, long n, view_parsed *p,
                      char *why, size_t len)
{
    char what[200];
    int parsed = view_parse(a, n, MAX_VIEW_FEATURES, p, what, sizeof what);
    if (parsed == VIEW_MALFORMED) return error_set(why, len, "malformed view: %s", what);
    if (rq && (p->diameter != rq->diameter || p->mass_factor != rq->mass_factor))
        return snprintf(why, len, "views detected with diameter %d, mass factor %g (asked %d, %g)", p->diameter,
                        p->mass_factor, rq->diameter, rq->mass_factor), 0;
    if (parsed == VIEW_TOO_MANY && !rq) return 0;      /* whether too many depends on the settings */
    if (parsed == VIEW_TOO_MANY)
        return error_set(why, len, "a view with %s: raise Reloc:MassFactor or Reloc:LiveDiameter", what);
    int w, h;
    if (camera_frame_size(m->worker_camera, &w, &h))
        return error_set(why, len, "a view of a %dx%d frame, but %s has made no frame", p->width, p->height,
                         m->camera_port);
    if (p->width != w || p->height != h)
        return error_set(why, len, "a view of a %dx%d frame, but %s makes %dx%d frames", p->width, p->height,
                         m->camera_port, w, h);
    return 1;
}

static int take_from_worker(stagemap *m, const stagemap_view_request *rq, stagemap_view *v, char *err, size_t errlen)
{
    if (!m->worker_view) return error_set(err, errlen, "relocalization's worker: %sView_RBV: no channel", m->worker);
    double deadline = time_monotonic() + FRAME_TIMEOUT_S, last_id = -1;
    int seen_after = 0;
    long cap = VIEW_HEAD + 2L * MAX_VIEW_FEATURES, n = 0;
    double *a = xmalloc((size_t)cap * sizeof *a);
    int rc = -1;
    char why[256] = "no view yet";
    while (time_monotonic() < deadline && !stagemap_aborting(m)) {
        unsigned long seen = view_updates(m);
        char away[DB_NAME_SIZE + 64];
        int got = db_ca_channel_get_array(m->worker_view, a, cap, &n, away, sizeof away);
        if (got < 0) {                          /* the worker is away: the run fails with the reason */
            error_set(err, errlen, "relocalization's worker: %s", away);
            goto out;
        }
        if (got == 0 && n >= 1 && a[VIEW_UNIQUE_ID] != last_id) {
            last_id = a[VIEW_UNIQUE_ID];
            view_parsed p;
            int usable = view_check(m, rq, a, n, &p, why, sizeof why);
            if (usable < 0) {                   /* as for a worker away: the run fails (logged) with the reason */
                error_set(err, errlen, "relocalization's worker: %sView_RBV: %s", m->worker, why);
                goto out;
            }
            struct timespec stamp = {(time_t)p.stamp, (long)((p.stamp - floor(p.stamp)) * 1e9)};
            if (usable && frame_fits(rq, stamp, p.stage_x, p.stage_y, &seen_after)) {
                v->width = p.width, v->height = p.height;
                v->sharpness = p.sharpness;
                v->unique_id = (uint64_t)p.unique_id;
                v->features.n = 0;
                for (int i = 0; i < p.count; i++) view_features_add(&v->features, p.xy[i][0], p.xy[i][1]);
                rc = 0;
                goto out;
            }
            if (usable)
                snprintf(why, sizeof why, "views of frames exposed before the move or elsewhere (last: frame %.0f "
                         "at (%.2f, %.2f) um)", p.unique_id, p.stage_x, p.stage_y);
        }
        wait_update(m, seen, fmin(0.5, fmax(0, deadline - time_monotonic())));
    }
    error_set(err, errlen, "no view from the worker %s of a frame exposed after the move within %.0f s: %s (is the "
              "camera acquiring and publishing, the worker's features stage enabled?)", m->worker, FRAME_TIMEOUT_S,
              why);
out:
    free(a);
    return rc;
}

int stagemap_view_take(stagemap *m, const stagemap_view_request *rq, stagemap_view *v, char *err, size_t errlen)
{
    return m->worker[0] ? take_from_worker(m, rq, v, err, errlen) : take_local(m, rq, v, err, errlen);
}

void stagemap_view_free(stagemap_view *v)
{
    view_features_free(&v->features);
    free(v->img);
    memset(v, 0, sizeof *v);
}

/* The worker's records (after its prefix), in the order of worker_view, worker_diameter, worker_mass_factor. */
static const char *const worker_channel[3] = {"View_RBV", "Diameter", "MassFactor"};

/* The worker's channels that are not connected (or cannot be read), by name with the reason: 0 when none. */
static int worker_missing(stagemap *m, char *err, size_t errlen)
{
    db_ca_channel *channels[] = {m->worker_view, m->worker_diameter, m->worker_mass_factor};
    size_t len = 0;
    err[0] = 0;
    for (int i = 0; i < 3; i++) {
        char why[DB_NAME_SIZE + 64];
        long n;
        double ignored;
        int missing = 1;
        if (!channels[i]) snprintf(why, sizeof why, "%s%s: no channel", m->worker, worker_channel[i]);
        else if (i == 0) missing = db_ca_channel_get_array(channels[i], &ignored, 1, &n, why, sizeof why) < 0;
        else missing = db_ca_channel_get(channels[i], &ignored, NULL, 0, why, sizeof why) < 0;
        if (missing && len < errlen)
            len += (size_t)snprintf(err + len, errlen - len, "%s%s", len ? "; " : "relocalization's worker: ", why);
    }
    return len ? -1 : 0;
}

/* Whether the worker's newest view (if any) could ever be used: not malformed, of the camera's frame size. */
static int worker_view_sound(stagemap *m, char *err, size_t errlen)
{
    long cap = VIEW_HEAD + 2L * MAX_VIEW_FEATURES, n = 0;
    double *a = xmalloc((size_t)cap * sizeof *a);
    char away[DB_NAME_SIZE + 64], why[256];
    view_parsed p;
    int rc = 0;
    if (db_ca_channel_get_array(m->worker_view, a, cap, &n, away, sizeof away) == 0 && n > 0 &&
        view_check(m, NULL, a, n, &p, why, sizeof why) < 0)
        rc = error_set(err, errlen, "relocalization's worker: %sView_RBV: %s", m->worker, why);
    free(a);
    return rc;
}

int stagemap_view_available(stagemap *m, char *err, size_t errlen)
{
    if (m->worker[0]) return worker_missing(m, err, errlen) || worker_view_sound(m, err, errlen) ? -1 : 0;
    if (!m->frames)
        return error_set(err, errlen, "no camera for relocalization (stagemapCamera or stagemapWorker in st.cmd)");
    return 0;
}

int stagemap_view_settings(stagemap *m, int diameter, double mass_factor, char *err, size_t errlen)
{
    if (!m->worker[0]) return 0;
    char why[256];
    if (db_ca_channel_put_wait(m->worker_diameter, diameter, SETTINGS_TIMEOUT_S, why, sizeof why) ||
        db_ca_channel_put_wait(m->worker_mass_factor, mass_factor, SETTINGS_TIMEOUT_S, why, sizeof why))
        return error_set(err, errlen, "relocalization's worker refused its settings: %s", why);
    return 0;
}

void stagemap_view_bind(stagemap *m)
{
    if (!m->worker[0]) return;
    db_ca_channel **channels[] = {&m->worker_view, &m->worker_diameter, &m->worker_mass_factor};
    for (int i = 0; i < 3; i++) {
        char name[DB_NAME_SIZE + 16];
        snprintf(name, sizeof name, "%s%s", m->worker, worker_channel[i]);
        *channels[i] = db_ca_channel_open(name, m->port_name);
        if (!*channels[i]) log_error("stagemap", "%s: cannot open the worker's channel %s", m->port_name, name);
    }
    if (m->worker_view) db_ca_channel_watch(m->worker_view, on_view_update, m);
    log_info("stagemap", "%s: relocalization takes its views from the worker %s", m->port_name, m->worker);
}

static int has_source(stagemap *m, const char *port, char *err, size_t errlen)
{
    if (m->frames || m->worker[0])
        return error_set(err, errlen, "%s takes its views from %s already", port,
                         m->frames ? m->camera_port : m->worker);
    return 0;
}

/* stagemapCamera(PORT, CAMERA_PORT) */
static int camera_cmd(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    stagemap *m = stagemap_find(argv[1]);
    if (!m) return error_set(err, errlen, "no stage map port %s (stagemapConfigure first)", argv[1]);
    camera *cam = camera_find(argv[2]);
    if (!cam) return error_set(err, errlen, "no camera port %s (cameraConfigure first)", argv[2]);
    if (has_source(m, argv[1], err, errlen)) return -1;
    m->frames = frame_ring_add_consumer(camera_ring(cam), "relocalization", FRAMES_NEWEST);
    if (!m->frames) return error_set(err, errlen, "camera %s takes no more consumers", argv[2]);
    str_copy(m->camera_port, argv[2], sizeof m->camera_port);
    return 0;
}

/* stagemapWorker(PORT, PREFIX, CAMERA_PORT) */
static int worker_cmd(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    stagemap *m = stagemap_find(argv[1]);
    if (!m) return error_set(err, errlen, "no stage map port %s (stagemapConfigure first)", argv[1]);
    camera *cam = camera_find(argv[3]);
    if (!cam)
        return error_set(err, errlen, "no camera port %s (cameraConfigure first: the camera whose frames the worker "
                         "analyses)", argv[3]);
    if (has_source(m, argv[1], err, errlen)) return -1;
    size_t len = strlen(argv[2]);
    if (len == 0 || len + sizeof "MassFactor" > DB_NAME_SIZE)
        return error_set(err, errlen, "PREFIX must name the worker's features records, e.g. W:feat1: (at most %zu "
                         "characters)", DB_NAME_SIZE - sizeof "MassFactor");
    str_copy(m->worker, argv[2], sizeof m->worker);
    str_copy(m->camera_port, argv[3], sizeof m->camera_port);
    m->worker_camera = cam;
    return 0;
}

void stagemap_view_register(void)
{
    shell_register("stagemapCamera", "stagemapCamera(PORT, CAMERA_PORT)  relocalization on this IOC's frames", 2, 2,
                   camera_cmd);
    shell_register("stagemapWorker", "stagemapWorker(PORT, PREFIX, CAMERA_PORT)  relocalization's views from a "
                   "worker IOC, of CAMERA_PORT's frames", 3, 3, worker_cmd);
}
