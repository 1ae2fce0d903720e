import TensorCore

/// A value that owns named parameter tensors: a layer, a network, a policy.
///
/// Everything else — the parameter list, flattening to one vector, gradients shaped like
/// the model, optimisers, saving — is built on the single requirement, a visit of every
/// parameter in a fixed order. Because models are values, "the same network with other
/// parameters" (MAML's adapted policy, TRPO's trial step) is just a modified copy.
public protocol ParameterCollection {
    /// Calls `body` with the dotted name and the storage of every parameter, always in
    /// the same order. The name is an autoclosure: building it costs string work, and
    /// most visits (gradients, optimiser steps) never read it.
    mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void)
    /// Calls `body` with every parameter in visiting order, changing nothing. The default
    /// visits a copy; a collection that overrides it reads its parameters in place and
    /// saves that copy of its storage (reading a model's parameters is on every gradient).
    func forEachParameter(_ body: (Tensor) -> Void)
}

extension ParameterCollection {
    public func forEachParameter(_ body: (Tensor) -> Void) {
        var copy = self
        copy.visitParameters { _, t in body(t) }
    }

    /// The parameters in visiting order.
    public var parameters: [Tensor] {
        get {
            var list: [Tensor] = []
            forEachParameter { list.append($0) }
            return list
        }
        set {
            var i = 0
            visitParameters { name, t in
                precondition(i < newValue.count, "parameters: only \(newValue.count) tensors given")
                precondition(newValue[i].shape == t.shape, "parameter \(name()): shape \(newValue[i].shape) for \(t.shape)")
                t = newValue[i]
                i += 1
            }
            precondition(i == newValue.count, "parameters: \(newValue.count) tensors given for \(i) parameters")
        }
    }

    /// (name, tensor) pairs in visiting order.
    public var namedParameters: [(name: String, value: Tensor)] {
        var copy = self
        var list: [(String, Tensor)] = []
        copy.visitParameters { name, t in list.append((name(), t)) }
        return list
    }

    /// Whether `other` has the same parameter names and shapes, in the same order (a loaded
    /// state checked against the model a config builds).
    public func hasSameParameterShapes(as other: Self) -> Bool {
        let mine = namedParameters, theirs = other.namedParameters
        return mine.map(\.name) == theirs.map(\.name) && zip(mine, theirs).allSatisfy { $0.value.shape == $1.value.shape }
    }

    /// The total number of scalars over all parameters.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// All parameters concatenated into one vector (differentiable, so a flat vector of
    /// tracked parameters stays tracked).
    public var flatParameters: Tensor {
        Tensor.concat(parameters.map { $0.reshaped([-1]) }, axis: 0)
    }

    /// The parameters as one Double vector (the flat vectors of conjugate gradient and line searches).
    public var flatParameterValues: [Double] { flatParameters.values.map(Double.init) }

    /// A copy whose parameters are read, in order, from `values` (rounded to Float).
    public func withFlatParameters(_ values: [Double]) -> Self {
        withFlatParameters(Tensor(shape: [values.count], values: values.map(Float.init)))
    }

    /// A copy whose parameters are read, in order, from `values`.
    public func withFlatParameters(_ values: [Float]) -> Self {
        withFlatParameters(Tensor(shape: [values.count], values: values))
    }

    /// A copy whose parameters are read, in order, from the vector `flat`.
    public func withFlatParameters(_ flat: Tensor) -> Self {
        precondition(flat.shape == [parameterCount], "withFlatParameters: vector \(flat.shape) for \(parameterCount) scalars")
        var copy = self
        var offset = 0
        copy.visitParameters { _, t in
            let n = t.count
            t = flat.slice(axis: 0, offset..<(offset + n)).reshaped(t.shape)
            offset += n
        }
        return copy
    }

    /// A copy with every parameter transformed by `f`.
    public func mapParameters(_ f: (Tensor) -> Tensor) -> Self {
        var copy = self
        copy.visitParameters { _, t in t = f(t) }
        return copy
    }

    /// A copy with `f(p, q)` for each pair of corresponding parameters of self and `other`.
    public func zipParameters(_ other: Self, _ f: (Tensor, Tensor) -> Tensor) -> Self {
        let theirs = other.parameters
        var i = 0
        var copy = self
        copy.visitParameters { _, t in
            t = f(t, theirs[i])
            i += 1
        }
        return copy
    }

    /// The same model with its parameters cut from any tape.
    public var detached: Self { mapParameters { $0.detached } }

    /// The same model stored as `dtype` (float64 for finite-difference checks).
    public func converted(to dtype: DType) -> Self { mapParameters { $0.converted(to: dtype) } }

    /// The same model with every parameter zero (a gradient accumulator).
    public var zerosLike: Self { mapParameters { Tensor.zeros($0.shape, dtype: $0.dtype) } }

    /// Σ over parameters of the squared entries.
    public var squaredNorm: Double { parameters.reduce(0) { $0 + $1.squaredNorm().doubleScalar } }
}

/// The value of `f` at `model` and its gradient, shaped like the model.
///
/// Nests like `TensorCore.valueAndGradient(at:createGraph:of:)`: called on a model whose
/// parameters are tracked by an outer transform, the gradient stays differentiable.
public func valueAndGradient<Model: ParameterCollection>(
    at model: Model, createGraph: Bool = false, of f: (Model) throws -> Tensor
) rethrows -> (value: Tensor, gradient: Model) {
    let (value, grads) = try valueAndGradient(at: model.parameters, createGraph: createGraph) { p in
        var m = model
        m.parameters = p
        return try f(m)
    }
    var g = model
    g.parameters = grads
    return (value, g)
}

/// The gradient of `f` at `model`, shaped like the model.
public func gradient<Model: ParameterCollection>(
    at model: Model, createGraph: Bool = false, of f: (Model) throws -> Tensor
) rethrows -> Model {
    try valueAndGradient(at: model, createGraph: createGraph, of: f).gradient
}

/// Scales `gradient` so that its global norm is at most `maxNorm`; returns the norm
/// before clipping.
@discardableResult
public func clipByGlobalNorm<Model: ParameterCollection>(_ gradient: inout Model, maxNorm: Double) -> Double {
    let norm = gradient.squaredNorm.squareRoot()
    if norm > maxNorm, norm.isFinite {
        let scale = maxNorm / norm
        gradient = gradient.mapParameters { $0 * scale }
    }
    return norm
}

/// A list of parameter collections of one type is itself one (e.g. a stack of layers).
extension Array: ParameterCollection where Element: ParameterCollection {
    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        for i in indices {
            self[i].visitParameters { name, t in
                withoutActuallyEscaping(name) { name in body("\(i).\(name())", &t) }
            }
        }
    }

    public func forEachParameter(_ body: (Tensor) -> Void) {
        for element in self { element.forEachParameter(body) }
    }
}
