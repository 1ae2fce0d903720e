import Foundation
import TensorCore

/// 2D point navigation of the MAML paper: the agent starts at the origin, a goal is drawn
/// per task from U[−0.5, 0.5]², actions (velocities) are clipped to [−0.1, 0.1]², the
/// reward is minus the distance to the goal after the move, and an episode lasts 100
/// steps (`truncated`), ending early (`terminated`) within 0.01 of the goal on both axes,
/// as in the reference implementation. The observation is the position.
public struct PointNavigation: MetaEnv, Sendable {
    public struct Task: Codable, Sendable, Equatable, TaskFeatures {
        public var goal: [Double]
        public init(goal: [Double]) { self.goal = goal }
        /// The goal's coordinates.
        public var features: [Float] { goal.map(Float.init) }
    }

    public let goalRange: Double
    public let horizon: Int
    public private(set) var task = Task(goal: [0, 0])
    @inlinable public var position: (Double, Double) { _position }
    @usableFromInline var _position: (Double, Double) = (0, 0)
    @usableFromInline var stepInEpisode = 0

    public init(goalRange: Double = 0.5, horizon: Int = 100) {
        self.goalRange = goalRange
        self.horizon = horizon
    }

    public var observationSpace: Space { .box(low: -.infinity, high: .infinity, shape: [2]) }
    public var actionSpace: Space { .box(low: -0.1, high: 0.1, shape: [2]) }
    public var maxEpisodeSteps: Int { horizon }

    public func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task] {
        (0..<n).map { _ in Task(goal: [(rng.uniformDouble() * 2 - 1) * goalRange, (rng.uniformDouble() * 2 - 1) * goalRange]) }
    }

    public mutating func setTask(_ task: Task) {
        precondition(task.goal.count == 2, "PointNavigation: a goal has two coordinates")
        self.task = task
    }

    @inlinable
    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        _position = (0, 0)
        stepInEpisode = 0
        observation[0] = 0
        observation[1] = 0
    }

    @inlinable @inline(__always)
    public mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256
    ) throws(EnvError) -> StepOutcome {
        let dx = try clippedAction(action, 0, low: -0.1, high: 0.1, environment: "point-nav")
        let dy = try clippedAction(action, 1, low: -0.1, high: 0.1, environment: "point-nav")
        _position.0 += Double(dx)
        _position.1 += Double(dy)
        let gx = _position.0 - task.goal[0], gy = _position.1 - task.goal[1]
        observation[0] = Float(_position.0)
        observation[1] = Float(_position.1)
        stepInEpisode += 1
        let reached = Swift.abs(gx) < 0.01 && Swift.abs(gy) < 0.01
        return StepOutcome(reward: Float(-(gx * gx + gy * gy).squareRoot()), terminated: reached,
                           truncated: !reached && stepInEpisode >= horizon)
    }
}

extension PointNavigation {
    /// The `point-nav` family.
    public static let family = TaskFamily(
        name: "point-nav", summary: "2D point navigation to a goal ~ U[−0.5,0.5]² (MAML paper)",
        arguments: [.real("goal-range", default: 0.5, in: 0.01...100, help: "goals ~ U[−r, r]²"),
                    .integer("horizon", default: 100, in: 1...100000, help: "steps per episode")]
    ) { PointNavigation(goalRange: $0.real("goal-range"), horizon: $0.int("horizon")) }
}
