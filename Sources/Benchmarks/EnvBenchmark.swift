import Envs
import Foundation
import Locomotion
import TensorCore

/// The environment benchmark of `metarl bench envs`: steps per second of every task
/// family through `VectorEnv` on one core, with a trivial policy (a fixed table of
/// random actions cycled through), tasks sampled per copy, auto-reset included.
public struct EnvBenchmark: Codable, Sendable {
    /// One family's measurement.
    public struct Row: Codable, Sendable {
        public var family: String
        public var copies: Int
        /// Median environment steps per second (steps of all copies counted).
        public var steps_per_second: Double
        /// The issue's target, where it sets one.
        public var target: Double?
    }

    public var rows: [Row]

    /// The targets the issues set, by family.
    static let targets: [String: Double] = ["bandit": 50e6, "tabular-mdp": 50e6, "point-nav": 20e6]

    /// Measures every family of `families` with its default arguments, `copies` copies each.
    public static func run(copies: Int = 256, quick: Bool = false, families: TaskFamilyRegistry = .builtIn) throws -> EnvBenchmark {
        var rows: [Row] = []
        for family in families.families {
            let spec = EnvSpec(family: family, arguments: try family.resolve([]))
            let measurement = Measurement(copies: copies, quick: quick)
            // The built-in families are measured on their concrete types, specialised here as
            // code stepping `VectorEnv<MyEnv>` is in any module (VectorEnv and the families'
            // steps are @inlinable); any other family through the registry's generic path.
            let made = try family.makeEnvironment(spec.arguments)
            if made is LocomotionEnv { continue }  // their own rows: `--mujoco` (MuJoCoBenchmark)
            let rate: Double
            if let env = made as? BernoulliBandit { rate = try measurement.run(env) }
            else if let env = made as? TabularMDP { rate = try measurement.run(env) }
            else if let env = made as? GridWorld { rate = try measurement.run(env) }
            else if let env = made as? Harlow { rate = try measurement.run(env) }
            else if let env = made as? PointNavigation { rate = try measurement.run(env) }
            else if let env = made as? PendulumMass { rate = try measurement.run(env) }
            else if let env = made as? CartPolePhysics { rate = try measurement.run(env) }
            else { rate = try spec.open(measurement) }
            rows.append(Row(family: family.name, copies: copies, steps_per_second: rate, target: targets[family.name]))
        }
        return EnvBenchmark(rows: rows)
    }

    struct Measurement: MetaEnvConsumer {
        var copies: Int
        var quick: Bool

        /// Rows of random actions per copy in ``actionTable(_:copies:)``, cycled through.
        static let tableSize = 16

        /// `tableSize` rows of random actions of `space` for each of `copies` copies, from a fixed seed.
        static func actionTable(_ space: Space, copies: Int) -> [Float] {
            var rng = Xoshiro256(seed: 2)
            let m = space.flatSize
            var table = [Float](repeating: 0, count: tableSize * copies * m)
            for i in 0..<table.count {
                switch space {
                case .discrete(let n): table[i] = Float(rng.uniformInt(below: n))
                case .box(let low, let high, _): let j = i % m; table[i] = low[j] + (high[j] - low[j]) * rng.uniformFloat()
                }
            }
            return table
        }

        /// `copies` copies of `prototype`, each on a task of its own, reset: what the rows step.
        static func vector<E: MetaEnv>(_ prototype: E, copies: Int) -> VectorEnv<E> {
            var vec = VectorEnv(prototype, count: copies, seed: 1)
            for i in 0..<copies { vec.setTask(vec.sampleTask(at: i), at: i) }
            vec.resetAll()
            return vec
        }

        /// Steps `vec` with successive rows of `table` (``actionTable(_:copies:)``) for about
        /// `seconds`; environment steps per second, all copies counted.
        static func timedRate<E: MetaEnv>(_ vec: inout VectorEnv<E>, table: [Float], seconds: Double) throws -> Double {
            let copies = vec.count, m = vec.actionSize
            var k = 0, steps = 0
            let start = Timing.now()
            try table.withUnsafeBufferPointer { t in
                repeat {
                    try vec.step(UnsafeBufferPointer(rebasing: t[(k * copies * m)..<((k + 1) * copies * m)]))
                    k = (k + 1) % tableSize
                    steps += copies
                } while Timing.now() - start < seconds
            }
            return Double(steps) / (Timing.now() - start)
        }

        func run<E: MetaEnv>(_ prototype: E) throws -> Double {
            var vec = Self.vector(prototype, copies: copies)
            let m = vec.actionSize, tableSize = Self.tableSize
            let table = Self.actionTable(prototype.actionSpace, copies: copies)
            let stepsPerSample = quick ? 20 : 400
            var k = 0
            let seconds = try table.withUnsafeBufferPointer { t in
                try Timing.medianThrowing(samples: quick ? 3 : 9, warmup: 1) {
                    for _ in 0..<stepsPerSample {
                        try vec.step(UnsafeBufferPointer(rebasing: t[(k * copies * m)..<((k + 1) * copies * m)]))
                        k = (k + 1) & (tableSize - 1)
                    }
                }
            }
            return Double(stepsPerSample * copies) / seconds
        }
    }

    /// A table with one line per family.
    public var table: String {
        var lines = ["family             copies    steps/s   target"]
        for r in rows {
            let rate = String(format: "%9.1fM", r.steps_per_second / 1e6)
            let target = r.target.map { String(format: "≥ %.0fM %@", $0 / 1e6, r.steps_per_second >= $0 ? "met" : "MISSED") } ?? "—"
            lines.append(r.family.padding(toLength: 18, withPad: " ", startingAt: 0) + String(format: " %6d ", r.copies) + rate + "   " + target)
        }
        lines.append("one core, release build, VectorEnv with auto-reset, random actions from a fixed table (MuJoCo families: --mujoco)")
        return lines.joined(separator: "\n")
    }
}
