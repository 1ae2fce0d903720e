import Envs
import Foundation
import MetaRL
import RL
import TensorCore

/// Trains RL² into a run directory, or resumes one: opens the task family and hands the
/// algorithm to the `TrainingLoop`.
public struct RL2Training: MetaEnvConsumer {
    public var config: RL2Config
    public var seed: UInt64
    public var directory: RunDirectory
    public var resume: Bool
    public var checkpointEvery: Int
    public var keepCheckpoints: Int
    /// Threads for the PPO update (results do not depend on it).
    public var threads: Int = Swift.min(2, ProcessInfo.processInfo.activeProcessorCount)
    public var progress: ProgressLine
    /// Receives notes such as a skipped corrupt checkpoint.
    public var notes: (String) -> Void

    public init(config: RL2Config, seed: UInt64, directory: RunDirectory, resume: Bool, checkpointEvery: Int = 10,
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

    /// Returns the final state.
    public func run<E: MetaEnv>(_ prototype: E) throws -> RL2State {
        var algorithm = try RL2(config: config, prototype: prototype, seed: seed)
        if resume, let (iteration, state) = try directory.latestCheckpoint(RL2State.self, notes: notes) {
            algorithm = try RL2(config: config, prototype: prototype, state: state)
            notes("resuming from iteration \(iteration)")
        } else if resume {
            notes("no usable checkpoint in \(directory.url.path); starting from iteration 0")
        }
        algorithm.threads = threads
        var loop = TrainingLoop(directory: directory, iterations: config.iterations, checkpointEvery: checkpointEvery,
                                keepCheckpoints: keepCheckpoints, progress: progress)
        try loop.run(&algorithm)
        return algorithm.state
    }
}

/// Meta-test results of an RL² run: on fresh tasks, the trial return and the return by
/// episode index inside the trial (the adaptation curve), with standard errors.
public struct RL2Evaluation: Codable, Sendable {
    public var mean_return: Double
    public var stderr: Double
    public var per_episode: [Double]
    public var per_episode_stderr: [Double]
    public var trials: Int
    public var seed: UInt64
}

/// Evaluates the newest checkpoint of an RL² run directory on `trials` fresh trials.
public struct RL2Evaluator: MetaEnvConsumer {
    public var state: RL2State
    public var config: RL2Config
    public var trials: Int
    public var seed: UInt64
    /// Act with each step's most probable action instead of sampling from the policy.
    public var greedy = false

    public init(directory: RunDirectory, trials: Int, seed: UInt64, notes: (String) -> Void = { _ in }) throws {
        let manifest = try directory.manifest()
        guard manifest.algorithm == "rl2", let config = manifest.rl2 else {
            throw RunError("\(directory.url.path) holds a \(manifest.algorithm) run, not RL²")
        }
        guard let (_, state) = try directory.latestCheckpoint(RL2State.self, notes: notes) else {
            throw RunError("\(directory.url.path) has no usable checkpoint")
        }
        self.state = state
        self.config = config
        self.trials = trials
        self.seed = seed
    }

    public func run<E: MetaEnv>(_ prototype: E) throws -> RL2Evaluation {
        _ = try RL2(config: config, prototype: prototype, state: state)
        // Sampled in blocks so memory stays bounded for large trial counts.
        var returns: [Double] = [], perEpisode: [[Double]] = []
        var rng = Xoshiro256(seed: seed)
        var left = trials
        while left > 0 {
            let n = Swift.min(left, 2000)
            let batch = try sampleTrials(model: state.model, prototype: prototype, trials: n,
                                         episodesPerTrial: config.episodesPerTrial, seed: rng.next(), greedy: greedy)
            returns += batch.trialReturns
            perEpisode += batch.episodeReturns
            left -= n
        }
        let trial = SampleStatistics(returns)
        let curve = (0..<config.episodesPerTrial).map { k in SampleStatistics(perEpisode.map { $0[k] }) }
        return RL2Evaluation(mean_return: trial.mean, stderr: trial.standardError, per_episode: curve.map(\.mean),
                             per_episode_stderr: curve.map(\.standardError),
                             trials: trials, seed: seed)
    }
}
