import ArgumentParser
import Baselines
import Envs
import Foundation
import Runs

/// `metarl baseline`: a classic bandit or tabular-MDP strategy on fresh tasks of any family
/// that offers what it needs (``BernoulliArms``, ``TabularMDPEnv``).
struct Baseline: CatalogCommand {
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

    func run(catalog: Catalog) throws {
        guard let policy = BaselinePolicy(rawValue: self.policy) else {
            throw fail("unknown policy '\(self.policy)'; valid: \(BaselinePolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard episodesPerTrial >= 1 else { throw fail("--episodes-per-trial must be at least 1 (got \(episodesPerTrial))") }
        guard trials >= 2 else { throw fail("--trials must be at least 2 (got \(trials))") }
        try reportingErrors {
            let spec = try catalog.families.spec(env, arguments: envArgs)
            let kind = try BaselineKind.of(spec)
            guard let sweep else {
                let arguments = try resolvePolicyArguments(policy, on: kind, policyArgs)
                report(policy, try runBaseline(policy, arguments: arguments, spec: spec, episodes: episodesPerTrial, trials: trials, seed: seed),
                       extra: "")
                return
            }
            let parts = sweep.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[1].isEmpty else { throw RunError("--sweep '\(sweep)' is not of the form key=v1,v2,…") }
            var rows: [(String, TrialStatistics)] = []
            for value in parts[1].split(separator: ",") {
                let arguments = try resolvePolicyArguments(policy, on: kind, policyArgs + ["\(parts[0])=\(value)"])
                let stats = try runBaseline(policy, arguments: arguments, spec: spec, episodes: episodesPerTrial, trials: trials, seed: seed)
                rows.append((String(value), stats))
                report(policy, stats, extra: "\(parts[0])=\(value)")
            }
            if !json, let best = rows.max(by: { $0.1.meanReturn < $1.1.meanReturn }) {
                print("best: \(parts[0])=\(best.0) (mean return \(String(format: "%.3f", best.1.meanReturn)))")
            }
        }
    }

    func report(_ policy: BaselinePolicy, _ stats: TrialStatistics, extra: String) {
        if json {
            print(#"{"mean_return":\#(stats.meanReturn),"stderr":\#(stats.standardError),"trials":\#(stats.trials),"policy":"\#(policy.rawValue)","env":"\#(env)","episodes_per_trial":\#(episodesPerTrial),"seed":\#(seed)\#(extra.isEmpty ? "" : #","setting":"\#(extra)""#)\#(stats.exactExpectation.map { #","exact_expectation":\#($0)"# } ?? "")\#(stats.distinctActions.map { #","distinct_actions":\#($0),"distinct_actions_stderr":\#(stats.distinctActionsStderr ?? 0)"# } ?? "")}"#)
        } else {
            print(String(format: "%@%@ on %@, %d episodes per trial, %d trials: mean return %.3f ± %.3f (s.e.)",
                         policy.rawValue, extra.isEmpty ? "" : " " + extra, env, episodesPerTrial, stats.trials, stats.meanReturn, stats.standardError)
                  + (stats.exactExpectation.map { String(format: "; exact expectation over the prior %.4f", $0) } ?? "")
                  + (stats.distinctActions.map { String(format: "; arms pulled per trial %.2f ± %.2f", $0, stats.distinctActionsStderr ?? 0) } ?? ""))
        }
    }
}
