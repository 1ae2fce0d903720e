// Operations composed of primitives. They need no backward rules of their own: the
// tape differentiates the primitives they are made of (to any order).

extension Tensor {
    /// The sum over the dimensions that broadcasting added or stretched, so that a
    /// gradient of a broadcast result gets back the operand's shape.
    public func summed(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        // Only size-1 axes to sum (a one-row gradient to a bias): the same values, reshaped.
        if count == shapeCount(target), alignedShape(shape, target) == shape { return reshaped(target) }
        let lead = rank - target.count
        precondition(lead >= 0, "cannot sum shape \(shape) down to \(target)")
        var axes = Array(0..<lead)
        for d in 0..<target.count where target[d] != shape[d + lead] {
            precondition(target[d] == 1, "cannot sum shape \(shape) down to \(target)")
            axes.append(d + lead)
        }
        return sum(axes: axes, keepDims: true).reshaped(target)
    }

    /// The mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let axes = normalizedAxes(axes)
        let n = axes.reduce(1) { $0 * shape[$1] }
        return sum(axes: axes, keepDims: keepDims) * (1 / Double(n))
    }

    /// log Σ exp along `axis`, computed stably. The shift by the maximum is a constant:
    /// the function and all its derivatives are exactly those of the unshifted formula.
    public func logSumExp(axis: Int, keepDims: Bool = false) -> Tensor {
        let shift = max(axis: axis, keepDims: true).detached
        let result = (self - shift).exp().sum(axes: [axis], keepDims: true).log() + shift
        return keepDims ? result : result.reshaped(result.shape.enumerated().filter { $0.offset != normalizedAxis(axis) }.map(\.element))
    }

    /// log softmax along `axis`.
    public func logSoftmax(axis: Int = -1) -> Tensor {
        self - logSumExp(axis: axis, keepDims: true)
    }

    /// softmax along `axis`.
    public func softmax(axis: Int = -1) -> Tensor {
        logSoftmax(axis: axis).exp()
    }

    /// The element-wise square.
    public func squared() -> Tensor { self * self }

    /// The mean of the squared deviations from the mean along `axes`.
    public func variance(axes: [Int], keepDims: Bool = false) -> Tensor {
        let centred = self - mean(axes: axes, keepDims: true)
        return centred.squared().mean(axes: axes, keepDims: keepDims)
    }

    /// The element-wise larger of two tensors (the gradient goes to the one taken).
    public static func maximum(_ a: Tensor, _ b: Tensor) -> Tensor {
        Tensor.where(a.greaterEqual(b), a, b)
    }

    /// The element-wise smaller of two tensors (the gradient goes to the one taken).
    public static func minimum(_ a: Tensor, _ b: Tensor) -> Tensor {
        Tensor.where(a.lessEqual(b), a, b)
    }

    /// The last two dimensions swapped.
    public func transposed() -> Tensor {
        precondition(rank >= 2, "transposed() needs at least two dimensions, shape is \(shape)")
        var p = Array(0..<rank)
        p.swapAt(rank - 1, rank - 2)
        return permuted(p)
    }

    /// Tensors of equal shape stacked along a new axis.
    public static func stack(_ parts: [Tensor], axis: Int = 0) -> Tensor {
        precondition(!parts.isEmpty, "stack of no tensors")
        let shape = parts[0].shape
        let a = axis < 0 ? axis + shape.count + 1 : axis
        precondition(a >= 0 && a <= shape.count, "stack: axis \(axis) out of range for shape \(shape)")
        var expandedShape = shape
        expandedShape.insert(1, at: a)
        return concat(parts.map { p in
            precondition(p.shape == shape, "stack: shapes \(shape) and \(p.shape) differ")
            return p.reshaped(expandedShape)
        }, axis: a)
    }

    /// self · w for a matrix `w`, where self may have any number of leading dimensions
    /// (they are folded into rows).
    public func matmul(_ w: Tensor) -> Tensor {
        precondition(w.rank == 2, "matmul(_:) takes a matrix, got shape \(w.shape)")
        if rank == 2 { return Tensor.matmul(self, w) }
        precondition(rank >= 1 && shape[rank - 1] == w.shape[0], "matmul: shapes \(shape) and \(w.shape) do not fit")
        var outShape = shape
        outShape[rank - 1] = w.shape[1]
        return Tensor.matmul(reshaped([-1, shape[rank - 1]]), w).reshaped(outShape)
    }

    /// The sum of squares of all elements.
    public func squaredNorm() -> Tensor { squared().sum() }
}
