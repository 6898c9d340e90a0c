/* page_floor.c -- the floor under any kernel that writes its result into new memory: a one-shot process gets
 * its output pages from the kernel, which zeroes each one on first touch. Allocates MAPS arrays of COUNT doubles
 * as reloc's large maps are (2 MiB aligned, MADV_HUGEPAGE: xmalloc_large) and writes one byte per 4 KiB page, so
 * the time is the page faults' alone. On bare metal this is a memory-bandwidth figure (zeroing); on a virtual
 * machine it also holds the hypervisor's own first touch. Built and run by bench/bench_xrf.py (not part of
 * libreloc):
 *
 *   page_floor COUNT MAPS   ->   {"count": N, "maps": M, "megabytes": ..., "cpu_ms": ..., "wall_ms": ...}
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "floor_clock.h"

#define HUGE_PAGE_BYTES (2u << 20)

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: page_floor COUNT MAPS\n");
        return 2;
    }
    size_t count = strtoull(argv[1], NULL, 10);
    int maps = atoi(argv[2]);
    if (count < 1 || maps < 1 || maps > 64) return 2;
    size_t bytes = (count * sizeof(double) + HUGE_PAGE_BYTES - 1) / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    volatile char *map[64];
    double c0 = seconds(CLOCK_PROCESS_CPUTIME_ID), w0 = seconds(CLOCK_MONOTONIC);
    for (int m = 0; m < maps; m++) {
        void *p = NULL;
        if (posix_memalign(&p, HUGE_PAGE_BYTES, bytes) != 0) return 1;
        (void)madvise(p, bytes, MADV_HUGEPAGE);
        map[m] = p;
        for (size_t at = 0; at < count * sizeof(double); at += 4096) map[m][at] = 1;
    }
    double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0, wall = seconds(CLOCK_MONOTONIC) - w0;
    printf("{\"count\": %zu, \"maps\": %d, \"megabytes\": %.1f, \"cpu_ms\": %.3f, \"wall_ms\": %.3f}\n", count, maps,
           maps * count * sizeof(double) / 1e6, 1e3 * cpu, 1e3 * wall);
    for (int m = 0; m < maps; m++) free((void *)map[m]);
    return 0;
}
