import Envs
import Foundation
import NN
import RL
import TensorCore

// Reptile (Nichol, Achiam & Schulman 2018) for reinforcement learning.
//
// For a meta-batch of tasks T_i, starting from θ:
//   φ_i ← θ, then k times: sample episodes of T_i with π_φ_i and take the inner policy-gradient
//   step φ_i ← φ_i − α ∇L_in(φ_i) (the same REINFORCE step as MAML's inner loop);
//   θ ← θ + ε · (1/n) Σ_i (φ_i − θ).
// No second derivatives: the update direction is the average of the adapted parameters'
// displacement. With two tasks, one step and ε = 1 it is model aggregation,
// θ ← ½φ₁ + ½φ₂ (weights w and 1 − w with `aggregate(_:weights:)`).
//
// The settings are `MAMLConfig` with `mode: reptile` (`outerStepSize` is ε), so a Reptile run
// directory is evaluated like any MAML-family run.

/// Reptile on a task family: `iterate()` adapts to each task of a meta-batch and moves θ
/// toward the adapted parameters.
public struct Reptile<E: MetaEnv>: IterativeAlgorithm {
    public let config: MAMLConfig
    public let prototype: E
    public var state: MAMLState
    /// Threads for the tasks of a meta-batch (results do not depend on it).
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// The processes the meta-batch's tasks are split over (results do not depend on their number).
    public var group: any ProcessGroup = SingleProcess()

    public var iteration: Int { state.iteration }
    public var environmentSteps: Int { state.environmentSteps }
    public var headlineMetric: String { MAMLAlgorithm.headlineMetric(config) }

    /// A fresh run; `config.mode` must be `.reptile`.
    public init(config: MAMLConfig, prototype: E, seed: UInt64) throws {
        self.config = config
        self.prototype = prototype
        state = try MAML(config: try Self.innerLoop(config), prototype: prototype, seed: seed).state
    }

    /// Continues from a saved state after MAML's checks.
    public init(config: MAMLConfig, prototype: E, state: MAMLState) throws {
        _ = try MAML(config: try Self.innerLoop(config), prototype: prototype, state: state)
        self.config = config
        self.prototype = prototype
        self.state = state
    }

    /// The settings of the MAML inner loop Reptile runs (first order: no meta-gradient).
    static func innerLoop(_ config: MAMLConfig) throws -> MAMLConfig {
        guard config.mode == .reptile else {
            throw MAMLError.unsupported("Reptile runs mode reptile (got \(config.mode.rawValue); MAML runs that)")
        }
        var inner = config
        inner.mode = .firstOrder
        return inner
    }

    /// θ + ε · (Σ_i w_i φ_i − θ) for weights summing to one.
    public static func aggregate(_ theta: MLPPolicy, adapted: [MLPPolicy], weights: [Double], outerStepSize: Double) -> MLPPolicy {
        precondition(adapted.count == weights.count && !adapted.isEmpty, "aggregate: one weight per adapted policy")
        var mean = adapted[0].mapParameters { $0 * weights[0] }
        for (phi, w) in zip(adapted.dropFirst(), weights.dropFirst()) { mean = mean.zipParameters(phi) { $0 + $1 * w } }
        return theta.zipParameters(mean) { $0 + ($1 - $0) * outerStepSize }
    }

    public mutating func iterate() throws -> [(String, Double)] {
        let config = self.config
        let start = Date()
        let tasks = prototype.sampleTasks(config.metaBatchSize, using: &state.rng)
        let seeds = tasks.map { _ in (0...config.innerAdaptationSteps).map { _ in state.rng.next() } }
        var maml = try MAML(config: try Self.innerLoop(config), prototype: prototype, state: state)
        maml.threads = threads
        // The same inner loop as MAML: the parameters after each step and the episodes
        // each produced (the last batch measures the adapted policy). Each process adapts to
        // its block of tasks; the adapted parameters and summaries are gathered in task order.
        let own = group.ownShare(of: tasks.count)
        let local = try maml.adaptAndSample(tasks: tasks, seeds: seeds, only: own)
        let last = config.innerAdaptationSteps
        let gathered = try distributedMap(tasks.count, group: group, threads: 1) { i in
            let rollout = local[i - own.lowerBound]
            return ExchangedPair(rollout.policies[last].flatParameters.values, MAML<E>.TaskSummary(rollout))
        }
        let theta = state.policy
        state.policy = Self.aggregate(state.policy, adapted: gathered.map { theta.withFlatParameters($0.first) },
                                      weights: [Double](repeating: 1 / Double(tasks.count), count: tasks.count),
                                      outerStepSize: config.outerStepSize)
        for (name, p) in state.policy.namedParameters where !p.values.allSatisfy({ $0.isFinite }) {
            throw NonFiniteError(iteration: state.iteration + 1, quantity: "parameter \(name)")
        }
        let finished = Date()
        state.iteration += 1
        let summaries = gathered.map(\.second)
        state.environmentSteps += summaries.reduce(0) { $0 + $1.validSteps }
        return MAML<E>.adaptationMetrics(summaries) + [
            ("environment_steps", Double(state.environmentSteps)),
            ("sample_seconds", finished.timeIntervalSince(start)),
            ("update_seconds", 0),
        ]
    }
}

/// Reptile as `metarl train reptile` runs it (MAML-family settings, `mode: reptile`).
public struct ReptileAlgorithm: ProcessGroupAlgorithmDefinition {
    public init() {}
    public var name: String { "reptile" }
    public var summary: String { "Reptile: adapt to each task, then move θ toward the adapted parameters by ε" }
    public var settingsKey: String { "maml" }
    public var defaultEnv: String { "point-nav" }
    public var defaultThreads: Int { ProcessInfo.processInfo.activeProcessorCount }

    public func prepare(_ settings: inout MAMLConfig) { settings.mode = .reptile }
    public func headlineMetric(_ settings: MAMLConfig) -> String { MAMLAlgorithm.headlineMetric(settings) }

    /// A fresh run with the meta-batch's tasks split over `group`'s processes.
    public func start<E: MetaEnv>(_ settings: MAMLConfig, prototype: E, seed: UInt64, threads: Int,
                                  group: any ProcessGroup) throws -> any IterativeAlgorithm<MAMLState> {
        var reptile = try Reptile(config: settings, prototype: prototype, seed: seed)
        reptile.threads = threads
        reptile.group = group
        return reptile
    }

    /// A checkpoint's run continued with the meta-batch's tasks split over `group`'s processes.
    public func restore<E: MetaEnv>(_ settings: MAMLConfig, prototype: E, state: MAMLState, threads: Int,
                                    group: any ProcessGroup) throws -> any IterativeAlgorithm<MAMLState> {
        var reptile = try Reptile(config: settings, prototype: prototype, state: state)
        reptile.threads = threads
        reptile.group = group
        return reptile
    }

    public func evaluate<E: MetaEnv>(_ settings: MAMLConfig, state: MAMLState, prototype: E, options: MAMLEvaluationOptions,
                                     seed: UInt64, threads: Int) throws -> MAMLEvaluation {
        try MAMLEvaluation(settings, state: state, prototype: prototype, options: options, seed: seed, threads: threads)
    }
}
