/* stagemap_move.c -- "move to pixel" and "centre particle N on the beam": the target is checked (enable,
 * motors present, soft limits) when the request is written, then the port's worker thread moves the stage
 * through the one move path (drivers/motion: planned again from the records at the moment of the move,
 * put-callbacks on VAL) and completes the request with the motors' verdict. The worker also runs relocalization and
 * loads layer geometry files, so that no file I/O or waiting happens under the db lock. */
#include "live/stagemap/stagemap_internal.h"

#include "core/base/base.h"

#include <math.h>
#include <string.h>

/* [db lock] Target (um) of a request, checked against the soft limits. */
static int move_target(stagemap *m, const param_write *w, double target[2], char *err, size_t errlen)
{
    param_port *p = m->port;
    affine2d t;
    double u, v;
    int layer;
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
    motion_plan plan;
    return motion_plan_move(m->stage, target, 0, &plan, err, errlen);
}

int stagemap_move_write(stagemap *m, const param_write *w, char *err, size_t errlen)
{
    param_port *p = m->port;
    if ((w->index != P_MOVE_GO && w->index != P_MOVE_CENTRE) || !w->ival) return 0;
    double target[2];
    int rc = 0;
    if (!param_get_int(p, P_MOVE_ENABLE)) rc = error_set(err, errlen, "moves are disabled (Move:Enable = 0)");
    else if (motion_stage_available(m->stage, err, errlen)) rc = -1;
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

/* Polled while the worker waits for a move: Reloc:Abort or the IOC stopping. */
static int move_should_stop(void *user)
{
    stagemap *m = user;
    pthread_mutex_lock(&m->lock);
    int stop = m->abort || m->stopping;
    pthread_mutex_unlock(&m->lock);
    return stop;
}

int stagemap_move_to(stagemap *m, const double target_um[2], char *err, size_t errlen)
{
    if (motion_move(m->stage, target_um, 0, move_should_stop, m, err, errlen) == 0) return 0;
    pthread_mutex_lock(&m->lock);
    int aborted = m->abort;
    pthread_mutex_unlock(&m->lock);
    return aborted ? error_set(err, errlen, "aborted") : -1;
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
