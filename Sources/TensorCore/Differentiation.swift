// Function transforms over lists of tensors. They nest: when the inputs are already
// tracked (an outer transform is differentiating), the inner gradient is computed on the
// outer tape with its backward pass recorded, so the outer transform differentiates
// through it. That is all MAML's second-order meta-gradient needs.

/// The value of `f` at `inputs` and its gradient with respect to each input.
///
/// - Parameters:
///   - inputs: the tensors to differentiate with respect to.
///   - createGraph: keep the returned gradients differentiable (always on when
///     the inputs are tracked by an enclosing transform).
///   - f: the scalar function of the inputs.
public func valueAndGradient(
    at inputs: [Tensor], createGraph: Bool = false, of f: ([Tensor]) throws -> Tensor
) rethrows -> (value: Tensor, gradient: [Tensor]) {
    if let tape = inputs.first?.tape, inputs.allSatisfy({ $0.tape === tape }) {
        let y = try f(inputs)
        return (y, tape.gradients(of: y, withRespectTo: inputs, createGraph: true))
    }
    precondition(inputs.allSatisfy { $0.tape == nil }, "valueAndGradient: inputs tracked on different tapes")
    let tape = Tape()
    let watched = inputs.map(tape.watch)
    let y = try f(watched)
    precondition(y.tape === tape, "valueAndGradient: the function's result does not depend on its inputs")
    let gradient = tape.gradients(of: y, withRespectTo: watched, createGraph: createGraph)
    return (createGraph ? y : y.detached, gradient)
}

/// The gradient of `f` at `inputs` with respect to each input.
public func gradient(
    at inputs: [Tensor], createGraph: Bool = false, of f: ([Tensor]) throws -> Tensor
) rethrows -> [Tensor] {
    try valueAndGradient(at: inputs, createGraph: createGraph, of: f).gradient
}

/// The Hessian of `f` at `inputs` times `vector` (one tensor per input): the gradient
/// of ⟨∇f, v⟩, by differentiating the recorded backward pass.
public func hessianVectorProduct(
    at inputs: [Tensor], vector: [Tensor], of f: ([Tensor]) throws -> Tensor
) rethrows -> [Tensor] {
    try HessianVectorProducts(at: inputs, of: f)(vector)
}

/// Hessian-vector products of one function at one point, for many vectors: the gradient
/// is recorded once (its backward pass on the tape) and each product differentiates
/// ∇f·v again, so f and its gradient run once however many vectors follow (conjugate
/// gradient on a Fisher matrix asks for ten).
public struct HessianVectorProducts {
    let tape: Tape
    let watched: [Tensor]
    let gradient: [Tensor]

    public init(at inputs: [Tensor], of f: ([Tensor]) throws -> Tensor) rethrows {
        let tape = Tape()
        let watched = inputs.map { tape.watch($0.detached) }
        self.tape = tape
        self.watched = watched
        let y = try f(watched)
        gradient = y.isTracked ? tape.gradients(of: y, withRespectTo: watched, createGraph: true)
                               : inputs.map { Tensor.zeros($0.shape, dtype: $0.dtype) }
    }

    /// H·v, with `vector` shaped like the inputs.
    public func callAsFunction(_ vector: [Tensor]) -> [Tensor] {
        precondition(vector.count == watched.count, "HessianVectorProducts: \(watched.count) inputs, \(vector.count) vector parts")
        var inner: Tensor? = nil
        for (g, v) in zip(gradient, vector) {
            precondition(g.shape == v.shape, "HessianVectorProducts: vector part \(v.shape) for input \(g.shape)")
            guard g.isTracked else { continue }
            let term = (g * v.detached).sum()
            inner = inner.map { $0 + term } ?? term
        }
        guard let inner else { return watched.map { Tensor.zeros($0.shape, dtype: $0.dtype) } }
        return tape.gradients(of: inner, withRespectTo: watched).map(\.detached)
    }
}
