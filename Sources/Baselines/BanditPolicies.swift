import Foundation
import Envs
import TensorCore

/// A classic Bernoulli-bandit strategy: it sees only its own pulls and their payoffs.
/// All strategies here keep Beta(1 + successes, 1 + failures) posteriors, the prior the
/// tasks are drawn from (p ~ U[0, 1]), and break ties toward the lowest arm, as the
/// RL² paper's baseline code does.
public protocol BanditStrategy {
    /// Prepares for a new trial of `pulls` pulls of `arms` arms.
    mutating func start(arms: Int, pulls: Int)
    /// The arm to pull at step `t` (0-based).
    mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int
    /// Records the payoff (0 or 1) of pulling `arm`.
    mutating func record(arm: Int, reward: Float)
}

/// Beta posterior counts shared by the strategies.
public struct BetaCounts: Sendable {
    public var successes: [Int] = []
    public var failures: [Int] = []
    public mutating func start(arms: Int) {
        successes = [Int](repeating: 0, count: arms)
        failures = successes
    }
    public mutating func record(arm: Int, reward: Float) {
        if reward > 0 { successes[arm] += 1 } else { failures[arm] += 1 }
    }
    /// Posterior mean (1 + s) / (2 + s + f).
    public func mean(_ a: Int) -> Double { Double(1 + successes[a]) / Double(2 + successes[a] + failures[a]) }
    public func pulls(_ a: Int) -> Int { successes[a] + failures[a] }
    public var arms: Int { successes.count }
}

/// The first index of the largest score.
@inline(__always)
func argmaxFirst(_ n: Int, _ score: (Int) -> Double) -> Int {
    var best = 0, bestScore = score(0)
    for a in 1..<n {
        let s = score(a)
        if s > bestScore { best = a; bestScore = s }
    }
    return best
}

/// Uniformly random arms.
public struct RandomBandit: BanditStrategy {
    var arms = 0
    public init() {}
    public mutating func start(arms: Int, pulls: Int) { self.arms = arms }
    public mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int { rng.uniformInt(below: arms) }
    public mutating func record(arm: Int, reward: Float) {}
}

/// A strategy that decides from the Beta posterior counts alone; starting a trial and
/// recording a payoff are the same for all of them.
public protocol PosteriorBanditStrategy: BanditStrategy {
    var counts: BetaCounts { get set }
}

extension PosteriorBanditStrategy {
    public mutating func start(arms: Int, pulls: Int) { counts.start(arms: arms) }
    public mutating func record(arm: Int, reward: Float) { counts.record(arm: arm, reward: reward) }
}

/// The arm with the highest posterior mean, with probability 1 − ε; a uniform arm
/// otherwise. ε = 0 is greedy.
public struct EpsilonGreedyBandit: PosteriorBanditStrategy {
    public var epsilon: Double
    public var counts = BetaCounts()
    public init(epsilon: Double) { self.epsilon = epsilon }
    public mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int {
        if epsilon > 0, rng.uniformDouble() < epsilon { return rng.uniformInt(below: counts.arms) }
        return argmaxFirst(counts.arms) { counts.mean($0) }
    }
}

/// UCB1 (Auer et al. 2002) on the posterior means: mean + c·√(2 ln t / n_a), with the
/// pseudo-counts of the prior in n_a (as in the RL² baselines; c = 1 is textbook UCB1).
public struct UCB1Bandit: PosteriorBanditStrategy {
    public var c: Double
    public var counts = BetaCounts()
    public init(c: Double) { self.c = c }
    public mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int {
        let logT = Foundation.log(Double(Swift.max(t, 1)))
        return argmaxFirst(counts.arms) { a in
            counts.mean(a) + c * (2 * logT / Double(counts.pulls(a) + 2)).squareRoot()
        }
    }
}

/// Thompson sampling (Thompson 1933): draw p from every arm's posterior, pull the best.
public struct ThompsonBandit: PosteriorBanditStrategy {
    public var counts = BetaCounts()
    public init() {}
    public mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int {
        var best = 0, bestDraw = -Double.infinity
        for a in 0..<counts.arms {
            let p = rng.beta(Double(1 + counts.successes[a]), Double(1 + counts.failures[a]))
            if p > bestDraw { best = a; bestDraw = p }
        }
        return best
    }
}

/// Optimistic Thompson sampling as the RL² paper's baselines define it: draw `samples`
/// joint samples from the posterior, keep the most probable one (highest posterior
/// density), pull its best arm. One sample is Thompson sampling; many approach greedy.
public struct OptimisticThompsonBandit: PosteriorBanditStrategy {
    public var samples: Int
    public var counts = BetaCounts()
    public init(samples: Int) { self.samples = samples }
    public mutating func choose(step t: Int, using rng: inout Xoshiro256) -> Int {
        var choice = 0, bestDensity = -Double.infinity
        for _ in 0..<Swift.max(samples, 1) {
            var density = 0.0, arm = 0, armDraw = -Double.infinity
            for a in 0..<counts.arms {
                let alpha = Double(1 + counts.successes[a]), beta = Double(1 + counts.failures[a])
                let p = Swift.min(Swift.max(rng.beta(alpha, beta), 1e-300), 1 - 1e-16)
                if p > armDraw { arm = a; armDraw = p }
                density += (alpha - 1) * Foundation.log(p) + (beta - 1) * Foundation.log1p(-p) - logBeta(alpha, beta)
            }
            if density > bestDensity { bestDensity = density; choice = arm }
        }
        return choice
    }
}

func logBeta(_ a: Double, _ b: Double) -> Double { lgamma(a) + lgamma(b) - lgamma(a + b) }
