import Testing
import TensorCore

/// Finite-difference checks of the engine's derivatives, run in float64.
///
/// First order: each element of the engine's gradient against the central difference
/// (f(x + h·e) − f(x − h·e)) / 2h. Second order: the engine's Hessian-vector product
/// (the recorded backward pass differentiated again) against the central difference of
/// the gradient along a random direction v, (∇f(x + h·v) − ∇f(x − h·v)) / 2h.
/// An element passes when |engine − numeric| ≤ tolerance · max(1, |numeric|).
public struct GradientCheck {
    /// Relative-or-absolute tolerance of the first-order check.
    public static let firstOrderTolerance = 1e-6
    /// Relative-or-absolute tolerance of the second-order check.
    public static let secondOrderTolerance = 1e-5
    public static let step = 1e-5

    /// Checks `f` (a scalar function) at `inputs` to first and second order.
    public static func check(
        _ inputs: [Tensor], secondOrder: Bool = true, sourceLocation: SourceLocation = #_sourceLocation,
        _ f: ([Tensor]) -> Tensor
    ) {
        let x = inputs.map { $0.converted(to: .float64) }
        let analytic = gradient(at: x, of: f)
        for (k, input) in x.enumerated() {
            for j in 0..<input.count {
                let numeric = centralDifference(x, input: k, element: j) { f($0).doubleScalar }
                let engine = analytic[k][flat: j]
                #expect(
                    Swift.abs(engine - numeric) <= firstOrderTolerance * Swift.max(1, Swift.abs(numeric)),
                    "∂f/∂x\(k)[\(j)]: engine \(engine), finite difference \(numeric)",
                    sourceLocation: sourceLocation)
            }
        }
        guard secondOrder else { return }
        var rng = Xoshiro256(seed: 99)
        let v = x.map { Tensor.randomNormal($0.shape, dtype: .float64, using: &rng) }
        let hv = hessianVectorProduct(at: x, vector: v, of: f)
        let plus = gradient(at: zip(x, v).map { $0 + $1 * step }, of: f)
        let minus = gradient(at: zip(x, v).map { $0 - $1 * step }, of: f)
        for k in x.indices {
            for j in 0..<x[k].count {
                let numeric = (plus[k][flat: j] - minus[k][flat: j]) / (2 * step)
                let engine = hv[k][flat: j]
                #expect(
                    Swift.abs(engine - numeric) <= secondOrderTolerance * Swift.max(1, Swift.abs(numeric)),
                    "(Hv)\(k)[\(j)]: engine \(engine), finite difference \(numeric)",
                    sourceLocation: sourceLocation)
            }
        }
    }

    /// Checks a tensor-valued operation through two scalar functions of it: Σ w·op(x),
    /// and Σ w·op(x)³, whose Hessian differentiates op's backward rule itself.
    public static func checkOperation(
        _ inputs: [Tensor], seed: UInt64 = 7, sourceLocation: SourceLocation = #_sourceLocation,
        _ op: ([Tensor]) -> Tensor
    ) {
        var rng = Xoshiro256(seed: seed)
        let shape = op(inputs.map { $0.converted(to: .float64) }).shape
        let w = Tensor.randomNormal(shape, dtype: .float64, using: &rng)
        check(inputs, sourceLocation: sourceLocation) { (op($0) * w).sum() }
        check(inputs, sourceLocation: sourceLocation) { x in
            let y = op(x)
            return (y * y * y * w).sum()
        }
    }

    public static func centralDifference(_ x: [Tensor], input k: Int, element j: Int, _ f: ([Tensor]) -> Double) -> Double {
        func shifted(_ delta: Double) -> [Tensor] {
            var values = x[k].doubleValues
            values[j] += delta
            var copy = x
            copy[k] = Tensor(shape: x[k].shape, doubleValues: values)
            return copy
        }
        return (f(shifted(step)) - f(shifted(-step))) / (2 * step)
    }
}

/// Normal samples in float64.
public func randn(_ shape: [Int], seed: UInt64, scale: Double = 1) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    return Tensor.randomNormal(shape, standardDeviation: scale, dtype: .float64, using: &rng)
}

/// Uniform samples in [low, high), float64.
public func randu(_ shape: [Int], seed: UInt64, _ low: Double, _ high: Double) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    return Tensor.randomUniform(shape, low: low, high: high, dtype: .float64, using: &rng)
}

/// Values whose magnitude is at least `gap` (away from the kinks of relu and abs).
public func awayFromZero(_ shape: [Int], seed: UInt64, gap: Double = 0.1) -> Tensor {
    let x = randn(shape, seed: seed)
    return Tensor(shape: shape, doubleValues: x.doubleValues.map { $0 >= 0 ? $0 + gap : $0 - gap })
}
