import Envs
import Foundation

import NN
import RL
import Testing
import TensorCore

@Suite struct GAETests {
    /// One column of three steps, γ = 0.5, λ = 0.5, by hand:
    /// δ₂ = 1 + 0.5·4 − 3 = 0 (bootstrap 4);  δ₁ = 0 + 0.5·3 − 2 = −0.5;  δ₀ = 2 + 0.5·2 − 1 = 2;
    /// A₂ = 0, A₁ = −0.5 + 0.25·0 = −0.5, A₀ = 2 + 0.25·(−0.5) = 1.875.
    @Test func advantagesMatchTheHandComputation() {
        let (a, r) = GAE.compute(rewards: [2, 0, 1], values: [1, 2, 3], ends: [false, false, false], bootstrap: [4],
                                 steps: 3, batch: 1, gamma: 0.5, lambda: 0.5)
        #expect(a == [1.875, -0.5, 0])
        #expect(r == [2.875, 1.5, 3])
    }

    /// An end cuts both the bootstrap and the advantage recursion; columns stay apart.
    @Test func endsStopBootstrapping() {
        // Two columns, time-major: column 0 ends at t = 0; column 1 runs on.
        let (a, _) = GAE.compute(rewards: [1, 1, 1, 1], values: [0, 0, 5, 5], ends: [true, false, false, false],
                                 bootstrap: [0, 0], steps: 2, batch: 2, gamma: 1, lambda: 1)
        // Column 0: A₀ = 1 − 0 (no bootstrap past the end); A₁ = 1 + 0 − 5 = −4.
        // Column 1: A₁ = 1 − 5 = −4; A₀ = 1 + 5 − 0 + (−4) = 2.
        #expect(a == [1, 2, -4, -4])
    }
}

@Suite struct PolicyObjectiveTests {
    /// PPO's clipped objective by hand: advantages ±1, ratios e^{±0.5}, clip 0.2.
    @Test func ppoLossMatchesTheHandComputation() {
        let objective = PPOObjective(clip: 0.2, valueCoefficient: 0.5, entropyCoefficient: 0.1)
        let logProb = Tensor(shape: [4], values: [0.5, -0.5, 0.5, 0])
        let old = Tensor(shape: [4], values: [0, 0, 0, 0])
        let adv = Tensor(shape: [4], values: [1, 1, -1, 1])
        let values = Tensor(shape: [4], values: [1, 2, 3, 0]), returns = Tensor(shape: [4], values: [0, 2, 1, 0])
        let entropy = Tensor(shape: [4], values: [1, 1, 1, 7])
        let mask = Tensor(shape: [4], values: [1, 1, 1, 0])
        let t = objective.loss(logProb: logProb, oldLogProb: old, advantages: adv, values: values, returns: returns,
                               entropy: entropy, mask: mask)
        // min(ρA, clip(ρ)A): e^.5 → 1.2 (clipped); e^-.5 = 0.6065 (below 0.8, so min keeps 0.6065);
        // A = −1 with ρ = e^.5: min(−1.6487, −1.2) = −1.6487.
        let e = Foundation.exp(0.5), expectedPolicy = -(1.2 + 1 / e - e) / 3
        #expect(abs(t.policyLoss.doubleScalar - expectedPolicy) < 1e-5)
        #expect(abs(t.valueLoss.doubleScalar - (1 + 0 + 4) / 3.0) < 1e-6)
        #expect(abs(t.entropy.doubleScalar - 1) < 1e-6)
        #expect(abs(t.total.doubleScalar - (expectedPolicy + 0.5 * 5 / 3 - 0.1)) < 1e-5)
    }

    /// The categorical KL that bounds TRPO's step, against Σ p log(p/q) by hand.
    @Test func categoricalKLMatchesTheHandComputation() {
        let p = Categorical(logits: Tensor(shape: [1, 2], values: [Float(Foundation.log(0.25)), Float(Foundation.log(0.75))]))
        let q = Categorical(logits: Tensor(shape: [1, 2], values: [0, 0]))
        let expected = 0.25 * Foundation.log(0.5) + 0.75 * Foundation.log(1.5)
        #expect(abs(p.kl(to: q).doubleScalar - expected) < 1e-6)
    }

    /// Conjugate gradient solves a small SPD system exactly in n steps.
    @Test func conjugateGradientSolvesASymmetricSystem() {
        let a: [[Double]] = [[4, 1, 0], [1, 3, 1], [0, 1, 2]]
        let b: [Double] = [1, 2, 3]
        let x = TRPO.conjugateGradient({ v in a.map { row in zip(row, v).reduce(0) { $0 + $1.0 * $1.1 } } }, b, iterations: 3)
        for (i, row) in a.enumerated() { #expect(abs(zip(row, x).reduce(0) { $0 + $1.0 * $1.1 } - b[i]) < 1e-9) }
    }

    /// TRPO's step on a quadratic: gain g·d, KL ½dᵀFd. The full step lands on the KL bound.
    @Test func trpoStepRespectsTheKLBound() {
        let f: [Double] = [2, 0.5]
        let g: [Double] = [1, 1]
        let settings = TRPOSettings(maxKL: 0.01, damping: 0, conjugateGradientIterations: 5)
        let result = TRPO.step(parameters: [0, 0], gradient: g, settings: settings,
                               fisherProduct: { v in [f[0] * v[0], f[1] * v[1]] },
                               evaluate: { d in (g[0] * d[0] + g[1] * d[1], 0.5 * (f[0] * d[0] * d[0] + f[1] * d[1] * d[1])) })
        #expect(result.accepted && result.backtracks == 0)
        #expect(abs(result.kl - 0.01) < 1e-9)
        // Direction F⁻¹g = [0.5, 2].
        #expect(abs(result.parameters[1] / result.parameters[0] - 4) < 1e-9)
    }
}


@Suite struct PPOTrainingTests {
    /// PPO from scratch learns one task of 2-D navigation within a fixed seed and budget: the
    /// mean episode return (50 steps) at least halves its distance from 0 (about −26 at the
    /// start, −10 after 25 iterations), and the most probable action does as well.
    @Test func learnsOnePointNavigationTask() throws {
        var config = PPOConfig()
        config.episodesPerIteration = 8
        config.hiddenSizes = [32, 32]
        var ppo = PPOTraining(config: config, prototype: PointNavigation(horizon: 50), seed: 1)
        var returns: [Double] = []
        for _ in 0..<25 { returns.append(try ppo.iterate().first { $0.0 == "episode_return_mean" }!.1) }
        #expect(returns[0] < -20 && returns.suffix(3).allSatisfy { $0 > returns[0] / 2 }, "\(returns)")
        let evaluation = try PPOAlgorithm().evaluate(config, state: ppo.state, prototype: PointNavigation(horizon: 50),
                                                     options: TrajectoryEvaluationOptions(), seed: 3, threads: 1)
        #expect(evaluation.returnsByTrajectory.allSatisfy { $0 > returns[0] / 2 }, "\(evaluation.returnsByTrajectory)")
    }
}

@Suite struct EpisodeSamplingTests {
    /// Episodes that all end early (a cart-pole a random policy drops within tens of steps,
    /// horizon 400) are cut after the last step any of them took: the rows hold exactly the
    /// steps taken (reward 1 per step), and the last row is some episode's last step.
    @Test func episodesThatEndEarlyAreNotPadded() throws {
        let prototype = CartPolePhysics(horizon: 400)
        var rng = Xoshiro256(seed: 2)
        let policy = MLPPolicy(observationSize: prototype.observationSpace.flatSize, actionSpace: prototype.actionSpace,
                               hiddenSizes: [8], using: &rng)
        let tasks = prototype.sampleTasks(6, using: &rng)
        let batch = try sampleEpisodes(policy: policy, prototype: prototype, tasks: tasks, seed: 5)
        #expect(batch.steps < 100, "\(batch.steps) steps")
        #expect(batch.observations.count == batch.steps * 6 * batch.observationSize && batch.mask.count == batch.steps * 6)
        #expect(batch.validSteps == batch.episodeReturns.reduce(0, +))
        let last = (batch.steps - 1) * 6
        #expect((0..<6).contains { batch.mask[last + $0] == 1 })
    }
}
