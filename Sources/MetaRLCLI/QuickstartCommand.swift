import ArgumentParser
import Baselines
import Envs
import Foundation
import MetaRL
import RL
import Runs

/// `metarl quickstart`: train a small RL² agent on bandits and print it beside the classic baselines.
struct Quickstart: CatalogCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a small RL² agent on Bernoulli bandits (k = 5, n = 10) and print it beside the classic baselines.")

    @Option(help: "Run directory (replaced if it holds an earlier quickstart).") var out: String = "runs/quickstart"
    @Option(help: "Training iterations (1000 trials each).") var iterations: Int = RL2Config.quickstart.iterations
    @Option(help: "Evaluation trials per row of the table.") var trials: Int = 10_000
    @Option(help: "Random seed.") var seed: UInt64 = 1

    func run(catalog: Catalog) throws {
        try reportingErrors {
            let rl2 = try catalog.algorithms.algorithm(named: RL2Algorithm().name)
            let spec = try catalog.families.spec(BernoulliBandit.family.name, arguments: ["arms=5"])
            let directory = RunDirectory(URL(fileURLWithPath: out))
            if let manifest = try? directory.manifest(), manifest.algorithm == rl2.name {
                try FileManager.default.removeItem(at: directory.url)
            }
            var config = RL2Config.quickstart
            config.iterations = iterations
            let manifest = try RunManifest(algorithm: rl2.name, env: spec, seed: seed, settingsKey: rl2.settingsKey, settings: config)
            try directory.create(manifest: manifest)
            print("Training RL² (GRU-\(config.hiddenSize), PPO) on bandits k = 5, n = 10: \(iterations) iterations of \(config.trialsPerIteration) trials …")
            let start = Date()
            _ = try rl2.train(TrainingRequest(settings: manifest.settings, seed: seed, directory: directory, resume: false,
                                              checkpointEvery: rl2.checkpointEvery, keepCheckpoints: rl2.keepCheckpoints,
                                              threads: rl2.defaultThreads), on: spec)
            let seconds = Date().timeIntervalSince(start)
            // The agent on the tasks the baselines meet (paired), acting with its most probable
            // actions (as the Bayes-optimal strategy does: deterministically) and sampling.
            func evaluate(greedy: Bool) throws -> EvaluationOutput {
                try rl2.evaluate(EvaluationRequest(algorithm: rl2.name, settings: manifest.settings, directory: directory,
                                                   options: .object(["trials": .integer(trials), "baselineTasks": .bool(true),
                                                                     "greedy": .bool(greedy)]),
                                                   seed: seed + 1, threads: rl2.defaultThreads), on: spec)
            }
            let evaluation = try evaluate(greedy: true), sampled = try evaluate(greedy: false).numbers
            let figures = evaluation.numbers
            var rows: [(String, Double, Double)] = [
                ("RL² (this run)", figures["mean_return"] ?? .nan, figures["stderr"] ?? .nan),
                ("RL², sampling its actions", sampled["mean_return"] ?? .nan, sampled["stderr"] ?? .nan),
            ]
            let baselines: [(String, BaselinePolicy)] = [
                ("Bayes-optimal (exact DP)", .bayesOptimal), ("Gittins index", .gittins), ("UCB1", .ucb1),
                ("Optimistic Thompson", .optimisticThompson), ("Thompson sampling", .thompson),
                ("ε-greedy", .epsilonGreedy), ("Greedy", .greedy), ("Random", .random),
            ]
            for (name, policy) in baselines {
                let arguments = try resolvePolicyArguments(policy, on: .bandit, [])
                let stats = try runBaseline(policy, arguments: arguments, spec: spec, episodes: config.episodesPerTrial, trials: trials, seed: seed + 1)
                rows.append((name, stats.meanReturn, stats.standardError))
            }
            print(String(format: "\nBernoulli bandits, k = 5 arms, n = 10 pulls; mean trial return over the same %d fresh tasks (RL² trained in %.0f s)", trials, seconds))
            print("strategy                    return   s.e.")
            for (name, mean, se) in rows {
                print(name.padding(toLength: 26, withPad: " ", startingAt: 0) + String(format: "%8.3f  %5.3f", mean, se))
            }
            print("RL² acts with its most probable action; it and every strategy ran on the same tasks (`metarl eval --greedy --baseline-tasks`).")
            print("RL² by pull: " + evaluation.adaptation.values.map { String(format: "%.3f", $0) }.joined(separator: " "))
            print("run directory: \(directory.url.path) (try `metarl eval \(out)`)")
        }
    }
}
