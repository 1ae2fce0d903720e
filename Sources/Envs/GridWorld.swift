import TensorCore

/// Grid world with a random goal: a `size`×`size` grid, start and goal cells drawn per
/// task (distinct). Each move costs `stepPenalty`; entering the goal pays `goalReward`
/// and ends the episode (`terminated`); otherwise the episode is cut at `horizon`
/// steps (`truncated`). Moves into a wall leave the agent in place. The observation is
/// the one-hot cell of the agent (the goal is not shown: it must be found).
public struct GridWorld: MetaEnv, Sendable {
    public struct Task: Codable, Sendable, Equatable {
        public var start: Int
        public var goal: Int
        public init(start: Int, goal: Int) {
            self.start = start
            self.goal = goal
        }
    }

    /// Actions: 0 up (row − 1), 1 down, 2 left (column − 1), 3 right.
    public static let moves = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    public let size: Int
    public let horizon: Int
    public let stepPenalty: Float
    public let goalReward: Float
    public private(set) var task: Task
    @inlinable public var cell: Int { _cell }
    @usableFromInline var _cell: Int = 0
    @usableFromInline var stepInEpisode = 0

    public init(size: Int = 5, horizon: Int = 30, stepPenalty: Float = 0.1, goalReward: Float = 1) {
        precondition(size >= 2, "GridWorld: size must be at least 2")
        self.size = size
        self.horizon = horizon
        self.stepPenalty = stepPenalty
        self.goalReward = goalReward
        task = Task(start: 0, goal: size * size - 1)
    }

    public var observationSpace: Space { .box(low: 0, high: 1, shape: [size * size]) }
    public var actionSpace: Space { .discrete(4) }
    public var maxEpisodeSteps: Int { horizon }

    public func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task] {
        let cells = size * size
        return (0..<n).map { _ in
            let start = rng.uniformInt(below: cells)
            var goal = rng.uniformInt(below: cells - 1)
            if goal >= start { goal += 1 }
            return Task(start: start, goal: goal)
        }
    }

    public mutating func setTask(_ task: Task) { self.task = task }

    @inlinable
    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        _cell = task.start
        stepInEpisode = 0
        write(observation)
    }

    @inlinable
    func write(_ o: UnsafeMutableBufferPointer<Float>) {
        for j in 0..<(size * size) { o[j] = 0 }
        o[_cell] = 1
    }

    @inlinable
    public mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256
    ) throws(EnvError) -> StepOutcome {
        let a = try discreteAction(action, count: 4, environment: "gridworld")
        let (dr, dc) = Self.moves[a]
        let r = _cell / size + dr, c = _cell % size + dc
        if r >= 0, r < size, c >= 0, c < size { _cell = r * size + c }
        stepInEpisode += 1
        write(observation)
        if _cell == task.goal { return StepOutcome(reward: goalReward - stepPenalty, terminated: true, truncated: false) }
        return StepOutcome(reward: -stepPenalty, terminated: false, truncated: stepInEpisode >= horizon)
    }
}

extension GridWorld {
    /// The `gridworld` family.
    public static let family = TaskFamily(
        name: "gridworld", summary: "grid world with random start and goal; step penalty, goal ends the episode",
        arguments: [.integer("size", default: 5, in: 2...50, help: "grid side"),
                    .integer("horizon", default: 30, in: 1...10000, help: "step limit per episode"),
                    .real("step-penalty", default: 0.1, in: 0...10, help: "cost of each move"),
                    .real("goal-reward", default: 1, in: 0...100, help: "reward on reaching the goal")]
    ) {
        GridWorld(size: $0.int("size"), horizon: $0.int("horizon"), stepPenalty: Float($0.real("step-penalty")),
                  goalReward: Float($0.real("goal-reward")))
    }
}
