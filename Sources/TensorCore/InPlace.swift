import CKernels

/// In-place updates of constant tensors, for hand-written derivative passes that run
/// off the tape (such as `PolicyCurvature`'s R-operator): each saves the allocation and
/// the separate pass an out-of-place sum would cost. The tensor's storage is copied first
/// if another tensor shares it, so values stay values.
extension Tensor {
    /// self += op(a)·op(b) for matrices, in self's storage (BLAS with β = 1).
    public mutating func addMatrixProduct(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) {
        makeOwnedConstant("addMatrixProduct")
        Kernels.matmul(a.detached, b.detached, transposeA: transposeA, transposeB: transposeB, accumulatingInto: &self)
    }

    /// self ← self ⊙ s + a ⊙ b element by element, all four of one shape and dtype.
    public mutating func multiplyAdd(scale s: Tensor, _ a: Tensor, _ b: Tensor) {
        precondition(s.shape == shape && a.shape == shape && b.shape == shape,
                     "multiplyAdd: shapes \(shape), \(s.shape), \(a.shape), \(b.shape) differ")
        precondition(s.dtype == dtype && a.dtype == dtype && b.dtype == dtype, "multiplyAdd: dtypes differ")
        makeOwnedConstant("multiplyAdd")
        // After makeOwnedConstant, self's storage is shared with none of s, a, b.
        withExtendedLifetime((s, a, b)) {
            switch dtype {
            case .float32:
                metarl_multiply_add_f32(storage.pointer(Float.self), s.storage.pointer(Float.self),
                                        a.storage.pointer(Float.self), b.storage.pointer(Float.self), count)
            case .float64:
                let out = storage.pointer(Double.self), ps = s.storage.pointer(Double.self)
                let pa = a.storage.pointer(Double.self), pb = b.storage.pointer(Double.self)
                for i in 0..<count { out[i] = out[i] * ps[i] + pa[i] * pb[i] }
            }
        }
    }

    private mutating func makeOwnedConstant(_ operation: String) {
        precondition(tape == nil, "\(operation): in-place change of a tracked tensor would corrupt its tape")
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }
}
