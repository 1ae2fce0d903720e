import Envs
import Foundation
import MetaRL
import RL
import TensorCore

/// Trains a MAML-family run into a run directory, or resumes one (as `RL2Training`).
public struct MAMLTraining: MetaEnvConsumer {
    public var config: MAMLConfig
    public var seed: UInt64
    public var directory: RunDirectory
    public var resume: Bool
    public var checkpointEvery: Int
    public var keepCheckpoints: Int
    /// Threads for sampling the tasks of a meta-batch (results do not depend on it).
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    public var progress: ProgressLine
    public var notes: (String) -> Void

    public init(config: MAMLConfig, seed: UInt64, directory: RunDirectory, resume: Bool, checkpointEvery: Int = 10,
                keepCheckpoints: Int = 3, progress: ProgressLine = ProgressLine(), notes: @escaping (String) -> Void = { _ in }) {
        self.config = config
        self.seed = seed
        self.directory = directory
        self.resume = resume
        self.checkpointEvery = checkpointEvery
        self.keepCheckpoints = keepCheckpoints
        self.progress = progress
        self.notes = notes
    }

    /// The mode each command name trains.
    public static func mode(for algorithm: String) -> MAMLConfig.Mode {
        switch algorithm {
        case "maml-fo": .firstOrder
        case "meta-sgd": .metaSGD
        case "reptile": .reptile
        default: .secondOrder
        }
    }

    public func run<E: MetaEnv>(_ prototype: E) throws -> MAMLState {
        let threads = self.threads
        func train<A: IterativeAlgorithm>(fresh: () throws -> A, restore: (MAMLState) throws -> A) throws -> MAMLState where A.State == MAMLState {
            try trainOrResume(directory: directory, resume: resume, iterations: config.iterations, checkpointEvery: checkpointEvery,
                              keepCheckpoints: keepCheckpoints, progress: progress, notes: notes, fresh: fresh, restore: restore).state
        }
        if config.mode == .reptile {
            func threaded(_ r: Reptile<E>) -> Reptile<E> { var r = r; r.threads = threads; return r }
            return try train(fresh: { threaded(try Reptile(config: config, prototype: prototype, seed: seed)) },
                             restore: { threaded(try Reptile(config: config, prototype: prototype, state: $0)) })
        }
        func threaded(_ m: MAML<E>) -> MAML<E> { var m = m; m.threads = threads; return m }
        return try train(fresh: { threaded(try MAML(config: config, prototype: prototype, seed: seed)) },
                         restore: { threaded(try MAML(config: config, prototype: prototype, state: $0)) })
    }
}

/// Meta-test results of a MAML-family run: on fresh tasks, the mean episode return before
/// adaptation (index 0) and after each inner step, with standard errors over tasks.
public struct MAMLEvaluation: Codable, Sendable {
    public var returns_by_step: [Double]
    public var stderr_by_step: [Double]
    public var adaptation_delta: Double
    public var adaptation_delta_stderr: Double
    public var tasks: Int
    public var seed: UInt64
}

/// Evaluates the newest checkpoint of a MAML-family run directory.
public struct MAMLEvaluator: MetaEnvConsumer {
    public var state: MAMLState
    public var config: MAMLConfig
    public var steps: Int
    public var tasks: Int
    public var seed: UInt64

    public init(directory: RunDirectory, steps: Int, tasks: Int, seed: UInt64, notes: (String) -> Void = { _ in }) throws {
        let manifest = try directory.manifest()
        guard let config = manifest.maml else {
            throw RunError("\(directory.url.path) holds a \(manifest.algorithm) run, not a MAML-family one")
        }
        guard let (_, state) = try directory.latestCheckpoint(MAMLState.self, notes: notes) else {
            throw RunError("\(directory.url.path) has no usable checkpoint")
        }
        self.state = state
        self.config = config
        self.steps = steps
        self.tasks = tasks
        self.seed = seed
    }

    public func run<E: MetaEnv>(_ prototype: E) throws -> MAMLEvaluation {
        let maml = try MAML(config: config, prototype: prototype, state: state)
        let (returns, perTask) = try maml.evaluate(steps: steps, taskCount: tasks, seed: seed)
        // The delta's standard error over tasks (paired: the same tasks before and after).
        let delta = SampleStatistics(perTask.map { $0[steps] - $0[0] })
        return MAMLEvaluation(returns_by_step: returns.map(\.mean), stderr_by_step: returns.map(\.standardError),
                              adaptation_delta: delta.mean, adaptation_delta_stderr: delta.standardError, tasks: tasks, seed: seed)
    }
}
