import TensorCore

/// N copies of an environment stepped in lockstep, each with its own task and its own
/// random generator, into preallocated struct-of-arrays buffers (no allocation per step).
/// Its methods are `@inlinable`, so a module stepping `VectorEnv<MyEnv>` specialises them for `MyEnv`.
///
/// Auto-reset rule: when a copy's episode ends on a step (terminated or truncated), its
/// last observation is copied to ``finalObservations`` and the copy is reset at once, so
/// ``observations`` already holds the first observation of its next episode. Bootstrap
/// a truncated episode from ``finalObservations``, never from ``observations``.
public struct VectorEnv<E: MetaEnv> {
    @inlinable public var envs: [E] { _envs }
    @usableFromInline var _envs: [E]
    @usableFromInline var rngs: [Xoshiro256]
    public let count: Int
    public let observationSize: Int
    public let actionSize: Int
    /// [count × observationSize]: the observation each copy acts on next.
    @inlinable public var observations: [Float] { _observations }
    @usableFromInline var _observations: [Float]
    /// [count × observationSize]: for copies whose episode ended on the last step, the
    /// observation it ended in (other rows are stale).
    @inlinable public var finalObservations: [Float] { _finalObservations }
    @usableFromInline var _finalObservations: [Float]
    @inlinable public var rewards: [Float] { _rewards }
    @usableFromInline var _rewards: [Float]
    @inlinable public var terminated: [Bool] { _terminated }
    @usableFromInline var _terminated: [Bool]
    @inlinable public var truncated: [Bool] { _truncated }
    @usableFromInline var _truncated: [Bool]
    /// Each copy's success report for the last step (``VectorStepOutput/successes``): NaN
    /// unless the family reports success (Meta-World through the Python bridge).
    @inlinable public var successes: [Float] { _successes }
    @usableFromInline var _successes: [Float]
    /// Each copy's expected reward for the last step (``StepOutcome/expectedReward``): NaN
    /// unless its family knows it (the bandit, the tabular MDP).
    @inlinable public var expectedRewards: [Float] { _expectedRewards }
    @usableFromInline var _expectedRewards: [Float]
    /// Steps started by ``startStep(_:copies:)`` and not finished, by their first copy.
    @usableFromInline var started: [Int: (copies: Range<Int>, step: any StartedStep)] = [:]

    /// `count` copies of `prototype`; copy i draws from generator i of `seed`'s split.
    @inlinable
    public init(_ prototype: E, count: Int, seed: UInt64) {
        precondition(count >= 1, "VectorEnv: count must be at least 1")
        self.count = count
        _envs = [E](repeating: prototype, count: count)
        var root = Xoshiro256(seed: seed)
        rngs = (0..<count).map { _ in root.split() }
        observationSize = prototype.observationSpace.flatSize
        actionSize = prototype.actionSpace.flatSize
        _observations = [Float](repeating: 0, count: count * observationSize)
        _finalObservations = _observations
        _rewards = [Float](repeating: 0, count: count)
        _terminated = [Bool](repeating: false, count: count)
        _truncated = _terminated
        _successes = [Float](repeating: .nan, count: count)
        _expectedRewards = _successes
    }

    /// Sets copy `i`'s task (it takes effect at its next reset).
    @inlinable
    public mutating func setTask(_ task: E.Task, at i: Int) { _envs[i].setTask(task) }

    /// Draws a task for copy `i` from its own generator.
    @inlinable
    public mutating func sampleTask(at i: Int) -> E.Task {
        _envs[i].sampleTasks(1, using: &rngs[i])[0]
    }

    /// Draws a task for each copy in `indices`, each from its own generator, in one batch
    /// (``MetaEnv/sampleTaskCopies(_:at:rngs:)``): the same tasks as ``sampleTask(at:)`` copy by copy.
    @inlinable
    public mutating func sampleTasks(at indices: [Int]) -> [E.Task] {
        _envs.withUnsafeMutableBufferPointer { envs in
            rngs.withUnsafeMutableBufferPointer { rngs in
                indices.withUnsafeBufferPointer { E.sampleTaskCopies(envs, at: $0, rngs: rngs) }
            }
        }
    }

    /// Resets the copies in `indices` in one batch (``Env/resetCopies(_:at:rngs:observations:observationSize:)``):
    /// the same as ``reset(at:)`` copy by copy.
    @inlinable
    public mutating func reset(at indices: [Int]) {
        let n = observationSize
        _observations.withUnsafeMutableBufferPointer { obs in
            _envs.withUnsafeMutableBufferPointer { envs in
                rngs.withUnsafeMutableBufferPointer { rngs in
                    indices.withUnsafeBufferPointer { E.resetCopies(envs, at: $0, rngs: rngs, observations: obs.baseAddress!, observationSize: n) }
                }
            }
        }
    }

    /// Resets copy `i`.
    @inlinable
    public mutating func reset(at i: Int) { reset(at: [i]) }

    /// Resets every copy.
    @inlinable
    public mutating func resetAll() { reset(at: Array(0..<count)) }

    /// Steps every copy with its row of `actions` [count × actionSize] (``Env/stepCopies(_:rngs:actions:output:)``).
    @inlinable
    public mutating func step(_ actions: UnsafeBufferPointer<Float>) throws(EnvError) {
        precondition(actions.count == count * actionSize, "VectorEnv.step: \(actions.count) action values for \(count) × \(actionSize)")
        let actionBase = actions.baseAddress!
        try withOutput(copies: 0..<count) { (envs, rngs, output) throws(EnvError) in
            try E.stepCopies(envs, rngs: rngs, actions: actionBase, output: output)
        }
    }

    /// Runs `body` on copies `range`: their envs, their generators and their rows of the
    /// outputs, as raw pointers (no uniqueness or bounds checks per copy).
    @inlinable
    mutating func withOutput(
        copies range: Range<Int>,
        _ body: (UnsafeMutableBufferPointer<E>, UnsafeMutableBufferPointer<Xoshiro256>, VectorStepOutput) throws(EnvError) -> Void
    ) throws(EnvError) {
        let n = observationSize, m = actionSize, first = range.lowerBound
        var failure: EnvError?
        _observations.withUnsafeMutableBufferPointer { obs in
        _finalObservations.withUnsafeMutableBufferPointer { finals in
        _rewards.withUnsafeMutableBufferPointer { rewards in
        _terminated.withUnsafeMutableBufferPointer { terminated in
        _truncated.withUnsafeMutableBufferPointer { truncated in
        _successes.withUnsafeMutableBufferPointer { successes in
        _expectedRewards.withUnsafeMutableBufferPointer { expected in
        _envs.withUnsafeMutableBufferPointer { envs in
        rngs.withUnsafeMutableBufferPointer { rngs in
            let output = VectorStepOutput(
                observations: obs.baseAddress! + first * n, finalObservations: finals.baseAddress! + first * n,
                rewards: rewards.baseAddress! + first, terminated: terminated.baseAddress! + first,
                truncated: truncated.baseAddress! + first, successes: successes.baseAddress! + first,
                expectedRewards: expected.baseAddress! + first, observationSize: n, actionSize: m)
            do throws(EnvError) {
                try body(UnsafeMutableBufferPointer(rebasing: envs[range]), UnsafeMutableBufferPointer(rebasing: rngs[range]), output)
            } catch {
                failure = error
            }
        }}}}}}}}}
        if let failure { throw failure }
    }

    /// Steps with an array of actions.
    @inlinable
    public mutating func step(_ actions: [Float]) throws(EnvError) {
        try actions.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(EnvError) in try step(a) }
    }

    /// Starts stepping copies `range` with `actions` (a row per copy of the range, read before
    /// this returns); ``finishStep(copies:)`` completes it and fills the range's rows of the
    /// outputs. With an environment that steps while its caller works
    /// (``Env/stepsWhileCallerWorks``) the caller can act on other copies meanwhile; otherwise
    /// the step runs at the finish. A rollout must finish every step it starts.
    @inlinable
    public mutating func startStep(_ actions: UnsafeBufferPointer<Float>, copies range: Range<Int>) throws(EnvError) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count && !range.isEmpty, "VectorEnv.startStep: copies \(range) of \(count)")
        precondition(actions.count == range.count * actionSize, "VectorEnv.startStep: \(actions.count) action values for \(range.count) × \(actionSize)")
        precondition(!started.values.contains { $0.copies.overlaps(range) }, "VectorEnv.startStep: copies \(range) have a step under way")
        let m = actionSize
        let step = try _envs.withUnsafeMutableBufferPointer { (envs: inout UnsafeMutableBufferPointer<E>) throws(EnvError) -> any StartedStep in
            try E.startStepCopies(UnsafeMutableBufferPointer(rebasing: envs[range]), actions: actions.baseAddress!, actionSize: m)
        }
        started[range.lowerBound] = (range, step)
    }

    /// Completes the step started on copies `range`, writing their rows of the outputs
    /// (ended episodes reset, as `step(_:)` does).
    @inlinable
    public mutating func finishStep(copies range: Range<Int>) throws(EnvError) {
        guard let entry = started.removeValue(forKey: range.lowerBound), entry.copies == range else {
            preconditionFailure("VectorEnv.finishStep: no step was started on copies \(range)")
        }
        try withOutput(copies: range) { (envs, rngs, output) throws(EnvError) in
            try E.finishStepCopies(entry.step, envs, rngs: rngs, output: output)
        }
    }
}

