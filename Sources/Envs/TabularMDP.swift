import Foundation
import TensorCore

/// Random tabular MDP (RL² setting): transition rows ~ flat Dirichlet, mean rewards
/// μ(s, a) ~ Normal(1, 1), observed rewards μ(s, a) + Normal(0, 1) noise. Every episode
/// starts in state 0 and lasts `horizon` steps (a time limit: `truncated`). The
/// observation is the one-hot state.
public struct TabularMDP: MetaEnv, Sendable {
    /// Transition probabilities [s][a][s′] flattened, and mean rewards [s][a] flattened.
    public struct Task: Codable, Sendable, Equatable {
        public var transitions: [Double]
        public var meanRewards: [Double]
        public init(transitions: [Double], meanRewards: [Double]) {
            self.transitions = transitions
            self.meanRewards = meanRewards
        }
    }

    public let states: Int
    public let actions: Int
    public let horizon: Int
    public private(set) var task: Task
    public private(set) var state = 0
    var stepInEpisode = 0

    public init(states: Int = 10, actions: Int = 5, horizon: Int = 10) {
        self.states = states
        self.actions = actions
        self.horizon = horizon
        let uniform = [Double](repeating: 1 / Double(states), count: states * actions * states)
        task = Task(transitions: uniform, meanRewards: [Double](repeating: 1, count: states * actions))
    }

    public var observationSpace: Space { .box(low: 0, high: 1, shape: [states]) }
    public var actionSpace: Space { .discrete(actions) }
    public var maxEpisodeSteps: Int { horizon }

    public func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task] {
        (0..<n).map { _ in
            var p = [Double](repeating: 0, count: states * actions * states)
            for row in 0..<(states * actions) {
                // Flat Dirichlet = normalised Exp(1) draws.
                var total = 0.0
                for j in 0..<states {
                    let e = -Foundation.log(1 - rng.uniformDouble())
                    p[row * states + j] = e
                    total += e
                }
                for j in 0..<states { p[row * states + j] /= total }
            }
            let mu = (0..<(states * actions)).map { _ in 1 + rng.normal() }
            return Task(transitions: p, meanRewards: mu)
        }
    }

    public mutating func setTask(_ task: Task) {
        precondition(task.transitions.count == states * actions * states && task.meanRewards.count == states * actions,
                     "TabularMDP: task sized for another state/action count")
        self.task = task
    }

    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        state = 0
        stepInEpisode = 0
        writeObservation(observation)
    }

    @inline(__always)
    func writeObservation(_ observation: UnsafeMutableBufferPointer<Float>) {
        for j in 0..<states { observation[j] = 0 }
        observation[state] = 1
    }

    public mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256
    ) throws(InvalidAction) -> StepOutcome {
        let a = try discreteAction(action, count: actions, environment: "tabular-mdp")
        let row = state * actions + a
        let reward = task.meanRewards[row] + rng.normal()
        var u = rng.uniformDouble()
        var next = states - 1
        for j in 0..<states {
            u -= task.transitions[row * states + j]
            if u < 0 { next = j; break }
        }
        state = next
        stepInEpisode += 1
        writeObservation(observation)
        return StepOutcome(reward: Float(reward), terminated: false, truncated: stepInEpisode >= horizon)
    }
}
