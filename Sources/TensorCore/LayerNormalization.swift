// Layer normalisation over the last axis as one primitive.
//
// Composed from small primitives it is a mean, a subtraction, a square, a second mean, a
// square root, a division, a product and a sum, each a pass over the whole tensor with its
// own allocation and tape entry, and as many again backwards. Here each row is normalised
// in one pass, and the backward rule is the closed form
//     dx = (1/σ) · (v − mean(v) − x̂ · mean(v ⊙ x̂)),   v = dy ⊙ gain,
// per segment. When the backward pass is itself recorded (gradients of gradients) the
// rule replays `layerNormalizedComposed` instead, so higher derivatives stay exact.
//
// Rows run in C (CKernels) for Float, built for the CPU's widest vectors; the Swift loops
// are the Double path and the reference.
//
// The last axis may be split into consecutive segments that are normalised separately
// (the layer-normalised GRU normalises its r,z block and its n block on their own); the
// gain and the bias span the whole axis.

import CKernels

extension Tensor {
    /// (x − mean)/√(var + ε) · gain + bias over the last axis, separately over each of
    /// `segments` (consecutive lengths summing to the last axis; nil: the whole axis).
    /// `gain` and `bias` have the last axis's length.
    public func layerNormalized(gain: Tensor, bias: Tensor, segments: [Int]? = nil, epsilon: Double) -> Tensor {
        let segments = segments ?? [shape.last ?? 0]
        LayerNormalizationKernel.checkShapes(self, gain, bias, segments)
        let parts = [self, gain, bias]
        let (output, saved) = LayerNormalizationKernel.forward(parts.map(\.detached), segments: segments, epsilon: epsilon)
        return Tape.recordMany(output, parts) { indices in
            .layerNorm(parts: parts.map(\.detached), indices: indices, segments: segments, epsilon: epsilon, saved: saved)
        }
    }

    /// The same computation with the small primitives: the reference the fused primitive is
    /// tested against, and what its backward rule replays when recorded.
    public func layerNormalizedComposed(gain: Tensor, bias: Tensor, segments: [Int]? = nil, epsilon: Double) -> Tensor {
        let segments = segments ?? [shape.last ?? 0]
        LayerNormalizationKernel.checkShapes(self, gain, bias, segments)
        let axis = rank - 1
        var start = 0
        var pieces: [Tensor] = []
        for length in segments {
            let x = slice(axis: axis, start..<(start + length))
            let centred = x - x.mean(axes: [axis], keepDims: true)
            pieces.append(centred / (centred.squared().mean(axes: [axis], keepDims: true) + epsilon).sqrt())
            start += length
        }
        return (pieces.count == 1 ? pieces[0] : Tensor.concat(pieces, axis: axis)) * gain + bias
    }
}

/// The fused loops of `Tensor.layerNormalized`.
enum LayerNormalizationKernel {
    static func checkShapes(_ x: Tensor, _ gain: Tensor, _ bias: Tensor, _ segments: [Int]) {
        precondition(x.rank >= 1, "layerNormalized: a scalar has no axis to normalise")
        let width = x.shape[x.rank - 1]
        precondition(gain.shape == [width] && bias.shape == [width], "layerNormalized: gain \(gain.shape) and bias \(bias.shape) for a last axis of \(width)")
        precondition(segments.allSatisfy { $0 > 0 } && segments.reduce(0, +) == width, "layerNormalized: segments \(segments) do not split \(width)")
        precondition(gain.dtype == x.dtype && bias.dtype == x.dtype, "layerNormalized: operands of different dtypes")
    }

    /// Writes (x − mean)/√(var + ε) of `count` values into `standard`; returns 1/√(var + ε).
    @inline(__always)
    static func standardise<T: KernelScalar>(_ x: UnsafePointer<T>, into standard: UnsafeMutablePointer<T>, _ count: Int, epsilon: T) -> T {
        let mean = Kernels.contiguousSum(x, count) / T(count)
        for j in 0..<count { standard[j] = x[j] - mean }
        let inverse = 1 / (Kernels.contiguousDot(standard, standard, count) / T(count) + epsilon).squareRoot()
        for j in 0..<count { standard[j] *= inverse }
        return inverse
    }

    /// The output and the saved values: the standardised x̂ (x's shape, flat) and then one
    /// reciprocal standard deviation per row and segment.
    static func forward(_ parts: [Tensor], segments: [Int], epsilon: Double) -> (output: Tensor, saved: Tensor) {
        let x = parts[0], width = x.shape[x.rank - 1], rows = x.count / Swift.max(width, 1)
        let output = Storage.allocate(count: x.count, dtype: x.dtype)
        let saved = Storage.allocate(count: x.count + rows * segments.count, dtype: x.dtype)
        func run<T: KernelScalar>(_: T.Type) {
            let px = x.storage.pointer(T.self), gain = parts[1].storage.pointer(T.self), bias = parts[2].storage.pointer(T.self)
            let py = output.pointer(T.self), standard = saved.pointer(T.self), inverses = standard + x.count
            let eps = T(epsilon)
            if T.self == Float.self {
                // The C kernel, built for the CPU's widest vectors.
                for row in 0..<rows {
                    metarl_layer_norm_forward_row_f32(
                        floats(px + row * width), floats(gain), floats(bias), segments, segments.count, Float(epsilon),
                        floats(standard + row * width), floats(inverses + row * segments.count), floats(py + row * width))
                }
                return
            }
            for row in 0..<rows {
                var start = 0
                for (k, length) in segments.enumerated() {
                    let offset = row * width + start
                    inverses[row * segments.count + k] = standardise(
                        px + offset, into: standard + offset, length, epsilon: eps)
                    start += length
                }
                let u = standard + row * width, y = py + row * width
                for j in 0..<width { y[j] = u[j] * gain[j] + bias[j] }
            }
        }
        switch x.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return (Tensor(shape: x.shape, storage: output), Tensor(shape: [saved.count], storage: saved))
    }

    /// The gradients of x, the gain and the bias given the output's gradient `g`.
    static func backward(_ parts: [Tensor], segments: [Int], saved: Tensor, gradient g: Tensor) -> [Tensor] {
        let x = parts[0], width = x.shape[x.rank - 1], rows = x.count / Swift.max(width, 1)
        let g = g.detached.converted(to: x.dtype)
        precondition(g.shape == x.shape, "layerNormalized backward: gradient \(g.shape) for \(x.shape)")
        let dx = Storage.allocate(count: x.count, dtype: x.dtype)
        let dGain = Storage.allocate(count: width, dtype: x.dtype), dBias = Storage.allocate(count: width, dtype: x.dtype)
        func run<T: KernelScalar>(_: T.Type) {
            let gain = parts[1].storage.pointer(T.self), pg = g.storage.pointer(T.self)
            let standard = saved.storage.pointer(T.self), inverses = standard + x.count
            let pdx = dx.pointer(T.self), pGain = dGain.pointer(T.self), pBias = dBias.pointer(T.self)
            pGain.initialize(repeating: 0, count: width)
            pBias.initialize(repeating: 0, count: width)
            if T.self == Float.self {
                for row in 0..<rows {
                    metarl_layer_norm_backward_row_f32(
                        floats(pg + row * width), floats(standard + row * width), floats(inverses + row * segments.count),
                        floats(gain), segments, segments.count, floats(pdx + row * width), floats(pGain), floats(pBias))
                }
                return
            }
            for row in 0..<rows {
                let dy = pg + row * width, u = standard + row * width, v = pdx + row * width
                for j in 0..<width { pBias[j] += dy[j] }
                for j in 0..<width { pGain[j] += dy[j] * u[j] }
                for j in 0..<width { v[j] = dy[j] * gain[j] }
                var start = 0
                for (k, length) in segments.enumerated() {
                    let vs = v + start, us = u + start, inverse = inverses[row * segments.count + k]
                    let mean = Kernels.contiguousSum(vs, length) / T(length), meanDot = Kernels.contiguousDot(vs, us, length) / T(length)
                    for j in 0..<length { vs[j] = inverse * (vs[j] - mean - us[j] * meanDot) }
                    start += length
                }
            }
        }
        switch x.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return [Tensor(shape: x.shape, storage: dx), Tensor(shape: [width], storage: dGain), Tensor(shape: [width], storage: dBias)]
    }
}
