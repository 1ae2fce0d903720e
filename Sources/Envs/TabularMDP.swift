import Foundation
import TensorCore

/// A task family of finite MDPs with observable states and episodes of fixed length, starting
/// in state 0 (rewards with unit-variance Gaussian noise): what the classic tabular-MDP
/// strategies (`Baselines`: PSRL, UCRL2, BEB, …) need to run on it.
public protocol TabularMDPEnv: MetaEnv {
    var states: Int { get }
    var actions: Int { get }
    /// Steps per episode.
    var horizon: Int { get }
    /// The current state, 0..<states.
    var state: Int { get }
}

/// Random tabular MDP (RL² setting): transition rows ~ flat Dirichlet, mean rewards
/// μ(s, a) ~ Normal(1, 1), observed rewards μ(s, a) + Normal(0, 1) noise. Every episode
/// starts in state 0 and lasts `horizon` steps (a time limit: `truncated`). The
/// observation is the one-hot state.
public struct TabularMDP: TabularMDPEnv, Sendable {
    /// Transition probabilities [s][a][s′] flattened, and mean rewards [s][a] flattened.
    public struct Task: Codable, Sendable, Equatable, TaskFeatures {
        public var transitions: [Double]
        public var meanRewards: [Double]
        public init(transitions: [Double], meanRewards: [Double]) {
            self.transitions = transitions
            self.meanRewards = meanRewards
        }
        /// The mean rewards, then the transition probabilities.
        public var features: [Float] { (meanRewards + transitions).map(Float.init) }
    }

    public let states: Int
    public let actions: Int
    public let horizon: Int
    public private(set) var task: Task
    @inlinable public var state: Int { _state }
    @usableFromInline var _state: Int = 0
    @usableFromInline var stepInEpisode = 0
    /// Sampling tables built from the task: per row, Walker's alias table with one UInt32
    /// per column (acceptance threshold in the top 22 bits, alias in the low 10, so 256
    /// copies of the default MDP fit in half a megabyte), and mean rewards in Float.
    @usableFromInline var aliasTable: [UInt32] = []
    @usableFromInline var meanRewards: [Float] = []

    public init(states: Int = 10, actions: Int = 5, horizon: Int = 10) {
        precondition(states >= 1 && states <= 1024, "TabularMDP: states must be in 1…1024 (the alias table packs a state in 10 bits)")
        self.states = states
        self.actions = actions
        self.horizon = horizon
        let uniform = [Double](repeating: 1 / Double(states), count: states * actions * states)
        task = Task(transitions: uniform, meanRewards: [Double](repeating: 1, count: states * actions))
        buildTables()
    }

    /// Walker's alias tables (Vose's construction) for every transition row, so a step
    /// draws its next state with one random number whatever the number of states.
    mutating func buildTables() {
        let n = states
        var aliasAccept = [Double](repeating: 1, count: states * actions * n)
        var aliasIndex = [Int](repeating: 0, count: states * actions * n)
        meanRewards = task.meanRewards.map(Float.init)
        var scaled = [Double](repeating: 0, count: n)
        var small: [Int] = [], large: [Int] = []
        small.reserveCapacity(n)
        large.reserveCapacity(n)
        for row in 0..<(states * actions) {
            let base = row * n
            small.removeAll(keepingCapacity: true)
            large.removeAll(keepingCapacity: true)
            for j in 0..<n {
                scaled[j] = task.transitions[base + j] * Double(n)
                aliasIndex[base + j] = j
                if scaled[j] < 1 { small.append(j) } else { large.append(j) }
            }
            while let s = small.popLast() {
                guard let l = large.last else { break }
                aliasAccept[base + s] = scaled[s]
                aliasIndex[base + s] = l
                scaled[l] -= 1 - scaled[s]
                if scaled[l] < 1 {
                    large.removeLast()
                    small.append(l)
                }
            }
            // Leftovers (rounding) accept themselves with probability 1.
            for j in large { aliasAccept[base + j] = 1 }
            for j in small { aliasAccept[base + j] = 1 }
        }
        aliasTable = (0..<aliasAccept.count).map { i in
            // A column that always accepts itself becomes its own alias.
            let own = aliasAccept[i] >= 1
            let threshold = own ? 0 : UInt32(min((aliasAccept[i] * 4_194_304).rounded(), 4_194_303))
            return threshold << 10 | UInt32(own ? i % n : aliasIndex[i])
        }
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
        buildTables()
    }

    @inlinable
    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        _state = 0
        stepInEpisode = 0
        writeObservation(observation)
    }

    @inlinable @inline(__always)
    func writeObservation(_ observation: UnsafeMutableBufferPointer<Float>) {
        for j in 0..<states { observation[j] = 0 }
        observation[_state] = 1
    }

    @inlinable
    public mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256
    ) throws(EnvError) -> StepOutcome {
        let a = try discreteAction(action, count: actions, environment: "tabular-mdp")
        let row = _state * actions + a
        let meanReward = meanRewards[row]
        let reward = meanReward + rng.normalFloat()
        // Alias draw: the top bits pick a column, the low 22 bits decide between it and its alias.
        let r = rng.next()
        let column = Int(((r >> 32) &* UInt64(states)) >> 32)
        let cell = aliasTable[row * states + column]
        let next = UInt32(truncatingIfNeeded: r & 0x3F_FFFF) < cell >> 10 ? column : Int(cell & 0x3FF)
        _state = next
        stepInEpisode += 1
        writeObservation(observation)
        return StepOutcome(reward: reward, terminated: false, truncated: stepInEpisode >= horizon, expectedReward: meanReward)
    }
}

extension TabularMDP {
    /// The `tabular-mdp` family.
    public static let family = TaskFamily(
        name: "tabular-mdp", summary: "random tabular MDP, Dirichlet(1) transitions, rewards N(μ,1), μ ~ N(1,1)",
        arguments: [.integer("states", default: 10, in: 2...1000, help: "number of states"),
                    .integer("actions", default: 5, in: 2...100, help: "number of actions"),
                    .integer("horizon", default: 10, in: 1...10000, help: "steps per episode")]
    ) { TabularMDP(states: $0.int("states"), actions: $0.int("actions"), horizon: $0.int("horizon")) }
}
