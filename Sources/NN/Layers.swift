import TensorCore

/// An elementwise nonlinearity between layers.
public enum Activation: String, NamedChoice {
    case tanh, relu, identity

    /// Applies the nonlinearity.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .tanh: return x.tanh()
        case .relu: return x.relu()
        case .identity: return x
        }
    }
}

/// An affine map y = x·W + b over the last axis, with W stored as [input, output].
public struct Linear: ParameterCollection, Codable, Sendable {
    public var weight: Tensor
    public var bias: Tensor

    /// PyTorch's default initialisation: W and b uniform in ±1/√input, times `scale`
    /// (a small `scale` gives the near-zero output layer policy heads want).
    public init(inputSize: Int, outputSize: Int, scale: Double = 1, using rng: inout Xoshiro256) {
        let bound = scale / Double(inputSize).squareRoot()
        weight = Tensor.randomUniform([inputSize, outputSize], low: -bound, high: bound, using: &rng)
        bias = Tensor.randomUniform([outputSize], low: -bound, high: bound, using: &rng)
    }

    public init(weight: Tensor, bias: Tensor) {
        precondition(weight.rank == 2 && bias.shape == [weight.shape[1]], "Linear: weight \(weight.shape), bias \(bias.shape)")
        self.weight = weight
        self.bias = bias
    }

    public var inputSize: Int { weight.shape[0] }
    public var outputSize: Int { weight.shape[1] }

    /// This layer with `count` more outputs appended, each with bias `bias` and zero weights,
    /// or the weights of `source`'s same outputs (a layer of the wider size, e.g. a fresh one).
    public func appendingOutputs(_ count: Int, bias value: Double, weightsFrom source: Linear? = nil) -> Linear {
        let rows = inputSize, old = outputSize, new = old + count
        precondition(source.map { $0.inputSize == rows && $0.outputSize == new } ?? true, "appendingOutputs: source of another shape")
        let w = weight.doubleValues, b = bias.doubleValues
        var widened = source?.weight.doubleValues ?? [Double](repeating: 0, count: rows * new)
        for r in 0..<rows { for c in 0..<old { widened[r * new + c] = w[r * old + c] } }
        return Linear(weight: Tensor(shape: [rows, new], doubleValues: widened, dtype: weight.dtype),
                      bias: Tensor(shape: [new], doubleValues: b + [Double](repeating: value, count: count), dtype: bias.dtype))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.matmul(weight) + bias }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        body("weight", &weight)
        body("bias", &bias)
    }

    public func forEachParameter(_ body: (Tensor) -> Void) {
        body(weight)
        body(bias)
    }
}

/// A multilayer perceptron: Linear layers with `activation` between them (none after
/// the last).
public struct MLP: ParameterCollection, Codable, Sendable {
    public var layers: [Linear]
    public var activation: Activation

    /// - Parameters:
    ///   - sizes: input size, hidden sizes, output size (at least two entries).
    ///   - activation: the nonlinearity after every layer but the last.
    ///   - outputScale: scale of the last layer's initialisation.
    ///   - rng: the generator the weights are drawn from.
    public init(sizes: [Int], activation: Activation = .tanh, outputScale: Double = 1, using rng: inout Xoshiro256) {
        precondition(sizes.count >= 2, "MLP needs an input and an output size, got \(sizes)")
        layers = (0..<(sizes.count - 1)).map { i in
            Linear(inputSize: sizes[i], outputSize: sizes[i + 1], scale: i == sizes.count - 2 ? outputScale : 1, using: &rng)
        }
        self.activation = activation
    }

    public var inputSize: Int { layers[0].inputSize }
    public var outputSize: Int { layers[layers.count - 1].outputSize }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for (i, layer) in layers.enumerated() {
            h = layer(h)
            if i < layers.count - 1 { h = activation(h) }
        }
        return h
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        layers.visitParameters { name, t in
            withoutActuallyEscaping(name) { name in body("layers.\(name())", &t) }
        }
    }

    public func forEachParameter(_ body: (Tensor) -> Void) { layers.forEachParameter(body) }
}

/// Layer normalisation over the last axis with a learned gain and bias.
public struct LayerNorm: ParameterCollection, Codable, Sendable {
    public var gain: Tensor
    public var bias: Tensor
    public var epsilon: Double

    public init(size: Int, epsilon: Double = 1e-5) {
        gain = Tensor.ones([size])
        bias = Tensor.zeros([size])
        self.epsilon = epsilon
    }

    /// The fused primitive `Tensor.layerNormalized`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.layerNormalized(gain: gain, bias: bias, epsilon: epsilon)
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        body("gain", &gain)
        body("bias", &bias)
    }
}

extension Tensor {
    /// A matrix with `count` rows inserted before row `index` (a layer's weights for inputs it
    /// has never seen): zeros, or `source`'s rows at the same place (a matrix of the wider shape).
    public func insertingRows(_ count: Int, at index: Int, from source: Tensor? = nil) -> Tensor {
        precondition(rank == 2 && (0...shape[0]).contains(index) && count >= 0, "insertingRows: shape \(shape), at \(index)")
        let columns = shape[1], values = doubleValues
        precondition(source.map { $0.shape == [shape[0] + count, columns] } ?? true, "insertingRows: source of another shape")
        let inserted = source.map { Array($0.doubleValues[(index * columns)..<((index + count) * columns)]) }
            ?? [Double](repeating: 0, count: count * columns)
        let widened = Array(values[..<(index * columns)]) + inserted + Array(values[(index * columns)...])
        return Tensor(shape: [shape[0] + count, columns], doubleValues: widened, dtype: dtype)
    }
}
