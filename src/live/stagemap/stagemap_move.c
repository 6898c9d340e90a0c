/* stagemap_move.c -- "move to pixel" and "centre particle N on the beam": the target is checked (enable,
 * motors present, soft limits) when the request is written, then the port's worker thread moves two motors
 * (the piezo stages when the target is within their range, else the coarse ones) with put-callbacks on their
 * VAL fields and completes the request when both moves are done. The worker also runs relocalization and
 * loads layer geometry files, so that no file I/O or waiting happens under the db lock. */
#include "live/stagemap/stagemap_internal.h"

#include "core/base/base.h"

#include <math.h>
#include <string.h>

static int within(const stagemap *m, int axis, double um)
{
    axis_limits lim = stagemap_axis_limits(m, axis);
    return lim.low == lim.high || (um >= lim.low && um <= lim.high);
}

int stagemap_plan_move(const stagemap *m, const double target_um[2], int axes[2], double egu[2], char *err,
                       size_t errlen)
{
    double total[2], fine[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        if (!isfinite(target_um[i])) return error_set(err, errlen, "the target is not a finite position");
        if (stagemap_axis_position(m, i, &total[i])) return error_set(err, errlen, "motors unavailable");
        if (m->axis[2 + i].valid) {
            double coarse;
            long n = 1;
            db_get(&m->axis[i].rbv, DBR_DOUBLE, &coarse, &n);
            fine[i] = total[i] - coarse * m->axis[i].um_per_egu;
        }
    }
    int piezo = m->axis[2].valid && m->axis[3].valid;
    for (int i = 0; i < 2 && piezo; i++) piezo = within(m, 2 + i, fine[i] + target_um[i] - total[i]);
    for (int i = 0; i < 2; i++) {
        axes[i] = piezo ? 2 + i : i;
        double um = piezo ? fine[i] + target_um[i] - total[i] : target_um[i] - fine[i];
        if (!within(m, axes[i], um)) {
            axis_limits lim = stagemap_axis_limits(m, axes[i]);
            return error_set(err, errlen, "move refused: %s would go to %.3f um, outside its soft limits %.3f..%.3f um",
                             m->axis[axes[i]].record, um, lim.low, lim.high);
        }
        egu[i] = um / m->axis[axes[i]].um_per_egu;
    }
    return 0;
}

/* [db lock] Target (um) of a request, checked against the soft limits. */
static int move_target(stagemap *m, const param_write *w, double target[2], char *err, size_t errlen)
{
    param_port *p = m->port;
    affine2d t;
    double u, v, egu[2];
    int layer, axes[2];
    if (w->index == P_MOVE_CENTRE) {
        long n = param_get_int(p, P_MOVE_PARTICLE);
        if (n < 0 || n >= m->nparticles)
            return error_set(err, errlen, "no particle %ld (the list holds %d)", n, m->nparticles);
        u = m->particle[n][0], v = m->particle[n][1];
        layer = LAYER_REF;
    } else {
        u = param_get_double(p, P_MOVE_PIXEL_X), v = param_get_double(p, P_MOVE_PIXEL_Y);
        layer = (int)param_get_int(p, P_MOVE_LAYER);
    }
    if (stagemap_layer_transform(m, layer, &t, err, errlen)) return -1;
    affine_apply(&t, u, v, &target[0], &target[1]);
    return stagemap_plan_move(m, target, axes, egu, err, errlen);
}

int stagemap_move_write(stagemap *m, const param_write *w, char *err, size_t errlen)
{
    param_port *p = m->port;
    if ((w->index != P_MOVE_GO && w->index != P_MOVE_CENTRE) || !w->ival) return 0;
    double target[2];
    int rc = 0;
    if (!param_get_int(p, P_MOVE_ENABLE)) rc = error_set(err, errlen, "moves are disabled (Move:Enable = 0)");
    else if (!m->axis[0].valid || !m->axis[1].valid) rc = error_set(err, errlen, "motors unavailable");
    else rc = move_target(m, w, target, err, errlen);
    if (!rc) {
        pthread_mutex_lock(&m->lock);
        if (m->job) {
            rc = error_set(err, errlen, "a move or load is already running");
        } else {
            m->job = JOB_MOVE;
            m->job_param = w->index;
            m->target_um[0] = target[0], m->target_um[1] = target[1];
            pthread_cond_broadcast(&m->wake);
        }
        pthread_mutex_unlock(&m->lock);
    }
    if (rc) {
        stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 1, "%s", err);
        return -1;
    }
    param_set_double(p, P_MOVE_TARGET_X, target[0]);
    param_set_double(p, P_MOVE_TARGET_Y, target[1]);
    param_set_int(p, P_MOVE_BUSY, 1);
    stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 0, "moving to (%.3f, %.3f) um", target[0], target[1]);
    return PARAM_ASYNC;
}

/* [db locked] A motor's put-callback completed. */
static void move_done(void *user, int status)
{
    stagemap *m = user;
    pthread_mutex_lock(&m->lock);
    m->moves_pending--;
    if (status != DB_OK) m->move_status = status;
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->lock);
}

/* Worker thread: moves two motors to their targets with put-callbacks and waits for both to finish. An abort
 * (Reloc:Abort) stops them and fails the move. Returns DB_OK or an error. */
static int run_move(stagemap *m, const int axes[2], const double egu[2])
{
    pthread_mutex_lock(&m->lock);
    m->moves_pending = 2;
    m->move_status = DB_OK;
    pthread_mutex_unlock(&m->lock);
    for (int i = 0; i < 2; i++) db_put_notify_start(&m->axis[axes[i]].val, DBR_DOUBLE, &egu[i], 1, move_done, m);
    pthread_mutex_lock(&m->lock);
    int stopped = 0;
    while (m->moves_pending > 0 && !m->stopping) {
        if (m->abort && !stopped) {
            pthread_mutex_unlock(&m->lock);
            const short stop = 1;
            for (int i = 0; i < 2; i++) db_put_field(&m->axis[axes[i]].stop, DBR_SHORT, &stop, 1);
            pthread_mutex_lock(&m->lock);
            stopped = 1;
            continue;
        }
        pthread_cond_wait(&m->wake, &m->lock);
    }
    int status = m->moves_pending > 0 || m->abort ? DB_ERR_FAILED : m->move_status;
    pthread_mutex_unlock(&m->lock);
    return status;
}

int stagemap_move_to(stagemap *m, const double target_um[2], char *err, size_t errlen)
{
    int axes[2];
    double egu[2];
    db_lock();
    int rc = stagemap_plan_move(m, target_um, axes, egu, err, errlen);
    db_unlock();
    if (rc) return -1;
    if (run_move(m, axes, egu) == DB_OK) return 0;
    pthread_mutex_lock(&m->lock);
    int aborted = m->abort;
    pthread_mutex_unlock(&m->lock);
    return error_set(err, errlen, "%s", aborted ? "aborted" : "the move failed");
}

static void *worker(void *arg)
{
    stagemap *m = arg;
    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        if (!m->job) {
            pthread_cond_wait(&m->wake, &m->lock);
            continue;
        }
        int job = m->job, job_param = m->job_param;
        pthread_mutex_unlock(&m->lock);
        char err[512] = "";
        int failed;
        if (job == JOB_MOVE) {
            failed = stagemap_move_to(m, m->target_um, err, sizeof err) != 0;
        } else if (job == JOB_RELOC) {
            failed = stagemap_reloc_run(m, err, sizeof err) != 0;
        } else {
            char path[1024];
            param_get_string(m->port, P_REF_LOAD_PATH, path, sizeof path);
            failed = stagemap_load_geometry(m, path, err, sizeof err) != 0;
        }
        param_set_int(m->port, P_MOVE_BUSY, 0);
        if (failed) stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 1, "%s", err);
        else stagemap_message(m, P_MAP_MESSAGE, P_MAP_STATUS, 0, "%s", job == JOB_MOVE ? "move done" :
                              job == JOB_RELOC ? "relocalization done" : "geometry loaded");
        pthread_mutex_lock(&m->lock);
        m->job = JOB_NONE;
        m->abort = m->paused = 0;
        pthread_mutex_unlock(&m->lock);
        param_post(m->port);
        if (job_param >= 0) param_write_done(m->port, job_param, failed ? -1 : 0);
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

void stagemap_worker_start(stagemap *m)
{
    if (pthread_create(&m->thread, NULL, worker, m) == 0) m->thread_running = 1;
    else log_error("stagemap", "%s: cannot start the worker thread", m->port_name);
}

void stagemap_worker_stop(stagemap *m)
{
    if (!m->thread_running) return;
    pthread_mutex_lock(&m->lock);
    m->stopping = 1;
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    m->thread_running = 0;
}
