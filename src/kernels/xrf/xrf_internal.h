/* xrf_internal.h -- how the XRF kernel files are compiled for speed (private to src/kernels/xrf; include it first).
 *
 * Their row loops are written branch-free over contiguous arrays so that GCC vectorises them: O3 and
 * no-trapping-math (without it, selects between doubles stay branches). Functions marked RELOC_AVX512_AVX2_CLONES
 * (core/base) are also built for AVX-512 and for AVX2 + FMA, and the loader picks the best the CPU has; every caller
 * on one machine runs the same clone, so streaming and batch stay bit-identical. Other compilers build the plain
 * functions. */
#ifndef RELOC_XRF_INTERNAL_H
#define RELOC_XRF_INTERNAL_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#pragma GCC optimize("O3", "no-trapping-math")
#endif

#endif
