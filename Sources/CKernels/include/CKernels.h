#ifndef METARL_CKERNELS_H
#define METARL_CKERNELS_H

/// Element-wise Float kernels compiled for several x86 vector widths (AVX-512, AVX2,
/// baseline) with the widest the CPU supports chosen once at load time. Swift code in
/// this package builds for baseline x86-64, where these loops would run four floats wide.

/// y[i] = tanh(x[i]) for i < n: the same approximation as TensorCore's `fastTanh`.
void metarl_tanh_f32(const float *x, float *y, long n);

/// y[i] = y[i]·s[i] + a[i]·b[i] for i < n; y must not overlap s, a or b.
void metarl_multiply_add_f32(float *restrict y, const float *restrict s, const float *restrict a,
                             const float *restrict b, long n);

#endif
