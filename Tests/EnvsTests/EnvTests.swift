import Foundation
import Testing
import TensorCore
@testable import Envs


/// Dynamics on hand-computed cases, determinism, terminated vs truncated, invalid actions.
@Suite struct EnvDynamicsTests {
    @Test func banditPaysWithItsArmProbabilities() throws {
        var env = BernoulliBandit(arms: 3)
        env.setTask(.init(armProbabilities: [0, 1, 0.3]))
        var rng = Xoshiro256(seed: 1)
        _ = env.reset(using: &rng)
        #expect(try env.step(discrete: 0, using: &rng).outcome == StepOutcome(reward: 0, terminated: true, truncated: false, expectedReward: 0))
        #expect(try env.step(discrete: 1, using: &rng).outcome.reward == 1)
        var paid = 0.0
        for _ in 0..<20_000 { paid += Double(try env.step(discrete: 2, using: &rng).outcome.reward) }
        #expect(abs(paid / 20_000 - 0.3) < 0.015)
    }

    /// Families that know a step's expected reward report it (a bandit arm's probability, a
    /// tabular MDP's mean reward), through one step and through a vector env's batched step;
    /// others report NaN.
    @Test func expectedRewardsAreTheTaskMeansWhereKnown() throws {
        var rng = Xoshiro256(seed: 3)
        var bandit = BernoulliBandit(arms: 3)
        bandit.setTask(.init(armProbabilities: [0.2, 0.9, 0.5]))
        _ = bandit.reset(using: &rng)
        #expect(try bandit.step(discrete: 1, using: &rng).outcome.expectedReward == 0.9)
        var mdp = TabularMDP(states: 2, actions: 2, horizon: 3)
        mdp.setTask(.init(transitions: [Double](repeating: 0.5, count: 8), meanRewards: [1.5, -2, 0.25, 3]))
        _ = mdp.reset(using: &rng)
        let state = mdp.reset(using: &rng).firstIndex(of: 1)!
        #expect(try mdp.step(discrete: 1, using: &rng).outcome.expectedReward == [Float(-2), 3][state])

        var vector = VectorEnv(bandit, count: 3, seed: 5)
        vector.resetAll()
        try vector.step([2, 0, 1])
        #expect(vector.expectedRewards == [0.5, 0.2, 0.9])
        var poles = VectorEnv(CartPolePhysics(horizon: 5), count: 2, seed: 5)
        poles.resetAll()
        try poles.step([0, 1])
        #expect(poles.expectedRewards.allSatisfy { $0.isNaN })
        var pole = poles.envs[0]
        #expect(try pole.step(discrete: 0, using: &rng).outcome.expectedReward == nil)
    }

    /// Tasks that can be told to a critic give their parameters as features, in a fixed order.
    @Test func taskFeaturesAreTheTasksParameters() {
        #expect(BernoulliBandit.Task(armProbabilities: [0.25, 0.5]).features == [0.25, 0.5])
        #expect(TabularMDP.Task(transitions: [1, 0, 0.5, 0.5], meanRewards: [2, 3]).features == [2, 3, 1, 0, 0.5, 0.5])
        #expect(PointNavigation.Task(goal: [0.1, -0.3]).features == [Float(0.1), Float(-0.3)])
        #expect(PendulumMass.Task(mass: 1.5).features == [1.5])
        #expect(CartPolePhysics.Task(poleHalfLength: 0.4, poleMass: 0.2, cartMass: 1.5, force: 9).features == [0.4, 0.2, 1.5, 9])
        #expect(!(GridWorld.Task(start: 0, goal: 3) is any TaskFeatures))
    }

    @Test func invalidActionsAreRejectedWithTheirReason() {
        var rng = Xoshiro256(seed: 2)
        var bandit = BernoulliBandit(arms: 5)
        #expect(throws: EnvError(environment: "bandit", reason: "5.0 is not an action of Discrete(5) (0…4)")) {
            try bandit.step(discrete: 5, using: &rng)
        }
        #expect(throws: EnvError.self) { try bandit.step([1.5], using: &rng) }
        #expect(throws: EnvError.self) { try bandit.step([-1], using: &rng) }
        var nav = PointNavigation()
        _ = nav.reset(using: &rng)
        #expect(throws: EnvError.self) { try nav.step([.nan, 0], using: &rng) }
        #expect(throws: EnvError.self) { try nav.step([0.1], using: &rng) }
    }

    @Test func pointNavigationClipsAndPaysMinusDistance() throws {
        var env = PointNavigation()
        env.setTask(.init(goal: [0.3, -0.4]))
        var rng = Xoshiro256(seed: 3)
        #expect(env.reset(using: &rng) == [0, 0])
        let (obs, outcome) = try env.step([0.5, -0.05], using: &rng)  // x clipped to 0.1
        #expect(abs(obs[0] - 0.1) < 1e-7 && abs(obs[1] + 0.05) < 1e-7)
        let expected = -((0.2 * 0.2 + 0.35 * 0.35) as Double).squareRoot()
        #expect(abs(Double(outcome.reward) - expected) < 1e-6)
        #expect(!outcome.terminated && !outcome.truncated)
        // 100 steps without reaching the goal: truncated, not terminated.
        var last = outcome
        for _ in 1..<100 { last = try env.step([0, 0], using: &rng).outcome }
        #expect(last.truncated && !last.terminated)
    }

    @Test func pointNavigationTerminatesAtTheGoal() throws {
        var env = PointNavigation()
        env.setTask(.init(goal: [0.1, 0.1]))
        var rng = Xoshiro256(seed: 4)
        _ = env.reset(using: &rng)
        let outcome = try env.step([0.1, 0.1], using: &rng).outcome
        #expect(outcome.terminated && !outcome.truncated && abs(outcome.reward) < 1e-6)
    }

    @Test func pendulumStepMatchesTheEquations() throws {
        var env = PendulumMass()
        env.setTask(.init(mass: 2))
        env.setState(angle: 0.5, velocity: -1)
        var rng = Xoshiro256(seed: 5)
        let (obs, outcome) = try env.step([1.5], using: &rng)
        let cost = 0.25 + 0.1 * 1 + 0.001 * 2.25
        let newVelocity = -1 + (3 * 10 / 2 * sin(0.5) + 3 / 2.0 * 1.5) * 0.05
        let newAngle = 0.5 + newVelocity * 0.05
        #expect(abs(Double(outcome.reward) + cost) < 1e-6)
        #expect(abs(Double(obs[2]) - newVelocity) < 1e-6)
        #expect(abs(Double(obs[0]) - cos(newAngle)) < 1e-6 && abs(Double(obs[1]) - sin(newAngle)) < 1e-6)
    }

    @Test func cartPoleFallsAndTerminates() throws {
        var env = CartPolePhysics()
        env.setTask(.init())
        env.setState(x: 0, xDot: 0, theta: 0.21, thetaDot: 0)  // past 12° = 0.2094 rad
        var rng = Xoshiro256(seed: 6)
        let outcome = try env.step(discrete: 1, using: &rng).outcome
        #expect(outcome.terminated && outcome.reward == 1)
        // Gym's first step from rest at the origin, pushing right with 10 N.
        env.setState(x: 0, xDot: 0, theta: 0, thetaDot: 0)
        let (obs, _) = try env.step(discrete: 1, using: &rng)
        let xAcc = (10.0 / 1.1) - 0.05 * (-(10.0 / 1.1) / (0.5 * (4.0 / 3 - 0.1 / 1.1))) / 1.1
        #expect(abs(Double(obs[1]) - 0.02 * xAcc) < 1e-6)
    }

    @Test func gridWorldWallsGoalAndTimeLimit() throws {
        var env = GridWorld(size: 3, horizon: 4)
        env.setTask(.init(start: 0, goal: 2))
        var rng = Xoshiro256(seed: 7)
        _ = env.reset(using: &rng)
        var r = try env.step(discrete: 0, using: &rng)  // up into the wall: stays
        #expect(r.observation[0] == 1 && abs(r.outcome.reward + 0.1) < 1e-7)
        r = try env.step(discrete: 3, using: &rng)
        r = try env.step(discrete: 3, using: &rng)
        #expect(r.outcome.terminated && abs(r.outcome.reward - 0.9) < 1e-6)
        _ = env.reset(using: &rng)
        for _ in 0..<3 { r = try env.step(discrete: 1, using: &rng) }
        #expect(!r.outcome.truncated)
        r = try env.step(discrete: 1, using: &rng)
        #expect(r.outcome.truncated && !r.outcome.terminated)
    }

    @Test func harlowRewardFollowsTheObjectNotTheSide() throws {
        var env = Harlow(featureSize: 2)
        var rng = Xoshiro256(seed: 8)
        let task = env.sampleTasks(1, using: &rng)[0]
        env.setTask(task)
        let rewardedLeft = task.objectZeroLeft.map { $0 == (task.rewardedObject == 0) }
        #expect(rewardedLeft.filter { $0 }.count == 3)
        for k in 0..<6 {
            let obs = env.reset(using: &rng)
            let leftIsObjectZero = Array(obs[0..<2]) == task.objects[0]
            #expect(leftIsObjectZero == task.objectZeroLeft[k])
            let correctSide = rewardedLeft[k] ? 0 : 1
            #expect(try env.step(discrete: correctSide, using: &rng).outcome.reward == 5)
        }
    }

    @Test func tabularMDPFollowsItsTables() throws {
        var env = TabularMDP(states: 3, actions: 2, horizon: 2)
        // From state 0, action 1 goes to state 2 surely, with mean reward 4.
        var p = [Double](repeating: 1.0 / 3, count: 18)
        p[(0 * 2 + 1) * 3 + 0] = 0; p[(0 * 2 + 1) * 3 + 1] = 0; p[(0 * 2 + 1) * 3 + 2] = 1
        env.setTask(.init(transitions: p, meanRewards: [0, 4, 0, 0, 0, 0]))
        var rng = Xoshiro256(seed: 9)
        var rewards = 0.0
        for _ in 0..<4000 {
            #expect(env.reset(using: &rng) == [1, 0, 0])
            let r = try env.step(discrete: 1, using: &rng)
            #expect(r.observation == [0, 0, 1] && !r.outcome.truncated)
            rewards += Double(r.outcome.reward)
            #expect(try env.step(discrete: 0, using: &rng).outcome.truncated)
        }
        #expect(abs(rewards / 4000 - 4) < 0.05)
        // Sampled tasks have stochastic rows.
        for row in 0..<6 { #expect(abs(env.sampleTasks(1, using: &rng)[0].transitions[(row * 3)..<(row * 3 + 3)].reduce(0, +) - 1) < 1e-12) }
    }

    @Test func tabularTransitionsFollowTheTaskRows() throws {
        // The alias-table draw must reproduce every row of a sampled task: 200 000 draws
        // per row, each frequency within 5 standard errors of its probability.
        var env = TabularMDP(states: 7, actions: 2, horizon: 1)
        var rng = Xoshiro256(seed: 21)
        let task = env.sampleTasks(1, using: &rng)[0]
        env.setTask(task)
        for action in 0..<2 {
            var counts = [Int](repeating: 0, count: 7)
            let draws = 200_000
            for _ in 0..<draws {
                _ = env.reset(using: &rng)
                let r = try env.step(discrete: action, using: &rng)
                counts[r.observation.firstIndex(of: 1)!] += 1
            }
            for j in 0..<7 {
                let p = task.transitions[action * 7 + j]
                let se = (p * (1 - p) / Double(draws)).squareRoot()
                #expect(abs(Double(counts[j]) / Double(draws) - p) < 5 * se + 1e-6, "row 0, action \(action), state \(j)")
            }
        }
    }

    @Test func sameSeedSameTrajectory() throws {
        func run(_ seed: UInt64) throws -> [Float] {
            var v = VectorEnv(PendulumMass(), count: 4, seed: seed)
            for i in 0..<4 { v.setTask(v.sampleTask(at: i), at: i) }
            v.resetAll()
            var trace: [Float] = []
            for t in 0..<300 {
                try v.step([Float](repeating: Float(t % 3) - 1, count: 4))
                trace += v.observations + v.rewards
            }
            return trace
        }
        #expect(try run(11) == run(11))
        #expect(try run(11) != run(12))
    }

    @Test func tasksRoundTripThroughCodable() throws {
        var rng = Xoshiro256(seed: 10)
        let tasks = TabularMDP().sampleTasks(3, using: &rng)
        let decoded = try JSONDecoder().decode([TabularMDP.Task].self, from: JSONEncoder().encode(tasks))
        #expect(decoded == tasks)
    }
}

@Suite struct VectorAndTrialTests {
    @Test func vectorEnvAutoResetsAndKeepsTheFinalObservation() throws {
        var v = VectorEnv(PointNavigation(horizon: 3), count: 2, seed: 1)
        v.setTask(.init(goal: [0.4, 0.4]), at: 0)
        v.setTask(.init(goal: [0.4, 0.4]), at: 1)
        v.resetAll()
        for _ in 0..<2 { try v.step([0.1, 0.1, -0.1, 0]) }
        #expect(!v.truncated[0])
        try v.step([0.1, 0.1, -0.1, 0])
        #expect(v.truncated == [true, true])
        #expect(abs(v.finalObservations[0] - 0.3) < 1e-6 && abs(v.finalObservations[2] + 0.3) < 1e-6)
        #expect(v.observations == [0, 0, 0, 0])
    }

    /// A native family's started steps run at their finish: the same results as lockstep steps.
    @Test func startedStepsOfANativeFamilyMatchLockstep() throws {
        #expect(!PendulumMass.stepsWhileCallerWorks)
        var lockstep = VectorEnv(PendulumMass(), count: 5, seed: 9), halves = lockstep
        lockstep.resetAll()
        halves.resetAll()
        for t in 0..<250 {  // past the 200-step time limit: auto-reset in both
            let actions = (0..<5).map { Float(($0 * 7 + t) % 9) * 0.5 - 2 }
            try lockstep.step(actions)
            for part in [0..<2, 2..<5] { try actions[part].withUnsafeBufferPointer { try halves.startStep($0, copies: part) } }
            for part in [2..<5, 0..<2] { try halves.finishStep(copies: part) }
            #expect(halves.observations == lockstep.observations && halves.rewards == lockstep.rewards && halves.truncated == lockstep.truncated)
        }
    }

    @Test func trialInputsCarryPreviousActionRewardAndDoneAndSignalTaskChanges() throws {
        var trials = TrialEnv(BernoulliBandit(arms: 3), count: 1, episodesPerTrial: 2, seed: 3,
                              fixedTasks: [.init(armProbabilities: [1, 0, 0]), .init(armProbabilities: [0, 0, 1])])
        // Layout: [obs(1), one-hot action(3), reward, done].
        #expect(trials.inputSize == 6)
        #expect(trials.taskStarted == [true] && trials.inputs == [0, 0, 0, 0, 0, 0])
        try trials.step([0])
        #expect(trials.episodeEnded == [true] && trials.trialEnded == [false] && trials.taskStarted == [false])
        #expect(trials.inputs == [0, 1, 0, 0, 1, 1])
        try trials.step([2])
        #expect(trials.trialEnded == [true] && trials.taskStarted == [true])
        #expect(trials.inputs == [0, 0, 0, 0, 0, 0])
        #expect(trials.task(at: 0) == .init(armProbabilities: [0, 0, 1]))
    }

    /// With `trialProgress` the inputs end with the fraction of the trial's episodes done:
    /// 0, 1/4, 2/4, 3/4, then 0 again in the next trial; the rest is as without it.
    @Test func trialProgressIsTheFractionOfTheTrialDone() throws {
        let bandit = BernoulliBandit(arms: 3)
        var plain = TrialEnv(bandit, count: 2, episodesPerTrial: 4, seed: 3)
        var timed = TrialEnv(bandit, count: 2, episodesPerTrial: 4, seed: 3, trialProgress: true)
        #expect(timed.inputSize == plain.inputSize + 1 && timed.inputSize == TrialEnv<BernoulliBandit>.inputSize(
            observationSpace: bandit.observationSpace, actionSpace: bandit.actionSpace, trialProgress: true))
        for t in 0..<9 {
            for copy in 0..<2 {
                let row = Array(timed.inputs[(copy * 7)..<((copy + 1) * 7)])
                #expect(Array(row.prefix(6)) == Array(plain.inputs[(copy * 6)..<((copy + 1) * 6)]))
                #expect(row[6] == Float(t % 4) / 4)
            }
            let actions: [Float] = [Float(t % 3), Float((t + 1) % 3)]
            try plain.step(actions)
            try timed.step(actions)
        }
    }

    /// Trials stepped in two ranges (each started, then finished, as RL²'s sampler steps a
    /// family that works apart from its caller) end in the same state as trials stepped all at
    /// once: the same inputs, episode counts, trial ends and new tasks.
    @Test func trialsSteppedInTwoRangesMatchTrialsSteppedAtOnce() throws {
        let bandit = BernoulliBandit(arms: 3)
        var whole = TrialEnv(bandit, count: 5, episodesPerTrial: 3, seed: 9)
        var split = TrialEnv(bandit, count: 5, episodesPerTrial: 3, seed: 9)
        let ranges = [0..<2, 2..<5]
        var trialEnds = 0
        for t in 0..<10 {
            let actions = (0..<5).map { Float(($0 + t) % 3) }
            try whole.step(actions)
            for range in ranges {
                try actions[range].withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(EnvError) in
                    try split.startStep(a, trials: range)
                }
            }
            for range in ranges.reversed() { try split.finishStep(trials: range) }
            #expect(split.inputs == whole.inputs && split.rewards == whole.rewards)
            #expect(split.episodeIndex == whole.episodeIndex && split.trialEnded == whole.trialEnded)
            #expect(split.taskStarted == whole.taskStarted && split.episodeEnded == whole.episodeEnded)
            #expect((0..<5).allSatisfy { split.task(at: $0) == whole.task(at: $0) })
            trialEnds += whole.trialEnded.filter { $0 }.count
        }
        #expect(trialEnds == 15, "three trials of three one-step episodes ended in every copy")
    }

    @Test func anEpisodeSucceedsIfAnyStepReportsSuccessAndStaysUnreportedWithoutReports() {
        func episode(_ steps: [Float]) -> Float {
            var value = Float.nan
            for step in steps { EpisodeSuccess.accumulate(&value, step: step) }
            return value
        }
        #expect(episode([]).isNaN && episode([.nan, .nan]).isNaN)
        #expect(episode([0, 0, .nan, 0]) == 0)
        #expect(episode([0, 1, 0, .nan]) == 1, "solved at some point of the episode (Meta-World's rule)")
        #expect(EpisodeSuccess.rate([1, 0, .nan, 1]) == 2.0 / 3.0)
        #expect(EpisodeSuccess.rate([Float.nan]) == nil)
        #expect(EpisodeSuccess.statistics([.nan]) == nil)
        #expect(EpisodeSuccess.statistics([0.5, .nan, 1])?.mean == 0.75)
        var native = VectorEnv(PointNavigation(horizon: 3), count: 2, seed: 1)
        native.resetAll()
        try? native.step([0.1, 0.1, -0.1, 0])
        #expect(native.successes.allSatisfy { $0.isNaN }, "a native family reports no success")
    }
}

@Suite struct RegistryTests {
    let families = TaskFamilyRegistry.builtIn

    @Test func unknownFamiliesAndBadArgumentsNameTheValidOnes() throws {
        #expect(throws: EnvSpecError.unknownFamily("bandits", registered: families.names)) { try families.spec("bandits") }
        #expect(EnvSpecError.unknownFamily("x", registered: families.names).description.contains("bandit, tabular-mdp, gridworld"))
        #expect(throws: EnvSpecError.unknownArgument(family: "bandit", name: "k", valid: ["arms"])) { try families.spec("bandit", arguments: ["k=5"]) }
        #expect(throws: EnvSpecError.self) { try families.spec("bandit", arguments: ["arms=1"]) }
        #expect(throws: EnvSpecError.self) { try families.spec("bandit", arguments: ["arms=2.5"]) }
        #expect(throws: EnvSpecError.malformedArgument("arms")) { try families.spec("bandit", arguments: ["arms"]) }
        do { _ = try families.spec("bandit", arguments: ["arms=1"]); Issue.record("accepted arms=1") } catch {
            #expect(error.description.contains("2…1000"))
        }
        do { _ = try families.spec("pendulum-mass", arguments: ["mass-low=3"]); Issue.record("accepted mass-low > mass-high") } catch {
            #expect(error.description.contains("mass-high"))
        }
    }

    @Test func everyFamilyOpensWithDefaults() throws {
        struct Describe: MetaEnvConsumer {
            func run<E: MetaEnv>(_ env: E) throws -> String { "\(env.observationSpace) \(env.actionSpace)" }
        }
        #expect(families.names == ["bandit", "tabular-mdp", "gridworld", "harlow", "point-nav", "pendulum-mass", "cartpole-physics"])
        for name in families.names {
            let text = try families.spec(name).open(Describe())
            #expect(!text.isEmpty)
        }
    }

    /// A family defined outside the built-ins joins the registry the same way and opens as its own type.
    @Test func aUserFamilyJoinsTheSameWay() throws {
        struct Corridor: MetaEnv {
            struct Task: Codable, Sendable, Equatable { var goal: Int }
            var length: Int
            var task = Task(goal: 0)
            var position = 0
            var observationSpace: Space { .box(low: 0, high: 1, shape: [1]) }
            var actionSpace: Space { .discrete(2) }
            var maxEpisodeSteps: Int { length }
            func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task] { (0..<n).map { _ in Task(goal: rng.uniformInt(below: length)) } }
            mutating func setTask(_ task: Task) { self.task = task }
            mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) { position = 0; observation[0] = 0 }
            mutating func step(_ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>,
                               using rng: inout Xoshiro256) throws(EnvError) -> StepOutcome {
                position += try discreteAction(action, count: 2, environment: "corridor") == 1 ? 1 : -1
                observation[0] = Float(position) / Float(length)
                return StepOutcome(reward: position == task.goal ? 1 : 0, terminated: position == task.goal, truncated: false)
            }
        }
        let family = TaskFamily(name: "corridor", summary: "a corridor with a hidden goal",
                                arguments: [.integer("length", default: 5, in: 2...100, help: "cells")]) { Corridor(length: $0.int("length")) }
        var registry = TaskFamilyRegistry.builtIn
        try registry.register(family)
        #expect(throws: EnvSpecError.duplicateFamily("corridor")) { try registry.register(family) }
        struct Length: MetaEnvConsumer {
            func run<E: MetaEnv>(_ env: E) throws -> Int { (env as? Corridor)?.length ?? -1 }
        }
        #expect(try registry.spec("corridor", arguments: ["length=9"]).open(Length()) == 9)
        #expect(registry.listing.contains("corridor: a corridor with a hidden goal"))
        #expect(registry.listing.contains("length=5  (2…100)  cells"))
    }
}
