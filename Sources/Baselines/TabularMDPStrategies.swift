import Foundation
import Envs
import TensorCore

/// A classic strategy for a trial of episodes on one unknown tabular MDP. It sees the
/// state, its own actions and the rewards; it plans once at the start of each episode
/// (the episodic setting of PSRL and its relatives) and acts from that plan.
public protocol TabularMDPStrategy {
    /// Prepares for a new trial on an unknown MDP of this shape.
    mutating func start(states: Int, actions: Int, horizon: Int)
    /// Called before each episode; `totalSteps` is the number of steps taken so far in the trial.
    mutating func beginEpisode(totalSteps: Int, using rng: inout Xoshiro256)
    /// The action in `state` at step `t` (0-based) of the episode.
    mutating func choose(state: Int, step t: Int, using rng: inout Xoshiro256) -> Int
    /// Records one transition.
    mutating func record(state: Int, action: Int, reward: Double, next: Int)
}

/// Posterior over a tabular MDP: a flat Dirichlet per transition row and, per
/// state–action, a Normal(`priorMean`, 1) mean reward observed through unit-variance
/// Gaussian noise (a conjugate pair with known variance). With `priorMean` = 1 this is
/// the prior the tasks are drawn from; the RL² paper's baselines used 0 (the default of
/// the TabulaRL agents), which makes unvisited actions look worse than they are.
public struct MDPPosterior: Sendable {
    public var priorMean: Double
    public private(set) var states = 0, actions = 0
    /// Transition counts [s][a][s′] and per-(s, a) visit counts and reward sums.
    public private(set) var transitionCounts: [Double] = []
    public private(set) var visits: [Double] = []
    public private(set) var rewardSums: [Double] = []

    public init(priorMean: Double = 1) { self.priorMean = priorMean }

    public mutating func start(states: Int, actions: Int) {
        self.states = states
        self.actions = actions
        transitionCounts = [Double](repeating: 0, count: states * actions * states)
        visits = [Double](repeating: 0, count: states * actions)
        rewardSums = visits
    }

    public mutating func record(state: Int, action: Int, reward: Double, next: Int) {
        let row = state * actions + action
        transitionCounts[row * states + next] += 1
        visits[row] += 1
        rewardSums[row] += reward
    }

    /// Posterior mean of the mean reward of row (s·A + a): (μ₀ + Σr) / (1 + n).
    @inline(__always) public func meanReward(_ row: Int) -> Double { (priorMean + rewardSums[row]) / (1 + visits[row]) }

    /// Posterior mean MDP into `rewards` [S·A] and `transitions` [S·A·S].
    public func writeMean(rewards: inout [Double], transitions: inout [Double]) {
        let s = states
        for row in 0..<(states * actions) {
            rewards[row] = meanReward(row)
            let total = Double(s) + visits[row]
            for j in 0..<s { transitions[row * s + j] = (1 + transitionCounts[row * s + j]) / total }
        }
    }

    /// One MDP drawn from the posterior into `rewards` and `transitions`.
    public func writeSample(rewards: inout [Double], transitions: inout [Double], using rng: inout Xoshiro256) {
        let s = states
        for row in 0..<(states * actions) {
            rewards[row] = meanReward(row) + rng.normal() / (1 + visits[row]).squareRoot()
            var total = 0.0
            for j in 0..<s {
                let g = rng.gamma(shape: 1 + transitionCounts[row * s + j])
                transitions[row * s + j] = g
                total += g
            }
            for j in 0..<s { transitions[row * s + j] /= total }
        }
    }
}

/// A time-dependent deterministic plan for one episode: the action for each (step, state),
/// found by backward induction. Buffers are kept between episodes (no per-episode allocation).
public struct FiniteHorizonPlan: Sendable {
    public private(set) var states = 0, actions = 0, horizon = 0
    /// Action [t][s].
    public private(set) var policy: [Int] = []
    /// Optimal value of the planning model [t][s] (t = horizon is 0).
    public private(set) var values: [Double] = []

    public init() {}

    public mutating func resize(states: Int, actions: Int, horizon: Int) {
        self.states = states
        self.actions = actions
        self.horizon = horizon
        policy = [Int](repeating: 0, count: horizon * states)
        values = [Double](repeating: 0, count: (horizon + 1) * states)
    }

    @inline(__always) public func action(step t: Int, state: Int) -> Int { policy[t * states + state] }
    @inline(__always) public func value(step t: Int, state: Int) -> Double { values[t * states + state] }

    /// Backward induction where the value of (s, a) at step t comes from `q(row, nextValues)`,
    /// `nextValues` being V_{t+1}; ties go to the lowest action.
    public mutating func solve(_ q: (_ row: Int, _ nextValues: UnsafeBufferPointer<Double>) -> Double) {
        let s = states, a = actions
        values.withUnsafeMutableBufferPointer { v in
            for j in 0..<s { v[horizon * s + j] = 0 }
            for t in stride(from: horizon - 1, through: 0, by: -1) {
                let next = UnsafeBufferPointer(rebasing: v[((t + 1) * s)..<((t + 2) * s)])
                for state in 0..<s {
                    var best = -Double.infinity, bestAction = 0
                    for action in 0..<a {
                        let value = q(state * a + action, next)
                        if value > best { best = value; bestAction = action }
                    }
                    v[t * s + state] = best
                    policy[t * s + state] = bestAction
                }
            }
        }
    }

    /// Backward induction on a known model: Q(s, a) = r(s, a) + Σ P(s′ | s, a) V(s′).
    public mutating func solve(rewards: [Double], transitions: [Double]) {
        let s = states
        rewards.withUnsafeBufferPointer { r in
            transitions.withUnsafeBufferPointer { p in
                solve { row, next in
                    var total = r[row]
                    for j in 0..<s { total += p[row * s + j] * next[j] }
                    return total
                }
            }
        }
    }
}

/// Shared state of the model-based strategies: the posterior, a plan, and model buffers.
public struct ModelBasedState: Sendable {
    public var posterior: MDPPosterior
    public var plan = FiniteHorizonPlan()
    var rewards: [Double] = []
    var transitions: [Double] = []

    public init(priorMean: Double) { posterior = MDPPosterior(priorMean: priorMean) }

    mutating func start(states: Int, actions: Int, horizon: Int) {
        posterior.start(states: states, actions: actions)
        plan.resize(states: states, actions: actions, horizon: horizon)
        rewards = [Double](repeating: 0, count: states * actions)
        transitions = [Double](repeating: 0, count: states * actions * states)
    }
}

/// A strategy that keeps `ModelBasedState`: recording and acting on the plan are shared.
public protocol ModelBasedMDPStrategy: TabularMDPStrategy {
    var model: ModelBasedState { get set }
}

extension ModelBasedMDPStrategy {
    public mutating func start(states: Int, actions: Int, horizon: Int) {
        model.start(states: states, actions: actions, horizon: horizon)
    }
    public mutating func record(state: Int, action: Int, reward: Double, next: Int) {
        model.posterior.record(state: state, action: action, reward: reward, next: next)
    }
    public mutating func choose(state: Int, step t: Int, using rng: inout Xoshiro256) -> Int {
        model.plan.action(step: t, state: state)
    }
}

/// Uniformly random actions.
public struct RandomMDPStrategy: TabularMDPStrategy {
    var actions = 0
    public init() {}
    public mutating func start(states: Int, actions: Int, horizon: Int) { self.actions = actions }
    public mutating func beginEpisode(totalSteps: Int, using rng: inout Xoshiro256) {}
    public mutating func choose(state: Int, step t: Int, using rng: inout Xoshiro256) -> Int { rng.uniformInt(below: actions) }
    public mutating func record(state: Int, action: Int, reward: Double, next: Int) {}
}

/// Optimal plan for the posterior-mean MDP, with a uniformly random action with
/// probability ε at each step. ε = 0 is greedy ("certainty equivalence").
public struct EpsilonGreedyMDPStrategy: ModelBasedMDPStrategy {
    public var epsilon: Double
    /// Replan after every step instead of once per episode.
    public var replanEveryStep: Bool
    public var model: ModelBasedState
    public init(epsilon: Double, priorMean: Double, replanEveryStep: Bool = false) {
        self.epsilon = epsilon
        self.replanEveryStep = replanEveryStep
        model = ModelBasedState(priorMean: priorMean)
    }

    mutating func replan() {
        model.posterior.writeMean(rewards: &model.rewards, transitions: &model.transitions)
        model.plan.solve(rewards: model.rewards, transitions: model.transitions)
    }
    public mutating func beginEpisode(totalSteps: Int, using rng: inout Xoshiro256) { replan() }
    public mutating func choose(state: Int, step t: Int, using rng: inout Xoshiro256) -> Int {
        if epsilon > 0, rng.uniformDouble() < epsilon { return rng.uniformInt(below: model.plan.actions) }
        if replanEveryStep, t > 0 { replan() }
        return model.plan.action(step: t, state: state)
    }
}

/// Posterior sampling for RL (Strens 2000; Osband, Russo & Van Roy 2013): at the start of
/// each episode draw one MDP from the posterior and follow its optimal plan.
public struct PSRLStrategy: ModelBasedMDPStrategy {
    public var model: ModelBasedState
    public init(priorMean: Double) { model = ModelBasedState(priorMean: priorMean) }
    public mutating func beginEpisode(totalSteps: Int, using rng: inout Xoshiro256) {
        model.posterior.writeSample(rewards: &model.rewards, transitions: &model.transitions, using: &rng)
        model.plan.solve(rewards: model.rewards, transitions: model.transitions)
    }
}

/// Optimistic PSRL (as in Osband's TabulaRL agents, which the RL² paper's baselines
/// follow): draw `samples` MDPs from the posterior, solve each by backward induction, and
/// act greedily on the elementwise maximum of their Q-values, max_k Q_k(t, s, a). One
/// sample is PSRL.
public struct OptimisticPSRLStrategy: ModelBasedMDPStrategy {
    public var samples: Int
    public var model: ModelBasedState
    var bestQ: [Double] = []
    var policy: [Int] = []
    public init(samples: Int, priorMean: Double) {
        self.samples = max(samples, 1)
        model = ModelBasedState(priorMean: priorMean)
    }

    public mutating func beginEpisode(totalSteps: Int, using rng: inout Xoshiro256) {
        let s = model.posterior.states, a = model.posterior.actions, h = model.plan.horizon
        if bestQ.count != h * s * a { bestQ = [Double](repeating: 0, count: h * s * a) }
        for i in 0..<bestQ.count { bestQ[i] = -Double.infinity }
        for _ in 0..<samples {
            model.posterior.writeSample(rewards: &model.rewards, transitions: &model.transitions, using: &rng)
            model.plan.solve(rewards: model.rewards, transitions: model.transitions)
            // Q_k(t, s, a) = r_k(s, a) + P_k(· | s, a) · V_k(t + 1).
            for t in 0..<h {
                for row in 0..<(s * a) {
                    var q = model.rewards[row]
                    for j in 0..<s { q += model.transitions[row * s + j] * model.plan.value(step: t + 1, state: j) }
                    bestQ[t * s * a + row] = max(bestQ[t * s * a + row], q)
                }
            }
        }
        // Greedy on max_k Q_k, ties to the lowest action.
        if policy.count != h * s { policy = [Int](repeating: 0, count: h * s) }
        for t in 0..<h {
            for state in 0..<s {
                let base = t * s * a + state * a
                policy[t * s + state] = argmaxFirst(a) { bestQ[base + $0] }
            }
        }
    }

    public mutating func choose(state: Int, step t: Int, using rng: inout Xoshiro256) -> Int {
        policy[t * model.posterior.states + state]
    }
}

/// UCRL2 (Jaksch, Ortner & Auer 2010) in the episodic setting: optimistic planning over
/// all MDPs whose mean rewards lie within √(7 ln(2SAt/δ) / (2 max(1, n))) and whose
/// transition rows lie within L1 distance √(14 S ln(2At/δ) / max(1, n)) of the estimates,
/// both radii multiplied by `scale` (1 is the paper's constants; rewards here are
/// unit-variance Gaussian rather than bounded, so the constant is a tuned parameter).
/// The inner maximisation over a row moves as much mass as the radius allows onto the
/// best next state, taking it from the worst ones first (the paper's extended value
/// iteration, run backward over the horizon). Estimates are the posterior means, which
/// are the empirical ones pulled toward the prior.
public struct UCRL2Strategy: ModelBasedMDPStrategy {
    public var delta: Double
    public var scale: Double
    public var model: ModelBasedState
    var order: [Int] = []
    var row: [Double] = []
    public init(delta: Double, scale: Double, priorMean: Double) {
        self.delta = delta
        self.scale = scale
        model = ModelBasedState(priorMean: priorMean)
    }

    public mutating func beginEpisode(totalSteps: Int, using rng: inout Xoshiro256) {
        let posterior = model.posterior
        let s = posterior.states, a = posterior.actions
        posterior.writeMean(rewards: &model.rewards, transitions: &model.transitions)
        let t = Double(max(totalSteps, 1))
        let rewardLog = Foundation.log(2 * Double(s * a) * t / delta)
        let transitionLog = Foundation.log(2 * Double(a) * t / delta)
        for r in 0..<(s * a) {
            let n = max(1, posterior.visits[r])
            model.rewards[r] += scale * (7 * rewardLog / (2 * n)).squareRoot()
        }
        if order.count != s { order = Array(0..<s); row = [Double](repeating: 0, count: s) }
        let scale = self.scale
        let visits = posterior.visits
        var order = self.order, row = self.row
        model.transitions.withUnsafeBufferPointer { p in
            model.rewards.withUnsafeBufferPointer { r in
                model.plan.solve { rowIndex, next in
                    // Optimistic row: start from the estimate, add up to radius/2 to the best
                    // next state, remove the same mass from the worst states.
                    for j in 0..<s { row[j] = p[rowIndex * s + j] }
                    order.sort { next[$0] > next[$1] }
                    let radius = scale * (14 * Double(s) * transitionLog / max(1, visits[rowIndex])).squareRoot()
                    let best = order[0]
                    let added = min(1 - row[best], radius / 2)
                    row[best] += added
                    var excess = added
                    var i = s - 1
                    while excess > 0, i > 0 {
                        let j = order[i]
                        let removed = min(row[j], excess)
                        row[j] -= removed
                        excess -= removed
                        i -= 1
                    }
                    var total = r[rowIndex]
                    for j in 0..<s { total += row[j] * next[j] }
                    return total
                }
            }
        }
        self.order = order
        self.row = row
    }
}

/// Bayesian exploration bonus (Kolter & Ng 2009): plan in the posterior-mean MDP with the
/// reward of (s, a) raised by β / (1 + n(s, a)).
public struct BEBStrategy: ModelBasedMDPStrategy {
    public var beta: Double
    public var model: ModelBasedState
    public init(beta: Double, priorMean: Double) {
        self.beta = beta
        model = ModelBasedState(priorMean: priorMean)
    }
    public mutating func beginEpisode(totalSteps: Int, using rng: inout Xoshiro256) {
        model.posterior.writeMean(rewards: &model.rewards, transitions: &model.transitions)
        for r in 0..<model.rewards.count { model.rewards[r] += beta / (1 + model.posterior.visits[r]) }
        model.plan.solve(rewards: model.rewards, transitions: model.transitions)
    }
}

/// Runs a tabular-MDP strategy for `trials` trials of `episodes` episodes on tasks from
/// `mdp`. Trial i draws its task and its randomness from generator i of `seed`'s split, so
/// the same seed gives the same tasks to every strategy.
public func evaluateTabularMDP<S: TabularMDPStrategy, M: TabularMDPEnv>(
    _ strategy: S, mdp: M, episodes: Int, trials: Int, seed: UInt64
) -> TrialStatistics {
    var streams = TrialStreams(seed: seed)
    var strategy = strategy
    var env = mdp
    var returns: [Double] = []
    returns.reserveCapacity(trials)
    var action: [Float] = [0]
    var obs = [Float](repeating: 0, count: mdp.states)
    for _ in 0..<trials {
        var (taskRNG, rng) = streams.next()
        env.setTask(env.sampleTasks(1, using: &taskRNG)[0])
        strategy.start(states: env.states, actions: env.actions, horizon: env.horizon)
        var total = 0.0, steps = 0
        for _ in 0..<episodes {
            obs.withUnsafeMutableBufferPointer { env.reset(observation: $0, using: &rng) }
            strategy.beginEpisode(totalSteps: steps, using: &rng)
            for t in 0..<env.horizon {
                let state = env.state
                let a = strategy.choose(state: state, step: t, using: &rng)
                action[0] = Float(a)
                let outcome = try! action.withUnsafeBufferPointer { act in
                    try obs.withUnsafeMutableBufferPointer { o in try env.step(act, observation: o, using: &rng) }
                }
                strategy.record(state: state, action: a, reward: Double(outcome.reward), next: env.state)
                total += Double(outcome.reward)
                steps += 1
                if outcome.terminated || outcome.truncated { break }
            }
        }
        returns.append(total)
    }
    return TrialStatistics(returns: returns)
}
