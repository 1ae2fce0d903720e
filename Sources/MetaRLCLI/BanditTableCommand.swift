import ArgumentParser
import Baselines
import Envs
import Foundation
import Runs

/// `metarl bandit-table`: the layout of Table 1 in Duan et al. (2016) — every classic bandit
/// strategy, the exact Bayes-optimal value where its dynamic programme fits, and trained RL²
/// agents, each cell on the same fresh tasks.
struct BanditTable: CatalogCommand {
    static let configuration = CommandConfiguration(
        commandName: "bandit-table",
        abstract: "Bernoulli bandits in the RL² paper's Table 1 layout: the classic strategies and RL² agents on the same tasks per (n, k).")

    @Option(help: "Arm counts k, comma-separated.") var arms: String = "5,10,50"
    @Option(help: "Pulls per trial n, comma-separated.") var pulls: String = "10,100,500"
    @Option(help: "Fresh trials per cell (every strategy and agent of a cell meets the same ones).") var trials: Int = 10_000
    @Option(help: "Random seed of the tasks (the seed `metarl baseline` and `metarl eval --baseline-tasks` take).") var seed: UInt64 = 7
    @Option(name: .customLong("agent"), help: "A run directory trained on `bandit` (repeatable): evaluated in the cell of its k and n; RUN@N puts it in the cell of N pulls instead.")
    var agents: [String] = []
    @Flag(name: .customLong("sample-agents"), help: "Agents sample their actions from the policy, as in training (default: their most probable actions).")
    var sampleAgents = false
    @Option(name: .customLong("policy-arg"), help: "A strategy parameter for every cell, policy.key=value (repeatable), e.g. gittins.discount=0.99.")
    var policyArgs: [String] = []
    @Flag(help: "Print one JSON object per cell.") var json = false

    /// The strategies as the paper's columns run, left to right.
    static let columns: [(title: String, policy: BaselinePolicy)] = [
        ("Random", .random), ("Gittins", .gittins), ("TS", .thompson), ("OTS", .optimisticThompson),
        ("UCB1", .ucb1), ("ε-Greedy", .epsilonGreedy), ("Greedy", .greedy),
    ]

    /// One strategy's or agent's figure in a cell.
    struct Figure: Encodable {
        var name: String
        var mean: Double
        var standardError: Double
        enum CodingKeys: String, CodingKey { case name, mean = "mean_return", standardError = "stderr" }
    }

    /// A cell: n pulls, k arms, every figure, and the exact Bayes-optimal expectation when it was computed.
    struct Cell: Encodable {
        var pulls: Int
        var arms: Int
        var trials: Int
        var seed: UInt64
        var figures: [Figure]
        var bayesOptimal: Double?
        enum CodingKeys: String, CodingKey { case pulls = "n", arms = "k", trials, seed, figures, bayesOptimal = "bayes_optimal_exact" }
    }

    func run(catalog: Catalog) throws {
        try reportingErrors {
            let armCounts = try Self.integers(arms, option: "--arms"), pullCounts = try Self.integers(pulls, option: "--pulls")
            guard trials >= 2 else { throw RunError("--trials must be at least 2 (got \(trials))") }
            let arguments = try Self.columns.map { column in
                try resolvePolicyArguments(column.policy, on: .bandit, policyArgs.compactMap { text in
                    let parts = text.split(separator: ".", maxSplits: 1).map(String.init)
                    guard parts.count == 2, let policy = BaselinePolicy(rawValue: parts[0]) else {
                        throw RunError("--policy-arg '\(text)' is not of the form policy.key=value with a policy among: \(Self.columns.map(\.policy.rawValue).joined(separator: ", "))")
                    }
                    return policy == column.policy ? parts[1] : nil
                })
            }
            let agentFigures = try agents.map { try evaluate(agent: $0, catalog: catalog) }
            var cells: [Cell] = []
            for n in pullCounts {
                for k in armCounts {
                    let spec = try catalog.families.spec(BernoulliBandit.family.name, arguments: ["arms=\(k)"])
                    var figures = try zip(Self.columns, arguments).map { column, arguments in
                        let stats = try runBaseline(column.policy, arguments: arguments, spec: spec, episodes: n, trials: trials, seed: seed)
                        return Figure(name: column.title, mean: stats.meanReturn, standardError: stats.standardError)
                    }
                    figures += agentFigures.filter { $0.arms == k && $0.pulls == n }.map(\.figure)
                    let exact = try? BayesOptimalBandit.expectedReturn(arms: k, pulls: n)
                    let cell = Cell(pulls: n, arms: k, trials: trials, seed: seed, figures: figures, bayesOptimal: exact)
                    if json { try printJSON(cell) } else { print(Self.row(cell)) }
                    cells.append(cell)
                }
            }
            if !json {
                print("mean trial return ± s.e. over \(trials) fresh trials per cell (seed \(seed)); Bayes-optimal is the exact "
                      + "expectation over the prior where the dynamic programme fits; agents "
                      + (sampleAgents ? "sample their actions from the policy" : "act with their most probable actions"))
            }
        }
    }

    /// The comma-separated positive integers of `text`.
    static func integers(_ text: String, option: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw RunError("\(option) '\(text)': expected positive integers separated by commas")
        }
        return values.map { $0! }
    }

    /// `RUN@N` split into the run directory and the pulls it is to be evaluated at (nil: its own).
    static func agentCell(_ text: String) throws -> (path: String, pulls: Int?) {
        guard let at = text.lastIndex(of: "@"), !text[text.index(after: at)...].contains("/") else { return (text, nil) }
        guard let pulls = Int(text[text.index(after: at)...]), pulls >= 1 else {
            throw RunError("--agent '\(text)': expected RUN or RUN@N with N a positive number of pulls")
        }
        return (String(text[..<at]), pulls)
    }

    /// A run directory trained on Bernoulli bandits, evaluated on the table's tasks of its own k
    /// and n (or of `RUN@N`'s n).
    func evaluate(agent text: String, catalog: Catalog) throws -> (arms: Int, pulls: Int, figure: Figure) {
        let (path, pulls) = try Self.agentCell(text)
        let directory = RunDirectory(URL(fileURLWithPath: path))
        let manifest = try directory.manifest()
        let algorithm = try catalog.algorithm(of: manifest, at: path)
        let spec = try manifest.envSpec(in: catalog.families)
        struct Arms: MetaEnvConsumer {
            func run<E: MetaEnv>(_ env: E) throws -> Int? { (env as? any BernoulliArms)?.arms }
        }
        guard let k = try spec.open(Arms()) else {
            throw RunError("--agent \(path): trained on \(spec.label), not on Bernoulli bandits")
        }
        let output = try algorithm.evaluate(
            EvaluationRequest(algorithm: manifest.algorithm, settings: manifest.settings, directory: directory,
                              options: .object(["trials": .integer(trials), "baselineTasks": .bool(true), "greedy": .bool(!sampleAgents),
                                                "episodesPerTrial": .integer(pulls ?? 0)]),
                              seed: seed, threads: algorithm.defaultThreads, notes: printNote),
            on: spec)
        let numbers = output.numbers
        guard let mean = numbers["mean_return"], let se = numbers["stderr"] else {
            throw RunError("--agent \(path): its evaluation reports no mean trial return")
        }
        return (k, output.adaptation.values.count, Figure(name: "RL² \(text)", mean: mean, standardError: se))
    }

    /// One line of the table: n, k, then each figure with its s.e.
    static func row(_ cell: Cell) -> String {
        var parts = [String(format: "n = %d, k = %d:", cell.pulls, cell.arms)]
        let digits = cell.pulls <= 10 ? 3 : cell.pulls <= 100 ? 2 : 1
        parts += cell.figures.map { "\($0.name) " + String(format: "%.\(digits)f ± %.\(digits)f", $0.mean, $0.standardError) }
        if let exact = cell.bayesOptimal { parts.append("Bayes-optimal " + String(format: "%.\(digits + 1)f", exact)) }
        return parts.joined(separator: "  ")
    }
}
