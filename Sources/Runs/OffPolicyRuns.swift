import Envs
import Foundation
import MetaRL
import RL
import TensorCore

/// Starts `fresh()` or, with `resume`, continues from the newest good checkpoint in
/// `directory` through `restore`, then trains to `iterations` with a `TrainingLoop`.
func trainOrResume<A: IterativeAlgorithm>(
    directory: RunDirectory, resume: Bool, iterations: Int, checkpointEvery: Int, keepCheckpoints: Int,
    progress: ProgressLine, notes: (String) -> Void, fresh: () throws -> A, restore: (A.State) throws -> A
) throws -> A {
    var algorithm: A?
    if resume {
        if let (iteration, state) = try directory.latestCheckpoint(A.State.self, notes: notes) {
            algorithm = try restore(state)
            notes("resuming from iteration \(iteration)")
        } else {
            notes("no usable checkpoint in \(directory.url.path); starting from iteration 0")
        }
    }
    var running = try algorithm ?? fresh()
    var loop = TrainingLoop(directory: directory, iterations: iterations, checkpointEvery: checkpointEvery,
                            keepCheckpoints: keepCheckpoints, progress: progress)
    try loop.run(&running)
    return running
}

/// Trains a SAC run into a run directory, or resumes one.
public struct SACTraining: MetaEnvConsumer {
    public var config: SACConfig
    public var seed: UInt64
    public var directory: RunDirectory
    public var resume: Bool
    public var checkpointEvery: Int
    public var keepCheckpoints: Int
    public var progress: ProgressLine
    public var notes: (String) -> Void

    public init(config: SACConfig, seed: UInt64, directory: RunDirectory, resume: Bool, checkpointEvery: Int = 5,
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

    public func run<E: MetaEnv>(_ prototype: E) throws -> SACState {
        try trainOrResume(directory: directory, resume: resume, iterations: config.iterations, checkpointEvery: checkpointEvery,
                          keepCheckpoints: keepCheckpoints, progress: progress, notes: notes,
                          fresh: { try SAC(config: config, prototype: prototype, seed: seed) },
                          restore: { try SAC(config: config, prototype: prototype, state: $0) }).state
    }
}

/// Meta-test results of a SAC or PEARL run: the mean return of the k-th trajectory on a
/// fresh task (PEARL's adaptation curve; flat for SAC, which has no context), with
/// standard errors over tasks.
public struct TrajectoryEvaluation: Codable, Sendable {
    public var returns_by_trajectory: [Double]
    public var stderr_by_trajectory: [Double]
    public var tasks: Int
    public var seed: UInt64

    init(perTask: [[Double]], seed: UInt64) {
        let k = perTask.first?.count ?? 0
        let byTrajectory = (0..<k).map { j in SampleStatistics(perTask.map { $0[j] }) }
        returns_by_trajectory = byTrajectory.map(\.mean)
        stderr_by_trajectory = byTrajectory.map(\.standardError)
        tasks = perTask.count
        self.seed = seed
    }
}

/// Evaluates the newest checkpoint of a SAC run: `trajectories` episodes (mean action) on
/// each of `tasks` fresh tasks of the family (on the run's own task unless it trained on
/// the mixture).
public struct SACEvaluator: MetaEnvConsumer {
    public var state: SACState
    public var config: SACConfig
    public var trajectories: Int
    public var tasks: Int
    public var seed: UInt64

    public init(directory: RunDirectory, trajectories: Int, tasks: Int, seed: UInt64, notes: (String) -> Void = { _ in }) throws {
        let manifest = try directory.manifest()
        guard let config = manifest.sac else { throw RunError("\(directory.url.path) holds a \(manifest.algorithm) run, not a SAC one") }
        guard let (_, state) = try directory.latestCheckpoint(SACState.self, notes: notes) else {
            throw RunError("\(directory.url.path) has no usable checkpoint")
        }
        self.state = state
        self.config = config
        self.trajectories = trajectories
        self.tasks = tasks
        self.seed = seed
    }

    public func run<E: MetaEnv>(_ prototype: E) throws -> TrajectoryEvaluation {
        let sac = try SAC(config: config, prototype: prototype, state: state)
        var rng = Xoshiro256(seed: seed)
        let taskList = config.taskMixture ? prototype.sampleTasks(tasks, using: &rng) : [E.Task](repeating: sac.fixedTask, count: tasks)
        var perTask = [[Double]](repeating: [], count: tasks)
        for _ in 0..<trajectories {
            for (i, r) in try sac.evaluate(tasks: taskList, seed: rng.next()).enumerated() { perTask[i].append(r) }
        }
        return TrajectoryEvaluation(perTask: perTask, seed: seed)
    }
}

/// Trains a PEARL run into a run directory, or resumes one.
public struct PEARLTraining: MetaEnvConsumer {
    public var config: PEARLConfig
    public var seed: UInt64
    public var directory: RunDirectory
    public var resume: Bool
    public var checkpointEvery: Int
    public var keepCheckpoints: Int
    public var progress: ProgressLine
    public var notes: (String) -> Void

    public init(config: PEARLConfig, seed: UInt64, directory: RunDirectory, resume: Bool, checkpointEvery: Int = 5,
                keepCheckpoints: Int = 2, progress: ProgressLine = ProgressLine(), notes: @escaping (String) -> Void = { _ in }) {
        self.config = config
        self.seed = seed
        self.directory = directory
        self.resume = resume
        self.checkpointEvery = checkpointEvery
        self.keepCheckpoints = keepCheckpoints
        self.progress = progress
        self.notes = notes
    }

    public func run<E: MetaEnv>(_ prototype: E) throws -> PEARLState {
        try trainOrResume(directory: directory, resume: resume, iterations: config.iterations, checkpointEvery: checkpointEvery,
                          keepCheckpoints: keepCheckpoints, progress: progress, notes: notes,
                          fresh: { try PEARL(config: config, prototype: prototype, seed: seed) },
                          restore: { try PEARL(config: config, prototype: prototype, state: $0) }).state
    }
}

/// Evaluates the newest checkpoint of a PEARL run by the meta-test protocol.
public struct PEARLEvaluator: MetaEnvConsumer {
    public var state: PEARLState
    public var config: PEARLConfig
    public var trajectories: Int
    public var tasks: Int
    public var seed: UInt64
    /// Sample actions given z (the default, as in training) rather than act with the mean.
    public var sampleActions = true

    public init(directory: RunDirectory, trajectories: Int, tasks: Int, seed: UInt64, notes: (String) -> Void = { _ in }) throws {
        let manifest = try directory.manifest()
        guard let config = manifest.pearl else { throw RunError("\(directory.url.path) holds a \(manifest.algorithm) run, not a PEARL one") }
        guard let (_, state) = try directory.latestCheckpoint(PEARLState.self, notes: notes) else {
            throw RunError("\(directory.url.path) has no usable checkpoint")
        }
        self.state = state
        self.config = config
        self.trajectories = trajectories
        self.tasks = tasks
        self.seed = seed
    }

    public func run<E: MetaEnv>(_ prototype: E) throws -> TrajectoryEvaluation {
        let pearl = try PEARL(config: config, prototype: prototype, state: state)
        return TrajectoryEvaluation(perTask: try pearl.evaluate(taskCount: tasks, trajectories: trajectories, seed: seed, sampleActions: sampleActions).perTask, seed: seed)
    }
}
