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

/// One row of one step of the GRU (TensorCore's `gruSequence`): from the projected input
/// x [3n], the hidden product g [3n] (bias included) and the state h [n], the gates r, z, the
/// candidate and the hidden term g[2n..<3n] (each [n], saved for the backward pass) and the
/// next state y [n].
void metarl_gru_forward_row_f32(const float *restrict x, const float *restrict g, const float *restrict h, long n,
                                float *restrict r, float *restrict z, float *restrict candidate, float *restrict hidden,
                                float *restrict y);

/// One row of one step of the GRU's backward pass: with the carried state gradient d [n]
/// (replaced by the part that flows to the previous state through z), writes the projected
/// input's gradient dx [3n] and the hidden product's dh [3n].
void metarl_gru_backward_row_f32(const float *restrict dy, const float *restrict hp, const float *restrict r,
                                 const float *restrict z, const float *restrict candidate, const float *restrict hidden,
                                 long n, float *restrict d, float *restrict dx, float *restrict dh);

/// One row of layer normalisation (TensorCore's `layerNormalized`): the standardised
/// values into u, one reciprocal standard deviation per segment into inverses, and
/// y = u·gain + bias. `segments` holds `segmentCount` lengths summing to the row's width.
void metarl_layer_norm_forward_row_f32(const float *restrict x, const float *restrict gain, const float *restrict bias,
                                       const long *segments, long segmentCount, float epsilon,
                                       float *restrict u, float *restrict inverses, float *restrict y);

/// One row of layer normalisation's backward pass: dx from dy, and dy·u, dy added into
/// dGain and dBias.
void metarl_layer_norm_backward_row_f32(const float *restrict dy, const float *restrict u, const float *restrict inverses,
                                        const float *restrict gain, const long *segments, long segmentCount,
                                        float *restrict dx, float *restrict dGain, float *restrict dBias);

/// One row of one step of the layer-normalised GRU (TensorCore's `layerNormGRUSequence`):
/// from the projected input x [3n], the hidden product g [3n] and the state h [n], the saved
/// standardised u [3n], gates [4n] (r, z, candidate, hidden term) and inverses [2], and the
/// next state y [n].
void metarl_lngru_forward_row_f32(const float *restrict x, const float *restrict g, const float *restrict h,
                                  const float *restrict gateGain, const float *restrict gateBias,
                                  const float *restrict candidateGain, const float *restrict candidateBias,
                                  float forgetBias, float epsilon, long n,
                                  float *restrict u, float *restrict gates, float *restrict inverses, float *restrict y);

/// One row of one step of the layer-normalised GRU's backward pass: with the carried state
/// gradient d [n] (updated in place to the part that flows through 1 − z), writes the
/// projected input's gradient dx [3n], the hidden product's du [3n] and the hidden term's
/// dHidden [n].
void metarl_lngru_backward_row_f32(const float *restrict dy, const float *restrict hp, const float *restrict gates,
                                   const float *restrict u, const float *restrict inverses,
                                   const float *restrict gateGain, const float *restrict candidateGain, long n,
                                   float *restrict d, float *restrict dx, float *restrict du, float *restrict dHidden);


/// The vector width, in floats, of `metarl_small_gemm_f32` on this CPU: 16 (AVX-512 with
/// FMA), 8 (AVX2 with FMA) or 0 (not available: use BLAS).
int metarl_small_gemm_width(void);

/// C ← A·B + beta·C for row-major Float matrices, A m × k, B k × n, C m × n, reading B in
/// place (no packed copy): for products with few rows by a large weight, where a general
/// sgemm spends much of its time packing. `width` is `metarl_small_gemm_width()`. Returns 0
/// and leaves C untouched when it cannot run (no suitable vectors, or n not a multiple of
/// `width`), 1 when C holds the product.
int metarl_small_gemm_f32(int width, long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                          float beta, float *c, long ldc);

/// Makes standard output line-buffered, so printed lines reach a file or pipe at once (a
/// process stopped by a signal keeps what it printed).
void metarl_line_buffer_stdout(void);

/// From now on the first SIGINT or SIGTERM only sets a flag (`metarl_stop_signal`) and says
/// so on stderr; a second one stops the process the default way.
void metarl_catch_stop_signals(void);
/// SIGINT and SIGTERM act the default way again.
void metarl_release_stop_signals(void);
/// The signal caught since `metarl_catch_stop_signals`, or 0.
int metarl_stop_signal(void);

#endif
