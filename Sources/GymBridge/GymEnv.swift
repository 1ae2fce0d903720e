import Envs
import Foundation
import TensorCore

/// A Gymnasium environment written in Python, stepped in worker processes, as a `MetaEnv`:
/// the algorithms see an ordinary task family. The env implements the convention RLlib's MAML
/// made common: `sample_tasks(n)`, `set_task(task)`, `get_task()`; tasks are pickled.
///
/// Each copy of a `GymEnv` value that is reset gets its own Python env (a slot on one of the
/// workers); a `VectorEnv` of them steps all its copies with one message per worker.
/// Every episode starts from a seed drawn from the copy's generator (the env's `reset(seed:)`,
/// Python's `random` and numpy's global generator are all seeded with it), so a seed reproduces
/// a run whatever the number of workers, and a resumed run is exact. (An env that draws from
/// the global generators while stepping shares them with the other copies of its worker.)
public struct GymEnv: MetaEnv, Sendable {
    public typealias Task = PythonTask

    let session: BridgeSession
    var lease: CopyLease?
    /// The task the next reset runs (set in the Python env at that reset).
    public private(set) var task: PythonTask

    init(session: BridgeSession) {
        self.session = session
        task = session.defaultTask
    }

    /// The family name (`gym:MODULE:ATTR`), as errors show it.
    public var name: String { session.name }
    /// A Box as the env declares it; a Discrete observation space arrives one-hot, as a Box of 0/1.
    public var observationSpace: Space { session.observationSpace }
    public var actionSpace: Space { session.actionSpace }
    /// `max_episode_steps` if given, else the env's spec or attribute of that name, else 200.
    public var maxEpisodeSteps: Int { session.horizon }

    /// `sample_tasks(n)` with the worker's generators seeded from `rng`. (A failed worker
    /// gives the default task here; the failure is raised by the next step.)
    public func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [PythonTask] {
        let seed = rng.next()
        do { return try session.sampleTasks(n, seed: seed) } catch { return Array(repeating: session.defaultTask, count: n) }
    }

    public mutating func setTask(_ task: PythonTask) { self.task = task }

    /// The tasks `sampleTasks(1, using: &rngs[i])` gives each copy, asked in one exchange.
    public static func sampleTaskCopies(
        _ copies: UnsafeMutableBufferPointer<GymEnv>, at indices: UnsafeBufferPointer<Int>,
        rngs: UnsafeMutableBufferPointer<Xoshiro256>
    ) -> [PythonTask] {
        guard let session = copies.first?.session else { return [] }
        let seeds = indices.map { rngs[$0].next() }
        do { return try session.sampleTasks(seeds: seeds) } catch { return Array(repeating: session.defaultTask, count: indices.count) }
    }

    /// This copy's slot, leased anew if it has none or shares it with another copy of the value.
    mutating func ownLease() -> CopyLease {
        if lease == nil || !isKnownUniquelyReferenced(&lease) { lease = session.lease() }
        return lease!
    }

    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        let item = BridgeSession.ResetItem(lease: ownLease(), task: task, seed: rng.next(), row: 0)
        do { try session.reset([item], observations: observation.baseAddress!) } catch { observation.update(repeating: 0) }
    }

    public mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256
    ) throws(EnvError) -> StepOutcome {
        var reward: Float = 0, terminated = false, truncated = false
        var clipped = [Float](repeating: 0, count: session.actionSize)
        try clipped.withUnsafeMutableBufferPointer { (c: inout UnsafeMutableBufferPointer<Float>) throws(EnvError) in
            try Self.checkAction(action.baseAddress!, count: action.count, space: actionSpace, environment: name, into: c.baseAddress!)
        }
        let lease = try steppable(self.lease)
        try clipped.withUnsafeBufferPointer { (c: UnsafeBufferPointer<Float>) throws(EnvError) in
            try session.step([.init(lease: lease, action: c.baseAddress!, row: 0)], observations: observation.baseAddress!,
                             rewards: &reward, terminated: &terminated, truncated: &truncated, successes: nil)
        }
        return StepOutcome(reward: reward, terminated: terminated, truncated: truncated)
    }

    /// True: the workers step while metarl goes on.
    public static var stepsWhileCallerWorks: Bool { true }

    /// Steps the whole batch with one message per worker, then resets the copies whose episode ended.
    public static func stepCopies(
        _ copies: UnsafeMutableBufferPointer<GymEnv>, rngs: UnsafeMutableBufferPointer<Xoshiro256>,
        actions: UnsafePointer<Float>, output: VectorStepOutput
    ) throws(EnvError) {
        guard !copies.isEmpty else { return }
        let started = try startStepCopies(copies, actions: actions, actionSize: output.actionSize)
        try finishStepCopies(started, copies, rngs: rngs, output: output)
    }

    /// Checks and writes the actions and sends each worker its part of the step. The session,
    /// its action space and its kept failure are read once for the batch, not per copy.
    public static func startStepCopies(
        _ copies: UnsafeMutableBufferPointer<GymEnv>, actions: UnsafePointer<Float>, actionSize m: Int
    ) throws(EnvError) -> any StartedStep {
        guard let session = copies.first?.session else { throw .failed(environment: "gym", reason: "a step of no copies") }
        if let failure = session.recordedFailure { throw failure }
        let space = session.actionSpace, name = session.name
        var clipped = [Float](repeating: 0, count: copies.count * m)
        return try clipped.withUnsafeMutableBufferPointer { (c: inout UnsafeMutableBufferPointer<Float>) throws(EnvError) -> BridgeStep in
            var items: [BridgeSession.StepItem] = []
            items.reserveCapacity(copies.count)
            for i in 0..<copies.count {
                guard copies[i].session === session else {
                    throw .failed(environment: name, reason: "one VectorEnv holds copies of two bridge sessions")
                }
                guard let lease = copies[i].lease else { throw .failed(environment: name, reason: "step called before reset") }
                try checkAction(actions + i * m, count: m, space: space, environment: name, into: c.baseAddress! + i * m)
                items.append(.init(lease: lease, action: c.baseAddress! + i * m, row: i))
            }
            return try session.startStep(items)
        }
    }

    /// Reads the workers' replies, then resets the copies whose episode ended.
    public static func finishStepCopies(
        _ started: any StartedStep, _ copies: UnsafeMutableBufferPointer<GymEnv>,
        rngs: UnsafeMutableBufferPointer<Xoshiro256>, output: VectorStepOutput
    ) throws(EnvError) {
        guard let session = copies.first?.session, let step = started as? BridgeStep else {
            throw .failed(environment: copies.first?.name ?? "gym", reason: "finishing a step the bridge did not start")
        }
        let n = output.observationSize
        try session.finishStep(step, observations: output.observations, rewards: output.rewards,
                               terminated: output.terminated, truncated: output.truncated, successes: output.successes)
        let ended = (0..<copies.count).filter { output.terminated[$0] || output.truncated[$0] }
        guard !ended.isEmpty else { return }
        for i in ended { (output.finalObservations + i * n).update(from: output.observations + i * n, count: n) }
        ended.withUnsafeBufferPointer { resetCopies(copies, at: $0, rngs: rngs, observations: output.observations, observationSize: n) }
        if let failure = session.recordedFailure { throw failure }
    }

    /// Resets the copies at `indices` with one message per worker.
    public static func resetCopies(
        _ copies: UnsafeMutableBufferPointer<GymEnv>, at indices: UnsafeBufferPointer<Int>,
        rngs: UnsafeMutableBufferPointer<Xoshiro256>, observations: UnsafeMutablePointer<Float>, observationSize n: Int
    ) {
        guard let session = copies.first?.session, !indices.isEmpty else { return }
        let items = indices.map { i in
            BridgeSession.ResetItem(lease: copies[i].ownLease(), task: copies[i].task, seed: rngs[i].next(), row: i)
        }
        do { try session.reset(items, observations: observations) } catch {
            for i in indices { (observations + i * n).update(repeating: 0, count: n) }
        }
    }

    /// For `metarl bench envs --bridge`: every worker steps the copies among `copies` that it
    /// holds (those reset at least once) in a plain Python loop for `seconds`, all workers at
    /// once; the steps/s of each worker, in worker order. The copies' episodes go on from
    /// wherever the loop leaves them.
    public static func plainLoopRates(of copies: [GymEnv], seconds: Double) throws(EnvError) -> [Double] {
        guard let session = copies.first?.session else { return [] }
        return try session.plainLoopRates(copies.compactMap(\.lease), seconds: seconds)
    }

    /// The copy's lease, or the kept failure / a step-before-reset error.
    func steppable(_ lease: CopyLease?) throws(EnvError) -> CopyLease {
        if let failure = session.recordedFailure { throw failure }
        guard let lease else { throw .failed(environment: name, reason: "step called before reset") }
        return lease
    }

    /// Checks one action row of `space` (an index of Discrete(n), or finite Box elements) and
    /// writes it, box elements clipped to the bounds, to `out`.
    static func checkAction(_ action: UnsafePointer<Float>, count: Int, space: Space, environment name: String,
                            into out: UnsafeMutablePointer<Float>) throws(EnvError) {
        let buffer = UnsafeBufferPointer(start: action, count: count)
        switch space {
        case .discrete(let k):
            out[0] = Float(try discreteAction(buffer, count: k, environment: name))
        case let .box(low, high, _):
            for j in 0..<low.count { out[j] = try clippedAction(buffer, j, low: low[j], high: high[j], environment: name) }
        }
    }
}

/// How the bridge runs: which Python, how many worker processes, how long a reply may take.
public struct GymBridgeOptions: Sendable, Equatable {
    /// The interpreter; `nil`: `$METARL_PYTHON`, else the bridge's private virtualenv (made on first use).
    public var python: String?
    /// Worker processes (copies are spread evenly over them).
    public var workers: Int
    /// Seconds one reply (a step of a worker's batch, a reset, sample_tasks) may take.
    public var timeout: Double
    /// Seconds a worker may take to import the env and build its first copy.
    public var startupTimeout: Double

    /// Options as given; the defaults are two workers, 60 s a reply, 300 s to start.
    public init(python: String? = nil, workers: Int = 2, timeout: Double = 60, startupTimeout: Double = 300) {
        self.python = python
        self.workers = workers
        self.timeout = timeout
        self.startupTimeout = startupTimeout
    }

    /// The defaults with `$METARL_PYTHON`, `$METARL_PYTHON_WORKERS` and `$METARL_PYTHON_TIMEOUT` applied.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> GymBridgeOptions {
        var options = GymBridgeOptions()
        if let python = environment["METARL_PYTHON"], !python.isEmpty { options.python = python }
        if let w = environment["METARL_PYTHON_WORKERS"].flatMap(Int.init), w >= 1 { options.workers = w }
        if let t = environment["METARL_PYTHON_TIMEOUT"].flatMap(Double.init), t > 0 { options.timeout = t }
        return options
    }

    /// The packages the private virtualenv gets from PyPI.
    public static let requirements = ["numpy>=1.26", "gymnasium==1.4.0"]

    /// Where the private virtualenv lives: `$METARL_PYTHON_VENV`, else `~/.cache/metarl/python`.
    public static var privateEnvironment: String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["METARL_PYTHON_VENV"], !path.isEmpty { return path }
        let cache = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache")
        return cache + "/metarl/python"
    }

    /// The interpreter to start: the one given, or the private virtualenv's, made now if absent.
    public func interpreter() throws -> String {
        if let python { return python }
        let venv = Self.privateEnvironment
        if !FileManager.default.fileExists(atPath: venv + "/.metarl-ready") { try Self.makePrivateEnvironment(at: venv) }
        return venv + "/bin/python"
    }

    /// Serialises the making of the virtualenv among the threads of this process.
    private static let making = NSLock()

    /// Creates the virtualenv at `path` with ``requirements`` (python3 -m venv, then pip) unless
    /// it is ready; built beside it and renamed into place, so processes racing to make it agree.
    public static func makePrivateEnvironment(at path: String, timeout: Double = 900) throws {
        making.lock()
        defer { making.unlock() }
        let ready = path + "/.metarl-ready"
        if FileManager.default.fileExists(atPath: ready) { return }
        FileHandle.standardError.write(Data("note: creating the Python bridge's virtualenv at \(path) (\(requirements.joined(separator: ", ")) from PyPI; once)\n".utf8))
        let staging = path + ".partial-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: staging) }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try run(["python3", "-m", "venv", staging], timeout: timeout)
        try run([staging + "/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"] + requirements, timeout: timeout)
        _ = FileManager.default.createFile(atPath: staging + "/.metarl-ready", contents: Data())
        if FileManager.default.fileExists(atPath: ready) { return }  // another process finished first
        // A half-made one (no marker) is replaced.
        try? FileManager.default.removeItem(atPath: path)
        if rename(staging, path) != 0 && !FileManager.default.fileExists(atPath: ready) {
            throw BridgeError("cannot move the new virtualenv to \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Runs a command to its end (killed after `timeout` seconds); a non-zero exit is an error.
    static func run(_ arguments: [String], timeout: Double) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        do { try process.run() } catch { throw BridgeError("cannot run \(arguments[0]): \(error.localizedDescription)") }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                throw BridgeError("\(arguments.prefix(3).joined(separator: " ")) did not finish within \(formatSeconds(timeout))")
            }
            usleep(20_000)
        }
        guard process.terminationStatus == 0 else {
            throw BridgeError("\(arguments.prefix(3).joined(separator: " ")) failed (exit status \(process.terminationStatus))")
        }
    }

    /// The worker module shipped with the bridge (a resource of this target), or `$METARL_GYM_WORKER`.
    public static func workerScript() throws -> String {
        if let path = ProcessInfo.processInfo.environment["METARL_GYM_WORKER"], !path.isEmpty { return path }
        let name = "metarl_gym_worker.py"
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        var candidates = [executable, Bundle.main.bundleURL, Bundle.main.executableURL?.deletingLastPathComponent()].compactMap { $0 }
        candidates += candidates.map { $0.appendingPathComponent("MetaRL_GymBridge.resources") }
        for directory in candidates.reversed() {
            let path = directory.appendingPathComponent(name).path
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        throw BridgeError("the bridge's worker module \(name) was not found beside the executable (in MetaRL_GymBridge.resources); set METARL_GYM_WORKER to its path")
    }
}

/// The `gym:` task families: `gym:MODULE:ATTR` (a `.py` file or an importable module, then a
/// class or factory returning a Gymnasium env) and `gym:id:NAME` (a registered Gymnasium id).
public enum GymFamilies {
    /// The provider of `gym:` names, running Python as `options` say.
    public static func provider(_ options: GymBridgeOptions = .fromEnvironment()) -> TaskFamilyProvider {
        TaskFamilyProvider(
            prefix: "gym",
            listing: """
            gym:MODULE:ATTR: a Python Gymnasium env with sample_tasks(n) / set_task(task) / get_task(), stepped in worker processes
                MODULE is a .py file or an importable module, ATTR a class or factory; gym:id:NAME makes a registered Gymnasium id
                --env-arg key=value: keyword arguments (Python literals); max_episode_steps=N sets the time limit (default: the env's, else 200)
                --python PATH (or METARL_PYTHON): the interpreter (default: a private virtualenv with numpy and gymnasium, made on first use)
            """
        ) { (name: String) throws(EnvSpecError) -> TaskFamily in
            let (module, attribute) = try parse(name)
            let canonical = "gym:\(module):\(attribute)"
            return TaskFamily(
                name: canonical, summary: "Python env \(module):\(attribute) through the Gymnasium bridge", acceptsAnyArgument: true
            ) { arguments in
                GymEnv(session: try BridgeSession(name: canonical, module: module, attribute: attribute, kwargs: arguments.texts, options: options))
            }
        }
    }

    /// `gym:MODULE:ATTR` split, a `.py` module made absolute (so a run resumes from any directory);
    /// `gym:id:NAME` keeps all of NAME, which may itself be Gymnasium's `module:Env-v0` form.
    static func parse(_ name: String) throws(EnvSpecError) -> (module: String, attribute: String) {
        let rest = name.dropFirst("gym:".count)
        if rest.hasPrefix("id:") {
            let id = String(rest.dropFirst("id:".count))
            guard !id.isEmpty else { throw .badFamilyName(name, reason: "expected gym:id:NAME with a registered Gymnasium id (or module:NAME)") }
            return ("id", id)
        }
        guard let colon = rest.lastIndex(of: ":") else {
            throw .badFamilyName(name, reason: "expected gym:MODULE:ATTR (a .py file or an importable module, then a class or factory) or gym:id:NAME")
        }
        var module = String(rest[..<colon])
        let attribute = String(rest[rest.index(after: colon)...])
        guard !module.isEmpty, !attribute.isEmpty else {
            throw .badFamilyName(name, reason: "expected gym:MODULE:ATTR (a .py file or an importable module, then a class or factory) or gym:id:NAME")
        }
        if module.hasSuffix(".py") {
            if !module.hasPrefix("/") { module = FileManager.default.currentDirectoryPath + "/" + module }
            module = URL(fileURLWithPath: module).standardizedFileURL.path
            guard FileManager.default.fileExists(atPath: module) else { throw .badFamilyName(name, reason: "no file \(module)") }
        }
        return (module, attribute)
    }
}
