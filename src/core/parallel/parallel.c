/* parallel.c -- pthread workers pulling items from an atomic counter, and a spinning barrier (see parallel.h). */
#include "core/parallel/parallel.h"
#include "core/base/base.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
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

/* Spins before a waiting thread sleeps: ~0.1 ms with x86's pause (65-140 cycles). */
#define BARRIER_SPINS 2048

void parallel_barrier_init(parallel_barrier *b, int parties)
{
    b->parties = parties;
    atomic_init(&b->arrived, 0);
    atomic_init(&b->generation, 0);
    atomic_init(&b->sleeping, 0);
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

void parallel_barrier_wait(parallel_barrier *b)
{
    unsigned round = atomic_load(&b->generation);
    if (atomic_fetch_add(&b->arrived, 1) == (unsigned)b->parties - 1) {
        atomic_store(&b->arrived, 0);                  /* before the release: the next round counts from 0 */
        atomic_store(&b->generation, round + 1);
        if (atomic_load(&b->sleeping)) syscall(SYS_futex, &b->generation, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        return;
    }
    for (int spin = 0; spin < BARRIER_SPINS; spin++) {
        if (atomic_load(&b->generation) != round) return;
        cpu_relax();
    }
    /* sleeping is set before generation is read again, and the releaser stores generation before it reads
     * sleeping (all sequentially consistent): either this thread sees the release, or the releaser wakes it; the
     * futex sleeps only while generation still holds `round`. */
    atomic_store(&b->sleeping, 1);
    while (atomic_load(&b->generation) == round)
        syscall(SYS_futex, &b->generation, FUTEX_WAIT_PRIVATE, round, NULL, NULL, 0);
}
