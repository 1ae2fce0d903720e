import ArgumentParser
import Baselines
import Benchmarks
import Envs
import Foundation
import MetaRL
import NN
import Runs
import TensorCore

/// The `metarl` command line: parse, call the library, print.
@main
struct MetaRLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metarl",
        abstract: "Meta-reinforcement learning: RL², MAML and relatives, PEARL.",
        subcommands: [Quickstart.self, Train.self, Eval.self, Plot.self, Bench.self, Envs.self, Baseline.self])
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of parts of the system (build with -c release).",
        subcommands: [Engine.self, EnvSteps.self, RL2Speed.self, MAMLSpeed.self])

    struct Engine: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tensor engine: MLP and GRU forward+backward, BLAS matmul, Hessian-vector product.")

        @Flag(help: "Print one JSON object instead of a table.") var json = false
        @Flag(help: "Fewer repetitions (a smoke test, not a measurement).") var quick = false

        func run() throws {
            let result = EngineBenchmark.run(quick: quick)
            if json {
                try printJSON(result)
            } else {
                print(result.table)
            }
        }
    }

    struct RL2Speed: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rl2",
            abstract: "RL² training speed at the PyTorch RL² implementation's settings (GRU-256, PPO 8 epochs, 240 000 steps per update).")

        @Option(help: "Iterations to time (after none of warm-up: the first iteration is included).") var iterations: Int = 2
        @Option(help: "Pulls per trial on bandits k = 5 (100: 2 400 trials per update).") var episodesPerTrial: Int = 100
        @Option(help: "Trials per iteration (0: 240 000 steps' worth).") var trialsPerIteration: Int = 0
        @Option(help: "Recurrent cell: gru, ln-gru or lstm (default: RL²'s default).") var cell: RecurrentCellChoice.Kind?
        @Option(help: "Threads for the PPO update (policy and value gradients side by side; default: the cores, at most 2).")
        var threads: Int = min(2, ProcessInfo.processInfo.activeProcessorCount)
        @Option(help: "A checkout of lucaslingle/pytorch_rl2: time it too (Benchmarks/pytorch_rl2_speed.py, one update, one thread) and print the ratio.")
        var pytorchRL2: String?
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            guard iterations >= 1, threads >= 1 else { throw fail("--iterations and --threads must be at least 1") }
            var config = RL2Config()
            config.episodesPerTrial = episodesPerTrial
            config.trialsPerIteration = trialsPerIteration
            if let cell { config.cell = cell }
            var rl2 = try RL2(config: config, prototype: BernoulliBandit(arms: 5), seed: 0)
            rl2.threads = threads
            var sample = 0.0, update = 0.0
            for _ in 0..<iterations {
                let m = Dictionary(try rl2.iterate(), uniquingKeysWith: { a, _ in a })
                sample += m["sample_seconds"]!
                update += m["update_seconds"]!
            }
            let steps = Double(rl2.environmentSteps), total = sample + update
            var reference: Double?
            if let pytorchRL2 { reference = try runPyTorchRL2(checkout: pytorchRL2) }
            if json {
                var object: [String: Double] = ["steps_per_second": steps / total, "sample_seconds": sample, "update_seconds": update,
                                                "steps": steps, "threads": Double(threads)]
                if let reference {
                    object["pytorch_rl2_steps_per_second"] = reference
                    object["ratio"] = steps / total / reference
                }
                try printJSON(object)
            } else {
                print(String(format: "RL² %@-%d PPO %d epochs, %d steps per update, bandits k=5 n=%d, %d thread%@: %.0f steps/s (sampling %.1f s = %.0f%%, update %.1f s = %.0f%%, %d steps)",
                             config.cell.rawValue.uppercased(), config.hiddenSize, config.epochs, Int(steps) / iterations, episodesPerTrial, threads, threads == 1 ? "" : "s",
                             steps / total, sample, 100 * sample / total, update, 100 * update / total, Int(steps)))
                if let reference {
                    print(String(format: "pytorch_rl2 (same settings, one thread, same OpenBLAS kernels): %.0f steps/s; ratio %.1f×",
                                 reference, steps / total / reference))
                }
            }
        }

        /// Runs Benchmarks/pytorch_rl2_speed.py in this session and returns its steps/s.
        func runPyTorchRL2(checkout: String) throws -> Double {
            let (status, lines) = try Bench.runReferenceScript("pytorch_rl2_speed.py", python: "/usr/bin/python3", arguments: [
                "--checkout", checkout, "--updates", "1", "--threads", "1", "--meta-episode-len", "\(episodesPerTrial)"])
            guard status == 0, let rate = lines.last.flatMap({ $0["steps_per_second"] as? NSNumber })?.doubleValue else {
                throw fail("the pytorch_rl2 run failed (exit \(status)); run Benchmarks/pytorch_rl2_speed.py by hand to see why")
            }
            return rate
        }
    }

    struct MAMLSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "maml",
            abstract: "Seconds per MAML-TRPO meta-iteration on point-nav at the MAML paper's settings (20 tasks × 20 episodes, one inner step, 10 CG steps).")

        @Option(help: "Meta-iterations to run; the median leaves out the first.") var iterations: Int = 10
        @Option(help: "Threads for sampling and for the outer step (default: the cores).")
        var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(name: .customLong("pytorch-maml-rl"), help: "A checkout of tristandeleu/pytorch-maml-rl: time it too (Benchmarks/pytorch_maml_rl_run.py, one torch thread, same iterations) and print the ratio of medians.")
        var pytorchMAMLRL: String?
        @Option(help: "The Python that runs pytorch-maml-rl (it needs torch and gym 0.17; see the script's header).")
        var python: String = "/usr/bin/python3"
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            guard iterations >= 2, threads >= 1 else { throw fail("--iterations must be at least 2 and --threads at least 1") }
            var maml = try MAML(config: MAMLConfig(), prototype: PointNavigation(), seed: 1)
            maml.threads = threads
            var wall: [Double] = [], sample: [Double] = [], update: [Double] = []
            for _ in 0..<iterations {
                let start = Date()
                let m = Dictionary(try maml.iterate(), uniquingKeysWith: { a, _ in a })
                wall.append(Date().timeIntervalSince(start))
                sample.append(m["sample_seconds"]!)
                update.append(m["update_seconds"]!)
            }
            func median(_ xs: [Double]) -> Double { Timing.medianOf(Array(xs.dropFirst())) }  // the first warms up
            var reference: Double?
            if let pytorchMAMLRL { reference = median(try runPyTorchMAMLRL(checkout: pytorchMAMLRL)) }
            if json {
                var object: [String: Double] = ["seconds_per_iteration": median(wall), "sample_seconds": median(sample),
                                                "update_seconds": median(update), "iterations": Double(iterations),
                                                "threads": Double(threads)]
                if let reference {
                    object["pytorch_maml_rl_seconds_per_iteration"] = reference
                    object["ratio"] = reference / median(wall)
                }
                try printJSON(object)
            } else {
                print(String(format: "MAML-TRPO point-nav, 20 tasks × 20 episodes, %d thread%@: median %.3f s per meta-iteration (sampling %.3f s, outer step %.3f s; %d iterations, the first left out; min %.3f, max %.3f)",
                             threads, threads == 1 ? "" : "s", median(wall), median(sample), median(update), iterations,
                             wall.dropFirst().min()!, wall.dropFirst().max()!))
                if let reference {
                    print(String(format: "pytorch-maml-rl (same settings, one torch thread plus its sampler process, same OpenBLAS kernels): median %.3f s; ratio %.1f×",
                                 reference, reference / median(wall)))
                }
            }
        }

        /// Runs Benchmarks/pytorch_maml_rl_run.py in this session; its seconds per meta-iteration.
        func runPyTorchMAMLRL(checkout: String) throws -> [Double] {
            let (status, lines) = try Bench.runReferenceScript("pytorch_maml_rl_run.py", python: python, arguments: [
                "--checkout", checkout, "--iterations", "\(iterations)", "--seed", "1", "--threads", "1"])
            let seconds = lines.compactMap { ($0["seconds"] as? NSNumber)?.doubleValue }
            guard status == 0, seconds.count == iterations else {
                throw fail("the pytorch-maml-rl run failed (exit \(status)); run Benchmarks/pytorch_maml_rl_run.py by hand to see why")
            }
            return seconds
        }
    }

    /// Runs `Benchmarks/<name>` (a reference implementation's timing script) with one
    /// OpenBLAS thread on this process's kernel set; its exit status and the JSON objects it
    /// printed, one per line.
    static func runReferenceScript(_ name: String, python: String, arguments: [String]) throws -> (status: Int32, lines: [[String: Any]]) {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Benchmarks/" + name)
        guard FileManager.default.fileExists(atPath: script.path) else { throw fail("\(script.path) not found") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = BLASLibrary.shared.coreName
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
        return (process.terminationStatus, lines)
    }

    struct EnvSteps: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "envs",
            abstract: "Environment steps per second of every task family, vectorised, one core.")

        @Option(help: "Copies per VectorEnv.") var copies = 256
        @Flag(help: "Print one JSON object instead of a table.") var json = false
        @Flag(help: "Fewer repetitions (a smoke test, not a measurement).") var quick = false

        func run() throws {
            guard copies >= 1 else { throw fail("--copies must be at least 1 (got \(copies))") }
            let result = try EnvBenchmark.run(copies: copies, quick: quick)
            if json {
                try printJSON(result)
            } else {
                print(result.table)
            }
        }
    }
}

/// Prints `value` as one JSON object with sorted keys.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Opens the run directory a `train` command works in and calls `train` with it: with
/// `--resume`, the existing run (which must be `algorithm`'s; `extend` checks its settings
/// section and applies `--iterations`, and run.json and config.yaml are rewritten with the
/// result); with `--out`, a new one created from `resolve()`.
/// A new run that fails before its first iteration is logged (say, a task family whose
/// action space the algorithm cannot use) is removed again, so that the same `--out` can be
/// given once the mistake is fixed.
func withRun<T>(out: String?, resume: String?, algorithm: String, resolve: () throws -> RunManifest,
                extend: (inout RunManifest) -> Bool, train: (RunDirectory, RunManifest) throws -> T) throws -> (RunDirectory, T) {
    guard (out == nil) != (resume == nil) else { throw RunError("give exactly one of --out DIR (new run) or --resume DIR") }
    if let resume {
        let directory = RunDirectory(URL(fileURLWithPath: resume))
        var saved = try directory.manifest()
        guard saved.algorithm == algorithm, extend(&saved) else { throw RunError("\(resume) is not a \(algorithm) run") }
        try directory.write(manifest: saved)
        return (directory, try train(directory, saved))
    }
    let manifest = try resolve()
    let directory = RunDirectory(URL(fileURLWithPath: out!))
    let files = FileManager.default
    if files.fileExists(atPath: directory.manifestURL.path) {
        throw RunError("\(out!) already holds a run; use --resume \(out!) to continue it, or another --out")
    }
    let existed = files.fileExists(atPath: directory.url.path)
    try directory.create(manifest: manifest)
    do {
        return (directory, try train(directory, manifest))
    } catch {
        // Metrics rows or a checkpoint are evidence of a run worth keeping (a NaN at iteration 3, say).
        let rows = (try? String(contentsOf: directory.metricsURL, encoding: .utf8))?.split(separator: "\n").count ?? 0
        if rows <= 1 && directory.checkpointIterations().isEmpty {
            let created = existed
                ? [directory.manifestURL, directory.configURL, directory.metricsURL, directory.checkpointsURL]
                    + TensorBoardEventWriter.existingFiles(in: directory.url)
                : [directory.url]
            for url in created { try? files.removeItem(at: url) }
        }
        throw error
    }
}

/// Prints a one-line error and exits non-zero (user input problems, never a trap).
func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
    return ExitCode(2)
}

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw learning curves of run directories, or adaptation curves of `eval --json` files, as SVG.")

    @Argument(help: "Run directories (learning curves) or, with --adaptation, evaluation JSON files.") var inputs: [String]
    @Flag(help: "The inputs are `metarl eval DIR --json` outputs: draw the return by episode / step / trajectory.") var adaptation = false
    @Option(help: "metrics.csv column to draw (default: the algorithm's headline metric).") var metric: String?
    @Option(help: "metrics.csv column for the x axis.") var x: String = "environment_steps"
    @Option(help: "Moving-average window, in iterations, for metrics logged without a _stderr column.") var window: Int = 10
    @Option(name: .shortAndLong, help: "SVG file to write.") var output: String

    func run() throws {
        do {
            guard !inputs.isEmpty else { throw RunError("give at least one run directory (or eval JSON file with --adaptation)") }
            guard window >= 1 else { throw RunError("--window \(window): must be at least 1") }
            let urls = inputs.map { URL(fileURLWithPath: $0) }
            let chart = adaptation ? try RunPlots.adaptationCurves(files: urls)
                                   : try RunPlots.learningCurves(runs: urls, metric: metric, xAxis: x, window: window)
            try writeAtomically(Data(chart.svg().utf8), to: URL(fileURLWithPath: output))
            print("wrote \(output)")
        } catch {
            throw fail("\(error)")
        }
    }
}

struct Envs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the task families with their arguments, defaults and ranges.")
    func run() { print(EnvFamily.listing) }
}

struct Baseline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a classic bandit or tabular-MDP strategy on fresh tasks; print the mean trial return and its standard error.")

    @Argument(help: "One of: \(BaselinePolicy.allCases.map(\.rawValue).joined(separator: ", ")).") var policy: String
    @Option(help: "Task family (see `metarl envs`).") var env: String
    @Option(name: .customLong("env-arg"), help: "A family argument, key=value (repeatable).") var envArgs: [String] = []
    @Option(name: .customLong("policy-arg"), help: "A strategy parameter, key=value (repeatable).") var policyArgs: [String] = []
    @Option(help: "Episodes per trial (pulls, for bandits).") var episodesPerTrial: Int
    @Option(help: "Number of trials.") var trials: Int = 10_000
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Tune one parameter: key=v1,v2,… runs every value on the same tasks and marks the best.") var sweep: String?
    @Flag(help: "Print one JSON object (with --sweep, one per line).") var json = false

    func run() throws {
        guard let policy = BaselinePolicy(rawValue: self.policy) else {
            throw fail("unknown policy '\(self.policy)'; valid: \(BaselinePolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard episodesPerTrial >= 1 else { throw fail("--episodes-per-trial must be at least 1 (got \(episodesPerTrial))") }
        guard trials >= 2 else { throw fail("--trials must be at least 2 (got \(trials))") }
        if let sweep { return try runSweep(policy, sweep) }
        let stats: TrialStatistics
        do {
            let spec = try EnvSpec(family: env, arguments: envArgs)
            let arguments = try resolvePolicyArguments(policy, on: spec.family, policyArgs)
            stats = try runBaseline(policy, arguments: arguments, spec: spec, episodes: episodesPerTrial, trials: trials, seed: seed)
        } catch {
            throw fail("\(error)")
        }
        report(policy, stats, extra: "")
    }

    func runSweep(_ policy: BaselinePolicy, _ sweep: String) throws {
        let parts = sweep.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else { throw fail("--sweep '\(sweep)' is not of the form key=v1,v2,…") }
        var rows: [(String, TrialStatistics)] = []
        do {
            let spec = try EnvSpec(family: env, arguments: envArgs)
            for value in parts[1].split(separator: ",") {
                let arguments = try resolvePolicyArguments(policy, on: spec.family, policyArgs + ["\(parts[0])=\(value)"])
                let stats = try runBaseline(policy, arguments: arguments, spec: spec, episodes: episodesPerTrial, trials: trials, seed: seed)
                rows.append((String(value), stats))
                report(policy, stats, extra: "\(parts[0])=\(value)")
            }
        } catch {
            throw fail("\(error)")
        }
        if !json, let best = rows.max(by: { $0.1.meanReturn < $1.1.meanReturn }) {
            print("best: \(parts[0])=\(best.0) (mean return \(String(format: "%.3f", best.1.meanReturn)))")
        }
    }

    func report(_ policy: BaselinePolicy, _ stats: TrialStatistics, extra: String) {
        if json {
            print(#"{"mean_return":\#(stats.meanReturn),"stderr":\#(stats.standardError),"trials":\#(stats.trials),"policy":"\#(policy.rawValue)","env":"\#(env)","episodes_per_trial":\#(episodesPerTrial),"seed":\#(seed)\#(extra.isEmpty ? "" : #","setting":"\#(extra)""#)}"#)
        } else {
            print(String(format: "%@%@ on %@, %d episodes per trial, %d trials: mean return %.3f ± %.3f (s.e.)",
                         policy.rawValue, extra.isEmpty ? "" : " " + extra, env, episodesPerTrial, stats.trials, stats.meanReturn, stats.standardError))
        }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a meta-RL agent into a run directory.",
        subcommands: [TrainRL2.self, TrainMAML.self, TrainMAMLFirstOrder.self, TrainMetaSGD.self, TrainReptile.self,
                      TrainSAC.self, TrainPEARL.self])
}

struct TrainRL2: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rl2",
        abstract: "RL²: a recurrent policy trained with PPO over trials of several episodes of one task.")

    @Option(help: "A run config in YAML (see README); flags given as well override it.") var config: String?
    @Flag(help: "Print the resolved config as YAML and exit without training.") var printConfig = false
    @Option(help: "Task family (see `metarl envs`; default bandit).") var env: String?
    @Option(name: .customLong("env-arg"), help: "A family argument, key=value (repeatable).") var envArgs: [String] = []
    @Option(help: "Episodes per trial (pulls, for bandits; default 10).") var episodesPerTrial: Int?
    @Option(help: "Outer optimiser: ppo or trpo (default ppo).") var algo: RL2Config.Algorithm?
    @Option(help: "Recurrent cell: gru, ln-gru (layer-normalised, ReLU candidate) or lstm (default gru).") var cell: RecurrentCellChoice.Kind?
    @Option(help: "Hidden units of each recurrent network (default 256).") var hidden: Int?
    @Option(help: "Trials per iteration (default 0: 240 000 steps' worth).") var trialsPerIteration: Int?
    @Option(help: "Iterations to train for (default 100).") var iterations: Int?
    @Option(help: "Adam learning rate (default 2e-4).") var learningRate: Double?
    @Flag(name: .customLong("anneal-lr"), help: "Decay the learning rate linearly to zero over the iterations.") var annealLearningRate = false
    @Option(help: "PPO epochs per iteration (default 8).") var epochs: Int?
    @Option(help: "Trials' worth of steps per PPO minibatch (default 60).") var minibatchTrials: Int?
    @Option(help: "Truncated-BPTT length in steps (default 0: whole trials).") var maxSeqLen: Int?
    @Option(help: "Entropy bonus coefficient (default 0.01).") var entropy: Double?
    @Option(help: "Discount γ (default 0.99).") var gamma: Double?
    @Option(help: "GAE λ (default 0.3).") var lambda: Double?
    @Option(help: "PPO clip range ε (default 0.1).") var clip: Double?
    @Flag(help: "Standardise advantages over each iteration's batch.") var standardizeAdvantages = false
    @Option(help: "Random seed (default 0).") var seed: UInt64?
    @Option(help: "Run directory to create.") var out: String?
    @Option(help: "Run directory to continue from its newest good checkpoint (with --iterations N: the new total).") var resume: String?
    @Option(help: "Checkpoint every N iterations.") var checkpointEvery: Int = 10
    @Option(help: "Checkpoints to keep.") var keepCheckpoints: Int = 3
    @Option(help: "Threads for the PPO update (default: the cores, at most 2; results do not depend on it).")
    var threads: Int = min(2, ProcessInfo.processInfo.activeProcessorCount)

    func run() throws {
        do {
            if printConfig {
                print(try RunConfigFile.yaml(try resolvedManifest()), terminator: "")
                return
            }
            guard checkpointEvery >= 1 else { throw RunError("--checkpoint-every \(checkpointEvery): must be at least 1") }
            guard keepCheckpoints >= 1 else { throw RunError("--keep-checkpoints \(keepCheckpoints): must be at least 1") }
            guard threads >= 1 else { throw RunError("--threads \(threads): must be at least 1") }
            let start = Date()
            let (directory, final) = try withRun(out: out, resume: resume, algorithm: "rl2", resolve: resolvedManifest, extend: { saved in
                guard saved.rl2 != nil else { return false }
                if let iterations { saved.rl2!.iterations = max(saved.rl2!.iterations, iterations) }
                return true
            }) { directory, manifest in
                var training = RL2Training(config: manifest.rl2!, seed: manifest.seed, directory: directory, resume: resume != nil,
                                           checkpointEvery: checkpointEvery, keepCheckpoints: keepCheckpoints,
                                           notes: { print("note: " + $0) })
                training.threads = threads
                return try manifest.envSpec().open(training)
            }
            print(String(format: "trained %d iterations, %d environment steps, in %.1f s → %@", final.iteration, final.environmentSteps,
                         Date().timeIntervalSince(start), directory.url.path))
        } catch let error as ExitCode {
            throw error
        } catch {
            throw fail("\(error)")
        }
    }

    /// Defaults, then the config file, then the flags given.
    func resolvedManifest() throws -> RunManifest {
        var manifest = try config.map { try RunConfigFile.load(path: $0, algorithm: "rl2") }
            ?? RunManifest(algorithm: "rl2", env: try EnvSpec(family: "bandit"), seed: 0, rl2: RL2Config())
        try manifest.override(env: env, arguments: envArgs, seed: seed)
        var c = manifest.rl2 ?? RL2Config()
        if let algo { c.algorithm = algo }
        if let cell { c.cell = cell }
        if let episodesPerTrial { c.episodesPerTrial = episodesPerTrial }
        if let hidden { c.hiddenSize = hidden }
        if let trialsPerIteration { c.trialsPerIteration = trialsPerIteration }
        if let iterations { c.iterations = iterations }
        if let learningRate { c.learningRate = learningRate }
        if annealLearningRate { c.annealLearningRate = true }
        if let epochs { c.epochs = epochs }
        if let minibatchTrials { c.minibatchTrials = minibatchTrials }
        if let maxSeqLen { c.maxSeqLen = maxSeqLen }
        if let entropy { c.entropyCoefficient = entropy }
        if let gamma { c.gamma = gamma }
        if let lambda { c.gaeLambda = lambda }
        if let clip { c.clip = clip }
        if standardizeAdvantages { c.standardizeAdvantages = true }
        do { try c.validate() } catch {
            throw RunError("\(Self.flagNames[error.field].map { "\($0) (\(error.field))" } ?? error.field): \(error.value) is not allowed; allowed: \(error.allowed)")
        }
        manifest.rl2 = c
        return manifest
    }

    /// The flag that sets each config field, for error messages.
    static let flagNames = [
        "episodesPerTrial": "--episodes-per-trial", "hiddenSize": "--hidden", "trialsPerIteration": "--trials-per-iteration",
        "iterations": "--iterations", "learningRate": "--learning-rate", "epochs": "--epochs", "minibatchTrials": "--minibatch-trials",
        "maxSeqLen": "--max-seq-len", "entropyCoefficient": "--entropy", "gamma": "--gamma", "gaeLambda": "--lambda", "clip": "--clip",
    ]
}

extension RL2Config.Algorithm: ExpressibleByArgument {}
extension MAMLConfig.OuterOptimizer: ExpressibleByArgument {}
extension RecurrentCellChoice.Kind: ExpressibleByArgument {}

/// The options shared by `train maml`, `train maml-fo` and `train meta-sgd`.
struct MAMLOptions: ParsableArguments {
    @Option(help: "A run config in YAML; flags given as well override it.") var config: String?
    @Flag(help: "Print the resolved config as YAML and exit without training.") var printConfig = false
    @Option(help: "Task family (see `metarl envs`; default point-nav).") var env: String?
    @Option(name: .customLong("env-arg"), help: "A family argument, key=value (repeatable).") var envArgs: [String] = []
    @Option(help: "Meta-iterations (default 500).") var iterations: Int?
    @Option(help: "Tasks per meta-batch (default 20).") var metaBatchSize: Int?
    @Option(help: "Episodes per task for each inner step and for the outer step (default 20).") var fastBatchSize: Int?
    @Option(help: "Inner adaptation steps (default 1).") var innerSteps: Int?
    @Option(help: "Inner step size α (default 0.1; Meta-SGD's initial value).") var innerStepSize: Double?
    @Option(help: "Hidden layer sizes, comma-separated (default 64,64).") var hiddenSizes: String?
    @Option(help: "TRPO KL bound δ (default 0.01).") var maxKL: Double?
    @Option(help: "Reptile's outer step size ε (default 0.1).") var outerStepSize: Double?
    @Option(help: "Outer step of maml, maml-fo, meta-sgd: trpo or ppo (default trpo).") var outer: MAMLConfig.OuterOptimizer?
    @Option(help: "Discount γ (default 0.99).") var gamma: Double?
    @Option(help: "Random seed (default 0).") var seed: UInt64?
    @Option(help: "Run directory to create.") var out: String?
    @Option(help: "Run directory to continue from its newest good checkpoint (with --iterations N: the new total).") var resume: String?
    @Option(help: "Checkpoint every N iterations.") var checkpointEvery: Int = 10
    @Option(help: "Checkpoints to keep.") var keepCheckpoints: Int = 3
    @Option(help: "Threads for sampling the tasks and differentiating them in the outer step (default: the cores; results do not depend on it).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run(algorithm: String) throws {
        do {
            if printConfig {
                print(try RunConfigFile.yaml(try resolvedManifest(algorithm: algorithm)), terminator: "")
                return
            }
            guard checkpointEvery >= 1, keepCheckpoints >= 1, threads >= 1 else {
                throw RunError("--checkpoint-every, --keep-checkpoints and --threads must be at least 1")
            }
            let start = Date()
            let (directory, final) = try withRun(out: out, resume: resume, algorithm: algorithm,
                                                 resolve: { try resolvedManifest(algorithm: algorithm) }, extend: { saved in
                guard saved.maml != nil else { return false }
                if let iterations { saved.maml!.iterations = max(saved.maml!.iterations, iterations) }
                return true
            }) { directory, manifest in
                var training = MAMLTraining(config: manifest.maml!, seed: manifest.seed, directory: directory, resume: resume != nil,
                                            checkpointEvery: checkpointEvery, keepCheckpoints: keepCheckpoints,
                                            notes: { print("note: " + $0) })
                training.threads = threads
                return try manifest.envSpec().open(training)
            }
            print(String(format: "trained %d meta-iterations, %d environment steps, in %.1f s → %@", final.iteration,
                         final.environmentSteps, Date().timeIntervalSince(start), directory.url.path))
        } catch let error as ExitCode {
            throw error
        } catch {
            throw fail("\(error)")
        }
    }

    /// Defaults, then the config file, then the flags given.
    func resolvedManifest(algorithm: String) throws -> RunManifest {
        var manifest = try config.map { try RunConfigFile.load(path: $0, algorithm: algorithm) }
            ?? RunManifest(algorithm: algorithm, env: try EnvSpec(family: "point-nav"), seed: 0, maml: MAMLConfig())
        try manifest.override(env: env, arguments: envArgs, seed: seed)
        var c = manifest.maml ?? MAMLConfig()
        c.mode = MAMLTraining.mode(for: algorithm)
        if let iterations { c.iterations = iterations }
        if let metaBatchSize { c.metaBatchSize = metaBatchSize }
        if let fastBatchSize { c.fastBatchSize = fastBatchSize }
        if let innerSteps { c.innerAdaptationSteps = innerSteps }
        if let innerStepSize { c.innerStepSize = innerStepSize }
        if let hiddenSizes {
            let sizes = hiddenSizes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ $0 != nil }) else {
                throw RunError("--hidden-sizes \(hiddenSizes): expected comma-separated integers such as 64,64")
            }
            c.hiddenSizes = sizes.map { $0! }
        }
        if let maxKL { c.trpo.maxKL = maxKL }
        if let outerStepSize { c.outerStepSize = outerStepSize }
        if let outer { c.outerOptimizer = outer }
        if let gamma { c.gamma = gamma }
        do { try c.validate() } catch {
            let flag = ["iterations": "--iterations", "metaBatchSize": "--meta-batch-size", "fastBatchSize": "--fast-batch-size",
                        "innerAdaptationSteps": "--inner-steps", "innerStepSize": "--inner-step-size", "hiddenSizes": "--hidden-sizes",
                        "trpo.maxKL": "--max-kl", "gamma": "--gamma", "outerStepSize": "--outer-step-size"][error.field]
            throw RunError("\(flag.map { "\($0) (\(error.field))" } ?? error.field): \(error.value) is not allowed; allowed: \(error.allowed)")
        }
        manifest.maml = c
        return manifest
    }
}

struct TrainMAML: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maml", abstract: "MAML with a TRPO outer step, differentiating through the inner step (second order).")
    @OptionGroup var options: MAMLOptions
    func run() throws { try options.run(algorithm: "maml") }
}

struct TrainMAMLFirstOrder: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maml-fo", abstract: "First-order MAML: the inner gradient is treated as a constant in the meta-gradient.")
    @OptionGroup var options: MAMLOptions
    func run() throws { try options.run(algorithm: "maml-fo") }
}

struct TrainReptile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reptile", abstract: "Reptile: adapt to each task, then move θ toward the adapted parameters by ε.")
    @OptionGroup var options: MAMLOptions
    func run() throws { try options.run(algorithm: "reptile") }
}

struct TrainMetaSGD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meta-sgd", abstract: "Meta-SGD: MAML with a per-parameter inner step size learned with θ.")
    @OptionGroup var options: MAMLOptions
    func run() throws { try options.run(algorithm: "meta-sgd") }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a run directory on fresh tasks: mean trial return, its standard error, and the return by episode.")

    @Argument(help: "A run directory made by `metarl train`.") var directory: String
    @Option(help: "Fresh trials to run (RL²).") var trials: Int = 1000
    @Option(help: "Inner adaptation steps to evaluate (MAML family; default: the run's).") var adaptSteps: Int?
    @Option(help: "Fresh tasks to run (MAML family, SAC, PEARL).") var tasks: Int = 40
    @Option(help: "Trajectories per task (SAC, PEARL: the adaptation curve by trajectory).") var trajectories: Int = 3
    @Flag(help: "PEARL: act with the policy's mean given z instead of sampling actions (SAC always uses the mean).") var meanAction = false
    @Flag(help: "RL²: act with the most probable action at every step instead of sampling from the policy.") var greedy = false
    @Option(help: "Random seed for the tasks and the actions.") var seed: UInt64 = 12345
    @Option(name: .customLong("env-arg"), help: "Evaluate on a variant: a family argument, key=value, replacing the run's (repeatable).") var envArgs: [String] = []
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        guard trials >= 2 else { throw fail("--trials must be at least 2 (got \(trials))") }
        guard tasks >= 2 else { throw fail("--tasks must be at least 2 (got \(tasks))") }
        if let adaptSteps, !(0...100).contains(adaptSteps) { throw fail("--adapt-steps \(adaptSteps): allowed 0…100") }
        guard (1...1000).contains(trajectories) else { throw fail("--trajectories \(trajectories): allowed 1…1000") }
        do {
            let run = RunDirectory(URL(fileURLWithPath: directory))
            var manifest = try run.manifest()
            try manifest.override(env: nil, arguments: envArgs, seed: nil)
            let notes: (String) -> Void = { FileHandle.standardError.write(Data(("note: " + $0 + "\n").utf8)) }
            if manifest.sac != nil || manifest.pearl != nil {
                let result: TrajectoryEvaluation
                if manifest.sac != nil {
                    result = try manifest.envSpec().open(SACEvaluator(directory: run, trajectories: trajectories, tasks: tasks, seed: seed, notes: notes))
                } else {
                    var evaluator = try PEARLEvaluator(directory: run, trajectories: trajectories, tasks: tasks, seed: seed, notes: notes)
                    evaluator.sampleActions = !meanAction
                    result = try manifest.envSpec().open(evaluator)
                }
                if json {
                    try printJSON(result)
                } else {
                    print(String(format: "%@ on %@ over %d fresh tasks (%@):", manifest.algorithm, manifest.env, tasks,
                                 manifest.sac != nil || meanAction ? "mean action" : "actions sampled given z"))
                    print("return by trajectory: " + zip(result.returns_by_trajectory, result.stderr_by_trajectory).enumerated()
                        .map { String(format: "%d: %.2f±%.2f", $0.offset + 1, $0.element.0, $0.element.1) }.joined(separator: "  "))
                }
                return
            }
            if manifest.maml != nil {
                let evaluator = try MAMLEvaluator(directory: run, steps: adaptSteps ?? manifest.maml!.innerAdaptationSteps,
                                                  tasks: tasks, seed: seed,
                                                  notes: { FileHandle.standardError.write(Data(("note: " + $0 + "\n").utf8)) })
                let result = try manifest.envSpec().open(evaluator)
                if json {
                    try printJSON(result)
                } else {
                    print(String(format: "%@ on %@ over %d fresh tasks: return before adaptation %.2f ± %.2f; adaptation delta %.2f ± %.2f (s.e.)",
                                 manifest.algorithm, manifest.env, tasks, result.returns_by_step[0], result.stderr_by_step[0],
                                 result.adaptation_delta, result.adaptation_delta_stderr))
                    print("return by inner step: " + zip(result.returns_by_step, result.stderr_by_step).enumerated()
                        .map { String(format: "%d: %.2f±%.2f", $0.offset, $0.element.0, $0.element.1) }.joined(separator: "  "))
                }
                return
            }
            var evaluator = try RL2Evaluator(directory: run, trials: trials, seed: seed, notes: { FileHandle.standardError.write(Data(("note: " + $0 + "\n").utf8)) })
            evaluator.greedy = greedy
            let result = try manifest.envSpec().open(evaluator)
            if json {
                try printJSON(result)
            } else {
                print(String(format: "%@ on %@: mean trial return %.3f ± %.3f (s.e.) over %d fresh trials%@",
                             manifest.algorithm, manifest.env, result.mean_return, result.stderr, result.trials,
                             greedy ? ", most probable actions" : ""))
                print("return by episode: " + zip(result.per_episode, result.per_episode_stderr).enumerated()
                    .map { String(format: "%d: %.3f±%.3f", $0.offset + 1, $0.element.0, $0.element.1) }.joined(separator: "  "))
            }
        } catch let error as ExitCode {
            throw error
        } catch {
            throw fail("\(error)")
        }
    }
}

struct Quickstart: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a small RL² agent on Bernoulli bandits (k = 5, n = 10) and print it beside the classic baselines.")

    @Option(help: "Run directory (replaced if it holds an earlier quickstart).") var out: String = "runs/quickstart"
    @Option(help: "Training iterations (1000 trials each).") var iterations: Int = QuickstartSettings.iterations
    @Option(help: "Evaluation trials per row of the table.") var trials: Int = 10_000
    @Option(help: "Random seed.") var seed: UInt64 = 1

    func run() throws {
        do {
            let spec = try EnvSpec(family: "bandit", arguments: ["arms=5"])
            let directory = RunDirectory(URL(fileURLWithPath: out))
            if let manifest = try? directory.manifest(), manifest.algorithm == "rl2" {
                try FileManager.default.removeItem(at: directory.url)
            }
            var config = QuickstartSettings.config
            config.iterations = iterations
            try directory.create(manifest: RunManifest(algorithm: "rl2", env: spec, seed: seed, rl2: config))
            print("Training RL² (GRU-\(config.hiddenSize), PPO) on bandits k = 5, n = 10: \(iterations) iterations of \(config.trialsPerIteration) trials …")
            let start = Date()
            _ = try spec.open(RL2Training(config: config, seed: seed, directory: directory, resume: false))
            let seconds = Date().timeIntervalSince(start)
            let rl2 = try spec.open(RL2Evaluator(directory: directory, trials: trials, seed: seed + 1))
            var rows: [(String, Double, Double)] = [("RL² (this run)", rl2.mean_return, rl2.stderr)]
            let baselines: [(String, BaselinePolicy, [String])] = [
                ("Bayes-optimal (exact DP)", .bayesOptimal, []), ("Gittins index", .gittins, []), ("UCB1", .ucb1, []),
                ("Optimistic Thompson", .optimisticThompson, []), ("Thompson sampling", .thompson, []),
                ("ε-greedy", .epsilonGreedy, []), ("Greedy", .greedy, []), ("Random", .random, []),
            ]
            for (name, policy, args) in baselines {
                let arguments = try resolvePolicyArguments(policy, on: .bandit, args)
                let stats = try runBaseline(policy, arguments: arguments, spec: spec, episodes: 10, trials: trials, seed: seed + 1)
                rows.append((name, stats.meanReturn, stats.standardError))
            }
            print(String(format: "\nBernoulli bandits, k = 5 arms, n = 10 pulls; mean trial return over %d fresh trials (RL² trained in %.0f s)", trials, seconds))
            print("strategy                    return   s.e.")
            for (name, mean, se) in rows {
                print(name.padding(toLength: 26, withPad: " ", startingAt: 0) + String(format: "%8.3f  %5.3f", mean, se))
            }
            print("RL² by pull: " + rl2.per_episode.map { String(format: "%.3f", $0) }.joined(separator: " "))
            print("run directory: \(directory.url.path) (try `metarl eval \(out)`)")
        } catch let error as ExitCode {
            throw error
        } catch {
            throw fail("\(error)")
        }
    }
}

/// The quickstart's training settings (a small network so it finishes in minutes on two cores).
enum QuickstartSettings {
    static let iterations = 600
    static var config: RL2Config {
        var c = RL2Config()
        c.episodesPerTrial = 10
        c.hiddenSize = 64
        c.trialsPerIteration = 1000
        c.learningRate = 1e-3
        c.epochs = 4
        c.entropyCoefficient = 0.001
        return c
    }
}
