import TensorCore

/// The shape of an environment's observations or actions.
public enum Space: Codable, Equatable, Sendable, CustomStringConvertible {
    /// One of `n` choices, 0..<n. A discrete action travels as one Float holding the index.
    case discrete(Int)
    /// Real vectors with per-element bounds, flattened row-major.
    case box(low: [Float], high: [Float], shape: [Int])

    /// A box with the same bounds on every element.
    public static func box(low: Float, high: Float, shape: [Int]) -> Space {
        let n = shapeCount(shape)
        return .box(low: [Float](repeating: low, count: n), high: [Float](repeating: high, count: n), shape: shape)
    }

    /// Floats one element of this space occupies in a flat buffer (1 for discrete).
    public var flatSize: Int {
        switch self {
        case .discrete: return 1
        case .box(_, _, let shape): return shapeCount(shape)
        }
    }

    /// `Discrete(n)` or `Box(low, high, shape)`, as errors and `metarl envs` show a space.
    public var description: String {
        switch self {
        case .discrete(let n): return "Discrete(\(n))"
        case .box(let low, let high, let shape):
            let lo = Set(low).count == 1 ? "\(low[0])" : "\(low)"
            let hi = Set(high).count == 1 ? "\(high[0])" : "\(high)"
            return "Box(\(lo), \(hi), \(shape))"
        }
    }
}

/// An action an environment refused, with the reason.
public struct InvalidAction: Error, CustomStringConvertible, Equatable {
    /// The environment's name, as errors show it.
    public var environment: String
    /// Why the action was refused.
    public var reason: String
    /// An action `environment` refused, and why.
    public init(environment: String, reason: String) {
        self.environment = environment
        self.reason = reason
    }
    /// One line: the environment, then the reason.
    public var description: String { "\(environment): invalid action: \(reason)" }
}

/// What one step produced besides the next observation.
public struct StepOutcome: Equatable, Sendable {
    /// The reward of the step.
    public var reward: Float
    /// The episode reached a true end (a goal, a fall): do not bootstrap past it.
    public var terminated: Bool
    /// The episode was cut by its time limit: the state still has a value.
    public var truncated: Bool

    /// What a step produced.
    public init(reward: Float, terminated: Bool, truncated: Bool) {
        self.reward = reward
        self.terminated = terminated
        self.truncated = truncated
    }

    /// The episode ended, either way.
    public var episodeEnded: Bool { terminated || truncated }
}

/// An environment: one copy, stepped one action at a time.
///
/// Observations and actions travel through caller-owned flat Float buffers, so stepping
/// allocates nothing; the conveniences in the extension return arrays for tests and
/// scripts. Randomness in the dynamics comes from the generator passed in.
public protocol Env {
    var observationSpace: Space { get }
    var actionSpace: Space { get }
    /// The episode's time limit; reaching it sets `truncated`.
    var maxEpisodeSteps: Int { get }

    /// Starts an episode, writing its first observation.
    mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256)

    /// Applies `action` (``Space/flatSize`` Floats; a discrete action is its index) and
    /// writes the next observation.
    mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>,
        using rng: inout Xoshiro256
    ) throws(InvalidAction) -> StepOutcome
}

/// An environment whose task can change: the unit a meta-RL algorithm trains over.
/// Tasks are `Codable`, so a fixed test set can be saved and reused across algorithms.
public protocol MetaEnv: Env {
    associatedtype Task: Codable & Sendable & Equatable
    /// `n` tasks drawn from this family's task distribution p(T).
    func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task]
    /// Switches to `task`; the next `reset` starts an episode of it.
    mutating func setTask(_ task: Task)
    /// The current task.
    var task: Task { get }
}

extension Env {
    /// Starts an episode and returns its first observation.
    public mutating func reset(using rng: inout Xoshiro256) -> [Float] {
        var obs = [Float](repeating: 0, count: observationSpace.flatSize)
        obs.withUnsafeMutableBufferPointer { reset(observation: $0, using: &rng) }
        return obs
    }

    /// Steps with a flat action; returns the next observation and the outcome.
    public mutating func step(_ action: [Float], using rng: inout Xoshiro256) throws(InvalidAction) -> (observation: [Float], outcome: StepOutcome) {
        var obs = [Float](repeating: 0, count: observationSpace.flatSize)
        let outcome = try action.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(InvalidAction) -> StepOutcome in
            try obs.withUnsafeMutableBufferPointer { (o: inout UnsafeMutableBufferPointer<Float>) throws(InvalidAction) -> StepOutcome in
                try step(a, observation: o, using: &rng)
            }
        }
        return (obs, outcome)
    }

    /// Steps with a discrete action.
    public mutating func step(discrete action: Int, using rng: inout Xoshiro256) throws(InvalidAction) -> (observation: [Float], outcome: StepOutcome) {
        try step([Float(action)], using: &rng)
    }
}

/// Reads a discrete action from its Float, rejecting non-integers and out-of-range indices:
/// what an ``Env/step(_:observation:using:)`` with a `.discrete(n)` action space calls first.
@inlinable @inline(__always)
public func discreteAction(_ action: UnsafeBufferPointer<Float>, count n: Int, environment: String) throws(InvalidAction) -> Int {
    guard action.count >= 1 else { throw InvalidAction(environment: environment, reason: "no action given") }
    let x = action[0]
    guard x.isFinite, x >= 0, x < Float(n), x == x.rounded(.towardZero) else {
        throw InvalidAction(environment: environment, reason: "\(x) is not an action of Discrete(\(n)) (0…\(n - 1))")
    }
    return Int(x)
}

/// Reads element `i` of a continuous action, rejecting NaN/Inf and clipping it to [low, high]:
/// what a `step` with a box action space calls per element.
@inlinable @inline(__always)
public func clippedAction(_ action: UnsafeBufferPointer<Float>, _ i: Int, low: Float, high: Float, environment: String) throws(InvalidAction) -> Float {
    guard i < action.count else { throw InvalidAction(environment: environment, reason: "expected at least \(i + 1) action elements, got \(action.count)") }
    let x = action[i]
    guard x.isFinite else { throw InvalidAction(environment: environment, reason: "element \(i) is \(x)") }
    return Swift.min(Swift.max(x, low), high)
}
