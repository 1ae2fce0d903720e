import Foundation
import TensorCore

/// A categorical distribution over the last axis of `logits` [..., K]; one distribution
/// per leading index.
public struct Categorical {
    /// Normalised log-probabilities, [..., K].
    public let logProbabilities: Tensor

    public init(logits: Tensor) {
        precondition(logits.rank >= 1, "Categorical: logits need a category axis, got \(logits.shape)")
        logProbabilities = logits.logSoftmax(axis: -1)
    }

    public var categoryCount: Int { logProbabilities.shape[logProbabilities.rank - 1] }
    var batchShape: [Int] { Array(logProbabilities.shape.dropLast()) }

    /// One category per distribution, in flat order of the leading axes.
    public func sample(using rng: inout Xoshiro256) -> [Int32] {
        let k = categoryCount
        let p = logProbabilities.values
        var out = [Int32](repeating: 0, count: p.count / k)
        for row in out.indices {
            let u = rng.uniformDouble()
            var cumulative = 0.0
            var choice = k - 1
            for j in 0..<k {
                cumulative += Double(Foundation.exp(p[row * k + j]))
                if u < cumulative { choice = j; break }
            }
            out[row] = Int32(choice)
        }
        return out
    }

    /// The most probable category of each distribution.
    public var mode: [Int32] {
        let k = categoryCount
        let p = logProbabilities.values
        return (0..<(p.count / k)).map { row in
            var best = 0
            for j in 1..<k where p[row * k + j] > p[row * k + best] { best = j }
            return Int32(best)
        }
    }

    /// log p(action) for one action per distribution, shaped like the leading axes.
    public func logProb(_ actions: [Int32]) -> Tensor {
        let shape = batchShape + [1]
        precondition(actions.count == shapeCount(batchShape), "Categorical.logProb: \(actions.count) actions for batch \(batchShape)")
        return logProbabilities.gathering(axis: -1, indices: actions, indexShape: shape).reshaped(batchShape)
    }

    /// −Σ p log p, shaped like the leading axes.
    public func entropy() -> Tensor {
        -(logProbabilities.exp() * logProbabilities).sum(axes: [logProbabilities.rank - 1])
    }

    /// KL(self ‖ other) = Σ p (log p − log q), shaped like the leading axes.
    public func kl(to other: Categorical) -> Tensor {
        (logProbabilities.exp() * (logProbabilities - other.logProbabilities)).sum(axes: [logProbabilities.rank - 1])
    }
}

private let halfLogTwoPi = 0.5 * Foundation.log(2 * Double.pi)

/// A Gaussian with diagonal covariance over the last axis: `mean` [..., D] and
/// `logStd` broadcastable to it (a state-independent [D] vector is common).
public struct DiagonalGaussian {
    public let mean: Tensor
    public let logStd: Tensor

    public init(mean: Tensor, logStd: Tensor) {
        precondition(mean.rank >= 1, "DiagonalGaussian: mean needs an event axis, got \(mean.shape)")
        self.mean = mean
        self.logStd = logStd
    }

    var eventAxis: Int { mean.rank - 1 }

    /// mean + exp(logStd) · noise: the reparameterised sample for given standard-normal noise.
    public func sample(noise: Tensor) -> Tensor { mean + logStd.exp() * noise }

    /// A sample drawn with `rng` (differentiable in mean and logStd).
    public func sample(using rng: inout Xoshiro256) -> Tensor {
        sample(noise: Tensor.randomNormal(mean.shape, dtype: mean.dtype, using: &rng))
    }

    /// Σ over the event axis of log N(x; mean, std²).
    public func logProb(_ x: Tensor) -> Tensor {
        let z = (x - mean) * (-logStd).exp()
        return (z.squared() * -0.5 - logStd - halfLogTwoPi).sum(axes: [z.rank - 1])
    }

    /// Σ over the event axis of logStd + ½ log(2πe).
    public func entropy() -> Tensor {
        (logStd.expanded(to: mean.shape) + (0.5 + halfLogTwoPi)).sum(axes: [eventAxis])
    }

    /// KL(self ‖ other) in closed form:
    /// Σ log σq − log σp + (σp² + (μp − μq)²) / 2σq² − ½.
    public func kl(to other: DiagonalGaussian) -> Tensor {
        let ratio = ((logStd - other.logStd) * 2).exp()
        let gap = ((mean - other.mean) * (-other.logStd).exp()).squared()
        return ((ratio + gap - 1) * 0.5 - (logStd - other.logStd)).sum(axes: [eventAxis])
    }
}

/// A diagonal Gaussian pushed through tanh: the bounded-action policy of SAC.
/// Actions lie in (−1, 1); scale them to the action box outside.
public struct TanhGaussian {
    public let base: DiagonalGaussian

    public init(mean: Tensor, logStd: Tensor) { base = DiagonalGaussian(mean: mean, logStd: logStd) }

    /// For given standard-normal noise: the action tanh(u) and the pre-squash u
    /// (keep u: the log-density of an action is stable only computed from it).
    public func sample(noise: Tensor) -> (action: Tensor, preSquash: Tensor) {
        let u = base.sample(noise: noise)
        return (u.tanh(), u)
    }

    public func sample(using rng: inout Xoshiro256) -> (action: Tensor, preSquash: Tensor) {
        sample(noise: Tensor.randomNormal(base.mean.shape, dtype: base.mean.dtype, using: &rng))
    }

    /// log density of a = tanh(u): log N(u) − Σ log(1 − tanh²u), with the stable form
    /// log(1 − tanh²u) = 2(log 2 − u − softplus(−2u)).
    public func logProb(preSquash u: Tensor) -> Tensor {
        let logJacobian = ((-u * 2).softplus() + u - Foundation.log(2.0)) * -2
        return base.logProb(u) - logJacobian.sum(axes: [u.rank - 1])
    }

    /// log density of an action in (−1, 1) (recovers u = atanh(a); prefer
    /// ``logProb(preSquash:)`` when u is known).
    public func logProb(action a: Tensor) -> Tensor {
        let clipped = a.clamped(-1 + 1e-6, 1 - 1e-6)
        let u = ((1 + clipped) / (1 - clipped)).log() * 0.5
        return logProb(preSquash: u)
    }

    /// The entropy has no closed form; this is the Monte-Carlo estimate −log p(a) averaged
    /// over the given noise samples [S, ..., D] (differentiable, fixed noise).
    public func entropy(noise: Tensor) -> Tensor {
        let u = base.mean + base.logStd.exp() * noise
        return -logProb(preSquash: u).mean(axes: [0])
    }

    /// KL is invariant under the bijection tanh, so it equals the base Gaussians' KL exactly.
    public func kl(to other: TanhGaussian) -> Tensor { base.kl(to: other.base) }
}
