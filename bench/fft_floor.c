/* fft_floor.c -- the physical floor under registering a frame against a stored reference: one float32
 * real-to-complex FFT of the frame and one complex-to-real inverse, with FFTW_MEASURE plans, nothing else.
 * Built and run by bench/bench_registration.py (not part of libreloc):
 *
 *   fft_floor SIDE REPEAT THREADS   ->   {"side": N, "threads": T, "cpu_ms": ..., "wall_ms": ...}
 */
#include <fftw3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "floor_clock.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: fft_floor SIDE REPEAT THREADS\n");
        return 2;
    }
    int n = atoi(argv[1]), repeat = atoi(argv[2]), threads = atoi(argv[3]);
    if (n < 8 || repeat < 1 || threads < 1) return 2;
    fftwf_init_threads();
    fftwf_plan_with_nthreads(threads);
    float *real = fftwf_alloc_real((size_t)n * n);
    fftwf_complex *spec = fftwf_alloc_complex((size_t)n * (n / 2 + 1));
    fftwf_plan fwd = fftwf_plan_dft_r2c_2d(n, n, real, spec, FFTW_MEASURE | FFTW_DESTROY_INPUT);
    fftwf_plan inv = fftwf_plan_dft_c2r_2d(n, n, spec, real, FFTW_MEASURE | FFTW_DESTROY_INPUT);
    for (size_t i = 0; i < (size_t)n * n; i++) real[i] = (float)(i % 251) / 251.0f;
    double c0 = seconds(CLOCK_PROCESS_CPUTIME_ID), w0 = seconds(CLOCK_MONOTONIC);
    for (int i = 0; i < repeat; i++) {
        fftwf_execute(fwd);
        fftwf_execute(inv);
    }
    double cpu = (seconds(CLOCK_PROCESS_CPUTIME_ID) - c0) / repeat, wall = (seconds(CLOCK_MONOTONIC) - w0) / repeat;
    printf("{\"side\": %d, \"threads\": %d, \"cpu_ms\": %.3f, \"wall_ms\": %.3f}\n", n, threads, 1e3 * cpu, 1e3 * wall);
    fftwf_destroy_plan(fwd);
    fftwf_destroy_plan(inv);
    fftwf_free(real);
    fftwf_free(spec);
    return 0;
}
