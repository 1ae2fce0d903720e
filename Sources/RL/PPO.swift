import NN
import TensorCore

/// The clipped surrogate objective of PPO (Schulman et al. 2017), with a value loss and
/// an entropy bonus, as one differentiable scalar over a masked batch.
///
/// L = −E[min(ρA, clip(ρ, 1 − ε, 1 + ε)A)] + c_v·E[(V − R)²] − c_e·E[H(π)],
/// ρ = exp(log π(a|s) − log π_old(a|s)); expectations are means over the steps where
/// `mask` is 1.
public struct PPOObjective: Codable, Sendable, Equatable {
    public var clip: Double
    public var valueCoefficient: Double
    public var entropyCoefficient: Double

    public init(clip: Double = 0.1, valueCoefficient: Double = 0.5, entropyCoefficient: Double = 0.01) {
        self.clip = clip
        self.valueCoefficient = valueCoefficient
        self.entropyCoefficient = entropyCoefficient
    }

    /// The loss terms; every input is shaped like `mask` (any shape) and only the first
    /// two and `values` and `entropy` carry gradients.
    public struct Terms {
        public var total: Tensor
        public var policyLoss: Tensor
        public var valueLoss: Tensor
        public var entropy: Tensor
    }

    public func loss(
        logProb: Tensor, oldLogProb: Tensor, advantages: Tensor,
        values: Tensor, returns: Tensor, entropy: Tensor, mask: Tensor
    ) -> Terms {
        let policy = policyTerms(logProb: logProb, oldLogProb: oldLogProb, advantages: advantages, entropy: entropy, mask: mask)
        let valueLoss = self.valueLoss(values: values, returns: returns, mask: mask)
        let total = policy.policyLoss + valueCoefficient * valueLoss - entropyCoefficient * policy.entropy
        return Terms(total: total, policyLoss: policy.policyLoss, valueLoss: valueLoss, entropy: policy.entropy)
    }

    /// The policy's part alone: the clipped surrogate loss and the mean entropy; the
    /// policy's share of the total is `policyLoss − entropyCoefficient · entropy`.
    public func policyTerms(logProb: Tensor, oldLogProb: Tensor, advantages: Tensor, entropy: Tensor, mask: Tensor)
        -> (policyLoss: Tensor, entropy: Tensor)
    {
        let ratio = (logProb - oldLogProb).exp()
        let unclipped = ratio * advantages
        let clipped = ratio.clamped(1 - clip, 1 + clip) * advantages
        return (-Self.maskedMean(Tensor.minimum(unclipped, clipped), mask), Self.maskedMean(entropy, mask))
    }

    /// E[(V − R)²] over the masked steps (the total weighs it by `valueCoefficient`).
    public func valueLoss(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor {
        Self.maskedMean((values - returns).squared(), mask)
    }

    static func maskedMean(_ x: Tensor, _ mask: Tensor) -> Tensor {
        (x * mask).sum() / Swift.max(Double(mask.values.reduce(0, +)), 1)
    }
}

/// The optimisation loop of a PPO update, shared by RL² and the MAML family's PPO outer
/// step: `epochs` passes, each over the minibatches `minibatches(epoch)` lists (in that
/// order), each an Adam step along the gradient `gradient` returns at the current
/// parameters. A non-finite loss stops the update with a `NonFiniteError` naming `quantity`.
public enum PPO {
    public static func optimize<P: ParameterCollection, Minibatch>(
        _ parameters: inout P, optimizer: inout Adam, epochs: Int, iteration: Int, quantity: String,
        minibatches: (_ epoch: Int) -> [Minibatch], gradient: (P, Minibatch) throws -> (loss: Double, gradient: P)
    ) throws {
        for epoch in 0..<epochs {
            for minibatch in minibatches(epoch) {
                let (loss, direction) = try gradient(parameters, minibatch)
                guard loss.isFinite else { throw NonFiniteError(iteration: iteration, quantity: quantity) }
                optimizer.update(&parameters, along: direction)
            }
        }
    }
}
