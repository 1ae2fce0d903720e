import Envs
import Foundation
import RL
import TensorCore

/// An algorithm registered with `Runs`: an `AlgorithmDefinition` behind names and
/// closures that work on any task family and on settings held as data, so that one
/// training path, one evaluation path, one config reader and one command line serve every
/// algorithm alike.
public struct RegisteredAlgorithm: Sendable {
    /// The name `metarl train` takes and run directories record.
    public let name: String
    /// One line for `metarl train --help`.
    public let summary: String
    /// The run manifest's key for the settings.
    public let settingsKey: String
    /// The task family a run uses when none is given.
    public let defaultEnv: String
    /// Checkpoint interval and count, and threads, unless the command line says otherwise.
    public let checkpointEvery: Int
    public let keepCheckpoints: Int
    public let defaultThreads: Int
    /// The settings' defaults, as this algorithm prepares them.
    public let defaultSettings: JSONValue
    /// Every settings flag (table entries, then derived ones) and the evaluation options' flags.
    public let settingFlags: [SettingFlag]
    public let evaluationFlags: [SettingFlag]
    /// The evaluation options' defaults.
    public let defaultEvaluationOptions: JSONValue

    let canonical: @Sendable (JSONValue) throws -> (settings: JSONValue, iterations: Int, headline: String)
    let trainer: @Sendable (TrainingRequest, EnvSpec) throws -> TrainingOutcome
    let evaluator: @Sendable (EvaluationRequest, EnvSpec) throws -> EvaluationOutput
    let exporter: @Sendable (RunDirectory, RunDirectory, (String) -> Void) throws -> Int
    let describeError: @Sendable (ConfigError) -> String

    /// Registers `definition`.
    public init<A: AlgorithmDefinition>(_ definition: A) {
        name = definition.name
        summary = definition.summary
        settingsKey = definition.settingsKey
        defaultEnv = definition.defaultEnv
        checkpointEvery = definition.checkpointEvery
        keepCheckpoints = definition.keepCheckpoints
        defaultThreads = definition.defaultThreads
        var defaults = A.Settings()
        definition.prepare(&defaults)
        defaultSettings = (try? SettingsCoding.encode(defaults)) ?? .object([:])
        settingFlags = (try? SettingsCoding.flags(of: A.Settings.self)) ?? []
        evaluationFlags = (try? SettingsCoding.flags(of: A.EvaluationOptions.self)) ?? []
        defaultEvaluationOptions = (try? SettingsCoding.encode(A.EvaluationOptions())) ?? .object([:])
        canonical = { given in
            let settings = try Self.typed(definition, given)
            return (try SettingsCoding.encode(settings), settings.iterations, definition.headlineMetric(settings))
        }
        trainer = { request, spec in
            try spec.open(TrainingOpener(definition: definition, settings: try Self.typed(definition, request.settings), request: request))
        }
        evaluator = { request, spec in
            let options = try SettingsCoding.decode(A.EvaluationOptions.self, from: request.options)
            do { try options.validate() } catch let error as ConfigError { throw RunError(SettingsCoding.describe(error, in: A.EvaluationOptions.self)) }
            let settings = try Self.typed(definition, request.settings)
            let state: A.State
            if let iteration = request.checkpoint {
                state = try request.directory.checkpoint(A.State.self, iteration: iteration)
            } else if let (_, newest) = try request.directory.latestCheckpoint(A.State.self, notes: request.notes) {
                state = newest
            } else {
                throw RunError("\(request.directory.url.path) has no usable checkpoint")
            }
            let report = try spec.open(EvaluationOpener(definition: definition, settings: settings, state: state, options: options,
                                                        seed: request.seed, threads: request.threads))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return EvaluationOutput(json: try encoder.encode(report), lines: report.summary(algorithm: request.algorithm, env: spec.label),
                                    adaptation: report.adaptation)
        }
        describeError = { SettingsCoding.describe($0, in: A.Settings.self) }
        exporter = { source, destination, notes in
            guard let (iteration, state) = try source.latestCheckpoint(A.State.self, notes: notes) else {
                throw RunError("\(source.url.path) has no usable checkpoint")
            }
            try destination.saveCheckpoint(definition.evaluationState(state), iteration: iteration, keep: 1)
            return iteration
        }
    }

    /// The settings read from `given`, prepared for this algorithm and validated.
    static func typed<A: AlgorithmDefinition>(_ definition: A, _ given: JSONValue) throws -> A.Settings {
        var settings = try SettingsCoding.decode(A.Settings.self, from: given)
        definition.prepare(&settings)
        try settings.validate()
        return settings
    }

    /// `given` read, prepared and validated, written back with every key: what run.json records.
    /// Errors are `ConfigError`s (by key path) or decoding errors.
    public func resolve(_ given: JSONValue) throws -> JSONValue { try canonical(given).settings }

    /// The iterations a resolved settings section asks for.
    public func iterations(_ settings: JSONValue) throws -> Int { try canonical(settings).iterations }

    /// The headline metric of a run with these settings.
    public func headlineMetric(_ settings: JSONValue) throws -> String { try canonical(settings).headline }

    /// A `ConfigError` of this algorithm's settings as one line naming the flag that sets it.
    public func describe(_ error: ConfigError) -> String { describeError(error) }

    /// Trains (or, with `request.resume`, continues) a run on `spec`'s family.
    public func train(_ request: TrainingRequest, on spec: EnvSpec) throws -> TrainingOutcome { try trainer(request, spec) }

    /// Writes the newest good checkpoint of `source` into `destination` (which must exist)
    /// as the algorithm keeps it for evaluation (`AlgorithmDefinition.evaluationState`);
    /// returns its iteration. `notes` receives a line for each checkpoint skipped.
    public func exportCheckpoint(from source: RunDirectory, to destination: RunDirectory, notes: (String) -> Void) throws -> Int {
        try exporter(source, destination, notes)
    }

    /// Evaluates the newest good checkpoint of a run on fresh tasks of `spec`'s family.
    public func evaluate(_ request: EvaluationRequest, on spec: EnvSpec) throws -> EvaluationOutput { try evaluator(request, spec) }
}

/// What one training call needs besides the algorithm and the family.
public struct TrainingRequest {
    /// The settings section (read with defaults, prepared, validated by the algorithm).
    public var settings: JSONValue
    /// The seed of a fresh run (a resumed run continues its saved generator).
    public var seed: UInt64
    /// Where the run is written.
    public var directory: RunDirectory
    /// Continue from the newest good checkpoint instead of starting fresh.
    public var resume: Bool
    /// Checkpoint every this many iterations, keeping this many.
    public var checkpointEvery: Int
    public var keepCheckpoints: Int
    /// Threads for the algorithm (results never depend on it).
    public var threads: Int
    /// Where the progress line goes.
    public var progress: ProgressLine
    /// Receives notes such as a skipped corrupt checkpoint.
    public var notes: (String) -> Void
    /// The processes the run is split over (an `mpirun` job); rank 0 alone writes the run directory.
    public var group: any ProcessGroup
    /// A run of the same algorithm whose newest good checkpoint's networks a fresh run starts
    /// from (`AlgorithmDefinition.warmStarted`); ignored when resuming.
    public var warmStart: RunDirectory?

    /// A request to train into `directory` with the algorithm's checkpoint defaults unless given.
    public init(settings: JSONValue, seed: UInt64, directory: RunDirectory, resume: Bool, checkpointEvery: Int, keepCheckpoints: Int,
                threads: Int, progress: ProgressLine = ProgressLine(), notes: @escaping (String) -> Void = { _ in },
                group: any ProcessGroup = SingleProcess()) {
        self.group = group
        self.settings = settings
        self.seed = seed
        self.directory = directory
        self.resume = resume
        self.checkpointEvery = checkpointEvery
        self.keepCheckpoints = keepCheckpoints
        self.threads = threads
        self.progress = progress
        self.notes = notes
    }
}

/// Where a training call ended.
public struct TrainingOutcome: Sendable, Equatable {
    /// Iterations completed and environment steps taken when training stopped.
    public var iteration: Int
    public var environmentSteps: Int
}

/// What one evaluation call needs besides the algorithm and the family.
public struct EvaluationRequest {
    /// The run's algorithm name (for the summary) and its resolved settings.
    public var algorithm: String
    public var settings: JSONValue
    /// The run directory whose newest good checkpoint is evaluated.
    public var directory: RunDirectory
    /// The iteration of the checkpoint to evaluate instead of the newest good one.
    public var checkpoint: Int?
    /// The evaluation options given (an object; absent keys at their defaults).
    public var options: JSONValue
    /// The seed of the fresh tasks and actions.
    public var seed: UInt64
    public var threads: Int
    /// Receives notes such as a skipped corrupt checkpoint.
    public var notes: (String) -> Void

    /// A request to evaluate `directory`'s newest good checkpoint, or the one of iteration `checkpoint`.
    public init(algorithm: String, settings: JSONValue, directory: RunDirectory, checkpoint: Int? = nil, options: JSONValue, seed: UInt64,
                threads: Int, notes: @escaping (String) -> Void = { _ in }) {
        self.algorithm = algorithm
        self.settings = settings
        self.directory = directory
        self.checkpoint = checkpoint
        self.options = options
        self.seed = seed
        self.threads = threads
        self.notes = notes
    }
}

/// An evaluation's report: its JSON (sorted keys), its text lines, its adaptation curve.
public struct EvaluationOutput: Sendable {
    /// `metarl eval --json`'s object.
    public var json: Data
    /// `metarl eval`'s text.
    public var lines: [String]
    /// The curve `metarl plot --adaptation` draws.
    public var adaptation: AdaptationCurve

    /// The JSON object's top-level numbers, by key (for callers that read one figure).
    public var numbers: [String: Double] {
        guard let object = try? JSONDecoder().decode(JSONValue.self, from: json).object else { return [:] }
        return object.compactMapValues { v in
            switch v {
            case .integer(let i): Double(i)
            case .number(let d): d
            default: nil
            }
        }
    }
}

/// Opens the family for training: starts or restores the algorithm and hands it to the loop.
struct TrainingOpener<A: AlgorithmDefinition>: MetaEnvConsumer {
    var definition: A
    var settings: A.Settings
    var request: TrainingRequest

    func run<E: MetaEnv>(_ prototype: E) throws -> TrainingOutcome {
        var algorithm: (any IterativeAlgorithm<A.State>)?
        if request.resume {
            if let (iteration, state) = try request.directory.latestCheckpoint(A.State.self, notes: request.notes) {
                algorithm = try definition.restore(settings, prototype: prototype, state: state, threads: request.threads,
                                                   group: request.group)
                request.notes("resuming from iteration \(iteration)")
            } else {
                request.notes("no usable checkpoint in \(request.directory.url.path); starting from iteration 0")
            }
        }
        var running = try algorithm ?? definition.start(settings, prototype: prototype, seed: request.seed, threads: request.threads,
                                                        group: request.group)
        if algorithm == nil, let source = request.warmStart {
            guard let (iteration, sourceState) = try source.latestCheckpoint(A.State.self, notes: request.notes) else {
                throw RunError("--warm-start \(source.url.path): no usable checkpoint to start from")
            }
            let state = try definition.warmStarted(running.state, from: sourceState, settings: settings, prototype: prototype)
            running = try definition.restore(settings, prototype: prototype, state: state, threads: request.threads, group: request.group)
            request.notes("started from the networks of \(source.url.path) at iteration \(iteration)")
        }
        if request.group.size > 1 {
            // Every rank must train the same settings from the same iteration and state.
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            var identity: [UInt8] = []
            fingerprint(try encoder.encode(settings)).append(to: &identity)
            running.iteration.append(to: &identity)
            fingerprint(try encoder.encode(running.state)).append(to: &identity)
            try requireSameOnEveryRank(identity, what: "run (its settings, or the checkpoint it resumed from)", group: request.group)
        }
        var loop = TrainingLoop(directory: request.directory, iterations: settings.iterations, checkpointEvery: request.checkpointEvery,
                                keepCheckpoints: request.keepCheckpoints, progress: request.progress, writes: request.group.isLeader)
        loop.stopsBetweenIterations = request.group.size == 1
        try loop.run(&running)
        return TrainingOutcome(iteration: running.iteration, environmentSteps: running.environmentSteps)
    }
}

/// Opens the family for evaluation.
struct EvaluationOpener<A: AlgorithmDefinition>: MetaEnvConsumer {
    var definition: A
    var settings: A.Settings
    var state: A.State
    var options: A.EvaluationOptions
    var seed: UInt64
    var threads: Int

    func run<E: MetaEnv>(_ prototype: E) throws -> A.Evaluation {
        try definition.evaluate(settings, state: state, prototype: prototype, options: options, seed: seed, threads: threads)
    }
}

/// The algorithms a program knows, by name: the built-in ones and any the user adds.
public struct AlgorithmRegistry: Sendable {
    /// The registered algorithms, in registration order.
    public private(set) var algorithms: [RegisteredAlgorithm]

    /// An empty registry.
    public init() { algorithms = [] }

    /// A registry of `algorithms`, refusing two with one name.
    public init(_ algorithms: [RegisteredAlgorithm]) throws {
        self.init()
        for a in algorithms { try register(a) }
    }

    /// Adds `algorithm`; a name already registered is an error.
    public mutating func register(_ algorithm: RegisteredAlgorithm) throws {
        guard !algorithms.contains(where: { $0.name == algorithm.name }) else {
            throw RunError("two algorithms are registered as '\(algorithm.name)'")
        }
        algorithms.append(algorithm)
    }

    /// The registered names, in registration order.
    public var names: [String] { algorithms.map(\.name) }

    /// The algorithm registered as `name`, or an error naming the registered ones.
    public func algorithm(named name: String) throws -> RegisteredAlgorithm {
        guard let a = algorithms.first(where: { $0.name == name }) else {
            throw RunError("unknown algorithm '\(name)'; registered: \(names.joined(separator: ", "))")
        }
        return a
    }
}

/// What a program knows: its task families and its algorithms. `metarl`'s catalog is the
/// built-in one (`MetaRLCLI`); a user's executable extends it with its own.
public struct Catalog: Sendable {
    public var families: TaskFamilyRegistry
    public var algorithms: AlgorithmRegistry

    /// A catalog of these families and algorithms.
    public init(families: TaskFamilyRegistry, algorithms: AlgorithmRegistry) {
        self.families = families
        self.algorithms = algorithms
    }

    /// `self` with `families` and `algorithms` added (names must not clash).
    public func adding(families: [TaskFamily] = [], algorithms: [RegisteredAlgorithm] = []) throws -> Catalog {
        var catalog = self
        for f in families { try catalog.families.register(f) }
        for a in algorithms { try catalog.algorithms.register(a) }
        return catalog
    }

    /// The algorithm that made a run, or an error naming the registered ones.
    public func algorithm(of manifest: RunManifest, at path: String) throws -> RegisteredAlgorithm {
        do { return try algorithms.algorithm(named: manifest.algorithm) } catch {
            throw RunError("\(path) was made by '\(manifest.algorithm)', which this program does not register; registered: \(algorithms.names.joined(separator: ", "))")
        }
    }

    /// The family a run trained on, or an error naming the registered ones.
    public func envSpec(of manifest: RunManifest, at path: String) throws -> EnvSpec {
        do { return try manifest.envSpec(in: families) } catch EnvSpecError.unknownFamily(let name, let registered) {
            throw RunError("\(path) trained on env '\(name)', which this program does not register; registered: \(registered.joined(separator: ", "))")
        }
    }
}
