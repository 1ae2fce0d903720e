import Envs
import Foundation
import MetaRL
import NN
import TensorCore

/// How a peer (a reference implementation's timing script) is run: its interpreter (which
/// torch it imports), torch threads, processes under `mpirun -np`, `torch.compile`, and
/// sampler workers where the peer has them.
public struct PeerSetup: Sendable, Encodable {
    public var python: String
    public var threads: Int
    public var processes: Int
    public var compile: Bool
    public var workers: Int

    public init(python: String = "/usr/bin/python3", threads: Int = 1, processes: Int = 1, compile: Bool = false, workers: Int = 1) {
        self.python = python
        self.threads = threads
        self.processes = processes
        self.compile = compile
        self.workers = workers
    }

    /// The setup as a phrase: "torch 2.15.0, 1 thread, mpirun -np 2".
    func describe(torch: String?, workers showWorkers: Bool = false) -> String {
        var parts = ["torch \(torch ?? "?")", "\(threads) thread\(threads == 1 ? "" : "s")"]
        if processes > 1 { parts.append("mpirun -np \(processes)") }
        if showWorkers { parts.append("\(workers) sampler worker\(workers == 1 ? "" : "s")") }
        if compile { parts.append("torch.compile") }
        return parts.joined(separator: ", ")
    }
}

/// A peer and metarl timed alternately in one command (the peer, then metarl, `pairs` times),
/// so that each ratio compares two runs minutes apart on a machine whose speed drifts.
public struct PairedRuns: Encodable, Sendable {
    /// The peer's figure of each pair (higher is faster).
    public var reference: [Double]
    /// metarl's figure of each pair (higher is faster).
    public var metarl: [Double]
    /// metarl over the peer, pair by pair.
    public var ratios: [Double] { zip(metarl, reference).map { $0 / $1 } }
    public var medianRatio: Double { Timing.medianOf(ratios) }

    enum CodingKeys: String, CodingKey { case reference, metarl, ratios, medianRatio = "median_ratio" }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(reference, forKey: .reference)
        try c.encode(metarl, forKey: .metarl)
        try c.encode(ratios, forKey: .ratios)
        try c.encode(medianRatio, forKey: .medianRatio)
    }

    /// Rows "pair i: peer x, metarl y, ratio r" and the median, figures formatted by `format`.
    func rows(_ format: String) -> [String] {
        var lines = (0..<ratios.count).map { i in
            String(format: "  pair %d: peer \(format), metarl \(format), ratio %.1f×", i + 1, reference[i], metarl[i], ratios[i])
        }
        lines.append(String(format: "  median ratio of %d pairs: %.1f× (%.1f–%.1f×)", ratios.count, medianRatio,
                            ratios.min() ?? .nan, ratios.max() ?? .nan))
        return lines
    }
}

/// `metarl bench rl2`: RL² training speed at the public PyTorch RL² implementation's
/// settings (GRU-256, PPO 8 epochs, 240 000 steps per update) on bandits k = 5.
public struct RL2SpeedBenchmark: Encodable, Sendable {
    /// One timed run of metarl.
    public struct Run: Encodable, Sendable {
        public var stepsPerSecond: Double
        public var sampleSeconds: Double
        public var updateSeconds: Double
        enum CodingKeys: String, CodingKey { case stepsPerSecond = "steps_per_second", sampleSeconds = "sample_seconds", updateSeconds = "update_seconds" }
    }
    public var runs: [Run]
    public var stepsPerUpdate: Int
    public var threads: Int
    public var cell: String
    public var hiddenSize: Int
    public var epochs: Int
    public var episodesPerTrial: Int
    /// pytorch_rl2's steps/s and metarl's, alternated, when pytorch_rl2 was timed.
    public var paired: PairedRuns?
    public var peer: String?

    enum CodingKeys: String, CodingKey {
        case runs, stepsPerUpdate = "steps_per_update", threads, cell, hiddenSize = "hidden_size", epochs
        case episodesPerTrial = "episodes_per_trial", paired = "pytorch_rl2_pairs", peer = "pytorch_rl2"
    }

    /// Times `iterations` RL² iterations (the first included); with `pytorchRL2`, a checkout of
    /// lucaslingle/pytorch_rl2, times one of its updates under `peer` before each of `pairs` runs.
    public static func run(iterations: Int, episodesPerTrial: Int, trialsPerIteration: Int, cell: RecurrentCellChoice.Kind?,
                           threads: Int, pytorchRL2: String?, peer: PeerSetup = PeerSetup(), pairs: Int = 1) throws -> RL2SpeedBenchmark {
        var config = RL2Config()
        config.episodesPerTrial = episodesPerTrial
        config.trialsPerIteration = trialsPerIteration
        if let cell { config.cell = cell }
        func timeMetaRL() throws -> (Run, Int) {
            var rl2 = try RL2(config: config, prototype: BernoulliBandit(arms: 5), seed: 0)
            rl2.threads = threads
            var sample = 0.0, update = 0.0
            for _ in 0..<iterations {
                let m = Dictionary(try rl2.iterate(), uniquingKeysWith: { a, _ in a })
                sample += m["sample_seconds"]!
                update += m["update_seconds"]!
            }
            return (Run(stepsPerSecond: Double(rl2.environmentSteps) / (sample + update), sampleSeconds: sample, updateSeconds: update),
                    rl2.environmentSteps / iterations)
        }
        var result = RL2SpeedBenchmark(runs: [], stepsPerUpdate: 0, threads: threads, cell: config.cell.rawValue, hiddenSize: config.hiddenSize,
                                       epochs: config.epochs, episodesPerTrial: episodesPerTrial, paired: nil, peer: nil)
        var reference: [Double] = []
        for _ in 0..<(pytorchRL2 == nil ? 1 : pairs) {
            if let pytorchRL2 {
                var arguments = ["--checkout", pytorchRL2, "--updates", "1", "--threads", "\(peer.threads)", "--meta-episode-len", "\(episodesPerTrial)"]
                if peer.processes > 1 { arguments.append("--mpi") }
                if peer.compile { arguments.append("--compile") }
                let lines = try ReferenceScript.run("pytorch_rl2_speed.py", python: peer.python, arguments: arguments, processes: peer.processes)
                guard let rate = lines.last.flatMap({ $0["steps_per_second"] as? NSNumber })?.doubleValue else {
                    throw ReferenceScript.Failure("pytorch_rl2_speed.py printed no steps_per_second; run it by hand to see why")
                }
                reference.append(rate)
                result.peer = peer.describe(torch: lines.last?["torch"] as? String)
            }
            let (run, perUpdate) = try timeMetaRL()
            result.runs.append(run)
            result.stepsPerUpdate = perUpdate
        }
        if pytorchRL2 != nil { result.paired = PairedRuns(reference: reference, metarl: result.runs.map(\.stepsPerSecond)) }
        return result
    }

    /// The human-readable report.
    public var table: String {
        var lines = runs.map { run in
            let total = run.sampleSeconds + run.updateSeconds
            return String(format: "RL² %@-%d PPO %d epochs, %d steps per update, bandits k=5 n=%d, %d thread%@: %.0f steps/s (sampling %.1f s = %.0f%%, update %.1f s = %.0f%%)",
                          cell.uppercased(), hiddenSize, epochs, stepsPerUpdate, episodesPerTrial, threads, threads == 1 ? "" : "s",
                          run.stepsPerSecond, run.sampleSeconds, 100 * run.sampleSeconds / total, run.updateSeconds, 100 * run.updateSeconds / total)
        }
        if let paired, let peer {
            lines.append("pytorch_rl2 (same settings, \(peer)), then metarl, alternately (steps/s):")
            lines += paired.rows("%.0f")
        }
        return lines.joined(separator: "\n")
    }
}

/// `metarl bench maml`: seconds per MAML-TRPO meta-iteration on point-nav at the MAML
/// paper's settings (20 tasks × 20 episodes, one inner step, 10 CG steps).
public struct MAMLSpeedBenchmark: Encodable, Sendable {
    /// Seconds per meta-iteration of metarl's runs, one array per run.
    public var wall: [[Double]]
    public var sample: [[Double]]
    public var update: [[Double]]
    public var threads: Int
    /// pytorch-maml-rl's seconds per meta-iteration, one array per run, when timed.
    public var reference: [[Double]]
    public var peer: String?

    /// A median leaving out the first iteration, which warms up.
    static func median(_ xs: [Double]) -> Double { Timing.medianOf(Array(xs.dropFirst())) }

    /// Meta-iterations per second of each run (the inverse of its median), peer before metarl.
    public var paired: PairedRuns? {
        reference.isEmpty ? nil : PairedRuns(reference: reference.map { 1 / Self.median($0) }, metarl: wall.map { 1 / Self.median($0) })
    }

    enum CodingKeys: String, CodingKey {
        case seconds = "seconds_per_iteration", sample = "sample_seconds", update = "update_seconds", iterations, threads
        case reference = "pytorch_maml_rl_seconds_per_iteration", paired = "pytorch_maml_rl_pairs", peer = "pytorch_maml_rl"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(wall.map(Self.median), forKey: .seconds)
        try c.encode(sample.map(Self.median), forKey: .sample)
        try c.encode(update.map(Self.median), forKey: .update)
        try c.encode(Double(wall.first?.count ?? 0), forKey: .iterations)
        try c.encode(Double(threads), forKey: .threads)
        if !reference.isEmpty {
            try c.encode(reference.map(Self.median), forKey: .reference)
            try c.encodeIfPresent(paired, forKey: .paired)
            try c.encodeIfPresent(peer, forKey: .peer)
        }
    }

    /// Times `iterations` meta-iterations; with `pytorchMAMLRL`, a checkout of
    /// tristandeleu/pytorch-maml-rl, times as many of its meta-iterations under `peer` before
    /// each of `pairs` runs.
    public static func run(iterations: Int, threads: Int, pytorchMAMLRL: String?, peer: PeerSetup = PeerSetup(), pairs: Int = 1) throws -> MAMLSpeedBenchmark {
        var result = MAMLSpeedBenchmark(wall: [], sample: [], update: [], threads: threads, reference: [], peer: nil)
        for _ in 0..<(pytorchMAMLRL == nil ? 1 : pairs) {
            if let pytorchMAMLRL {
                // It prints a line per meta-iteration (tens of seconds each): ten silent minutes is a stall.
                let arguments = ["--checkout", pytorchMAMLRL, "--iterations", "\(iterations)", "--seed", "1", "--threads", "\(peer.threads)",
                                 "--num-workers", "\(peer.workers)"]
                let lines = try ReferenceScript.run("pytorch_maml_rl_run.py", python: peer.python, arguments: arguments, stallTimeout: 600)
                let seconds = lines.compactMap { ($0["seconds"] as? NSNumber)?.doubleValue }
                guard seconds.count == iterations else {
                    throw ReferenceScript.Failure("pytorch_maml_rl_run.py reported \(seconds.count) of \(iterations) iterations; run it by hand to see why")
                }
                result.reference.append(seconds)
                result.peer = peer.describe(torch: lines.last?["torch"] as? String, workers: true)
            }
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
            result.wall.append(wall)
            result.sample.append(sample)
            result.update.append(update)
        }
        return result
    }

    /// The human-readable report.
    public var table: String {
        var lines = zip(wall, zip(sample, update)).map { wall, parts in
            String(format: "MAML-TRPO point-nav, 20 tasks × 20 episodes, %d thread%@: median %.3f s per meta-iteration (sampling %.3f s, outer step %.3f s; %d iterations, the first left out; min %.3f, max %.3f)",
                   threads, threads == 1 ? "" : "s", Self.median(wall), Self.median(parts.0), Self.median(parts.1), wall.count,
                   wall.dropFirst().min() ?? .nan, wall.dropFirst().max() ?? .nan)
        }
        if let paired, let peer {
            lines.append("pytorch-maml-rl (same settings, \(peer)), then metarl, alternately (median seconds per meta-iteration):")
            lines += zip(reference, wall).enumerated().map { i, pair in
                String(format: "  pair %d: peer %.3f s, metarl %.3f s, ratio %.1f×", i + 1, Self.median(pair.0), Self.median(pair.1), paired.ratios[i])
            }
            lines.append(String(format: "  median ratio of %d pairs: %.1f× (%.1f–%.1f×)", paired.ratios.count, paired.medianRatio,
                                paired.ratios.min() ?? .nan, paired.ratios.max() ?? .nan))
        }
        return lines.joined(separator: "\n")
    }
}

/// `metarl bench pearl`: PEARL's gradient steps and environment steps per second at the
/// PEARL paper's point-robot configuration (oyster's `point-robot.json`: networks 300-300-300,
/// encoder 200-200-200, latent 5, meta-batch 16 tasks × 256 RL and 64 context transitions,
/// 80 training tasks, 20-step episodes), on point-nav with goals in [−1, 1]².
public struct PEARLSpeedBenchmark: Encodable, Sendable {
    /// One timed run: gradient steps/s over `gradientSteps` steps, environment steps/s over
    /// the initial pools and one iteration's collection.
    public struct Run: Encodable, Sendable {
        public var gradientStepsPerSecond: Double
        public var environmentStepsPerSecond: Double
        enum CodingKeys: String, CodingKey {
            case gradientStepsPerSecond = "gradient_steps_per_second", environmentStepsPerSecond = "environment_steps_per_second"
        }
    }
    public var runs: [Run]
    public var gradientSteps: Int
    /// metarl's threads, and the parts (`shards`) each meta-batch is cut into for them.
    public var threads: Int
    /// oyster's gradient steps/s and metarl's, alternated, when oyster was timed.
    public var gradientPairs: PairedRuns?
    /// The same for environment steps/s.
    public var environmentPairs: PairedRuns?
    public var peer: String?

    enum CodingKeys: String, CodingKey {
        case runs, gradientSteps = "gradient_steps", threads, gradientPairs = "oyster_gradient_pairs", environmentPairs = "oyster_environment_pairs"
        case peer = "oyster"
    }

    /// PEARL at oyster's point-robot sizes.
    public static var pointRobotConfig: PEARLConfig {
        var config = PEARLConfig()
        config.hiddenSizes = [300, 300, 300]
        config.encoderHiddenSizes = [200, 200, 200]
        config.latentSize = 5
        config.trainTasks = 80
        config.metaBatchSize = 16
        config.batchSize = 256
        config.contextBatchSize = 64
        config.initialStepsPerTask = 200
        config.tasksPerIteration = 5
        config.priorSteps = 200
        config.extraPosteriorSteps = 200
        config.update.rewardScale = 100
        config.evalTasks = 2
        config.evalTrajectories = 1
        return config
    }

    /// Times one PEARL iteration of `gradientSteps` gradient steps on `threads` threads (each
    /// meta-batch cut into as many parts); with `oyster`, a checkout of katerakelly/oyster, times
    /// as many of its gradient steps under `peer` before each of `pairs` runs.
    public static func run(gradientSteps: Int, threads: Int = 1, oyster: String?, peer: PeerSetup = PeerSetup(),
                           pairs: Int = 1) throws -> PEARLSpeedBenchmark {
        var config = pointRobotConfig
        config.gradientStepsPerIteration = gradientSteps
        config.shards = threads
        var result = PEARLSpeedBenchmark(runs: [], gradientSteps: gradientSteps, threads: threads, peer: nil)
        var gradient: [Double] = [], environment: [Double] = []
        for _ in 0..<(oyster == nil ? 1 : pairs) {
            if let oyster {
                let lines = try ReferenceScript.run("oyster_pearl_speed.py", python: peer.python, arguments: [
                    "--checkout", oyster, "--gradient-steps", "\(gradientSteps)", "--threads", "\(peer.threads)"])
                guard let last = lines.last, let g = (last["gradient_steps_per_second"] as? NSNumber)?.doubleValue,
                      let e = (last["environment_steps_per_second"] as? NSNumber)?.doubleValue else {
                    throw ReferenceScript.Failure("oyster_pearl_speed.py printed no rates; run it by hand to see why")
                }
                gradient.append(g)
                environment.append(e)
                result.peer = peer.describe(torch: last["torch"] as? String)
            }
            var pearl = try PEARL(config: config, prototype: PointNavigation(goalRange: 1, horizon: 20), seed: 1, threads: threads)
            let m = Dictionary(try pearl.iterate(), uniquingKeysWith: { a, _ in a })
            result.runs.append(Run(gradientStepsPerSecond: m["gradient_steps_per_second"]!,
                                   environmentStepsPerSecond: Double(pearl.environmentSteps) / m["collect_seconds"]!))
        }
        if oyster != nil {
            result.gradientPairs = PairedRuns(reference: gradient, metarl: result.runs.map(\.gradientStepsPerSecond))
            result.environmentPairs = PairedRuns(reference: environment, metarl: result.runs.map(\.environmentStepsPerSecond))
        }
        return result
    }

    /// The human-readable report.
    public var table: String {
        var lines = runs.map { run in
            "PEARL point-robot sizes (300×3 networks, 200×3 encoder, meta-batch 16 × 256 + 64 context), "
                + (threads == 1 ? "one thread" : "\(threads) threads, \(threads) shards")
                + String(format: ": %.1f gradient steps/s over %d, %.0f environment steps/s",
                         run.gradientStepsPerSecond, gradientSteps, run.environmentStepsPerSecond)
        }
        if let gradientPairs, let environmentPairs, let peer {
            lines.append("oyster (point-robot.json, \(peer)), then metarl, alternately; gradient steps/s:")
            lines += gradientPairs.rows("%.1f")
            lines.append("environment steps/s (oyster: its initial pool, z from the prior; metarl: the initial pools and one iteration's collection):")
            lines += environmentPairs.rows("%.0f")
        }
        return lines.joined(separator: "\n")
    }
}

/// A reference implementation's timing script in `Benchmarks/`, run as a child process
/// with one OpenBLAS thread on this process's kernel set, under a time limit.
public enum ReferenceScript {
    /// A reference run that failed, stalled or printed nothing usable.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The folder holding the scripts: `METARL_BENCHMARKS`, else `Benchmarks/` of this source tree.
    public static var folder: URL {
        if let path = ProcessInfo.processInfo.environment["METARL_BENCHMARKS"] { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Benchmarks")
    }

    /// Runs `name` and returns the JSON objects it printed, one per line. A non-zero exit (with
    /// the `{"error": …}` line the script printed, if any), a run longer than `timeout` seconds,
    /// a run that prints nothing for `stallTimeout` seconds (for scripts that print as they go:
    /// a dead worker the reference waits on forever) or a missing script is a `Failure`; the
    /// child and every process it started (it runs in a process group of its own) are then killed.
    /// With `processes` > 1 the script runs under `mpirun -np processes` (Open MPI), with the
    /// same environment on every rank.
    public static func run(_ name: String, python: String, arguments: [String], processes: Int = 1, timeout: Double = 3600,
                           stallTimeout: Double? = nil, in folder: URL = folder) throws -> [[String: Any]] {
        let script = folder.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: script.path) else { throw Failure("\(script.path) not found") }
        let process = Process()
        // Foundation starts the child as the leader of a process group of its own (pgid = pid),
        // so its workers can be killed with it.
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = BLASLibrary.shared.coreName
        environment["OPENBLAS_NUM_THREADS"] = "1"
        if processes > 1 {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["mpirun", "-np", "\(processes)", "-x", "OPENBLAS_CORETYPE", "-x", "OPENBLAS_NUM_THREADS", python, script.path] + arguments
            if geteuid() == 0 {  // Open MPI refuses root unless told twice
                environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
                environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
            }
        } else {
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = [script.path] + arguments
        }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { throw Failure("cannot start \(python): \(error.localizedDescription)") }
        let collected = OutputCollector()
        // Read on another thread so that a stalled child cannot block the timeouts.
        let reader = Thread {
            let handle = output.fileHandleForReading
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                collected.append(chunk)
            }
            collected.finish()
        }
        reader.start()
        func stop() {
            kill(-process.processIdentifier, SIGKILL)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                stop()
                throw Failure("\(name) did not finish within \(Int(timeout)) s; stopped it")
            }
            if let stallTimeout, collected.silentFor > stallTimeout {
                stop()
                throw Failure("\(name) printed nothing for \(String(format: "%g", stallTimeout)) s (a stalled run: a dead or hung worker?); stopped it and its workers")
            }
            usleep(50_000)
        }
        process.waitUntilExit()
        // Workers the script left behind go with it.
        kill(-process.processIdentifier, SIGKILL)
        let objects = String(decoding: collected.wait(seconds: 10), as: UTF8.self).split(separator: "\n").compactMap { line in
            try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
        guard process.terminationStatus == 0 else {
            let reason = objects.compactMap { $0["error"] as? String }.last.map { ": \($0)" } ?? "; run it by hand to see why"
            throw Failure("\(name) failed (exit \(process.terminationStatus))\(reason)")
        }
        return objects
    }

    /// The child's output as the reading thread receives it, and when it last arrived.
    final class OutputCollector: @unchecked Sendable {
        private let lock = NSLock()
        private let done = DispatchSemaphore(value: 0)
        private var data = Data()
        private var last = Date()
        func append(_ chunk: Data) { lock.withLock { data.append(chunk); last = Date() } }
        func finish() { done.signal() }
        /// Seconds since the child last printed (or started).
        var silentFor: Double { lock.withLock { Date().timeIntervalSince(last) } }
        func wait(seconds: Double) -> Data { _ = done.wait(timeout: .now() + seconds); return lock.withLock { data } }
    }
}
