import Envs
import Foundation
import NN
import TensorCore

// Soft actor-critic on one task (or, with `taskMixture`, on a fresh task of the family
// every episode: the domain-randomisation baseline PEARL is compared with).
//
// Each environment step: act with a ~ π(·|s) (uniformly random for the first
// `randomSteps`), store (s, a, r, s′, d) in the replay buffer, and once `randomSteps` have
// been taken, make `updatesPerStep` updates on minibatches drawn from it (SACAgent.update):
//   critics  ← ∇ ½ Σ_k E(Q_k(s, a) − y)²,   y = s_r·r + γ(1 − d)(min_k Q′_k(s′, a′) − α log π(a′|s′))
//   actor    ← ∇ E[α log π(ã|s) − min_k Q_k(s, ã)],  ã reparameterised
//   α        ← ∇ E[−log α (log π(ã|s) + H̄)],  H̄ = −dim(A)
//   targets  ← Polyak average with τ.
// An iteration is whole episodes, at least `stepsPerIteration` steps (so a checkpoint
// never falls inside an episode), followed by `evalEpisodes` episodes with the mean action.

/// The settings of a SAC run. Defaults follow the SAC paper (256 × 256 ReLU networks,
/// Adam 3e-4, batch 256, γ 0.99, τ 0.005, automatic temperature) with a short random
/// warm-up, sized for the 20 000-step pendulum budget.
public struct SACConfig: AlgorithmSettings {
    public var hiddenSizes: [Int] = [256, 256]
    public var update = SACUpdateSettings()
    public var batchSize: Int = 256
    /// Steps with uniformly random actions before the first update.
    public var randomSteps: Int = 1000
    public var updatesPerStep: Int = 1
    public var stepsPerIteration: Int = 1000
    public var iterations: Int = 20
    public var bufferCapacity: Int = 1_000_000
    /// Evaluation episodes (mean action) after each iteration.
    public var evalEpisodes: Int = 10
    /// A fresh task of the family every episode (domain randomisation) instead of one fixed task.
    public var taskMixture: Bool = false
    /// Fixed parts each update's minibatch is cut into: each part's gradient is computed on
    /// its own and the parts' gradients added in part order. MPI ranks each take a contiguous
    /// block of parts (acting and the replay buffer are repeated on every rank), so a run's
    /// numbers depend on `shards`, never on the process count. 1 keeps one batch.
    public var shards: Int = 1

    public init() {}

    /// Throws a `ConfigError` naming the first field out of range.
    public func validate() throws(ConfigError) {
        guard !hiddenSizes.isEmpty, hiddenSizes.allSatisfy({ (1...4096).contains($0) }) else {
            throw ConfigError(field: "hiddenSizes", value: "\(hiddenSizes)", allowed: "one or more sizes in 1…4096")
        }
        try update.validate(prefix: "update.")
        try ConfigError.check("batchSize", batchSize, 1...100_000)
        try ConfigError.check("randomSteps", randomSteps, 0...100_000_000)
        try ConfigError.check("updatesPerStep", updatesPerStep, 0...100)
        try ConfigError.check("stepsPerIteration", stepsPerIteration, 1...100_000_000)
        try ConfigError.check("iterations", iterations, 1...100_000_000)
        try ConfigError.check("bufferCapacity", bufferCapacity, 1...100_000_000)
        try ConfigError.check("evalEpisodes", evalEpisodes, 1...100_000)
        try ConfigError.check("shards", shards, 1...batchSize, note: "at most batchSize")
    }

    /// Command-line names and help (every other key is a flag by its own name).
    public static let flags: [SettingFlag] = [
        SettingFlag("iterations", help: "iterations, each at least --steps-per-iteration environment steps (with --resume: the new total)"),
        SettingFlag("stepsPerIteration", help: "environment steps per iteration"),
        SettingFlag("randomSteps", help: "uniformly random steps before learning starts"),
        SettingFlag("hiddenSizes", help: "hidden sizes of the actor and critics, comma-separated"),
        SettingFlag("batchSize", help: "minibatch size"),
        SettingFlag("update.learningRate", flag: "--learning-rate", help: "Adam learning rate"),
        SettingFlag("update.rewardScale", flag: "--reward-scale", help: "reward scale"),
        SettingFlag("evalEpisodes", help: "evaluation episodes after each iteration"),
        SettingFlag("taskMixture", help: "train on a fresh task every episode (the domain-randomisation baseline)"),
        SettingFlag("shards", help: "fixed parts of each minibatch, computed side by side on --threads threads and added in order (mpirun -np N needs N ≤ shards; results depend on shards, not on N or the threads)"),
        SettingFlag("bufferCapacity", help: "transitions the replay buffer holds"),
        SettingFlag("updatesPerStep", help: "gradient updates per environment step"),
    ] + SACUpdateSettings.flags
}

/// Everything a SAC run needs to continue: the learner, the replay buffer, the generator,
/// the counters, and the seed the fixed task is drawn from.
public struct SACState: Codable, Sendable {
    public var agent: SACAgent
    public var buffer: ReplayBuffer
    public var rng: Xoshiro256
    public var seed: UInt64
    public var iteration: Int
    public var environmentSteps: Int
    public var updates: Int
}

/// Soft actor-critic on a task family: one fixed task, or the task mixture.
public struct SAC<E: MetaEnv>: IterativeAlgorithm, ProcessGroupMember {
    public let config: SACConfig
    public let prototype: E
    public var state: SACState
    /// The task trained on unless `taskMixture` (drawn from the seed).
    public let fixedTask: E.Task
    let scaling: ActionScaling
    /// The processes each update's parts are split over (results do not depend on it).
    public var group: any ProcessGroup = SingleProcess()
    /// The threads a process computes its parts on (results do not depend on it either).
    public var threads: Int = 1

    public var iteration: Int { state.iteration }
    public var environmentSteps: Int { state.environmentSteps }
    public var headlineMetric: String { SACAlgorithm().headlineMetric(config) }

    /// A fresh run; each update's parts (`shards`) are computed on up to `threads` threads.
    public init(config: SACConfig, prototype: E, seed: UInt64, threads: Int = 1) throws {
        scaling = try ActionScaling(prototype.actionSpace)
        self.threads = threads
        self.config = config
        self.prototype = prototype
        var rng = Xoshiro256(seed: seed)
        let n = prototype.observationSpace.flatSize, m = prototype.actionSpace.flatSize
        let agent = SACAgent(inputSize: n, actionSize: m, hiddenSizes: config.hiddenSizes, settings: config.update, using: &rng)
        state = SACState(agent: agent, buffer: ReplayBuffer(capacity: config.bufferCapacity, observationSize: n, actionSize: m),
                         rng: rng, seed: seed, iteration: 0, environmentSteps: 0, updates: 0)
        fixedTask = singleTask(of: prototype, seed: seed)
    }

    /// Continues from a saved state after checking it fits the config.
    public init(config: SACConfig, prototype: E, state: SACState, threads: Int = 1) throws {
        let fresh = try SAC(config: config, prototype: prototype, seed: state.seed, threads: threads)
        guard state.agent.actor.hasSameParameterShapes(as: fresh.state.agent.actor),
              state.agent.critics.hasSameParameterShapes(as: fresh.state.agent.critics),
              state.agent.targetCritics.hasSameParameterShapes(as: fresh.state.agent.critics),
              state.buffer.capacity == config.bufferCapacity, state.buffer.observationSize == fresh.state.buffer.observationSize,
              state.buffer.actionSize == fresh.state.buffer.actionSize, state.iteration >= 0, state.environmentSteps >= 0
        else { throw ConfigError(field: "checkpoint", value: "a SAC state", allowed: "one whose networks and buffer match the config") }
        self = fresh
        self.state = state
    }

    public mutating func iterate() throws -> [(String, Double)] {
        let config = self.config, n = state.buffer.observationSize, m = state.buffer.actionSize
        let start = Date()
        var env = prototype
        var observation = [Float](repeating: 0, count: n), next = observation
        var action = [Float](repeating: 0, count: m), envAction = action
        var trainingReturns: [Double] = [], losses = SACLosses(), updates = 0
        var steps = 0
        while steps < config.stepsPerIteration {
            env.setTask(config.taskMixture ? prototype.sampleTasks(1, using: &state.rng)[0] : fixedTask)
            observation.withUnsafeMutableBufferPointer { env.reset(observation: $0, using: &state.rng) }
            var episodeReturn = 0.0
            while true {
                if state.environmentSteps < config.randomSteps {
                    for j in 0..<m { action[j] = state.rng.uniformFloat() * 2 - 1 }
                } else {
                    action = state.agent.actor.actions(Tensor(shape: [1, n], values: observation), deterministic: false, using: &state.rng)
                }
                for j in 0..<m { envAction[j] = scaling(action[j], j) }
                let outcome = try envAction.withUnsafeBufferPointer { a throws(EnvError) in
                    try next.withUnsafeMutableBufferPointer { o throws(EnvError) in try env.step(a, observation: o, using: &state.rng) }
                }
                state.buffer.add(observation: observation, action: action, reward: outcome.reward, nextObservation: next,
                                 terminal: outcome.terminated)
                episodeReturn += Double(outcome.reward)
                state.environmentSteps += 1
                steps += 1
                if state.environmentSteps >= config.randomSteps {
                    for _ in 0..<config.updatesPerStep {
                        let batch = state.buffer.sample(config.batchSize, using: &state.rng)
                        losses = try losses + state.agent.update(batch, parts: config.shards, group: group, threads: threads, using: &state.rng)
                        updates += 1
                    }
                }
                swap(&observation, &next)
                if outcome.episodeEnded { break }
            }
            trainingReturns.append(episodeReturn)
        }
        state.updates += updates
        let trained = Date()
        guard state.agent.actor.parameters.allSatisfy({ $0.values.allSatisfy(\.isFinite) }) else {
            throw NonFiniteError(iteration: state.iteration + 1, quantity: "SAC actor parameters")
        }

        let tasks = config.taskMixture ? prototype.sampleTasks(config.evalEpisodes, using: &state.rng)
                                       : [E.Task](repeating: fixedTask, count: config.evalEpisodes)
        let episodes = try evaluate(tasks: tasks, seed: state.rng.next())
        let evaluation = SampleStatistics(episodes.returns)
        state.iteration += 1
        let mean = updates > 0 ? losses.scaled(by: 1 / Double(updates)) : SACLosses()
        let success = EpisodeSuccess.rate(episodes.successes).map { [("eval_success_rate", $0)] } ?? []
        return success + [
            ("eval_return_mean", evaluation.mean), ("eval_return_mean_stderr", evaluation.standardError),
            ("episode_return_mean", trainingReturns.reduce(0, +) / Double(trainingReturns.count)),
            ("critic_loss", mean.critic), ("actor_loss", mean.actor), ("temperature", state.agent.temperature.alpha),
            ("entropy", mean.entropy), ("mean_q_target", mean.meanQ),
            ("environment_steps", Double(state.environmentSteps)), ("updates", Double(state.updates)),
            ("train_seconds", trained.timeIntervalSince(start)),
        ]
    }

    /// One episode of each task with the mean action; the returns and successes (`EpisodeSuccess`).
    public func evaluate(tasks: [E.Task], seed: UInt64) throws -> (returns: [Double], successes: [Float]) {
        let actor = state.agent.actor, n = state.buffer.observationSize
        var unused = Xoshiro256(seed: 0)
        let episodes = try runLockstepEpisodes(prototype: prototype, tasks: tasks, seed: seed) { observations in
            actor.actions(Tensor(shape: [tasks.count, n], values: observations), deterministic: true, using: &unused)
        }
        return (episodes.returns, episodes.successes)
    }
}

// MARK: Registration

/// The one task a single-task run (SAC, PPO) with this seed trains on: drawn from the
/// family (from its fixed test set with `split=test`) by a stream of its own.
public func singleTask<E: MetaEnv>(of prototype: E, seed: UInt64) -> E.Task {
    var rng = Xoshiro256(seed: seed ^ 0x5AC7_A5C0_0000_0001)
    return prototype.sampleTasks(1, using: &rng)[0]
}

/// SAC as `metarl train sac` runs it.
public struct SACAlgorithm: ProcessGroupAlgorithmDefinition {
    public init() {}
    public var name: String { "sac" }
    public var summary: String { "soft actor-critic on one task of a family (or, with --task-mixture, on a fresh task every episode)" }
    public var defaultEnv: String { "pendulum-mass" }
    public var checkpointEvery: Int { 5 }
    public var keepCheckpoints: Int { 2 }

    public func headlineMetric(_ settings: SACConfig) -> String { "eval_return_mean" }

    /// The state without its replay buffer (an evaluation export).
    public func evaluationState(_ state: SACState) -> SACState {
        var state = state
        state.buffer = state.buffer.emptied
        return state
    }

    /// A fresh run with each update's parts (`shards`) split over `group`'s processes.
    public func start<E: MetaEnv>(_ settings: SACConfig, prototype: E, seed: UInt64, threads: Int,
                                  group: any ProcessGroup) throws -> any IterativeAlgorithm<SACState> {
        try splitting(SAC(config: settings, prototype: prototype, seed: seed, threads: threads), shards: settings.shards, of: "each update's minibatch", over: group)
    }

    /// A checkpoint's run continued with each update's parts split over `group`'s processes.
    public func restore<E: MetaEnv>(_ settings: SACConfig, prototype: E, state: SACState, threads: Int,
                                    group: any ProcessGroup) throws -> any IterativeAlgorithm<SACState> {
        try EvaluationExportError.requireReplay([state.buffer], iteration: state.iteration, algorithm: name)
        return try splitting(SAC(config: settings, prototype: prototype, state: state, threads: threads), shards: settings.shards, of: "each update's minibatch", over: group)
    }

    /// `trajectories` episodes (mean action) on each of `tasks` fresh tasks of the family (on
    /// the run's own task unless it trained on the mixture).
    public func evaluate<E: MetaEnv>(_ settings: SACConfig, state: SACState, prototype: E, options: TrajectoryEvaluationOptions,
                                     seed: UInt64, threads: Int) throws -> TrajectoryEvaluation {
        let sac = try SAC(config: settings, prototype: prototype, state: state)
        return try TrajectoryEvaluation.ofSingleTaskPolicy(
            prototype: prototype, fixedTask: settings.taskMixture ? nil : sac.fixedTask, options: options, seed: seed,
            actions: "mean action", run: sac.evaluate(tasks:seed:))
    }
}

extension TrajectoryEvaluation {
    /// The evaluation of a policy without context (SAC, PPO): `options.trajectories` rounds of
    /// one episode on each of `options.tasks` tasks (`fixedTask` every time, or fresh tasks of
    /// the family when nil), each round run by `run(tasks, seed)` → returns and successes.
    public static func ofSingleTaskPolicy<E: MetaEnv>(
        prototype: E, fixedTask: E.Task?, options: TrajectoryEvaluationOptions, seed: UInt64, actions: String,
        run: ([E.Task], UInt64) throws -> (returns: [Double], successes: [Float])
    ) throws -> TrajectoryEvaluation {
        var rng = Xoshiro256(seed: seed)
        let tasks = fixedTask.map { [E.Task](repeating: $0, count: options.tasks) } ?? prototype.sampleTasks(options.tasks, using: &rng)
        var perTask = [[Double]](repeating: [], count: options.tasks), successByTask = perTask
        for _ in 0..<options.trajectories {
            let episodes = try run(tasks, rng.next())
            for i in tasks.indices {
                perTask[i].append(episodes.returns[i])
                successByTask[i].append(Double(episodes.successes[i]))
            }
        }
        return TrajectoryEvaluation(perTask: perTask, successByTask: successByTask, seed: seed, actions: actions)
    }
}

/// How `metarl eval` runs a SAC or PEARL checkpoint.
public struct TrajectoryEvaluationOptions: SettingsTable {
    /// Trajectories per task (PEARL's adaptation curve by trajectory).
    public var trajectories = 3
    /// Fresh tasks to run.
    public var tasks = 40
    /// PEARL: act with the policy's mean given z instead of sampling (SAC always uses the mean).
    public var meanAction = false
    public init() {}
    public static let flags = [
        SettingFlag("trajectories", help: "trajectories per task (the adaptation curve by trajectory)"),
        SettingFlag("tasks", help: "fresh tasks to run"),
        SettingFlag("meanAction", help: "PEARL: act with the policy's mean given z instead of sampling (SAC always uses the mean)"),
    ]
    public func validate() throws(ConfigError) {
        try ConfigError.check("trajectories", trajectories, 1...1000)
        try ConfigError.check("tasks", tasks, 2...10_000_000)
    }
}

/// Meta-test results of a SAC or PEARL run: the mean return of the k-th trajectory on a
/// fresh task (PEARL's adaptation curve; flat for SAC, which has no context), with
/// standard errors over tasks.
public struct TrajectoryEvaluation: EvaluationReport {
    public var returnsByTrajectory: [Double]
    public var stderrByTrajectory: [Double]
    public var tasks: Int
    public var seed: UInt64
    /// How actions were chosen, for the summary line (not written to JSON).
    public var actions: String
    /// The return by trajectory, as `metarl plot --adaptation` reads it.
    public let adaptation: AdaptationCurve

    enum CodingKeys: String, CodingKey {
        case returnsByTrajectory = "returns_by_trajectory", stderrByTrajectory = "stderr_by_trajectory", tasks, seed, adaptation
    }

    /// Statistics over tasks of `perTask[i][k]`, the return of task i's k-th trajectory, and
    /// of `successByTask[i][k]`, its success (1, 0, or NaN where the family reports none).
    public init(perTask: [[Double]], successByTask: [[Double]] = [], seed: UInt64, actions: String) {
        let k = perTask.first?.count ?? 0
        let byTrajectory = (0..<k).map { j in SampleStatistics(perTask.map { $0[j] }) }
        returnsByTrajectory = byTrajectory.map(\.mean)
        stderrByTrajectory = byTrajectory.map(\.standardError)
        tasks = perTask.count
        self.seed = seed
        self.actions = actions
        adaptation = AdaptationCurve(axis: "trajectory on the task", first: 1, values: returnsByTrajectory, stderr: stderrByTrajectory,
                                     successByTask: successByTask)
    }

    public func summary(algorithm: String, env: String) -> [String] {
        ["\(algorithm) on \(env) over \(tasks) fresh tasks (\(actions)):",
         "return by trajectory: " + zip(returnsByTrajectory, stderrByTrajectory).enumerated()
            .map { String(format: "%d: %.2f±%.2f", $0.offset + 1, $0.element.0, $0.element.1) }.joined(separator: "  ")]
        + [adaptation.successSummary(by: "trajectory")].compactMap { $0 }
    }
}

/// One episode of each task, all in lockstep in one `VectorEnv`: `act` maps the
/// observations of every copy [N × obs] to actions in (−1, 1) [N × act] (scaled to the
/// action box here); `record` sees each transition of an unfinished episode, with its
/// action in (−1, 1) and its true next observation. Returns each episode's return and
/// success (`EpisodeSuccess`: NaN where the family reports none) and the steps taken.
@discardableResult
public func runLockstepEpisodes<E: MetaEnv>(
    prototype: E, tasks: [E.Task], seed: UInt64, act: ([Float]) -> [Float],
    record: ((_ copy: Int, _ observation: ArraySlice<Float>, _ action: ArraySlice<Float>, _ reward: Float,
              _ next: ArraySlice<Float>, _ terminal: Bool) -> Void)? = nil
) throws -> (returns: [Double], successes: [Float], steps: Int) {
    let scaling = try ActionScaling(prototype.actionSpace)
    var env = VectorEnv(prototype, count: tasks.count, seed: seed)
    for (i, task) in tasks.enumerated() { env.setTask(task, at: i) }
    env.resetAll()
    let n = env.observationSize, m = env.actionSize
    var alive = [Bool](repeating: true, count: tasks.count), returns = [Double](repeating: 0, count: tasks.count)
    var successes = [Float](repeating: .nan, count: tasks.count)
    var envActions = [Float](repeating: 0, count: tasks.count * m), steps = 0
    while alive.contains(true) {
        let observations = env.observations
        let actions = act(observations)
        for i in 0..<(tasks.count * m) { envActions[i] = scaling(actions[i], i % m) }
        try env.step(envActions)
        for i in tasks.indices where alive[i] {
            let ended = env.terminated[i] || env.truncated[i]
            returns[i] += Double(env.rewards[i])
            EpisodeSuccess.accumulate(&successes[i], step: env.successes[i])
            steps += 1
            if let record {
                let next = ended ? env.finalObservations[(i * n)..<((i + 1) * n)] : env.observations[(i * n)..<((i + 1) * n)]
                record(i, observations[(i * n)..<((i + 1) * n)], actions[(i * m)..<((i + 1) * m)], env.rewards[i], next, env.terminated[i])
            }
            if ended { alive[i] = false }
        }
    }
    return (returns, successes, steps)
}
