import Foundation
import Testing
import TensorCore
@testable import Envs
@testable import Baselines

/// Dynamics on hand-computed cases, determinism, terminated vs truncated, invalid actions.
@Suite struct EnvDynamicsTests {
    @Test func banditPaysWithItsArmProbabilities() throws {
        var env = BernoulliBandit(arms: 3)
        env.setTask(.init(armProbabilities: [0, 1, 0.3]))
        var rng = Xoshiro256(seed: 1)
        _ = env.reset(using: &rng)
        #expect(try env.step(discrete: 0, using: &rng).outcome == StepOutcome(reward: 0, terminated: true, truncated: false))
        #expect(try env.step(discrete: 1, using: &rng).outcome.reward == 1)
        var paid = 0.0
        for _ in 0..<20_000 { paid += Double(try env.step(discrete: 2, using: &rng).outcome.reward) }
        #expect(abs(paid / 20_000 - 0.3) < 0.015)
    }

    @Test func invalidActionsAreRejectedWithTheirReason() {
        var rng = Xoshiro256(seed: 2)
        var bandit = BernoulliBandit(arms: 5)
        #expect(throws: InvalidAction(environment: "bandit", reason: "5.0 is not an action of Discrete(5) (0…4)")) {
            try bandit.step(discrete: 5, using: &rng)
        }
        #expect(throws: InvalidAction.self) { try bandit.step([1.5], using: &rng) }
        #expect(throws: InvalidAction.self) { try bandit.step([-1], using: &rng) }
        var nav = PointNavigation()
        _ = nav.reset(using: &rng)
        #expect(throws: InvalidAction.self) { try nav.step([.nan, 0], using: &rng) }
        #expect(throws: InvalidAction.self) { try nav.step([0.1], using: &rng) }
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
}

@Suite struct RegistryTests {
    @Test func unknownFamiliesAndBadArgumentsNameTheValidOnes() {
        #expect(throws: EnvSpecError.unknownFamily("bandits")) { try EnvSpec(family: "bandits") }
        #expect((EnvSpecError.unknownFamily("x").description).contains("bandit, tabular-mdp, gridworld"))
        #expect(throws: EnvSpecError.unknownArgument(family: "bandit", name: "k")) { try EnvSpec(family: "bandit", arguments: ["k=5"]) }
        #expect(throws: EnvSpecError.badValue(family: "bandit", name: "arms", value: "1")) { try EnvSpec(family: "bandit", arguments: ["arms=1"]) }
        #expect(throws: EnvSpecError.badValue(family: "bandit", name: "arms", value: "2.5")) { try EnvSpec(family: "bandit", arguments: ["arms=2.5"]) }
        #expect(throws: EnvSpecError.malformedArgument("arms")) { try EnvSpec(family: "bandit", arguments: ["arms"]) }
        #expect(EnvSpecError.badValue(family: "bandit", name: "arms", value: "1").description.contains("2…1000"))
    }

    @Test func everyFamilyOpensWithDefaults() throws {
        struct Describe: MetaEnvConsumer {
            func run<E: MetaEnv>(_ env: E) throws -> String { "\(env.observationSpace) \(env.actionSpace)" }
        }
        for family in EnvFamily.allCases {
            let text = try EnvSpec(family: family.rawValue).open(Describe())
            #expect(!text.isEmpty)
        }
    }
}

@Suite struct BanditBaselineTests {
    /// The exact Bayes-optimal values of small problems, computed by hand.
    @Test func bayesOptimalValuesOfSmallProblems() throws {
        // One pull of anything: 1/2.
        #expect(abs(try BayesOptimalBandit.expectedReturn(arms: 2, pulls: 1) - 0.5) < 1e-12)
        // Two pulls, two arms: pull arm 0; stay after a success (mean 2/3), switch after a
        // failure (fresh arm, 1/2): 1/2·(1 + 2/3) + 1/2·(1/2) = 13/12.
        #expect(abs(try BayesOptimalBandit.expectedReturn(arms: 2, pulls: 2) - 13.0 / 12) < 1e-12)
        // It is an upper bound on every strategy (checked against the simulated greedy).
        let ceiling = try BayesOptimalBandit.expectedReturn(arms: 5, pulls: 10)
        let greedy = evaluateBandit(EpsilonGreedyBandit(epsilon: 0), bandit: BernoulliBandit(arms: 5), pulls: 10, trials: 4000, seed: 1)
        #expect(greedy.meanReturn < ceiling + 3 * greedy.standardError)
        #expect(ceiling > 6.5 && ceiling < 6.8)
        // Sizes whose belief space does not fit are refused with an error, not run out of memory.
        #expect(throws: BaselineError.self) { try BayesOptimalBandit.check(arms: 5, pulls: 100) }
        #expect(throws: BaselineError.self) { try BayesOptimalBandit.check(arms: 2, pulls: 500) }
        try BayesOptimalBandit.check(arms: 5, pulls: 10)
    }

    /// Gittins indices against published values (Gittins, Glazebrook & Weber 2011, Table 8.1
    /// style: the index of a fresh Beta(1, 1) arm rises with the discount).
    @Test func gittinsIndexProperties() {
        let g = GittinsBandit(discount: 0.9, depth: 200)
        let fresh = g.index(alpha: 1, beta: 1)
        #expect(fresh > 0.5 && fresh < 1)
        #expect(g.index(alpha: 2, beta: 1) > fresh && g.index(alpha: 1, beta: 2) < fresh)
        #expect(GittinsBandit(discount: 0.99, depth: 400).index(alpha: 1, beta: 1) > fresh)
        // No discount left → the index is the mean.
        #expect(abs(GittinsBandit(discount: 0.0, depth: 10).index(alpha: 3, beta: 1) - 0.75) < 1e-6)
    }

    @Test func strategiesBeatRandom() {
        let bandit = BernoulliBandit(arms: 5)
        let random = evaluateBandit(RandomBandit(), bandit: bandit, pulls: 10, trials: 3000, seed: 2)
        #expect(abs(random.meanReturn - 5) < 4 * random.standardError)
        for strategy in [AnyBandit(ThompsonBandit()), AnyBandit(UCB1Bandit(c: 0.2)), AnyBandit(EpsilonGreedyBandit(epsilon: 0))] {
            let s = evaluateBandit(strategy, bandit: bandit, pulls: 10, trials: 3000, seed: 2)
            #expect(s.meanReturn > random.meanReturn + 0.5)
        }
    }
}

/// A type-erased strategy for looping over several in a test.
struct AnyBandit: BanditStrategy {
    var box: any BanditStrategy
    init(_ s: any BanditStrategy) { box = s }
    mutating func start(arms: Int, pulls: Int) { box.start(arms: arms, pulls: pulls) }
    mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int { box.choose(step: t, using: &rng) }
    mutating func record(arm: Int, reward: Float) { box.record(arm: arm, reward: reward) }
}

@Suite struct TabularMDPBaselineTests {
    /// Backward induction on a hand-solved MDP. Two states, two actions, horizon 2:
    /// in state 0, action 0 pays 1 and stays; action 1 pays 0 and moves to state 1, where
    /// both actions pay 3 and stay. Best: move first (0 + 3 = 3) rather than stay (1 + 1 = 2);
    /// at the last step, take the immediate 1 in state 0.
    @Test func finiteHorizonPlanMatchesTheHandSolution() {
        var plan = FiniteHorizonPlan()
        plan.resize(states: 2, actions: 2, horizon: 2)
        let rewards: [Double] = [1, 0, 3, 3]
        let transitions: [Double] = [1, 0, 0, 1, 0, 1, 0, 1]
        plan.solve(rewards: rewards, transitions: transitions)
        #expect(plan.action(step: 0, state: 0) == 1 && plan.action(step: 1, state: 0) == 0)
        #expect(plan.value(step: 0, state: 0) == 3 && plan.value(step: 1, state: 0) == 1)
        #expect(plan.value(step: 0, state: 1) == 6 && plan.value(step: 2, state: 1) == 0)
    }

    /// The conjugate updates: mean reward (μ₀ + Σr) / (1 + n), transitions (1 + c) / (S + n).
    @Test func posteriorMeansAreTheConjugateUpdates() {
        var posterior = MDPPosterior(priorMean: 1)
        posterior.start(states: 3, actions: 1)
        posterior.record(state: 0, action: 0, reward: 2.5, next: 2)
        posterior.record(state: 0, action: 0, reward: -0.5, next: 2)
        var r = [Double](repeating: 0, count: 3), p = [Double](repeating: 0, count: 9)
        posterior.writeMean(rewards: &r, transitions: &p)
        #expect(abs(r[0] - 3.0 / 3) < 1e-12 && r[1] == 1)
        #expect(abs(p[0] - 1.0 / 5) < 1e-12 && abs(p[2] - 3.0 / 5) < 1e-12 && abs(p[3] - 1.0 / 3) < 1e-12)
        // Samples are stochastic rows centred on the mean.
        var rng = Xoshiro256(seed: 3)
        var sum = [Double](repeating: 0, count: 9)
        for _ in 0..<20000 {
            posterior.writeSample(rewards: &r, transitions: &p, using: &rng)
            #expect(abs(p[0] + p[1] + p[2] - 1) < 1e-9)
            for i in 0..<9 { sum[i] += p[i] / 20000 }
        }
        #expect(abs(sum[2] - 0.6) < 0.01 && abs(sum[0] - 0.2) < 0.01)
    }

    /// One optimistic sample is PSRL, and UCRL2 with zero radii is episodic greedy:
    /// the same seed gives the same trial returns.
    @Test func degenerateSettingsReduceToSimplerStrategies() {
        let mdp = TabularMDP()
        let psrl = evaluateTabularMDP(PSRLStrategy(priorMean: 0), mdp: mdp, episodes: 3, trials: 50, seed: 4)
        let opsrl = evaluateTabularMDP(OptimisticPSRLStrategy(samples: 1, priorMean: 0), mdp: mdp, episodes: 3, trials: 50, seed: 4)
        #expect(psrl.meanReturn == opsrl.meanReturn)
        let greedy = evaluateTabularMDP(EpsilonGreedyMDPStrategy(epsilon: 0, priorMean: 0), mdp: mdp, episodes: 3, trials: 50, seed: 4)
        let ucrl2 = evaluateTabularMDP(UCRL2Strategy(delta: 0.1, scale: 0, priorMean: 0), mdp: mdp, episodes: 3, trials: 50, seed: 4)
        #expect(greedy.meanReturn == ucrl2.meanReturn)
    }

    /// Exploring strategies beat random on n = 10 episodes by a wide margin (the RL² paper:
    /// random 100, PSRL 138, BEB 150).
    @Test func strategiesBeatRandom() {
        let mdp = TabularMDP()
        let random = evaluateTabularMDP(RandomMDPStrategy(), mdp: mdp, episodes: 10, trials: 400, seed: 5)
        #expect(abs(random.meanReturn - 100) < 4 * random.standardError)
        let psrl = evaluateTabularMDP(PSRLStrategy(priorMean: 0), mdp: mdp, episodes: 10, trials: 400, seed: 5)
        let beb = evaluateTabularMDP(BEBStrategy(beta: 1, priorMean: 0), mdp: mdp, episodes: 10, trials: 400, seed: 5)
        #expect(psrl.meanReturn > random.meanReturn + 25)
        #expect(beb.meanReturn > psrl.meanReturn)
    }
}
