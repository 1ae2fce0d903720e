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

    /// Parameters (`--policy-arg key=value`) with their defaults, on a kind of family. The
    /// model-based tabular-MDP strategies also take `prior-mean`, the prior mean reward μ₀
    /// (0 as in the RL² paper's baselines; 1 is the prior the tasks are drawn from).
    public func parameters(on kind: BaselineKind) -> [(name: String, defaultValue: Double, range: ClosedRange<Double>)] {
        var list = ownParameters
        if kind == .tabularMDP, self != .random { list.append(("prior-mean", 0, -100...100)) }
        // Greedy replans after every step (certainty equivalence); ε-greedy once per episode,
        // as the RL² paper's figures imply (measured: README, "Tabular-MDP baselines").
        if kind == .tabularMDP, self == .greedy { list.append(("replan", 1, 0...1)) }
        if kind == .tabularMDP, self == .epsilonGreedy { list.append(("replan", 0, 0...1)) }
        return list
    }

    var ownParameters: [(name: String, defaultValue: Double, range: ClosedRange<Double>)] {
        switch self {
        case .epsilonGreedy: return [("epsilon", 0.1, 0...1)]
        case .ucb1: return [("c", 0.2, 0...10)]
        case .optimisticThompson: return [("samples", 7, 1...1000)]
        // 0: matched to the trial (GittinsBandit's defaults, the best on every cell of Table 1).
        case .gittins: return [("discount", 0, 0...0.9999), ("depth", 0, 0...5000)]
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

/// What a task family offers the classic strategies: k Bernoulli arms (`BernoulliArms`),
/// a finite MDP with observable states (`TabularMDPEnv`), or neither (only `random` runs).
public enum BaselineKind: String, Sendable {
    case bandit, tabularMDP = "tabular-mdp", other

    /// The kind `spec`'s environments are.
    public static func of(_ spec: EnvSpec) throws -> BaselineKind {
        struct Probe: MetaEnvConsumer {
            func run<E: MetaEnv>(_ env: E) throws -> BaselineKind {
                if env is any BernoulliArms { return .bandit }
                if env is any TabularMDPEnv { return .tabularMDP }
                return .other
            }
        }
        return try spec.open(Probe())
    }

    /// The error for a strategy the family cannot run.
    static func unsupported(_ policy: BaselinePolicy, family: String) -> BaselineRequestError {
        BaselineRequestError(description: "\(policy.rawValue) needs a family of Bernoulli arms (BernoulliArms, e.g. bandit) or of tabular MDPs (TabularMDPEnv, e.g. tabular-mdp); on \(family) only random runs")
    }
}

/// A refused `metarl baseline` request.
public struct BaselineRequestError: Error, CustomStringConvertible {
    public var description: String
    /// A request refused for `description`.
    public init(description: String) { self.description = description }
}

/// Parses `key=value` policy arguments against `policy`'s parameters, filling in defaults.
public func resolvePolicyArguments(_ policy: BaselinePolicy, on kind: BaselineKind, _ arguments: [String]) throws -> [String: Double] {
    let parameters = policy.parameters(on: kind)
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

/// Runs a strategy by name on `spec`: bandit strategies on any family of Bernoulli arms,
/// tabular-MDP strategies (random, greedy and ε-greedy included) on any family of tabular
/// MDPs, `random` on any family. `episodes` is pulls per trial for bandits and episodes per trial for MDPs.
public func runBaseline(
    _ policy: BaselinePolicy, arguments: [String: Double], spec: EnvSpec, episodes: Int, trials: Int, seed: UInt64
) throws -> TrialStatistics {
    struct Run: MetaEnvConsumer {
        var policy: BaselinePolicy, arguments: [String: Double], name: String, episodes: Int, trials: Int, seed: UInt64
        func run<E: MetaEnv>(_ env: E) throws -> TrialStatistics {
            if let bandit = env as? any BernoulliArms {
                return try runBanditBaseline(policy, arguments: arguments, bandit: bandit, pulls: episodes, trials: trials, seed: seed)
            }
            if let mdp = env as? any TabularMDPEnv {
                return try runTabularMDPBaseline(policy, arguments: arguments, mdp: mdp, episodes: episodes, trials: trials, seed: seed)
            }
            guard policy == .random else { throw BaselineKind.unsupported(policy, family: name) }
            return try evaluateRandomPolicy(env, episodes: episodes, trials: trials, seed: seed)
        }
    }
    return try spec.open(Run(policy: policy, arguments: arguments, name: spec.name, episodes: episodes, trials: trials, seed: seed))
}

/// The strategies that run on tabular MDPs.
public let tabularMDPPolicies: [BaselinePolicy] = [.random, .greedy, .epsilonGreedy, .psrl, .optimisticPSRL, .ucrl2, .beb]

/// Runs a tabular-MDP strategy by name on tasks of `mdp`'s family.
public func runTabularMDPBaseline<M: TabularMDPEnv>(
    _ policy: BaselinePolicy, arguments: [String: Double], mdp: M, episodes: Int, trials: Int, seed: UInt64
) throws -> TrialStatistics {
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
        throw BaselineRequestError(description: "\(policy.rawValue) is a bandit strategy; on tabular MDPs use one of: \(tabularMDPPolicies.map(\.rawValue).joined(separator: ", "))")
    }
}

/// Runs a bandit strategy by name on tasks of `bandit`'s family.
public func runBanditBaseline<B: BernoulliArms>(
    _ policy: BaselinePolicy, arguments: [String: Double], bandit: B, pulls: Int, trials: Int, seed: UInt64
) throws -> TrialStatistics {
    func run<S: BanditStrategy>(_ strategy: S) -> TrialStatistics {
        evaluateBandit(strategy, bandit: bandit, pulls: pulls, trials: trials, seed: seed)
    }
    switch policy {
    case .random: return run(RandomBandit())
    case .greedy: return run(EpsilonGreedyBandit(epsilon: 0))
    case .epsilonGreedy: return run(EpsilonGreedyBandit(epsilon: arguments["epsilon"]!))
    case .ucb1: return run(UCB1Bandit(c: arguments["c"]!))
    case .thompson: return run(ThompsonBandit())
    case .optimisticThompson: return run(OptimisticThompsonBandit(samples: Int(arguments["samples"]!)))
    case .gittins:
        let discount = arguments["discount"]!, depth = Int(arguments["depth"]!)
        return run(GittinsBandit(discount: discount > 0 ? discount : nil, depth: depth > 0 ? depth : nil))
    case .bayesOptimal:
        let strategy = try BayesOptimalBandit(arms: bandit.arms, pulls: pulls)
        var statistics = run(strategy)
        statistics.exactExpectation = strategy.expectedReturn
        return statistics
    case .psrl, .optimisticPSRL, .ucrl2, .beb:
        throw BaselineRequestError(description: "\(policy.rawValue) is a tabular-MDP strategy; on bandits use one of: random, greedy, epsilon-greedy, ucb1, thompson, optimistic-thompson, gittins, bayes-optimal")
    }
}
