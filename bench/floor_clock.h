/* floor_clock.h -- the clock of the bench's floor programs (fft_floor.c, page_floor.c, read_floor.c): standalone
 * executables built by the bench scripts without libreloc, so they share this header instead of its timing. */
#ifndef RELOC_BENCH_FLOOR_CLOCK_H
#define RELOC_BENCH_FLOOR_CLOCK_H

#include <time.h>

static inline double seconds(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#endif
