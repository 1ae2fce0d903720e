/// The primitive operations a tape records. Everything else is composed of these.
enum Op {
    case leaf
    case add, subtract, multiply, divide
    /// scale·x + shift
    case affine(scale: Double, shift: Double)
    case matmul(transposeA: Bool, transposeB: Bool)
    case exp, log, tanh, sigmoid, relu, softplus, sqrt, abs
    case tanhGradient
    case power(Double)
    case clamp(Double, Double)
    /// mask ? first : second (the mask is a constant)
    case select(mask: Tensor)
    /// Sum over the axes; the output may or may not keep them.
    case sum(axes: [Int])
    /// Maximum along an axis (kept as size 1); `mask` marks the position taken.
    case max(axis: Int, mask: Tensor)
    case reshape
    case permute([Int])
    case expand
    case concat(axis: Int, parts: [Tensor], indices: [Int])
    case slice(axis: Int, start: Int)
    case pad(axis: Int, start: Int, size: Int)
    case gather(axis: Int, indices: [Int32])
    case scatterAdd(axis: Int, indices: [Int32])
    /// A whole GRU sequence (GRUSequence.swift): inputs projected, initial state, hidden
    /// weight, hidden bias, with their tape indices; the reset mask and the saved gates.
    case gruSequence(parts: [Tensor], indices: [Int], keep: Tensor?, saved: Tensor)
    /// Layer normalisation over the last axis (LayerNormalization.swift): x, gain, bias with
    /// their tape indices, the segment lengths, ε, and the saved standardised values.
    case layerNorm(parts: [Tensor], indices: [Int], segments: [Int], epsilon: Double, saved: Tensor)
    /// A whole layer-normalised GRU sequence (LayerNormGRUSequence.swift): its seven inputs
    /// with their tape indices, the reset mask, the saved gates and the cell's constants.
    case layerNormGRUSequence(parts: [Tensor], indices: [Int], keep: Tensor?, saved: Tensor,
                              constants: LayerNormGRUSequenceKernel.Constants)

    /// The tape indices of an operation with more than two inputs.
    var manyIndices: [Int]? {
        switch self {
        case .concat(_, _, let indices), .gruSequence(_, let indices, _, _), .layerNormGRUSequence(_, let indices, _, _, _),
             .layerNorm(_, let indices, _, _, _): indices
        default: nil
        }
    }
}

/// One recorded operation: the primitive, its inputs' values and tape indices (−1 for a
/// constant), and its output's value. Entries hold only untracked values, so a tape never
/// references itself.
///
/// A class, so that the backward pass reads an entry through one reference instead of
/// copying (and retaining) each of its tensors.
final class TapeEntry {
    let op: Op
    let first: Tensor?
    let firstIndex: Int
    let second: Tensor?
    let secondIndex: Int
    let output: Tensor

    init(op: Op, first: Tensor?, firstIndex: Int, second: Tensor?, secondIndex: Int, output: Tensor) {
        self.op = op
        self.first = first
        self.firstIndex = firstIndex
        self.second = second
        self.secondIndex = secondIndex
        self.output = output
    }
}

/// A record of operations on watched tensors, for reverse-mode differentiation.
///
/// ``watch(_:)`` makes a tensor a differentiable input; every operation on it is appended
/// here. ``gradients(of:withRespectTo:seed:createGraph:)`` walks the record backwards.
/// With `createGraph: true` the backward pass is itself recorded, so the gradients it
/// returns are tracked and can be differentiated again: gradients of gradients,
/// Hessian-vector products, MAML's meta-gradient.
///
/// A tape belongs to one thread at a time. It lives as long as any tensor tracked on it.
public final class Tape: @unchecked Sendable {
    /// A tape belongs to one thread at a time (above), so the dynamic exclusivity check on
    /// every append and read would only cost time.
    @exclusivity(unchecked) var entries: [TapeEntry] = []

    public init() {
        entries.reserveCapacity(64)
    }

    /// The number of recorded operations.
    public var count: Int { entries.count }

    /// `x` as a differentiable input recorded on this tape.
    public func watch(_ x: Tensor) -> Tensor {
        precondition(x.tape == nil, "watch: the tensor is already tracked; use its detached value")
        entries.append(TapeEntry(op: .leaf, first: nil, firstIndex: -1, second: nil, secondIndex: -1, output: x))
        return Tensor(shape: x.shape, storage: x.storage, tape: self, tapeIndex: entries.count - 1)
    }

    /// Records `op` if any input is tracked and returns `output` tracked; otherwise
    /// returns `output` as it is.
    @inline(__always)
    static func record(_ op: Op, _ output: Tensor, _ a: Tensor, _ b: Tensor? = nil) -> Tensor {
        let tape: Tape
        if let t = a.tape {
            tape = t
            precondition(b?.tape == nil || b!.tape === t, "operands are tracked on different tapes")
        } else if let t = b?.tape {
            tape = t
        } else {
            return output
        }
        tape.entries.append(
            TapeEntry(
                op: op, first: a.detached, firstIndex: a.tape == nil ? -1 : a.tapeIndex,
                second: b?.detached, secondIndex: b?.tape == nil ? -1 : b!.tapeIndex, output: output))
        return Tensor(shape: output.shape, storage: output.storage, tape: tape, tapeIndex: tape.entries.count - 1)
    }

    /// Records an operation with more than two inputs (a concatenation, a GRU sequence);
    /// `makeOp` receives the inputs' tape indices (−1 for constants).
    static func recordMany(_ output: Tensor, _ parts: [Tensor], _ makeOp: (_ indices: [Int]) -> Op) -> Tensor {
        guard let tape = parts.first(where: { $0.tape != nil })?.tape else { return output }
        precondition(parts.allSatisfy { $0.tape == nil || $0.tape === tape }, "operands are tracked on different tapes")
        let op = makeOp(parts.map { $0.tape == nil ? -1 : $0.tapeIndex })
        tape.entries.append(TapeEntry(op: op, first: nil, firstIndex: -1, second: nil, secondIndex: -1, output: output))
        return Tensor(shape: output.shape, storage: output.storage, tape: tape, tapeIndex: tape.entries.count - 1)
    }

    /// The gradients of `y` with respect to each of `xs`.
    ///
    /// - Parameters:
    ///   - y: a tensor tracked on this tape; unless `seed` is given it must have one element.
    ///   - xs: tensors tracked on this tape. One that `y` does not depend on gets zeros.
    ///   - seed: the vector v of the vector-Jacobian product vᵀ·∂y/∂x (same shape as `y`).
    ///   - createGraph: record the backward pass, so the gradients are tracked and can be
    ///     differentiated again.
    public func gradients(
        of y: Tensor, withRespectTo xs: [Tensor], seed: Tensor? = nil, createGraph: Bool = false
    ) -> [Tensor] {
        precondition(y.tape === self, "gradients: the output is not tracked on this tape")
        precondition(xs.allSatisfy { $0.tape === self }, "gradients: an input is not tracked on this tape")
        precondition(seed != nil || y.count == 1, "gradients of a tensor of shape \(y.shape) need a seed")
        if let seed {
            precondition(seed.shape == y.shape, "gradients: seed shape \(seed.shape) differs from output shape \(y.shape)")
        }
        let root = y.tapeIndex
        // Only entries on a path from some x to y need gradients.
        var needed = [Bool](repeating: false, count: root + 1)
        for x in xs where x.tapeIndex <= root { needed[x.tapeIndex] = true }
        let isTarget = needed
        let lowest = xs.map(\.tapeIndex).min() ?? 0
        if lowest <= root {
            for i in lowest...root where !needed[i] {
                let first = entries[i].firstIndex, second = entries[i].secondIndex
                if first >= 0 || second >= 0 {
                    needed[i] = (first >= 0 && needed[first]) || (second >= 0 && needed[second])
                } else if let indices = entries[i].op.manyIndices {
                    needed[i] = indices.contains { $0 >= 0 && needed[$0] }
                }
            }
        }
        var grads = [Tensor?](repeating: nil, count: root + 1)
        grads[root] = seed.map { createGraph ? $0 : $0.detached } ?? Tensor(repeating: 1, shape: y.shape, dtype: y.dtype)
        var i = root
        while i >= lowest {
            if needed[i], let g = grads[i] {
                if !isTarget[i] { grads[i] = nil }  // free it early: only targets are returned
                propagate(entry: i, gradient: g, createGraph: createGraph, needed: needed, into: &grads)
            }
            i -= 1
        }
        return xs.map { x in
            if x.tapeIndex <= root, let g = grads[x.tapeIndex] { return g }
            return Tensor.zeros(x.shape, dtype: x.dtype)
        }
    }

    /// Adds `g` to the gradient slot of tape entry `index` (−1: a constant, ignored).
    @inline(__always)
    private func accumulate(
        _ g: Tensor, into index: Int, _ grads: inout [Tensor?], _ needed: [Bool], _ createGraph: Bool
    ) {
        guard index >= 0, needed[index] else { return }
        if grads[index] == nil {
            grads[index] = g
        } else if !createGraph, isKnownUniquelyReferenced(&grads[index]!.storage) {
            Kernels.addInPlace(&grads[index]!, g)
        } else {
            grads[index] = grads[index]! + g
        }
    }

    /// Adds op(x)·op(y) to the gradient in slot `index`. Without a recorded graph, a slot
    /// that already holds a matrix of its own gets the product added by BLAS in place
    /// (β = 1), saving the product's allocation and the separate addition pass.
    private func accumulateProduct(
        _ x: Tensor, _ y: Tensor, transposeX: Bool, transposeY: Bool, into index: Int,
        _ grads: inout [Tensor?], _ needed: [Bool], _ createGraph: Bool
    ) {
        if !createGraph, x.rank == 2, grads[index] != nil, grads[index]!.rank == 2,
           isKnownUniquelyReferenced(&grads[index]!.storage) {
            Kernels.matmul(x.detached, y.detached, transposeA: transposeX, transposeB: transposeY, accumulatingInto: &grads[index]!)
        } else {
            accumulate(Tensor.matmul(x, y, transposeA: transposeX, transposeB: transposeY), into: index, &grads, needed, createGraph)
        }
    }

    /// Applies entry `i`'s backward rule to its output gradient `g`.
    ///
    /// Each rule is written with differentiable tensor operations. Without `createGraph`
    /// the inputs and output are used as constants, so nothing is recorded; with it they
    /// are rebuilt as tracked tensors of this tape, so the rule's own operations are
    /// recorded and the result can be differentiated again.
    private func propagate(entry i: Int, gradient g: Tensor, createGraph: Bool, needed: [Bool], into grads: inout [Tensor?]) {
        let e = entries[i]
        func value(_ t: Tensor?, _ index: Int) -> Tensor {
            createGraph && index >= 0 ? Tensor(shape: t!.shape, storage: t!.storage, tape: self, tapeIndex: index) : t!.detached
        }
        var a: Tensor { value(e.first, e.firstIndex) }
        var b: Tensor { value(e.second, e.secondIndex) }
        var y: Tensor { createGraph ? Tensor(shape: e.output.shape, storage: e.output.storage, tape: self, tapeIndex: i) : e.output }
        let wantA = e.firstIndex >= 0 && needed[e.firstIndex]
        let wantB = e.secondIndex >= 0 && needed[e.secondIndex]
        func toA(_ t: @autoclosure () -> Tensor) { if wantA { accumulate(t(), into: e.firstIndex, &grads, needed, createGraph) } }
        func toB(_ t: @autoclosure () -> Tensor) { if wantB { accumulate(t(), into: e.secondIndex, &grads, needed, createGraph) } }

        switch e.op {
        case .leaf:
            break
        case .add:
            toA(g.summed(toShape: e.first!.shape))
            toB(g.summed(toShape: e.second!.shape))
        case .subtract:
            toA(g.summed(toShape: e.first!.shape))
            toB((-g).summed(toShape: e.second!.shape))
        case .multiply:
            toA((g * b).summed(toShape: e.first!.shape))
            toB((g * a).summed(toShape: e.second!.shape))
        case .divide:
            toA((g / b).summed(toShape: e.first!.shape))
            toB((-(g * y) / b).summed(toShape: e.second!.shape))
        case .affine(let scale, _):
            toA(g * scale)
        case .matmul(let tA, let tB):
            // C = op(A)·op(B): ∂A = g·op(B)ᵀ (or its transpose), ∂B = op(A)ᵀ·g (likewise).
            if wantA {
                let (x, y, tx, ty) = tA ? (b, g, tB, true) : (g, b, false, !tB)
                accumulateProduct(x, y, transposeX: tx, transposeY: ty, into: e.firstIndex, &grads, needed, createGraph)
            }
            if wantB {
                let (x, y, tx, ty) = tB ? (g, a, true, tA) : (a, g, !tA, false)
                accumulateProduct(x, y, transposeX: tx, transposeY: ty, into: e.secondIndex, &grads, needed, createGraph)
            }
        case .exp:
            toA(g * y)
        case .log:
            toA(g / a)
        case .tanh:
            toA(createGraph ? Tensor.tanhGradient(g, output: y) : Kernels.binary(.tanhBackward, g, e.output))
        case .tanhGradient:
            // z = g ⊙ (1 − y²) with upstream u: ∂g = u ⊙ (1 − y²), ∂y = −2 u ⊙ g ⊙ y.
            toA((createGraph ? Tensor.tanhGradient(g, output: b) : Kernels.binary(.tanhBackward, g, e.second!))
                .summed(toShape: e.first!.shape))
            if !createGraph && e.first!.shape == e.second!.shape && g.shape == e.second!.shape {
                toB(Kernels.tanhGradientOutputBackward(g, e.first!, e.second!))
            } else {
                toB((g * a * b * -2).summed(toShape: e.second!.shape))
            }
        case .sigmoid:
            toA(createGraph ? g * (y * (1 - y)) : Kernels.binary(.sigmoidBackward, g, e.output))
        case .relu:
            toA(g * Kernels.unary(.positiveMask, e.first!))
        case .softplus:
            toA(g * a.sigmoid())
        case .sqrt:
            toA(g / (y * 2))
        case .abs:
            toA(g * Kernels.unary(.sign, e.first!))
        case .power(let p):
            toA(g * (a.pow(p - 1) * p))
        case .clamp(let lo, let hi):
            toA(g * Kernels.unary(.insideMask(lo, hi), e.first!))
        case .select(let mask):
            let zero = Tensor(repeating: 0, shape: [], dtype: g.dtype)
            toA(Tensor.where(mask, g, zero).summed(toShape: e.first!.shape))
            toB(Tensor.where(mask, zero, g).summed(toShape: e.second!.shape))
        case .sum(let axes):
            var kept = e.first!.shape
            for axis in axes { kept[axis] = 1 }
            toA(g.reshaped(kept).expanded(to: e.first!.shape))
        case .max(_, let mask):
            toA(g.expanded(to: e.first!.shape) * mask)
        case .reshape:
            toA(g.reshaped(e.first!.shape))
        case .permute(let p):
            var inverse = p
            for (k, d) in p.enumerated() { inverse[d] = k }
            toA(g.permuted(inverse))
        case .expand:
            toA(g.summed(toShape: e.first!.shape))
        case .concat(let axis, let parts, let indices):
            var start = 0
            for (part, index) in zip(parts, indices) {
                let length = part.shape[axis]
                if index >= 0 && needed[index] {
                    accumulate(g.slice(axis: axis, start..<(start + length)), into: index, &grads, needed, createGraph)
                }
                start += length
            }
        case .slice(let axis, let start):
            guard wantA else { break }
            if !createGraph {
                // Add into the input's gradient in place: a recurrent unroll slices one
                // step at a time, and padding each step's gradient to the full sequence
                // would cost O(T²).
                let index = e.firstIndex
                if grads[index] == nil {
                    grads[index] = Tensor.zeros(e.first!.shape, dtype: g.dtype)
                } else if !isKnownUniquelyReferenced(&grads[index]!.storage) {
                    // Shared with another slot: write into a copy.
                    let shared = grads[index]!
                    grads[index] = Tensor(shape: shared.shape, storage: shared.storage.copy())
                }
                Kernels.addIntoSlice(&grads[index]!, g.detached, axis: axis, start: start)
            } else {
                toA(g.padded(axis: axis, start: start, size: e.first!.shape[axis]))
            }
        case .pad(let axis, let start, _):
            toA(g.slice(axis: axis, start..<(start + e.first!.shape[axis])))
        case .gather(let axis, let indices):
            toA(g.scatterAdding(axis: axis, indices: indices, shape: e.first!.shape))
        case .scatterAdd(let axis, let indices):
            toA(g.gathering(axis: axis, indices: indices, indexShape: e.first!.shape))
        case .gruSequence(let parts, let indices, let keep, let saved):
            propagateFused(parts: parts, indices: indices, gradient: g, createGraph: createGraph, needed: needed, into: &grads,
                           composed: { Tensor.gruSequenceComposed(projected: $0[0], initialState: $0[1], hiddenWeight: $0[2],
                                                                  hiddenBias: $0[3], keep: keep) },
                           fused: { GRUSequenceKernel.backward(parts, keep: keep, saved: saved, states: e.output, gradient: g) })
        case .layerNorm(let parts, let indices, let segments, let epsilon, let saved):
            propagateFused(parts: parts, indices: indices, gradient: g, createGraph: createGraph, needed: needed, into: &grads,
                           composed: { $0[0].layerNormalizedComposed(gain: $0[1], bias: $0[2], segments: segments, epsilon: epsilon) },
                           fused: { LayerNormalizationKernel.backward(parts, segments: segments, saved: saved, gradient: g) })
        case .layerNormGRUSequence(let parts, let indices, let keep, let saved, let constants):
            propagateFused(parts: parts, indices: indices, gradient: g, createGraph: createGraph, needed: needed, into: &grads,
                           composed: { Tensor.layerNormGRUSequenceComposed(
                               projected: $0[0], initialState: $0[1], hiddenWeight: $0[2], gateGain: $0[3], gateBias: $0[4],
                               candidateGain: $0[5], candidateBias: $0[6], forgetBias: constants.forgetBias,
                               epsilon: constants.epsilon, keep: keep) },
                           fused: { LayerNormGRUSequenceKernel.backward(parts, keep: keep, saved: saved, states: e.output, gradient: g) })
        }
    }

    /// The backward rule of a fused primitive with many inputs: its hand-written backward
    /// pass (`fused`, the gradients of all `parts` in order), or, when the backward pass is
    /// recorded (gradients of gradients), the vector-Jacobian product of its `composed` form
    /// replayed on this tape, so higher derivatives stay exact.
    private func propagateFused(
        parts: [Tensor], indices: [Int], gradient g: Tensor, createGraph: Bool, needed: [Bool], into grads: inout [Tensor?],
        composed: ([Tensor]) -> Tensor, fused: () -> [Tensor]
    ) {
        let wanted = indices.map { $0 >= 0 && needed[$0] }
        if createGraph {
            let inputs = zip(parts, indices).map { part, index in
                index >= 0 ? Tensor(shape: part.shape, storage: part.storage, tape: self, tapeIndex: index) : part.detached
            }
            let targets = inputs.indices.filter { wanted[$0] }
            let replayed = gradients(of: composed(inputs), withRespectTo: targets.map { inputs[$0] }, seed: g, createGraph: true)
            for (k, slot) in targets.enumerated() { accumulate(replayed[k], into: indices[slot], &grads, needed, createGraph) }
        } else {
            let gradients = fused()
            for slot in parts.indices where wanted[slot] { accumulate(gradients[slot], into: indices[slot], &grads, needed, createGraph) }
        }
    }
}
