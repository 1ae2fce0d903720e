import Foundation
import TensorCore

/// CartPole (Gym's CartPole-v1 dynamics, Euler integration) with the physics drawn per
/// task: pole half-length, pole mass, cart mass and push force, each uniform in a range
/// around Gym's values (0.5 m, 0.1 kg, 1.0 kg, 10 N). Observation [x, ẋ, θ, θ̇]; actions
/// push left (0) or right (1); reward 1 per step; `terminated` when |x| > 2.4 or
/// |θ| > 12°; `truncated` at the time limit.
public struct CartPolePhysics: MetaEnv, Sendable {
    public struct Task: Codable, Sendable, Equatable, TaskFeatures {
        public var poleHalfLength: Double
        public var poleMass: Double
        public var cartMass: Double
        public var force: Double
        public init(poleHalfLength: Double = 0.5, poleMass: Double = 0.1, cartMass: Double = 1.0, force: Double = 10) {
            self.poleHalfLength = poleHalfLength
            self.poleMass = poleMass
            self.cartMass = cartMass
            self.force = force
        }
        /// The pole's half length and mass, the cart's mass, the force.
        public var features: [Float] { [poleHalfLength, poleMass, cartMass, force].map(Float.init) }
    }

    public static let gravity = 9.8, tau = 0.02, xLimit = 2.4, angleLimit = 12 * 2 * Double.pi / 360
    /// Each physical parameter is drawn from [gym value / spread, gym value · spread].
    public let spread: Double
    public let horizon: Int
    public private(set) var task = Task()
    @inlinable public var state: (x: Double, xDot: Double, theta: Double, thetaDot: Double) { _state }
    @usableFromInline var _state: (x: Double, xDot: Double, theta: Double, thetaDot: Double) = (0, 0, 0, 0)
    @usableFromInline var stepInEpisode = 0

    public init(spread: Double = 2.0, horizon: Int = 200) {
        self.spread = spread
        self.horizon = horizon
    }

    public var observationSpace: Space { .box(low: -.infinity, high: .infinity, shape: [4]) }
    public var actionSpace: Space { .discrete(2) }
    public var maxEpisodeSteps: Int { horizon }

    public func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task] {
        func draw(_ base: Double, _ rng: inout Xoshiro256) -> Double {
            // Log-uniform in [base/spread, base·spread].
            base * Foundation.exp((rng.uniformDouble() * 2 - 1) * Foundation.log(spread))
        }
        return (0..<n).map { _ in
            Task(poleHalfLength: draw(0.5, &rng), poleMass: draw(0.1, &rng), cartMass: draw(1.0, &rng), force: draw(10, &rng))
        }
    }

    public mutating func setTask(_ task: Task) { self.task = task }

    public mutating func setState(x: Double, xDot: Double, theta: Double, thetaDot: Double) {
        _state = (x, xDot, theta, thetaDot)
    }

    @inlinable
    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        _state = ((rng.uniformDouble() - 0.5) * 0.1, (rng.uniformDouble() - 0.5) * 0.1,
                 (rng.uniformDouble() - 0.5) * 0.1, (rng.uniformDouble() - 0.5) * 0.1)
        stepInEpisode = 0
        write(observation)
    }

    @inlinable
    func write(_ o: UnsafeMutableBufferPointer<Float>) {
        o[0] = Float(_state.x); o[1] = Float(_state.xDot); o[2] = Float(_state.theta); o[3] = Float(_state.thetaDot)
    }

    @inlinable
    public mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256
    ) throws(EnvError) -> StepOutcome {
        let a = try discreteAction(action, count: 2, environment: "cartpole-physics")
        let f = a == 1 ? task.force : -task.force
        let total = task.poleMass + task.cartMass
        let poleMoment = task.poleMass * task.poleHalfLength
        let (x, xDot, theta, thetaDot) = _state
        let c = Foundation.cos(theta), s = Foundation.sin(theta)
        let temp = (f + poleMoment * thetaDot * thetaDot * s) / total
        let thetaAcc = (Self.gravity * s - c * temp) / (task.poleHalfLength * (4.0 / 3.0 - task.poleMass * c * c / total))
        let xAcc = temp - poleMoment * thetaAcc * c / total
        _state = (x + Self.tau * xDot, xDot + Self.tau * xAcc, theta + Self.tau * thetaDot, thetaDot + Self.tau * thetaAcc)
        stepInEpisode += 1
        write(observation)
        let fell = Swift.abs(_state.x) > Self.xLimit || Swift.abs(_state.theta) > Self.angleLimit
        return StepOutcome(reward: 1, terminated: fell, truncated: !fell && stepInEpisode >= horizon)
    }
}

extension CartPolePhysics {
    /// The `cartpole-physics` family.
    public static let family = TaskFamily(
        name: "cartpole-physics", summary: "CartPole with pole length, masses and force varied per task",
        arguments: [.real("spread", default: 2.0, in: 1...10, help: "each parameter log-uniform in [gym/spread, gym·spread]"),
                    .integer("horizon", default: 200, in: 1...100000, help: "steps per episode")]
    ) { CartPolePhysics(spread: $0.real("spread"), horizon: $0.int("horizon")) }
}
