#include "CKernels.h"

// No fused multiply-adds: every width then rounds exactly as the others and as the Swift
// loops they replace, so a seed gives the same run on any x86 CPU's clone.
#pragma clang fp contract(off)

#if defined(__x86_64__) && defined(__linux__)
#define METARL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define METARL_CLONES
#endif

// e^x by the Cephes expf polynomial after Cody–Waite range reduction, and tanh as an odd
// polynomial for |x| < 0.625, 1 − 2/(e^{2|x|} + 1) elsewhere; both branches are computed
// and one selected, so the loop vectorises. Mirrors fastExp/fastTanh in FastMath.swift.
static inline float exp_approx(float x) {
    x = x < -87.33654f ? -87.33654f : (x > 88.0f ? 88.0f : x);
    float shifted = x * 1.44269504f + 12582912.0f;
    float n = shifted - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.1219444e-4f;
    float p = 1.98756915e-4f;
    p = p * r + 1.39819995e-3f;
    p = p * r + 8.33345191e-3f;
    p = p * r + 4.16657959e-2f;
    p = p * r + 1.66666655e-1f;
    p = p * r + 5.00000012e-1f;
    float e = p * r * r + r + 1.0f;
    union { float f; int i; } bits = { shifted }, scale;
    scale.i = (bits.i - 0x4B400000 + 127) << 23;
    return e * scale.f;
}

METARL_CLONES
void metarl_tanh_f32(const float *x, float *y, long n) {
    for (long i = 0; i < n; i++) {
        float v = x[i], a = v < 0 ? -v : v, z = v * v;
        float p = -5.70498872e-3f;
        p = p * z + 2.06390888e-2f;
        p = p * z - 5.37397156e-2f;
        p = p * z + 1.33314422e-1f;
        p = p * z - 3.33332819e-1f;
        float small = p * z * v + v;
        float large = 1.0f - 2.0f / (exp_approx(2.0f * a) + 1.0f);
        float signedLarge = v < 0 ? -large : large;
        y[i] = a < 0.625f ? small : signedLarge;
    }
}

METARL_CLONES
void metarl_multiply_add_f32(float *restrict y, const float *restrict s, const float *restrict a,
                             const float *restrict b, long n) {
    for (long i = 0; i < n; i++) y[i] = y[i] * s[i] + a[i] * b[i];
}
