import Envs
import TensorCore

/// The MuJoCo locomotion task families, each with the presets of the papers it comes from.
///
/// The reference codebases disagree on exactly the details that decide whether a result can be
/// compared (velocity ranges, observations with the x position leaking in, control costs,
/// termination), so every family takes `variant=` naming the code it reproduces:
/// - MAML (Finn et al. 2017) through pytorch-maml-rl, `maml_rl/envs/mujoco/half_cheetah.py`
///   and `ant.py` (gym's models, frame skip 5, dt 0.05; the original rllab cheetah stepped at dt 0.01);
/// - ProMP (Rothfuss et al. 2019), `meta_policy_search/envs/mujoco_envs/half_cheetah_rand_vel.py`
///   and `ant_rand_direc.py`;
/// - PEARL (Rakelly et al. 2019) through oyster, `rlkit/envs/half_cheetah_vel.py`,
///   `half_cheetah_dir.py`, `ant_dir.py` and `ant_goal.py`;
/// - rand_param_envs (`hopper_rand_params.py`, `walker_rand_params.py`, `base.py`), which ProMP
///   and PEARL both use for Hopper- and Walker2D-Rand-Params.
/// Contact forces (cfrc_ext) are computed after every step as Gymnasium does; under MuJoCo 2.0
/// with mujoco-py they read as zero, so the contact costs of those papers' runs were zero.
public enum LocomotionFamilies {
    /// The version of the family definitions; a run directory records it (`version=`), and a
    /// later definition gets a new number, so a run is never resumed on a different family.
    public static let version = 1

    /// Every MuJoCo family: Gymnasium's single-task `half-cheetah` and `ant`, then the meta-RL families.
    public static var all: [TaskFamily] {
        [family("half-cheetah", summary: "Gymnasium's HalfCheetah-v5 (run forward; one task)", presets: [halfCheetahV5], horizon: 1000),
         family("ant", summary: "Gymnasium's Ant-v5 (run forward; one task)", presets: [antV5], horizon: 1000),
         family("hopper", summary: "Gymnasium's Hopper-v5 (hop forward; one task)", presets: [hopperV5], horizon: 1000),
         family("walker", summary: "Gymnasium's Walker2d-v5 (walk forward; one task)", presets: [walkerV5], horizon: 1000),
         family("cheetah-vel", summary: "HalfCheetah running at a goal velocity", presets: cheetahVelocity),
         family("cheetah-dir", summary: "HalfCheetah running forward or backward", presets: cheetahDirection),
         family("ant-dir", summary: "Ant running in a goal direction", presets: antDirection),
         family("ant-goal", summary: "Ant walking to a goal position", presets: antGoal),
         family("hopper-rand-params", summary: "Hopper hopping forward with body masses, inertias, damping and friction drawn per task",
                presets: [hopperRandomParameters]),
         family("walker-rand-params", summary: "Walker2d walking forward with body masses, inertias, damping and friction drawn per task",
                presets: [walkerRandomParameters])]
    }

    static let cheetahObservation20: [ObservationPart] = [.positions(skipping: 1), .velocities, .torsoPosition]
    static let cheetahObservation17: [ObservationPart] = [.positions(skipping: 1), .velocities]

    static let halfCheetahV5 = LocomotionPreset(
        name: "gymnasium", source: "Gymnasium HalfCheetah-v5 (gymnasium/envs/mujoco/half_cheetah_v5.py)",
        robot: .halfCheetah, objective: .forward(weight: 1), observation: cheetahObservation17,
        controlCost: 0.1, contactCost: 0, survivalReward: 0)

    static let antV5 = LocomotionPreset(
        name: "gymnasium", source: "Gymnasium Ant-v5 (gymnasium/envs/mujoco/ant_v5.py): 105-dim observation with cfrc_ext",
        robot: .ant, objective: .forward(weight: 1), observation: [.positions(skipping: 2), .velocities, .contactForces(firstBody: 1)],
        controlCost: 0.5, contactCost: 5e-4, survivalReward: 1, survivalOnlyWhenHealthy: true, healthyHeight: 0.2...1.0)

    /// The planar robots' observation: qpos without rootx, qvel clipped to ±10 (Gymnasium's
    /// Hopper-v5 and Walker2d-v5, and rand_param_envs).
    static let planarObservation: [ObservationPart] = [.positions(skipping: 1), .clippedVelocities(limit: 10)]

    static let hopperV5 = LocomotionPreset(
        name: "gymnasium", source: "Gymnasium Hopper-v5 (gymnasium/envs/mujoco/hopper_v5.py): frame skip 4, healthy reward 1 while healthy",
        robot: .hopper, objective: .forward(weight: 1), observation: planarObservation,
        controlCost: 1e-3, contactCost: 0, survivalReward: 1, survivalOnlyWhenHealthy: true, healthyHeight: 0.7...Double.infinity,
        healthyAngle: -0.2...0.2, healthyStateBound: 100, frameSkip: 4, resetNoise: 5e-3, uniformVelocityNoise: true)

    static let walkerV5 = LocomotionPreset(
        name: "gymnasium", source: "Gymnasium Walker2d-v5 (gymnasium/envs/mujoco/walker2d_v5.py, walker2d_v5.xml): frame skip 4",
        robot: .walkerV5, objective: .forward(weight: 1), observation: planarObservation,
        controlCost: 1e-3, contactCost: 0, survivalReward: 1, survivalOnlyWhenHealthy: true, healthyHeight: 0.8...2.0,
        healthyAngle: -1...1, frameSkip: 4, resetNoise: 5e-3, uniformVelocityNoise: true)

    static let hopperRandomParameters = LocomotionPreset(
        name: "rand-param-envs",
        source: "rand_param_envs hopper_rand_params.py (ProMP, PEARL): frame skip 4, survival 1 every step, scales 1.5^U[−3,3] (damping 1.3^U), 11-dim observation",
        robot: .hopper, objective: .forwardWithRandomDynamics(RandomDynamics(logScaleLimit: 3)), observation: planarObservation,
        controlCost: 1e-3, contactCost: 0, survivalReward: 1, healthyHeight: 0.7...Double.infinity,
        healthyAngle: -0.2...0.2, healthyStateBound: 100, frameSkip: 4, resetNoise: 5e-3, uniformVelocityNoise: true)

    static let walkerRandomParameters = LocomotionPreset(
        name: "rand-param-envs",
        source: "rand_param_envs walker_rand_params.py (ProMP, PEARL): gym's walker2d.xml, frame skip 5, survival 1 every step, scales 1.5^U[−3,3] (damping 1.3^U), 17-dim observation",
        robot: .walker, objective: .forwardWithRandomDynamics(RandomDynamics(logScaleLimit: 3)), observation: planarObservation,
        controlCost: 1e-3, contactCost: 0, survivalReward: 1, healthyHeight: 0.8...2.0,
        healthyAngle: -1...1, frameSkip: 5, resetNoise: 5e-3, uniformVelocityNoise: true)

    /// The MAML paper's own cheetah (cbfinn/maml_rl on rllab): rllab's half_cheetah.xml (the same
    /// model at timestep 0.01) stepped once per environment step, so an episode of 200 steps
    /// lasts 2 s, not 10; velocity and the observation's last 3 values from the torso
    /// subtree's centre of mass after `model.forward()`; Gaussian reset noise.
    static func rllabCheetah(_ objective: LocomotionObjective, source: String) -> LocomotionPreset {
        LocomotionPreset(
            name: "rllab", source: source, robot: .halfCheetah, objective: objective,
            observation: [.positions(skipping: 1), .velocities, .torsoSubtreeCenterOfMass],
            controlCost: 0.05, contactCost: 0, survivalReward: 0, frameSkip: 1,
            gaussianPositionNoise: 0.01, velocityOfSubtreeCenterOfMass: true)
    }

    static let cheetahVelocity = [
        LocomotionPreset(
            name: "maml", source: "MAML via pytorch-maml-rl maml_rl/envs/mujoco/half_cheetah.py HalfCheetahVelEnv: goal ~ U[0, 2], 20-dim observation (torso position included)",
            robot: .halfCheetah, objective: .targetVelocity(0...2), observation: cheetahObservation20,
            controlCost: 0.05, contactCost: 0, survivalReward: 0),
        LocomotionPreset(
            name: "promp", source: "ProMP meta_policy_search/envs/mujoco_envs/half_cheetah_rand_vel.py: goal ~ U[0, 3], 17-dim observation",
            robot: .halfCheetah, objective: .targetVelocity(0...3), observation: cheetahObservation17,
            controlCost: 0.05, contactCost: 0, survivalReward: 0),
        LocomotionPreset(
            name: "pearl", source: "PEARL via oyster rlkit/envs/half_cheetah_vel.py: goal ~ U[0, 3], 20-dim observation; split=train/test: oyster's 100/30 velocities (numpy seed 1337)",
            robot: .halfCheetah, objective: .targetVelocity(0...3), observation: cheetahObservation20,
            controlCost: 0.05, contactCost: 0, survivalReward: 0),
        rllabCheetah(.targetVelocity(0...2), source: "the MAML paper's own code, cbfinn/maml_rl rllab/envs/mujoco/half_cheetah_env_rand.py: goal ~ U[0, 2], dt 0.01 (frame skip 1), subtree centre-of-mass velocity, 20-dim observation"),
    ]

    static let cheetahDirection = [
        LocomotionPreset(
            name: "maml", source: "MAML via pytorch-maml-rl maml_rl/envs/mujoco/half_cheetah.py HalfCheetahDirEnv: direction ±1 (p = ½), 20-dim observation",
            robot: .halfCheetah, objective: .direction, observation: cheetahObservation20,
            controlCost: 0.05, contactCost: 0, survivalReward: 0),
        LocomotionPreset(
            name: "pearl", source: "PEARL via oyster rlkit/envs/half_cheetah_dir.py: the two tasks −1 and +1 (split=train/test), 20-dim observation",
            robot: .halfCheetah, objective: .direction, observation: cheetahObservation20,
            controlCost: 0.05, contactCost: 0, survivalReward: 0),
        LocomotionPreset(
            name: "promp", source: "ProMP meta_policy_search/envs/mujoco_envs/half_cheetah_rand_direc.py: direction ±1 (p = ½), 17-dim observation",
            robot: .halfCheetah, objective: .direction, observation: cheetahObservation17,
            controlCost: 0.05, contactCost: 0, survivalReward: 0),
        rllabCheetah(.direction, source: "the MAML paper's own code, cbfinn/maml_rl rllab/envs/mujoco/half_cheetah_env_rand_direc.py: direction ±1 (p = ½), dt 0.01 (frame skip 1), subtree centre-of-mass velocity, 20-dim observation"),
    ]

    static let antDirection = [
        LocomotionPreset(
            name: "maml", source: "MAML via pytorch-maml-rl maml_rl/envs/mujoco/ant.py AntDirEnv: ±1 along x, control cost 0.005, survival 0.05, 123-dim observation",
            robot: .ant, objective: .direction,
            observation: [.positions(skipping: 2), .velocities, .contactForces(firstBody: 0), .torsoOrientation, .torsoPosition],
            controlCost: 0.005, contactCost: 5e-4, survivalReward: 0.05, healthyHeight: 0.2...1.0),
        LocomotionPreset(
            name: "promp", source: "ProMP meta_policy_search/envs/mujoco_envs/ant_rand_direc.py: ±1 along x, control cost 0.5, survival 1, 111-dim observation",
            robot: .ant, objective: .direction, observation: [.positions(skipping: 2), .velocities, .contactForces(firstBody: 0)],
            controlCost: 0.5, contactCost: 5e-4, survivalReward: 1, healthyHeight: 0...1.0),
        LocomotionPreset(
            name: "pearl", source: "PEARL via oyster rlkit/envs/ant_dir.py as shipped: a direction angle ~ U[0, 2π) in the plane (not forward/backward), control cost 0.5, 27-dim observation",
            robot: .ant, objective: .planarDirection, observation: [.positions(skipping: 2), .velocities],
            controlCost: 0.5, contactCost: 5e-4, survivalReward: 1, healthyHeight: 0.2...1.0),
        LocomotionPreset(
            name: "pearl-fwd-back", source: "the PEARL paper's Ant-Fwd-Back: oyster rlkit/envs/ant_dir.py with forward_backward=True (angles 0 and π, i.e. ±1 along x; split=train/test: both), control cost 0.5, 27-dim observation",
            robot: .ant, objective: .direction, observation: [.positions(skipping: 2), .velocities],
            controlCost: 0.5, contactCost: 5e-4, survivalReward: 1, healthyHeight: 0.2...1.0),
    ]

    static let antGoal = [antGoalPreset("pearl", source: "PEARL via oyster rlkit/envs/ant_goal.py (from ProMP's ant_rand_goal.py): goal at radius 3√U, reward −L1 distance, 113-dim observation, no termination"),
                          antGoalPreset("promp", source: "ProMP meta_policy_search/envs/mujoco_envs/ant_rand_goal.py: the definition oyster took over unchanged (the same as pearl)"),
    ]

    /// Ant-goal as ProMP defined it and oyster took it over: goal at radius 3√U, reward −L1
    /// distance − 0.1 Σa² − contact cost, 113-dim observation, no termination.
    static func antGoalPreset(_ name: String, source: String) -> LocomotionPreset {
        LocomotionPreset(
            name: name, source: source,
            robot: .ant, objective: .goal(radius: 3), observation: [.positions(skipping: 0), .velocities, .contactForces(firstBody: 0)],
            controlCost: 0.1, contactCost: 5e-4, survivalReward: 0)
    }

    /// The fixed train and test sets of `preset` (`split=train|test`): a goal velocity's are
    /// drawn as oyster draws them (numpy's generator seeded 1337, `train + test` values, the
    /// first `train` for training and the last `test` for testing); a direction's are −1 and
    /// +1 both; the others' are drawn by `draw` (the env's ``LocomotionEnv/drawTask(using:)``)
    /// with MetaRL's generator seeded 1337.
    public static func fixedTasks(_ preset: LocomotionPreset, train: Int, test: Int,
                                  draw: (inout Xoshiro256) -> LocomotionTask) -> (train: [LocomotionTask], test: [LocomotionTask]) {
        switch preset.objective {
        case .targetVelocity(let range):
            var numpy = LegacyNumpyRandom(seed: 1337)
            let all = (0..<(train + test)).map { _ in LocomotionTask(goal: [numpy.uniform(range.lowerBound, range.upperBound)]) }
            return (Array(all.prefix(train)), Array(all.suffix(test)))
        case .direction:
            let both = [LocomotionTask(goal: [-1]), LocomotionTask(goal: [1])]
            return (both, both)
        default:
            var rng = Xoshiro256(seed: 1337)
            let all = (0..<(train + test)).map { _ in draw(&rng) }
            return (Array(all.prefix(train)), Array(all.suffix(test)))
        }
    }

    /// The family `name` with `presets` (the first the default).
    static func family(_ name: String, summary: String, presets: [LocomotionPreset], horizon: Int = 200) -> TaskFamily {
        let meta = presets.first!.objective.isMeta
        var arguments: [EnvArgument] = [
            .choice("variant", among: presets.map { EnvArgument.Choice($0.name, $0.source) }, help: "whose definition of the family"),
            .integer("horizon", default: horizon, in: 1...100_000, help: "steps per episode"),
        ]
        if meta {
            arguments += [
                .choice("split", among: [.init("any", "tasks drawn afresh from the distribution"),
                                         .init("train", "the fixed training tasks"), .init("test", "the fixed test tasks")],
                        help: "where tasks come from"),
                .integer("train-tasks", default: 100, in: 1...100_000, help: "size of the fixed training set"),
                .integer("test-tasks", default: 30, in: 1...100_000, help: "size of the fixed test set"),
            ]
        }
        arguments.append(.integer("version", default: version, in: version...version, help: "the family definition a run recorded"))
        return TaskFamily(name: name, summary: summary + " (MuJoCo \(MuJoCoModel.libraryVersion))", arguments: arguments) { args in
            let preset = presets.first { $0.name == args.choice("variant") }!
            let env = try LocomotionEnv(name: name, preset: preset, horizon: args.int("horizon"))
            guard meta, args.choice("split") != "any" else { return env }
            let sets = fixedTasks(preset, train: args.int("train-tasks"), test: args.int("test-tasks")) { env.drawTask(using: &$0) }
            return env.withFixedTasks(args.choice("split") == "train" ? sets.train : sets.test)
        }
    }
}
