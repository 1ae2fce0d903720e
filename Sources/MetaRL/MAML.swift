import Envs
import Foundation
import NN
import RL
import TensorCore

// MAML for reinforcement learning (Finn, Abbeel & Levine 2017), with its first-order
// approximation and Meta-SGD (Li et al. 2017) as modes.
//
// For a meta-batch of tasks T_i ~ p(T), with policy parameters θ:
//   1. sample `fastBatchSize` episodes of T_i with π_θ (the pre-adaptation return);
//   2. inner step, `innerAdaptationSteps` times, each on fresh episodes of the current
//      parameters:  θ′_i = θ − α ∇_θ L_in(θ),  L_in = −E[log π(a|s) · Â]  (REINFORCE with the
//      linear baseline, advantages standardised); Meta-SGD replaces the scalar α by a vector
//      α (one step size per parameter) learned with θ;
//   3. sample episodes of T_i with π_θ′_i (the post-adaptation return);
//   4. outer step on  L_out(θ) = −(1/n) Σ_i E_{π_θ′_i,old}[ π_θ′_i(a|s)/π_θ′_i,old(a|s) · Â ]
//      by TRPO: g = ∇_θ L_out differentiates through the inner steps (second order; the
//      first-order mode treats ∇_θ L_in as a constant), the step direction solves F x = g by
//      conjugate gradient with F the Hessian of the mean KL(π_θ′_i,old ‖ π_θ′_i) with respect to
//      θ (again through the inner steps), and a backtracking line search keeps the KL ≤ δ.

/// The settings of a MAML-family run; defaults are the MAML paper's 2D-navigation setting
/// (and pytorch-maml-rl's): 20 tasks × 20 episodes, one inner step of 0.1, TRPO δ = 0.01.
public struct MAMLConfig: AlgorithmSettings {
    /// How the meta-gradient treats the inner step.
    public enum Mode: String, NamedChoice {
        /// Differentiate through the inner gradient (MAML).
        case secondOrder = "second-order"
        /// Treat the inner gradient as a constant (first-order MAML).
        case firstOrder = "first-order"
        /// Learn a step size per parameter with θ (Meta-SGD), second order.
        case metaSGD = "meta-sgd"
        /// No meta-gradient: move θ toward the adapted parameters (Reptile.swift).
        case reptile
    }

    /// The outer step: TRPO (the MAML paper's) or Adam epochs on PPO's clipped surrogate.
    public enum OuterOptimizer: String, NamedChoice { case trpo, ppo }

    public var mode: Mode = .secondOrder
    public var outerOptimizer: OuterOptimizer = .trpo
    /// PPO outer step: epochs over the meta-batch, clip range, Adam learning rate.
    public var ppoEpochs: Int = 5
    public var ppoClip: Double = 0.2
    public var outerLearningRate: Double = 1e-3
    public var hiddenSizes: [Int] = [64, 64]
    public var activation: Activation = .tanh
    public var metaBatchSize: Int = 20
    public var fastBatchSize: Int = 20
    public var innerAdaptationSteps: Int = 1
    /// α, the inner step size (Meta-SGD's initial per-parameter step size).
    public var innerStepSize: Double = 0.1
    public var gamma: Double = 0.99
    /// ε, Reptile's outer step toward the adapted parameters.
    public var outerStepSize: Double = 0.1
    public var iterations: Int = 500
    public var trpo = TRPOSettings(maxKL: 0.01, damping: 1e-5, conjugateGradientIterations: 10,
                                   backtrackFactor: 0.8, backtrackSteps: 15)

    public init() {}

    /// Throws a `ConfigError` naming the first field out of range.
    public func validate() throws(ConfigError) {
        guard !hiddenSizes.isEmpty, hiddenSizes.allSatisfy({ (1...4096).contains($0) }) else {
            throw ConfigError(field: "hiddenSizes", value: "\(hiddenSizes)", allowed: "one or more sizes in 1…4096")
        }
        try ConfigError.check("ppoEpochs", ppoEpochs, 1...1000)
        try ConfigError.check("ppoClip", ppoClip, open: 0..<1)
        try ConfigError.check("outerLearningRate", outerLearningRate, open: 0..<1)
        try ConfigError.check("metaBatchSize", metaBatchSize, 1...10_000)
        try ConfigError.check("fastBatchSize", fastBatchSize, 1...100_000)
        try ConfigError.check("innerAdaptationSteps", innerAdaptationSteps, 1...100)
        try ConfigError.check("innerStepSize", innerStepSize, open: 0..<1e6)
        try ConfigError.check("gamma", gamma, 0...1)
        try ConfigError.check("outerStepSize", outerStepSize, open: 0..<1.000_001)
        try ConfigError.check("iterations", iterations, 1...100_000_000)
        try trpo.validate(prefix: "trpo.")
    }

    /// Command-line names and help (every other key is a flag by its own name).
    public static let flags: [SettingFlag] = [
        SettingFlag("iterations", help: "meta-iterations (with --resume: the new total)"),
        SettingFlag("metaBatchSize", help: "tasks per meta-batch"),
        SettingFlag("fastBatchSize", help: "episodes per task for each inner step and for the outer step"),
        SettingFlag("innerAdaptationSteps", flag: "--inner-steps", help: "inner adaptation steps"),
        SettingFlag("innerStepSize", help: "inner step size α (Meta-SGD's initial value)"),
        SettingFlag("hiddenSizes", help: "hidden layer sizes, comma-separated"),
        SettingFlag("outerStepSize", help: "Reptile's outer step size ε"),
        SettingFlag("outerOptimizer", flag: "--outer", help: "outer step of maml, maml-fo, meta-sgd: trpo or ppo"),
        SettingFlag("gamma", help: "discount γ"),
        SettingFlag("mode", help: "set by the command's name (maml, maml-fo, meta-sgd, reptile)"),
        SettingFlag("activation", help: "hidden-layer activation of the policy"),
        SettingFlag("outerLearningRate", help: "Adam learning rate of the PPO outer step"),
        SettingFlag("ppoClip", help: "PPO outer step: clip range ε"),
        SettingFlag("ppoEpochs", help: "PPO outer step: epochs per meta-iteration"),
    ] + TRPOSettings.flags(prefix: "trpo.", maxKLFlag: "--max-kl")
}

/// Everything a MAML run needs to continue: θ (and Meta-SGD's step sizes), the generator,
/// the counters.
public struct MAMLState: Codable, Sendable {
    public var policy: MLPPolicy
    /// Meta-SGD's per-parameter inner step sizes, shaped like the policy; nil otherwise.
    public var stepSizes: MLPPolicy?
    public var rng: Xoshiro256
    public var iteration: Int
    public var environmentSteps: Int
    /// Adam's state for the PPO outer step (nil with TRPO).
    public var optimizer: Adam?
}

/// The meta-parameters TRPO moves: the policy, and with Meta-SGD its step sizes too.
struct MetaParameters: ParameterCollection {
    var policy: MLPPolicy
    var stepSizes: MLPPolicy?

    mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        withoutActuallyEscaping(body) { body in
            policy.visitParameters { name, t in body("policy.\(name())", &t) }
            if var s = stepSizes {
                s.visitParameters { name, t in body("stepSizes.\(name())", &t) }
                stepSizes = s
            }
        }
    }
}

/// MAML, first-order MAML or Meta-SGD with a TRPO outer step on a task family.
public struct MAML<E: MetaEnv>: IterativeAlgorithm {
    public let config: MAMLConfig
    public let prototype: E
    public var state: MAMLState
    /// Threads for sampling the tasks of a meta-batch (results do not depend on it).
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// The processes the meta-batch's tasks are split over (each samples and differentiates
    /// a contiguous block of tasks; results do not depend on their number).
    public var group: any ProcessGroup = SingleProcess()

    /// Fisher products through the inner step as Jᵀ F′ J (R-operator passes through the
    /// policy) where that is exact; off, every product differentiates the KL's recorded
    /// gradient (third order).
    var useFactoredFisher = true

    public var iteration: Int { state.iteration }
    public var environmentSteps: Int { state.environmentSteps }
    public var headlineMetric: String { MAMLAlgorithm.headlineMetric(config) }

    /// A fresh run (any mode but `.reptile`, which `Reptile` runs); the seed fixes θ and every task drawn.
    public init(config: MAMLConfig, prototype: E, seed: UInt64) throws {
        guard config.mode != .reptile else {
            throw MAMLError.unsupported("mode reptile has no meta-gradient: Reptile runs it (metarl train reptile), not MAML")
        }
        guard case .box = prototype.observationSpace else {
            throw MAMLError.unsupported("MAML needs a vector observation space")
        }
        self.config = config
        self.prototype = prototype
        var rng = Xoshiro256(seed: seed)
        let policy = MLPPolicy(observationSize: prototype.observationSpace.flatSize, actionSpace: prototype.actionSpace,
                               hiddenSizes: config.hiddenSizes, activation: config.activation, using: &rng)
        let stepSizes = config.mode == .metaSGD
            ? policy.mapParameters { Tensor(repeating: config.innerStepSize, shape: $0.shape, dtype: $0.dtype) } : nil
        state = MAMLState(policy: policy, stepSizes: stepSizes, rng: rng, iteration: 0, environmentSteps: 0,
                          optimizer: config.outerOptimizer == .ppo ? Adam(learningRate: config.outerLearningRate) : nil)
    }

    /// Continues from a saved state after checking it fits the config.
    public init(config: MAMLConfig, prototype: E, state: MAMLState) throws {
        let fresh = try MAML(config: config, prototype: prototype, seed: 0)
        guard state.policy.hasSameParameterShapes(as: fresh.state.policy),
              (state.stepSizes == nil) == (fresh.state.stepSizes == nil), state.iteration >= 0, state.environmentSteps >= 0
        else { throw MAMLError.incompatibleState("the saved policy does not match the config's architecture or mode") }
        self.config = config
        self.prototype = prototype
        self.state = state
    }

    // MARK: The inner loop

    /// One inner step: θ − α ⊙ ∇L_in(θ) on `batch`. With `secondOrder` the gradient stays on
    /// the tape (θ′ is a differentiable function of θ and α); otherwise it is a constant.
    static func adapt(_ policy: MLPPolicy, stepSizes: MLPPolicy?, scalarStep: Double, on batch: EpisodeBatch,
                      advantages: Tensor, secondOrder: Bool) -> MLPPolicy {
        let grad = NN.gradient(at: policy, createGraph: secondOrder) { innerLoss($0, on: batch, advantages: advantages) }
        let g = secondOrder ? grad : grad.detached
        if let stepSizes {
            return policy.zipParameters(g.zipParameters(stepSizes) { $0 * $1 }) { $0 - $1 }
        }
        return policy.zipParameters(g) { $0 - $1 * scalarStep }
    }

    /// L_in = −E[log π(a|s) · Â] over the valid steps of `batch`: the REINFORCE loss of an inner step.
    static func innerLoss(_ policy: MLPPolicy, on batch: EpisodeBatch, advantages: Tensor) -> Tensor {
        let dtype = policy.network.layers[0].weight.dtype
        let observations = batch.observationTensor.converted(to: dtype), actions = batch.actionTensor.converted(to: dtype)
        return -(policy.logProb(observations, actions) * innerWeights(on: batch, advantages: advantages, dtype: dtype)).sum()
    }

    /// Each step's weight in L_in: Â · mask / (valid steps).
    static func innerWeights(on batch: EpisodeBatch, advantages: Tensor, dtype: DType) -> Tensor {
        advantages.converted(to: dtype) * batch.maskTensor.converted(to: dtype) / Swift.max(batch.validSteps, 1)
    }

    /// Adapted (detached) policies for each task, with the episodes sampled before each
    /// step and after the last: `batches[k]` were sampled with the parameters after k steps.
    /// `seeds[i][k]` seeds task i's episodes after k steps; `steps` defaults to the config's.
    /// With `only`, just those tasks (this process's share), in order.
    func adaptAndSample(tasks: [E.Task], seeds: [[UInt64]], steps: Int? = nil, only: Range<Int>? = nil) throws -> [Rollout] {
        let policy = state.policy, stepSizes = state.stepSizes, config = self.config, prototype = self.prototype
        let steps = steps ?? config.innerAdaptationSteps
        let indices = only ?? tasks.indices
        return try concurrentMap(indices.count, threads: threads) { j in
            let i = indices.lowerBound + j
            var current = policy
            var policies = [policy], batches: [EpisodeBatch] = []
            for k in 0...steps {
                let batch = try sampleEpisodes(policy: current, prototype: prototype, task: tasks[i],
                                               episodes: config.fastBatchSize, seed: seeds[i][k])
                batches.append(batch)
                if k < steps {
                    let advantages = Tensor(shape: [batch.steps * batch.episodes], values: standardizedAdvantages(batch, gamma: config.gamma))
                    current = Self.adapt(current, stepSizes: stepSizes, scalarStep: config.innerStepSize, on: batch,
                                         advantages: advantages, secondOrder: false).detached
                    policies.append(current)
                }
            }
            return (policies, batches)
        }
    }

    /// One task's adapted policies and episodes: `batches[k]` sampled after k inner steps.
    typealias Rollout = (policies: [MLPPolicy], batches: [EpisodeBatch])

    // MARK: One meta-iteration

    public mutating func iterate() throws -> [(String, Double)] {
        let config = self.config, group = self.group, threads = self.threads
        let start = Date()
        let tasks = prototype.sampleTasks(config.metaBatchSize, using: &state.rng)
        let seeds = tasks.map { _ in (0...config.innerAdaptationSteps).map { _ in state.rng.next() } }
        // Every process draws the same tasks and seeds, then samples only its own block of
        // tasks; `local[i - base]` is task i's rollout. Each per-task quantity below is
        // computed where its task was sampled and gathered in task order (`distributedMap`).
        let own = group.ownShare(of: tasks.count), base = own.lowerBound
        let local = try adaptAndSample(tasks: tasks, seeds: seeds, only: own)
        let summaries = try distributedMap(tasks.count, group: group, threads: 1) { i in TaskSummary(local[i - base]) }
        let sampled = Date()

        // Advantages of every batch; the last batch of each task is its validation set.
        let localAdvantages = local.map { r in
            r.batches.map { Tensor(shape: [$0.steps * $0.episodes], values: standardizedAdvantages($0, gamma: config.gamma)) }
        }
        func rollout(_ i: Int) -> Rollout { local[i - base] }
        func advantages(_ i: Int) -> [Tensor] { localAdvantages[i - base] }
        let last = config.innerAdaptationSteps
        let localOldAdapted = local.map { $0.policies[last] }
        func oldAdapted(_ i: Int) -> MLPPolicy { localOldAdapted[i - base] }
        let secondOrder = config.mode != .firstOrder

        // θ′_i(θ) through every inner step, each on the episodes its parameters produced.
        func adapted(_ meta: MetaParameters, task i: Int, secondOrder: Bool) -> MLPPolicy {
            var p = meta.policy
            for k in 0..<config.innerAdaptationSteps {
                p = Self.adapt(p, stepSizes: meta.stepSizes, scalarStep: config.innerStepSize, on: rollout(i).batches[k],
                               advantages: advantages(i)[k], secondOrder: secondOrder)
            }
            return p
        }
        // π_θ′_i,old on task i's validation episodes and its log-probabilities, constants of
        // this iteration.
        let localOldDistributions = own.map { i in
            oldAdapted(i).distribution(rollout(i).batches[last].observationTensor).detached
        }
        let localOldLogProbs = own.map { i in localOldDistributions[i - base].logProb(rollout(i).batches[last].actionTensor) }
        func oldDistribution(_ i: Int) -> MLPPolicy.ActionDistribution { localOldDistributions[i - base] }
        // Each validation step's weight in the mean over tasks and valid steps.
        func weight(task i: Int) -> Tensor {
            let batch = rollout(i).batches[last]
            return batch.maskTensor / (Swift.max(batch.validSteps, 1) * Double(tasks.count))
        }
        // Task i's share of the mean KL(π_θ′_i,old ‖ π) for π on its validation episodes.
        func klShare(_ p: MLPPolicy.ActionDistribution, task i: Int) -> Tensor {
            (oldDistribution(i).kl(to: p) * weight(task: i)).sum()
        }
        // ρ_i = π_θ′_i(a|s) / π_θ′_i,old(a|s) on task i's validation episodes, and π_θ′_i there.
        func ratio(_ meta: MetaParameters, task i: Int, secondOrder: Bool) -> (policy: MLPPolicy.ActionDistribution, ratio: Tensor) {
            let batch = rollout(i).batches[last]
            let p = adapted(meta, task: i, secondOrder: secondOrder).distribution(batch.observationTensor)
            return (p, (p.logProb(batch.actionTensor) - localOldLogProbs[i - base]).exp())
        }
        // Task i's share of the surrogate gain (−L_out) and of the mean KL(π_old′ ‖ π_θ′).
        // Each task is differentiated on its own tape, the tasks side by side on `threads`
        // threads; their shares are added in task order, so results do not depend on threads.
        func surrogate(_ meta: MetaParameters, task i: Int, secondOrder: Bool, withKL: Bool) -> (gain: Tensor, kl: Tensor?) {
            let (p, rho) = ratio(meta, task: i, secondOrder: secondOrder)
            let gain = (rho * advantages(i)[last] * weight(task: i)).sum()
            return (gain, withKL ? klShare(p, task: i) : nil)
        }

        var meta = MetaParameters(policy: state.policy, stepSizes: state.stepSizes)
        var outerMetrics: [(String, Double)]
        switch config.outerOptimizer {
        case .ppo:
            // Adam epochs on −E[min(ρÂ, clip(ρ, 1 ± ε)Â)], ρ = π_θ′/π_θ′,old, through the inner step.
            var optimizer = state.optimizer ?? Adam(learningRate: config.outerLearningRate)
            var lastLoss = 0.0
            try PPO.optimize(
                &meta, optimizer: &optimizer, epochs: config.ppoEpochs, iteration: state.iteration + 1, quantity: "PPO outer loss",
                minibatches: { _ in [()] },  // the whole meta-batch each epoch
                gradient: { current, _ in
                    let shares = try distributedMap(tasks.count, group: group, threads: threads) { i in
                        let (loss, grad) = NN.valueAndGradient(at: current) { m -> Tensor in
                            let (_, rho) = ratio(m, task: i, secondOrder: secondOrder)
                            let a = advantages(i)[last]
                            return -(Tensor.minimum(rho * a, rho.clamped(1 - config.ppoClip, 1 + config.ppoClip) * a) * weight(task: i)).sum()
                        }
                        return ExchangedPair(loss.doubleScalar, grad.flatParameters.values)
                    }
                    lastLoss = shares.reduce(0) { $0 + $1.first }
                    return (lastLoss, current.withFlatParameters(Self.sumInOrder(shares.map(\.second))))
                })
            state.optimizer = optimizer
            state.policy = meta.policy
            state.stepSizes = meta.stepSizes
            outerMetrics = [("ppo_outer_loss", lastLoss)]
        case .trpo:
            // With one inner step of a scalar α (MAML's setting) or none differentiated (first
            // order), θ′ = θ − α∇L_in(θ) has the symmetric Jacobian J = I − α∇²L_in (or I), and
            // at θ_old, where θ′ = θ′_old and the KL's gradient in θ′ vanishes, the KL's Hessian
            // in θ is exactly Jᵀ F′ J with F′ its Hessian in θ′. CG's products then need only
            // two inner Hessian-vector products and one F′ product, each an R-operator pass
            // through the policy (`PolicyCurvature`) instead of a third-order graph.
            var factors: FisherFactors?
            if config.mode == .firstOrder || (config.mode == .secondOrder && config.innerAdaptationSteps == 1), useFactoredFisher {
                let theta = meta.policy
                factors = FisherFactors(
                    alpha: config.mode == .firstOrder ? 0 : config.innerStepSize,
                    innerHessian: { i in
                        let batch = rollout(i).batches[0]
                        let weights = Self.innerWeights(on: batch, advantages: advantages(i)[0], dtype: theta.network.layers[0].weight.dtype)
                        return PolicyCurvature(policy: theta, observations: batch.observationTensor,
                                               loss: .negativeLogLikelihood(actions: batch.actionTensor, weights: weights))
                    },
                    adaptedFisher: { i in
                        PolicyCurvature(policy: oldAdapted(i), observations: rollout(i).batches[last].observationTensor,
                                        loss: .klFromFixedPoint(weights: weight(task: i)))
                    })
            }
            outerMetrics = try trpoStep(meta: meta, tasks: tasks.count, secondOrder: secondOrder, surrogate: surrogate, factors: factors)
        }
        let finished = Date()

        state.iteration += 1
        state.environmentSteps += summaries.reduce(0) { $0 + $1.validSteps }
        var metrics = Self.adaptationMetrics(summaries)
        metrics += outerMetrics
        metrics += [
            ("environment_steps", Double(state.environmentSteps)),
            ("sample_seconds", sampled.timeIntervalSince(start)),
            ("update_seconds", finished.timeIntervalSince(sampled)),
        ]
        return metrics
    }

    /// What the metrics need of one task's rollout, small enough to gather from every process:
    /// the mean return and success rate after each inner step, and the steps sampled.
    struct TaskSummary: ProcessExchangeable {
        var meanReturns: [Double]
        var successRates: [Double]
        var validSteps: Int

        init(_ rollout: Rollout) {
            meanReturns = rollout.batches.map(\.meanReturn)
            successRates = rollout.batches.map(\.successRate)
            validSteps = rollout.batches.reduce(0) { $0 + Int($1.validSteps) }
        }
        func append(to bytes: inout [UInt8]) {
            meanReturns.append(to: &bytes)
            successRates.append(to: &bytes)
            validSteps.append(to: &bytes)
        }
        init(reading reader: inout ByteReader) throws {
            meanReturns = try [Double](reading: &reader)
            successRates = try [Double](reading: &reader)
            validSteps = try Int(reading: &reader)
        }
    }

    /// The mean episode return of the meta-batch before adaptation and after each inner
    /// step, with standard errors over its tasks, and the adaptation delta.
    static func adaptationMetrics(_ tasks: [TaskSummary]) -> [(String, Double)] {
        let last = tasks[0].meanReturns.count - 1
        let byStep = (0...last).map { k in
            SampleStatistics(tasks.map { $0.meanReturns[k] })
        }
        var metrics: [(String, Double)] = [
            ("episode_reward_mean", byStep[0].mean), ("episode_reward_mean_stderr", byStep[0].standardError),
        ]
        for k in 1...last {
            metrics.append(("episode_reward_mean_adapt_\(k)", byStep[k].mean))
            metrics.append(("episode_reward_mean_adapt_\(k)_stderr", byStep[k].standardError))
        }
        metrics.append(("adaptation_delta", byStep[last].mean - byStep[0].mean))
        // Where the family reports success (Meta-World): the share of episodes that solved their task.
        for k in 0...last {
            guard let success = EpisodeSuccess.statistics(tasks.map { $0.successRates[k] }) else { break }
            let name = k == 0 ? "success_rate" : "success_rate_adapt_\(k)"
            metrics += [(name, success.mean), (name + "_stderr", success.standardError)]
        }
        return metrics
    }

    /// Adds equal-length vectors element by element, in the order given.
    static func sumInOrder(_ parts: [[Float]]) -> [Float] {
        var total = parts[0]
        for part in parts.dropFirst() {
            for j in total.indices { total[j] += part[j] }
        }
        return total
    }

    /// The TRPO outer step: natural gradient of the surrogate gain by conjugate gradient on
    /// the KL's Hessian (through the inner step), then a backtracking line search. The gain,
    /// the KL and their derivatives are sums of per-task shares (`surrogate(meta, i, …)`),
    /// computed side by side on `threads` threads.
    mutating func trpoStep(meta: MetaParameters, tasks: Int, secondOrder: Bool,
                           surrogate: (MetaParameters, Int, Bool, Bool) -> (gain: Tensor, kl: Tensor?),
                           factors: FisherFactors? = nil) throws -> [(String, Double)] {
        let config = self.config, threads = self.threads, group = self.group
        let own = group.ownShare(of: tasks)
        let gradients = try distributedMap(tasks, group: group, threads: threads) { i in
            let (gain, gradient) = NN.valueAndGradient(at: meta) { surrogate($0, i, secondOrder, false).gain }
            return ExchangedPair(gain.doubleScalar, gradient.flatParameters.values)
        }
        let fisherProduct: ([Tensor]) throws -> [Double]
        if let factors {
            // J v = v − α ∇²L_in·v, then F′(J v), then Jᵀ = J on that; each task's
            // activations for the two Hessians kept once.
            let recorded = concurrentMap(own.count, threads: threads) { j in
                (inner: factors.alpha == 0 ? nil : factors.innerHessian(own.lowerBound + j), outer: factors.adaptedFisher(own.lowerBound + j))
            }
            fisherProduct = { vector in
                let parts = try distributedMap(tasks, group: group, threads: threads) { i in
                    let r = recorded[i - own.lowerBound]
                    func jacobian(_ u: [Tensor]) -> [Tensor] {
                        guard let inner = r.inner else { return u }
                        return zip(u, inner(u)).map { $0 - $1 * factors.alpha }
                    }
                    return jacobian(r.outer(jacobian(vector))).flatMap(\.values)
                }
                return Self.sumInOrder(parts).map(Double.init)
            }
        } else {
            // Each task's KL gradient is recorded once; each of CG's products differentiates it again.
            let fisher = concurrentMap(own.count, threads: threads) { j in
                HessianVectorProducts(at: meta.parameters) { p in
                    var m = meta
                    m.parameters = p
                    return surrogate(m, own.lowerBound + j, secondOrder, true).kl!
                }
            }
            fisherProduct = { vector in
                let parts = try distributedMap(tasks, group: group, threads: threads) { i in fisher[i - own.lowerBound](vector).flatMap(\.values) }
                return Self.sumInOrder(parts).map(Double.init)
            }
        }
        let (updated, step) = try TRPO.step(
            from: meta, gradient: Self.sumInOrder(gradients.map(\.second)).map(Double.init), settings: config.trpo,
            iteration: state.iteration + 1, fisherProduct: fisherProduct,
            evaluate: { m in
                var gain = 0.0, kl = 0.0
                for share in try distributedMap(tasks, group: group, threads: threads, { i in
                    let share = surrogate(m, i, false, true)
                    return ExchangedPair(share.gain.doubleScalar, share.kl!.doubleScalar)
                }) {
                    gain += share.first
                    kl += share.second
                }
                return (gain, kl)
            },
            gainAtStart: gradients.reduce(0) { $0 + $1.first })
        state.policy = updated.policy
        state.stepSizes = updated.stepSizes
        return [("trpo_kl", step.kl), ("trpo_improvement", step.improvement), ("trpo_accepted", step.accepted ? 1 : 0),
                ("trpo_backtracks", Double(step.backtracks))]
    }

    // MARK: Meta-test

    /// On `taskCount` fresh tasks: the mean episode return before adaptation and after
    /// each of `steps` inner steps (fresh episodes for each), with standard errors over tasks;
    /// also each task's success rate at each step (NaN where the family reports none).
    public func evaluate(steps: Int, taskCount: Int, seed: UInt64) throws
        -> (returns: [SampleStatistics], perTask: [[Double]], successByTask: [[Double]]) {
        var rng = Xoshiro256(seed: seed)
        let tasks = prototype.sampleTasks(taskCount, using: &rng)
        let seeds = tasks.map { _ in (0...steps).map { _ in rng.next() } }
        let rollouts = try adaptAndSample(tasks: tasks, seeds: seeds, steps: steps)
        let perTask = rollouts.map { $0.batches.map(\.meanReturn) }
        return ((0...steps).map { k in SampleStatistics(perTask.map { $0[k] }) }, perTask, rollouts.map { $0.batches.map(\.successRate) })
    }
}

// MARK: Registration

/// MAML, first-order MAML or Meta-SGD as `metarl train maml|maml-fo|meta-sgd` runs it.
public struct MAMLAlgorithm: ProcessGroupAlgorithmDefinition {
    /// The mode the name trains: `.secondOrder` (maml), `.firstOrder` (maml-fo), `.metaSGD` (meta-sgd).
    public var mode: MAMLConfig.Mode

    public init(mode: MAMLConfig.Mode) {
        precondition(mode != .reptile, "MAMLAlgorithm: Reptile is ReptileAlgorithm")
        self.mode = mode
    }

    public var name: String {
        switch mode {
        case .firstOrder: "maml-fo"
        case .metaSGD: "meta-sgd"
        default: "maml"
        }
    }
    public var summary: String {
        switch mode {
        case .firstOrder: "first-order MAML: the inner gradient is treated as a constant in the meta-gradient"
        case .metaSGD: "Meta-SGD: MAML with a per-parameter inner step size learned with θ"
        default: "MAML with a TRPO (or PPO) outer step, differentiating through the inner step (second order)"
        }
    }
    public var settingsKey: String { "maml" }
    public var defaultEnv: String { "point-nav" }
    public var defaultThreads: Int { ProcessInfo.processInfo.activeProcessorCount }

    public func prepare(_ settings: inout MAMLConfig) { settings.mode = mode }
    public func headlineMetric(_ settings: MAMLConfig) -> String { Self.headlineMetric(settings) }

    /// The post-adaptation return after the last inner step, for every algorithm of the family.
    static func headlineMetric(_ settings: MAMLConfig) -> String { "episode_reward_mean_adapt_\(settings.innerAdaptationSteps)" }

    /// A fresh run with the meta-batch's tasks split over `group`'s processes.
    public func start<E: MetaEnv>(_ settings: MAMLConfig, prototype: E, seed: UInt64, threads: Int,
                                  group: any ProcessGroup) throws -> any IterativeAlgorithm<MAMLState> {
        var maml = try MAML(config: settings, prototype: prototype, seed: seed)
        maml.threads = threads
        maml.group = group
        return maml
    }

    /// A checkpoint's run continued with the meta-batch's tasks split over `group`'s processes.
    public func restore<E: MetaEnv>(_ settings: MAMLConfig, prototype: E, state: MAMLState, threads: Int,
                                    group: any ProcessGroup) throws -> any IterativeAlgorithm<MAMLState> {
        var maml = try MAML(config: settings, prototype: prototype, state: state)
        maml.threads = threads
        maml.group = group
        return maml
    }

    public func evaluate<E: MetaEnv>(_ settings: MAMLConfig, state: MAMLState, prototype: E, options: MAMLEvaluationOptions,
                                     seed: UInt64, threads: Int) throws -> MAMLEvaluation {
        try MAMLEvaluation(settings, state: state, prototype: prototype, options: options, seed: seed, threads: threads)
    }
}

/// How `metarl eval` runs a MAML-family checkpoint.
public struct MAMLEvaluationOptions: SettingsTable {
    /// Inner adaptation steps to evaluate (nil: the run's).
    public var adaptSteps: Int?
    /// Fresh tasks to run.
    public var tasks = 40
    public init() {}
    public static let flags = [SettingFlag("adaptSteps", kind: .integer, help: "inner adaptation steps to evaluate (default: the run's)"),
                               SettingFlag("tasks", help: "fresh tasks to run")]
    public func validate() throws(ConfigError) {
        if let adaptSteps { try ConfigError.check("adaptSteps", adaptSteps, 0...100) }
        try ConfigError.check("tasks", tasks, 2...1_000_000)
    }
}

/// Meta-test results of a MAML-family run: on fresh tasks, the mean episode return before
/// adaptation (index 0) and after each inner step, with standard errors over tasks.
public struct MAMLEvaluation: EvaluationReport {
    public var returnsByStep: [Double]
    public var stderrByStep: [Double]
    public var adaptationDelta: Double
    public var adaptationDeltaStderr: Double
    public var tasks: Int
    public var seed: UInt64
    /// The return by inner step, as `metarl plot --adaptation` reads it.
    public let adaptation: AdaptationCurve

    enum CodingKeys: String, CodingKey {
        case returnsByStep = "returns_by_step", stderrByStep = "stderr_by_step", adaptationDelta = "adaptation_delta"
        case adaptationDeltaStderr = "adaptation_delta_stderr", tasks, seed, adaptation
    }

    /// Evaluates `state` on `options.tasks` fresh tasks (Reptile's state too: the inner loop is the same).
    public init<E: MetaEnv>(_ settings: MAMLConfig, state: MAMLState, prototype: E, options: MAMLEvaluationOptions,
                            seed: UInt64, threads: Int) throws {
        var inner = settings
        if inner.mode == .reptile { inner.mode = .firstOrder }  // the inner loop, without Reptile's outer step
        var maml = try MAML(config: inner, prototype: prototype, state: state)
        maml.threads = threads
        let steps = options.adaptSteps ?? settings.innerAdaptationSteps
        let (returns, perTask, successByTask) = try maml.evaluate(steps: steps, taskCount: options.tasks, seed: seed)
        // The delta's standard error over tasks (paired: the same tasks before and after).
        let delta = SampleStatistics(perTask.map { $0[steps] - $0[0] })
        returnsByStep = returns.map(\.mean)
        stderrByStep = returns.map(\.standardError)
        adaptationDelta = delta.mean
        adaptationDeltaStderr = delta.standardError
        tasks = options.tasks
        self.seed = seed
        adaptation = AdaptationCurve(axis: "inner gradient steps", first: 0, values: returnsByStep, stderr: stderrByStep,
                                     successByTask: successByTask)
    }

    public func summary(algorithm: String, env: String) -> [String] {
        [String(format: "%@ on %@ over %d fresh tasks: return before adaptation %.2f ± %.2f; adaptation delta %.2f ± %.2f (s.e.)",
                algorithm, env, tasks, returnsByStep[0], stderrByStep[0], adaptationDelta, adaptationDeltaStderr),
         "return by inner step: " + zip(returnsByStep, stderrByStep).enumerated()
            .map { String(format: "%d: %.2f±%.2f", $0.offset, $0.element.0, $0.element.1) }.joined(separator: "  ")]
        + [adaptation.successSummary(by: "inner step")].compactMap { $0 }
    }
}

/// What the factored Fisher product Jᵀ F′ J needs for each task i: the inner step size α
/// (0: J = I), the inner loss's Hessian at θ, and F′, the KL's Hessian at the adapted
/// parameters θ′_i,old.
struct FisherFactors {
    var alpha: Double
    var innerHessian: (Int) -> PolicyCurvature
    var adaptedFisher: (Int) -> PolicyCurvature
}

public enum MAMLError: Error, CustomStringConvertible {
    case unsupported(String)
    case incompatibleState(String)
    public var description: String {
        switch self {
        case .unsupported(let s): s
        case .incompatibleState(let s): "saved state does not fit the config: " + s
        }
    }
}
