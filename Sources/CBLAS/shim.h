#ifndef METARL_CBLAS_SHIM_H
#define METARL_CBLAS_SHIM_H

// Declarations only. OpenBLAS is not linked into the binary: TensorCore sets
// OPENBLAS_CORETYPE for this CPU and then loads the library with dlopen, because
// OpenBLAS reads that variable once, when it is loaded (a linked library is loaded
// before any Swift code can run).
#include <cblas.h>

typedef __typeof__(&cblas_sgemm) metarl_sgemm_fn;
typedef __typeof__(&cblas_dgemm) metarl_dgemm_fn;
typedef __typeof__(&openblas_get_corename) metarl_get_corename_fn;
typedef __typeof__(&openblas_set_num_threads) metarl_set_num_threads_fn;
typedef __typeof__(&openblas_get_num_threads) metarl_get_num_threads_fn;


// glibc's malloc tuning, which Swift's Glibc module does not import (see Storage.swift).
#include <malloc.h>

// One heap for every thread (a thread's own arena is made of 64 MiB heaps that are unmapped
// whenever they empty), no block served by mmap whatever its size (M_MMAP_THRESHOLD cannot
// go above 32 MiB, and a recurrence's saved activations are larger), and the heap's top kept
// up to `trimThreshold` bytes. Returns 1 when glibc took all three settings.
static inline int metarl_keep_large_blocks_in_heap(int trimThreshold) {
    int arena = mallopt(M_ARENA_MAX, 1);
    int mmaps = mallopt(M_MMAP_MAX, 0);
    int trim = mallopt(M_TRIM_THRESHOLD, trimThreshold);
    return arena && mmaps && trim;
}

#endif
