/* parallel.h -- a parallel loop over independent work items for the analysis kernels (XANES pixels, tomography
 * slices). Workers are plain pthreads started for the loop and joined before it returns; items are handed out
 * through one atomic counter, so the only shared state is that counter and whatever the caller's function
 * writes, which must be disjoint per item (the caller documents it). No global state.
 */
#ifndef RELOC_PARALLEL_H
#define RELOC_PARALLEL_H

#include <stdatomic.h>

/* fn(ctx, item, worker) for item = 0..count-1, in any order, on up to `threads` threads (0: one per online CPU;
 * never more threads than items). worker is 0..threads-1, for per-worker scratch space. */
typedef void (*parallel_fn)(void *ctx, int item, int worker);
void parallel_for(int count, int threads, parallel_fn fn, void *ctx);
/* The number of workers parallel_for will use for `count` items with `threads` requested. */
int parallel_workers(int count, int threads);

/* A barrier for a fixed number of threads that meet often, e.g. after every row of a sweep (tens of microseconds
 * of work): a thread that arrives first spins for a while (about 0.1 ms) and only then sleeps, because waking a
 * sleeping thread cost ~35 us on this project's VMs, as long as the work between two meetings. Shared by the
 * threads that meet at it, through its atomics only; initialised before they start. */
typedef struct parallel_barrier {
    int parties;
    atomic_uint arrived;
    atomic_uint generation; /* bumped by the last to arrive; sleepers wait on it (a futex) */
    atomic_int sleeping;    /* set once a thread has slept: from then on every release also wakes */
} parallel_barrier;
void parallel_barrier_init(parallel_barrier *b, int parties);
/* Returns once all `parties` threads have called it for this round; what each wrote before it is visible to all
 * after it. */
void parallel_barrier_wait(parallel_barrier *b);

#endif
