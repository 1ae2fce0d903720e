import CMuJoCo
import Foundation
import MuJoCoShim

/// Why MuJoCo could not load a model or go on simulating it.
public enum MuJoCoError: Error, CustomStringConvertible, Equatable {
    /// The model file does not exist (or cannot be read).
    case missingModel(path: String)
    /// MuJoCo refused the model file; `reason` is its compiler's message.
    case badModel(path: String, reason: String)
    /// The model lacks a body, joint or actuator the task family reads.
    case missingElement(model: String, kind: String, name: String)
    /// MuJoCo raised an error while simulating (its message).
    case simulation(reason: String)
    /// A state given from outside (a replay file) does not fit the model.
    case badState(reason: String)
    /// The simulation went unstable: MuJoCo's warning (NaN, Inf or huge accelerations) or a
    /// state that is no longer finite.
    case unstable(reason: String)

    /// One line naming the cause.
    public var description: String {
        switch self {
        case .missingModel(let path): return "MuJoCo model file \(path) does not exist"
        case let .badModel(path, reason): return "MuJoCo could not load \(path): \(reason)"
        case let .missingElement(model, kind, name): return "MuJoCo model \(model) has no \(kind) '\(name)'"
        case .simulation(let reason): return "MuJoCo error: \(reason)"
        case .badState(let reason): return "bad MuJoCo state: \(reason)"
        case .unstable(let reason): return "MuJoCo simulation unstable: \(reason)"
        }
    }
}

/// A compiled MuJoCo model (`mjModel`), read (never written) by every simulation made from it.
public final class MuJoCoModel: @unchecked Sendable {
    /// The compiled model; owned by this object.
    public let pointer: UnsafeMutablePointer<mjModel>
    /// The file it was loaded from, as errors name it.
    public let path: String

    /// Loads and compiles the MJCF file at `path`.
    public init(contentsOf path: String) throws(MuJoCoError) {
        guard FileManager.default.isReadableFile(atPath: path) else { throw .missingModel(path: path) }
        var message = [CChar](repeating: 0, count: 1000)
        guard let model = metarl_mj_load_xml(path, &message, Int32(message.count)) else {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw .badModel(path: path, reason: reason.isEmpty ? "unknown error" : reason.replacingOccurrences(of: "\n", with: " "))
        }
        pointer = model
        self.path = path
    }

    private init(pointer: UnsafeMutablePointer<mjModel>, path: String) {
        self.pointer = pointer
        self.path = path
    }

    deinit { mj_deleteModel(pointer) }

    /// A copy of this model (`mj_copyModel`) with its body masses, body inertias, joint damping
    /// and geom frictions multiplied element by element by `scales`, in that order
    /// (nbody + 3·nbody + nv + 3·ngeom values; see `RandomDynamics`).
    public func scaled(by scales: [Double]) -> MuJoCoModel {
        precondition(scales.count == 4 * bodyCount + velocityCount + 3 * geomCount, "MuJoCoModel.scaled: wrong number of scales")
        let copy = MuJoCoModel(pointer: mj_copyModel(nil, pointer), path: path)
        let m = copy.pointer.pointee
        var k = 0
        for (field, count) in [(m.body_mass, bodyCount), (m.body_inertia, 3 * bodyCount), (m.dof_damping, velocityCount),
                               (m.geom_friction, 3 * geomCount)] {
            for i in 0..<count { field![i] *= scales[k]; k += 1 }
        }
        return copy
    }

    /// The MuJoCo library loaded at run time, e.g. "2.2.2".
    public static var libraryVersion: String {
        let v = Int(mj_version())
        return "\(v / 100).\(v / 10 % 10).\(v % 10)"
    }

    /// Position coordinates (qpos), degrees of freedom (qvel) and actuators (ctrl).
    public var positionCount: Int { Int(pointer.pointee.nq) }
    public var velocityCount: Int { Int(pointer.pointee.nv) }
    public var actuatorCount: Int { Int(pointer.pointee.nu) }
    /// Bodies, the world body 0 included.
    public var bodyCount: Int { Int(pointer.pointee.nbody) }
    /// Geoms, the floor included.
    public var geomCount: Int { Int(pointer.pointee.ngeom) }
    /// The bodies' masses (world body first), as compiled or scaled.
    public var bodyMasses: [Double] { (0..<bodyCount).map { pointer.pointee.body_mass[$0] } }
    /// The degrees of freedom's damping coefficients.
    public var jointDamping: [Double] { (0..<velocityCount).map { pointer.pointee.dof_damping[$0] } }
    /// Seconds one `mj_step` advances.
    public var timestep: Double { pointer.pointee.opt.timestep }

    /// The index of the body `name`.
    public func body(_ name: String) throws(MuJoCoError) -> Int {
        let id = Int(mj_name2id(pointer, Int32(mjOBJ_BODY.rawValue), name))
        guard id >= 0 else { throw .missingElement(model: (path as NSString).lastPathComponent, kind: "body", name: name) }
        return id
    }
}

/// One simulation state (`mjData`) of a model, stepped with a control vector. A class so an
/// environment value can hold it; environments copy it before writing when it is shared
/// (``copy()``), so copies of an environment never step one state.
public final class MuJoCoSimulation: @unchecked Sendable {
    /// The model simulated.
    public let model: MuJoCoModel
    /// The state; owned by this object.
    public let data: UnsafeMutablePointer<mjData>
    /// The warnings that mean the state went bad: counted by MuJoCo per mjData.
    static let instabilityWarnings = [mjWARN_BADQACC, mjWARN_BADQVEL, mjWARN_BADQPOS, mjWARN_BADCTRL].map { Int32($0.rawValue) }
    private var message = [CChar](repeating: 0, count: 600)

    /// The control the next ``step(frames:contactForces:)`` applies, one value per actuator.
    public let control: UnsafeMutablePointer<Double>

    /// A simulation of `model` at its initial state (qpos0, zero velocity).
    public convenience init(model: MuJoCoModel) {
        self.init(model: model, data: mj_makeData(model.pointer))
    }

    private init(model: MuJoCoModel, data: UnsafeMutablePointer<mjData>) {
        self.model = model
        self.data = data
        control = .allocate(capacity: max(model.actuatorCount, 1))
        control.initialize(repeating: 0, count: max(model.actuatorCount, 1))
    }

    deinit {
        mj_deleteData(data)
        control.deallocate()
    }

    /// An independent copy of the current state.
    public func copy() -> MuJoCoSimulation {
        MuJoCoSimulation(model: model, data: mj_copyData(nil, model.pointer, data))
    }

    /// Generalised positions (nq) and velocities (nv), the model's initial positions (qpos0).
    public var qpos: UnsafeMutablePointer<Double> { data.pointee.qpos }
    public var qvel: UnsafeMutablePointer<Double> { data.pointee.qvel }
    public var initialQpos: UnsafeMutablePointer<Double> { model.pointer.pointee.qpos0 }
    /// Body frame origins in world coordinates, 3 per body (what Gymnasium's `get_body_com` reads).
    public var bodyPositions: UnsafeMutablePointer<Double> { data.pointee.xpos }
    /// Body orientations as row-major 3×3 matrices, 9 per body.
    public var bodyOrientations: UnsafeMutablePointer<Double> { data.pointee.xmat }
    /// External (contact) forces and torques on each body, 6 per body: current after a step
    /// with `contactForces` set.
    public var contactForces: UnsafeMutablePointer<Double> { data.pointee.cfrc_ext }
    /// Each body's subtree centre of mass (3 per body), as of the last mj_forward.
    public var subtreeCentersOfMass: UnsafeMutablePointer<Double> { data.pointee.subtree_com }
    /// The velocity of each body's subtree centre of mass (3 per body): rllab's
    /// `get_body_comvel`, the subtree's linear momentum over its mass; current after a step
    /// with `forwardAfter`.
    public var subtreeVelocities: UnsafeMutablePointer<Double> { data.pointee.subtree_linvel }

    /// Back to the model's initial state (`mj_resetData`), MuJoCo's warning counts cleared.
    public func resetData() { mj_resetData(model.pointer, data) }

    /// Recomputes everything derived from qpos and qvel (`mj_forward`), as Gymnasium's
    /// `set_state` does after writing them.
    public func forward() throws(MuJoCoError) {
        guard metarl_mj_forward(model.pointer, data, &message, Int32(message.count)) == 0 else {
            throw .simulation(reason: lastMessage)
        }
    }

    /// Resets, then sets qpos and qvel (nq and nv values) and runs ``forward()``.
    public func setState(qpos: [Double], qvel: [Double]) throws(MuJoCoError) {
        guard qpos.count == model.positionCount, qvel.count == model.velocityCount else {
            throw .badState(reason: "\(qpos.count) qpos and \(qvel.count) qvel values for a model of \(model.positionCount) and \(model.velocityCount)")
        }
        resetData()
        for i in 0..<qpos.count { self.qpos[i] = qpos[i] }
        for i in 0..<qvel.count { self.qvel[i] = qvel[i] }
        try forward()
    }

    /// Applies ``control`` (one value per actuator) for `frames` steps of the model's timestep;
    /// with `forwardAfter`, runs mj_forward and mj_subtreeVel on the new state (so
    /// ``subtreeCentersOfMass`` and ``subtreeVelocities`` are its own, as rllab read them);
    /// with `contactForces`, ``contactForces`` is brought up to date afterwards. A MuJoCo
    /// error or instability warning, or a state that is no longer finite, throws.
    @inline(__always)
    public func step(frames: Int, contactForces: Bool, forwardAfter: Bool = false) throws(MuJoCoError) {
        let before = warningCount
        guard metarl_mj_step(model.pointer, data, control, Int32(frames), contactForces ? 1 : 0, forwardAfter ? 1 : 0,
                             &message, Int32(message.count)) == 0 else {
            throw .simulation(reason: lastMessage)
        }
        if warningCount != before { throw .unstable(reason: "MuJoCo warned of NaN, Inf or huge values in the state at t = \(data.pointee.time)") }
        var sum = 0.0
        for i in 0..<model.positionCount { sum += qpos[i] }
        for i in 0..<model.velocityCount { sum += qvel[i] }
        guard sum.isFinite else { throw .unstable(reason: "the state is no longer finite at t = \(data.pointee.time)") }
    }

    /// How many instability warnings MuJoCo has counted since the last reset.
    var warningCount: Int32 {
        Self.instabilityWarnings.reduce(0) { $0 + metarl_mj_warning_count(data, $1) }
    }

    private var lastMessage: String {
        String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Seconds bare `mj_step` calls in C take to advance each of `simulations` (of one model)
    /// by `environmentSteps` steps of `frames` substeps, with rows of `controls` (one row holds
    /// every simulation's control, cycled): the reference the environment benchmark compares a
    /// family's stepping against.
    public static func rawStepSeconds(_ simulations: [MuJoCoSimulation], controls: [Float], frames: Int, environmentSteps: Int) -> Double {
        let model = simulations[0].model
        var data: [UnsafeMutablePointer<mjData>?] = simulations.map { $0.data }
        let rows = controls.count / (simulations.count * model.actuatorCount)
        return controls.withUnsafeBufferPointer { c in
            metarl_mj_raw_step_seconds(model.pointer, &data, Int32(simulations.count), c.baseAddress!, Int32(rows),
                                       Int32(frames), environmentSteps)
        }
    }
}
