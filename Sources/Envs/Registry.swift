/// An argument of a task family: a number with its default and allowed range, or one of a
/// fixed set of named choices (a preset such as `variant=pearl`).
public struct EnvArgument: Sendable, Equatable {
    /// The name `--env-arg NAME=value` takes.
    public var name: String
    /// The default of a numeric argument (0 for a choice).
    public var defaultValue: Double
    /// The values allowed (whole numbers only when `isInteger`).
    public var range: ClosedRange<Double>
    public var isInteger: Bool
    /// One line for `metarl envs`.
    public var help: String
    /// For a choice argument, the names allowed, the default first; nil for a numeric argument.
    public var choices: [Choice]?

    /// One allowed value of a choice argument, with a line saying what it is (which paper
    /// and file a preset reproduces, say).
    public struct Choice: Sendable, Equatable {
        public var name: String
        public var help: String
        /// The choice `name`, described by `help`.
        public init(_ name: String, _ help: String) {
            self.name = name
            self.help = help
        }
    }

    /// An argument taking any number in `range` (`isInteger`: whole numbers only).
    public init(name: String, defaultValue: Double, range: ClosedRange<Double>, isInteger: Bool = false, help: String) {
        self.name = name
        self.defaultValue = defaultValue
        self.range = range
        self.isInteger = isInteger
        self.help = help
    }

    /// A whole-number argument.
    public static func integer(_ name: String, default value: Int, in range: ClosedRange<Int>, help: String) -> EnvArgument {
        EnvArgument(name: name, defaultValue: Double(value), range: Double(range.lowerBound)...Double(range.upperBound),
                    isInteger: true, help: help)
    }

    /// A real-valued argument.
    public static func real(_ name: String, default value: Double, in range: ClosedRange<Double>, help: String) -> EnvArgument {
        EnvArgument(name: name, defaultValue: value, range: range, isInteger: false, help: help)
    }

    /// An argument naming one of `choices` (each with a line of help); the first is the default.
    public static func choice(_ name: String, among choices: [Choice], help: String) -> EnvArgument {
        precondition(!choices.isEmpty, "EnvArgument.choice(\(name)): no choices")
        var argument = EnvArgument(name: name, defaultValue: 0, range: 0...0, help: help)
        argument.choices = choices
        return argument
    }

    /// The default choice of a choice argument.
    public var defaultChoice: String? { choices?.first?.name }

    /// What values are allowed, in words (for error messages and `metarl envs`).
    public var allowed: String {
        if let names = choices?.map(\.name) { return "one of " + names.joined(separator: ", ") }
        return isInteger ? "an integer in \(Int(range.lowerBound))…\(Int(range.upperBound))" : "a number in \(range.lowerBound)…\(range.upperBound)"
    }
}

/// A task family's arguments after parsing: every argument of the family, defaults filled in.
public struct EnvArguments: Sendable, Equatable {
    /// The family the values belong to.
    public let family: String
    /// Every declared argument's value, by name.
    public let values: [String: Double]
    /// The choice arguments' names (``EnvArgument/choice(_:among:help:)``), and the free-form
    /// arguments of a family that takes any (``TaskFamily/acceptsAnyArgument``), as given.
    public let texts: [String: String]

    /// Arguments of `family` with these values (already checked by ``TaskFamily/resolve(_:)``).
    public init(family: String, values: [String: Double], texts: [String: String] = [:]) {
        self.family = family
        self.values = values
        self.texts = texts
    }

    /// Every argument as a run directory records it: declared ones as numbers, free-form ones as text.
    public var recorded: [String: EnvArgumentValue] {
        var all = values.mapValues(EnvArgumentValue.number)
        for (k, v) in texts { all[k] = .text(v) }
        return all
    }

    /// An integer argument; a name the family does not declare is a programming error of the family.
    public func int(_ name: String) -> Int { Int(value(name)) }
    /// A real argument.
    public func real(_ name: String) -> Double { value(name) }
    /// A 0/1 argument as a Bool.
    public func flag(_ name: String) -> Bool { value(name) != 0 }
    /// A choice argument's name; a name the family does not declare is a programming error of the family.
    public func choice(_ name: String) -> String {
        guard let v = texts[name] else { preconditionFailure("task family \(family) reads choice '\(name)', which it does not declare") }
        return v
    }

    func value(_ name: String) -> Double {
        guard let v = values[name] else { preconditionFailure("task family \(family) reads argument '\(name)', which it does not declare") }
        return v
    }
}

/// One recorded task-family argument: a number (a declared argument) or a text (a free-form
/// argument, such as a Python env's keyword argument). Encoded as a bare JSON number or string.
public enum EnvArgumentValue: Codable, Sendable, Equatable, CustomStringConvertible {
    case number(Double)
    case text(String)

    /// Reads a JSON/YAML number or string.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let x = try? c.decode(Double.self) { self = .number(x) } else { self = .text(try c.decode(String.self)) }
    }

    /// Writes a bare number or string.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .number(let x): try c.encode(x)
        case .text(let t): try c.encode(t)
        }
    }

    /// The value as `--env-arg key=value` writes it (whole numbers without a fraction).
    public var description: String {
        switch self {
        case .number(let x): return x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : "\(x)"
        case .text(let t): return t
        }
    }
}

/// Why an environment specification was refused.
public enum EnvSpecError: Error, CustomStringConvertible, Equatable {
    /// No family of that name is registered; `registered` lists the names that are.
    case unknownFamily(String, registered: [String])
    case malformedArgument(String)
    /// The family has no such argument; `valid` lists its arguments.
    case unknownArgument(family: String, name: String, valid: [String])
    /// A value outside what the argument allows (`allowed`, in words).
    case badValue(family: String, name: String, value: String, allowed: String)
    /// Two families registered under one name.
    case duplicateFamily(String)
    /// A family a provider could not make from its name (`gym:MODULE:ATTR` malformed, say).
    case badFamilyName(String, reason: String)

    /// One line naming the cause and what is allowed.
    public var description: String {
        switch self {
        case let .unknownFamily(name, registered):
            return "unknown env '\(name)'; registered: \(registered.joined(separator: ", "))"
        case .malformedArgument(let text):
            return "env argument '\(text)' is not of the form key=value"
        case let .unknownArgument(family, name, valid):
            return "\(family) has no argument '\(name)'; valid: \(valid.isEmpty ? "none" : valid.joined(separator: ", "))"
        case let .badValue(family, name, value, allowed):
            return "\(family) argument \(name)=\(value) is invalid; allowed: \(allowed)"
        case .duplicateFamily(let name):
            return "two task families are registered as '\(name)'"
        case let .badFamilyName(name, reason):
            return "env '\(name)': \(reason)"
        }
    }
}

/// Something that can be done with any meta-environment; ``EnvSpec/open(_:)`` calls it
/// with the concrete environment type, so generic code runs on the family's own type.
public protocol MetaEnvConsumer {
    associatedtype Output
    func run<E: MetaEnv>(_ env: E) throws -> Output
}

/// A task family as a value: its name, what it is, its arguments, and a factory from
/// arguments to a ``MetaEnv``. The built-in families and a user's own are registered the
/// same way (``TaskFamilyRegistry``).
public struct TaskFamily: Sendable {
    /// The name `--env` takes and run directories record.
    public var name: String
    /// One line for `metarl envs`.
    public var summary: String
    /// The arguments `--env-arg` sets, with defaults and ranges.
    public var arguments: [EnvArgument]
    /// Whether `--env-arg key=value` may name keys not in ``arguments``; they are kept as
    /// text (``EnvArguments/texts``), for families whose arguments are not known in advance.
    public var acceptsAnyArgument: Bool
    let check: @Sendable (EnvArguments) throws(EnvSpecError) -> Void
    let maker: @Sendable (EnvArguments) throws -> any MetaEnv

    /// A family whose environments `make` builds from checked arguments; `check` may refuse
    /// combinations the ranges alone allow (throw ``EnvSpecError/badValue(family:name:value:allowed:)``).
    public init<E: MetaEnv & Sendable>(
        name: String, summary: String, arguments: [EnvArgument] = [], acceptsAnyArgument: Bool = false,
        check: @escaping @Sendable (EnvArguments) throws(EnvSpecError) -> Void = { _ in },
        make: @escaping @Sendable (EnvArguments) throws -> E
    ) {
        self.name = name
        self.summary = summary
        self.arguments = arguments
        self.acceptsAnyArgument = acceptsAnyArgument
        self.check = check
        maker = { try make($0) }
    }

    /// An environment of the family with these (resolved) arguments, as an existential:
    /// for code that wants the concrete type (`as? MyEnv`); generic code uses ``EnvSpec/open(_:)``.
    public func makeEnvironment(_ arguments: EnvArguments) throws -> any MetaEnv { try maker(arguments) }

    /// Parses `key=value` texts against the family's arguments, filling in defaults.
    public func resolve(_ texts: [String]) throws(EnvSpecError) -> EnvArguments {
        var values = Dictionary(uniqueKeysWithValues: arguments.filter { $0.choices == nil }.map { ($0.name, $0.defaultValue) })
        var free = Dictionary(uniqueKeysWithValues: arguments.compactMap { a in a.defaultChoice.map { (a.name, $0) } })
        for text in texts {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw .malformedArgument(text) }
            guard let argument = arguments.first(where: { $0.name == parts[0] }) else {
                guard acceptsAnyArgument else { throw .unknownArgument(family: name, name: parts[0], valid: arguments.map(\.name)) }
                free[parts[0]] = parts[1]
                continue
            }
            if let names = argument.choices?.map(\.name) {
                guard names.contains(parts[1]) else { throw .badValue(family: name, name: parts[0], value: parts[1], allowed: argument.allowed) }
                free[parts[0]] = parts[1]
                continue
            }
            guard let value = Double(parts[1]), value.isFinite, argument.range.contains(value),
                  !argument.isInteger || value == value.rounded()
            else { throw .badValue(family: name, name: parts[0], value: parts[1], allowed: argument.allowed) }
            values[parts[0]] = value
        }
        let resolved = EnvArguments(family: name, values: values, texts: free)
        try check(resolved)
        return resolved
    }

    /// `metarl envs`' entry: the summary, then one line per argument.
    public var listing: String {
        var lines = ["\(name): \(summary)"]
        for a in arguments {
            if let choices = a.choices {
                lines.append("    \(a.name)=\(choices[0].name)  (\(choices.map(\.name).joined(separator: "|")))  \(a.help)")
                for c in choices { lines.append("        \(c.name): \(c.help)") }
                continue
            }
            let d = a.isInteger ? "\(Int(a.defaultValue))" : "\(a.defaultValue)"
            let r = a.isInteger ? "\(Int(a.range.lowerBound))…\(Int(a.range.upperBound))" : "\(a.range.lowerBound)…\(a.range.upperBound)"
            lines.append("    \(a.name)=\(d)  (\(r))  \(a.help)")
        }
        return lines.joined(separator: "\n")
    }
}

/// Task families named by a prefix and a free text (`gym:MODULE:ATTR`): a provider makes the
/// family when a name with its prefix is looked up, so families need not be known in advance.
public struct TaskFamilyProvider: Sendable {
    /// The prefix before the first `:` of the names this provider answers.
    public var prefix: String
    /// `metarl envs`' entry: how names are formed and what they mean.
    public var listing: String
    let maker: @Sendable (String) throws(EnvSpecError) -> TaskFamily

    /// A provider of the families named `prefix:…`; `make` gets the whole name and returns
    /// the family (its ``TaskFamily/name`` may be a canonical form of it, e.g. an absolute path).
    public init(prefix: String, listing: String, make: @escaping @Sendable (String) throws(EnvSpecError) -> TaskFamily) {
        self.prefix = prefix
        self.listing = listing
        maker = make
    }

    /// The family `name` names.
    public func family(named name: String) throws(EnvSpecError) -> TaskFamily { try maker(name) }
}

/// The task families a program knows, by name: the built-in ones and any the user adds.
/// A value: a user's executable builds its own (``builtIn`` plus its families) and passes it on.
public struct TaskFamilyRegistry: Sendable {
    /// The registered families, in registration order.
    public private(set) var families: [TaskFamily]
    /// The registered providers of prefixed names (`gym:…`).
    public private(set) var providers: [TaskFamilyProvider]

    /// An empty registry.
    public init() {
        families = []
        providers = []
    }

    /// A registry of `families`, refusing two with one name.
    public init(_ families: [TaskFamily]) throws(EnvSpecError) {
        self.init()
        for family in families { try register(family) }
    }

    /// Adds `family`; a name already registered is an error.
    public mutating func register(_ family: TaskFamily) throws(EnvSpecError) {
        guard !families.contains(where: { $0.name == family.name }) else { throw .duplicateFamily(family.name) }
        families.append(family)
    }

    /// Adds `provider`, or replaces the one with its prefix (to configure it, e.g. the Python interpreter).
    public mutating func register(_ provider: TaskFamilyProvider) {
        providers.removeAll { $0.prefix == provider.prefix }
        providers.append(provider)
    }

    /// The registered names, in registration order, then each provider's prefix as `prefix:…`.
    public var names: [String] { families.map(\.name) + providers.map { "\($0.prefix):…" } }

    /// The family registered as `name`, or made by the provider of its prefix.
    public func family(named name: String) throws(EnvSpecError) -> TaskFamily {
        if let family = families.first(where: { $0.name == name }) { return family }
        if let colon = name.firstIndex(of: ":"), let provider = providers.first(where: { $0.prefix == name[..<colon] }) {
            return try provider.family(named: name)
        }
        throw .unknownFamily(name, registered: names)
    }

    /// Resolves `--env NAME --env-arg key=value …` into a spec.
    public func spec(_ name: String, arguments: [String] = []) throws(EnvSpecError) -> EnvSpec {
        let family = try family(named: name)
        return EnvSpec(family: family, arguments: try family.resolve(arguments))
    }

    /// Resolves a family name and argument values as a run directory records them.
    public func spec(_ name: String, values: [String: EnvArgumentValue]) throws(EnvSpecError) -> EnvSpec {
        try spec(name, arguments: values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
    }

    /// Every family as a table for `metarl envs`, then the providers.
    public var listing: String { (families.map(\.listing) + providers.map(\.listing)).joined(separator: "\n") }

    /// The seven families MetaRL ships, registered as any user family is.
    public static let builtIn: TaskFamilyRegistry = {
        do { return try TaskFamilyRegistry(builtInFamilies) } catch { preconditionFailure("\(error)") }
    }()

    /// The built-in families, in the order `metarl envs` lists them.
    public static var builtInFamilies: [TaskFamily] {
        [BernoulliBandit.family, TabularMDP.family, GridWorld.family, Harlow.family, PointNavigation.family,
         PendulumMass.family, CartPolePhysics.family]
    }
}

/// A task family with its arguments resolved and checked: what `--env` and `--env-arg` name.
public struct EnvSpec: Sendable, Equatable {
    /// The family and its resolved arguments.
    public let family: TaskFamily
    public let arguments: EnvArguments

    /// `family` with `arguments` (already resolved by the family).
    public init(family: TaskFamily, arguments: EnvArguments) {
        self.family = family
        self.arguments = arguments
    }

    /// The family's name.
    public var name: String { family.name }
    /// The name with the arguments that differ from the family's defaults, as `metarl eval`
    /// names what it evaluated on: `bandit(arms=10)`, `gym:tasks.py:ML1(split='test')`.
    public var label: String {
        let defaults = Dictionary(family.arguments.map { ($0.name, $0.defaultValue) }, uniquingKeysWith: { first, _ in first })
        let defaultChoices = Dictionary(family.arguments.compactMap { a in a.defaultChoice.map { (a.name, $0) } }, uniquingKeysWith: { first, _ in first })
        let changed = arguments.values.filter { defaults[$0.key] != $0.value }.map { "\($0.key)=\(EnvArgumentValue.number($0.value))" }
        let texts = arguments.texts.filter { defaultChoices[$0.key] != $0.value }
        let parts = (changed + texts.map { "\($0.key)=\($0.value)" }).sorted()
        return parts.isEmpty ? name : name + "(" + parts.joined(separator: ", ") + ")"
    }
    /// Every declared argument's value, defaults included.
    public var values: [String: Double] { arguments.values }
    /// Every argument as a run directory records it.
    public var recorded: [String: EnvArgumentValue] { arguments.recorded }

    /// Builds the environment and runs `consumer` with it.
    public func open<C: MetaEnvConsumer>(_ consumer: C) throws -> C.Output {
        // The existential is opened: `run` sees the family's concrete type.
        try consumer.run(try family.makeEnvironment(arguments))
    }

    /// The same family with the same argument values.
    public static func == (a: EnvSpec, b: EnvSpec) -> Bool { a.arguments == b.arguments }
}
