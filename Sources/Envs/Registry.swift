/// A numeric argument of a task family, with its default and allowed range.
public struct EnvArgument: Sendable {
    public var name: String
    public var defaultValue: Double
    public var range: ClosedRange<Double>
    public var isInteger: Bool
    public var help: String
}

/// Why an environment specification was refused.
public enum EnvSpecError: Error, CustomStringConvertible, Equatable {
    case unknownFamily(String)
    case malformedArgument(String)
    case unknownArgument(family: String, name: String)
    case badValue(family: String, name: String, value: String)

    public var description: String {
        switch self {
        case .unknownFamily(let name):
            return "unknown env '\(name)'; valid: \(EnvFamily.allCases.map(\.rawValue).joined(separator: ", "))"
        case .malformedArgument(let text):
            return "env argument '\(text)' is not of the form key=value"
        case let .unknownArgument(family, name):
            let valid = EnvFamily(rawValue: family)?.arguments.map(\.name).joined(separator: ", ") ?? ""
            return "\(family) has no argument '\(name)'; valid: \(valid.isEmpty ? "none" : valid)"
        case let .badValue(family, name, value):
            let argument = EnvFamily(rawValue: family)?.arguments.first { $0.name == name }
            let allowed = argument.map { a in
                a.isInteger ? "an integer in \(Int(a.range.lowerBound))…\(Int(a.range.upperBound))"
                    : "a number in \(a.range.lowerBound)…\(a.range.upperBound)"
            } ?? "?"
            return "\(family) argument \(name)=\(value) is invalid; allowed: \(allowed)"
        }
    }
}

/// The task families MetaRL carries, by their command-line names.
public enum EnvFamily: String, CaseIterable, Sendable {
    case bandit
    case tabularMDP = "tabular-mdp"
    case gridworld
    case harlow
    case pointNav = "point-nav"
    case pendulumMass = "pendulum-mass"
    case cartpolePhysics = "cartpole-physics"

    public var summary: String {
        switch self {
        case .bandit: return "Bernoulli bandit, k arms with p ~ U[0,1]; one pull per episode"
        case .tabularMDP: return "random tabular MDP, Dirichlet(1) transitions, rewards N(μ,1), μ ~ N(1,1)"
        case .gridworld: return "grid world with random start and goal; step penalty, goal ends the episode"
        case .harlow: return "Harlow task: two novel objects, one rewarded (+5/−5), sides shuffled"
        case .pointNav: return "2D point navigation to a goal ~ U[−0.5,0.5]² (MAML paper)"
        case .pendulumMass: return "pendulum swing-up with mass ~ U[massLow, massHigh]"
        case .cartpolePhysics: return "CartPole with pole length, masses and force varied per task"
        }
    }

    public var arguments: [EnvArgument] {
        func int(_ name: String, _ d: Int, _ lo: Int, _ hi: Int, _ help: String) -> EnvArgument {
            EnvArgument(name: name, defaultValue: Double(d), range: Double(lo)...Double(hi), isInteger: true, help: help)
        }
        func real(_ name: String, _ d: Double, _ lo: Double, _ hi: Double, _ help: String) -> EnvArgument {
            EnvArgument(name: name, defaultValue: d, range: lo...hi, isInteger: false, help: help)
        }
        switch self {
        case .bandit: return [int("arms", 5, 2, 1000, "number of arms k")]
        case .tabularMDP:
            return [int("states", 10, 2, 1000, "number of states"), int("actions", 5, 2, 100, "number of actions"),
                    int("horizon", 10, 1, 10000, "steps per episode")]
        case .gridworld:
            return [int("size", 5, 2, 50, "grid side"), int("horizon", 30, 1, 10000, "step limit per episode"),
                    real("step-penalty", 0.1, 0, 10, "cost of each move"), real("goal-reward", 1, 0, 100, "reward on reaching the goal")]
        case .harlow:
            return [int("features", 8, 1, 1024, "feature vector size of an object"), int("episodes-per-task", 6, 2, 100, "choices per task"),
                    int("balanced-sides", 1, 0, 1, "1: rewarded object left in exactly half the episodes (published); 0: a coin flip each")]
        case .pointNav:
            return [real("goal-range", 0.5, 0.01, 100, "goals ~ U[−r, r]²"), int("horizon", 100, 1, 100000, "steps per episode")]
        case .pendulumMass:
            return [real("mass-low", 0.5, 0.01, 100, "lowest mass"), real("mass-high", 2.0, 0.01, 100, "highest mass"),
                    int("horizon", 200, 1, 100000, "steps per episode")]
        case .cartpolePhysics:
            return [real("spread", 2.0, 1, 10, "each parameter log-uniform in [gym/spread, gym·spread]"),
                    int("horizon", 200, 1, 100000, "steps per episode")]
        }
    }

    /// The registry as a table for `metarl envs`.
    public static var listing: String {
        allCases.map { family in
            var lines = ["\(family.rawValue): \(family.summary)"]
            for a in family.arguments {
                let d = a.isInteger ? "\(Int(a.defaultValue))" : "\(a.defaultValue)"
                let r = a.isInteger ? "\(Int(a.range.lowerBound))…\(Int(a.range.upperBound))" : "\(a.range.lowerBound)…\(a.range.upperBound)"
                lines.append("    \(a.name)=\(d)  (\(r))  \(a.help)")
            }
            return lines.joined(separator: "\n")
        }.joined(separator: "\n")
    }
}

/// Something that can be done with any meta-environment; ``EnvSpec/open(_:)`` calls it
/// with the concrete environment type, so generic code runs specialised.
public protocol MetaEnvConsumer {
    associatedtype Output
    func run<E: MetaEnv>(_ env: E) throws -> Output
}

/// A task family with its arguments resolved and checked: what `--env` and `--env-arg` name.
public struct EnvSpec: Sendable, Equatable {
    public var family: EnvFamily
    public var values: [String: Double]

    /// Parses a family name and `key=value` arguments, filling in defaults.
    public init(family name: String, arguments: [String] = []) throws(EnvSpecError) {
        guard let family = EnvFamily(rawValue: name) else { throw .unknownFamily(name) }
        self.family = family
        values = Dictionary(uniqueKeysWithValues: family.arguments.map { ($0.name, $0.defaultValue) })
        for text in arguments {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw .malformedArgument(text) }
            guard let argument = family.arguments.first(where: { $0.name == parts[0] }) else {
                throw .unknownArgument(family: name, name: parts[0])
            }
            guard let value = Double(parts[1]), value.isFinite, argument.range.contains(value),
                  !argument.isInteger || value == value.rounded()
            else { throw .badValue(family: name, name: parts[0], value: parts[1]) }
            values[parts[0]] = value
        }
        if family == .pendulumMass, values["mass-low"]! > values["mass-high"]! {
            throw .badValue(family: name, name: "mass-low", value: "\(values["mass-low"]!) (above mass-high)")
        }
    }

    func int(_ name: String) -> Int { Int(values[name]!) }
    func real(_ name: String) -> Double { values[name]! }

    /// Builds the environment and runs `consumer` with it.
    public func open<C: MetaEnvConsumer>(_ consumer: C) throws -> C.Output {
        switch family {
        case .bandit: return try consumer.run(BernoulliBandit(arms: int("arms")))
        case .tabularMDP: return try consumer.run(TabularMDP(states: int("states"), actions: int("actions"), horizon: int("horizon")))
        case .gridworld:
            return try consumer.run(GridWorld(size: int("size"), horizon: int("horizon"),
                                              stepPenalty: Float(real("step-penalty")), goalReward: Float(real("goal-reward"))))
        case .harlow: return try consumer.run(Harlow(featureSize: int("features"), episodesPerTask: int("episodes-per-task"),
                                                            balancedSides: int("balanced-sides") == 1))
        case .pointNav: return try consumer.run(PointNavigation(goalRange: real("goal-range"), horizon: int("horizon")))
        case .pendulumMass:
            return try consumer.run(PendulumMass(massLow: real("mass-low"), massHigh: real("mass-high"), horizon: int("horizon")))
        case .cartpolePhysics: return try consumer.run(CartPolePhysics(spread: real("spread"), horizon: int("horizon")))
        }
    }
}
