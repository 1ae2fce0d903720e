@testable import Baselines
import Envs
import Foundation
import Testing
import TensorCore

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
        // Refused for the key's width, and the message says so (not a count of belief states).
        do {
            try BayesOptimalBandit.check(arms: 6, pulls: 40)
            Issue.record("k = 6, n = 40 was accepted")
        } catch {
            #expect(error.message.contains("a belief needs 66 bits, the memo's key holds 64"), "\(error.message)")
        }
        #expect(throws: BaselineError.self) { try BayesOptimalBandit.check(arms: 10, pulls: 11) }
    }

    /// With k ≥ n no trial touches more than n arms, so the optimum is k = n's: computed
    /// exactly for every k, and equal to the last bit.
    @Test func bayesOptimalValueStopsGrowingAtKEqualsN() throws {
        let three = try BayesOptimalBandit.expectedReturn(arms: 3, pulls: 3)
        for k in [4, 7, 50] { #expect(try BayesOptimalBandit.expectedReturn(arms: k, pulls: 3) == three) }
        #expect(try BayesOptimalBandit.expectedReturn(arms: 2, pulls: 3) < three)
        // The cells of Table 1 with n = 10 (Duan et al. 2016): k = 10 and k = 50 share one optimum.
        let five = try BayesOptimalBandit.expectedReturn(arms: 5, pulls: 10)
        let ten = try BayesOptimalBandit.expectedReturn(arms: 10, pulls: 10)
        #expect(try BayesOptimalBandit.expectedReturn(arms: 50, pulls: 10) == ten)
        #expect(ten > five && ten < 7)
        // The online strategy, on 50 arms, plays to that value.
        let played = evaluateBandit(BayesOptimalBandit(), bandit: BernoulliBandit(arms: 50), pulls: 10, trials: 1000, seed: 2)
        #expect(abs(played.meanReturn - ten) < 3 * played.standardError)
    }

    /// The index table against a bisection on λ for each posterior alone, and the index's
    /// known shape: above the mean, rising with the discount, equal to the mean at γ = 0.
    @Test func gittinsIndexTableMatchesBisection() {
        let table = GittinsIndexTable(discount: 0.9, depth: 200, maxPulls: 12)
        for (a, b) in [(1, 1), (2, 1), (1, 2), (5, 3), (2, 9), (13, 1), (1, 13)] {
            let exact = bisectedGittinsIndex(alpha: a, beta: b, discount: 0.9, depth: 200)
            #expect(abs(table.index(alpha: a, beta: b) - exact) < 1e-5, "Beta(\(a), \(b))")
            #expect(exact > Double(a) / Double(a + b))
        }
        // Gittins' table for γ = 0.9: a fresh Beta(1, 1) arm has index 0.7029.
        #expect(abs(table.index(alpha: 1, beta: 1) - 0.7029) < 1e-4)
        let g = GittinsBandit(discount: 0.9, depth: 200)
        #expect(GittinsBandit(discount: 0.99, depth: 150).index(alpha: 1, beta: 1, pulls: 10) > g.index(alpha: 1, beta: 1, pulls: 10))
        #expect(abs(GittinsBandit(discount: 0.0, depth: 10).index(alpha: 3, beta: 1, pulls: 10) - 0.75) < 1e-6)
        // Matched to the trial: γ = 1 − 2/n, look-ahead 5/(1 − γ) (at least 50).
        #expect(GittinsBandit().settings(pulls: 100) == (0.98, 250))
        #expect(GittinsBandit().settings(pulls: 10) == (0.8, 50))
        #expect(abs(GittinsBandit().index(alpha: 1, beta: 1, pulls: 10) - GittinsIndexTable(discount: 0.8, depth: 50, maxPulls: 10).index(alpha: 1, beta: 1)) < 1e-12)
    }

    /// One posterior's index by bisection on λ over its own look-ahead of `depth` pulls.
    func bisectedGittinsIndex(alpha: Int, beta: Int, discount g: Double, depth: Int) -> Double {
        var lo = Double(alpha) / Double(alpha + beta), hi = 1.0
        var v = [Double](repeating: 0, count: depth + 1)
        for _ in 0..<50 {
            let lambda = (lo + hi) / 2, retire = lambda / (1 - g)
            for j in 0...depth { v[j] = max(lambda, Double(alpha + j) / Double(alpha + beta + depth)) / (1 - g) }
            for d in stride(from: depth - 1, through: 0, by: -1) {
                for j in 0...d {
                    let p = Double(alpha + j) / Double(alpha + beta + d)
                    v[j] = max(retire, p + g * (p * v[j + 1] + (1 - p) * v[j]))
                }
            }
            if v[0] > retire * (1 + 1e-12) { lo = lambda } else { hi = lambda }
        }
        return (lo + hi) / 2
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

    /// Pulls the arms in turn: min(n, k) different arms in every trial.
    struct InTurn: BanditStrategy {
        var arms = 1
        mutating func start(arms: Int, pulls: Int) { self.arms = arms }
        mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int { t % arms }
        mutating func record(arm: Int, reward: Float) {}
    }

    /// The arms a trial pulled: min(n, k) when the arms are pulled in turn; random pulls spread
    /// as k(1 − (1 − 1/k)ⁿ) in expectation; one pull is one arm.
    @Test func distinctArmsCountWhatATrialPulled() {
        let bandit = BernoulliBandit(arms: 5)
        for (pulls, arms) in [(3, 3.0), (10, 5.0)] {
            let turns = evaluateBandit(InTurn(), bandit: bandit, pulls: pulls, trials: 50, seed: 3)
            #expect(turns.distinctActions == arms && turns.distinctActionsStderr == 0, "\(pulls) pulls")
        }
        let random = evaluateBandit(RandomBandit(), bandit: bandit, pulls: 10, trials: 4000, seed: 3)
        let expected = 5 * (1 - pow(0.8, 10.0))
        #expect(abs(random.distinctActions! - expected) < 5 * random.distinctActionsStderr!, "\(random.distinctActions!) vs \(expected)")
        let single = evaluateBandit(RandomBandit(), bandit: bandit, pulls: 1, trials: 100, seed: 3)
        #expect(single.distinctActions == 1)
        #expect(TrialStatistics(returns: [1, 2]).distinctActions == nil)
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

/// `TrialStreams.tasks` names the tasks the classic strategies are evaluated on, so that an
/// agent evaluated on them (`metarl eval --baseline-tasks`) is compared trial for trial.
@Suite struct TrialStreamsTests {
    /// Always pulls arm 0.
    struct FirstArm: BanditStrategy {
        mutating func start(arms: Int, pulls: Int) {}
        mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int { 0 }
        mutating func record(arm: Int, reward: Float) {}
    }

    @Test func theBaselinesMeetTheTasksTheStreamsName() {
        let bandit = BernoulliBandit(arms: 3)
        for seed: UInt64 in [1, 7, 42] {
            let p = TrialStreams.tasks(of: bandit, count: 1, seed: seed)[0].armProbabilities[0]
            let pulls = 20_000
            let paid = evaluateBandit(FirstArm(), bandit: bandit, pulls: pulls, trials: 1, seed: seed).meanReturn / Double(pulls)
            // Five standard deviations of a binomial mean at its widest (p = ½).
            #expect(abs(paid - p) < 5 * 0.5 / Double(pulls).squareRoot(), "seed \(seed): arm 0 paid \(paid), its task says \(p)")
        }
    }
}
