#include "CKernels.h"

// C ← A·B + beta·C for row-major Float matrices with few rows in A, reading B where it lies.
//
// The recurrent sequences multiply a batch of states (m ≈ 60 rows) by the same hidden
// weight (256 × 768) once per step. A general sgemm copies ("packs") B into its own
// layout on every call, which for m this small costs as much as a third of the product.
// Here B is read in place: a register tile of MR rows × NR columns of C accumulates
// A[i, k]·B[k, j:j+NR] over all k, with B's row segment loaded once per k and each A
// element broadcast. Columns go panel by panel so that a panel of B (NR·k floats) stays in
// the L2 cache while every row tile passes over it.
//
// Multiply-adds are fused where the CPU has them; the sums run over k in order, one
// accumulator per element, so a given CPU gives the same numbers on every call.
#pragma clang fp contract(fast)

#if defined(__x86_64__) && defined(__linux__)

typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef float v8 __attribute__((vector_size(32), aligned(4)));

// One MR × (V·W) tile, W vectors of V floats per row: acc = A[rows, :]·B[:, cols], then
// C = acc + beta·C. MR and W are compile-time constants at every call site.
#define TILE_BODY(VEC, W)                                                                     \
    VEC acc[MR][W];                                                                           \
    for (int i = 0; i < MR; i++)                                                              \
        for (int w = 0; w < W; w++) acc[i][w] = (VEC){0};                                     \
    for (long p = 0; p < k; p++) {                                                            \
        const float *brow = b + p * ldb;                                                      \
        VEC bv[W];                                                                            \
        for (int w = 0; w < W; w++) bv[w] = *(const VEC *)(brow + w * (long)sizeof(VEC) / 4); \
        for (int i = 0; i < MR; i++) {                                                        \
            float s = a[i * lda + p];                                                         \
            for (int w = 0; w < W; w++) acc[i][w] += s * bv[w];                               \
        }                                                                                     \
    }                                                                                         \
    for (int i = 0; i < MR; i++)                                                              \
        for (int w = 0; w < W; w++) {                                                         \
            VEC *out = (VEC *)(c + i * ldc + w * (long)sizeof(VEC) / 4);                      \
            *out = beta == 0 ? acc[i][w] : acc[i][w] + beta * *out;                           \
        }

#define DEFINE_TILE(NAME, TARGET, VEC, MRV, W)                                                              \
    static inline __attribute__((always_inline, target(TARGET))) void NAME(                                 \
        long k, const float *restrict a, long lda, const float *restrict b, long ldb, float beta,         \
        float *restrict c, long ldc) {                                                                     \
        enum { MR = MRV };                                                                                 \
        TILE_BODY(VEC, W)                                                                                  \
    }

// AVX-512: 6 rows × 64 columns (24 accumulators of 32 registers), then 16-column tails.
DEFINE_TILE(tile512_6x4, "avx512f,fma", v16, 6, 4)
DEFINE_TILE(tile512_5x4, "avx512f,fma", v16, 5, 4)
DEFINE_TILE(tile512_4x4, "avx512f,fma", v16, 4, 4)
DEFINE_TILE(tile512_3x4, "avx512f,fma", v16, 3, 4)
DEFINE_TILE(tile512_2x4, "avx512f,fma", v16, 2, 4)
DEFINE_TILE(tile512_1x4, "avx512f,fma", v16, 1, 4)
DEFINE_TILE(tile512_6x1, "avx512f,fma", v16, 6, 1)
DEFINE_TILE(tile512_1x1, "avx512f,fma", v16, 1, 1)

// AVX2: 6 rows × 16 columns (12 accumulators of 16 registers), then 8-column tails.
DEFINE_TILE(tile256_6x2, "avx2,fma", v8, 6, 2)
DEFINE_TILE(tile256_1x2, "avx2,fma", v8, 1, 2)
DEFINE_TILE(tile256_6x1, "avx2,fma", v8, 6, 1)
DEFINE_TILE(tile256_1x1, "avx2,fma", v8, 1, 1)

__attribute__((target("avx512f,fma")))
static void gemm512(long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                    float beta, float *c, long ldc) {
    long j = 0;
    for (; j + 64 <= n; j += 64) {
        long i = 0;
        for (; i + 6 <= m; i += 6) tile512_6x4(k, a + i * lda, lda, b + j, ldb, beta, c + i * ldc + j, ldc);
        const float *ai = a + i * lda;
        float *ci = c + i * ldc + j;
        switch (m - i) {
        case 5: tile512_5x4(k, ai, lda, b + j, ldb, beta, ci, ldc); break;
        case 4: tile512_4x4(k, ai, lda, b + j, ldb, beta, ci, ldc); break;
        case 3: tile512_3x4(k, ai, lda, b + j, ldb, beta, ci, ldc); break;
        case 2: tile512_2x4(k, ai, lda, b + j, ldb, beta, ci, ldc); break;
        case 1: tile512_1x4(k, ai, lda, b + j, ldb, beta, ci, ldc); break;
        default: break;
        }
    }
    for (; j < n; j += 16) {
        long i = 0;
        for (; i + 6 <= m; i += 6) tile512_6x1(k, a + i * lda, lda, b + j, ldb, beta, c + i * ldc + j, ldc);
        for (; i < m; i++) tile512_1x1(k, a + i * lda, lda, b + j, ldb, beta, c + i * ldc + j, ldc);
    }
}

__attribute__((target("avx2,fma")))
static void gemm256(long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                    float beta, float *c, long ldc) {
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        long i = 0;
        for (; i + 6 <= m; i += 6) tile256_6x2(k, a + i * lda, lda, b + j, ldb, beta, c + i * ldc + j, ldc);
        for (; i < m; i++) tile256_1x2(k, a + i * lda, lda, b + j, ldb, beta, c + i * ldc + j, ldc);
    }
    for (; j < n; j += 8) {
        long i = 0;
        for (; i + 6 <= m; i += 6) tile256_6x1(k, a + i * lda, lda, b + j, ldb, beta, c + i * ldc + j, ldc);
        for (; i < m; i++) tile256_1x1(k, a + i * lda, lda, b + j, ldb, beta, c + i * ldc + j, ldc);
    }
}

int metarl_small_gemm_width(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
    return 0;
}

int metarl_small_gemm_f32(int width, long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                          float beta, float *c, long ldc) {
    if ((width != 16 && width != 8) || width > metarl_small_gemm_width() || n % width != 0 || m <= 0 || n <= 0)
        return 0;
    if (k == 0) {
        for (long i = 0; i < m; i++)
            for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
        return 1;
    }
    if (width == 16) gemm512(m, n, k, a, lda, b, ldb, beta, c, ldc);
    else gemm256(m, n, k, a, lda, b, ldb, beta, c, ldc);
    return 1;
}

#else

int metarl_small_gemm_width(void) { return 0; }

int metarl_small_gemm_f32(int width, long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                          float beta, float *c, long ldc) {
    (void)width; (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
    return 0;
}

#endif
