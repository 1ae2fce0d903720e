// The primitive operations: each runs its kernel and records itself on the tape of a
// tracked operand. Their backward rules are in Tape.swift; composite operations built
// from them are in Composite.swift.

extension Tensor {
    // MARK: Arithmetic (broadcasting)

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        Tape.record(.add, Kernels.binary(.add, a, b), a, b)
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        Tape.record(.subtract, Kernels.binary(.subtract, a, b), a, b)
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        Tape.record(.multiply, Kernels.binary(.multiply, a, b), a, b)
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        Tape.record(.divide, Kernels.binary(.divide, a, b), a, b)
    }

    /// scale·x + shift, one primitive for every scalar-and-tensor operation.
    public func affine(scale: Double, shift: Double) -> Tensor {
        Tape.record(.affine(scale: scale, shift: shift), Kernels.unary(.affine(scale, shift), self), self)
    }

    public static prefix func - (a: Tensor) -> Tensor { a.affine(scale: -1, shift: 0) }
    public static func + (a: Tensor, c: Double) -> Tensor { a.affine(scale: 1, shift: c) }
    public static func + (c: Double, a: Tensor) -> Tensor { a.affine(scale: 1, shift: c) }
    public static func - (a: Tensor, c: Double) -> Tensor { a.affine(scale: 1, shift: -c) }
    public static func - (c: Double, a: Tensor) -> Tensor { a.affine(scale: -1, shift: c) }
    public static func * (a: Tensor, c: Double) -> Tensor { a.affine(scale: c, shift: 0) }
    public static func * (c: Double, a: Tensor) -> Tensor { a.affine(scale: c, shift: 0) }
    public static func / (a: Tensor, c: Double) -> Tensor { a.affine(scale: 1 / c, shift: 0) }
    public static func / (c: Double, a: Tensor) -> Tensor { a.pow(-1) * c }

    // MARK: Matrix products

    /// op(a)·op(b) for two matrices, or batch-wise for two rank-3 batches of matrices.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        Tape.record(
            .matmul(transposeA: transposeA, transposeB: transposeB),
            Kernels.matmul(a, b, transposeA: transposeA, transposeB: transposeB), a, b)
    }

    // MARK: Element-wise functions

    public func exp() -> Tensor { Tape.record(.exp, Kernels.unary(.exp, self), self) }
    public func log() -> Tensor { Tape.record(.log, Kernels.unary(.log, self), self) }
    public func tanh() -> Tensor { Tape.record(.tanh, Kernels.unary(.tanh, self), self) }
    /// g ⊙ (1 − y²), the gradient at x of y = tanh(x) given the gradient g at y: tanh's
    /// backward rule as one primitive, so that a recorded backward pass (MAML's inner step)
    /// costs one element-wise pass here instead of three, and its own derivatives likewise.
    public static func tanhGradient(_ g: Tensor, output y: Tensor) -> Tensor {
        Tape.record(.tanhGradient, Kernels.binary(.tanhBackward, g, y), g, y)
    }
    public func sigmoid() -> Tensor { Tape.record(.sigmoid, Kernels.unary(.sigmoid, self), self) }
    public func relu() -> Tensor { Tape.record(.relu, Kernels.unary(.relu, self), self) }
    /// log(1 + eˣ), computed stably.
    public func softplus() -> Tensor { Tape.record(.softplus, Kernels.unary(.softplus, self), self) }
    public func sqrt() -> Tensor { Tape.record(.sqrt, Kernels.unary(.sqrt, self), self) }
    public func abs() -> Tensor { Tape.record(.abs, Kernels.unary(.abs, self), self) }
    /// xᵖ element-wise, for a constant exponent.
    public func pow(_ p: Double) -> Tensor { Tape.record(.power(p), Kernels.unary(.power(p), self), self) }

    /// Each element limited to [lower, upper]; the gradient is zero outside.
    public func clamped(_ lower: Double, _ upper: Double) -> Tensor {
        precondition(lower <= upper, "clamped(\(lower), \(upper)): lower bound above upper bound")
        return Tape.record(.clamp(lower, upper), Kernels.unary(.clamp(lower, upper), self), self)
    }

    // MARK: Masks and selection

    /// 1 where self > other, else 0 (a constant).
    public func greater(_ other: Tensor) -> Tensor { Kernels.binary(.greater, detached, other.detached) }
    /// 1 where self ≥ other, else 0 (a constant).
    public func greaterEqual(_ other: Tensor) -> Tensor { Kernels.binary(.greaterEqual, detached, other.detached) }
    /// 1 where self < other, else 0 (a constant).
    public func less(_ other: Tensor) -> Tensor { Kernels.binary(.less, detached, other.detached) }
    /// 1 where self ≤ other, else 0 (a constant).
    public func lessEqual(_ other: Tensor) -> Tensor { Kernels.binary(.lessEqual, detached, other.detached) }
    /// 1 where self == other, else 0 (a constant).
    public func equal(_ other: Tensor) -> Tensor { Kernels.binary(.equal, detached, other.detached) }

    /// `a` where `mask` is non-zero, `b` elsewhere; the three broadcast together. The
    /// gradient flows only into the branch taken, so a NaN in the other branch is harmless.
    public static func `where`(_ mask: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let condition = mask.detached
        return Tape.record(.select(mask: condition), Kernels.select(condition, a, b), a, b)
    }

    // MARK: Reductions

    /// The sum over `axes` (all axes when nil). Negative axes count from the end.
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let axes = normalizedAxes(axes)
        let kept = Kernels.sum(self, axes: axes)
        var shape = kept.shape
        if !keepDims { shape = shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element) }
        let out = Tensor(shape: shape, storage: kept.storage)
        return Tape.record(.sum(axes: axes), out, self)
    }

    /// The maximum along `axis`. The gradient goes to the first position attaining it.
    public func max(axis: Int, keepDims: Bool = false) -> Tensor {
        let axis = normalizedAxis(axis)
        let (values, mask) = Kernels.max(self, axis: axis)
        var shape = values.shape
        if !keepDims { shape.remove(at: axis) }
        return Tape.record(.max(axis: axis, mask: mask), Tensor(shape: shape, storage: values.storage), self)
    }

    // MARK: Shape

    /// The same elements with a new shape of equal count; one dimension may be −1.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var shape = newShape
        if let unknown = shape.firstIndex(of: -1) {
            shape[unknown] = 1
            let rest = shapeCount(shape)
            precondition(rest > 0 && count % rest == 0, "cannot reshape \(self.shape) to \(newShape)")
            shape[unknown] = count / rest
        }
        precondition(shapeCount(shape) == count, "cannot reshape \(self.shape) to \(newShape)")
        if shape == self.shape { return self }
        return Tape.record(.reshape, Tensor(shape: shape, storage: storage), self)
    }

    /// The dimensions reordered: dimension d of the result is dimension `permutation[d]`.
    public func permuted(_ permutation: [Int]) -> Tensor {
        precondition(
            permutation.sorted() == Array(0..<rank),
            "permuted(\(permutation)) is not a permutation of the \(rank) axes of \(shape)")
        if permutation == Array(0..<rank) { return self }
        return Tape.record(.permute(permutation), Kernels.permute(detached, permutation), self)
    }

    /// The elements broadcast to `shape` (NumPy rules), copied.
    public func expanded(to shape: [Int]) -> Tensor {
        if shape == self.shape { return self }
        return Tape.record(.expand, Kernels.expand(detached, to: shape), self)
    }

    /// Tensors joined along `axis`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat of no tensors")
        let axis = parts[0].normalizedAxis(axis)
        if parts.count == 1 { return parts[0] }
        return Tape.recordMany(Kernels.concat(parts.map(\.detached), axis: axis), parts) { indices in
            .concat(axis: axis, parts: parts.map(\.detached), indices: indices)
        }
    }

    /// The elements at positions `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let axis = normalizedAxis(axis)
        precondition(
            range.lowerBound >= 0 && range.upperBound <= shape[axis],
            "slice \(range) out of bounds for axis \(axis) of shape \(shape)")
        if range.count == shape[axis] { return self }
        return Tape.record(
            .slice(axis: axis, start: range.lowerBound),
            Kernels.slice(detached, axis: axis, start: range.lowerBound, length: range.count), self)
    }

    /// This tensor placed at `start` along `axis` in zeros of length `size`.
    public func padded(axis: Int, start: Int, size: Int) -> Tensor {
        let axis = normalizedAxis(axis)
        precondition(
            start >= 0 && start + shape[axis] <= size,
            "padded(axis: \(axis), start: \(start), size: \(size)) does not fit shape \(shape)")
        return Tape.record(
            .pad(axis: axis, start: start, size: size), Kernels.pad(detached, axis: axis, start: start, size: size), self)
    }

    /// out[…, j, …] = self[…, indices[…, j, …], …] along `axis` (torch.gather): `indices`
    /// has this tensor's shape except along `axis`, given as `indexShape`.
    public func gathering(axis: Int, indices: [Int32], indexShape: [Int]) -> Tensor {
        let axis = normalizedAxis(axis)
        validateIndices(indices, indexShape: indexShape, axis: axis, size: shape[axis], operation: "gathering")
        return Tape.record(
            .gather(axis: axis, indices: indices),
            Kernels.gather(detached, axis: axis, indices: indices, indexShape: indexShape), self)
    }

    /// Zeros of `shape` with this tensor's elements added at `indices` along `axis`:
    /// the adjoint of ``gathering(axis:indices:indexShape:)``.
    public func scatterAdding(axis: Int, indices: [Int32], shape: [Int]) -> Tensor {
        let axis = normalizedAxis(axis)
        validateIndices(indices, indexShape: self.shape, axis: axis, size: shape[axis], operation: "scatterAdding")
        precondition(
            (0..<shape.count).allSatisfy { $0 == axis || shape[$0] == self.shape[$0] },
            "scatterAdding: source \(self.shape) and destination \(shape) differ off axis \(axis)")
        return Tape.record(
            .scatterAdd(axis: axis, indices: indices),
            Kernels.scatterAdd(detached, axis: axis, indices: indices, shape: shape), self)
    }

    private func validateIndices(_ indices: [Int32], indexShape: [Int], axis: Int, size: Int, operation: String) {
        precondition(
            indexShape.count == rank || operation == "scatterAdding",
            "\(operation): index shape \(indexShape) has a different rank from \(shape)")
        precondition(
            indices.count == shapeCount(indexShape),
            "\(operation): \(indices.count) indices for index shape \(indexShape)")
        for index in indices {
            precondition(index >= 0 && Int(index) < size, "\(operation): index \(index) out of range 0..<\(size) on axis \(axis)")
        }
    }

    // MARK: Axes

    func normalizedAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < Swift.max(rank, 1), "axis \(axis) out of range for shape \(shape)")
        return a
    }

    func normalizedAxes(_ axes: [Int]?) -> [Int] {
        guard let axes else { return Array(0..<rank) }
        return Array(Set(axes.map(normalizedAxis))).sorted()
    }
}
