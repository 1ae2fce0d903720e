import Foundation
import TensorCore

/// Adam (Kingma & Ba 2015) with bias correction. Its moments are part of its `Codable`
/// state, so a checkpoint that saves the optimiser resumes exactly.
public struct Adam: Codable, Sendable {
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    /// Updates taken so far (drives the bias correction).
    public private(set) var step: Int = 0
    var firstMoment: [Tensor] = []
    var secondMoment: [Tensor] = []

    public init(learningRate: Double = 3e-4, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    /// For each parameter, the shapes of its first and second moment (empty before the
    /// first step), to check a loaded state against a model.
    public var momentShapes: [[[Int]]] {
        guard firstMoment.count == secondMoment.count else { return [[[-1]]] }
        return zip(firstMoment, secondMoment).map { [$0.shape, $1.shape] }
    }

    /// One descent step: θ ← θ − lr · m̂ / (√v̂ + ε).
    public mutating func update<Model: ParameterCollection>(_ model: inout Model, along gradient: Model) {
        let grads = gradient.parameters
        if firstMoment.isEmpty {
            firstMoment = grads.map { Tensor.zeros($0.shape, dtype: $0.dtype) }
            secondMoment = firstMoment
        }
        precondition(firstMoment.count == grads.count, "Adam: state for \(firstMoment.count) parameters, gradient has \(grads.count)")
        step += 1
        let c1 = 1 - Foundation.pow(beta1, Double(step)), c2 = 1 - Foundation.pow(beta2, Double(step))
        let stepSize = Float(learningRate / c1), b1 = Float(beta1), b2 = Float(beta2)
        let rootC2 = Float(c2.squareRoot()), eps = Float(epsilon)
        var i = 0
        model.visitParameters { name, p in
            let g = grads[i].detached.converted(to: .float32)
            precondition(g.shape == p.shape, "Adam: gradient of \(name()) is \(g.shape), parameter is \(p.shape)")
            let wasDouble = p.dtype == .float64
            p = p.detached.converted(to: .float32)
            g.withUnsafeFloats { g in
                firstMoment[i].withUnsafeMutableFloats { m in
                    secondMoment[i].withUnsafeMutableFloats { v in
                        p.withUnsafeMutableFloats { p in
                            for j in 0..<p.count {
                                m[j] = b1 * m[j] + (1 - b1) * g[j]
                                v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j]
                                p[j] -= stepSize * m[j] / (v[j].squareRoot() / rootC2 + eps)
                            }
                        }
                    }
                }
            }
            if wasDouble { p = p.converted(to: .float64) }
            i += 1
        }
    }
}

/// Stochastic gradient descent, optionally with momentum: v ← μv + g, θ ← θ − lr·v.
public struct SGD: Codable, Sendable {
    public var learningRate: Double
    public var momentum: Double
    var velocity: [Tensor] = []

    public init(learningRate: Double, momentum: Double = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
    }

    public mutating func update<Model: ParameterCollection>(_ model: inout Model, along gradient: Model) {
        var grads = gradient.parameters.map { $0.detached }
        if momentum != 0 {
            if velocity.isEmpty { velocity = grads.map { Tensor.zeros($0.shape, dtype: $0.dtype) } }
            for i in grads.indices {
                velocity[i] = velocity[i] * momentum + grads[i]
                grads[i] = velocity[i]
            }
        }
        var i = 0
        let lr = learningRate
        model.visitParameters { _, p in
            p = p.detached - grads[i] * lr
            i += 1
        }
    }
}
