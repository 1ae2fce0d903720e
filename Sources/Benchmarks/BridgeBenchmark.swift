import Envs
import Foundation
import GymBridge

/// The Gymnasium-bridge rows of `metarl bench envs --bridge`: a Python task family stepped
/// through the bridge (`VectorEnv<GymEnv>`, random actions, auto-reset), against the same env
/// in a plain Python loop and in Gymnasium's `AsyncVectorEnv` with as many processes, in one run.
/// The bridge runs two ways: in lockstep (`VectorEnv.step(_:)`, every copy each round, as the
/// SAC and PEARL samplers step) and in two halves that take turns
/// (`VectorEnv.startStep(_:copies:)`: one half steps while the caller handles the other, as
/// the MAML, Reptile and RL² samplers step), so the workers always have a step queued.
/// The three alternate in rounds of a quarter second each, the plain loop run by
/// the bridge's own worker processes on the copies they hold (every worker at once), so all
/// see the same processes, envs and machine load; rates are medians over rounds, the ratios the
/// medians of the rounds' ratios. `AsyncVectorEnv` runs afterwards (`Benchmarks/gym_bridge_speed.py`).
public struct BridgeBenchmark: Codable, Sendable {
    /// The family measured (`gym:FILE:ATTR`).
    public var family: String
    /// Copies through the bridge, spread over `workers` worker processes.
    public var copies: Int
    public var workers: Int
    /// Rounds of alternation (bridge, then plain loop).
    public var rounds: Int
    /// Median steps/s of all copies through the bridge, in lockstep.
    public var bridgeStepsPerSecond: Double
    /// Median steps/s of all copies through the bridge in two halves taking turns.
    public var pipelinedStepsPerSecond: Double
    /// Steps/s of one worker process stepping its copies in a plain loop while every worker
    /// does so (the mean over workers; median over rounds).
    public var plainStepsPerSecond: Double
    /// Steps/s of `AsyncVectorEnv` with `workers` processes (one env each, as it is built).
    public var asyncVectorStepsPerSecond: Double
    /// Each round's lockstep bridge rate per worker over that round's plain-loop rate.
    public var perProcessRatios: [Double]
    /// Each round's rate in halves per worker over that round's plain-loop rate.
    public var pipelinedRatios: [Double]
    /// Each round's slowest worker's plain-loop rate over the workers' mean: the most a bridge
    /// that gives every worker the same copies can reach per process, whatever its overhead.
    public var slowestWorkerShares: [Double]

    enum CodingKeys: String, CodingKey {
        case family, copies, workers, rounds
        case bridgeStepsPerSecond = "bridge_steps_per_second", plainStepsPerSecond = "plain_steps_per_second"
        case asyncVectorStepsPerSecond = "async_vector_steps_per_second", perProcessRatios = "per_process_ratios"
        case pipelinedStepsPerSecond = "pipelined_steps_per_second", pipelinedRatios = "pipelined_ratios"
        case slowestWorkerShares = "slowest_worker_shares"
    }

    /// The lockstep bridge's rate per worker process over the plain loop's rate of one process,
    /// the median of the rounds' ratios.
    public var perProcessRatio: Double { Timing.medianOf(perProcessRatios) }
    /// The same for the bridge in two halves (target ≥ 0.9).
    public var pipelinedRatio: Double { Timing.medianOf(pipelinedRatios) }
    /// Microseconds the bridge adds to a step of one process (per-process step time minus the
    /// plain loop's), in lockstep and in halves.
    public var overheadMicroseconds: (lockstep: Double, pipelined: Double) {
        (1e6 * (Double(workers) / bridgeStepsPerSecond - 1 / plainStepsPerSecond),
         1e6 * (Double(workers) / pipelinedStepsPerSecond - 1 / plainStepsPerSecond))
    }

    /// Measures `Benchmarks/pendulum_mass_env.py:PendulumMassEnv` (or `file`:`attribute`) in
    /// `rounds` alternating rounds after one of warm-up (one short round when `quick`).
    public static func run(copies: Int = 64, options: GymBridgeOptions = .fromEnvironment(), quick: Bool = false, rounds: Int = 21,
                           file: String? = nil, attribute: String = "PendulumMassEnv") throws -> BridgeBenchmark {
        let path = file ?? ReferenceScript.folder.appendingPathComponent("pendulum_mass_env.py").path
        let family = try GymFamilies.provider(options).family(named: "gym:\(path):\(attribute)")
        guard let prototype = try family.makeEnvironment(try family.resolve([])) as? GymEnv else {
            throw ReferenceScript.Failure("\(family.name) is not stepped through the bridge")
        }
        var vec = EnvBenchmark.Measurement.vector(prototype, copies: copies)
        let table = EnvBenchmark.Measurement.actionTable(prototype.actionSpace, copies: copies)
        let seconds = quick ? 0.1 : 0.25
        var bridge: [Double] = [], halves: [Double] = [], plain: [Double] = [], slowest: [Double] = []
        for round in 0...(quick ? 1 : max(1, rounds)) {
            let rate = try EnvBenchmark.Measurement.timedRate(&vec, table: table, seconds: seconds)
            let pipelined = try pipelinedRate(&vec, table: table, seconds: seconds)
            let perWorker = try GymEnv.plainLoopRates(of: vec.envs, seconds: seconds)
            guard round > 0 else { continue }  // round 0 warms all three up
            bridge.append(rate)
            halves.append(pipelined)
            plain.append(perWorker.reduce(0, +) / Double(perWorker.count))
            slowest.append(perWorker.min()! / plain.last!)
        }
        let lines = try ReferenceScript.run("gym_bridge_speed.py", python: try options.interpreter(), arguments: [
            "--module", path, "--attr", attribute, "--processes", "\(options.workers)", "--seconds", quick ? "0.5" : "3"],
            timeout: 600, stallTimeout: 120)
        guard let async = (lines.last?["async"] as? NSNumber)?.doubleValue else {
            throw ReferenceScript.Failure("gym_bridge_speed.py printed no rate; run it by hand to see why")
        }
        let w = Double(options.workers)
        return BridgeBenchmark(family: family.name, copies: copies, workers: options.workers, rounds: bridge.count,
                               bridgeStepsPerSecond: Timing.medianOf(bridge), pipelinedStepsPerSecond: Timing.medianOf(halves),
                               plainStepsPerSecond: Timing.medianOf(plain), asyncVectorStepsPerSecond: async,
                               perProcessRatios: zip(bridge, plain).map { $0 / w / $1 },
                               pipelinedRatios: zip(halves, plain).map { $0 / w / $1 }, slowestWorkerShares: slowest)
    }

    /// Steps/s of `vec`'s copies in two halves taking turns for `seconds`: each half's step is
    /// started, and while it runs the other half's is finished and started again (actions from
    /// `table`); every step started is finished and counted before the clock stops.
    static func pipelinedRate<E: MetaEnv>(_ vec: inout VectorEnv<E>, table: [Float], seconds: Double) throws -> Double {
        let copies = vec.count, m = vec.actionSize, tableSize = EnvBenchmark.Measurement.tableSize
        let halves = [0..<(copies / 2), (copies / 2)..<copies]
        var k = 0, steps = 0
        let start = Timing.now()
        try table.withUnsafeBufferPointer { t in
            func begin(_ half: Range<Int>) throws(EnvError) {
                let row = k * copies * m
                try vec.startStep(UnsafeBufferPointer(rebasing: t[(row + half.lowerBound * m)..<(row + half.upperBound * m)]), copies: half)
            }
            for half in halves { try begin(half) }
            repeat {
                for half in halves {
                    try vec.finishStep(copies: half)
                    steps += half.count
                    try begin(half)
                }
                k = (k + 1) % tableSize
            } while Timing.now() - start < seconds
            // The last steps started are finished inside the timed span, so they count too.
            for half in halves {
                try vec.finishStep(copies: half)
                steps += half.count
            }
        }
        return Double(steps) / (Timing.now() - start)
    }

    /// The three rows and the ratios.
    public var table: String {
        let perCopy = copies / workers
        return [
            "Gymnasium bridge: \(family)",
            String(format: "  bridge in lockstep, %d copies over %d workers  %9.1fk steps/s  (%.1fk per process)", copies, workers,
                   bridgeStepsPerSecond / 1e3, bridgeStepsPerSecond / Double(workers) / 1e3),
            String(format: "  bridge in two halves taking turns            %9.1fk steps/s  (%.1fk per process)",
                   pipelinedStepsPerSecond / 1e3, pipelinedStepsPerSecond / Double(workers) / 1e3),
            String(format: "  plain Python loop, %d processes × %d copies     %9.1fk steps/s  (%.1fk per process)", workers, perCopy,
                   plainStepsPerSecond * Double(workers) / 1e3, plainStepsPerSecond / 1e3),
            String(format: "  gymnasium AsyncVectorEnv, %d processes          %9.1fk steps/s", workers, asyncVectorStepsPerSecond / 1e3),
            String(format: "  per process, halves / plain loop %.2f× (target ≥ 0.9: %@), lockstep / plain loop %.2f×; halves / AsyncVectorEnv %.1f×",
                   pipelinedRatio, pipelinedRatio >= 0.9 ? "met" : "MISSED", perProcessRatio, pipelinedStepsPerSecond / asyncVectorStepsPerSecond),
            String(format: "  overhead per step of one process: %.1f µs in halves, %.1f µs in lockstep", overheadMicroseconds.pipelined, overheadMicroseconds.lockstep),
            String(format: "  in the plain loop the slowest worker ran at %.2f of the workers' mean (median over rounds): the bound of an equal split", Timing.medianOf(slowestWorkerShares)),
            "  medians of \(rounds) alternating rounds (lockstep, halves, then plain loop in the same workers); per-round ratios in halves: "
                + pipelinedRatios.map { String(format: "%.2f", $0) }.joined(separator: " ") + "; in lockstep: " + perProcessRatios.map { String(format: "%.2f", $0) }.joined(separator: " "),
        ].joined(separator: "\n")
    }
}
