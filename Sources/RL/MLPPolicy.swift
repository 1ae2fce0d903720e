import Envs
import Foundation
import NN
import TensorCore

/// A feed-forward stochastic policy: an MLP from observations to a diagonal Gaussian's mean
/// (with a state-independent learned log standard deviation) for box actions, or to
/// categorical logits for discrete ones. The policy of MAML and its relatives.
public struct MLPPolicy: ParameterCollection, Codable, Sendable {
    public var network: MLP
    /// [actionSize] for a Gaussian policy; empty for a categorical one.
    public var logStd: Tensor
    public let discrete: Bool

    public init(observationSize: Int, actionSpace: Space, hiddenSizes: [Int], activation: Activation = .tanh,
                initialLogStd: Double = 0, using rng: inout Xoshiro256) {
        let outputs: Int
        switch actionSpace {
        case .discrete(let n):
            discrete = true
            outputs = n
        case .box:
            discrete = false
            outputs = actionSpace.flatSize
        }
        network = MLP(sizes: [observationSize] + hiddenSizes + [outputs], activation: activation, outputScale: 0.1, using: &rng)
        logStd = discrete ? Tensor.zeros([0]) : Tensor(repeating: initialLogStd, shape: [outputs], dtype: .float32)
    }

    /// Floats per action as stored in an `EpisodeBatch` (an index for a discrete action).
    public var actionWidth: Int { discrete ? 1 : network.outputSize }

    /// The action distribution at a batch of observations: a diagonal Gaussian (box actions)
    /// or a categorical (discrete ones).
    public enum ActionDistribution {
        case gaussian(DiagonalGaussian)
        case categorical(Categorical)

        /// log π(a | s) for actions [N, actionWidth]: [N].
        public func logProb(_ actions: Tensor) -> Tensor {
            switch self {
            case .gaussian(let d): d.logProb(actions)
            case .categorical(let d): d.logProb(actions.values.map { Int32($0) })
            }
        }

        /// KL(self ‖ other) per observation [N]; both from the same kind of policy.
        public func kl(to other: ActionDistribution) -> Tensor {
            switch (self, other) {
            case (.gaussian(let p), .gaussian(let q)): p.kl(to: q)
            case (.categorical(let p), .categorical(let q)): p.kl(to: q)
            default: preconditionFailure("ActionDistribution.kl: a Gaussian and a categorical policy")
            }
        }

        /// The entropy per observation [N] (per step [T, B] for sequences).
        public func entropy() -> Tensor {
            switch self {
            case .gaussian(let d): d.entropy()
            case .categorical(let d): d.entropy()
            }
        }

        /// Actions drawn for every row, flat [N × actionWidth] (an index as a Float for a
        /// categorical); `greedy` takes the most probable action (the Gaussian's mean).
        public func sample(greedy: Bool, using rng: inout Xoshiro256) -> [Float] {
            switch self {
            case .categorical(let d): return (greedy ? d.mode : d.sample(using: &rng)).map(Float.init)
            case .gaussian(let d):
                let mean = d.mean.detached.values
                if greedy { return mean }
                let std = d.logStd.detached.values.map { Foundation.exp($0) }, width = std.count
                return mean.indices.map { i in mean[i] + std[i % width] * rng.normalFloat() }
            }
        }

        /// The same distribution as constants (off any tape).
        public var detached: ActionDistribution {
            switch self {
            case .gaussian(let d): .gaussian(DiagonalGaussian(mean: d.mean.detached, logStd: d.logStd.detached))
            case .categorical(let d): .categorical(Categorical(logits: d.logProbabilities.detached))
            }
        }
    }

    /// π(· | s) for observations [N, obs]: one network pass, for as many log-probabilities
    /// and KL terms as a caller needs.
    public func distribution(_ observations: Tensor) -> ActionDistribution {
        let out = network(observations)
        return discrete ? .categorical(Categorical(logits: out)) : .gaussian(DiagonalGaussian(mean: out, logStd: logStd))
    }

    /// log π(a | s) for observations [N, obs] and actions [N, actionWidth]: [N].
    public func logProb(_ observations: Tensor, _ actions: Tensor) -> Tensor {
        distribution(observations).logProb(actions)
    }

    /// KL(self ‖ other) per observation [N].
    public func kl(to other: MLPPolicy, _ observations: Tensor) -> Tensor {
        distribution(observations).kl(to: other.distribution(observations))
    }

    /// Actions [N × actionWidth] drawn for observations [N, obs].
    public func sample(_ observations: Tensor, using rng: inout Xoshiro256) -> [Float] {
        distribution(observations.detached).sample(greedy: false, using: &rng)
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        withoutActuallyEscaping(body) { body in
            network.visitParameters { name, t in body("network.\(name())", &t) }
        }
        if !discrete { body("logStd", &logStd) }
    }

    enum CodingKeys: String, CodingKey { case network, logStd, discrete }
}

/// Episodes of one task, padded to the longest: step-major rows (row = t·episodes + e)
/// with a mask of the steps that happened, and the undiscounted return (and, where the
/// family reports it, the success: `EpisodeSuccess`) of each episode.
public struct EpisodeBatch: Sendable {
    public let episodes: Int
    /// Rows per episode: the longest episode's steps (the horizon, or fewer when every episode ended early).
    public internal(set) var steps: Int
    public let observationSize: Int
    public let actionWidth: Int
    public var observations: [Float]
    public var actions: [Float]
    public var rewards: [Float]
    public var mask: [Float]
    public var episodeReturns: [Double]
    /// Each episode's success (1 or 0), NaN where the family reports none.
    public var episodeSuccesses: [Float]

    /// A batch of the given rows; `episodeSuccesses` defaults to "not reported".
    public init(episodes: Int, steps: Int, observationSize: Int, actionWidth: Int, observations: [Float], actions: [Float],
                rewards: [Float], mask: [Float], episodeReturns: [Double], episodeSuccesses: [Float]? = nil) {
        self.episodes = episodes
        self.steps = steps
        self.observationSize = observationSize
        self.actionWidth = actionWidth
        self.observations = observations
        self.actions = actions
        self.rewards = rewards
        self.mask = mask
        self.episodeReturns = episodeReturns
        self.episodeSuccesses = episodeSuccesses ?? [Float](repeating: .nan, count: episodes)
    }

    /// Drops the rows from step `used` on (padding once every episode has ended).
    mutating func trim(toSteps used: Int) {
        guard used < steps else { return }
        observations.removeSubrange((used * episodes * observationSize)...)
        actions.removeSubrange((used * episodes * actionWidth)...)
        rewards.removeSubrange((used * episodes)...)
        mask.removeSubrange((used * episodes)...)
        steps = used
    }

    /// The mean episode return.
    public var meanReturn: Double { episodeReturns.reduce(0, +) / Double(episodes) }
    /// The fraction of episodes that solved the task, NaN where the family reports no success.
    public var successRate: Double { EpisodeSuccess.rate(episodeSuccesses) ?? .nan }

    /// Discounted returns-to-go per row, zero after an episode ends.
    public func returnsToGo(gamma: Double) -> [Float] {
        var out = [Float](repeating: 0, count: rewards.count)
        for e in 0..<episodes {
            var running = 0.0
            for t in stride(from: steps - 1, through: 0, by: -1) {
                let row = t * episodes + e
                running = Double(rewards[row]) + gamma * running * Double(mask[row])
                out[row] = Float(running * Double(mask[row]))
            }
        }
        return out
    }

    public var observationTensor: Tensor { Tensor(shape: [steps * episodes, observationSize], values: observations) }
    public var actionTensor: Tensor { Tensor(shape: [steps * episodes, actionWidth], values: actions) }
    public var maskTensor: Tensor { Tensor(shape: [steps * episodes], values: mask) }
    public var validSteps: Double { Double(mask.reduce(0, +)) }
}

/// Runs `episodes` episodes of `task` with `policy`, all in lockstep in one `VectorEnv`
/// (each copy one episode; a copy that finishes early is masked from then on).
public func sampleEpisodes<E: MetaEnv>(
    policy: MLPPolicy, prototype: E, task: E.Task, episodes: Int, seed: UInt64
) throws -> EpisodeBatch {
    try sampleEpisodes(policy: policy, prototype: prototype, tasks: [E.Task](repeating: task, count: episodes), seed: seed)
}

/// Runs one episode of each of `tasks` with `policy`, all in lockstep in one `VectorEnv`
/// (`greedy`: the most probable action, the Gaussian's mean, instead of a sample).
///
/// With an environment that steps while its caller works (the Python bridge), the episodes
/// go in two halves: the policy acts on one half while the other half steps, so the worker
/// processes always have a step to work on. The halves draw their actions one after the other,
/// so a run's results depend on whether its family steps that way, never on timing.
public func sampleEpisodes<E: MetaEnv>(policy: MLPPolicy, prototype: E, tasks: [E.Task], seed: UInt64,
                                       greedy: Bool = false) throws -> EpisodeBatch {
    let episodes = tasks.count
    var env = VectorEnv(prototype, count: episodes, seed: seed)
    for i in 0..<episodes { env.setTask(tasks[i], at: i) }
    env.resetAll()
    var rng = Xoshiro256(seed: seed ^ 0x9E37_79B9_7F4A_7C15)
    let steps = prototype.maxEpisodeSteps, obsSize = env.observationSize, width = policy.actionWidth
    var batch = EpisodeBatch(
        episodes: episodes, steps: steps, observationSize: obsSize, actionWidth: width,
        observations: [Float](repeating: 0, count: steps * episodes * obsSize),
        actions: [Float](repeating: 0, count: steps * episodes * width),
        rewards: [Float](repeating: 0, count: steps * episodes), mask: [Float](repeating: 0, count: steps * episodes),
        episodeReturns: [Double](repeating: 0, count: episodes))
    var alive = [Bool](repeating: true, count: episodes)
    let pipelined = E.stepsWhileCallerWorks && episodes >= 2
    let halves = pipelined ? [0..<(episodes / 2), (episodes / 2)..<episodes] : [0..<episodes]
    // Per half: the observations it acted on and the actions, while its step is under way.
    var acted = [(observations: [Float], actions: [Float])](repeating: ([], []), count: halves.count)
    var underWay = [Bool](repeating: false, count: halves.count)
    func act(_ h: Int) throws {
        let half = halves[h]
        let obs = pipelined ? Array(env.observations[(half.lowerBound * obsSize)..<(half.upperBound * obsSize)]) : env.observations
        let x = Tensor(shape: [half.count, obsSize], values: obs)
        let actions = greedy ? policy.distribution(x.detached).sample(greedy: true, using: &rng) : policy.sample(x, using: &rng)
        acted[h] = (obs, actions)
        if pipelined {
            try actions.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(EnvError) in try env.startStep(a, copies: half) }
            underWay[h] = true
        } else {
            try env.step(actions)
        }
    }
    defer {  // a failed rollout still collects the steps it started (the workers' replies are read)
        for h in halves.indices where underWay[h] { try? env.finishStep(copies: halves[h]) }
    }
    for h in halves.indices { try act(h) }
    for t in 0..<steps {
        for (h, half) in halves.enumerated() where !acted[h].actions.isEmpty {
            if underWay[h] {
                underWay[h] = false
                try env.finishStep(copies: half)
            }
            let (obs, actions) = acted[h]
            for e in half where alive[e] {
                let row = t * episodes + e, local = e - half.lowerBound
                for j in 0..<obsSize { batch.observations[row * obsSize + j] = obs[local * obsSize + j] }
                for j in 0..<width { batch.actions[row * width + j] = actions[local * width + j] }
                batch.rewards[row] = env.rewards[e]
                batch.mask[row] = 1
                batch.episodeReturns[e] += Double(env.rewards[e])
                EpisodeSuccess.accumulate(&batch.episodeSuccesses[e], step: env.successes[e])
                if env.terminated[e] || env.truncated[e] { alive[e] = false }
            }
            if t + 1 < steps, alive[half].contains(true) { try act(h) } else { acted[h] = ([], []) }
        }
        if !alive.contains(true) {
            batch.trim(toSteps: t + 1)  // every episode ended: the rest would be padding
            break
        }
    }
    return batch
}

/// The linear baseline of Duan et al. (2016, supplement), as the MAML paper uses: a ridge
/// regression of the returns-to-go on [s, s², t/100, (t/100)², (t/100)³, 1], refitted on
/// each batch of one task.
public struct LinearFeatureBaseline {
    public var weights: [Double]

    static func features(_ batch: EpisodeBatch, row: Int) -> [Double] {
        let t = Double(row / batch.episodes) / 100
        let s = (0..<batch.observationSize).map { Double(batch.observations[row * batch.observationSize + $0]) }
        return s + s.map { $0 * $0 } + [t, t * t, t * t * t, 1]
    }

    /// Fits to `returns` over the batch's valid rows (regularisation raised tenfold until
    /// the normal equations solve, as the reference does).
    public init(fitting batch: EpisodeBatch, returns: [Float], regularisation: Double = 1e-5) {
        let k = 2 * batch.observationSize + 4
        var xtx = [Double](repeating: 0, count: k * k), xty = [Double](repeating: 0, count: k)
        for row in 0..<(batch.steps * batch.episodes) where batch.mask[row] > 0 {
            let f = Self.features(batch, row: row)
            for i in 0..<k {
                xty[i] += f[i] * Double(returns[row])
                for j in 0..<k { xtx[i * k + j] += f[i] * f[j] }
            }
        }
        var lambda = regularisation
        for _ in 0..<8 {
            var a = xtx
            for i in 0..<k { a[i * k + i] += lambda }
            if let w = Self.choleskySolve(a, xty, k) {
                weights = w
                return
            }
            lambda *= 10
        }
        weights = [Double](repeating: 0, count: k)
    }

    /// Predicted values per row (zero on masked rows).
    public func predict(_ batch: EpisodeBatch) -> [Float] {
        (0..<(batch.steps * batch.episodes)).map { row in
            batch.mask[row] > 0 ? Float(zip(Self.features(batch, row: row), weights).reduce(0) { $0 + $1.0 * $1.1 }) : 0
        }
    }

    /// Solves A x = b for symmetric positive-definite A (k × k), or nil if A is not.
    static func choleskySolve(_ a: [Double], _ b: [Double], _ k: Int) -> [Double]? {
        var l = [Double](repeating: 0, count: k * k)
        for i in 0..<k {
            for j in 0...i {
                var sum = a[i * k + j]
                for p in 0..<j { sum -= l[i * k + p] * l[j * k + p] }
                if i == j {
                    guard sum > 0, sum.isFinite else { return nil }
                    l[i * k + i] = sum.squareRoot()
                } else {
                    l[i * k + j] = sum / l[j * k + j]
                }
            }
        }
        var y = b
        for i in 0..<k {
            for p in 0..<i { y[i] -= l[i * k + p] * y[p] }
            y[i] /= l[i * k + i]
        }
        for i in stride(from: k - 1, through: 0, by: -1) {
            for p in (i + 1)..<k { y[i] -= l[p * k + i] * y[p] }
            y[i] /= l[i * k + i]
        }
        return y
    }
}

/// Advantages of a batch for policy-gradient steps: returns-to-go minus the linear
/// baseline fitted on the same batch (GAE with λ = 1, as MAML uses), standardised over
/// the valid steps.
public func standardizedAdvantages(_ batch: EpisodeBatch, gamma: Double) -> [Float] {
    let returns = batch.returnsToGo(gamma: gamma)
    let values = LinearFeatureBaseline(fitting: batch, returns: returns).predict(batch)
    var advantages = zip(returns, values).map { $0 - $1 }
    let n = Swift.max(batch.validSteps, 1)
    var mean = 0.0
    for i in advantages.indices where batch.mask[i] > 0 { mean += Double(advantages[i]) }
    mean /= n
    var variance = 0.0
    for i in advantages.indices where batch.mask[i] > 0 { variance += (Double(advantages[i]) - mean) * (Double(advantages[i]) - mean) }
    let std = (variance / n).squareRoot() + 1e-8
    for i in advantages.indices { advantages[i] = batch.mask[i] > 0 ? Float((Double(advantages[i]) - mean) / std) : 0 }
    return advantages
}
