/* parallel.h -- a parallel loop over independent work items for the analysis kernels (XANES pixels, tomography
 * slices). Workers are plain pthreads started for the loop and joined before it returns; items are handed out
 * through one atomic counter, so the only shared state is that counter and whatever the caller's function
 * writes, which must be disjoint per item (the caller documents it). No global state.
 */
#ifndef RELOC_PARALLEL_H
#define RELOC_PARALLEL_H

/* fn(ctx, item, worker) for item = 0..count-1, in any order, on up to `threads` threads (0: one per online CPU;
 * never more threads than items). worker is 0..threads-1, for per-worker scratch space. */
typedef void (*parallel_fn)(void *ctx, int item, int worker);
void parallel_for(int count, int threads, parallel_fn fn, void *ctx);
/* The number of workers parallel_for will use for `count` items with `threads` requested. */
int parallel_workers(int count, int threads);

#endif
