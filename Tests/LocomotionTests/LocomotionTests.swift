import Envs
import Foundation
import Locomotion
import TensorCore
import Testing

/// The family `name` built with `arguments`, as `--env NAME --env-arg …` builds it.
func locomotion(_ name: String, _ arguments: [String] = []) throws -> LocomotionEnv {
    var registry = TaskFamilyRegistry()
    for family in LocomotionFamilies.all { try registry.register(family) }
    let spec = try registry.spec(name, arguments: arguments)
    return try #require(try spec.family.makeEnvironment(spec.arguments) as? LocomotionEnv)
}

@Suite struct ModelLoading {
    @Test func aMissingModelFileIsANamedError() {
        #expect(throws: MuJoCoError.missingModel(path: "/nonexistent/cheetah.xml")) {
            _ = try MuJoCoModel(contentsOf: "/nonexistent/cheetah.xml")
        }
    }

    @Test func aCorruptModelFileGivesMuJoCosMessage() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-corrupt-\(getpid()).xml")
        try Data("<mujoco><worldbody><body><geom type='capsule'/></body></worldbodyy></mujoco>".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            _ = try MuJoCoModel(contentsOf: url.path)
            Issue.record("a corrupt model loaded")
        } catch {
            guard case let .badModel(path, reason) = error else { Issue.record("wrong error \(error)"); return }
            #expect(path == url.path)
            #expect(!reason.isEmpty)
        }
    }

    @Test func aModelWithoutATorsoIsRefusedByName() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-notorso-\(getpid()).xml")
        try Data("<mujoco><worldbody><body name='trunk'><joint type='free'/><geom size='0.1'/></body></worldbody></mujoco>".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(throws: MuJoCoError.missingElement(model: url.lastPathComponent, kind: "body", name: "torso")) {
            _ = try LocomotionEnv(name: "test", preset: try locomotion("half-cheetah").preset, modelPath: url.path)
        }
    }
}

@Suite struct Presets {
    @Test(arguments: [
        ("half-cheetah", "gymnasium", 17, 6), ("ant", "gymnasium", 105, 8),
        ("cheetah-vel", "maml", 20, 6), ("cheetah-vel", "promp", 17, 6), ("cheetah-vel", "pearl", 20, 6),
        ("cheetah-dir", "maml", 20, 6), ("cheetah-dir", "pearl", 20, 6),
        ("cheetah-vel", "rllab", 20, 6), ("cheetah-dir", "rllab", 20, 6), ("cheetah-dir", "promp", 17, 6), ("ant-goal", "promp", 113, 8),
        ("ant-dir", "maml", 123, 8), ("ant-dir", "promp", 111, 8), ("ant-dir", "pearl", 27, 8),
        ("ant-dir", "pearl-fwd-back", 27, 8), ("ant-goal", "pearl", 113, 8),
        ("hopper", "gymnasium", 11, 3), ("walker", "gymnasium", 17, 6),
        ("hopper-rand-params", "rand-param-envs", 11, 3), ("walker-rand-params", "rand-param-envs", 17, 6),
    ])
    func observationAndActionSizesAreThoseOfTheReferenceCode(family: String, variant: String, observation: Int, action: Int) throws {
        let env = try locomotion(family, ["variant=\(variant)"])
        #expect(env.observationSpace.flatSize == observation)
        #expect(env.actionSpace.flatSize == action)
    }

    @Test func pearlsCheetahVelocitiesAreOystersNumpyDraws() throws {
        // np.random.seed(1337); np.random.uniform(0, 3, 130): oyster's 100 train, 30 test.
        let train = try locomotion("cheetah-vel", ["variant=pearl", "split=train"]).fixedTasks!
        let test = try locomotion("cheetah-vel", ["variant=pearl", "split=test"]).fixedTasks!
        #expect(train.count == 100 && test.count == 30)
        #expect(abs(train[0].goal[0] - 0.78607403) < 1e-8)
        #expect(abs(train[1].goal[0] - 0.47605192) < 1e-8)
        #expect(abs(train[99].goal[0] - 0.3762089882646701) < 1e-15)
        #expect(abs(test[0].goal[0] - 2.050959316523306) < 1e-15)
        #expect(abs(test[29].goal[0] - 0.5583223214918457) < 1e-15)
    }

    @Test func aFixedSetIsSampledWithoutReplacement() throws {
        let env = try locomotion("cheetah-vel", ["variant=pearl", "split=train"])
        var rng = Xoshiro256(seed: 3)
        let tasks = env.sampleTasks(100, using: &rng)
        #expect(Set(tasks.map { $0.goal[0] }) == Set(env.fixedTasks!.map { $0.goal[0] }))
        let directions = try locomotion("cheetah-dir", ["variant=pearl", "split=train"]).sampleTasks(2, using: &rng)
        #expect(Set(directions.map { $0.goal[0] }) == [-1, 1])
    }

    @Test func aRunOfAnotherFamilyVersionIsRefused() throws {
        #expect(throws: EnvSpecError.badValue(family: "cheetah-vel", name: "version", value: "2", allowed: "an integer in 1…1")) {
            _ = try locomotion("cheetah-vel", ["version=2"])
        }
        #expect(throws: EnvSpecError.badValue(family: "cheetah-vel", name: "variant", value: "garage", allowed: "one of maml, promp, pearl, rllab")) {
            _ = try locomotion("cheetah-vel", ["variant=garage"])
        }
    }
}

@Suite struct Stepping {
    /// `steps` random-action steps of `count` copies; returns every observation and reward.
    func rollout(_ env: LocomotionEnv, count: Int, steps: Int, seed: UInt64) throws -> [Float] {
        var vector = VectorEnv(env, count: count, seed: seed)
        var rng = Xoshiro256(seed: seed &+ 1)
        for i in 0..<count { vector.setTask(vector.sampleTask(at: i), at: i) }
        vector.resetAll()
        var trace = vector.observations
        for _ in 0..<steps {
            let actions = (0..<(count * vector.actionSize)).map { _ in Float(2 * rng.uniformDouble() - 1) }
            try vector.step(actions)
            trace += vector.observations + vector.rewards
        }
        return trace
    }

    @Test func aSeedReproducesARolloutAndCopiesAreIndependent() throws {
        let env = try locomotion("ant-dir", ["horizon=30"])
        let a = try rollout(env, count: 3, steps: 40, seed: 11)
        let b = try rollout(env, count: 3, steps: 40, seed: 11)
        #expect(a == b)
        // Copy 0 of a 3-copy run is the same as a 1-copy run with its generator: no shared state.
        let c = try rollout(env, count: 3, steps: 40, seed: 12)
        #expect(a != c)
    }

    @Test func cheetahVelRewardIsMinusTheVelocityErrorMinusTheControlCost() throws {
        var env = try locomotion("cheetah-vel")
        env.setTask(LocomotionTask(goal: [1.5]))
        var rng = Xoshiro256(seed: 5)
        _ = env.reset(using: &rng)
        for _ in 0..<20 {
            let x0 = env.state.qpos[0]
            let action: [Float] = [0.5, -0.3, 0.9, -1, 0.2, 0.7]
            let (observation, outcome) = try env.step(action, using: &rng)
            let v = (env.state.qpos[0] - x0) / 0.05
            let control = 0.05 * action.reduce(0) { $0 + Double($1 * $1) }
            #expect(abs(env.rewardTerms.xVelocity - v) < 1e-12)
            #expect(abs(Double(outcome.reward) - (-abs(v - 1.5) - control)) < 1e-4)
            #expect(!outcome.terminated)
            // The 20-dim MAML observation ends with the torso position as gym's get_body_com read it
            // after a step: MuJoCo's body frames of the last mj_step's start, one substep (0.01 s) behind qpos.
            #expect(abs(Double(observation[17]) - env.state.qpos[0]) < 0.01 * 3 * abs(v) + 1e-4)
            #expect(Double(observation[17]) != Double(Float(env.state.qpos[0])))
        }
    }

    @Test func theMAMLPapersRllabCheetahStepsAtDt001AndReadsTheSubtreeCenterOfMass() throws {
        var env = try locomotion("cheetah-vel", ["variant=rllab"])
        env.setTask(LocomotionTask(goal: [0.7]))
        var rng = Xoshiro256(seed: 4)
        var previous = env.reset(using: &rng)
        // Reset noise: qpos0 + 0.01·N(0, 1), so every coordinate stays well inside ±0.06.
        #expect((0..<9).allSatisfy { abs(env.state.qpos[$0] - env.state.initialQpos[$0]) < 0.06 })
        var actions = Xoshiro256(seed: 6)
        for step in 1...200 {
            let action = (0..<6).map { _ in Float(2 * actions.uniformDouble() - 1) }
            let (observation, outcome) = try env.step(action, using: &rng)
            let v = env.rewardTerms.xVelocity
            let control = 0.05 * action.reduce(0) { $0 + Double($1 * $1) }
            #expect(abs(Double(outcome.reward) - (-abs(v - 0.7) - control)) < 1e-4)
            // The observation ends with the subtree centre of mass of the state after the step;
            // its change over dt = 0.01 s is the average of the velocity the reward reads.
            #expect(observation[17] == Float(env.state.subtreeCentersOfMass[3]))
            let average = Double(observation[17] - previous[17]) / 0.01
            #expect(abs(average - v) < 0.1 + 0.1 * abs(v), "step \(step): \(average) vs \(v)")
            #expect(outcome.truncated == (step == 200))
            previous = observation
        }
        #expect(abs(env.state.data.pointee.time - 2.0) < 1e-9)
    }

    @Test(arguments: [(1.0, 0.0), (-1.0, Double.pi)])
    func antForwardBackwardIsOystersAntDirAtAngleZeroOrPi(direction: Double, angle: Double) throws {
        var forwardBackward = try locomotion("ant-dir", ["variant=pearl-fwd-back"])
        var planar = try locomotion("ant-dir", ["variant=pearl"])
        forwardBackward.setTask(LocomotionTask(goal: [direction]))
        planar.setTask(LocomotionTask(goal: [angle]))
        var rngA = Xoshiro256(seed: 9), rngB = Xoshiro256(seed: 9)
        #expect(forwardBackward.reset(using: &rngA) == planar.reset(using: &rngB))
        var actions = Xoshiro256(seed: 10)
        var objective = 0.0
        for _ in 0..<30 {
            let action = (0..<8).map { _ in Float(2 * actions.uniformDouble() - 1) }
            let (a, outcomeA) = try forwardBackward.step(action, using: &rngA)
            let (b, outcomeB) = try planar.step(action, using: &rngB)
            #expect(a == b)
            #expect(abs(outcomeA.reward - outcomeB.reward) < 1e-5)
            #expect(outcomeA.terminated == outcomeB.terminated)
            objective += abs(forwardBackward.rewardTerms.objective)
        }
        #expect(objective > 0)
        let sets = try locomotion("ant-dir", ["variant=pearl-fwd-back", "split=test"]).fixedTasks!
        #expect(sets.map { $0.goal[0] } == [-1, 1])
    }

    @Test func theAntTerminatesWhenItsTorsoLeavesTheHealthyHeights() throws {
        var env = try locomotion("ant-dir")
        var observation = [Float](repeating: 0, count: env.observationSpace.flatSize)
        var qpos = [Double](repeating: 0, count: 15)
        qpos[2] = 2.0 // far above the healthy range [0.2, 1]
        qpos[3] = 1
        try observation.withUnsafeMutableBufferPointer { try env.reset(qpos: qpos, qvel: [Double](repeating: 0, count: 14), observation: $0) }
        var rng = Xoshiro256(seed: 1)
        let (_, outcome) = try env.step([Float](repeating: 0, count: 8), using: &rng)
        #expect(outcome.terminated && !outcome.truncated)
    }

    @Test func anUnstableSimulationStopsWithANamedErrorAndStaysStopped() throws {
        var env = try locomotion("half-cheetah")
        var observation = [Float](repeating: 0, count: env.observationSpace.flatSize)
        let qpos = [Double](repeating: 0, count: 9)
        try observation.withUnsafeMutableBufferPointer { try env.reset(qpos: qpos, qvel: [Double](repeating: 1e200, count: 9), observation: $0) }
        var rng = Xoshiro256(seed: 1)
        do {
            _ = try env.step([Float](repeating: 0, count: 6), using: &rng)
            Issue.record("an unstable step succeeded")
        } catch {
            #expect(error.kind == .failed)
            #expect(error.description.hasPrefix("half-cheetah: MuJoCo simulation unstable"), "\(error)")
        }
        #expect(throws: EnvError.self) { _ = try env.step([Float](repeating: 0, count: 6), using: &rng) }
        // A fresh episode clears the failure.
        _ = env.reset(using: &rng)
        _ = try env.step([Float](repeating: 0, count: 6), using: &rng)
    }
}

/// The rand-params families: a task is a scaled copy of the model.
@Suite struct RandomParameters {
    /// A task's multipliers lie in 1.5^[−3, 3] (damping 1.3^[−3, 3]), one per body mass, inertia
    /// element, degree of freedom and friction element; setting the task simulates exactly the
    /// scaled model, and the unscaled task gives the model as written back.
    @Test(arguments: ["hopper-rand-params", "walker-rand-params"])
    func aTaskScalesTheModelsParameters(family: String) throws {
        var env = try locomotion(family)
        let base = env.state.model
        var rng = Xoshiro256(seed: 8)
        let task = env.sampleTasks(1, using: &rng)[0]
        let scales = try #require(task.scales)
        let nb = base.bodyCount, nv = base.velocityCount
        #expect(scales.count == 4 * nb + nv + 3 * base.geomCount)
        for (i, x) in scales.enumerated() {
            let limit = (4 * nb..<4 * nb + nv).contains(i) ? pow(1.3, 3.0) : pow(1.5, 3.0)
            #expect(x >= 1 / limit - 1e-12 && x <= limit + 1e-12)
        }
        env.setTask(task)
        let scaled = env.state.model
        #expect(scaled !== base)
        for i in 0..<nb { #expect(abs(scaled.bodyMasses[i] - base.bodyMasses[i] * scales[i]) < 1e-12) }
        for i in 0..<nv { #expect(abs(scaled.jointDamping[i] - base.jointDamping[i] * scales[4 * nb + i]) < 1e-12) }
        #expect(base.bodyMasses.dropFirst().allSatisfy { $0 > 0 })
        env.setTask(LocomotionTask(goal: []))
        #expect(env.state.model === base)
    }

    /// Two tasks give different dynamics from the same start and actions; the same task gives
    /// the same trajectory; fixed train/test sets are reproducible.
    @Test func tasksChangeTheDynamicsAndASeedReproducesThem() throws {
        let env = try locomotion("walker-rand-params", ["horizon=50"])
        var rng = Xoshiro256(seed: 2)
        let tasks = env.sampleTasks(2, using: &rng)
        func run(_ task: LocomotionTask) throws -> [Float] {
            var e = env
            e.setTask(task)
            var observation = [Float](repeating: 0, count: e.observationSpace.flatSize), trace: [Float] = []
            var stepRNG = Xoshiro256(seed: 1)
            observation.withUnsafeMutableBufferPointer { e.reset(observation: $0, using: &stepRNG) }
            for t in 0..<20 {
                let action = (0..<6).map { Float(sin(Double(t + $0))) }
                let outcome = try action.withUnsafeBufferPointer { a in
                    try observation.withUnsafeMutableBufferPointer { try e.step(a, observation: $0, using: &stepRNG) }
                }
                trace += observation + [outcome.reward]
                if outcome.terminated { break }
            }
            return trace
        }
        #expect(try run(tasks[0]) == run(tasks[0]))
        #expect(try run(tasks[0]) != run(tasks[1]))
        let a = try locomotion("hopper-rand-params", ["split=test", "test-tasks=5"]).fixedTasks!
        let b = try locomotion("hopper-rand-params", ["split=test", "test-tasks=5"]).fixedTasks!
        #expect(a.count == 5 && a == b)
        #expect(try locomotion("hopper-rand-params", ["split=train", "train-tasks=5"]).fixedTasks! != a)
    }
}
