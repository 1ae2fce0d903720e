import Envs
import TensorCore

/// Mean trial return of a strategy over freshly sampled tasks, with its standard error.
public struct TrialStatistics: Codable, Sendable {
    public var meanReturn: Double
    public var standardError: Double
    public var trials: Int
    /// The strategy's exact expected trial return over the task prior, where it is known
    /// (the Bayes-optimal dynamic programme's value); nil otherwise.
    public var exactExpectation: Double?
    /// For bandit strategies, the mean number of different arms a trial pulled (how widely the
    /// strategy explores) and its standard error; nil elsewhere.
    public var distinctActions: Double?
    /// The standard error of `distinctActions`.
    public var distinctActionsStderr: Double?

    /// The statistics of these trial returns (and, for bandits, of the arms each trial pulled).
    public init(returns: [Double], distinctActions: [Double] = []) {
        let statistics = SampleStatistics(returns)
        trials = statistics.count
        meanReturn = statistics.mean
        standardError = statistics.standardError
        if !distinctActions.isEmpty {
            let arms = SampleStatistics(distinctActions)
            self.distinctActions = arms.mean
            distinctActionsStderr = arms.standardError
        }
    }
}

/// Runs a bandit strategy for `trials` trials of `pulls` pulls on tasks from `bandit`'s family.
/// Trial i draws its task and its randomness from generator i of `seed`'s split, so the
/// same seed gives the same tasks to every strategy.
public func evaluateBandit<S: BanditStrategy, B: BernoulliArms>(
    _ strategy: S, bandit: B, pulls: Int, trials: Int, seed: UInt64
) -> TrialStatistics {
    var streams = TrialStreams(seed: seed)
    var strategy = strategy
    var env = bandit
    var returns: [Double] = [], distinct: [Double] = []
    returns.reserveCapacity(trials)
    distinct.reserveCapacity(trials)
    var action: [Float] = [0], obs: [Float] = [0]
    var pulled = [Bool](repeating: false, count: env.arms)
    for _ in 0..<trials {
        var (taskRNG, rng) = streams.next()
        env.setTask(env.sampleTasks(1, using: &taskRNG)[0])
        strategy.start(arms: env.arms, pulls: pulls)
        var total = 0.0
        for i in pulled.indices { pulled[i] = false }
        for t in 0..<pulls {
            let arm = strategy.choose(step: t, using: &rng)
            pulled[arm] = true
            action[0] = Float(arm)
            let outcome = try! action.withUnsafeBufferPointer { a in
                try obs.withUnsafeMutableBufferPointer { o in try env.step(a, observation: o, using: &rng) }
            }
            strategy.record(arm: arm, reward: outcome.reward)
            total += Double(outcome.reward)
        }
        returns.append(total)
        distinct.append(Double(pulled.lazy.filter { $0 }.count))
    }
    return TrialStatistics(returns: returns, distinctActions: distinct)
}

/// A uniformly random policy (uniform discrete actions, or uniform in the action box) for
/// `trials` trials of `episodes` episodes on fresh tasks of any family: the floor every
/// learner must clear. Trial i draws its task and its randomness from generator i of
/// `seed`'s split.
/// An unbounded box dimension is sampled in [−1, 1]; an action the family refuses is rethrown.
public func evaluateRandomPolicy<E: MetaEnv>(_ prototype: E, episodes: Int, trials: Int, seed: UInt64) throws -> TrialStatistics {
    var streams = TrialStreams(seed: seed)
    var env = prototype
    var returns: [Double] = []
    returns.reserveCapacity(trials)
    var action = [Float](repeating: 0, count: env.actionSpace.flatSize)
    var obs = [Float](repeating: 0, count: env.observationSpace.flatSize)
    for _ in 0..<trials {
        var (taskRNG, rng) = streams.next()
        env.setTask(env.sampleTasks(1, using: &taskRNG)[0])
        var total = 0.0
        for _ in 0..<episodes {
            obs.withUnsafeMutableBufferPointer { env.reset(observation: $0, using: &rng) }
            for _ in 0..<env.maxEpisodeSteps {
                switch env.actionSpace {
                case .discrete(let n): action[0] = Float(rng.uniformInt(below: n))
                case .box(let low, let high, _):
                    for j in action.indices {
                        let (lo, hi) = low[j].isFinite && high[j].isFinite ? (low[j], high[j]) : (-1, 1)
                        action[j] = lo + (hi - lo) * rng.uniformFloat()
                    }
                }
                let outcome = try action.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(EnvError) -> StepOutcome in
                    try obs.withUnsafeMutableBufferPointer { (o: inout UnsafeMutableBufferPointer<Float>) throws(EnvError) -> StepOutcome in
                        try env.step(a, observation: o, using: &rng)
                    }
                }
                total += Double(outcome.reward)
                if outcome.episodeEnded { break }
            }
        }
        returns.append(total)
    }
    return TrialStatistics(returns: returns)
}
