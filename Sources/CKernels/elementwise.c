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
static inline __attribute__((always_inline)) float exp_approx(float x) {
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

static inline __attribute__((always_inline)) float tanh_approx(float v) {
    float a = v < 0 ? -v : v, z = v * v;
    float p = -5.70498872e-3f;
    p = p * z + 2.06390888e-2f;
    p = p * z - 5.37397156e-2f;
    p = p * z + 1.33314422e-1f;
    p = p * z - 3.33332819e-1f;
    float small = p * z * v + v;
    float large = 1.0f - 2.0f / (exp_approx(2.0f * a) + 1.0f);
    float signedLarge = v < 0 ? -large : large;
    return a < 0.625f ? small : signedLarge;
}

static inline __attribute__((always_inline)) float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

METARL_CLONES
void metarl_tanh_f32(const float *x, float *y, long n) {
    for (long i = 0; i < n; i++) y[i] = tanh_approx(x[i]);
}

// ---- The GRU, one row of one step at a time ----
// The Float path of TensorCore's GRUSequence.swift; its Swift loops (used for Double) are the
// reference, written in the same order.

METARL_CLONES
void metarl_gru_forward_row_f32(const float *restrict x, const float *restrict g, const float *restrict h, long n,
                                float *restrict r, float *restrict z, float *restrict candidate, float *restrict hidden,
                                float *restrict y) {
    for (long j = 0; j < n; j++) r[j] = sigmoid_approx(x[j] + g[j]);
    for (long j = 0; j < n; j++) z[j] = sigmoid_approx(x[n + j] + g[n + j]);
    for (long j = 0; j < n; j++) {
        float hiddenTerm = g[2 * n + j];
        float c = tanh_approx(x[2 * n + j] + r[j] * hiddenTerm);
        y[j] = c + z[j] * (h[j] - c);
        candidate[j] = c;
        hidden[j] = hiddenTerm;
    }
}

METARL_CLONES
void metarl_gru_backward_row_f32(const float *restrict dy, const float *restrict hp, const float *restrict r,
                                 const float *restrict z, const float *restrict candidate, const float *restrict hidden,
                                 long n, float *restrict d, float *restrict dx, float *restrict dh) {
    for (long j = 0; j < n; j++) {
        float total = d[j] + dy[j];
        float rj = r[j], zj = z[j], c = candidate[j];
        float dCandidate = total * (1 - zj) * (1 - c * c);
        float dz = total * (hp[j] - c) * zj * (1 - zj);
        float dr = dCandidate * hidden[j] * rj * (1 - rj);
        dx[j] = dr;
        dx[n + j] = dz;
        dx[2 * n + j] = dCandidate;
        dh[j] = dr;
        dh[n + j] = dz;
        dh[2 * n + j] = dCandidate * rj;
        d[j] = total * zj;
    }
}

METARL_CLONES
void metarl_multiply_add_f32(float *restrict y, const float *restrict s, const float *restrict a,
                             const float *restrict b, long n) {
    for (long i = 0; i < n; i++) y[i] = y[i] * s[i] + a[i] * b[i];
}

// ---- Layer normalisation and the layer-normalised GRU, one row at a time ----
// The Float paths of TensorCore's LayerNormalization.swift and LayerNormGRUSequence.swift;
// the Swift loops there (used for Double) are the reference, and the sums below add in the
// same order as `Kernels.contiguousSum`/`contiguousDot` (eight partial sums, combined pairwise).

static inline __attribute__((always_inline)) float sum8(const float *x, long n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        s0 += x[j]; s1 += x[j + 1]; s2 += x[j + 2]; s3 += x[j + 3];
        s4 += x[j + 4]; s5 += x[j + 5]; s6 += x[j + 6]; s7 += x[j + 7];
    }
    for (; j < n; j++) s0 += x[j];
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
}

static inline __attribute__((always_inline)) float dot8(const float *x, const float *y, long n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        s0 += x[j] * y[j]; s1 += x[j + 1] * y[j + 1]; s2 += x[j + 2] * y[j + 2]; s3 += x[j + 3] * y[j + 3];
        s4 += x[j + 4] * y[j + 4]; s5 += x[j + 5] * y[j + 5]; s6 += x[j + 6] * y[j + 6]; s7 += x[j + 7] * y[j + 7];
    }
    for (; j < n; j++) s0 += x[j] * y[j];
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
}


static inline __attribute__((always_inline)) float standardise(const float *restrict x, float *restrict u, long n, float epsilon) {
    float mean = sum8(x, n) / (float)n;
    for (long j = 0; j < n; j++) u[j] = x[j] - mean;
    float inverse = 1.0f / __builtin_sqrtf(dot8(u, u, n) / (float)n + epsilon);
    for (long j = 0; j < n; j++) u[j] *= inverse;
    return inverse;
}

/// (du − mean(du) − u·mean(du·u))·inverse in place over n values.
static inline __attribute__((always_inline)) void standardise_backward(float *restrict du, const float *restrict u, long n, float inverse) {
    float mean = sum8(du, n) / (float)n, meanDot = dot8(du, u, n) / (float)n;
    for (long j = 0; j < n; j++) du[j] = inverse * (du[j] - mean - u[j] * meanDot);
}

METARL_CLONES
void metarl_layer_norm_forward_row_f32(const float *restrict x, const float *restrict gain, const float *restrict bias,
                                       const long *segments, long segmentCount, float epsilon,
                                       float *restrict u, float *restrict inverses, float *restrict y) {
    long start = 0;
    for (long k = 0; k < segmentCount; k++) {
        inverses[k] = standardise(x + start, u + start, segments[k], epsilon);
        start += segments[k];
    }
    for (long j = 0; j < start; j++) y[j] = u[j] * gain[j] + bias[j];
}

METARL_CLONES
void metarl_layer_norm_backward_row_f32(const float *restrict dy, const float *restrict u, const float *restrict inverses,
                                        const float *restrict gain, const long *segments, long segmentCount,
                                        float *restrict dx, float *restrict dGain, float *restrict dBias) {
    long width = 0;
    for (long k = 0; k < segmentCount; k++) width += segments[k];
    for (long j = 0; j < width; j++) dBias[j] += dy[j];
    for (long j = 0; j < width; j++) dGain[j] += dy[j] * u[j];
    for (long j = 0; j < width; j++) dx[j] = dy[j] * gain[j];
    long start = 0;
    for (long k = 0; k < segmentCount; k++) {
        standardise_backward(dx + start, u + start, segments[k], inverses[k]);
        start += segments[k];
    }
}

METARL_CLONES
void metarl_lngru_forward_row_f32(const float *restrict x, const float *restrict g, const float *restrict h,
                                  const float *restrict gateGain, const float *restrict gateBias,
                                  const float *restrict candidateGain, const float *restrict candidateBias,
                                  float forgetBias, float epsilon, long n,
                                  float *restrict u, float *restrict gates, float *restrict inverses, float *restrict y) {
    inverses[0] = standardise(g, u, 2 * n, epsilon);
    inverses[1] = standardise(g + 2 * n, u + 2 * n, n, epsilon);
    float *r = gates, *z = gates + n, *candidate = gates + 2 * n, *hidden = gates + 3 * n;
    for (long j = 0; j < n; j++) r[j] = sigmoid_approx(x[j] + u[j] * gateGain[j] + gateBias[j]);
    for (long j = 0; j < n; j++) z[j] = sigmoid_approx(x[n + j] + u[n + j] * gateGain[n + j] + gateBias[n + j] - forgetBias);
    for (long j = 0; j < n; j++) hidden[j] = u[2 * n + j] * candidateGain[j] + candidateBias[j];
    for (long j = 0; j < n; j++) {
        float pre = x[2 * n + j] + r[j] * hidden[j];
        candidate[j] = pre > 0 ? pre : 0;
    }
    for (long j = 0; j < n; j++) y[j] = h[j] + z[j] * (candidate[j] - h[j]);
}

METARL_CLONES
void metarl_lngru_backward_row_f32(const float *restrict dy, const float *restrict hp, const float *restrict gates,
                                   const float *restrict u, const float *restrict inverses,
                                   const float *restrict gateGain, const float *restrict candidateGain, long n,
                                   float *restrict d, float *restrict dx, float *restrict du, float *restrict dHidden) {
    const float *r = gates, *z = gates + n, *candidate = gates + 2 * n, *hidden = gates + 3 * n;
    float *dPre = dx + 2 * n;
    for (long j = 0; j < n; j++) d[j] += dy[j];
    for (long j = 0; j < n; j++) {
        float through = d[j] * z[j];
        dPre[j] = candidate[j] > 0 ? through : 0;
    }
    for (long j = 0; j < n; j++) dx[j] = dPre[j] * hidden[j] * r[j] * (1 - r[j]);
    for (long j = 0; j < n; j++) dx[n + j] = d[j] * (candidate[j] - hp[j]) * z[j] * (1 - z[j]);
    for (long j = 0; j < n; j++) dHidden[j] = dPre[j] * r[j];
    for (long j = 0; j < n; j++) d[j] *= 1 - z[j];
    for (long j = 0; j < 2 * n; j++) du[j] = dx[j] * gateGain[j];
    for (long j = 0; j < n; j++) du[2 * n + j] = dHidden[j] * candidateGain[j];
    standardise_backward(du, u, 2 * n, inverses[0]);
    standardise_backward(du + 2 * n, u + 2 * n, n, inverses[1]);
}
