import Envs
import TensorCore

/// Replays an action sequence on a locomotion environment from a given state and records what
/// each step produced: what `scripts/check-mujoco.sh` compares against Gymnasium's own env.
public struct LocomotionReplay: Codable, Sendable {
    /// One simulator state: generalised positions and velocities.
    public struct State: Codable, Sendable {
        public var qpos: [Double]
        public var qvel: [Double]
    }
    /// The state both simulators start from.
    public var initial: State
    /// One action per step.
    public var actions: [[Float]]
    /// When given, the reference's state after each step: step t then starts from
    /// `states[t − 1]` (one-step errors, free of the divergence chaos grows from them).
    public var states: [State]?

    /// What the steps produced, in order.
    public struct Record: Codable, Sendable {
        public var observations: [[Float]] = []
        public var rewards: [Float] = []
        public var xVelocity: [Double] = []
        public var objective: [Double] = []
        public var control: [Double] = []
        public var contact: [Double] = []
        public var survival: [Double] = []
        public var terminated: [Bool] = []
    }

    /// Runs the replay on `env`; the first observation is the one the initial state gives.
    public func run(on env: LocomotionEnv) throws -> Record {
        if let states, states.count + 1 < actions.count {
            throw MuJoCoError.badState(reason: "\(states.count) states for \(actions.count) actions (one per step is needed)")
        }
        var env = env, record = Record(), rng = Xoshiro256(seed: 0)
        var observation = [Float](repeating: 0, count: env.observationSpace.flatSize)
        try observation.withUnsafeMutableBufferPointer { try env.reset(qpos: initial.qpos, qvel: initial.qvel, observation: $0) }
        record.observations.append(observation)
        for (t, action) in actions.enumerated() {
            if let states, t > 0 {
                try observation.withUnsafeMutableBufferPointer { try env.reset(qpos: states[t - 1].qpos, qvel: states[t - 1].qvel, observation: $0) }
            }
            let outcome = try action.withUnsafeBufferPointer { a in
                try observation.withUnsafeMutableBufferPointer { try env.step(a, observation: $0, using: &rng) }
            }
            let terms = env.rewardTerms
            record.observations.append(observation)
            record.rewards.append(outcome.reward)
            record.xVelocity.append(terms.xVelocity)
            record.objective.append(terms.objective)
            record.control.append(terms.control)
            record.contact.append(terms.contact)
            record.survival.append(terms.survival)
            record.terminated.append(outcome.terminated)
        }
        return record
    }
}
