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
        subcommands: [Engine.self])

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
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        guard let policy = BaselinePolicy(rawValue: self.policy) else {
            throw fail("unknown policy '\(self.policy)'; valid: \(BaselinePolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard episodesPerTrial >= 1 else { throw fail("--episodes-per-trial must be at least 1 (got \(episodesPerTrial))") }
        guard trials >= 2 else { throw fail("--trials must be at least 2 (got \(trials))") }
        let stats: TrialStatistics
        do {
            let spec = try EnvSpec(family: env, arguments: envArgs)
            let arguments = try resolvePolicyArguments(policy, policyArgs)
            stats = try runBanditBaseline(policy, arguments: arguments, spec: spec, pulls: episodesPerTrial, trials: trials, seed: seed)
        } catch {
            throw fail("\(error)")
        }
        if json {
            print(#"{"mean_return":\#(stats.meanReturn),"stderr":\#(stats.standardError),"trials":\#(stats.trials),"policy":"\#(policy.rawValue)","env":"\#(env)","episodes_per_trial":\#(episodesPerTrial),"seed":\#(seed)}"#)
        } else {
            print(String(format: "%@ on %@, %d episodes per trial, %d trials: mean return %.3f ± %.3f (s.e.)",
                         policy.rawValue, env, episodesPerTrial, stats.trials, stats.meanReturn, stats.standardError))
        }
    }
}
