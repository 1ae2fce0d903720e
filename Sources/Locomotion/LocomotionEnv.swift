import Envs
import Foundation
import TensorCore

/// A locomotion task: what the robot is asked for, in the units of its family's objective
/// (a target velocity, a direction ±1, a direction angle, or a goal position x, y), or the
/// robot's dynamics (the rand-params families).
public struct LocomotionTask: Codable, Sendable, Equatable {
    /// The objective's parameters (one value, or two for a goal position; none for rand-params).
    public var goal: [Double]
    /// For the rand-params families, the multipliers of the model's body masses, body
    /// inertias, joint damping and geom frictions, in that order (`RandomDynamics`); nil: the
    /// model as written.
    public var scales: [Double]?
    /// A task with these parameters.
    public init(goal: [Double], scales: [Double]? = nil) {
        self.goal = goal
        self.scales = scales
    }
}

/// The dynamics randomisation of rand_param_envs (`rand_param_envs/base.py`, `RandomEnv`),
/// which ProMP and PEARL's Walker2D- and Hopper-Rand-Params use: every body mass, every body
/// inertia element and every geom friction element is multiplied by 1.5^u and every joint's
/// damping by 1.3^u, each with its own u ~ U[−limit, limit]. As there, the derived constants
/// of the model (subtree masses) are not recomputed.
public struct RandomDynamics: Sendable, Equatable {
    /// The bound of the exponents u (3 in the papers).
    public var logScaleLimit: Double
    /// The bases of the multipliers: masses and inertias, damping, friction.
    static let massBase = 1.5, dampingBase = 1.3, frictionBase = 1.5

    /// The multipliers for `model`'s parameters, in ``LocomotionTask/scales`` order.
    func sample(for model: MuJoCoModel, using rng: inout Xoshiro256) -> [Double] {
        func draw(_ base: Double, _ count: Int) -> [Double] {
            (0..<count).map { _ in Foundation.pow(base, -logScaleLimit + 2 * logScaleLimit * rng.uniformDouble()) }
        }
        return draw(Self.massBase, model.bodyCount) + draw(Self.massBase, 3 * model.bodyCount)
            + draw(Self.dampingBase, model.velocityCount) + draw(Self.frictionBase, 3 * model.geomCount)
    }

    /// How many multipliers a task of `model` has.
    static func scaleCount(for model: MuJoCoModel) -> Int { 4 * model.bodyCount + model.velocityCount + 3 * model.geomCount }
}

/// The robots, each a MJCF file MetaRL ships with the bodies, joints, gears and timestep of
/// Gymnasium's model.
public enum LocomotionRobot: String, Sendable, Equatable, CaseIterable {
    case halfCheetah = "half_cheetah"
    case ant
    case hopper
    /// gym's Walker2d (feet frictions 0.9 and 1.9), as rand_param_envs steps it.
    case walker = "walker2d"
    /// Gymnasium's Walker2d-v5 (both feet 1.9).
    case walkerV5 = "walker2d_v5"

    /// The MJCF file in this module's resources.
    public var modelPath: String? { Bundle.module.path(forResource: rawValue, ofType: "xml") }
    /// How forward progress is measured, as the reference code does: the cheetah's root slider
    /// qpos[0]; the ant's torso frame origin (`get_body_com("torso")`, read after the step).
    var progressFromTorsoFrame: Bool { self == .ant }
    /// The qpos coordinate holding the torso's height: the ant's free joint z; the planar
    /// robots' root slider rootz.
    var heightCoordinate: Int { self == .ant ? 2 : 1 }
}

/// What the reward asks for, and how tasks of the family are drawn.
public enum LocomotionObjective: Sendable, Equatable {
    /// Run forward: `weight · v_x` (Gymnasium's HalfCheetah-v5 / Ant-v5); one task.
    case forward(weight: Double)
    /// Run at a target velocity: `−|v_x − goal|`, goal ~ U[range].
    case targetVelocity(ClosedRange<Double>)
    /// Run forward or backward: `direction · v_x`, direction ±1 with probability ½ each.
    case direction
    /// Run along a direction in the plane: `v_xy · (cos θ, sin θ)`, θ ~ U[0, 2π).
    case planarDirection
    /// Reach a goal position: `−‖xy − goal‖₁`, goal at angle U[0, 2π), radius `radius·√U`.
    case goal(radius: Double)
    /// Run forward, `v_x`, with the robot's dynamics drawn per task (the rand-params families).
    case forwardWithRandomDynamics(RandomDynamics)

    /// One task drawn from the objective's distribution.
    func sample(for model: MuJoCoModel, using rng: inout Xoshiro256) -> LocomotionTask {
        switch self {
        case .forward: return LocomotionTask(goal: [])
        case .forwardWithRandomDynamics(let dynamics): return LocomotionTask(goal: [], scales: dynamics.sample(for: model, using: &rng))
        case .targetVelocity(let r): return LocomotionTask(goal: [r.lowerBound + (r.upperBound - r.lowerBound) * rng.uniformDouble()])
        case .direction: return LocomotionTask(goal: [rng.uniformDouble() < 0.5 ? -1 : 1])
        case .planarDirection: return LocomotionTask(goal: [2 * Double.pi * rng.uniformDouble()])
        case .goal(let radius):
            let angle = 2 * Double.pi * rng.uniformDouble(), r = radius * rng.uniformDouble().squareRoot()
            return LocomotionTask(goal: [r * cos(angle), r * sin(angle)])
        }
    }

    /// Parameters a task of this objective has.
    var goalCount: Int {
        switch self {
        case .forward, .forwardWithRandomDynamics: return 0
        case .targetVelocity, .direction, .planarDirection: return 1
        case .goal: return 2
        }
    }

    /// Whether tasks differ (every objective but Gymnasium's single `forward` task).
    var isMeta: Bool { if case .forward = self { false } else { true } }
}

/// One block of a locomotion observation; an observation is a list of them, in order.
public enum ObservationPart: Sendable, Equatable {
    /// qpos without its first `skipping` coordinates (the root position the robot could
    /// otherwise read its progress from).
    case positions(skipping: Int)
    /// qvel.
    case velocities
    /// qvel, each clipped to [−limit, limit] (the hopper's and walker's).
    case clippedVelocities(limit: Double)
    /// External contact forces of the bodies from `firstBody` on (0: the world body included),
    /// 6 per body, each clipped to [−1, 1].
    case contactForces(firstBody: Int)
    /// The torso's orientation matrix, 9 values.
    case torsoOrientation
    /// The torso frame's position, 3 values (x leaks the progress in), read as gym's
    /// `get_body_com` read it after a step: MuJoCo's body frames are those of the start of the
    /// step's last `mj_step`, one substep behind qpos.
    case torsoPosition
    /// The centre of mass of the torso's subtree (the whole robot), 3 values, of the state
    /// after the step: rllab's `get_body_com("torso")` (`com_subtree`) after `model.forward()`.
    case torsoSubtreeCenterOfMass
}

/// Everything that makes one paper's version of a locomotion family: the robot, the
/// objective, the observation, the cost weights, when an episode ends, and where it comes
/// from. Each is an explicit preset (`--env-arg variant=…`), because the reference
/// codebases disagree on exactly these.
public struct LocomotionPreset: Sendable, Equatable {
    /// The name `variant=` takes.
    public var name: String
    /// The paper and file it reproduces, as `metarl envs` shows it.
    public var source: String
    public var robot: LocomotionRobot
    public var objective: LocomotionObjective
    public var observation: [ObservationPart]
    /// Weight of Σ a² (actions clipped to the action space first).
    public var controlCost: Double
    /// Weight of Σ clip(cfrc_ext, −1, 1)² over all bodies.
    public var contactCost: Double
    /// Added every step (only while healthy when `survivalOnlyWhenHealthy`).
    public var survivalReward: Double
    public var survivalOnlyWhenHealthy = false
    /// The torso height (the robot's height coordinate) outside which the episode
    /// terminates; nil: never.
    public var healthyHeight: ClosedRange<Double>?
    /// The torso pitch (qpos[2], the planar robots' rooty) outside which it terminates.
    public var healthyAngle: ClosedRange<Double>? = nil
    /// It terminates when any of qpos[2...] or qvel reaches this magnitude (the hopper's
    /// `state_vector()[2:]` bound), or a state is not finite.
    public var healthyStateBound: Double? = nil
    /// mj_step calls per environment step.
    public var frameSkip = 5
    /// Reset noise: qpos0 + U[−s, s], and velocities s·N(0, 1) (the cheetah's and ant's
    /// references) or U[−s, s] (`uniformVelocityNoise`: the hopper's and walker's).
    public var resetNoise = 0.1
    public var uniformVelocityNoise = false
    /// When set, positions start at qpos0 + σ·N(0, 1) with this σ instead of U[−s, s] (rllab's
    /// `reset_mujoco`: σ 0.01 for positions, 0.1 for velocities).
    public var gaussianPositionNoise: Double? = nil
    /// Whether the forward velocity is the torso subtree's centre-of-mass velocity after
    /// mj_forward (rllab's `get_body_comvel("torso")`), instead of the progress position's
    /// change over the step.
    public var velocityOfSubtreeCenterOfMass = false

    /// Whether the step must bring cfrc_ext up to date.
    var needsContactForces: Bool {
        contactCost != 0 || observation.contains { if case .contactForces = $0 { return true } else { return false } }
    }
}

/// The terms a step's reward is the sum of, kept for checks against the reference (the
/// Gymnasium comparison) and for tests.
public struct LocomotionRewardTerms: Sendable, Equatable {
    /// The objective's term (forward velocity, velocity error, goal distance…).
    public var objective = 0.0
    /// −controlCost · Σ a².
    public var control = 0.0
    /// −contactCost · Σ clip(cfrc_ext)².
    public var contact = 0.0
    public var survival = 0.0
    /// The forward (x) velocity of the step, whatever the objective.
    public var xVelocity = 0.0
}

/// A MuJoCo locomotion task family as a `MetaEnv`: one robot, one preset, one task at a time.
/// Copies of a value share the compiled model and copy the simulation state before writing
/// it, so a `VectorEnv` of them steps independent simulations; stepping allocates nothing.
public struct LocomotionEnv: MetaEnv, Sendable {
    public typealias Task = LocomotionTask

    /// The family name, as errors show it.
    public let name: String
    public let preset: LocomotionPreset
    public let horizon: Int
    /// The tasks ``sampleTasks(_:using:)`` draws from: nil for the objective's distribution,
    /// else a fixed set (a paper's train or test tasks).
    public private(set) var fixedTasks: [LocomotionTask]?
    public private(set) var task: LocomotionTask
    /// The model as loaded; a rand-params task simulates a scaled copy of it.
    let baseModel: MuJoCoModel
    /// The reward terms of the last step.
    public private(set) var rewardTerms = LocomotionRewardTerms()
    var simulation: MuJoCoSimulation
    let torso: Int
    let observationSize: Int
    let dt: Double
    var stepInEpisode = 0
    var failure: EnvError?

    /// The family `name` with `preset`, loading the preset's robot from `modelPath` (the
    /// shipped MJCF file by default).
    public init(name: String, preset: LocomotionPreset, horizon: Int = 200, fixedTasks: [LocomotionTask]? = nil,
                modelPath: String? = nil) throws(MuJoCoError) {
        guard let path = modelPath ?? preset.robot.modelPath else { throw .missingModel(path: "\(preset.robot.rawValue).xml (resource)") }
        let model = try MuJoCoModel(contentsOf: path)
        self.name = name
        self.preset = preset
        self.horizon = horizon
        self.fixedTasks = fixedTasks
        baseModel = model
        simulation = MuJoCoSimulation(model: model)
        torso = try model.body("torso")
        dt = model.timestep * Double(preset.frameSkip)
        observationSize = preset.observation.reduce(0) { total, part in
            switch part {
            case .positions(let k): return total + model.positionCount - k
            case .velocities, .clippedVelocities: return total + model.velocityCount
            case .contactForces(let first): return total + 6 * (model.bodyCount - first)
            case .torsoOrientation: return total + 9
            case .torsoPosition, .torsoSubtreeCenterOfMass: return total + 3
            }
        }
        task = LocomotionTask(goal: [Double](repeating: preset.objective == .direction ? 1 : 0, count: preset.objective.goalCount))
        if let first = fixedTasks?.first { setTask(first) }
    }

    /// This family with `tasks` as its fixed set (nil: the objective's distribution).
    public func withFixedTasks(_ tasks: [LocomotionTask]?) -> LocomotionEnv {
        var env = self
        env.fixedTasks = tasks
        if let first = tasks?.first { env.setTask(first) }
        return env
    }

    /// One task drawn from the objective's distribution (for this robot's model).
    public func drawTask(using rng: inout Xoshiro256) -> LocomotionTask {
        preset.objective.sample(for: baseModel, using: &rng)
    }

    public var observationSpace: Space { .box(low: -.infinity, high: .infinity, shape: [observationSize]) }
    public var actionSpace: Space { .box(low: -1, high: 1, shape: [simulation.model.actuatorCount]) }
    public var maxEpisodeSteps: Int { horizon }
    /// The compiled model and the current state (read-only use: tests, the Gymnasium check).
    public var state: MuJoCoSimulation { simulation }

    /// `n` tasks: from the fixed set without replacement (a random subset in random order; past
    /// its size, the whole set again in a new order), else from the objective's distribution.
    public func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [LocomotionTask] {
        guard let fixed = fixedTasks else { return (0..<n).map { _ in drawTask(using: &rng) } }
        var order = Array(fixed.indices)
        return (0..<n).map { i in
            let k = i % fixed.count
            if k == 0 && i > 0 { order = Array(fixed.indices) }
            let j = k + rng.uniformInt(below: fixed.count - k)
            order.swapAt(k, j)
            return fixed[order[k]]
        }
    }

    public mutating func setTask(_ task: LocomotionTask) {
        precondition(task.goal.count == preset.objective.goalCount, "\(name): a task has \(preset.objective.goalCount) goal values")
        if task.scales != self.task.scales {
            // A new dynamics: a scaled copy of the model (or the model itself), a fresh state.
            let model: MuJoCoModel
            if let scales = task.scales {
                precondition(scales.count == RandomDynamics.scaleCount(for: baseModel), "\(name): a task has \(RandomDynamics.scaleCount(for: baseModel)) scales")
                model = baseModel.scaled(by: scales)
            } else {
                model = baseModel
            }
            simulation = MuJoCoSimulation(model: model)
        }
        self.task = task
    }

    /// The simulation this copy owns, copied first if another copy shares it.
    @inline(__always)
    mutating func ownSimulation() -> MuJoCoSimulation {
        if !isKnownUniquelyReferenced(&simulation) { simulation = simulation.copy() }
        return simulation
    }

    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        let sim = ownSimulation(), s = preset.resetNoise
        failure = nil
        sim.resetData()
        for i in 0..<sim.model.positionCount {
            sim.qpos[i] = sim.initialQpos[i] + (preset.gaussianPositionNoise.map { $0 * rng.normal() } ?? s * (2 * rng.uniformDouble() - 1))
        }
        for i in 0..<sim.model.velocityCount {
            sim.qvel[i] = preset.uniformVelocityNoise ? s * (2 * rng.uniformDouble() - 1) : s * rng.normal()
        }
        do { try sim.forward() } catch { failure = .failed(environment: name, reason: "\(error)") }
        stepInEpisode = 0
        rewardTerms = LocomotionRewardTerms()
        writeObservation(observation)
    }

    /// Starts an episode from this exact state (qpos, qvel) instead of a noisy one: for the
    /// comparison with Gymnasium, which sets both simulators to one state.
    public mutating func reset(qpos: [Double], qvel: [Double], observation: UnsafeMutableBufferPointer<Float>) throws(MuJoCoError) {
        try ownSimulation().setState(qpos: qpos, qvel: qvel)
        failure = nil
        stepInEpisode = 0
        rewardTerms = LocomotionRewardTerms()
        writeObservation(observation)
    }

    /// The position forward progress is measured at (x, y).
    @inline(__always)
    func progressPosition(_ sim: MuJoCoSimulation) -> (Double, Double) {
        if preset.robot.progressFromTorsoFrame { return (sim.bodyPositions[3 * torso], sim.bodyPositions[3 * torso + 1]) }
        return (sim.qpos[0], sim.model.positionCount > 1 ? sim.qpos[1] : 0)
    }

    public mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256
    ) throws(EnvError) -> StepOutcome {
        if let failure { throw failure }
        let sim = ownSimulation(), nu = sim.model.actuatorCount
        var squaredAction = 0.0
        for i in 0..<nu {
            let a = Double(try clippedAction(action, i, low: -1, high: 1, environment: name))
            sim.control[i] = a
            squaredAction += a * a
        }
        let before = progressPosition(sim)
        do {
            try sim.step(frames: preset.frameSkip, contactForces: preset.needsContactForces, forwardAfter: preset.velocityOfSubtreeCenterOfMass)
        } catch {
            let failure = EnvError.failed(environment: name, reason: "\(error) (step \(stepInEpisode + 1) of the episode)")
            self.failure = failure
            throw failure
        }
        let after = progressPosition(sim)
        let vx = preset.velocityOfSubtreeCenterOfMass ? sim.subtreeVelocities[3 * torso] : (after.0 - before.0) / dt
        let vy = (after.1 - before.1) / dt

        var terms = LocomotionRewardTerms(xVelocity: vx)
        switch preset.objective {
        case .forward(let weight): terms.objective = weight * vx
        case .forwardWithRandomDynamics: terms.objective = vx
        case .targetVelocity: terms.objective = -abs(vx - task.goal[0])
        case .direction: terms.objective = task.goal[0] * vx
        case .planarDirection: terms.objective = vx * cos(task.goal[0]) + vy * sin(task.goal[0])
        case .goal: terms.objective = -(abs(after.0 - task.goal[0]) + abs(after.1 - task.goal[1]))
        }
        terms.control = -preset.controlCost * squaredAction
        if preset.contactCost != 0 {
            var sum = 0.0
            let forces = sim.contactForces
            for i in 0..<(6 * sim.model.bodyCount) {
                let f = Swift.min(Swift.max(forces[i], -1), 1)
                sum += f * f
            }
            terms.contact = -preset.contactCost * sum
        }
        var terminated = false
        if let healthy = preset.healthyHeight { terminated = !healthy.contains(sim.qpos[preset.robot.heightCoordinate]) }
        if let healthy = preset.healthyAngle, !healthy.contains(sim.qpos[2]) { terminated = true }
        if let bound = preset.healthyStateBound {
            for i in 2..<sim.model.positionCount where !(Swift.abs(sim.qpos[i]) < bound) { terminated = true }
            for i in 0..<sim.model.velocityCount where !(Swift.abs(sim.qvel[i]) < bound) { terminated = true }
        }
        terms.survival = preset.survivalOnlyWhenHealthy && terminated ? 0 : preset.survivalReward
        rewardTerms = terms
        stepInEpisode += 1
        writeObservation(observation)
        let reward = terms.objective + terms.control + terms.contact + terms.survival
        return StepOutcome(reward: Float(reward), terminated: terminated, truncated: !terminated && stepInEpisode >= horizon)
    }

    @inline(__always)
    func writeObservation(_ observation: UnsafeMutableBufferPointer<Float>) {
        let sim = simulation, model = sim.model
        var k = 0
        func put(_ source: UnsafeMutablePointer<Double>, _ count: Int, clip: Double = .infinity) {
            for i in 0..<count {
                let x = source[i]
                observation[k] = Float(Swift.min(Swift.max(x, -clip), clip))
                k += 1
            }
        }
        for part in preset.observation {
            switch part {
            case .positions(let skip): put(sim.qpos + skip, model.positionCount - skip)
            case .velocities: put(sim.qvel, model.velocityCount)
            case .clippedVelocities(let limit): put(sim.qvel, model.velocityCount, clip: limit)
            case .contactForces(let first): put(sim.contactForces + 6 * first, 6 * (model.bodyCount - first), clip: 1)
            case .torsoOrientation: put(sim.bodyOrientations + 9 * torso, 9)
            case .torsoPosition: put(sim.bodyPositions + 3 * torso, 3)
            case .torsoSubtreeCenterOfMass: put(sim.subtreeCentersOfMass + 3 * torso, 3)
            }
        }
    }
}
