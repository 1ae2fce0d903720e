import Foundation
import NN
import TensorCore

/// Trust-region policy optimisation (Schulman et al. 2015), the parts every user shares:
/// the natural-gradient direction by conjugate gradient on Fisher-vector products, and the
/// KL-constrained backtracking line search.
///
/// One TRPO step from θ with surrogate gain L (to maximise) and mean KL(π_θ ‖ π_θ′):
/// 1. g = ∇L(θ);  2. x ≈ F⁻¹g by `conjugateGradient` with F v = ∇²KL·v (+ damping·v);
/// 3. full step s = √(2δ / xᵀFx)·x;  4. try θ + βᵏs for k = 0, 1, …, accepting the first
///    whose KL ≤ δ and whose L improved.
public struct TRPOSettings: Codable, Sendable, Equatable {
    /// δ, the KL bound per update.
    public var maxKL: Double
    public var damping: Double
    public var conjugateGradientIterations: Int
    /// β, the backtracking factor, and the number of tries.
    public var backtrackFactor: Double
    public var backtrackSteps: Int

    public init(maxKL: Double = 0.01, damping: Double = 0.1, conjugateGradientIterations: Int = 10,
                backtrackFactor: Double = 0.5, backtrackSteps: Int = 15) {
        self.maxKL = maxKL
        self.damping = damping
        self.conjugateGradientIterations = conjugateGradientIterations
        self.backtrackFactor = backtrackFactor
        self.backtrackSteps = backtrackSteps
    }

    /// Command-line names and help of these settings at `prefix` inside a larger config;
    /// `maxKLFlag` gives the KL bound a shorter flag than its key's.
    public static func flags(prefix: String, maxKLFlag: String? = nil) -> [SettingFlag] {
        [SettingFlag(prefix + "maxKL", flag: maxKLFlag, help: "TRPO KL bound δ"),
         SettingFlag(prefix + "damping", help: "TRPO damping added to the Fisher-vector products"),
         SettingFlag(prefix + "conjugateGradientIterations", help: "TRPO conjugate-gradient iterations"),
         SettingFlag(prefix + "backtrackFactor", help: "TRPO line search: step shrink factor β"),
         SettingFlag(prefix + "backtrackSteps", help: "TRPO line search: steps tried")]
    }

    /// Throws a `ConfigError` naming the first field out of range; `prefix` is the path to
    /// these settings inside a larger config.
    public func validate(prefix: String = "") throws(ConfigError) {
        try ConfigError.check(prefix + "maxKL", maxKL, open: 0..<10)
        try ConfigError.check(prefix + "damping", damping, 0...1e6)
        try ConfigError.check(prefix + "conjugateGradientIterations", conjugateGradientIterations, 1...1000)
        try ConfigError.check(prefix + "backtrackFactor", backtrackFactor, open: 0..<1)
        try ConfigError.check(prefix + "backtrackSteps", backtrackSteps, 1...100)
    }
}

public enum TRPO {
    /// Solves A x = b for a symmetric positive-definite A given only as products A·v
    /// (Hestenes & Stiefel), from x = 0, for `iterations` steps or until ‖r‖² < tolerance.
    public static func conjugateGradient(
        _ product: ([Double]) throws -> [Double], _ b: [Double], iterations: Int, tolerance: Double = 1e-10
    ) rethrows -> [Double] {
        try conjugateGradientWithResidual(product, b, iterations: iterations, tolerance: tolerance).solution
    }

    /// Conjugate gradient as above, also returning the residual r = b − A x it kept
    /// up to date, so that xᵀAx = xᵀ(b − r) costs no further product.
    public static func conjugateGradientWithResidual(
        _ product: ([Double]) throws -> [Double], _ b: [Double], iterations: Int, tolerance: Double = 1e-10
    ) rethrows -> (solution: [Double], residual: [Double]) {
        var x = [Double](repeating: 0, count: b.count)
        var r = b, p = b
        var rr = dot(r, r)
        for _ in 0..<iterations where rr >= tolerance {
            let ap = try product(p)
            let alpha = rr / Swift.max(dot(p, ap), 1e-300)
            for i in x.indices {
                x[i] += alpha * p[i]
                r[i] -= alpha * ap[i]
            }
            let next = dot(r, r)
            let beta = next / rr
            for i in p.indices { p[i] = r[i] + beta * p[i] }
            rr = next
        }
        return (x, r)
    }

    public static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in a.indices { s += a[i] * b[i] }
        return s
    }

    /// The outcome of one TRPO update.
    public struct StepResult: Sendable {
        public var parameters: [Double]
        public var accepted: Bool
        public var kl: Double
        public var improvement: Double
        public var backtracks: Int
    }

    /// One TRPO update of a flat parameter vector θ.
    /// - `gradient`: g = ∇L at θ (L is the surrogate to maximise).
    /// - `fisherProduct`: v ↦ ∇²KL(θ)·v (without damping; damping is added here).
    /// - `evaluate`: for candidate parameters, (L, KL to the old policy).
    /// - `gainAtStart`: L(θ) if the caller has it already (else `evaluate(θ)` computes it).
    public static func step(
        parameters theta: [Double], gradient g: [Double], settings: TRPOSettings,
        fisherProduct: ([Double]) throws -> [Double], evaluate: ([Double]) throws -> (gain: Double, kl: Double),
        gainAtStart: Double? = nil
    ) rethrows -> StepResult {
        func damped(_ v: [Double]) throws -> [Double] {
            let fv = try fisherProduct(v)
            return zip(fv, v).map { $0 + settings.damping * $1 }
        }
        let (x, residual) = try conjugateGradientWithResidual(damped, g, iterations: settings.conjugateGradientIterations)
        // xᵀ(F + damping)x = xᵀ(g − r): CG's residual saves an eleventh product.
        let xFx = dot(x, g) - dot(x, residual)
        guard xFx > 0, xFx.isFinite else { return StepResult(parameters: theta, accepted: false, kl: 0, improvement: 0, backtracks: 0) }
        let scale = (2 * settings.maxKL / xFx).squareRoot()
        let baseline = try gainAtStart ?? evaluate(theta).gain
        var fraction = 1.0
        for k in 0..<settings.backtrackSteps {
            let candidate = zip(theta, x).map { $0 + fraction * scale * $1 }
            let (gain, kl) = try evaluate(candidate)
            if kl.isFinite, gain.isFinite, kl <= settings.maxKL, gain > baseline {
                return StepResult(parameters: candidate, accepted: true, kl: kl, improvement: gain - baseline, backtracks: k)
            }
            fraction *= settings.backtrackFactor
        }
        return StepResult(parameters: theta, accepted: false, kl: 0, improvement: 0, backtracks: settings.backtrackSteps)
    }

    /// One TRPO update of a parameter collection, the driver RL² and the MAML family share:
    /// the flat-vector conversions are made here. `fisherProduct` receives the direction
    /// shaped as `start`'s parameters; `evaluate` a candidate collection. The result's
    /// parameters are checked finite (a `NonFiniteError` for `iteration` otherwise).
    public static func step<P: ParameterCollection>(
        from start: P, gradient: [Double], settings: TRPOSettings, iteration: Int,
        fisherProduct: ([Tensor]) throws -> [Double], evaluate: (P) throws -> (gain: Double, kl: Double), gainAtStart: Double? = nil
    ) throws -> (updated: P, result: StepResult) {
        let result = try step(parameters: start.flatParameterValues, gradient: gradient, settings: settings,
                          fisherProduct: { try fisherProduct(start.withFlatParameters($0).parameters) },
                          evaluate: { try evaluate(start.withFlatParameters($0)) }, gainAtStart: gainAtStart)
        guard result.parameters.allSatisfy({ $0.isFinite }) else { throw NonFiniteError(iteration: iteration, quantity: "TRPO step") }
        return (start.withFlatParameters(result.parameters), result)
    }
}
