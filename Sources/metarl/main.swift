import ArgumentParser
import Baselines
import Benchmarks
import Envs
import Foundation
import TensorCore

/// The `metarl` command line: parse, call the library, print.
@main
struct MetaRLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metarl",
        abstract: "Meta-reinforcement learning: RL², MAML and relatives, PEARL.",
        subcommands: [Bench.self, Envs.self, Baseline.self])
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of parts of the system (build with -c release).",
        subcommands: [Engine.self, EnvSteps.self])

    struct Engine: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tensor engine: MLP and GRU forward+backward, BLAS matmul, Hessian-vector product.")

        @Flag(help: "Print one JSON object instead of a table.") var json = false
        @Flag(help: "Fewer repetitions (a smoke test, not a measurement).") var quick = false

        func run() throws {
            let result = EngineBenchmark.run(quick: quick)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } else {
                print(result.table)
            }
        }
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
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } else {
                print(result.table)
            }
        }
    }
}

/// Prints a one-line error and exits non-zero (user input problems, never a trap).
func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
    return ExitCode(2)
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
