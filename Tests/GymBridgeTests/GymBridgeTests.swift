import Envs
import Foundation
@testable import GymBridge
import MetaRL
import RL
import TensorCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Python task families written to a temporary directory, one `.py` file for the whole suite.
/// `Walk` is a 1-D walk to a goal (the task); its `fault` argument makes a copy misbehave from
/// the `fault_after`-th step of its life (over all its episodes) on: raise, exit, hang, return a wrong shape or a NaN, or dawdle.
enum Fixtures {
    static let source = #"""
    import os, time
    import numpy as np
    import gymnasium as gym
    from gymnasium import spaces


    class Walk(gym.Env):
        """Observation (position, goal); reward -|position - goal|; the task is the goal."""

        def __init__(self, fault="", fault_after=3, slow=0.0, arrays=False, action_shape=(1,)):
            self.arrays = arrays  # reward and flags as one-element arrays, the observation a list
            self.observation_space = spaces.Box(-50.0, 50.0, (2,), np.float32)
            self.action_space = spaces.Box(-1.0, 1.0, tuple(action_shape), np.float32)
            self.goal, self.fault, self.fault_after, self.slow = 0.0, fault, int(fault_after), float(slow)
            self.position, self.t = 0.0, 0  # t counts the copy's steps over all its episodes

        def sample_tasks(self, n):
            return [float(np.random.uniform(-5, 5)) for _ in range(n)]

        def set_task(self, task):
            self.goal = float(task)

        def get_task(self):
            return self.goal

        def observe(self):
            return np.array([self.position, self.goal], np.float32)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.position = float(self.np_random.uniform(-1, 1))
            return self.observe(), {}

        def step(self, action):
            self.t += 1
            if self.slow:
                time.sleep(self.slow)
            if self.fault and self.t >= self.fault_after:
                if self.fault == "raise":
                    raise RuntimeError("the simulator diverged")
                if self.fault == "exit":
                    os._exit(3)
                if self.fault == "hang":
                    time.sleep(3600)
                if self.fault == "shape":
                    return np.zeros(5, np.float32), 0.0, False, False, {}
                if self.fault == "nan":
                    return self.observe(), float("nan"), False, False, {}
                if self.fault == "print":
                    print("a chatty env prints on every step")
            assert np.shape(action) == self.action_space.shape, "action of shape %s" % (np.shape(action),)
            self.position += float(np.reshape(action, -1)[0]) + 0.1 * float(self.np_random.normal())
            reward, info = -abs(self.position - self.goal), {"success": float(abs(self.position - self.goal) < 0.5)}
            if self.arrays:
                return self.observe().tolist(), np.array([reward]), np.array([False]), np.array([False]), info
            return self.observe(), reward, False, False, info


    class Corridor(gym.Env):
        """Discrete observations and actions: walk left/right along 5 cells to the goal cell (the
        task). With `offset`, both spaces start there (Discrete(n, start=offset)): cells and actions
        are numbered from it, and the walk is the same."""

        def __init__(self, offset=0):
            self.observation_space = spaces.Discrete(5, start=offset)
            self.action_space = spaces.Discrete(2, start=offset)
            self.goal, self.cell, self.offset = 4, 0, offset

        def sample_tasks(self, n):
            return [int(np.random.randint(5)) for _ in range(n)]

        def set_task(self, task):
            self.goal = task

        def get_task(self):
            return self.goal

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.cell = int(self.np_random.integers(5))
            return self.cell + self.offset, {}

        def step(self, action):
            assert self.action_space.contains(action), "action %r outside %s" % (action, self.action_space)
            self.cell = min(4, max(0, self.cell + (1 if action == self.offset + 1 else -1)))
            done = self.cell == self.goal
            return self.cell + self.offset, float(done), done, False, {}


    class NoTasks(gym.Env):
        """An env that is not a task family: it has no set_task or get_task."""

        def __init__(self):
            self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
            self.action_space = spaces.Discrete(2)

        def sample_tasks(self, n):
            return [0] * n


    class OldReset(Walk):
        """reset(self) without Gymnasium's seed and options, returning only the observation."""

        def reset(self):
            self.position = float(self.np_random.uniform(-1, 1))
            return self.observe()


    def not_an_env():
        return 42


    gym.register(id="FixtureWalk-v0", entry_point=Walk, max_episode_steps=25)
    """#

    /// The fixture file's path (written once per test process).
    static let path: String = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-gym-fixtures-\(getpid())")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("bridge_fixtures.py")
        try? Data(source.utf8).write(to: file)
        return file.path
    }()

    /// Options for the tests: the default interpreter, a short timeout so a hang is found quickly.
    static func options(workers: Int = 2, timeout: Double = 20) -> GymBridgeOptions {
        var options = GymBridgeOptions.fromEnvironment()
        options.workers = workers
        options.timeout = timeout
        return options
    }

    /// The fixture env `attribute` with `arguments` (`key=value` texts).
    static func env(_ attribute: String, _ arguments: [String] = [], options: GymBridgeOptions = options()) throws -> GymEnv {
        let family = try GymFamilies.provider(options).family(named: "gym:\(path):\(attribute)")
        let resolved = try family.resolve(arguments)
        return try #require(try family.makeEnvironment(resolved) as? GymEnv)
    }
}

/// Whether process `pid` is gone entirely: neither running nor a zombie waiting to be reaped.
func isGone(_ pid: pid_t) -> Bool { kill(pid, 0) == -1 && errno == ESRCH }

/// The worker pids of a bridge env.
func workerPIDs(_ env: GymEnv) -> [pid_t] { env.session.workerPIDs }

/// Steps `vector` with `action` on every copy `steps` times, returning the rewards seen.
func run(_ vector: inout VectorEnv<GymEnv>, steps: Int, action: Float = 0.3) throws(EnvError) -> [Float] {
    var seen: [Float] = []
    let actions = [Float](repeating: action, count: vector.count * vector.actionSize)
    for _ in 0..<steps {
        try vector.step(actions)
        seen += vector.rewards + vector.observations
    }
    return seen
}

/// A bridge family behaves as a native one: spaces, tasks, seeded reproducibility, time limit.
@Suite(.serialized) struct GymBridgeBehaviourTests {
    /// The step message lists the slots in decimal, in the order given, with no stray separator.
    @Test func theStepMessageListsItsSlotsInDecimal() {
        #expect(BridgeSession.stepLine([(slot: 0, row: 0)]) == "step 0")
        let slots = [7, 0, 10, 1023, 4096, 99]
        #expect(BridgeSession.stepLine(slots.enumerated().map { (slot: $0.element, row: $0.offset) })
            == "step " + slots.map(String.init).joined(separator: ","))
    }

    @Test func spacesAndTasksComeFromTheEnv() throws {
        let env = try Fixtures.env("Walk")
        #expect(env.observationSpace.flatSize == 2)
        #expect(env.actionSpace == .box(low: [-1], high: [1], shape: [1]))
        #expect(env.maxEpisodeSteps == 200)
        let corridor = try Fixtures.env("Corridor", options: Fixtures.options(workers: 1))
        #expect(corridor.observationSpace == .box(low: 0, high: 1, shape: [5]), "a Discrete observation arrives one-hot")
        #expect(corridor.actionSpace == .discrete(2))
        var rng = Xoshiro256(seed: 4)
        let tasks = corridor.sampleTasks(6, using: &rng)
        var again = Xoshiro256(seed: 4)
        #expect(corridor.sampleTasks(6, using: &again) == tasks, "sample_tasks is seeded by the generator")
        #expect(Set(tasks).count > 1)
    }

    /// Gymnasium's `Discrete(n, start=s)` spaces: metarl's indices 0..<n are the values s..<s+n, so
    /// a corridor numbered from −3 steps exactly as one numbered from 0.
    @Test func discreteSpacesThatStartElsewhereActAsFromZero() throws {
        func rollout(_ arguments: [String]) throws -> [Float] {
            var corridor = VectorEnv(try Fixtures.env("Corridor", arguments, options: Fixtures.options(workers: 1)), count: 3, seed: 8)
            corridor.resetAll()
            var seen = corridor.observations
            for t in 0..<12 {
                try corridor.step((0..<3).map { Float(($0 + t) % 2) })
                seen += corridor.rewards + corridor.observations + corridor.terminated.map { $0 ? 1 : 0 }
            }
            return seen
        }
        let shifted = try rollout(["offset=-3"])
        #expect(shifted == (try rollout([])))
        #expect(shifted.contains(1), "the goal is reached on some step")
    }

    /// Rewards and flags that come as one-element arrays (and observations as lists), as some
    /// envs return them, read as the plain numbers would.
    @Test func oneElementArraysReadAsNumbers() throws {
        func rollout(_ arguments: [String]) throws -> [Float] {
            var vector = VectorEnv(try Fixtures.env("Walk", arguments, options: Fixtures.options(workers: 1)), count: 3, seed: 4)
            vector.resetAll()
            return try run(&vector, steps: 5)
        }
        #expect(try rollout(["arrays=True"]) == rollout([]))
    }

    /// An env whose reset takes no seed (an older signature) is still seeded: the bridge seeds
    /// its generator before the reset, so a seed reproduces the episode starts.
    @Test func aResetWithoutASeedArgumentIsSeededAllTheSame() throws {
        func starts(seed: UInt64) throws -> [Float] {
            var vector = VectorEnv(try Fixtures.env("OldReset", options: Fixtures.options(workers: 1)), count: 3, seed: seed)
            vector.resetAll()
            return vector.observations
        }
        let first = try starts(seed: 2)
        #expect(try starts(seed: 2) == first)
        #expect(try starts(seed: 3) != first)
    }

    /// A box action space of another shape than a vector (here 1 × 1, and a scalar) reaches
    /// the env in that shape and steps as the vector one does.
    @Test func boxActionsReachTheEnvInTheirShape() throws {
        func rollout(_ arguments: [String]) throws -> [Float] {
            var vector = VectorEnv(try Fixtures.env("Walk", arguments, options: Fixtures.options(workers: 1)), count: 3, seed: 6)
            vector.resetAll()
            return try run(&vector, steps: 5)
        }
        let plain = try rollout([])
        #expect(try rollout(["action_shape=(1, 1)"]) == plain)
        #expect(try rollout(["action_shape=()"]) == plain)
    }

    /// `gym:id:MODULE:NAME`, Gymnasium's own form, imports MODULE (which registers NAME) and
    /// makes the env with its registered time limit.
    @Test func aRegisteredIdWithItsModuleIsMade() throws {
        let directory = URL(fileURLWithPath: Fixtures.path).deletingLastPathComponent().path
        setenv("PYTHONPATH", directory, 1)
        let family = try GymFamilies.provider(Fixtures.options(workers: 1)).family(named: "gym:id:bridge_fixtures:FixtureWalk-v0")
        let env = try #require(try family.makeEnvironment(try family.resolve([])) as? GymEnv)
        #expect(env.maxEpisodeSteps == 25)
        #expect(env.observationSpace.flatSize == 2)
        var vector = VectorEnv(env, count: 2, seed: 1)
        vector.resetAll()
        #expect(try run(&vector, steps: 3).allSatisfy(\.isFinite))
    }

    @Test func aSeedReproducesTheStepsWhateverTheWorkerCount() throws {
        func rollout(workers: Int, seed: UInt64) throws -> [Float] {
            let env = try Fixtures.env("Walk", options: Fixtures.options(workers: workers))
            var vector = VectorEnv(env, count: 5, seed: seed)
            var rng = Xoshiro256(seed: seed)
            let tasks = env.sampleTasks(5, using: &rng)
            for i in 0..<5 { vector.setTask(tasks[i], at: i) }
            vector.resetAll()
            return try vector.observations + run(&vector, steps: 30)
        }
        let one = try rollout(workers: 1, seed: 7)
        #expect(try rollout(workers: 1, seed: 7) == one)
        #expect(try rollout(workers: 3, seed: 7) == one, "the work split does not change what a copy sees")
        #expect(try rollout(workers: 2, seed: 8) != one)
    }

    /// Steps started on two halves and finished in either order see what lockstep steps see,
    /// across episode ends (auto-reset) and whatever the worker count.
    @Test func halvesStartedAndFinishedInAnyOrderMatchLockstep() throws {
        func rollout(workers: Int, halves: Bool, reversed: Bool = false) throws -> [Float] {
            let env = try Fixtures.env("Walk", ["max_episode_steps=7"], options: Fixtures.options(workers: workers))
            var vector = VectorEnv(env, count: 6, seed: 5)
            vector.resetAll()
            var seen: [Float] = vector.observations
            for t in 0..<20 {
                let actions = (0..<6).map { Float(($0 + t) % 5) * 0.2 - 0.4 }
                if halves {
                    let parts = [0..<3, 3..<6]
                    for part in parts { try actions[(part.lowerBound)..<(part.upperBound)].withUnsafeBufferPointer { try vector.startStep($0, copies: part) } }
                    for part in reversed ? parts.reversed() : parts { try vector.finishStep(copies: part) }
                } else {
                    try vector.step(actions)
                }
                seen += vector.rewards + vector.observations + vector.finalObservations + vector.truncated.map { $0 ? 1 : 0 }
            }
            return seen
        }
        let lockstep = try rollout(workers: 1, halves: false)
        #expect(try rollout(workers: 1, halves: true) == lockstep)
        #expect(try rollout(workers: 2, halves: true, reversed: true) == lockstep)
        #expect(try rollout(workers: 3, halves: true) == lockstep)
    }

    /// MAML's episode sampler steps a bridge family in halves; a seed gives the same episodes
    /// whatever the worker count, and another seed others.
    @Test func theEpisodeSamplerInHalvesIsReproducibleWhateverTheWorkerCount() throws {
        func episodes(workers: Int, seed: UInt64) throws -> EpisodeBatch {
            let env = try Fixtures.env("Walk", ["max_episode_steps=9"], options: Fixtures.options(workers: workers))
            var rng = Xoshiro256(seed: 3)
            let policy = MLPPolicy(observationSize: 2, actionSpace: env.actionSpace, hiddenSizes: [8], using: &rng)
            let tasks = env.sampleTasks(5, using: &rng)
            return try sampleEpisodes(policy: policy, prototype: env, tasks: tasks, seed: seed)
        }
        let one = try episodes(workers: 1, seed: 11)
        #expect(one.mask.reduce(0, +) == 45, "5 episodes of 9 steps")
        let two = try episodes(workers: 2, seed: 11)
        #expect(two.observations == one.observations && two.actions == one.actions && two.rewards == one.rewards)
        #expect(try episodes(workers: 1, seed: 12).actions != one.actions)
    }

    /// RL²'s trial sampler steps a bridge family in two halves (the agent acts on one while
    /// the other steps): a seed gives the same trials whatever the number of workers.
    @Test func theTrialSamplerInHalvesIsReproducibleWhateverTheWorkerCount() throws {
        func trials(workers: Int, seed: UInt64) throws -> TrialBatch {
            let env = try Fixtures.env("Corridor", options: Fixtures.options(workers: workers))
            var rng = Xoshiro256(seed: 3)
            let inputSize = TrialEnv<GymEnv>.inputSize(observationSpace: env.observationSpace, actionSpace: env.actionSpace)
            let model = RecurrentActorCritic(inputSize: inputSize, actionCount: 2, cell: .gru, hiddenSize: 8, using: &rng)
            return try sampleTrials(model: model, prototype: env, trials: 5, episodesPerTrial: 2, seed: seed)
        }
        let one = try trials(workers: 1, seed: 11)
        #expect(one.valid.reduce(0, +) > 0 && one.episodeReturns.count == 5)
        let two = try trials(workers: 2, seed: 11)
        #expect(two.inputs == one.inputs && two.actions == one.actions && two.rewards == one.rewards)
        #expect(two.logProbs == one.logProbs && two.values == one.values && two.valid == one.valid)
        #expect(two.policyStates == one.policyStates)
        #expect(try trials(workers: 1, seed: 12).actions != one.actions)
    }

    /// Tasks drawn for several copies in one message are those each copy draws on its own.
    @Test func tasksDrawnTogetherAreThoseDrawnOneByOne() throws {
        let env = try Fixtures.env("Corridor", options: Fixtures.options(workers: 2))
        var together = VectorEnv(env, count: 5, seed: 21), alone = VectorEnv(env, count: 5, seed: 21)
        let tasks = together.sampleTasks(at: [0, 2, 3])
        #expect(tasks == [0, 2, 3].map { alone.sampleTask(at: $0) })
        #expect(Set(tasks).count > 1)
    }

    /// What an env prints goes to stderr, not into the replies: stepping goes on unchanged.
    @Test func anEnvThatPrintsStepsAsOneThatDoesNot() throws {
        func rollout(_ arguments: [String]) throws -> [Float] {
            let env = try Fixtures.env("Walk", arguments, options: Fixtures.options(workers: 2))
            var vector = VectorEnv(env, count: 3, seed: 4)
            vector.resetAll()
            return try run(&vector, steps: 6)
        }
        #expect(try rollout(["fault='print'", "fault_after=1"]) == rollout([]))
    }

    @Test func theTaskChangesTheReward() throws {
        var env = try Fixtures.env("Walk", options: Fixtures.options(workers: 1))
        var rng = Xoshiro256(seed: 1)
        var observation = [Float](repeating: 0, count: 2)
        var goals: [Float] = []
        for task in env.sampleTasks(3, using: &rng) {
            env.setTask(task)
            #expect(env.task == task)
            observation.withUnsafeMutableBufferPointer { env.reset(observation: $0, using: &rng) }
            goals.append(observation[1])
            let seen = try env.step([0.5], using: &rng)
            #expect(abs(seen.outcome.reward + abs(seen.observation[0] - seen.observation[1])) < 1e-4, "reward is -|position - goal|")
        }
        #expect(Set(goals).count == 3, "set_task took effect at the reset: \(goals)")
    }

    @Test func episodesAreTruncatedAtTheTimeLimit() throws {
        let env = try Fixtures.env("Walk", ["max_episode_steps=4"], options: Fixtures.options(workers: 1))
        #expect(env.maxEpisodeSteps == 4)
        var vector = VectorEnv(env, count: 2, seed: 3)
        vector.resetAll()
        var flags: [[Bool]] = []
        for _ in 0..<8 {
            try vector.step([0, 0])
            flags.append(vector.truncated)
            #expect(vector.terminated == [false, false])
        }
        #expect(flags.map { $0[0] } == [false, false, false, true, false, false, false, true])
    }

    @Test func terminatedIsKeptApartFromTruncated() throws {
        var env = try Fixtures.env("Corridor", options: Fixtures.options(workers: 1))
        var rng = Xoshiro256(seed: 2)
        env.setTask(try #require(env.sampleTasks(1, using: &rng).first))
        var observation = [Float](repeating: 0, count: 5)
        observation.withUnsafeMutableBufferPointer { env.reset(observation: $0, using: &rng) }
        #expect(observation.filter { $0 == 1 }.count == 1 && observation.reduce(0, +) == 1, "one-hot: \(observation)")
        // Right to the end, then left to the start: the walk passes the goal cell.
        var ended: StepOutcome?
        for action in [1, 1, 1, 1, 1, 0, 0, 0, 0, 0] {
            let outcome = try env.step(discrete: action, using: &rng).outcome
            if outcome.terminated || outcome.truncated { ended = outcome; break }
        }
        let outcome = try #require(ended)
        #expect(outcome.terminated && !outcome.truncated && outcome.reward == 1)
        #expect(throws: EnvError.self) { try env.step(discrete: 2, using: &rng) }
    }

    @Test func thePlainLoopReferenceRunsInEveryWorkerOnItsOwnCopies() throws {
        let env = try Fixtures.env("Corridor", options: Fixtures.options(workers: 2))
        var vector = VectorEnv(env, count: 5, seed: 1)
        vector.resetAll()
        let rates = try GymEnv.plainLoopRates(of: vector.envs, seconds: 0.05)
        #expect(rates.count == 2 && rates.allSatisfy { $0 > 0 }, "one rate per worker: \(rates)")
        try vector.step([Float](repeating: 1, count: 5))
        #expect(vector.observations.reduce(0, +) == 5, "the copies step on, one-hot, after the loop")
    }

    @Test func infoSuccessReachesTheVectorEnvAndNoReportIsNaN() throws {
        let walk = try Fixtures.env("Walk", options: Fixtures.options(workers: 2))
        var vector = VectorEnv(walk, count: 4, seed: 5)
        vector.resetAll()
        var solvedSteps = 0
        for _ in 0..<20 {
            try vector.step([Float](repeating: 0.05, count: 4))
            for i in 0..<4 {
                let position = vector.observations[2 * i], goal = vector.observations[2 * i + 1]
                #expect(vector.successes[i] == (abs(position - goal) < 0.5 ? 1 : 0), "info[\"success\"] of copy \(i)")
                if vector.successes[i] == 1 { solvedSteps += 1 }
            }
        }
        #expect(solvedSteps > 0 && solvedSteps < 80, "both outcomes occur: \(solvedSteps) of 80")
        var corridor = VectorEnv(try Fixtures.env("Corridor", options: Fixtures.options(workers: 1)), count: 2, seed: 5)
        corridor.resetAll()
        try corridor.step([1, 0])
        #expect(corridor.successes.allSatisfy { $0.isNaN }, "a family whose info has no success reports none")
    }

    @Test func evaluationReportsTheSuccessRateByInnerStepOnlyWhereTheFamilyReportsIt() throws {
        var settings = MAMLConfig()
        settings.hiddenSizes = [8]
        settings.fastBatchSize = 3
        var options = MAMLEvaluationOptions()
        options.tasks = 4
        let walk = try Fixtures.env("Walk", ["max_episode_steps=30"], options: Fixtures.options(workers: 2))
        let state = try MAML(config: settings, prototype: walk, seed: 1).state
        let report = try MAMLEvaluation(settings, state: state, prototype: walk, options: options, seed: 2, threads: 1)
        let rates = try #require(report.adaptation.successRate)
        #expect(rates.count == settings.innerAdaptationSteps + 1)
        // A rate over 4 tasks × 3 episodes: a multiple of 1/12 in [0, 1].
        for rate in rates { #expect(rate >= 0 && rate <= 1 && abs(rate * 12 - (rate * 12).rounded()) < 1e-9, "\(rate)") }
        #expect(report.summary(algorithm: "maml", env: "walk").last?.hasPrefix("success rate by inner step: 0: ") == true)
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        #expect(json.contains("\"success_rate\""))

        let corridor = try Fixtures.env("Corridor", ["max_episode_steps=10"], options: Fixtures.options(workers: 1))
        let plain = try MAMLEvaluation(settings, state: try MAML(config: settings, prototype: corridor, seed: 1).state,
                                       prototype: corridor, options: options, seed: 2, threads: 1)
        #expect(plain.adaptation.successRate == nil)
        #expect(!plain.summary(algorithm: "maml", env: "corridor").joined().contains("success"))
    }
}

/// Faults of the Python side: each one a single error line naming the env, the worker and the
/// cause; every worker process ends and is reaped (no orphan, no zombie).
@Suite(.serialized) struct GymBridgeFaultTests {
    /// Steps a 4-copy vector env of `Walk` with `arguments` until it throws; returns the error and the workers.
    func failure(_ arguments: [String], timeout: Double = 20, during: ((GymEnv) -> Void)? = nil) throws -> (EnvError, [pid_t]) {
        let env = try Fixtures.env("Walk", arguments, options: Fixtures.options(workers: 2, timeout: timeout))
        let pids = workerPIDs(env)
        #expect(pids.count == 2 && pids.allSatisfy { kill($0, 0) == 0 })
        var vector = VectorEnv(env, count: 4, seed: 1)
        vector.resetAll()
        during?(env)
        do {
            _ = try run(&vector, steps: 10)
        } catch {
            return (error, pids)
        }
        Issue.record("no error after 10 steps")
        throw EnvError.failed(environment: env.name, reason: "no failure")
    }

    func expectAllGone(_ pids: [pid_t]) {
        for pid in pids { #expect(isGone(pid), "worker \(pid) still exists (orphan or zombie)") }
    }

    @Test func aRaisingEnvIsOneLineNamingTheWorkerTheEnvAndTheException() throws {
        let (error, pids) = try failure(["fault=raise"])
        let line = error.description
        #expect(!line.contains("\n"))
        #expect(line.contains("gym:\(Fixtures.path):Walk"))
        #expect(line.contains("worker 0, step: RuntimeError: the simulator diverged (bridge_fixtures.py:"), "\(line)")
        expectAllGone(pids)
    }

    @Test func aWorkerThatExitsMidRunIsReported() throws {
        let (error, pids) = try failure(["fault=exit"])
        #expect(error.description.contains("worker 0, step: exited with status 3"), "\(error)")
        expectAllGone(pids)
    }

    @Test func aWorkerKilledMidStepIsReported() throws {
        let env = try Fixtures.env("Walk", ["slow=0.5"], options: Fixtures.options(workers: 2))
        let pids = workerPIDs(env)
        var vector = VectorEnv(env, count: 4, seed: 1)
        vector.resetAll()
        let victim = pids[1]
        let killer = Thread { usleep(200_000); kill(victim, SIGKILL) }
        killer.start()
        #expect {
            try vector.step([Float](repeating: 0, count: 4))
        } throws: { error in
            let line = "\(error)"
            return line.contains("worker 1, step: was killed by signal 9 (SIGKILL)") && line.contains("Walk")
        }
        expectAllGone(pids)
        // Every later use of the session gives the same error, without waiting.
        #expect(throws: EnvError.self) { try vector.step([Float](repeating: 0, count: 4)) }
    }

    @Test func aHangPastTheTimeoutIsReportedAndTheWorkersEnded() throws {
        let start = Date()
        let (error, pids) = try failure(["fault=hang"], timeout: 1.5)
        #expect(error.description.contains("step: did not answer 'step' within 1.5 s"), "\(error)")
        #expect(Date().timeIntervalSince(start) < 20)
        expectAllGone(pids)
    }

    @Test func aWrongShapeIsReported() throws {
        let (error, pids) = try failure(["fault=shape"])
        #expect(error.description.contains("observation has shape (5,), the observation space (2,)"), "\(error)")
        expectAllGone(pids)
    }

    @Test func aNaNRewardIsReported() throws {
        let (error, pids) = try failure(["fault=nan"])
        #expect(error.description.contains("step gave reward nan"), "\(error)")
        expectAllGone(pids)
    }

    @Test func anEnvWithoutTheTaskMethodsIsRefusedAtStart() {
        #expect {
            _ = try Fixtures.env("NoTasks")
        } throws: { error in
            "\(error)".contains("the env has no set_task, get_task methods (a task family needs sample_tasks(n), set_task(task), get_task())")
                && "\(error)".contains("NoTasks worker 0")
        }
    }

    @Test func aMissingAttributeOrModuleIsNamed() {
        #expect {
            _ = try Fixtures.env("Nowhere")
        } throws: { "\($0)".contains("has no attribute Nowhere; it has: Corridor, NoTasks, OldReset, Walk") }
        #expect {
            _ = try GymFamilies.provider(Fixtures.options()).family(named: "gym:/no/such/file.py:Env")
        } throws: { "\($0)".contains("no file /no/such/file.py") }
        #expect {
            let family = try GymFamilies.provider(Fixtures.options(workers: 1)).family(named: "gym:no_such_module_xyz:Env")
            _ = try family.makeEnvironment(try family.resolve([]))
        } throws: { "\($0)".contains("cannot import module no_such_module_xyz") }
        #expect {
            _ = try Fixtures.env("not_an_env", options: Fixtures.options(workers: 1))
        } throws: { "\($0)".contains("returned int, which is not a Gymnasium env") }
    }

    @Test func aMissingInterpreterIsNamed() {
        var options = Fixtures.options(workers: 1)
        options.python = "/no/such/python3"
        #expect {
            _ = try Fixtures.env("Walk", options: options)
        } throws: { "\($0)".contains("cannot start /no/such/python3") }
    }

    @Test func endingTheSessionEndsTheWorkers() throws {
        var pids: [pid_t] = []
        do {
            let env = try Fixtures.env("Walk")
            pids = workerPIDs(env)
            var vector = VectorEnv(env, count: 3, seed: 2)
            vector.resetAll()
            _ = try run(&vector, steps: 3)
        }
        expectAllGone(pids)
    }
}
