/// Generalised advantage estimation (Schulman et al. 2016) over a time-major batch.
///
/// δₜ = rₜ + γ V(sₜ₊₁)(1 − endₜ) − V(sₜ),  Aₜ = δₜ + γλ(1 − endₜ) Aₜ₊₁,  Rₜ = Aₜ + V(sₜ).
/// `ends[t·B + b]` marks a step after which nothing is bootstrapped: a true termination,
/// or for RL² the end of a trial (episode boundaries inside a trial are *not* ends: the
/// trial's return is what is optimised). After the last step the value is `bootstrap[b]`.
public enum GAE {
    public static func compute(
        rewards: [Float], values: [Float], ends: [Bool], bootstrap: [Float],
        steps: Int, batch: Int, gamma: Float, lambda: Float
    ) -> (advantages: [Float], returns: [Float]) {
        precondition(rewards.count == steps * batch && values.count == steps * batch && ends.count == steps * batch,
                     "GAE: buffers must hold steps × batch = \(steps * batch) entries")
        precondition(bootstrap.count == batch, "GAE: one bootstrap value per batch column")
        var advantages = [Float](repeating: 0, count: steps * batch)
        var returns = advantages
        for b in 0..<batch {
            var nextAdvantage: Float = 0
            var nextValue = bootstrap[b]
            for t in stride(from: steps - 1, through: 0, by: -1) {
                let i = t * batch + b
                let carry: Float = ends[i] ? 0 : 1
                let delta = rewards[i] + gamma * nextValue * carry - values[i]
                let a = delta + gamma * lambda * carry * nextAdvantage
                advantages[i] = a
                returns[i] = a + values[i]
                nextAdvantage = a
                nextValue = values[i]
            }
        }
        return (advantages, returns)
    }
}
