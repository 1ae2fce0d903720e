import Envs
import TensorCore

/// Mean trial return of a strategy over freshly sampled tasks, with its standard error.
public struct TrialStatistics: Codable, Sendable {
    public var meanReturn: Double
    public var standardError: Double
    public var trials: Int

    public init(returns: [Double]) {
        let statistics = SampleStatistics(returns)
        trials = statistics.count
        meanReturn = statistics.mean
        standardError = statistics.standardError
    }
}

/// Runs a bandit strategy for `trials` trials of `pulls` pulls on tasks from `bandit`.
/// Trial i draws its task and its randomness from generator i of `seed`'s split, so the
/// same seed gives the same tasks to every strategy.
public func evaluateBandit<S: BanditStrategy>(
    _ strategy: S, bandit: BernoulliBandit, pulls: Int, trials: Int, seed: UInt64
) -> TrialStatistics {
    var root = Xoshiro256(seed: seed)
    var strategy = strategy
    var env = bandit
    var returns: [Double] = []
    returns.reserveCapacity(trials)
    var action: [Float] = [0], obs: [Float] = [0]
    for _ in 0..<trials {
        var taskRNG = root.split()
        var rng = root.split()
        env.setTask(env.sampleTasks(1, using: &taskRNG)[0])
        strategy.start(arms: env.arms, pulls: pulls)
        var total = 0.0
        for t in 0..<pulls {
            let arm = strategy.choose(step: t, using: &rng)
            action[0] = Float(arm)
            let outcome = try! action.withUnsafeBufferPointer { a in
                try obs.withUnsafeMutableBufferPointer { o in try env.step(a, observation: o, using: &rng) }
            }
            strategy.record(arm: arm, reward: outcome.reward)
            total += Double(outcome.reward)
        }
        returns.append(total)
    }
    return TrialStatistics(returns: returns)
}
