/* team.c -- the worker threads a detection context keeps for the whole stream, so that a frame is split over
 * the cores without starting a thread or allocating anything per frame (core/parallel starts its threads per
 * loop). The thread that owns the ctx runs a job's items too, as worker 0; helpers are workers 1..size-1.
 *
 * Locking: everything in the team but `next` is written under `lock`. A job is published by bumping
 * `generation`; each helper runs items from the atomic counter `next` until none is left, then decrements
 * `busy`; team_run returns once `busy` is 0, so the job's data (on the caller's side) outlives its use. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/base/base.h"
#include "core/parallel/parallel.h"
#include "kernels/detection/detection_internal.h"

struct locate_team {
    int size;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    long generation;          /* jobs published so far */
    int busy;                 /* helpers not yet finished with the current job */
    int quit;
    team_fn fn;
    void *arg;
    int count;
    atomic_int next;          /* the next item of the current job */
};

typedef struct helper_arg {
    locate_team *team;
    int id;
} helper_arg;

static void run_items(locate_team *t, team_fn fn, void *arg, int count, int worker)
{
    for (int item; (item = atomic_fetch_add(&t->next, 1)) < count;) fn(arg, item, worker);
}

static void *helper_main(void *p)
{
    helper_arg *h = p;
    locate_team *t = h->team;
    int id = h->id;
    free(h);
    long seen = 0;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->quit && t->generation == seen) pthread_cond_wait(&t->start, &t->lock);
        if (t->quit) break;
        seen = t->generation;
        team_fn fn = t->fn;
        void *arg = t->arg;
        int count = t->count;
        pthread_mutex_unlock(&t->lock);
        run_items(t, fn, arg, count, id);
        pthread_mutex_lock(&t->lock);
        if (--t->busy == 0) pthread_cond_signal(&t->done);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

locate_team *team_create(int threads)
{
    locate_team *t = xcalloc(1, sizeof *t);
    t->size = parallel_workers(LOCATE_MAX_THREADS, threads);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->start, NULL);
    pthread_cond_init(&t->done, NULL);
    atomic_init(&t->next, 0);
    t->threads = xcalloc((size_t)t->size, sizeof *t->threads);
    for (int i = 1; i < t->size; i++) {
        helper_arg *h = xmalloc(sizeof *h);
        *h = (helper_arg){t, i};
        if (pthread_create(&t->threads[i], NULL, helper_main, h) != 0) {   /* fewer helpers: still correct */
            free(h);
            t->size = i;
            break;
        }
    }
    return t;
}

int team_size(const locate_team *t) { return t->size; }

void team_run(locate_team *t, team_fn fn, void *arg, int count)
{
    atomic_store(&t->next, 0);
    if (t->size == 1 || count <= 1) {
        run_items(t, fn, arg, count, 0);
        return;
    }
    pthread_mutex_lock(&t->lock);
    t->fn = fn;
    t->arg = arg;
    t->count = count;
    t->busy = t->size - 1;
    t->generation++;
    pthread_cond_broadcast(&t->start);
    pthread_mutex_unlock(&t->lock);
    run_items(t, fn, arg, count, 0);
    pthread_mutex_lock(&t->lock);
    while (t->busy) pthread_cond_wait(&t->done, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

void team_free(locate_team *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->lock);
    t->quit = 1;
    pthread_cond_broadcast(&t->start);
    pthread_mutex_unlock(&t->lock);
    for (int i = 1; i < t->size; i++) pthread_join(t->threads[i], NULL);
    pthread_cond_destroy(&t->start);
    pthread_cond_destroy(&t->done);
    pthread_mutex_destroy(&t->lock);
    free(t->threads);
    free(t);
}
