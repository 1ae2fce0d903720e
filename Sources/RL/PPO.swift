import Envs
import Foundation
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

// MARK: PPO as an algorithm: the from-scratch and task-mixture baselines

// PPO with a feed-forward Gaussian (or categorical) policy and a separate value network, in
// the manner of CleanRL's `ppo_continuous_action.py`, on one task of a family (PPO from
// scratch on a test task: `--env-arg split=test`, the task drawn from the seed) or, with
// `taskMixture`, on a fresh task every episode (the multi-task baseline of the meta-RL papers).
//
// Each iteration: run `episodesPerIteration` whole episodes in lockstep, compute GAE(γ, λ)
// advantages with the value network (an episode's end, terminated or cut at the horizon, is
// not bootstrapped), standardise them, and take `epochs` passes of Adam over shuffled
// minibatches of `minibatchSize` steps on the clipped surrogate plus the value loss, each
// gradient clipped to `maxGradientNorm`.

/// The settings of a PPO run; defaults are CleanRL's continuous-control ones.
public struct PPOConfig: AlgorithmSettings {
    public var hiddenSizes: [Int] = [64, 64]
    public var episodesPerIteration: Int = 16
    public var epochs: Int = 10
    public var minibatchSize: Int = 64
    public var learningRate: Double = 3e-4
    public var gamma: Double = 0.99
    public var gaeLambda: Double = 0.95
    public var objective = PPOObjective(clip: 0.2, valueCoefficient: 0.5, entropyCoefficient: 0)
    public var maxGradientNorm: Double = 0.5
    public var iterations: Int = 100
    /// A fresh task of the family every episode instead of one fixed task.
    public var taskMixture: Bool = false

    public init() {}

    /// Throws a `ConfigError` naming the first field out of range.
    public func validate() throws(ConfigError) {
        guard !hiddenSizes.isEmpty, hiddenSizes.allSatisfy({ (1...4096).contains($0) }) else {
            throw ConfigError(field: "hiddenSizes", value: "\(hiddenSizes)", allowed: "one or more sizes in 1…4096")
        }
        try ConfigError.check("episodesPerIteration", episodesPerIteration, 1...100_000)
        try ConfigError.check("epochs", epochs, 1...1000)
        try ConfigError.check("minibatchSize", minibatchSize, 1...10_000_000)
        try ConfigError.check("learningRate", learningRate, open: 0..<1)
        try ConfigError.check("gamma", gamma, 0...1)
        try ConfigError.check("gaeLambda", gaeLambda, 0...1)
        try ConfigError.check("objective.clip", objective.clip, open: 0..<1)
        try ConfigError.check("maxGradientNorm", maxGradientNorm, open: 0..<1e9)
        try ConfigError.check("iterations", iterations, 1...100_000_000)
    }

    /// Command-line names and help (every other key is a flag by its own name).
    public static let flags: [SettingFlag] = [
        SettingFlag("iterations", help: "iterations to train for (with --resume: the new total)"),
        SettingFlag("episodesPerIteration", help: "whole episodes sampled per iteration"),
        SettingFlag("epochs", help: "passes over each iteration's steps"),
        SettingFlag("minibatchSize", help: "steps per Adam step"),
        SettingFlag("learningRate", help: "Adam learning rate"),
        SettingFlag("gamma", help: "discount"),
        SettingFlag("maxGradientNorm", help: "the gradient's norm is clipped to this"),
        SettingFlag("objective.valueCoefficient", help: "weight of the value loss"),
        SettingFlag("hiddenSizes", help: "hidden sizes of the policy and value networks, comma-separated"),
        SettingFlag("gaeLambda", flag: "--lambda", help: "GAE λ"),
        SettingFlag("objective.clip", flag: "--clip", help: "clip range ε"),
        SettingFlag("objective.entropyCoefficient", flag: "--entropy", help: "entropy bonus coefficient"),
        SettingFlag("taskMixture", help: "train on a fresh task every episode (the multi-task baseline)"),
    ]
}

/// The policy and the value network PPO trains together.
public struct PPOActorCritic: ParameterCollection, Codable, Sendable {
    public var policy: MLPPolicy
    public var value: MLP

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        withoutActuallyEscaping(body) { body in
            policy.visitParameters { name, t in body("policy.\(name())", &t) }
            value.visitParameters { name, t in body("value.\(name())", &t) }
        }
    }
}

/// Everything a PPO run needs to continue exactly.
public struct PPOState: Codable, Sendable {
    public var model: PPOActorCritic
    public var optimizer: Adam
    public var rng: Xoshiro256
    public var seed: UInt64
    public var iteration: Int
    public var environmentSteps: Int
}

/// PPO on a task family: one fixed task, or the task mixture.
public struct PPOTraining<E: MetaEnv>: IterativeAlgorithm {
    public let config: PPOConfig
    public let prototype: E
    public var state: PPOState
    /// The task trained on unless `taskMixture` (drawn from the seed, as SAC's).
    public let fixedTask: E.Task

    public var iteration: Int { state.iteration }
    public var environmentSteps: Int { state.environmentSteps }
    public var headlineMetric: String { PPOAlgorithm().headlineMetric(config) }

    /// A fresh run; the seed fixes the networks, the task and every episode.
    public init(config: PPOConfig, prototype: E, seed: UInt64) {
        self.config = config
        self.prototype = prototype
        var rng = Xoshiro256(seed: seed)
        let n = prototype.observationSpace.flatSize
        let policy = MLPPolicy(observationSize: n, actionSpace: prototype.actionSpace, hiddenSizes: config.hiddenSizes, using: &rng)
        let value = MLP(sizes: [n] + config.hiddenSizes + [1], activation: .tanh, using: &rng)
        state = PPOState(model: PPOActorCritic(policy: policy, value: value),
                         optimizer: Adam(learningRate: config.learningRate, epsilon: 1e-5),
                         rng: rng, seed: seed, iteration: 0, environmentSteps: 0)
        fixedTask = singleTask(of: prototype, seed: seed)
    }

    /// Continues from a saved state after checking it fits the config.
    public init(config: PPOConfig, prototype: E, state: PPOState) throws {
        let fresh = PPOTraining(config: config, prototype: prototype, seed: state.seed)
        guard state.model.hasSameParameterShapes(as: fresh.state.model), state.iteration >= 0, state.environmentSteps >= 0 else {
            throw ConfigError(field: "checkpoint", value: "a PPO state", allowed: "one whose networks match the config")
        }
        self = fresh
        self.state = state
    }

    public mutating func iterate() throws -> [(String, Double)] {
        let config = self.config, start = Date()
        let tasks = config.taskMixture ? prototype.sampleTasks(config.episodesPerIteration, using: &state.rng)
            : [E.Task](repeating: fixedTask, count: config.episodesPerIteration)
        let batch = try sampleEpisodes(policy: state.model.policy, prototype: prototype, tasks: tasks, seed: state.rng.next())
        let sampled = Date()

        // GAE over the time-major [T, B] rows; a masked row ends its episode.
        let rows = batch.steps * batch.episodes
        let observations = batch.observationTensor, actions = batch.actionTensor
        let values = state.model.value(observations).values
        let ends = (0..<rows).map { row in row + batch.episodes >= rows || batch.mask[row + batch.episodes] == 0 }
        var (advantages, returns) = GAE.compute(
            rewards: batch.rewards, values: values, ends: ends, bootstrap: [Float](repeating: 0, count: batch.episodes),
            steps: batch.steps, batch: batch.episodes, gamma: Float(config.gamma), lambda: Float(config.gaeLambda))
        standardize(&advantages, mask: batch.mask)
        let oldLogProb = state.model.policy.logProb(observations, actions).detached.values

        // Epochs of Adam over shuffled minibatches of the valid steps.
        var valid = (0..<rows).filter { batch.mask[$0] > 0 }
        let n = batch.observationSize, width = batch.actionWidth
        var rng = state.rng, sums = (policy: 0.0, value: 0.0, entropy: 0.0, count: 0.0)
        try PPO.optimize(
            &state.model, optimizer: &state.optimizer, epochs: config.epochs, iteration: state.iteration + 1, quantity: "PPO loss",
            minibatches: { _ in
                shuffle(&valid, using: &rng)
                return stride(from: 0, to: valid.count, by: config.minibatchSize).map { Array(valid[$0..<Swift.min($0 + config.minibatchSize, valid.count)]) }
            },
            gradient: { model, indices in
                let m = indices.count
                let x = Tensor(shape: [m, n], values: indices.flatMap { batch.observations[($0 * n)..<($0 * n + n)] })
                let a = Tensor(shape: [m, width], values: indices.flatMap { batch.actions[($0 * width)..<($0 * width + width)] })
                let pick = { (source: [Float]) in Tensor(shape: [m], values: indices.map { source[$0] }) }
                var terms: PPOObjective.Terms?
                let (loss, grad) = valueAndGradient(at: model) { model in
                    let distribution = model.policy.distribution(x)
                    let t = config.objective.loss(
                        logProb: distribution.logProb(a), oldLogProb: pick(oldLogProb), advantages: pick(advantages),
                        values: model.value(x).reshaped([m]), returns: pick(returns), entropy: distribution.entropy(),
                        mask: Tensor(repeating: 1, shape: [m], dtype: .float32))
                    terms = t
                    return t.total
                }
                var clipped = grad
                _ = clipByGlobalNorm(&clipped, maxNorm: config.maxGradientNorm)
                sums.policy += terms!.policyLoss.doubleScalar
                sums.value += terms!.valueLoss.doubleScalar
                sums.entropy += terms!.entropy.doubleScalar
                sums.count += 1
                return (loss.doubleScalar, clipped)
            })
        state.rng = rng
        state.iteration += 1
        state.environmentSteps += Int(batch.validSteps)
        let returnsByEpisode = SampleStatistics(batch.episodeReturns), c = Swift.max(sums.count, 1)
        var metrics: [(String, Double)] = [("episode_return_mean", returnsByEpisode.mean),
                                           ("episode_return_mean_stderr", returnsByEpisode.standardError)]
        if let rate = EpisodeSuccess.rate(batch.episodeSuccesses) { metrics.append(("success_rate", rate)) }
        metrics += [("policy_loss", sums.policy / c), ("value_loss", sums.value / c), ("entropy", sums.entropy / c),
                    ("environment_steps", Double(state.environmentSteps)), ("sample_seconds", sampled.timeIntervalSince(start)),
                    ("update_seconds", Date().timeIntervalSince(sampled))]
        return metrics
    }
}

/// PPO as `metarl train ppo` runs it.
public struct PPOAlgorithm: AlgorithmDefinition {
    public init() {}
    public var name: String { "ppo" }
    public var summary: String { "PPO on one task of a family (from scratch on a test task), or with --task-mixture on a fresh task every episode" }
    public var defaultEnv: String { "point-nav" }

    public func headlineMetric(_ settings: PPOConfig) -> String { "episode_return_mean" }

    public func start<E: MetaEnv>(_ settings: PPOConfig, prototype: E, seed: UInt64, threads: Int) throws -> any IterativeAlgorithm<PPOState> {
        PPOTraining(config: settings, prototype: prototype, seed: seed)
    }

    public func restore<E: MetaEnv>(_ settings: PPOConfig, prototype: E, state: PPOState, threads: Int) throws -> any IterativeAlgorithm<PPOState> {
        try PPOTraining(config: settings, prototype: prototype, state: state)
    }

    /// `trajectories` episodes with the most probable action on each of `tasks` tasks: the
    /// run's own task, or fresh ones for a task-mixture run.
    public func evaluate<E: MetaEnv>(_ settings: PPOConfig, state: PPOState, prototype: E, options: TrajectoryEvaluationOptions,
                                     seed: UInt64, threads: Int) throws -> TrajectoryEvaluation {
        let ppo = try PPOTraining(config: settings, prototype: prototype, state: state)
        return try TrajectoryEvaluation.ofSingleTaskPolicy(
            prototype: prototype, fixedTask: settings.taskMixture ? nil : ppo.fixedTask, options: options, seed: seed,
            actions: "most probable action") { tasks, seed in
            let batch = try sampleEpisodes(policy: state.model.policy, prototype: prototype, tasks: tasks, seed: seed, greedy: true)
            return (batch.episodeReturns, batch.episodeSuccesses)
        }
    }
}

/// Fisher–Yates with the run's generator (so a seed fixes the minibatch order).
public func shuffle<T>(_ a: inout [T], using rng: inout Xoshiro256) {
    guard a.count > 1 else { return }
    for i in stride(from: a.count - 1, to: 0, by: -1) {
        a.swapAt(i, rng.uniformInt(below: i + 1))
    }
}

/// Standardises the masked entries of `x` to mean 0 and standard deviation 1.
public func standardize(_ x: inout [Float], mask: [Float]) {
    var n = 0.0, mean = 0.0, squares = 0.0
    for i in x.indices where mask[i] > 0 { n += 1; mean += Double(x[i]) }
    mean /= Swift.max(n, 1)
    for i in x.indices where mask[i] > 0 { squares += (Double(x[i]) - mean) * (Double(x[i]) - mean) }
    let std = (squares / Swift.max(n, 1)).squareRoot() + 1e-8
    for i in x.indices where mask[i] > 0 { x[i] = Float((Double(x[i]) - mean) / std) }
}
