import Foundation
import TensorCore

/// Pendulum swing-up (Gym's Pendulum-v1 dynamics) with the mass drawn per task from
/// U[massLow, massHigh]. Observation [cos θ, sin θ, θ̇]; action a torque in [−2, 2];
/// reward −(θ² + 0.1 θ̇² + 0.001 u²) with θ normalised to [−π, π); 200 steps (`truncated`).
public struct PendulumMass: MetaEnv, Sendable {
    public struct Task: Codable, Sendable, Equatable, TaskFeatures {
        public var mass: Double
        public init(mass: Double) { self.mass = mass }
        /// The mass.
        public var features: [Float] { [Float(mass)] }
    }

    public static let maxSpeed = 8.0, maxTorque = 2.0, dt = 0.05, gravity = 10.0, length = 1.0
    public let massLow: Double, massHigh: Double
    public let horizon: Int
    public private(set) var task = Task(mass: 1)
    @inlinable public var angle: Double { _angle }
    @inlinable public var velocity: Double { _velocity }
    @usableFromInline var _angle = 0.0, _velocity = 0.0
    @usableFromInline var stepInEpisode = 0

    public init(massLow: Double = 0.5, massHigh: Double = 2.0, horizon: Int = 200) {
        self.massLow = massLow
        self.massHigh = massHigh
        self.horizon = horizon
    }

    public var observationSpace: Space { .box(low: [-1, -1, -8], high: [1, 1, 8], shape: [3]) }
    public var actionSpace: Space { .box(low: -2, high: 2, shape: [1]) }
    public var maxEpisodeSteps: Int { horizon }

    public func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task] {
        (0..<n).map { _ in Task(mass: massLow + (massHigh - massLow) * rng.uniformDouble()) }
    }

    public mutating func setTask(_ task: Task) { self.task = task }

    /// Sets the state directly (tests and hand-computed cases).
    public mutating func setState(angle: Double, velocity: Double) {
        _angle = angle
        _velocity = velocity
    }

    @inlinable
    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        _angle = (rng.uniformDouble() * 2 - 1) * Double.pi
        _velocity = rng.uniformDouble() * 2 - 1
        stepInEpisode = 0
        write(observation)
    }

    @inlinable
    func write(_ observation: UnsafeMutableBufferPointer<Float>) {
        observation[0] = Float(Foundation.cos(_angle))
        observation[1] = Float(Foundation.sin(_angle))
        observation[2] = Float(_velocity)
    }

    @inlinable
    public mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256
    ) throws(EnvError) -> StepOutcome {
        let u = Double(try clippedAction(action, 0, low: -2, high: 2, environment: "pendulum-mass"))
        let m = task.mass, l = Self.length, g = Self.gravity, dt = Self.dt
        let normalised = (_angle + Double.pi).truncatingRemainder(dividingBy: 2 * Double.pi)
        let theta = (normalised < 0 ? normalised + 2 * Double.pi : normalised) - Double.pi
        let cost = theta * theta + 0.1 * _velocity * _velocity + 0.001 * u * u
        _velocity += (3 * g / (2 * l) * Foundation.sin(_angle) + 3 / (m * l * l) * u) * dt
        _velocity = Swift.min(Swift.max(_velocity, -Self.maxSpeed), Self.maxSpeed)
        _angle += _velocity * dt
        stepInEpisode += 1
        write(observation)
        return StepOutcome(reward: Float(-cost), terminated: false, truncated: stepInEpisode >= horizon)
    }
}

extension PendulumMass {
    /// The `pendulum-mass` family.
    public static let family = TaskFamily(
        name: "pendulum-mass", summary: "pendulum swing-up with mass ~ U[massLow, massHigh]",
        arguments: [.real("mass-low", default: 0.5, in: 0.01...100, help: "lowest mass"),
                    .real("mass-high", default: 2.0, in: 0.01...100, help: "highest mass"),
                    .integer("horizon", default: 200, in: 1...100000, help: "steps per episode")],
        check: { (a: EnvArguments) throws(EnvSpecError) in
            guard a.real("mass-low") <= a.real("mass-high") else {
                throw .badValue(family: "pendulum-mass", name: "mass-low", value: "\(a.real("mass-low"))",
                                allowed: "at most mass-high (\(a.real("mass-high")))")
            }
        }
    ) { PendulumMass(massLow: $0.real("mass-low"), massHigh: $0.real("mass-high"), horizon: $0.int("horizon")) }
}
