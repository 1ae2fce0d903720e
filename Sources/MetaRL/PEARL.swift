import Envs
import Foundation
import NN
import RL
import TensorCore

// PEARL (Rakelly, Zhou, Quillen, Finn & Levine 2019): meta-RL as inference of a latent
// task variable z, on top of soft actor-critic.
//
// Encoder: each context transition c_n = (s, a, r, s′) of a task gives a Gaussian factor
// Ψ(z | c_n) = N(μ_n, σ_n²); the posterior is their product,
//     q(z | c) ∝ Π_n N(μ_n, σ_n²):  σ² = 1 / Σ_n σ_n⁻²,  μ = σ² Σ_n μ_n / σ_n²,
// which does not depend on the order of the context.
//
// Training, over a fixed set of `trainTasks` tasks, each with its own replay buffer and a
// separate context buffer of recent experience:
//   1. collect: for `tasksPerIteration` tasks, clear the context buffer, run `priorSteps`
//      steps with z ~ N(0, I) (into both buffers), `posteriorSteps` with z ~ q(z | c) (into
//      both) and `extraPosteriorSteps` with z ~ q(z | c) (replay buffer only);
//   2. `gradientStepsPerIteration` times, for a meta-batch of tasks T_i: a context batch c_i
//      from T_i's context buffer, z_i ~ q(z | c_i) reparameterised, an RL batch from T_i's
//      replay buffer; then
//        critics and encoder ← ∇ [ SAC critic loss on inputs (s, z_i)  +  β Σ_i KL(q(z | c_i) ‖ N(0, I)) ]
//      (the encoder learns through the critic: z is not detached there), and
//        actor and temperature ← SAC's losses on inputs (s, z_i) with z_i detached.
// Meta-test on a new task: z ~ N(0, I) for the first trajectory; after each trajectory
// the posterior is recomputed from all the context so far and a new z drawn. Actions are
// sampled from the policy given z, as in training (see `evaluate`).

/// The settings of a PEARL run. Network sizes, batch sizes and step counts are scaled down
/// from the paper's (300-unit networks, 2 000 gradient steps per iteration) to fit two
/// cores; β = 0.1, latent size 5, SAC's learning rate and Polyak τ are the paper's.
public struct PEARLConfig: AlgorithmSettings {
    public var latentSize: Int = 5
    /// Hidden sizes of the actor and the critics.
    public var hiddenSizes: [Int] = [128, 128]
    public var encoderHiddenSizes: [Int] = [128, 128]
    public var update: SACUpdateSettings = {
        var s = SACUpdateSettings()
        s.rewardScale = 5
        return s
    }()
    /// β, the weight of KL(q(z | c) ‖ N(0, I)).
    public var klWeight: Double = 0.1
    /// Tasks drawn once (from the seed) to train on.
    public var trainTasks: Int = 40
    public var metaBatchSize: Int = 8
    /// RL transitions per task in a gradient step.
    public var batchSize: Int = 128
    /// Context transitions per task given to the encoder in a gradient step.
    public var contextBatchSize: Int = 64
    /// Steps with z ~ N(0, I) on every training task before the first iteration.
    public var initialStepsPerTask: Int = 400
    public var tasksPerIteration: Int = 5
    public var priorSteps: Int = 400
    public var posteriorSteps: Int = 0
    public var extraPosteriorSteps: Int = 400
    public var gradientStepsPerIteration: Int = 500
    public var iterations: Int = 100
    /// Capacity of each task's replay buffer (the context buffers hold one collection).
    public var bufferCapacity: Int = 100_000
    /// Fresh tasks, and trajectories on each, of the meta-test run after every iteration.
    public var evalTasks: Int = 20
    public var evalTrajectories: Int = 3
    /// Fixed parts each gradient step's meta-batch of tasks is split into: each part's
    /// gradient is computed on its own and the parts' gradients added in part order. MPI ranks
    /// each take a contiguous block of parts (collection is repeated on every rank), so a
    /// run's numbers depend on `shards`, never on the process count. 1 keeps one batch.
    public var shards: Int = 1

    public init() {}

    /// Throws a `ConfigError` naming the first field out of range.
    public func validate() throws(ConfigError) {
        for (name, sizes) in [("hiddenSizes", hiddenSizes), ("encoderHiddenSizes", encoderHiddenSizes)] {
            guard !sizes.isEmpty, sizes.allSatisfy({ (1...4096).contains($0) }) else {
                throw ConfigError(field: name, value: "\(sizes)", allowed: "one or more sizes in 1…4096")
            }
        }
        try ConfigError.check("latentSize", latentSize, 1...1024)
        try update.validate(prefix: "update.")
        try ConfigError.check("klWeight", klWeight, 0...1e6)
        try ConfigError.check("trainTasks", trainTasks, 1...100_000)
        try ConfigError.check("metaBatchSize", metaBatchSize, 1...trainTasks, note: "at most trainTasks")
        try ConfigError.check("batchSize", batchSize, 1...100_000)
        try ConfigError.check("contextBatchSize", contextBatchSize, 1...100_000)
        try ConfigError.check("initialStepsPerTask", initialStepsPerTask, 1...100_000_000)
        try ConfigError.check("tasksPerIteration", tasksPerIteration, 0...trainTasks, note: "at most trainTasks")
        try ConfigError.check("priorSteps", priorSteps, 0...100_000_000)
        try ConfigError.check("posteriorSteps", posteriorSteps, 0...100_000_000)
        try ConfigError.check("extraPosteriorSteps", extraPosteriorSteps, 0...100_000_000)
        guard tasksPerIteration == 0 || priorSteps + posteriorSteps > 0 else {
            throw ConfigError(field: "priorSteps", value: "\(priorSteps)",
                              allowed: "priorSteps + posteriorSteps ≥ 1 (the context buffer must be refilled)")
        }
        try ConfigError.check("gradientStepsPerIteration", gradientStepsPerIteration, 0...100_000_000)
        try ConfigError.check("iterations", iterations, 1...100_000_000)
        try ConfigError.check("bufferCapacity", bufferCapacity, 1...100_000_000)
        try ConfigError.check("evalTasks", evalTasks, 2...100_000)
        try ConfigError.check("evalTrajectories", evalTrajectories, 1...1000)
        try ConfigError.check("shards", shards, 1...metaBatchSize, note: "at most metaBatchSize")
    }

    /// Command-line names and help (every other key is a flag by its own name).
    public static let flags: [SettingFlag] = [
        SettingFlag("iterations", help: "iterations (with --resume: the new total)"),
        SettingFlag("trainTasks", help: "training tasks drawn from the seed"),
        SettingFlag("metaBatchSize", help: "tasks per gradient step"),
        SettingFlag("batchSize", help: "RL transitions per task per gradient step"),
        SettingFlag("gradientStepsPerIteration", flag: "--gradient-steps", help: "gradient steps per iteration"),
        SettingFlag("hiddenSizes", help: "hidden sizes of the actor and critics"),
        SettingFlag("encoderHiddenSizes", help: "hidden sizes of the context encoder"),
        SettingFlag("latentSize", help: "latent dimensions"),
        SettingFlag("klWeight", help: "β, the KL weight"),
        SettingFlag("update.rewardScale", flag: "--reward-scale", help: "reward scale"),
        SettingFlag("initialStepsPerTask", flag: "--initial-steps", help: "steps per task with z from the prior before training"),
        SettingFlag("tasksPerIteration", help: "training tasks whose buffers are refilled each iteration"),
        SettingFlag("contextBatchSize", help: "context transitions per task given to the encoder in a gradient step"),
        SettingFlag("evalTasks", help: "fresh tasks evaluated after each iteration"),
        SettingFlag("evalTrajectories", help: "trajectories on each evaluated task, the context growing after each"),
        SettingFlag("priorSteps", help: "steps per refilled task with z from the prior (into the context and replay buffers)"),
        SettingFlag("posteriorSteps", help: "then steps with z from the posterior, into both buffers"),
        SettingFlag("extraPosteriorSteps", help: "then steps with z from the posterior, into the replay buffer only"),
        SettingFlag("bufferCapacity", help: "transitions each training task's replay buffer holds"),
        SettingFlag("update.learningRate", flag: "--update-learning-rate", help: "Adam learning rate of every network"),
        SettingFlag("shards", help: "fixed parts of each meta-batch, computed side by side on --threads threads and added in order (mpirun -np N needs N ≤ shards; results depend on shards, not on N or the threads)"),
    ] + SACUpdateSettings.flags
}

/// PEARL's context encoder: an MLP from one transition (s, a, r, s′) to a Gaussian factor
/// over z (mean and variance), and the product of the factors as the posterior.
public struct ContextEncoder: ParameterCollection, Codable, Sendable {
    public var network: MLP
    public let latentSize: Int

    public init(transitionSize: Int, latentSize: Int, hiddenSizes: [Int], using rng: inout Xoshiro256) {
        network = MLP(sizes: [transitionSize] + hiddenSizes + [2 * latentSize], activation: .relu, using: &rng)
        self.latentSize = latentSize
    }

    /// q(z | c) for contexts [T, C, transition]: means and variances [T, latent].
    public func posterior(_ context: Tensor) -> (mean: Tensor, variance: Tensor) {
        let (t, c, width) = (context.shape[0], context.shape[1], context.shape[2]), l = latentSize
        let out = network(context.reshaped([t * c, width])).reshaped([t, c, 2 * l])
        let variances = out.slice(axis: 2, l..<(2 * l)).softplus().clamped(1e-7, 1e30)
        return Self.productOfGaussians(means: out.slice(axis: 2, 0..<l), variances: variances)
    }

    /// Π_n N(μ_n, σ_n²) over axis 1 of [T, C, L]: σ² = 1/Σ σ_n⁻², μ = σ² Σ μ_n/σ_n².
    public static func productOfGaussians(means: Tensor, variances: Tensor) -> (mean: Tensor, variance: Tensor) {
        let precision = (1.0 / variances).sum(axes: [1])
        let variance = 1.0 / precision
        return (variance * (means / variances).sum(axes: [1]), variance)
    }

    /// KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_d (σ² + μ² − 1 − log σ²), per row of [T, L]: [T].
    public static func klToStandardNormal(mean: Tensor, variance: Tensor) -> Tensor {
        ((variance + mean.squared() - 1 - variance.log()) * 0.5).sum(axes: [1])
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        withoutActuallyEscaping(body) { body in network.visitParameters { name, t in body("network.\(name())", &t) } }
    }
}

/// Everything a PEARL run needs to continue: the SAC learner over (s, z), the encoder
/// and its optimiser, every task's replay and context buffers, the generator, the
/// counters, and the seed the training tasks are drawn from.
public struct PEARLState: Codable, Sendable {
    public var agent: SACAgent
    public var encoder: ContextEncoder
    public var encoderOptimizer: Adam
    public var buffers: [ReplayBuffer]
    public var contextBuffers: [ReplayBuffer]
    public var rng: Xoshiro256
    public var seed: UInt64
    public var iteration: Int
    public var environmentSteps: Int
}

/// The parameters the critic loss trains: the critics and, through z, the encoder.
struct CriticsAndEncoder: ParameterCollection {
    var critics: TwinQ
    var encoder: ContextEncoder

    mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        withoutActuallyEscaping(body) { body in
            critics.visitParameters { name, t in body("critics.\(name())", &t) }
            encoder.visitParameters { name, t in body("encoder.\(name())", &t) }
        }
    }
}

/// PEARL on a task family with bounded continuous actions.
public struct PEARL<E: MetaEnv>: IterativeAlgorithm, ProcessGroupMember {
    public let config: PEARLConfig
    public let prototype: E
    public var state: PEARLState
    /// The tasks trained on (drawn from the seed).
    public let trainTasks: [E.Task]
    let observationSize: Int
    let actionSize: Int
    /// The processes the meta-batch's parts are split over (results do not depend on it).
    public var group: any ProcessGroup = SingleProcess()
    /// The threads a process computes its parts on (results do not depend on it either).
    public var threads: Int = 1

    public var iteration: Int { state.iteration }
    public var environmentSteps: Int { state.environmentSteps }
    public var headlineMetric: String { PEARLAlgorithm().headlineMetric(config) }
    var transitionSize: Int { 2 * observationSize + actionSize + 1 }

    /// A fresh run; each gradient step's parts (`shards`) are computed on up to `threads` threads.
    public init(config: PEARLConfig, prototype: E, seed: UInt64, threads: Int = 1) throws {
        _ = try ActionScaling(prototype.actionSpace)
        self.threads = threads
        self.config = config
        self.prototype = prototype
        observationSize = prototype.observationSpace.flatSize
        actionSize = prototype.actionSpace.flatSize
        var taskRNG = Xoshiro256(seed: seed ^ 0x9EA7_1000_0000_0001)
        trainTasks = prototype.sampleTasks(config.trainTasks, using: &taskRNG)
        var rng = Xoshiro256(seed: seed)
        let (n, m) = (observationSize, actionSize)
        let agent = SACAgent(inputSize: n + config.latentSize, actionSize: m, hiddenSizes: config.hiddenSizes,
                             settings: config.update, using: &rng)
        let encoder = ContextEncoder(transitionSize: 2 * n + m + 1, latentSize: config.latentSize,
                                     hiddenSizes: config.encoderHiddenSizes, using: &rng)
        let contextCapacity = Swift.max(config.priorSteps + config.posteriorSteps, config.initialStepsPerTask) + prototype.maxEpisodeSteps
        state = PEARLState(
            agent: agent, encoder: encoder, encoderOptimizer: Adam(learningRate: config.update.learningRate),
            buffers: [ReplayBuffer](repeating: ReplayBuffer(capacity: config.bufferCapacity, observationSize: n, actionSize: m),
                                    count: config.trainTasks),
            contextBuffers: [ReplayBuffer](repeating: ReplayBuffer(capacity: contextCapacity, observationSize: n, actionSize: m),
                                           count: config.trainTasks),
            rng: rng, seed: seed, iteration: 0, environmentSteps: 0)
    }

    /// Continues from a saved state after checking it fits the config.
    public init(config: PEARLConfig, prototype: E, state: PEARLState, threads: Int = 1) throws {
        let fresh = try PEARL(config: config, prototype: prototype, seed: state.seed, threads: threads)
        let f = fresh.state
        guard state.agent.actor.hasSameParameterShapes(as: f.agent.actor),
              state.agent.critics.hasSameParameterShapes(as: f.agent.critics),
              state.agent.targetCritics.hasSameParameterShapes(as: f.agent.critics), state.encoder.hasSameParameterShapes(as: f.encoder),
              state.buffers.count == f.buffers.count, state.contextBuffers.count == f.contextBuffers.count,
              zip(state.buffers + state.contextBuffers, f.buffers + f.contextBuffers).allSatisfy({
                  $0.capacity == $1.capacity && $0.observationSize == $1.observationSize && $0.actionSize == $1.actionSize
              }),
              state.iteration >= 0, state.environmentSteps >= 0,
              // After the initial collection every buffer holds transitions (they are sampled from),
              // or none does: an evaluation export, which `restore` refuses to train.
              (state.iteration == 0 && state.environmentSteps == 0)
                || (state.buffers + state.contextBuffers).allSatisfy({ $0.count > 0 })
                || (state.buffers + state.contextBuffers).allSatisfy({ $0.count == 0 })
        else { throw ConfigError(field: "checkpoint", value: "a PEARL state", allowed: "one whose networks and buffers match the config") }
        self = fresh
        self.state = state
    }

    // MARK: The latent variable

    /// `count` draws of z: from N(0, I) when `context` is nil, else from q(z | context)
    /// (context rows [C × transition]). Returns [count × latent].
    func sampleLatents(_ count: Int, context: [Float]?, using rng: inout Xoshiro256) -> [Float] {
        let l = config.latentSize
        var mean = [Float](repeating: 0, count: l), std = [Float](repeating: 1, count: l)
        if let context, !context.isEmpty {
            let q = state.encoder.posterior(Tensor(shape: [1, context.count / transitionSize, transitionSize], values: context))
            mean = q.mean.values
            std = q.variance.values.map { $0.squareRoot() }
        }
        var z = [Float](repeating: 0, count: count * l)
        for i in 0..<count {
            for j in 0..<l { z[i * l + j] = mean[j] + std[j] * rng.normalFloat() }
        }
        return z
    }

    /// Runs one episode per row of `latents` on `task`, acting on (s, z); records each
    /// transition into the task's replay buffer and, if `intoContext`, its context buffer.
    mutating func collect(task index: Int, latents: [Float], intoContext: Bool) throws {
        let (n, l) = (observationSize, config.latentSize), count = latents.count / l
        let actor = state.agent.actor
        var rng = state.rng.split()
        let seed = state.rng.next()
        var buffer = state.buffers[index], context = state.contextBuffers[index]
        let (_, _, steps) = try runLockstepEpisodes(
            prototype: prototype, tasks: [E.Task](repeating: trainTasks[index], count: count), seed: seed,
            act: { observations in
                actor.actions(Self.inputs(observations, latents: latents, n: n, l: l, rows: count), deterministic: false, using: &rng)
            },
            record: { _, observation, action, reward, next, terminal in
                observation.withUnsafeBufferPointer { o in
                    action.withUnsafeBufferPointer { a in
                        next.withUnsafeBufferPointer { s in
                            buffer.add(observation: o, action: a, reward: reward, nextObservation: s, terminal: terminal)
                            if intoContext { context.add(observation: o, action: a, reward: reward, nextObservation: s, terminal: terminal) }
                        }
                    }
                }
            })
        state.buffers[index] = buffer
        state.contextBuffers[index] = context
        state.environmentSteps += steps
    }

    /// [rows, obs + latent]: each observation row followed by its latent row.
    static func inputs(_ observations: [Float], latents: [Float], n: Int, l: Int, rows: Int) -> Tensor {
        var out = [Float](repeating: 0, count: rows * (n + l))
        for i in 0..<rows {
            for j in 0..<n { out[i * (n + l) + j] = observations[i * n + j] }
            for j in 0..<l { out[i * (n + l) + n + j] = latents[i * l + j] }
        }
        return Tensor(shape: [rows, n + l], values: out)
    }

    /// Episodes to cover `steps` steps.
    func episodes(for steps: Int) -> Int { (steps + prototype.maxEpisodeSteps - 1) / prototype.maxEpisodeSteps }

    /// Step 1 for one task: the context buffer refilled with prior (and posterior) episodes,
    /// then extra posterior episodes for the replay buffer only.
    mutating func collectIteration(task index: Int) throws {
        state.contextBuffers[index].removeAll()
        if config.priorSteps > 0 {
            let z = sampleLatents(episodes(for: config.priorSteps), context: nil, using: &state.rng)
            try collect(task: index, latents: z, intoContext: true)
        }
        for (steps, intoContext) in [(config.posteriorSteps, true), (config.extraPosteriorSteps, false)] where steps > 0 {
            let slots = state.contextBuffers[index].sampleSlots(config.contextBatchSize, using: &state.rng)
            let context = state.contextBuffers[index].transitionRows(slots)
            let z = sampleLatents(episodes(for: steps), context: context, using: &state.rng)
            try collect(task: index, latents: z, intoContext: intoContext)
        }
    }

    // MARK: One iteration

    public mutating func iterate() throws -> [(String, Double)] {
        let config = self.config
        let start = Date()
        if state.iteration == 0 && state.environmentSteps == 0 {
            for i in 0..<config.trainTasks {
                let z = sampleLatents(episodes(for: config.initialStepsPerTask), context: nil, using: &state.rng)
                try collect(task: i, latents: z, intoContext: true)
            }
        }
        for _ in 0..<config.tasksPerIteration {
            try collectIteration(task: state.rng.uniformInt(below: config.trainTasks))
        }
        let collected = Date()

        var losses = SACLosses(), kl = 0.0
        for _ in 0..<config.gradientStepsPerIteration {
            let step = try gradientStep()
            losses = losses + step.losses
            kl += step.kl
        }
        guard state.agent.actor.parameters.allSatisfy({ $0.values.allSatisfy(\.isFinite) }),
              state.encoder.parameters.allSatisfy({ $0.values.allSatisfy(\.isFinite) })
        else { throw NonFiniteError(iteration: state.iteration + 1, quantity: "PEARL actor or encoder parameters") }
        let trained = Date()

        let evaluation = try evaluate(taskCount: config.evalTasks, trajectories: config.evalTrajectories, seed: state.rng.next())
        state.iteration += 1
        let g = Double(Swift.max(config.gradientStepsPerIteration, 1))
        let mean = losses.scaled(by: 1 / g)
        var metrics: [(String, Double)] = []
        for (k, stats) in evaluation.returns.enumerated() {
            metrics += [("eval_return_trajectory_\(k + 1)", stats.mean), ("eval_return_trajectory_\(k + 1)_stderr", stats.standardError)]
        }
        // Where the family reports success (Meta-World): the share of evaluation tasks solved by trajectory.
        for k in 0..<config.evalTrajectories {
            guard let success = EpisodeSuccess.statistics(evaluation.successByTask.map { $0[k] }) else { break }
            metrics.append(("eval_success_rate_trajectory_\(k + 1)", success.mean))
        }
        metrics += [
            ("critic_loss", mean.critic), ("actor_loss", mean.actor), ("kl", kl / g), ("temperature", state.agent.temperature.alpha),
            ("entropy", mean.entropy), ("mean_q_target", mean.meanQ),
            ("environment_steps", Double(state.environmentSteps)),
            ("collect_seconds", collected.timeIntervalSince(start)), ("train_seconds", trained.timeIntervalSince(collected)),
            ("gradient_steps_per_second", g / Swift.max(trained.timeIntervalSince(collected), 1e-9)),
        ]
        return metrics
    }

    /// Step 2: one gradient step on a meta-batch of training tasks. The meta-batch's tasks
    /// are split into `shards` fixed parts; each part's losses and gradients are computed on
    /// its own (on this process, or on its MPI rank) and the parts' gradients added in part
    /// order, so every rank takes the same step whatever the number of processes. Everything
    /// random is drawn for the whole meta-batch first, on every rank alike.
    mutating func gradientStep() throws -> (losses: SACLosses, kl: Double) {
        let config = self.config, (m, l) = (actionSize, config.latentSize)
        let (t, b, c) = (config.metaBatchSize, config.batchSize, config.contextBatchSize)
        // The meta-batch: distinct tasks (a partial Fisher–Yates shuffle).
        var order = Array(0..<config.trainTasks)
        for i in 0..<t { order.swapAt(i, i + state.rng.uniformInt(below: config.trainTasks - i)) }
        let tasks = Array(order.prefix(t))
        var context: [Float] = []
        context.reserveCapacity(t * c * transitionSize)
        var samples: [TransitionBatch] = []
        for i in tasks {
            context += state.contextBuffers[i].transitionRows(state.contextBuffers[i].sampleSlots(c, using: &state.rng))
            samples.append(state.buffers[i].sample(b, using: &state.rng))
        }
        let contextTensor = Tensor(shape: [t, c, transitionSize], values: context)
        let latentNoise = Tensor.randomNormal([t, l], using: &state.rng)
        let targetNoise = Tensor.randomNormal([t * b, m], using: &state.rng)
        let actorNoise = Tensor.randomNormal([t * b, m], using: &state.rng)

        // Part p of the meta-batch: its tasks, and their rows (× `rows` per task) of a tensor.
        let parts = config.shards
        func tasksOf(_ p: Int) -> Range<Int> { partRange(p, of: t, parts: parts) }
        func rows(_ x: Tensor, part p: Int, perTask rows: Int) -> Tensor {
            guard parts > 1 else { return x }
            let range = tasksOf(p)
            return x.slice(axis: 0, (range.lowerBound * rows)..<(range.upperBound * rows))
        }
        let own = group.ownShare(of: parts)
        let batches = own.map { p in TransitionBatch.concatenated(Array(samples[tasksOf(p)])) }

        // Critics and encoder: ½ Σ mean (Q_k − y)² over the RL rows plus β Σ_i KL(q(z | c_i) ‖ N(0, I)),
        // with z_i ~ q(z | c_i) reparameterised, one row per RL transition of task i.
        let agent = state.agent, encoder = state.encoder, klWeight = config.klWeight
        /// Part p's latent rows under `encoder` (z_i repeated for each of task i's RL rows) and Σ_i KL.
        func latents(_ encoder: ContextEncoder, part p: Int) -> (rows: Tensor, kl: Tensor) {
            let tp = tasksOf(p).count
            let q = encoder.posterior(rows(contextTensor, part: p, perTask: 1))
            let z = q.mean + q.variance.sqrt() * rows(latentNoise, part: p, perTask: 1)
            let repeated = z.reshaped([tp, 1, l]).expanded(to: [tp, b, l]).reshaped([tp * b, l])
            return (repeated, ContextEncoder.klToStandardNormal(mean: q.mean, variance: q.variance).sum())
        }
        let latentRows = concurrentMap(own.count, threads: threads) { latents(encoder, part: own.lowerBound + $0).rows.detached }
        let joint = CriticsAndEncoder(critics: agent.critics, encoder: encoder)
        let (criticTerms, criticFlat) = try distributedWeightedMean(parts, group: group, threads: threads, terms: 3,
                                                                    parameters: joint.parameterCount) { p -> WeightedPart in
            let batch = batches[p - own.lowerBound], tp = tasksOf(p).count, share = Double(tp) / Double(t)
            let z = latentRows[p - own.lowerBound]
            let y = agent.targets(rewards: batch.rewards, terminals: batch.terminals,
                                  nextInputs: Tensor.concat([batch.nextObservations, z], axis: 1), noise: rows(targetNoise, part: p, perTask: b))
            var klSum = 0.0
            // The KL term is a sum over tasks, not a mean: scaled by 1 / share here, it comes back to β·KL_p in the weighted sum.
            let (loss, gradient) = NN.valueAndGradient(at: CriticsAndEncoder(critics: agent.critics, encoder: encoder)) { q in
                let (rows, kl) = latents(q.encoder, part: p)
                klSum = kl.detached.doubleScalar
                return q.critics.loss(Tensor.concat([batch.observations, rows], axis: 1), batch.actions, targets: y) + kl * (klWeight / share)
            }
            return WeightedPart(weight: Double(tp), terms: [loss.doubleScalar, klSum / share, y.mean().doubleScalar],
                                gradient: gradient.flatParameters.values)
        }
        let criticGradient = joint.withFlatParameters(criticFlat)
        state.agent.criticOptimizer.update(&state.agent.critics, along: criticGradient.critics)
        state.encoderOptimizer.update(&state.encoder, along: criticGradient.encoder)
        var losses = SACLosses()
        losses.critic = criticTerms[0]
        losses.meanQ = criticTerms[2]

        // Actor and temperature, on (s, z) with z from the encoder before its step.
        try state.agent.updateActorAndTemperature(
            parts: parts, group: group, threads: threads, rows: { tasksOf($0).count * b },
            inputs: { p in Tensor.concat([batches[p - own.lowerBound].observations, latentRows[p - own.lowerBound]], axis: 1) },
            noise: { rows(actorNoise, part: $0, perTask: b) }, losses: &losses)
        state.agent.updateTargets()
        return (losses, criticTerms[1] / Double(t))
    }

    // MARK: Meta-test

    /// On `taskCount` fresh tasks, `trajectories` episodes each: the first with z from the
    /// prior, each later one with z from the posterior given all the task's transitions so
    /// far. Actions are sampled from π(·|s, z) by default, as when the context buffers were
    /// filled in training (the mean action given z makes a first trajectory that often parks
    /// in one place, a context unlike any the encoder was trained on); `sampleActions: false`
    /// acts with the mean. Returns per-trajectory statistics over tasks, the per-task returns
    /// and per-task successes (1, 0, or NaN where the family reports none).
    public func evaluate(taskCount: Int, trajectories: Int, seed: UInt64, sampleActions: Bool = true) throws
        -> (returns: [SampleStatistics], perTask: [[Double]], successByTask: [[Double]]) {
        var rng = Xoshiro256(seed: seed)
        let tasks = prototype.sampleTasks(taskCount, using: &rng)
        let (n, l) = (observationSize, config.latentSize)
        let actor = state.agent.actor
        var contexts = [[Float]](repeating: [], count: taskCount)
        var perTask = [[Double]](repeating: [], count: taskCount), successByTask = perTask
        for _ in 0..<trajectories {
            var z: [Float] = []
            for i in 0..<taskCount { z += sampleLatents(1, context: contexts[i].isEmpty ? nil : contexts[i], using: &rng) }
            var actionRNG = rng.split()
            let (returns, successes, _) = try runLockstepEpisodes(
                prototype: prototype, tasks: tasks, seed: rng.next(),
                act: { observations in
                    actor.actions(Self.inputs(observations, latents: z, n: n, l: l, rows: taskCount), deterministic: !sampleActions,
                                  using: &actionRNG)
                },
                record: { i, observation, action, reward, next, _ in
                    contexts[i] += observation
                    contexts[i] += action
                    contexts[i].append(reward)
                    contexts[i] += next
                })
            for i in 0..<taskCount {
                perTask[i].append(returns[i])
                successByTask[i].append(Double(successes[i]))
            }
        }
        return ((0..<trajectories).map { k in SampleStatistics(perTask.map { $0[k] }) }, perTask, successByTask)
    }
}

// MARK: Registration

/// PEARL as `metarl train pearl` runs it.
public struct PEARLAlgorithm: ProcessGroupAlgorithmDefinition {
    public init() {}
    public var name: String { "pearl" }
    public var summary: String { "PEARL: SAC conditioned on a latent task variable inferred from context by a product-of-Gaussians encoder" }
    public var defaultEnv: String { "point-nav" }
    public var checkpointEvery: Int { 5 }
    public var keepCheckpoints: Int { 2 }

    public func headlineMetric(_ settings: PEARLConfig) -> String { "eval_return_trajectory_\(settings.evalTrajectories)" }

    /// The state without its per-task replay and context buffers (an evaluation export:
    /// the meta-test collects its own context on fresh tasks).
    public func evaluationState(_ state: PEARLState) -> PEARLState {
        var state = state
        state.buffers = state.buffers.map(\.emptied)
        state.contextBuffers = state.contextBuffers.map(\.emptied)
        return state
    }

    /// A fresh run with each meta-batch's parts (`shards`) split over `group`'s processes.
    public func start<E: MetaEnv>(_ settings: PEARLConfig, prototype: E, seed: UInt64, threads: Int,
                                  group: any ProcessGroup) throws -> any IterativeAlgorithm<PEARLState> {
        try splitting(PEARL(config: settings, prototype: prototype, seed: seed, threads: threads), shards: settings.shards,
                      of: "each gradient step's meta-batch", over: group)
    }

    /// A checkpoint's run continued with each meta-batch's parts split over `group`'s processes.
    public func restore<E: MetaEnv>(_ settings: PEARLConfig, prototype: E, state: PEARLState, threads: Int,
                                    group: any ProcessGroup) throws -> any IterativeAlgorithm<PEARLState> {
        try EvaluationExportError.requireReplay(state.buffers + state.contextBuffers, iteration: state.iteration, algorithm: name)
        return try splitting(PEARL(config: settings, prototype: prototype, state: state, threads: threads), shards: settings.shards,
                             of: "each gradient step's meta-batch", over: group)
    }

    /// The meta-test protocol (``PEARL/evaluate(taskCount:trajectories:seed:sampleActions:)``).
    public func evaluate<E: MetaEnv>(_ settings: PEARLConfig, state: PEARLState, prototype: E, options: TrajectoryEvaluationOptions,
                                     seed: UInt64, threads: Int) throws -> TrajectoryEvaluation {
        let pearl = try PEARL(config: settings, prototype: prototype, state: state)
        let result = try pearl.evaluate(taskCount: options.tasks, trajectories: options.trajectories, seed: seed,
                                        sampleActions: !options.meanAction)
        return TrajectoryEvaluation(perTask: result.perTask, successByTask: result.successByTask, seed: seed,
                                    actions: options.meanAction ? "mean action" : "actions sampled given z")
    }
}
