import Envs
import Foundation
import Locomotion
import TensorCore

/// The MuJoCo rows of `metarl bench envs --mujoco`: every locomotion family stepped through
/// `VectorEnv` (random actions, auto-reset, rewards and observations computed), against bare
/// `mj_step` calls in C on the same model in the same rounds, per core and on every core; and,
/// given a Python with gymnasium and mujoco, against Gymnasium's own env in a Python loop.
public struct MuJoCoBenchmark: Codable, Sendable {
    /// One family's measurement; rates are environment steps (frame-skip `mj_step`s each) per second.
    public struct Row: Codable, Sendable {
        public var family: String
        public var copies: Int
        /// `mj_step`s per environment step.
        public var frameSkip: Int
        /// Median over rounds, one core.
        public var stepsPerSecond: Double
        /// Bare `mj_step` × frame skip in C from the same states with the same controls, median over the same rounds, one core.
        public var rawStepsPerSecond: Double
        /// Median of the per-round ratios family / raw (the target is ≥ 0.9).
        public var ratioToRaw: Double
        /// Every core at once, one VectorEnv per core.
        public var allCoresStepsPerSecond: Double
        public var cores: Int
        /// Gymnasium's env in a Python loop (one process), when measured, and our one-core rate over it.
        public var gymnasiumStepsPerSecond: Double?
        public var ratioToGymnasium: Double?
    }

    public var rows: [Row]
    public var mujocoVersion: String

    /// Gymnasium's envs the single-task families reproduce.
    static let gymnasiumIDs = ["half-cheetah": "HalfCheetah-v5", "ant": "Ant-v5", "hopper": "Hopper-v5", "walker": "Walker2d-v5"]

    /// Measures every family of `LocomotionFamilies.all` with its default arguments.
    /// `gymnasiumPython`: an interpreter with gymnasium and mujoco for the Gymnasium rows.
    public static func run(copies: Int = 16, rounds: Int = 9, quick: Bool = false, gymnasiumPython: String? = nil) throws -> MuJoCoBenchmark {
        let seconds = quick ? 0.05 : 0.25, rounds = quick ? 2 : rounds
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        var rows: [Row] = []
        for family in LocomotionFamilies.all {
            guard let env = try family.makeEnvironment(try family.resolve([])) as? LocomotionEnv else { continue }
            var vec = EnvBenchmark.Measurement.vector(env, copies: copies)
            let table = EnvBenchmark.Measurement.actionTable(env.actionSpace, copies: copies)
            var ours: [Double] = [], bare: [Double] = []
            for round in 0...rounds {
                let rate = try EnvBenchmark.Measurement.timedRate(&vec, table: table, seconds: seconds)
                // The same states and controls, advanced by bare mj_step calls in C.
                let simulations = vec.envs.map { $0.state.copy() }
                let environmentSteps = max(10, Int(rate * seconds) / copies)
                let rawRate = Double(environmentSteps * copies)
                    / MuJoCoSimulation.rawStepSeconds(simulations, controls: table, frames: env.preset.frameSkip, environmentSteps: environmentSteps)
                guard round > 0 else { continue }
                ours.append(rate)
                bare.append(rawRate)
            }
            let allCores = try allCoresRate(env, copies: copies, table: table, cores: cores, seconds: quick ? 0.1 : 1)
            var row = Row(family: family.name, copies: copies, frameSkip: env.preset.frameSkip, stepsPerSecond: Timing.medianOf(ours),
                          rawStepsPerSecond: Timing.medianOf(bare), ratioToRaw: Timing.medianOf(zip(ours, bare).map { $0 / $1 }),
                          allCoresStepsPerSecond: allCores, cores: cores)
            if let python = gymnasiumPython, let id = gymnasiumIDs[family.name] {
                let lines = try ReferenceScript.run("gymnasium_mujoco_speed.py", python: python,
                                                    arguments: ["--env", id, "--seconds", quick ? "0.2" : "1"], timeout: 600, stallTimeout: 120)
                guard let rate = (lines.last?["steps_per_second"] as? NSNumber)?.doubleValue else {
                    throw ReferenceScript.Failure("gymnasium_mujoco_speed.py printed no rate; run it by hand to see why")
                }
                row.gymnasiumStepsPerSecond = rate
                row.ratioToGymnasium = row.stepsPerSecond / rate
            }
            rows.append(row)
        }
        return MuJoCoBenchmark(rows: rows, mujocoVersion: MuJoCoModel.libraryVersion)
    }

    /// One VectorEnv per core stepped at once; their summed rate.
    static func allCoresRate(_ env: LocomotionEnv, copies: Int, table: [Float], cores: Int, seconds: Double) throws -> Double {
        let rates = try concurrentMap(cores, threads: cores) { _ -> Double in
            var vec = EnvBenchmark.Measurement.vector(env, copies: copies)
            _ = try EnvBenchmark.Measurement.timedRate(&vec, table: table, seconds: 0.05)
            return try EnvBenchmark.Measurement.timedRate(&vec, table: table, seconds: seconds)
        }
        return rates.reduce(0, +)
    }

    /// One line per family.
    public var table: String {
        var lines = ["MuJoCo \(mujocoVersion) families: env steps/s (an env step is `frame skip` mj_steps), VectorEnv of \(rows.first?.copies ?? 0) copies, random actions",
                     "family               skip   one core   raw mj_step   ratio (≥ 0.9)   all \(rows.first?.cores ?? 1) cores   Gymnasium (Python)   ratio"]
        for r in rows {
            var line = r.family.padding(toLength: 19, withPad: " ", startingAt: 0)
                + String(format: " %5d %8.1fk   %9.1fk   %5.2f %@   %10.1fk", r.frameSkip, r.stepsPerSecond / 1e3, r.rawStepsPerSecond / 1e3,
                         r.ratioToRaw, r.ratioToRaw >= 0.9 ? "met   " : "MISSED", r.allCoresStepsPerSecond / 1e3)
            if let g = r.gymnasiumStepsPerSecond, let ratio = r.ratioToGymnasium {
                line += String(format: "   %14.1fk   %5.1f×", g / 1e3, ratio)
            }
            lines.append(line)
        }
        lines.append("ratio: median of per-round ratios over rounds alternating family and bare mj_step (same model, same thread)")
        return lines.joined(separator: "\n")
    }
}
