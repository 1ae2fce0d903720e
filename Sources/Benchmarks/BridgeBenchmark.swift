import Envs
import Foundation
import GymBridge

/// The Gymnasium-bridge rows of `metarl bench envs --bridge`: a Python task family stepped
/// through the bridge (`VectorEnv<GymEnv>`, random actions, auto-reset), against the same env
/// in a plain Python loop and in Gymnasium's `AsyncVectorEnv` with as many processes, in one run.
/// The bridge and the plain loop alternate in rounds of a quarter second each, the plain loop run by
/// the bridge's own worker processes on the copies they hold (every worker at once), so both
/// see the same processes, envs and machine load; rates are medians over rounds, the ratio the
/// median of the rounds' ratios. `AsyncVectorEnv` runs afterwards (`Benchmarks/gym_bridge_speed.py`).
public struct BridgeBenchmark: Codable, Sendable {
    /// The family measured (`gym:FILE:ATTR`).
    public var family: String
    /// Copies through the bridge, spread over `workers` worker processes.
    public var copies: Int
    public var workers: Int
    /// Rounds of alternation (bridge, then plain loop).
    public var rounds: Int
    /// Median steps/s of all copies through the bridge.
    public var bridgeStepsPerSecond: Double
    /// Steps/s of one worker process stepping its copies in a plain loop while every worker
    /// does so (the mean over workers; median over rounds).
    public var plainStepsPerSecond: Double
    /// Steps/s of `AsyncVectorEnv` with `workers` processes (one env each, as it is built).
    public var asyncVectorStepsPerSecond: Double
    /// Each round's bridge rate per worker over that round's plain-loop rate.
    public var perProcessRatios: [Double]

    enum CodingKeys: String, CodingKey {
        case family, copies, workers, rounds
        case bridgeStepsPerSecond = "bridge_steps_per_second", plainStepsPerSecond = "plain_steps_per_second"
        case asyncVectorStepsPerSecond = "async_vector_steps_per_second", perProcessRatios = "per_process_ratios"
    }

    /// The bridge's rate per worker process over the plain loop's rate of one process (target ≥ 0.9),
    /// the median of the rounds' ratios.
    public var perProcessRatio: Double { Timing.medianOf(perProcessRatios) }
    /// Microseconds the bridge adds to a step of one process (per-process step time minus the plain loop's).
    public var overheadMicroseconds: Double { 1e6 * (Double(workers) / bridgeStepsPerSecond - 1 / plainStepsPerSecond) }

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
        var bridge: [Double] = [], plain: [Double] = []
        for round in 0...(quick ? 1 : max(1, rounds)) {
            let rate = try EnvBenchmark.Measurement.timedRate(&vec, table: table, seconds: seconds)
            let perWorker = try GymEnv.plainLoopRates(of: vec.envs, seconds: seconds)
            guard round > 0 else { continue }  // round 0 warms both up
            bridge.append(rate)
            plain.append(perWorker.reduce(0, +) / Double(perWorker.count))
        }
        let lines = try ReferenceScript.run("gym_bridge_speed.py", python: try options.interpreter(), arguments: [
            "--module", path, "--attr", attribute, "--processes", "\(options.workers)", "--seconds", quick ? "0.5" : "3"],
            timeout: 600, stallTimeout: 120)
        guard let async = (lines.last?["async"] as? NSNumber)?.doubleValue else {
            throw ReferenceScript.Failure("gym_bridge_speed.py printed no rate; run it by hand to see why")
        }
        return BridgeBenchmark(family: family.name, copies: copies, workers: options.workers, rounds: bridge.count,
                               bridgeStepsPerSecond: Timing.medianOf(bridge), plainStepsPerSecond: Timing.medianOf(plain),
                               asyncVectorStepsPerSecond: async,
                               perProcessRatios: zip(bridge, plain).map { $0 / Double(options.workers) / $1 })
    }

    /// The three rows and the ratios.
    public var table: String {
        let perCopy = copies / workers
        return [
            "Gymnasium bridge: \(family)",
            String(format: "  bridge, %d copies over %d worker processes     %9.1fk steps/s  (%.1fk per process)", copies, workers,
                   bridgeStepsPerSecond / 1e3, bridgeStepsPerSecond / Double(workers) / 1e3),
            String(format: "  plain Python loop, %d processes × %d copies     %9.1fk steps/s  (%.1fk per process)", workers, perCopy,
                   plainStepsPerSecond * Double(workers) / 1e3, plainStepsPerSecond / 1e3),
            String(format: "  gymnasium AsyncVectorEnv, %d processes          %9.1fk steps/s", workers, asyncVectorStepsPerSecond / 1e3),
            String(format: "  per process: bridge / plain loop %.2f× (target ≥ 0.9: %@); bridge / AsyncVectorEnv %.1f×; overhead %.1f µs per step",
                   perProcessRatio, perProcessRatio >= 0.9 ? "met" : "MISSED", bridgeStepsPerSecond / asyncVectorStepsPerSecond, overheadMicroseconds),
            "  medians of \(rounds) alternating rounds (bridge, then plain loop in the same workers); per-round ratios: " + perProcessRatios.map { String(format: "%.2f", $0) }.joined(separator: " "),
        ].joined(separator: "\n")
    }
}
