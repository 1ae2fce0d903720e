import TensorCore

/// N copies of an environment stepped in lockstep, each with its own task and its own
/// random generator, into preallocated struct-of-arrays buffers (no allocation per step).
///
/// Auto-reset rule: when a copy's episode ends on a step (terminated or truncated), its
/// last observation is copied to ``finalObservations`` and the copy is reset at once, so
/// ``observations`` already holds the first observation of its next episode. Bootstrap
/// a truncated episode from ``finalObservations``, never from ``observations``.
public struct VectorEnv<E: MetaEnv> {
    public private(set) var envs: [E]
    var rngs: [Xoshiro256]
    public let count: Int
    public let observationSize: Int
    public let actionSize: Int
    /// [count × observationSize]: the observation each copy acts on next.
    public private(set) var observations: [Float]
    /// [count × observationSize]: for copies whose episode ended on the last step, the
    /// observation it ended in (other rows are stale).
    public private(set) var finalObservations: [Float]
    public private(set) var rewards: [Float]
    public private(set) var terminated: [Bool]
    public private(set) var truncated: [Bool]

    /// `count` copies of `prototype`; copy i draws from generator i of `seed`'s split.
    public init(_ prototype: E, count: Int, seed: UInt64) {
        precondition(count >= 1, "VectorEnv: count must be at least 1")
        self.count = count
        envs = [E](repeating: prototype, count: count)
        var root = Xoshiro256(seed: seed)
        rngs = (0..<count).map { _ in root.split() }
        observationSize = prototype.observationSpace.flatSize
        actionSize = prototype.actionSpace.flatSize
        observations = [Float](repeating: 0, count: count * observationSize)
        finalObservations = observations
        rewards = [Float](repeating: 0, count: count)
        terminated = [Bool](repeating: false, count: count)
        truncated = terminated
    }

    /// Sets copy `i`'s task (it takes effect at its next reset).
    public mutating func setTask(_ task: E.Task, at i: Int) { envs[i].setTask(task) }

    /// Draws a task for copy `i` from its own generator.
    public mutating func sampleTask(at i: Int) -> E.Task {
        envs[i].sampleTasks(1, using: &rngs[i])[0]
    }

    /// Resets copy `i`.
    public mutating func reset(at i: Int) {
        let n = observationSize
        observations.withUnsafeMutableBufferPointer { obs in
            envs[i].reset(observation: UnsafeMutableBufferPointer(rebasing: obs[(i * n)..<((i + 1) * n)]), using: &rngs[i])
        }
    }

    /// Resets every copy.
    public mutating func resetAll() {
        for i in 0..<count { reset(at: i) }
    }

    /// Steps every copy with its row of `actions` [count × actionSize].
    public mutating func step(_ actions: UnsafeBufferPointer<Float>) throws(InvalidAction) {
        precondition(actions.count == count * actionSize, "VectorEnv.step: \(actions.count) action values for \(count) × \(actionSize)")
        let n = observationSize, m = actionSize, count = self.count
        let actionBase = actions.baseAddress!
        var failure: InvalidAction?
        // Raw pointers for the whole batch: no uniqueness or bounds checks per copy.
        observations.withUnsafeMutableBufferPointer { obsBuffer in
            finalObservations.withUnsafeMutableBufferPointer { finals in
                rewards.withUnsafeMutableBufferPointer { rewardsOut in
                    terminated.withUnsafeMutableBufferPointer { terminatedOut in
                        truncated.withUnsafeMutableBufferPointer { truncatedOut in
                            envs.withUnsafeMutableBufferPointer { envs in
                                rngs.withUnsafeMutableBufferPointer { rngs in
                                    let obs = obsBuffer.baseAddress!
                                    for i in 0..<count {
                                        let row = UnsafeMutableBufferPointer(start: obs + i * n, count: n)
                                        let outcome: StepOutcome
                                        do throws(InvalidAction) {
                                            outcome = try envs[i].step(
                                                UnsafeBufferPointer(start: actionBase + i * m, count: m), observation: row, using: &rngs[i])
                                        } catch {
                                            failure = error
                                            return
                                        }
                                        rewardsOut[i] = outcome.reward
                                        terminatedOut[i] = outcome.terminated
                                        truncatedOut[i] = outcome.truncated
                                        if outcome.terminated || outcome.truncated {
                                            (finals.baseAddress! + i * n).update(from: obs + i * n, count: n)
                                            envs[i].reset(observation: row, using: &rngs[i])
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if let failure { throw failure }
    }

    /// Steps with an array of actions.
    public mutating func step(_ actions: [Float]) throws(InvalidAction) {
        try actions.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(InvalidAction) in try step(a) }
    }
}
