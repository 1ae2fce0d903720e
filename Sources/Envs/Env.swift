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

/// Why a step failed: the action was refused (``Kind/invalidAction``), or the environment
/// itself failed (``Kind/failed``: a Python worker that raised, died or hung, a NaN state).
public struct EnvError: Error, CustomStringConvertible, Equatable {
    /// The two causes a step can fail for.
    public enum Kind: Sendable, Equatable {
        /// The action is not one of the action space's.
        case invalidAction
        /// The environment could not go on; training stops with this error.
        case failed
    }
    /// Which of the two causes.
    public var kind: Kind
    /// The environment's name, as errors show it.
    public var environment: String
    /// Why the step failed.
    public var reason: String
    /// An action `environment` refused, and why.
    public init(environment: String, reason: String) {
        self.init(kind: .invalidAction, environment: environment, reason: reason)
    }
    /// A failure of `kind` in `environment`.
    public init(kind: Kind, environment: String, reason: String) {
        self.kind = kind
        self.environment = environment
        self.reason = reason
    }
    /// `environment` could not go on, for `reason`.
    public static func failed(environment: String, reason: String) -> EnvError {
        EnvError(kind: .failed, environment: environment, reason: reason)
    }
    /// One line: the environment, then the reason.
    public var description: String {
        kind == .invalidAction ? "\(environment): invalid action: \(reason)" : "\(environment): \(reason)"
    }
}

/// What one step produced besides the next observation.
public struct StepOutcome: Equatable, Sendable {
    /// The reward of the step.
    public var reward: Float
    /// The episode reached a true end (a goal, a fall): do not bootstrap past it.
    public var terminated: Bool
    /// The episode was cut by its time limit: the state still has a value.
    public var truncated: Bool
    /// The reward's expectation given the task, the state and the action (a Bernoulli arm's
    /// probability, a tabular MDP's mean reward), for families that know it; nil otherwise.
    /// Training may put it in place of `reward` in returns (``VectorStepOutput/expectedRewards``).
    public var expectedReward: Float?

    /// What a step produced.
    public init(reward: Float, terminated: Bool, truncated: Bool, expectedReward: Float? = nil) {
        self.reward = reward
        self.terminated = terminated
        self.truncated = truncated
        self.expectedReward = expectedReward
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
    ) throws(EnvError) -> StepOutcome

    /// Steps `copies[i]` with row i of `actions` for every i, writing into `output`; a copy
    /// whose episode ends is reset at once (``VectorEnv``'s auto-reset rule). The default
    /// steps one copy at a time; an environment living in other processes (the Python
    /// bridge) overrides it to step the whole batch in one exchange.
    static func stepCopies(
        _ copies: UnsafeMutableBufferPointer<Self>, rngs: UnsafeMutableBufferPointer<Xoshiro256>,
        actions: UnsafePointer<Float>, output: VectorStepOutput
    ) throws(EnvError)

    /// Resets `copies[i]` for every i in `indices`, writing row i of `observations`
    /// (`observationSize` Floats a row). The default resets one copy at a time.
    static func resetCopies(
        _ copies: UnsafeMutableBufferPointer<Self>, at indices: UnsafeBufferPointer<Int>,
        rngs: UnsafeMutableBufferPointer<Xoshiro256>, observations: UnsafeMutablePointer<Float>, observationSize: Int
    )

    /// Whether a step started with ``startStepCopies(_:actions:actionSize:)`` runs while the
    /// caller goes on (an environment in other processes), so that a rollout gains by acting
    /// on half of its copies while the other half steps. The default is false.
    static var stepsWhileCallerWorks: Bool { get }

    /// Starts a batched step of `copies` with row i of `actions` for copy i (`actionSize`
    /// Floats a row; the actions are read before it returns); ``finishStepCopies(_:_:rngs:output:)``
    /// completes it. The default only keeps the actions, and the step runs at the finish.
    static func startStepCopies(
        _ copies: UnsafeMutableBufferPointer<Self>, actions: UnsafePointer<Float>, actionSize: Int
    ) throws(EnvError) -> any StartedStep

    /// Completes a started step of the same copies, as ``stepCopies(_:rngs:actions:output:)`` would have.
    static func finishStepCopies(
        _ started: any StartedStep, _ copies: UnsafeMutableBufferPointer<Self>,
        rngs: UnsafeMutableBufferPointer<Xoshiro256>, output: VectorStepOutput
    ) throws(EnvError)
}

/// A batched step begun by ``Env/startStepCopies(_:actions:actionSize:)`` and not yet finished.
public protocol StartedStep: AnyObject {}

/// The default started step: the actions, kept until the finish steps the copies.
public final class DeferredStep: StartedStep {
    /// The rows of actions, as given to the start.
    public let actions: [Float]
    /// A step of these actions.
    @inlinable public init(actions: [Float]) { self.actions = actions }
}

/// Where a batched step (``Env/stepCopies(_:rngs:actions:output:)``) writes, row i for copy i:
/// struct-of-arrays buffers owned by the caller (``VectorEnv``).
public struct VectorStepOutput {
    /// [copies × observationSize]: each copy's next observation (its next episode's first, after an end).
    public var observations: UnsafeMutablePointer<Float>
    /// [copies × observationSize]: the observation an episode ended in (rows of copies that ended).
    public var finalObservations: UnsafeMutablePointer<Float>
    public var rewards: UnsafeMutablePointer<Float>
    public var terminated: UnsafeMutablePointer<Bool>
    public var truncated: UnsafeMutablePointer<Bool>
    /// Row i: whether copy i's task counted as solved on this step (1 or 0, as Meta-World's
    /// `info["success"]`), NaN for a step that says nothing; nil when the caller does not
    /// track success. Native families leave it untouched (NaN).
    public var successes: UnsafeMutablePointer<Float>?
    /// Row i: copy i's ``StepOutcome/expectedReward`` for this step (NaN where its family does
    /// not know it); nil when the caller does not ask. Batched steps of other processes leave it untouched.
    public var expectedRewards: UnsafeMutablePointer<Float>?
    /// Floats in one observation row and in one action row.
    public var observationSize: Int
    public var actionSize: Int

    /// Output rows in these buffers.
    @inlinable
    public init(observations: UnsafeMutablePointer<Float>, finalObservations: UnsafeMutablePointer<Float>,
                rewards: UnsafeMutablePointer<Float>, terminated: UnsafeMutablePointer<Bool>, truncated: UnsafeMutablePointer<Bool>,
                successes: UnsafeMutablePointer<Float>? = nil, expectedRewards: UnsafeMutablePointer<Float>? = nil,
                observationSize: Int, actionSize: Int) {
        self.observations = observations
        self.successes = successes
        self.expectedRewards = expectedRewards
        self.finalObservations = finalObservations
        self.rewards = rewards
        self.terminated = terminated
        self.truncated = truncated
        self.observationSize = observationSize
        self.actionSize = actionSize
    }
}

extension Env {
    /// One copy at a time, in index order, each with its own generator.
    @inlinable
    public static func stepCopies(
        _ copies: UnsafeMutableBufferPointer<Self>, rngs: UnsafeMutableBufferPointer<Xoshiro256>,
        actions: UnsafePointer<Float>, output: VectorStepOutput
    ) throws(EnvError) {
        let n = output.observationSize, m = output.actionSize, obs = output.observations
        for i in 0..<copies.count {
            let row = UnsafeMutableBufferPointer(start: obs + i * n, count: n)
            let outcome = try copies[i].step(UnsafeBufferPointer(start: actions + i * m, count: m), observation: row, using: &rngs[i])
            output.rewards[i] = outcome.reward
            output.terminated[i] = outcome.terminated
            output.truncated[i] = outcome.truncated
            output.expectedRewards?[i] = outcome.expectedReward ?? .nan
            if outcome.terminated || outcome.truncated {
                (output.finalObservations + i * n).update(from: obs + i * n, count: n)
                copies[i].reset(observation: row, using: &rngs[i])
            }
        }
    }

    /// False: a step runs when it is asked for.
    @inlinable public static var stepsWhileCallerWorks: Bool { false }

    /// Keeps a copy of the actions for ``finishStepCopies(_:_:rngs:output:)``.
    @inlinable
    public static func startStepCopies(
        _ copies: UnsafeMutableBufferPointer<Self>, actions: UnsafePointer<Float>, actionSize: Int
    ) throws(EnvError) -> any StartedStep {
        DeferredStep(actions: Array(UnsafeBufferPointer(start: actions, count: copies.count * actionSize)))
    }

    /// Steps the copies with the kept actions.
    @inlinable
    public static func finishStepCopies(
        _ started: any StartedStep, _ copies: UnsafeMutableBufferPointer<Self>,
        rngs: UnsafeMutableBufferPointer<Xoshiro256>, output: VectorStepOutput
    ) throws(EnvError) {
        guard let deferred = started as? DeferredStep else {
            throw .failed(environment: "\(Self.self)", reason: "a step started by another kind of environment was finished here")
        }
        try deferred.actions.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(EnvError) in
            try stepCopies(copies, rngs: rngs, actions: a.baseAddress!, output: output)
        }
    }

    /// One copy at a time, in the order of `indices`.
    @inlinable
    public static func resetCopies(
        _ copies: UnsafeMutableBufferPointer<Self>, at indices: UnsafeBufferPointer<Int>,
        rngs: UnsafeMutableBufferPointer<Xoshiro256>, observations: UnsafeMutablePointer<Float>, observationSize n: Int
    ) {
        for i in indices {
            copies[i].reset(observation: UnsafeMutableBufferPointer(start: observations + i * n, count: n), using: &rngs[i])
        }
    }
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
    /// One task for each of `copies[i]`, i in `indices`, drawn with that copy's generator
    /// `rngs[i]` (a vector env starting several trials at once). The default draws one copy at
    /// a time; an environment in other processes (the Python bridge) draws them in one exchange.
    static func sampleTaskCopies(
        _ copies: UnsafeMutableBufferPointer<Self>, at indices: UnsafeBufferPointer<Int>,
        rngs: UnsafeMutableBufferPointer<Xoshiro256>
    ) -> [Task]
}

extension MetaEnv {
    /// One copy at a time, in the order of `indices`: `sampleTasks(1, using:)` with its own generator.
    @inlinable
    public static func sampleTaskCopies(
        _ copies: UnsafeMutableBufferPointer<Self>, at indices: UnsafeBufferPointer<Int>,
        rngs: UnsafeMutableBufferPointer<Xoshiro256>
    ) -> [Task] {
        indices.map { copies[$0].sampleTasks(1, using: &rngs[$0])[0] }
    }
}

/// A task that can be written as a fixed-length vector of numbers (a bandit's arm
/// probabilities), so that a critic used only in training can be told the task it is in
/// (RL²'s `--task-aware-value`). The length depends on the family's arguments only.
public protocol TaskFeatures {
    /// The task as numbers, in a fixed order.
    var features: [Float] { get }
}

/// Whether an episode solved its task: NaN while no step has reported success, then 1 once
/// any step reported it (Meta-World's rule: solved at some point of the episode), else 0.
public enum EpisodeSuccess {
    /// Folds one step's report (1, 0 or NaN) into `episode`, the episode's value so far.
    @inlinable @inline(__always)
    public static func accumulate(_ episode: inout Float, step: Float) {
        guard !step.isNaN else { return }
        episode = step > 0.5 ? 1 : (episode == 1 ? 1 : 0)
    }

    /// The fraction of solved episodes among those that reported, or nil when none did.
    public static func rate<S: Sequence>(_ episodes: S) -> Double? where S.Element == Float {
        var reported = 0, solved = 0
        for e in episodes where !e.isNaN {
            reported += 1
            if e > 0.5 { solved += 1 }
        }
        return reported == 0 ? nil : Double(solved) / Double(reported)
    }

    /// Mean and standard error over tasks of per-task success rates, skipping NaN (a task
    /// whose family reports no success); nil when no task reported.
    public static func statistics(_ rates: [Double]) -> SampleStatistics? {
        let reported = rates.filter { !$0.isNaN }
        return reported.isEmpty ? nil : SampleStatistics(reported)
    }
}

extension Env {
    /// Starts an episode and returns its first observation.
    public mutating func reset(using rng: inout Xoshiro256) -> [Float] {
        var obs = [Float](repeating: 0, count: observationSpace.flatSize)
        obs.withUnsafeMutableBufferPointer { reset(observation: $0, using: &rng) }
        return obs
    }

    /// Steps with a flat action; returns the next observation and the outcome.
    public mutating func step(_ action: [Float], using rng: inout Xoshiro256) throws(EnvError) -> (observation: [Float], outcome: StepOutcome) {
        var obs = [Float](repeating: 0, count: observationSpace.flatSize)
        let outcome = try action.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(EnvError) -> StepOutcome in
            try obs.withUnsafeMutableBufferPointer { (o: inout UnsafeMutableBufferPointer<Float>) throws(EnvError) -> StepOutcome in
                try step(a, observation: o, using: &rng)
            }
        }
        return (obs, outcome)
    }

    /// Steps with a discrete action.
    public mutating func step(discrete action: Int, using rng: inout Xoshiro256) throws(EnvError) -> (observation: [Float], outcome: StepOutcome) {
        try step([Float(action)], using: &rng)
    }
}

/// Reads a discrete action from its Float, rejecting non-integers and out-of-range indices:
/// what an ``Env/step(_:observation:using:)`` with a `.discrete(n)` action space calls first.
@inlinable @inline(__always)
public func discreteAction(_ action: UnsafeBufferPointer<Float>, count n: Int, environment: String) throws(EnvError) -> Int {
    guard action.count >= 1 else { throw EnvError(environment: environment, reason: "no action given") }
    let x = action[0]
    guard x.isFinite, x >= 0, x < Float(n), x == x.rounded(.towardZero) else {
        throw EnvError(environment: environment, reason: "\(x) is not an action of Discrete(\(n)) (0…\(n - 1))")
    }
    return Int(x)
}

/// Reads element `i` of a continuous action, rejecting NaN/Inf and clipping it to [low, high]:
/// what a `step` with a box action space calls per element.
@inlinable @inline(__always)
public func clippedAction(_ action: UnsafeBufferPointer<Float>, _ i: Int, low: Float, high: Float, environment: String) throws(EnvError) -> Float {
    guard i < action.count else { throw EnvError(environment: environment, reason: "expected at least \(i + 1) action elements, got \(action.count)") }
    let x = action[i]
    guard x.isFinite else { throw EnvError(environment: environment, reason: "element \(i) is \(x)") }
    return Swift.min(Swift.max(x, low), high)
}

/// The random streams of a sequence of evaluation trials: trial i takes its task from the first
/// of two generators split off `seed` for it, and everything else that is random in the trial
/// from the second. Every classic strategy is evaluated this way, so one seed gives every
/// strategy the same tasks, and an agent evaluated on ``tasks(of:count:seed:)`` meets them too.
public struct TrialStreams: Sendable {
    var root: Xoshiro256

    /// The streams of the trials of `seed`.
    public init(seed: UInt64) { root = Xoshiro256(seed: seed) }

    /// The next trial's task generator and its generator for everything else.
    public mutating func next() -> (task: Xoshiro256, play: Xoshiro256) {
        let task = root.split()
        return (task, root.split())
    }

    /// The tasks of the first `count` trials of `seed`, drawn from `prototype`'s family.
    public static func tasks<E: MetaEnv>(of prototype: E, count: Int, seed: UInt64) -> [E.Task] {
        var streams = TrialStreams(seed: seed)
        return (0..<count).map { _ in
            var task = streams.next().task
            return prototype.sampleTasks(1, using: &task)[0]
        }
    }
}
