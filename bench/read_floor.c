/* read_floor.c -- the physical floor under any kernel that must look at every sample of a large float32 array
 * once (the XANES fit reads every energy of every voxel: the mean absorption and the summed spectrum need all of
 * them): summing the array, split over THREADS threads in contiguous parts, with the array on transparent huge
 * pages as reloc's large arrays are. Nothing is computed per sample but one add, so the time is the memory's.
 * Built and run by bench/bench_xanes.py (not part of libreloc):
 *
 *   read_floor COUNT REPEAT THREADS   ->   {"count": N, "threads": T, "cpu_ms": ..., "wall_ms": ..., "gb_s": ...}
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "floor_clock.h"

typedef struct part {
    const float *data;
    size_t count;
    double sum;
} part;

/* Four independent vector accumulators of 16 floats (GCC vector extensions): the adds are vector instructions and
 * no add waits for the previous one, so the loop is as fast as the loads can come. */
typedef float floats16 __attribute__((vector_size(16 * sizeof(float))));

static void *sum_part(void *arg)
{
    part *p = arg;
    floats16 acc[4] = {{0}};
    size_t i = 0;
    for (; i + 64 <= p->count; i += 64)
        for (int k = 0; k < 4; k++) {
            floats16 v;
            memcpy(&v, p->data + i + 16 * k, sizeof v);
            acc[k] += v;
        }
    double s = 0;
    for (; i < p->count; i++) s += p->data[i];
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 16; l++) s += acc[k][l];
    p->sum = s;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: read_floor COUNT REPEAT THREADS\n");
        return 2;
    }
    size_t count = strtoull(argv[1], NULL, 10);
    int repeat = atoi(argv[2]), threads = atoi(argv[3]);
    if (count < 1024 || repeat < 1 || threads < 1 || threads > 64) return 2;
    size_t bytes = (count * sizeof(float) + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
    float *data;
    if (posix_memalign((void **)&data, 2u << 20, bytes)) return 1;
    madvise(data, bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < count; i++) data[i] = (float)(i % 251) / 251.0f;
    part parts[64];
    pthread_t tid[64];
    double best_cpu = 1e30, best_wall = 1e30, total = 0;
    for (int r = 0; r < repeat; r++) {
        double c0 = seconds(CLOCK_PROCESS_CPUTIME_ID), w0 = seconds(CLOCK_MONOTONIC);
        for (int t = 0; t < threads; t++) {
            size_t lo = count * (size_t)t / (size_t)threads, hi = count * (size_t)(t + 1) / (size_t)threads;
            parts[t] = (part){data + lo, hi - lo, 0};
            if (pthread_create(&tid[t], NULL, sum_part, &parts[t])) return 1;
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            total += parts[t].sum;
        }
        double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0, wall = seconds(CLOCK_MONOTONIC) - w0;
        if (cpu < best_cpu) best_cpu = cpu;
        if (wall < best_wall) best_wall = wall;
    }
    /* the sums are printed so that the reads cannot be optimised away */
    printf("{\"count\": %zu, \"threads\": %d, \"cpu_ms\": %.3f, \"wall_ms\": %.3f, \"gb_s\": %.2f, \"check\": %.6g}\n",
           count, threads, 1e3 * best_cpu, 1e3 * best_wall, (double)count * sizeof(float) / best_wall * 1e-9,
           total / repeat);
    free(data);
    return 0;
}
