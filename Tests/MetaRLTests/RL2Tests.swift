import Envs
import Foundation
@testable import MetaRL
import NN
@testable import RL
import Testing
import TensorCore

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
