import Envs
import Foundation
import MetaRL
import RL
@testable import Runs
import TensorCore
import Testing

/// An algorithm written outside the toolkit: random search over a constant action
/// preference, on any discrete family. It exists to show that registration alone gives an
/// algorithm training, resume, metrics, evaluation and NaN stops.
struct CounterSettings: AlgorithmSettings {
    var iterations = 4
    var episodes = 8
    /// The iteration whose metric is NaN (0: none), to exercise the NaN stop.
    var nanAt = 0
    static let flags = [SettingFlag("episodes", help: "episodes per iteration")]
    func validate() throws(ConfigError) { try ConfigError.check("episodes", episodes, 1...1000) }
}

struct CounterState: Codable, Sendable, Equatable {
    var rng: Xoshiro256
    var iteration = 0
    var steps = 0
    var best = -Double.infinity
}

struct Counter<E: MetaEnv>: IterativeAlgorithm {
    var settings: CounterSettings
    var prototype: E
    var state: CounterState
    var iteration: Int { state.iteration }
    var environmentSteps: Int { state.steps }
    var headlineMetric: String { "best_return" }

    mutating func iterate() throws -> [(String, Double)] {
        var env = prototype
        env.setTask(env.sampleTasks(1, using: &state.rng)[0])
        let stats = try evaluateRandom(&env)
        state.iteration += 1
        state.steps += stats.steps
        state.best = max(state.best, stats.mean)
        let value = settings.nanAt == state.iteration ? Double.nan : state.best
        return [("best_return", value), ("environment_steps", Double(state.steps))]
    }

    mutating func evaluateRandom(_ env: inout E) throws -> (mean: Double, steps: Int) {
        var obs = [Float](repeating: 0, count: env.observationSpace.flatSize), total = 0.0, steps = 0
        guard case .discrete(let n) = env.actionSpace else { throw ConfigError(field: "env", value: "box actions", allowed: "discrete") }
        for _ in 0..<settings.episodes {
            obs.withUnsafeMutableBufferPointer { env.reset(observation: $0, using: &state.rng) }
            for _ in 0..<env.maxEpisodeSteps {
                let outcome = try env.step([Float(state.rng.uniformInt(below: n))], using: &state.rng).outcome
                total += Double(outcome.reward)
                steps += 1
                if outcome.episodeEnded { break }
            }
        }
        return (total / Double(settings.episodes), steps)
    }
}

struct CounterReport: EvaluationReport {
    var best: Double
    /// The environment steps of the checkpoint evaluated.
    var steps: Int
    var adaptation: AdaptationCurve { AdaptationCurve(axis: "nothing", first: 0, values: [best], stderr: [0]) }
    func summary(algorithm: String, env: String) -> [String] { ["\(algorithm) on \(env): best \(best)"] }
}

struct CounterDefinition: AlgorithmDefinition {
    var name: String { "counter" }
    var summary: String { "random search, for the registry tests" }
    var defaultEnv: String { "bandit" }
    func headlineMetric(_ settings: CounterSettings) -> String { "best_return" }
    func start<E: MetaEnv>(_ settings: CounterSettings, prototype: E, seed: UInt64, threads: Int) throws -> any IterativeAlgorithm<CounterState> {
        Counter(settings: settings, prototype: prototype, state: CounterState(rng: Xoshiro256(seed: seed)))
    }
    func restore<E: MetaEnv>(_ settings: CounterSettings, prototype: E, state: CounterState, threads: Int) throws -> any IterativeAlgorithm<CounterState> {
        Counter(settings: settings, prototype: prototype, state: state)
    }
    func evaluate<E: MetaEnv>(_ settings: CounterSettings, state: CounterState, prototype: E, options: RL2EvaluationOptions,
                              seed: UInt64, threads: Int) throws -> CounterReport {
        CounterReport(best: state.best, steps: state.steps)
    }
}

@Suite struct AlgorithmRegistryTests {
    let counter = RegisteredAlgorithm(CounterDefinition())

    func train(_ directory: RunDirectory, settings: JSONValue, resume: Bool = false) throws -> TrainingOutcome {
        try counter.train(TrainingRequest(settings: settings, seed: 3, directory: directory, resume: resume, checkpointEvery: 1,
                                          keepCheckpoints: 10, threads: 1, progress: ProgressLine(isTerminal: false, output: { _ in })),
                          on: try spec("gridworld"))
    }

    /// A registered user algorithm trains, resumes exactly, logs and evaluates through the one path.
    @Test func aUserAlgorithmGetsTheWholeRunMachinery() throws {
        let root = temporaryDirectory("user-algorithm")
        defer { try? FileManager.default.removeItem(at: root) }
        let straight = RunDirectory(root.appendingPathComponent("straight")), resumed = RunDirectory(root.appendingPathComponent("resumed"))
        let settings = try counter.resolve(.object([:]))
        for d in [straight, resumed] {
            try d.create(manifest: RunManifest(algorithm: "counter", env: try spec("gridworld"), seed: 3, settingsKey: counter.settingsKey,
                                               settings: try SettingsCoding.decode(CounterSettings.self, from: settings)))
        }
        #expect(try train(straight, settings: settings).iteration == 4)
        _ = try train(resumed, settings: settings.setting(.integer(2), at: "iterations"))
        _ = try train(resumed, settings: settings, resume: true)
        let last = "checkpoints/00000004.ckpt"
        #expect(try Data(contentsOf: straight.url.appendingPathComponent(last)) == Data(contentsOf: resumed.url.appendingPathComponent(last)))
        #expect(try deterministicRows(straight.metricsURL) == deterministicRows(resumed.metricsURL))
        #expect(TensorBoardEventWriter.existingFiles(in: straight.url).count == 1)
        let output = try counter.evaluate(EvaluationRequest(algorithm: "counter", settings: settings, directory: straight,
                                                            options: .object([:]), seed: 1, threads: 1), on: try spec("gridworld"))
        #expect(output.lines.first?.hasPrefix("counter on gridworld: best") == true)
        #expect(output.numbers["best"] != nil)
        #expect(try counter.headlineMetric(settings) == "best_return")
        // An earlier checkpoint is evaluated by its iteration; one that is not kept is named with those that are.
        func evaluate(checkpoint: Int) throws -> EvaluationOutput {
            try counter.evaluate(EvaluationRequest(algorithm: "counter", settings: settings, directory: straight, checkpoint: checkpoint,
                                                   options: .object([:]), seed: 1, threads: 1), on: try spec("gridworld"))
        }
        let steps = try (1...4).map { Double(try straight.checkpoint(CounterState.self, iteration: $0).steps) }
        #expect(Set(steps).count == 4, "\(steps)")
        for (iteration, expected) in zip(1...4, steps) { #expect(try evaluate(checkpoint: iteration).numbers["steps"] == expected) }
        do { _ = try evaluate(checkpoint: 9); Issue.record("accepted") } catch {
            #expect("\(error)".contains("no checkpoint of iteration 9; it has iterations 1, 2, 3, 4"), "\(error)")
        }
    }

    /// A NaN metric stops the run naming the iteration; the last good checkpoint stays.
    @Test func aNaNStopsTheRunAndKeepsTheLastGoodCheckpoint() throws {
        let root = temporaryDirectory("user-nan")
        defer { try? FileManager.default.removeItem(at: root) }
        let directory = RunDirectory(root.appendingPathComponent("run"))
        let settings = try counter.resolve(.object(["nanAt": .integer(3)]))
        try directory.create(manifest: RunManifest(algorithm: "counter", env: try spec("gridworld"), seed: 3, settingsKey: "counter",
                                                   settings: try SettingsCoding.decode(CounterSettings.self, from: settings)))
        #expect(throws: NonFiniteError.self) { try train(directory, settings: settings) }
        #expect(directory.checkpointIterations() == [1, 2])
    }

    /// Settings come from one table: every key is a flag, absent keys keep their defaults,
    /// errors name the key and the flag.
    @Test func settingsAreOneMechanism() throws {
        #expect(SettingFlag.derivedFlag("trpo.maxKL") == "--trpo-max-kl")
        #expect(SettingFlag.derivedFlag("valueCoefficient") == "--value-coefficient")
        let rl2 = try algorithm("rl2")
        let names = rl2.settingFlags.map(\.name)
        #expect(names.contains("--hidden") && names.contains("--value-coefficient") && names.contains("--trpo-max-kl"))
        #expect(Set(names).count == names.count)
        let resolved = try rl2.resolve(.object(["hiddenSize": .integer(32), "trpo": .object(["damping": .number(0.5)])]))
        var expected = RL2Config()
        expected.hiddenSize = 32
        expected.trpo.damping = 0.5
        #expect(try SettingsCoding.decode(RL2Config.self, from: resolved) == expected)
        #expect(rl2.describe(ConfigError(field: "hiddenSize", value: "0", allowed: "1…4096")).hasPrefix("--hidden (hiddenSize): 0"))
        // A whole-number default says nothing of the field's type: the type decides the kind,
        // declared or not, and the message a bad value gets.
        let kinds = Dictionary(rl2.settingFlags.map { ($0.key, SettingsCoding.kind(of: $0, defaults: rl2.defaultSettings)) }) { a, _ in a }
        #expect(kinds["valueScale"] == .number && kinds["valueCoefficient"] == .number && kinds["hiddenSize"] == .integer)
        #expect(kinds["epochs"] == .integer && kinds["gamma"] == .number)
        let scale = try runMetarlCapturing(["train", "rl2", "--value-scale", "abc", "--print-config"])
        #expect(scale.status != 0 && scale.errors.contains("--value-scale abc: expected a number"), "\(scale.errors)")
        do { _ = try SettingsCoding.decode(RL2Config.self, from: .object(["epochs": .number(2.5)])); Issue.record("accepted") } catch {
            #expect("\(error)".contains("expected an integer"), "\(error)")
        }
        // The MAML family's names fix the mode, whatever the file said.
        let fo = try algorithm("maml-fo")
        #expect(try SettingsCoding.decode(MAMLConfig.self, from: try fo.resolve(.object(["mode": .string("meta-sgd")]))).mode == .firstOrder)
        #expect(try SettingsCoding.decode(MAMLConfig.self, from: try algorithm("reptile").resolve(.object([:]))).mode == .reptile)
    }

    /// A run whose algorithm or family this program does not register is a one-line error naming the registered ones.
    @Test func unregisteredNamesInARunDirectoryAreNamedErrors() throws {
        var made = try manifest("rl2", env: try spec("bandit"), seed: 1, RL2Config())
        made.algorithm = "my-algo"
        #expect(throws: RunError.self) { try catalog.algorithm(of: made, at: "DIR") }
        do { _ = try catalog.algorithm(of: made, at: "DIR") } catch { #expect("\(error)".contains("registered: rl2, maml")) }
        made.env = "my-family"
        do { _ = try catalog.envSpec(of: made, at: "DIR"); Issue.record("accepted") } catch {
            #expect("\(error)".contains("my-family") && "\(error)".contains("registered: bandit"))
        }
    }
}

@Suite struct OptionalSettingFlags {
    /// A setting whose default is absent (SAC's target entropy) still takes a value, negative
    /// ones included, in every algorithm that shows it.
    @Test(arguments: ["sac", "pearl"])
    func theTargetEntropyTakesANumber(algorithm: String) throws {
        let result = try runMetarlCapturing(["train", algorithm, "--env", "point-nav", "--update-target-entropy", "-2.5", "--print-config"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("targetEntropy: -2.5"))
        let help = try runMetarlCapturing(["train", algorithm, "--help"])
        #expect(help.output.contains("--update-polyak") && help.output.contains("the target critics follow"))
    }
}

@Suite struct WarmStartFlags {
    /// `--warm-start` takes a run of the same algorithm into a new run (an RL² agent of fewer
    /// arms or hidden units widened), and says why not otherwise (fewer units, another algorithm).
    @Test func warmStartChecksItsSource() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-warm-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let source = root.appendingPathComponent("k2").path
        let small = ["--episodes-per-trial", "3", "--trials-per-iteration", "8", "--minibatch-trials", "4", "--hidden", "8", "--iterations", "1", "--threads", "1"]
        var result = try runMetarlCapturing(["train", "rl2", "--env", "bandit", "--env-arg", "arms=2", "--out", source] + small)
        try #require(result.status == 0, "\(result.errors)")
        result = try runMetarlCapturing(["train", "rl2", "--env", "bandit", "--env-arg", "arms=4", "--warm-start", source,
                                         "--out", root.appendingPathComponent("k4").path] + small)
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("started from the networks of"))
        result = try runMetarlCapturing(["train", "maml", "--env", "point-nav", "--warm-start", source, "--out", root.appendingPathComponent("m").path])
        #expect(result.status != 0 && result.errors.contains("that run was made by rl2, this one is maml"), "\(result.errors)")
        result = try runMetarlCapturing(["train", "rl2", "--warm-start", source, "--resume", source])
        #expect(result.status != 0 && result.errors.contains("--warm-start starts a new run"), "\(result.errors)")
        result = try runMetarlCapturing(["train", "rl2", "--env", "bandit", "--env-arg", "arms=4", "--warm-start", source,
                                         "--out", root.appendingPathComponent("wide").path] + small.map { $0 == "8" ? "16" : $0 })
        #expect(result.status == 0 && result.output.contains("started from the networks of"), "\(result.errors)")  // grown to 16 units
        result = try runMetarlCapturing(["train", "rl2", "--env", "bandit", "--env-arg", "arms=4", "--warm-start", source,
                                         "--out", root.appendingPathComponent("narrow").path] + small.map { $0 == "8" ? "4" : $0 })
        #expect(result.status != 0 && result.errors.contains("does not fit this run"), "\(result.errors)")
    }
}

@Suite struct CheckpointCadence {
    /// `--checkpoint-every` and `--keep-checkpoints` are recorded in the run: a resume
    /// without them goes on checkpointing as the run started, and flags given to the resume
    /// change it from then on.
    @Test func aResumedRunKeepsItsCheckpointCadence() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-cadence-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let run = root.appendingPathComponent("run")
        let small = ["--episodes-per-trial", "3", "--trials-per-iteration", "8", "--minibatch-trials", "4", "--hidden", "8", "--threads", "1"]
        var result = try runMetarlCapturing(["train", "rl2", "--env", "bandit", "--iterations", "3", "--checkpoint-every", "1",
                                             "--keep-checkpoints", "1", "--out", run.path] + small)
        try #require(result.status == 0, "\(result.errors)")
        func checkpoints() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path).filter { $0.hasSuffix(".ckpt") }.sorted()
        }
        #expect(try checkpoints() == ["00000003.ckpt"])
        let manifest = try String(contentsOf: run.appendingPathComponent("run.json"), encoding: .utf8)
        #expect(manifest.contains("\"keepCheckpoints\" : 1") && manifest.contains("\"checkpointEvery\" : 1"), "\(manifest)")
        result = try runMetarlCapturing(["train", "rl2", "--resume", run.path, "--iterations", "5"])
        try #require(result.status == 0, "\(result.errors)")
        #expect(try checkpoints() == ["00000005.ckpt"])
        result = try runMetarlCapturing(["train", "rl2", "--resume", run.path, "--iterations", "7", "--keep-checkpoints", "2"])
        try #require(result.status == 0, "\(result.errors)")
        #expect(try checkpoints() == ["00000006.ckpt", "00000007.ckpt"])
        result = try runMetarlCapturing(["train", "rl2", "--resume", run.path, "--iterations", "8", "--keep-checkpoints", "0"])
        #expect(result.status != 0 && result.errors.contains("--keep-checkpoints 0: must be at least 1"), "\(result.errors)")
    }
}

@Suite struct StopSignals {
    /// SIGTERM during training ends the run after the iteration under way, with a checkpoint
    /// of that iteration (none was due) that equals a straight run's to the same iteration,
    /// a one-line message naming the signal and how to go on, and a non-zero status.
    @Test func sigtermEndsTheRunAfterTheIterationWithACheckpoint() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-stop-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let run = root.appendingPathComponent("run"), straight = root.appendingPathComponent("straight")
        let small = ["--env", "bandit", "--episodes-per-trial", "5", "--trials-per-iteration", "64", "--minibatch-trials", "16",
                     "--hidden", "16", "--threads", "1", "--seed", "3", "--checkpoint-every", "100000"]
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let errorsURL = root.appendingPathComponent("stderr.txt")
        let (process, errors) = try startMetarl(["train", "rl2", "--iterations", "100000", "--out", run.path] + small, errorsTo: errorsURL)
        let metrics = run.appendingPathComponent("metrics.csv")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, ((try? String(contentsOf: metrics, encoding: .utf8))?.split(separator: "\n").count ?? 0) < 3 {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let waited = 120 - deadline.timeIntervalSinceNow
        let rowsBefore = (try? String(contentsOf: metrics, encoding: .utf8))?.split(separator: "\n").count ?? -1
        process.terminate()  // SIGTERM
        let exitDeadline = Date().addingTimeInterval(120)
        while process.isRunning, Date() < exitDeadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try errors.close()
        let message = try String(contentsOf: errorsURL, encoding: .utf8)
        #expect(process.terminationStatus != 0)
        #expect(message.contains("stopped by SIGTERM after iteration") && message.contains("--resume \(run.path)"),
                "waited \(waited) s for \(rowsBefore) lines, exit after \(120 - exitDeadline.timeIntervalSinceNow) s, status \(process.terminationStatus) \(process.terminationReason == .uncaughtSignal): \(message.suffix(300))")
        let saved = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path).filter { $0.hasSuffix(".ckpt") }
        try #require(saved.count == 1, "\(saved)")
        let iteration = Int(saved[0].dropLast(5))!
        let rows = try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n").count - 1
        #expect(iteration >= 2 && rows == iteration)
        let result = try runMetarlCapturing(["train", "rl2", "--iterations", "\(iteration)", "--out", straight.path] + small)
        try #require(result.status == 0, "\(result.errors)")
        let a = try Data(contentsOf: run.appendingPathComponent("checkpoints/\(saved[0])"))
        let b = try Data(contentsOf: straight.appendingPathComponent("checkpoints/\(saved[0])"))
        #expect(a == b)
    }
}

extension StopSignals {
    /// Ctrl-C at a terminal (SIGINT to the whole process group) while `metarl` trains a
    /// Python task family: `metarl` ends with one line naming SIGINT and a non-zero status,
    /// no worker process is left (running or zombie), and the checkpoint it kept loads.
    @Test func ctrlCEndsAGymRunAndItsWorkers() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-ctrl-c-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let module = root.appendingPathComponent("walk_tasks.py")
        try Data("""
        import numpy as np
        import gymnasium as gym
        from gymnasium import spaces

        class Walk(gym.Env):
            def __init__(self):
                self.observation_space = spaces.Box(-50.0, 50.0, (1,), np.float32)
                self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
                self.goal, self.x = 0.0, 0.0
            def sample_tasks(self, n):
                return [float(g) for g in np.random.uniform(-3, 3, n)]
            def set_task(self, task):
                self.goal = task
            def get_task(self):
                return self.goal
            def reset(self, seed=None, options=None):
                super().reset(seed=seed)
                self.x = 0.0
                return np.array([self.x], np.float32), {}
            def step(self, action):
                self.x += float(action[0])
                return np.array([self.x], np.float32), -abs(self.x - self.goal), False, False, {}
        """.utf8).write(to: module)
        let run = root.appendingPathComponent("run")
        // Foundation starts the child as the leader of a process group of its own, as a shell
        // starts a foreground job.
        let errorsURL = root.appendingPathComponent("stderr.txt")
        let (process, errors) = try startMetarl(["train", "maml", "--env", "gym:\(module.path):Walk",
                                                 "--env-arg", "max_episode_steps=20", "--meta-batch-size", "2", "--fast-batch-size", "2",
                                                 "--hidden-sizes", "8", "--iterations", "100000", "--checkpoint-every", "1",
                                                 "--threads", "1", "--out", run.path], errorsTo: errorsURL)
        let pid = process.processIdentifier
        let metrics = run.appendingPathComponent("metrics.csv")
        let deadline = Date().addingTimeInterval(300)  // the first use of the bridge may make its virtualenv
        while process.isRunning, Date() < deadline,
              ((try? String(contentsOf: metrics, encoding: .utf8))?.split(separator: "\n").count ?? 0) < 3 {
            Thread.sleep(forTimeInterval: 0.05)
        }
        try #require(process.isRunning, "metarl ended early: \((try? String(contentsOf: errorsURL, encoding: .utf8))?.suffix(300) ?? "")")
        let workers = childProcesses(of: pid)
        #expect(workers.count == 2, "the default two workers: \(workers)")
        kill(-pid, SIGINT)  // the whole group, as the terminal sends it
        let exitDeadline = Date().addingTimeInterval(60)
        while process.isRunning, Date() < exitDeadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(-pid, SIGKILL); process.waitUntilExit() }
        try errors.close()
        let message = try String(contentsOf: errorsURL, encoding: .utf8)
        let last = message.split(separator: "\n").last.map(String.init) ?? ""
        #expect(process.terminationStatus != 0)
        #expect(last.hasPrefix("error: ") && last.contains("SIGINT"), "\(message.suffix(400))")
        let gone = Date().addingTimeInterval(10)
        while Date() < gone, workers.contains(where: { kill($0, 0) == 0 }) { Thread.sleep(forTimeInterval: 0.05) }
        for worker in workers { #expect(kill(worker, 0) == -1 && errno == ESRCH, "worker \(worker) is left") }
        let kept = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path)
            .filter { $0.hasSuffix(".ckpt") }
        #expect(!kept.isEmpty)
        let evaluated = try runMetarlCapturing(["eval", run.path, "--tasks", "2", "--json"])
        #expect(evaluated.status == 0, "the kept checkpoint loads: \(evaluated.errors)")
    }

    /// `metarl` with `arguments`, running, its stderr (progress lines, then the message) going to
    /// `errorsTo`: a pipe nobody reads would fill and block it.
    func startMetarl(_ arguments: [String], errorsTo url: URL) throws -> (Process, FileHandle) {
        let process = Process()
        process.executableURL = try metarlExecutable()
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let errors = try FileHandle(forWritingTo: url)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        return (process, errors)
    }

    /// The processes whose parent is `pid` (from /proc).
    func childProcesses(of pid: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> pid_t? in
            guard let child = pid_t(name),
                  let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // After "pid (comm) state": the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == pid ? child : nil
        }
    }
}
