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

    /// Parameters (`--policy-arg key=value`) with their defaults, on a family. The
    /// model-based tabular-MDP strategies also take `prior-mean`, the prior mean reward μ₀
    /// (0 as in the RL² paper's baselines; 1 is the prior the tasks are drawn from).
    public func parameters(on family: EnvFamily) -> [(name: String, defaultValue: Double, range: ClosedRange<Double>)] {
        var list = ownParameters
        if family == .tabularMDP, self != .random { list.append(("prior-mean", 0, -100...100)) }
        // Greedy replans after every step (certainty equivalence); ε-greedy once per episode,
        // as the RL² paper's figures imply (measured: README, "Tabular-MDP baselines").
        if family == .tabularMDP, self == .greedy { list.append(("replan", 1, 0...1)) }
        if family == .tabularMDP, self == .epsilonGreedy { list.append(("replan", 0, 0...1)) }
        return list
    }

    var ownParameters: [(name: String, defaultValue: Double, range: ClosedRange<Double>)] {
        switch self {
        case .epsilonGreedy: return [("epsilon", 0.1, 0...1)]
        case .ucb1: return [("c", 0.2, 0...10)]
        case .optimisticThompson: return [("samples", 7, 1...1000)]
        case .gittins: return [("discount", 0.95, 0...0.9999), ("depth", 300, 10...5000)]
        case .optimisticPSRL: return [("samples", 20, 1...1000)]
        case .ucrl2: return [("delta", 0.1, 1e-9...1), ("scale", 0.3, 0...100)]
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
public func resolvePolicyArguments(_ policy: BaselinePolicy, on family: EnvFamily, _ arguments: [String]) throws -> [String: Double] {
    let parameters = policy.parameters(on: family)
    var values = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.defaultValue) })
    for text in arguments {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw BaselineRequestError(description: "policy argument '\(text)' is not of the form key=value") }
        guard let parameter = parameters.first(where: { $0.name == parts[0] }) else {
            let valid = parameters.map(\.name)
            throw BaselineRequestError(description: "\(policy.rawValue) has no parameter '\(parts[0])'; valid: \(valid.isEmpty ? "none" : valid.joined(separator: ", "))")
        }
        guard let v = Double(parts[1]), parameter.range.contains(v) else {
            throw BaselineRequestError(description: "\(policy.rawValue) parameter \(parts[0])=\(parts[1]) is invalid; allowed: a number in \(parameter.range.lowerBound)…\(parameter.range.upperBound)")
        }
        values[parts[0]] = v
    }
    return values
}

/// Runs a strategy by name on `spec`: bandit strategies on the bandit family, tabular-MDP
/// strategies (random, greedy and ε-greedy included) on the tabular-mdp family.
/// `episodes` is pulls per trial for bandits and episodes per trial for MDPs.
public func runBaseline(
    _ policy: BaselinePolicy, arguments: [String: Double], spec: EnvSpec, episodes: Int, trials: Int, seed: UInt64
) throws -> TrialStatistics {
    switch spec.family {
    case .bandit:
        return try runBanditBaseline(policy, arguments: arguments, spec: spec, pulls: episodes, trials: trials, seed: seed)
    case .tabularMDP:
        return try runTabularMDPBaseline(policy, arguments: arguments, spec: spec, episodes: episodes, trials: trials, seed: seed)
    default:
        throw BaselineRequestError(description: "classic baselines exist for --env bandit and --env tabular-mdp (got \(spec.family.rawValue))")
    }
}

/// The strategies that run on tabular MDPs.
public let tabularMDPPolicies: [BaselinePolicy] = [.random, .greedy, .epsilonGreedy, .psrl, .optimisticPSRL, .ucrl2, .beb]

/// Runs a tabular-MDP strategy by name on `spec` (which must be the tabular-mdp family).
public func runTabularMDPBaseline(
    _ policy: BaselinePolicy, arguments: [String: Double], spec: EnvSpec, episodes: Int, trials: Int, seed: UInt64
) throws -> TrialStatistics {
    guard spec.family == .tabularMDP else {
        throw BaselineRequestError(description: "\(policy.rawValue) on tabular MDPs needs --env tabular-mdp (got \(spec.family.rawValue))")
    }
    let mdp = TabularMDP(states: Int(spec.values["states"]!), actions: Int(spec.values["actions"]!), horizon: Int(spec.values["horizon"]!))
    func run<S: TabularMDPStrategy>(_ strategy: S) -> TrialStatistics {
        evaluateTabularMDP(strategy, mdp: mdp, episodes: episodes, trials: trials, seed: seed)
    }
    let mu0 = arguments["prior-mean"] ?? 0
    switch policy {
    case .random: return run(RandomMDPStrategy())
    case .greedy: return run(EpsilonGreedyMDPStrategy(epsilon: 0, priorMean: mu0, replanEveryStep: arguments["replan"] == 1))
    case .epsilonGreedy:
        return run(EpsilonGreedyMDPStrategy(epsilon: arguments["epsilon"]!, priorMean: mu0, replanEveryStep: arguments["replan"] == 1))
    case .psrl: return run(PSRLStrategy(priorMean: mu0))
    case .optimisticPSRL: return run(OptimisticPSRLStrategy(samples: Int(arguments["samples"]!), priorMean: mu0))
    case .ucrl2: return run(UCRL2Strategy(delta: arguments["delta"]!, scale: arguments["scale"]!, priorMean: mu0))
    case .beb: return run(BEBStrategy(beta: arguments["beta"]!, priorMean: mu0))
    case .ucb1, .thompson, .optimisticThompson, .gittins, .bayesOptimal:
        throw BaselineRequestError(description: "\(policy.rawValue) is a bandit strategy; on tabular-mdp use one of: \(tabularMDPPolicies.map(\.rawValue).joined(separator: ", "))")
    }
}

/// Runs a bandit strategy by name on `spec` (which must be the bandit family).
public func runBanditBaseline(
    _ policy: BaselinePolicy, arguments: [String: Double], spec: EnvSpec, pulls: Int, trials: Int, seed: UInt64
) throws -> TrialStatistics {
    guard policy.isBanditStrategy else {
        throw BaselineRequestError(description: "\(policy.rawValue) is a tabular-MDP strategy; use --env tabular-mdp, or on bandits one of: random, greedy, epsilon-greedy, ucb1, thompson, optimistic-thompson, gittins, bayes-optimal")
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
