/* parallel.c -- pthread workers pulling items from an atomic counter (see parallel.h). */
#include "core/parallel/parallel.h"
#include "core/base/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <unistd.h>

typedef struct loop {
    atomic_int next;
    int count;
    parallel_fn fn;
    void *ctx;
} loop;

typedef struct worker_arg {
    loop *l;
    int id;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *w = arg;
    for (;;) {
        int item = atomic_fetch_add(&w->l->next, 1);
        if (item >= w->l->count) break;
        w->l->fn(w->l->ctx, item, w->id);
    }
    return NULL;
}

int parallel_workers(int count, int threads)
{
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (threads > count) threads = count;
    return threads < 1 ? 1 : threads;
}

void parallel_for(int count, int threads, parallel_fn fn, void *ctx)
{
    if (count <= 0) return;
    int n = parallel_workers(count, threads);
    loop l = {.count = count, .fn = fn, .ctx = ctx};
    atomic_init(&l.next, 0);
    worker_arg *args = xcalloc((size_t)n, sizeof *args);
    pthread_t *tids = xcalloc((size_t)n, sizeof *tids);
    int started = 1;
    for (int i = 0; i < n; i++) args[i] = (worker_arg){&l, i};
    /* Worker 0 is the calling thread; if a thread cannot be started the others simply take more items. */
    for (int i = 1; i < n; i++) {
        if (pthread_create(&tids[i], NULL, worker_main, &args[i]) != 0) break;
        started++;
    }
    worker_main(&args[0]);
    for (int i = 1; i < started; i++) pthread_join(tids[i], NULL);
    free(tids);
    free(args);
}
