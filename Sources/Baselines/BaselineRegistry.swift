import Envs
import TensorCore

/// The classic strategies `metarl baseline` runs, by name, with their parameters.
public enum BaselinePolicy: String, CaseIterable, Sendable {
    case random, greedy
    case epsilonGreedy = "epsilon-greedy"
    case ucb1, thompson
    case optimisticThompson = "optimistic-thompson"
    case gittins
    case bayesOptimal = "bayes-optimal"
    case psrl
    case optimisticPSRL = "optimistic-psrl"
    case ucrl2, beb

    /// Parameters (`--policy-arg key=value`) with their defaults.
    public var parameters: [(name: String, defaultValue: Double, range: ClosedRange<Double>)] {
        switch self {
        case .epsilonGreedy: return [("epsilon", 0.1, 0...1)]
        case .ucb1: return [("c", 0.2, 0...10)]
        case .optimisticThompson: return [("samples", 7, 1...1000)]
        case .gittins: return [("discount", 0.95, 0...0.9999), ("depth", 300, 10...5000)]
        case .optimisticPSRL: return [("samples", 5, 1...1000)]
        case .ucrl2: return [("delta", 0.1, 1e-9...1)]
        case .beb: return [("beta", 1, 0...1000)]
        default: return []
        }
    }

    public var isBanditStrategy: Bool {
        switch self {
        case .random, .greedy, .epsilonGreedy, .ucb1, .thompson, .optimisticThompson, .gittins, .bayesOptimal: return true
        default: return false
        }
    }
}

/// A refused `metarl baseline` request.
public struct BaselineRequestError: Error, CustomStringConvertible {
    public var description: String
}

/// Parses `key=value` policy arguments against `policy`'s parameters, filling in defaults.
public func resolvePolicyArguments(_ policy: BaselinePolicy, _ arguments: [String]) throws -> [String: Double] {
    var values = Dictionary(uniqueKeysWithValues: policy.parameters.map { ($0.name, $0.defaultValue) })
    for text in arguments {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw BaselineRequestError(description: "policy argument '\(text)' is not of the form key=value") }
        guard let parameter = policy.parameters.first(where: { $0.name == parts[0] }) else {
            let valid = policy.parameters.map(\.name)
            throw BaselineRequestError(description: "\(policy.rawValue) has no parameter '\(parts[0])'; valid: \(valid.isEmpty ? "none" : valid.joined(separator: ", "))")
        }
        guard let v = Double(parts[1]), parameter.range.contains(v) else {
            throw BaselineRequestError(description: "\(policy.rawValue) parameter \(parts[0])=\(parts[1]) is invalid; allowed: a number in \(parameter.range.lowerBound)…\(parameter.range.upperBound)")
        }
        values[parts[0]] = v
    }
    return values
}

/// Runs a bandit strategy by name on `spec` (which must be the bandit family).
public func runBanditBaseline(
    _ policy: BaselinePolicy, arguments: [String: Double], spec: EnvSpec, pulls: Int, trials: Int, seed: UInt64
) throws -> TrialStatistics {
    guard policy.isBanditStrategy else {
        throw BaselineRequestError(description: "\(policy.rawValue) is a tabular-MDP strategy; tabular-MDP strategies are not implemented yet (bandit strategies are: random, greedy, epsilon-greedy, ucb1, thompson, optimistic-thompson, gittins, bayes-optimal)")
    }
    guard spec.family == .bandit else {
        throw BaselineRequestError(description: "\(policy.rawValue) is a bandit strategy; use --env bandit (got \(spec.family.rawValue))")
    }
    let bandit = BernoulliBandit(arms: Int(spec.values["arms"]!))
    switch policy {
    case .random: return evaluateBandit(RandomBandit(), bandit: bandit, pulls: pulls, trials: trials, seed: seed)
    case .greedy: return evaluateBandit(EpsilonGreedyBandit(epsilon: 0), bandit: bandit, pulls: pulls, trials: trials, seed: seed)
    case .epsilonGreedy:
        return evaluateBandit(EpsilonGreedyBandit(epsilon: arguments["epsilon"]!), bandit: bandit, pulls: pulls, trials: trials, seed: seed)
    case .ucb1: return evaluateBandit(UCB1Bandit(c: arguments["c"]!), bandit: bandit, pulls: pulls, trials: trials, seed: seed)
    case .thompson: return evaluateBandit(ThompsonBandit(), bandit: bandit, pulls: pulls, trials: trials, seed: seed)
    case .optimisticThompson:
        return evaluateBandit(OptimisticThompsonBandit(samples: Int(arguments["samples"]!)), bandit: bandit, pulls: pulls, trials: trials, seed: seed)
    case .gittins:
        return evaluateBandit(GittinsBandit(discount: arguments["discount"]!, depth: Int(arguments["depth"]!)),
                              bandit: bandit, pulls: pulls, trials: trials, seed: seed)
    case .bayesOptimal:
        try BayesOptimalBandit.check(arms: bandit.arms, pulls: pulls)
        return evaluateBandit(BayesOptimalBandit(), bandit: bandit, pulls: pulls, trials: trials, seed: seed)
    case .psrl, .optimisticPSRL, .ucrl2, .beb:
        preconditionFailure("unreachable: tabular-MDP strategies are refused above")
    }
}
