import TensorCore

/// A task family whose tasks are k Bernoulli arms, one pull per episode (discrete action =
/// the arm, reward 0 or 1, p ~ U[0, 1] per arm): what the classic bandit strategies
/// (`Baselines`) need to run on it.
public protocol BernoulliArms: MetaEnv {
    /// k, the number of arms.
    var arms: Int { get }
}

/// Bernoulli multi-armed bandit (RL² setting): `arms` arms, each paying 1 with its own
/// probability p ~ U[0, 1] drawn per task. An episode is one pull, so a trial of n
/// episodes is n pulls of the same arms. The observation is a constant 0.
public struct BernoulliBandit: BernoulliArms, Sendable {
    /// The arms' success probabilities.
    public struct Task: Codable, Sendable, Equatable, TaskFeatures {
        public var armProbabilities: [Double]
        public init(armProbabilities: [Double]) { self.armProbabilities = armProbabilities }
        /// The arms' probabilities.
        public var features: [Float] { armProbabilities.map(Float.init) }
    }

    public let arms: Int
    public private(set) var task: Task

    public init(arms: Int = 5) {
        precondition(arms >= 1, "BernoulliBandit: arms must be at least 1")
        self.arms = arms
        task = Task(armProbabilities: [Double](repeating: 0.5, count: arms))
    }

    public var observationSpace: Space { .box(low: 0, high: 0, shape: [1]) }
    public var actionSpace: Space { .discrete(arms) }
    public var maxEpisodeSteps: Int { 1 }

    public func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task] {
        (0..<n).map { _ in Task(armProbabilities: (0..<arms).map { _ in rng.uniformDouble() }) }
    }

    public mutating func setTask(_ task: Task) {
        precondition(task.armProbabilities.count == arms, "BernoulliBandit: task has \(task.armProbabilities.count) arms, env has \(arms)")
        self.task = task
    }

    @inlinable
    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        observation[0] = 0
    }

    @inlinable @inline(__always)
    public mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256
    ) throws(EnvError) -> StepOutcome {
        let arm = try discreteAction(action, count: arms, environment: "bandit")
        observation[0] = 0
        let p = task.armProbabilities[arm]
        let paid = rng.uniformDouble() < p
        return StepOutcome(reward: paid ? 1 : 0, terminated: true, truncated: false, expectedReward: Float(p))
    }
}

extension BernoulliBandit {
    /// The `bandit` family (`--env bandit --env-arg arms=K`).
    public static let family = TaskFamily(
        name: "bandit", summary: "Bernoulli bandit, k arms with p ~ U[0,1]; one pull per episode",
        arguments: [.integer("arms", default: 5, in: 2...1000, help: "number of arms k")]
    ) { BernoulliBandit(arms: $0.int("arms")) }
}
