import Envs
import Foundation
import MetaRL
import NN
import TensorCore

/// `metarl bench rl2`: RL² training speed at the public PyTorch RL² implementation's
/// settings (GRU-256, PPO 8 epochs, 240 000 steps per update) on bandits k = 5.
public struct RL2SpeedBenchmark: Encodable, Sendable {
    public var stepsPerSecond: Double
    public var sampleSeconds: Double
    public var updateSeconds: Double
    public var steps: Double
    public var threads: Int
    public var cell: String
    public var hiddenSize: Int
    public var epochs: Int
    public var episodesPerTrial: Int
    public var iterations: Int
    /// pytorch_rl2's steps/s in the same session, when it was timed.
    public var referenceStepsPerSecond: Double?

    enum CodingKeys: String, CodingKey {
        case stepsPerSecond = "steps_per_second", sampleSeconds = "sample_seconds", updateSeconds = "update_seconds", steps, threads
        case referenceStepsPerSecond = "pytorch_rl2_steps_per_second", ratio
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(stepsPerSecond, forKey: .stepsPerSecond)
        try c.encode(sampleSeconds, forKey: .sampleSeconds)
        try c.encode(updateSeconds, forKey: .updateSeconds)
        try c.encode(steps, forKey: .steps)
        try c.encode(Double(threads), forKey: .threads)
        if let referenceStepsPerSecond {
            try c.encode(referenceStepsPerSecond, forKey: .referenceStepsPerSecond)
            try c.encode(stepsPerSecond / referenceStepsPerSecond, forKey: .ratio)
        }
    }

    /// Times `iterations` RL² iterations (the first included) with `config`'s overrides; with
    /// `pytorchRL2`, a checkout of lucaslingle/pytorch_rl2, times it too right after.
    public static func run(iterations: Int, episodesPerTrial: Int, trialsPerIteration: Int, cell: RecurrentCellChoice.Kind?,
                           threads: Int, pytorchRL2: String?, python: String = "/usr/bin/python3") throws -> RL2SpeedBenchmark {
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
        let steps = Double(rl2.environmentSteps)
        var reference: Double?
        if let pytorchRL2 {
            let lines = try ReferenceScript.run("pytorch_rl2_speed.py", python: python, arguments: [
                "--checkout", pytorchRL2, "--updates", "1", "--threads", "1", "--meta-episode-len", "\(episodesPerTrial)"])
            guard let rate = lines.last.flatMap({ $0["steps_per_second"] as? NSNumber })?.doubleValue else {
                throw ReferenceScript.Failure("pytorch_rl2_speed.py printed no steps_per_second; run it by hand to see why")
            }
            reference = rate
        }
        return RL2SpeedBenchmark(stepsPerSecond: steps / (sample + update), sampleSeconds: sample, updateSeconds: update, steps: steps,
                                 threads: threads, cell: config.cell.rawValue, hiddenSize: config.hiddenSize, epochs: config.epochs,
                                 episodesPerTrial: episodesPerTrial, iterations: iterations, referenceStepsPerSecond: reference)
    }

    init(stepsPerSecond: Double, sampleSeconds: Double, updateSeconds: Double, steps: Double, threads: Int, cell: String, hiddenSize: Int,
         epochs: Int, episodesPerTrial: Int, iterations: Int, referenceStepsPerSecond: Double?) {
        self.stepsPerSecond = stepsPerSecond
        self.sampleSeconds = sampleSeconds
        self.updateSeconds = updateSeconds
        self.steps = steps
        self.threads = threads
        self.cell = cell
        self.hiddenSize = hiddenSize
        self.epochs = epochs
        self.episodesPerTrial = episodesPerTrial
        self.iterations = iterations
        self.referenceStepsPerSecond = referenceStepsPerSecond
    }

    /// The human-readable report.
    public var table: String {
        let total = sampleSeconds + updateSeconds
        var lines = [String(format: "RL² %@-%d PPO %d epochs, %d steps per update, bandits k=5 n=%d, %d thread%@: %.0f steps/s (sampling %.1f s = %.0f%%, update %.1f s = %.0f%%, %d steps)",
                            cell.uppercased(), hiddenSize, epochs, Int(steps) / iterations, episodesPerTrial, threads, threads == 1 ? "" : "s",
                            stepsPerSecond, sampleSeconds, 100 * sampleSeconds / total, updateSeconds, 100 * updateSeconds / total, Int(steps))]
        if let referenceStepsPerSecond {
            lines.append(String(format: "pytorch_rl2 (same settings, one thread, same OpenBLAS kernels): %.0f steps/s; ratio %.1f×",
                                referenceStepsPerSecond, stepsPerSecond / referenceStepsPerSecond))
        }
        return lines.joined(separator: "\n")
    }
}

/// `metarl bench maml`: seconds per MAML-TRPO meta-iteration on point-nav at the MAML
/// paper's settings (20 tasks × 20 episodes, one inner step, 10 CG steps).
public struct MAMLSpeedBenchmark: Encodable, Sendable {
    public var wall: [Double]
    public var sample: [Double]
    public var update: [Double]
    public var threads: Int
    /// pytorch-maml-rl's seconds per meta-iteration in the same session, when timed.
    public var reference: [Double]?

    /// A median leaving out the first iteration, which warms up.
    static func median(_ xs: [Double]) -> Double { Timing.medianOf(Array(xs.dropFirst())) }

    enum CodingKeys: String, CodingKey {
        case seconds = "seconds_per_iteration", sample = "sample_seconds", update = "update_seconds", iterations, threads
        case reference = "pytorch_maml_rl_seconds_per_iteration", ratio
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.median(wall), forKey: .seconds)
        try c.encode(Self.median(sample), forKey: .sample)
        try c.encode(Self.median(update), forKey: .update)
        try c.encode(Double(wall.count), forKey: .iterations)
        try c.encode(Double(threads), forKey: .threads)
        if let reference {
            try c.encode(Self.median(reference), forKey: .reference)
            try c.encode(Self.median(reference) / Self.median(wall), forKey: .ratio)
        }
    }

    /// Times `iterations` meta-iterations; with `pytorchMAMLRL`, a checkout of
    /// tristandeleu/pytorch-maml-rl, times it too (one torch thread, same iterations).
    public static func run(iterations: Int, threads: Int, pytorchMAMLRL: String?, python: String) throws -> MAMLSpeedBenchmark {
        var maml = try MAML(config: MAMLConfig(), prototype: PointNavigation(), seed: 1)
        maml.threads = threads
        var result = MAMLSpeedBenchmark(wall: [], sample: [], update: [], threads: threads, reference: nil)
        for _ in 0..<iterations {
            let start = Date()
            let m = Dictionary(try maml.iterate(), uniquingKeysWith: { a, _ in a })
            result.wall.append(Date().timeIntervalSince(start))
            result.sample.append(m["sample_seconds"]!)
            result.update.append(m["update_seconds"]!)
        }
        if let pytorchMAMLRL {
            // It prints a line per meta-iteration (tens of seconds each): ten silent minutes is a stall.
            let lines = try ReferenceScript.run("pytorch_maml_rl_run.py", python: python, arguments: [
                "--checkout", pytorchMAMLRL, "--iterations", "\(iterations)", "--seed", "1", "--threads", "1"], stallTimeout: 600)
            let seconds = lines.compactMap { ($0["seconds"] as? NSNumber)?.doubleValue }
            guard seconds.count == iterations else {
                throw ReferenceScript.Failure("pytorch_maml_rl_run.py reported \(seconds.count) of \(iterations) iterations; run it by hand to see why")
            }
            result.reference = seconds
        }
        return result
    }

    /// The human-readable report.
    public var table: String {
        var lines = [String(format: "MAML-TRPO point-nav, 20 tasks × 20 episodes, %d thread%@: median %.3f s per meta-iteration (sampling %.3f s, outer step %.3f s; %d iterations, the first left out; min %.3f, max %.3f)",
                            threads, threads == 1 ? "" : "s", Self.median(wall), Self.median(sample), Self.median(update), wall.count,
                            wall.dropFirst().min() ?? .nan, wall.dropFirst().max() ?? .nan)]
        if let reference {
            lines.append(String(format: "pytorch-maml-rl (same settings, one torch thread plus its sampler process, same OpenBLAS kernels): median %.3f s; ratio %.1f×",
                                Self.median(reference), Self.median(reference) / Self.median(wall)))
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
    public static func run(_ name: String, python: String, arguments: [String], timeout: Double = 3600,
                           stallTimeout: Double? = nil, in folder: URL = folder) throws -> [[String: Any]] {
        let script = folder.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: script.path) else { throw Failure("\(script.path) not found") }
        let process = Process()
        // Foundation starts the child as the leader of a process group of its own (pgid = pid),
        // so its workers can be killed with it.
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = BLASLibrary.shared.coreName
        environment["OPENBLAS_NUM_THREADS"] = "1"
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
