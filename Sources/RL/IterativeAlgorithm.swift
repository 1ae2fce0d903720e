import Envs
import Foundation
import TensorCore

/// A training algorithm as `Runs` drives it: a value whose `Codable` state is everything
/// needed to continue, and one `iterate()` that performs an iteration and returns its
/// metrics in a fixed order. Logging, checkpoints, resume and progress are the loop's job.
public protocol IterativeAlgorithm<State> {
    associatedtype State: Codable
    /// Everything a checkpoint saves.
    var state: State { get set }
    /// Iterations completed.
    var iteration: Int { get }
    /// Environment steps taken so far.
    var environmentSteps: Int { get }
    /// The name of the headline metric (printed in the progress line).
    var headlineMetric: String { get }
    /// One iteration; returns (name, value) pairs, the same names in the same order every time.
    mutating func iterate() throws -> [(String, Double)]
}

/// Training produced a non-finite value.
public struct NonFiniteError: Error, CustomStringConvertible {
    /// The iteration that produced it, and the metric, loss or parameter that went non-finite.
    public var iteration: Int
    public var quantity: String
    /// `quantity` went NaN or infinite in iteration `iteration`.
    public init(iteration: Int, quantity: String) {
        self.iteration = iteration
        self.quantity = quantity
    }
    /// One line naming the iteration and the quantity.
    public var description: String { "iteration \(iteration): \(quantity) is NaN or infinite; stopping (the last good checkpoint is kept)" }
}

// MARK: Settings

/// A settings struct read from config files and command-line flags: every stored property
/// has its default in `init()`, and `validate()` names the first one out of range.
///
/// Reading is one mechanism for every such struct (`Runs`' `SettingsCoding`): the keys a file
/// or a flag gives are laid over the encoded defaults, so an absent key keeps its default
/// and the synthesised `Codable` conformance is all a struct needs. Every key is a flag
/// too, `--` plus the key path in kebab case (`trpo.maxKL` → `--trpo-max-kl`); ``flags``
/// gives a shorter name or help text where wanted.
public protocol SettingsTable: Codable, Sendable, Equatable {
    /// The defaults.
    init()
    /// Throws a `ConfigError` naming the first setting (by key path) outside what is allowed.
    func validate() throws(ConfigError)
    /// Flag names and help for settings, by key path.
    static var flags: [SettingFlag] { get }
}

extension SettingsTable {
    /// No flag names or help beyond the derived ones.
    public static var flags: [SettingFlag] { [] }
    /// Every value allowed.
    public func validate() throws(ConfigError) {}
}

/// An algorithm's settings: a ``SettingsTable`` with a number of iterations to train for.
public protocol AlgorithmSettings: SettingsTable {
    var iterations: Int { get set }
}

/// A command-line flag for one setting: its key path in the settings, the flag's name,
/// and a line of help.
public struct SettingFlag: Sendable, Equatable {
    /// What kind of value a setting takes, for a key whose default is absent (an optional).
    public enum Kind: String, Sendable { case integer, number, boolean, text, integers }

    /// The dotted key path in the settings (`trpo.maxKL`).
    public var key: String
    /// The flag, with its dashes (`--max-kl`); nil: derived from the key.
    public var flag: String?
    /// One line for `--help`.
    public var help: String
    /// Needed only when the default leaves the key out (an optional that defaults to nil).
    public var kind: Kind?

    /// A flag for the setting at `key`.
    public init(_ key: String, flag: String? = nil, kind: Kind? = nil, help: String) {
        self.key = key
        self.flag = flag
        self.help = help
        self.kind = kind
    }

    /// The flag derived from a key path: `--` and the path in kebab case, dots as dashes.
    public static func derivedFlag(_ key: String) -> String {
        var out = "--", previousUpper = false
        for c in key {
            // An acronym (maxKL) stays one word: --max-kl.
            if c == "." { out.append("-") } else if c.isUppercase, !previousUpper { out += "-" + c.lowercased() } else { out += c.lowercased() }
            previousUpper = c.isUppercase
        }
        return out
    }

    /// The flag as shown and accepted.
    public var name: String { flag ?? Self.derivedFlag(key) }
}

// MARK: Evaluation

/// The adaptation curve of an evaluation: a mean and its standard error at each point of
/// the axis (episode in the trial, inner step, trajectory), as `metarl plot --adaptation` draws it.
public struct AdaptationCurve: Codable, Sendable, Equatable {
    /// What the points are ("episode in the trial", "inner gradient steps", "trajectory").
    public var axis: String
    /// The axis value of the first point (1 for episodes and trajectories, 0 for inner steps).
    public var first: Int
    /// The mean return at each point, and its standard error.
    public var values: [Double]
    public var stderr: [Double]
    /// The fraction of episodes that solved their task at each point, and its standard error
    /// over tasks: only for families that report success (Meta-World's `info["success"]`).
    public var successRate: [Double]?
    public var successRateStderr: [Double]?

    enum CodingKeys: String, CodingKey {
        case axis, first, values, stderr, successRate = "success_rate", successRateStderr = "success_rate_stderr"
    }

    /// A curve of `values` ± `stderr` starting at `first` on `axis`; `successByTask[i][k]`,
    /// task i's success rate at point k (NaN where not reported), adds the success curve.
    public init(axis: String, first: Int, values: [Double], stderr: [Double], successByTask: [[Double]] = []) {
        self.axis = axis
        self.first = first
        self.values = values
        self.stderr = stderr
        let points = (0..<values.count).map { k in EpisodeSuccess.statistics(successByTask.map { k < $0.count ? $0[k] : .nan }) }
        if !successByTask.isEmpty, points.allSatisfy({ $0 != nil }) {
            successRate = points.map { $0!.mean }
            successRateStderr = points.map { $0!.standardError }
        }
    }

    /// "success rate by `label`: 0: 12.0%±3.1  1: …" (percent ± s.e.), or nil without a success curve.
    public func successSummary(by label: String) -> String? {
        guard let successRate, let successRateStderr else { return nil }
        return "success rate by \(label): " + zip(successRate, successRateStderr).enumerated()
            .map { String(format: "%d: %.1f%%±%.1f", $0.offset + first, 100 * $0.element.0, 100 * $0.element.1) }.joined(separator: "  ")
    }
}

/// What `metarl eval` reports for a run: encoded as its `--json` output, and as lines of text.
public protocol EvaluationReport: Encodable, Sendable {
    /// The curve `metarl plot --adaptation` draws.
    var adaptation: AdaptationCurve { get }
    /// The text `metarl eval` prints, given the algorithm's and the family's names.
    func summary(algorithm: String, env: String) -> [String]
}

// MARK: Registration

/// An algorithm as `metarl` and `Runs` know it: its names, settings and state types, and how
/// to start, continue and evaluate it on any task family. Registering one value of a type
/// conforming to this gives the algorithm `train`, `--resume`, `eval`, `--config`,
/// `--print-config`, metrics.csv, TensorBoard, plots and NaN stops, through one generic path.
public protocol AlgorithmDefinition: Sendable {
    associatedtype Settings: AlgorithmSettings
    associatedtype State: Codable & Sendable
    associatedtype EvaluationOptions: SettingsTable
    associatedtype Evaluation: EvaluationReport

    /// The name `metarl train` takes and run directories record (`rl2`, `maml-fo`).
    var name: String { get }
    /// One line for `metarl train --help`.
    var summary: String { get }
    /// The run manifest's key for the settings (several algorithms may share one, as the
    /// MAML family shares `maml`); by default the name.
    var settingsKey: String { get }
    /// The task family a run uses when none is given.
    var defaultEnv: String { get }
    /// Checkpoint every this many iterations, keeping this many, unless told otherwise.
    var checkpointEvery: Int { get }
    var keepCheckpoints: Int { get }
    /// Threads when `--threads` is not given (results never depend on it).
    var defaultThreads: Int { get }

    /// Fixes what the algorithm's name implies about shared settings (`maml-fo` sets the
    /// first-order mode); called after the file and the flags are applied.
    func prepare(_ settings: inout Settings)
    /// The metric a run is judged by (progress line, plots).
    func headlineMetric(_ settings: Settings) -> String
    /// A fresh run on `prototype`'s family; the seed fixes everything random.
    func start<E: MetaEnv>(_ settings: Settings, prototype: E, seed: UInt64, threads: Int) throws -> any IterativeAlgorithm<State>
    /// The run continued from a checkpoint's state (checked against the settings).
    func restore<E: MetaEnv>(_ settings: Settings, prototype: E, state: State, threads: Int) throws -> any IterativeAlgorithm<State>
    /// A fresh run whose work is split over the processes of `group` (an `mpirun` job); every
    /// process gets the same state after every iteration. By default only a group of one.
    func start<E: MetaEnv>(_ settings: Settings, prototype: E, seed: UInt64, threads: Int,
                           group: any ProcessGroup) throws -> any IterativeAlgorithm<State>
    /// A checkpoint's run continued over the processes of `group`. By default only a group of one.
    func restore<E: MetaEnv>(_ settings: Settings, prototype: E, state: State, threads: Int,
                             group: any ProcessGroup) throws -> any IterativeAlgorithm<State>
    /// Meta-test of a checkpoint on fresh tasks of `prototype`'s family.
    func evaluate<E: MetaEnv>(_ settings: Settings, state: State, prototype: E, options: EvaluationOptions, seed: UInt64,
                              threads: Int) throws -> Evaluation
    /// `state` without what only further training needs (replay buffers): what `metarl
    /// export` keeps of a run, which `evaluate` accepts and `restore` may refuse. By default
    /// the state itself.
    func evaluationState(_ state: State) -> State
    /// A fresh run's `state` with the networks of `source`, another run's state of this
    /// algorithm, adapted to this run's family where the algorithm knows how (`metarl train
    /// --warm-start`, `settings` the new run's): the optimiser, generator and counters stay the
    /// fresh run's. By default refused.
    func warmStarted<E: MetaEnv>(_ state: State, from source: State, settings: Settings, prototype: E) throws -> State
}

/// An algorithm whose runs can split their work over the processes of a group (an `mpirun`
/// job). It writes only the group forms of `start` and `restore`; a run of one process is the
/// same run on a group of one.
public protocol ProcessGroupAlgorithmDefinition: AlgorithmDefinition {}

extension ProcessGroupAlgorithmDefinition {
    /// The group form on a group of one process.
    public func start<E: MetaEnv>(_ settings: Settings, prototype: E, seed: UInt64, threads: Int) throws -> any IterativeAlgorithm<State> {
        try start(settings, prototype: prototype, seed: seed, threads: threads, group: SingleProcess())
    }

    /// The group form on a group of one process.
    public func restore<E: MetaEnv>(_ settings: Settings, prototype: E, state: State, threads: Int) throws -> any IterativeAlgorithm<State> {
        try restore(settings, prototype: prototype, state: state, threads: threads, group: SingleProcess())
    }
}

/// Why a run cannot start from another run's networks (`metarl train --warm-start`).
public struct WarmStartError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// An algorithm that splits its work over the processes of a group (MPI ranks).
public protocol ProcessGroupMember {
    /// The processes the work is split over (results do not depend on it).
    var group: any ProcessGroup { get set }
}

extension AlgorithmDefinition {
    public func evaluationState(_ state: State) -> State { state }

    /// By default an algorithm does not start from another run's networks.
    public func warmStarted<E: MetaEnv>(_ state: State, from source: State, settings: Settings, prototype: E) throws -> State {
        throw WarmStartError("\(name) cannot start from another run's networks (--warm-start); rl2 can")
    }

    /// By default the settings are filed under the algorithm's own name.
    public var settingsKey: String { name }
    /// By default a checkpoint every 10 iterations, the newest 3 kept.
    public var checkpointEvery: Int { 10 }
    public var keepCheckpoints: Int { 3 }
    /// By default the cores, at most two.
    public var defaultThreads: Int { Swift.min(2, ProcessInfo.processInfo.activeProcessorCount) }
    /// By default the name implies nothing about the settings.
    public func prepare(_ settings: inout Settings) {}

    /// One process only, unless the algorithm splits its work over a group.
    public func start<E: MetaEnv>(_ settings: Settings, prototype: E, seed: UInt64, threads: Int,
                                  group: any ProcessGroup) throws -> any IterativeAlgorithm<State> {
        try requireSingleProcess(group)
        return try start(settings, prototype: prototype, seed: seed, threads: threads)
    }

    /// One process only, unless the algorithm splits its work over a group.
    public func restore<E: MetaEnv>(_ settings: Settings, prototype: E, state: State, threads: Int,
                                    group: any ProcessGroup) throws -> any IterativeAlgorithm<State> {
        try requireSingleProcess(group)
        return try restore(settings, prototype: prototype, state: state, threads: threads)
    }

    /// `algorithm` working on `group`'s processes, once every process is sure of at least one
    /// of the run's `shards` fixed parts of `work` (which the algorithm splits into that many
    /// parts whatever the process count); throws naming the shortfall otherwise.
    public func splitting<A: ProcessGroupMember>(_ algorithm: @autoclosure () throws -> A, shards: Int, of work: String,
                                                 over group: any ProcessGroup) throws -> A {
        guard shards >= group.size else {
            throw ProcessGroupError.mismatch("\(name) on \(group.size) processes needs --shards \(group.size) or more (this run has \(shards)): "
                + "it splits \(work) into that many fixed parts, and each rank takes a block of them")
        }
        var split = try algorithm()
        split.group = group
        return split
    }

    func requireSingleProcess(_ group: any ProcessGroup) throws {
        guard group.size == 1 else {
            throw ProcessGroupError.mismatch("\(name) does not split its work over MPI processes yet; run it without mpirun (\(group.size) ranks were started)")
        }
    }
}
