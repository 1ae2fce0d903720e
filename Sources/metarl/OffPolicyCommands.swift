import ArgumentParser
import Envs
import Foundation
import MetaRL
import RL
import Runs

/// The run-directory options every off-policy `train` command shares.
struct RunOptions: ParsableArguments {
    @Option(help: "A run config in YAML; flags given as well override it.") var config: String?
    @Flag(help: "Print the resolved config as YAML and exit without training.") var printConfig = false
    @Option(help: "Task family (see `metarl envs`).") var env: String?
    @Option(name: .customLong("env-arg"), help: "A family argument, key=value (repeatable).") var envArgs: [String] = []
    @Option(help: "Random seed (default 0).") var seed: UInt64?
    @Option(help: "Run directory to create.") var out: String?
    @Option(help: "Run directory to continue from its newest good checkpoint (with --iterations N: the new total).") var resume: String?
    @Option(help: "Checkpoint every N iterations.") var checkpointEvery: Int = 5
    @Option(help: "Checkpoints to keep.") var keepCheckpoints: Int = 2

    /// The manifest from the config file (or defaults) with the task flags applied.
    func baseManifest(algorithm: String, defaultEnv: String, defaults: (EnvSpec) -> RunManifest) throws -> RunManifest {
        var manifest = try config.map { try RunConfigFile.load(path: $0, algorithm: algorithm) }
            ?? defaults(try EnvSpec(family: defaultEnv))
        try manifest.override(env: env, arguments: envArgs, seed: seed)
        return manifest
    }

    /// Prints the config, or opens the run directory and calls `train`, turning every
    /// failure into one error line.
    func run(algorithm: String, resolve: () throws -> RunManifest, extend: (inout RunManifest) -> Bool,
             train: (RunDirectory, RunManifest) throws -> (iteration: Int, steps: Int)) throws {
        do {
            if printConfig {
                print(try RunConfigFile.yaml(try resolve()), terminator: "")
                return
            }
            guard checkpointEvery >= 1, keepCheckpoints >= 1 else { throw RunError("--checkpoint-every and --keep-checkpoints must be at least 1") }
            let start = Date()
            let (directory, (iteration, steps)) = try withRun(out: out, resume: resume, algorithm: algorithm, resolve: resolve,
                                                              extend: extend, train: train)
            print(String(format: "trained %d iterations, %d environment steps, in %.1f s → %@", iteration, steps,
                         Date().timeIntervalSince(start), directory.url.path))
        } catch let error as ExitCode {
            throw error
        } catch {
            throw fail("\(error)")
        }
    }
}

/// Parses "128,128" into sizes, naming the flag on failure.
func parseSizes(_ text: String, flag: String) throws -> [Int] {
    let sizes = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !sizes.isEmpty, sizes.allSatisfy({ $0 != nil }) else {
        throw RunError("\(flag) \(text): expected comma-separated integers such as 128,128")
    }
    return sizes.map { $0! }
}

/// Rethrows a `ConfigError` from `validate()` naming the flag that sets the field.
func checked(_ validate: () throws(ConfigError) -> Void, flags: [String: String]) throws {
    do { try validate() } catch {
        throw RunError("\(flags[error.field].map { "\($0) (\(error.field))" } ?? error.field): \(error.value) is not allowed; allowed: \(error.allowed)")
    }
}

struct TrainSAC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sac",
        abstract: "Soft actor-critic on one task of a family (or, with --task-mixture, on a fresh task every episode).")

    @OptionGroup var options: RunOptions
    @Option(help: "Iterations (default 20, each at least --steps-per-iteration environment steps).") var iterations: Int?
    @Option(help: "Environment steps per iteration (default 1000).") var stepsPerIteration: Int?
    @Option(help: "Uniformly random steps before learning starts (default 1000).") var randomSteps: Int?
    @Option(help: "Hidden sizes of the actor and critics, comma-separated (default 256,256).") var hiddenSizes: String?
    @Option(help: "Minibatch size (default 256).") var batchSize: Int?
    @Option(help: "Adam learning rate (default 3e-4).") var learningRate: Double?
    @Option(help: "Reward scale (default 1).") var rewardScale: Double?
    @Option(help: "Evaluation episodes after each iteration (default 10).") var evalEpisodes: Int?
    @Flag(help: "Train on a fresh task every episode (the domain-randomisation baseline).") var taskMixture = false

    func run() throws {
        try options.run(algorithm: "sac", resolve: resolvedManifest, extend: { saved in
            guard saved.sac != nil else { return false }
            if let iterations { saved.sac!.iterations = max(saved.sac!.iterations, iterations) }
            return true
        }) { directory, manifest in
            let training = SACTraining(config: manifest.sac!, seed: manifest.seed, directory: directory, resume: options.resume != nil,
                                       checkpointEvery: options.checkpointEvery, keepCheckpoints: options.keepCheckpoints,
                                       notes: { print("note: " + $0) })
            let final = try manifest.envSpec().open(training)
            return (final.iteration, final.environmentSteps)
        }
    }

    func resolvedManifest() throws -> RunManifest {
        var manifest = try options.baseManifest(algorithm: "sac", defaultEnv: "pendulum-mass") {
            RunManifest(algorithm: "sac", env: $0, seed: 0, sac: SACConfig())
        }
        var c = manifest.sac ?? SACConfig()
        if let iterations { c.iterations = iterations }
        if let stepsPerIteration { c.stepsPerIteration = stepsPerIteration }
        if let randomSteps { c.randomSteps = randomSteps }
        if let hiddenSizes { c.hiddenSizes = try parseSizes(hiddenSizes, flag: "--hidden-sizes") }
        if let batchSize { c.batchSize = batchSize }
        if let learningRate { c.update.learningRate = learningRate }
        if let rewardScale { c.update.rewardScale = rewardScale }
        if let evalEpisodes { c.evalEpisodes = evalEpisodes }
        if taskMixture { c.taskMixture = true }
        try checked(c.validate, flags: [
            "iterations": "--iterations", "stepsPerIteration": "--steps-per-iteration", "randomSteps": "--random-steps",
            "hiddenSizes": "--hidden-sizes", "batchSize": "--batch-size", "update.learningRate": "--learning-rate",
            "update.rewardScale": "--reward-scale", "evalEpisodes": "--eval-episodes",
        ])
        manifest.sac = c
        return manifest
    }
}

struct TrainPEARL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pearl",
        abstract: "PEARL: SAC conditioned on a latent task variable inferred from context by a product-of-Gaussians encoder.")

    @OptionGroup var options: RunOptions
    @Option(help: "Iterations (default 100).") var iterations: Int?
    @Option(help: "Training tasks drawn from the seed (default 40).") var trainTasks: Int?
    @Option(help: "Tasks per gradient step (default 8).") var metaBatchSize: Int?
    @Option(help: "RL transitions per task per gradient step (default 128).") var batchSize: Int?
    @Option(help: "Gradient steps per iteration (default 500).") var gradientSteps: Int?
    @Option(help: "Hidden sizes of the actor and critics (default 128,128).") var hiddenSizes: String?
    @Option(help: "Hidden sizes of the context encoder (default 128,128).") var encoderHiddenSizes: String?
    @Option(help: "Latent dimensions (default 5).") var latentSize: Int?
    @Option(help: "β, the KL weight (default 0.1).") var klWeight: Double?
    @Option(help: "Reward scale (default 5).") var rewardScale: Double?
    @Option(help: "Steps per task with z from the prior before training (default 400).") var initialSteps: Int?
    @Option(help: "Training tasks whose buffers are refilled each iteration (default 5).") var tasksPerIteration: Int?
    @Option(help: "Context transitions per task given to the encoder in a gradient step (default 64).") var contextBatchSize: Int?
    @Option(help: "Fresh tasks evaluated after each iteration (default 20).") var evalTasks: Int?

    func run() throws {
        try options.run(algorithm: "pearl", resolve: resolvedManifest, extend: { saved in
            guard saved.pearl != nil else { return false }
            if let iterations { saved.pearl!.iterations = max(saved.pearl!.iterations, iterations) }
            return true
        }) { directory, manifest in
            let training = PEARLTraining(config: manifest.pearl!, seed: manifest.seed, directory: directory, resume: options.resume != nil,
                                         checkpointEvery: options.checkpointEvery, keepCheckpoints: options.keepCheckpoints,
                                         notes: { print("note: " + $0) })
            let final = try manifest.envSpec().open(training)
            return (final.iteration, final.environmentSteps)
        }
    }

    func resolvedManifest() throws -> RunManifest {
        var manifest = try options.baseManifest(algorithm: "pearl", defaultEnv: "point-nav") {
            RunManifest(algorithm: "pearl", env: $0, seed: 0, pearl: PEARLConfig())
        }
        var c = manifest.pearl ?? PEARLConfig()
        if let iterations { c.iterations = iterations }
        if let trainTasks { c.trainTasks = trainTasks }
        if let metaBatchSize { c.metaBatchSize = metaBatchSize }
        if let batchSize { c.batchSize = batchSize }
        if let gradientSteps { c.gradientStepsPerIteration = gradientSteps }
        if let hiddenSizes { c.hiddenSizes = try parseSizes(hiddenSizes, flag: "--hidden-sizes") }
        if let encoderHiddenSizes { c.encoderHiddenSizes = try parseSizes(encoderHiddenSizes, flag: "--encoder-hidden-sizes") }
        if let latentSize { c.latentSize = latentSize }
        if let klWeight { c.klWeight = klWeight }
        if let rewardScale { c.update.rewardScale = rewardScale }
        if let initialSteps { c.initialStepsPerTask = initialSteps }
        if let tasksPerIteration { c.tasksPerIteration = tasksPerIteration }
        if let contextBatchSize { c.contextBatchSize = contextBatchSize }
        if let evalTasks { c.evalTasks = evalTasks }
        try checked(c.validate, flags: [
            "iterations": "--iterations", "trainTasks": "--train-tasks", "metaBatchSize": "--meta-batch-size", "batchSize": "--batch-size",
            "gradientStepsPerIteration": "--gradient-steps", "hiddenSizes": "--hidden-sizes", "encoderHiddenSizes": "--encoder-hidden-sizes",
            "latentSize": "--latent-size", "klWeight": "--kl-weight", "update.rewardScale": "--reward-scale",
            "initialStepsPerTask": "--initial-steps", "tasksPerIteration": "--tasks-per-iteration",
            "contextBatchSize": "--context-batch-size", "evalTasks": "--eval-tasks",
        ])
        manifest.pearl = c
        return manifest
    }
}
