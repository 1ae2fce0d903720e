import Envs
import Foundation
import MetaRL
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

@Suite struct RL2Tests {
    /// The memory persists across the episodes of a trial and is reset when the next trial
    /// starts: log-probabilities recorded while acting equal those of (a) one continuous
    /// unroll over the first trial, which crosses episode boundaries, and (b) a fresh unroll
    /// from zero over the second trial. Resetting at episode ends breaks (a); not resetting
    /// at the trial boundary breaks (b). Every cell kind.
    @Test(arguments: RecurrentCellChoice.Kind.allCases)
    func hiddenStatePersistsAcrossEpisodesAndResetsAcrossTrials(cell: RecurrentCellChoice.Kind) throws {
        var rng = Xoshiro256(seed: 1)
        let bandit = BernoulliBandit(arms: 3)
        let inputSize = 1 + 3 + 2
        var model = RecurrentActorCritic(inputSize: inputSize, actionCount: 3, cell: cell, hiddenSize: 8, using: &rng)
        // Parameters in general position: a full-scale policy head (not the near-zero one of
        // a fresh agent) and nonzero normalisation biases (a fresh layer-normalised GRU keeps
        // a zero state on the all-zero first input), so that a different state shows.
        model.policyHead = Linear(inputSize: 8, outputSize: 3, scale: 3, using: &rng)
        model.parameters = model.parameters.map { $0 + Tensor.randomNormal($0.shape, standardDeviation: 0.3, using: &rng) }
        var env = TrialEnv(bandit, count: 2, episodesPerTrial: 4, seed: 7)
        var agent = RecurrentAgent(model: model, batchSize: 2)
        var inputs: [[Float]] = [], logProbs: [[Float]] = [], actions: [[Int32]] = []
        for _ in 0..<8 {  // two trials of four one-step episodes
            let (a, lp, _) = agent.act(inputs: env.inputs, taskStarted: env.taskStarted, greedy: false, using: &rng)
            inputs.append(env.inputs); logProbs.append(lp); actions.append(a)
            try env.step(a.map(Float.init))
        }
        func replay(_ range: Range<Int>) -> [Float] {
            let x = Tensor(shape: [range.count, 2, inputSize], values: range.flatMap { inputs[$0] })
            let (logits, _) = model.unroll(x, policyState: model.policyCell.zeroState(batchSize: 2),
                                           valueState: model.valueCell.zeroState(batchSize: 2))
            return Categorical(logits: logits).logProb(range.flatMap { actions[$0] }).values
        }
        let first = replay(0..<4), second = replay(4..<8)
        let recordedFirst = (0..<4).flatMap { logProbs[$0] }, recordedSecond = (4..<8).flatMap { logProbs[$0] }
        for i in recordedFirst.indices {
            #expect(abs(first[i] - recordedFirst[i]) < 1e-5)
            #expect(abs(second[i] - recordedSecond[i]) < 1e-5)
        }
        // And the check has teeth: a state reset at each episode would change step 1's policy.
        let oneStep = replay(1..<2)
        #expect(zip(oneStep, recordedFirst[2..<4]).contains { abs($0 - $1) > 1e-4 })
    }

    /// The PPO update computes the policy's and the value function's gradients on two
    /// threads; the run is bit-identical on one.
    @Test func updateDoesNotDependOnTheThreadCount() throws {
        var config = RL2Config()
        config.episodesPerTrial = 4
        config.hiddenSize = 8
        config.trialsPerIteration = 20
        config.minibatchTrials = 7
        config.epochs = 2
        func train(threads: Int) throws -> [Float] {
            var rl2 = try RL2(config: config, prototype: BernoulliBandit(arms: 3), seed: 5)
            rl2.threads = threads
            for _ in 0..<2 { _ = try rl2.iterate() }
            return rl2.state.model.parameters.flatMap(\.values)
        }
        #expect(try train(threads: 1) == train(threads: 2))
    }

    /// The learning rate each update uses is the config's (annealed when asked), also when a
    /// run resumes with a config that changed it: not the rate saved with the optimizer.
    @Test func learningRateFollowsTheConfigAfterAResume() throws {
        var config = RL2Config()
        config.episodesPerTrial = 2
        config.hiddenSize = 4
        config.trialsPerIteration = 4
        config.minibatchTrials = 4
        config.epochs = 1
        config.iterations = 4
        config.annealLearningRate = true
        config.learningRate = 1e-3
        var rl2 = try RL2(config: config, prototype: BernoulliBandit(arms: 2), seed: 1)
        for _ in 0..<3 { _ = try rl2.iterate() }
        #expect(abs(rl2.state.optimizer.learningRate - 1e-3 * (1 - 2.0 / 4)) < 1e-12)
        config.annealLearningRate = false
        config.learningRate = 5e-5
        var resumed = try RL2(config: config, prototype: BernoulliBandit(arms: 2), state: rl2.state)
        _ = try resumed.iterate()
        #expect(resumed.state.optimizer.learningRate == 5e-5)
    }

    /// A two-armed bandit, 10 pulls per trial: a small RL² agent trained for a fixed seed
    /// and budget ends clearly above random (5.0).
    @Test func learnsATwoArmedBandit() throws {
        var config = RL2Config()
        config.episodesPerTrial = 10
        config.hiddenSize = 32
        config.trialsPerIteration = 200
        config.minibatchTrials = 100
        config.epochs = 4
        config.learningRate = 3e-3
        config.entropyCoefficient = 0.0
        var rl2 = try RL2(config: config, prototype: BernoulliBandit(arms: 2), seed: 3)
        for _ in 0..<40 { _ = try rl2.iterate() }
        let batch = try sampleTrials(model: rl2.state.model, prototype: BernoulliBandit(arms: 2), trials: 2000,
                                     episodesPerTrial: 10, seed: 99)
        let mean = batch.trialReturns.reduce(0, +) / 2000
        // Random: 5.0; the Bayes-optimal value for k = 2, n = 10 is about 6.4 (s.e. here ≈ 0.05).
        #expect(mean > 5.6, "trained mean trial return \(mean)")
    }
}
