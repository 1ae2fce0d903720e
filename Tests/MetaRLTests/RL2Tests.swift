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
        var inputs: [[Float]] = [], logProbs: [[Float]] = [], actions: [[Float]] = []
        for _ in 0..<8 {  // two trials of four one-step episodes
            let (a, lp, _) = agent.act(inputs: env.inputs, taskStarted: env.taskStarted, greedy: false, using: &rng)
            inputs.append(env.inputs); logProbs.append(lp); actions.append(a)
            try env.step(a)
        }
        func replay(_ range: Range<Int>) -> [Float] {
            let x = Tensor(shape: [range.count, 2, inputSize], values: range.flatMap { inputs[$0] })
            let (policy, _) = model.unroll(x, policyState: model.policyCell.zeroState(batchSize: 2),
                                           valueState: model.valueCell.zeroState(batchSize: 2))
            return policy.logProb(Tensor(shape: [range.count, 2, 1], values: range.flatMap { actions[$0] })).values
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
    /// threads; the run is bit-identical on one, also with returns from expected rewards and
    /// a task-aware value function.
    @Test(arguments: [false, true])
    func updateDoesNotDependOnTheThreadCount(privileged: Bool) throws {
        var config = RL2Config()
        config.trainOnExpectedRewards = privileged
        config.taskAwareValue = privileged
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

    /// Trials whose episodes all end early (a cart-pole a random policy drops within tens of
    /// steps, horizon 400) are cut after the last step any of them took, not padded to
    /// episodes × horizon: the batch holds exactly the steps taken, and its PPO gradient equals
    /// that of the same batch padded to full length (padding carries no weight).
    @Test func trialsThatEndEarlyAreNotPadded() throws {
        let prototype = CartPolePhysics(horizon: 400)
        var config = RL2Config()
        config.episodesPerTrial = 2
        config.hiddenSize = 8
        config.trialsPerIteration = 6
        let rl2 = try RL2(config: config, prototype: prototype, seed: 3)
        let batch = try sampleTrials(model: rl2.state.model, prototype: prototype, trials: 6, episodesPerTrial: 2, seed: 11)
        let full = 2 * 400
        #expect(batch.steps < full / 4, "\(batch.steps) steps")
        #expect(batch.policyStates.count == 1 && batch.chunkLength == batch.steps)
        // Reward 1 per step: the returns count the steps taken, and some trial ends on the last row.
        #expect(batch.environmentSteps == Int(batch.trialReturns.reduce(0, +)))
        let last = (batch.steps - 1) * batch.trials
        #expect((0..<batch.trials).contains { batch.valid[last + $0] == 1 && batch.ends[last + $0] })

        var padded = batch
        let extra = (full - batch.steps) * batch.trials
        padded.inputs += [Float](repeating: 0, count: extra * batch.inputSize)
        padded.actions += [Float](repeating: 0, count: extra * batch.actionWidth)
        for keyPath in [\TrialBatch.logProbs, \.values, \.rewards, \.expectedRewards, \.valid] { padded[keyPath: keyPath] += [Float](repeating: 0, count: extra) }
        padded.ends += [Bool](repeating: true, count: extra)
        padded.steps = full
        padded.chunkLength = full
        func gradient(_ b: TrialBatch) throws -> [Float] { try ppoGradient(rl2, b, rewards: b.rewards, gamma: 0.99, lambda: 0.3) }
        let trimmed = try gradient(batch), reference = try gradient(padded)
        let scale = reference.map(abs).max() ?? 1
        #expect(zip(trimmed, reference).allSatisfy { abs($0 - $1) <= 1e-5 * scale })
    }

    /// `trainOnExpectedRewards` computes returns from the arms' probabilities instead of the
    /// paid rewards. On the same trials the two PPO gradients differ, but over 300 independent
    /// batches their difference averages to zero (each coordinate's mean difference within its
    /// standard error: mean z² about 1 or less, as for unbiased estimators (0.59 here); a reward shifted by 0.05
    /// is far off), and the expected-reward gradient varies less (0.72 of the variance). A family without expected
    /// rewards (cart-pole) is refused with the setting's name.
    @Test func expectedRewardsGiveAnUnbiasedLowerVarianceGradient() throws {
        let bandit = BernoulliBandit(arms: 2)
        var config = RL2Config()
        config.episodesPerTrial = 5
        config.hiddenSize = 4
        config.trialsPerIteration = 16
        config.gamma = 1
        config.gaeLambda = 0.9
        config.trainOnExpectedRewards = true
        var rl2 = try RL2(config: config, prototype: bandit, seed: 3)
        // A policy in general position (a fresh one is near uniform, with little to learn).
        var rng = Xoshiro256(seed: 4)
        rl2.state.model.parameters = rl2.state.model.parameters.map { $0 + Tensor.randomNormal($0.shape, standardDeviation: 0.5, using: &rng) }
        func gradient(_ b: TrialBatch, rewards: [Float]) throws -> [Double] {
            try ppoGradient(rl2, b, rewards: rewards, gamma: 1, lambda: 0.9).map(Double.init)
        }
        var sampled: [[Double]] = [], expected: [[Double]] = [], shifted: [[Double]] = []
        for seed in 0..<300 {
            let batch = try sampleTrials(model: rl2.state.model, prototype: bandit, trials: 16, episodesPerTrial: 5, seed: UInt64(seed))
            #expect(try rl2.trainingRewards(batch) == batch.expectedRewards)
            sampled.append(try gradient(batch, rewards: batch.rewards))
            expected.append(try gradient(batch, rewards: batch.expectedRewards))
            shifted.append(try gradient(batch, rewards: batch.expectedRewards.map { $0 + 0.05 }))
        }
        // Per coordinate: the mean difference over its standard error, squared, averaged.
        func meanSquaredZ(_ a: [[Double]], _ b: [[Double]]) -> Double {
            let d = zip(a, b).map { zip($0, $1).map { $0 - $1 } }, n = Double(d.count)
            var total = 0.0, counted = 0
            for j in d[0].indices {
                let mean = d.reduce(0) { $0 + $1[j] } / n
                let variance = d.reduce(0) { $0 + ($1[j] - mean) * ($1[j] - mean) } / (n - 1)
                guard variance > 1e-20 else { continue }
                total += mean * mean / (variance / n)
                counted += 1
            }
            return total / Double(counted)
        }
        func totalVariance(_ g: [[Double]]) -> Double {
            let n = Double(g.count)
            return g[0].indices.reduce(0) { sum, j in
                let mean = g.reduce(0) { $0 + $1[j] } / n
                return sum + g.reduce(0) { $0 + ($1[j] - mean) * ($1[j] - mean) } / (n - 1)
            }
        }
        let unbiased = meanSquaredZ(sampled, expected), biased = meanSquaredZ(shifted, expected)
        #expect(unbiased < 2, "mean z² \(unbiased)")
        #expect(biased > 20, "mean z² of a shifted reward \(biased)")
        let ratio = totalVariance(expected) / totalVariance(sampled)
        #expect(ratio < 0.8, "variance ratio \(ratio)")

        let cartPole = CartPolePhysics(horizon: 20)
        var refused = try RL2(config: config, prototype: cartPole, seed: 1)
        refused.threads = 1
        #expect { try refused.iterate() } throws: { ($0 as? ConfigError)?.field == "trainOnExpectedRewards" }
    }

    /// A run cannot have more fixed parts of its trials than trials.
    @Test func moreShardsThanTrialsIsRefused() throws {
        var config = RL2Config()
        config.trialsPerIteration = 3
        config.shards = 4
        #expect(throws: RL2Error.self) { try RL2(config: config, prototype: BernoulliBandit(arms: 3), seed: 5) }
        config.shards = 3
        var rl2 = try RL2(config: config, prototype: BernoulliBandit(arms: 3), seed: 5)
        rl2.threads = 1
        let metrics = Dictionary(try rl2.iterate(), uniquingKeysWith: { a, _ in a })
        #expect(metrics["environment_steps"] == 30)
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

    /// Box actions get a Gaussian head: the agent acts with a vector per copy, the
    /// log-probabilities recorded while acting equal those of a replay through the unrolled
    /// policy, the most probable action is the mean, and the agent round-trips through
    /// JSON as a Gaussian one (a categorical agent's JSON has no `logStd`, as before).
    @Test func boxActionsGetAGaussianHead() throws {
        let prototype = PointNavigation(horizon: 3)
        var config = RL2Config()
        config.hiddenSize = 8
        let rl2 = try RL2(config: config, prototype: prototype, seed: 2)
        var model = rl2.state.model
        #expect(!model.discrete && model.actionWidth == 2 && model.logStd.shape == [2])
        #expect(model.namedParameters.map(\.name).contains("policy.logStd"))
        var rng = Xoshiro256(seed: 4)
        model.policyHead = Linear(inputSize: 8, outputSize: 2, scale: 1, using: &rng)
        model.logStd = Tensor(shape: [2], values: [-1, -2])
        let inputSize = TrialEnv<PointNavigation>.inputSize(observationSpace: prototype.observationSpace, actionSpace: prototype.actionSpace)
        #expect(inputSize == 2 + 2 + 2)
        var env = TrialEnv(prototype, count: 3, episodesPerTrial: 2, seed: 5)
        var agent = RecurrentAgent(model: model, batchSize: 3)
        var inputs: [Float] = [], actions: [Float] = [], logProbs: [Float] = []
        for _ in 0..<6 {
            let (a, lp, _) = agent.act(inputs: env.inputs, taskStarted: env.taskStarted, greedy: false, using: &rng)
            #expect(a.count == 6)
            inputs += env.inputs; actions += a; logProbs += lp
            try env.step(a)
        }
        let (policy, _) = model.unroll(Tensor(shape: [6, 3, inputSize], values: inputs),
                                       policyState: model.policyCell.zeroState(batchSize: 3),
                                       valueState: model.valueCell.zeroState(batchSize: 3))
        let replayed = policy.logProb(Tensor(shape: [6, 3, 2], values: actions)).values
        for i in replayed.indices { #expect(abs(replayed[i] - logProbs[i]) < 1e-4) }
        guard case .gaussian(let gaussian) = policy else { Issue.record("not a Gaussian policy"); return }
        // Greedy acting returns the mean at the first step.
        var greedyAgent = RecurrentAgent(model: model, batchSize: 3)
        var fresh = TrialEnv(prototype, count: 3, episodesPerTrial: 2, seed: 5)
        let (greedy, _, _) = greedyAgent.act(inputs: fresh.inputs, taskStarted: fresh.taskStarted, greedy: true, using: &rng)
        #expect(greedy == Array(gaussian.mean.values[0..<6]))
        try fresh.step(greedy)

        let decoded = try JSONDecoder().decode(RecurrentActorCritic.self, from: JSONEncoder().encode(model))
        #expect(!decoded.discrete && decoded.parameters.flatMap(\.values) == model.parameters.flatMap(\.values))
        let categorical = RecurrentActorCritic(inputSize: 6, actionCount: 3, cell: .gru, hiddenSize: 4, using: &rng)
        let json = try JSONEncoder().encode(categorical)
        #expect(!String(decoding: json, as: UTF8.self).contains("logStd"))
        #expect(try JSONDecoder().decode(RecurrentActorCritic.self, from: json).discrete)
    }

    /// RL² with the Gaussian head learns: on one-step episodes whose reward is −(a − t)² for a
    /// task's hidden target t ~ U[0.2, 0.6] (four episodes per trial), a fixed seed and budget
    /// take the mean trial return from about −3 (σ = 1 around 0) to near 0, with PPO and with TRPO.
    @Test(arguments: [RL2Config.Algorithm.ppo, .trpo])
    func gaussianAgentLearnsATargetAction(algorithm: RL2Config.Algorithm) throws {
        var config = RL2Config()
        config.algorithm = algorithm
        config.episodesPerTrial = 4
        config.hiddenSize = 16
        config.trialsPerIteration = 64
        config.minibatchTrials = 32
        config.epochs = 4
        config.learningRate = 1e-2
        config.entropyCoefficient = 0
        config.standardizeAdvantages = true
        config.trpo.maxKL = 0.05
        var rl2 = try RL2(config: config, prototype: TargetAction(), seed: 1)
        var returns: [Double] = []
        for _ in 0..<25 {
            let metrics = try rl2.iterate()
            returns.append(metrics.first { $0.0 == "mean_trial_return" }!.1)
        }
        let first = returns.prefix(3).reduce(0, +) / 3, last = returns.suffix(3).reduce(0, +) / 3
        #expect(first < -2 && last > -1, "mean trial return \(first) at the start, \(last) at the end: \(returns)")
    }
}

/// One-step episodes with a box action in [−1, 1] and reward −(a − t)² for the task's target t.
struct TargetAction: MetaEnv {
    struct Task: Codable, Sendable, Equatable { var target: Double }
    var task = Task(target: 0.4)
    var observationSpace: Space { .box(low: 0, high: 0, shape: [1]) }
    var actionSpace: Space { .box(low: -1, high: 1, shape: [1]) }
    var maxEpisodeSteps: Int { 1 }
    func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task] { (0..<n).map { _ in Task(target: 0.2 + 0.4 * rng.uniformDouble()) } }
    mutating func setTask(_ task: Task) { self.task = task }
    mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) { observation[0] = 0 }
    mutating func step(_ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>,
                       using rng: inout Xoshiro256) throws(EnvError) -> StepOutcome {
        let a = Double(try clippedAction(action, 0, low: -1, high: 1, environment: "target-action"))
        observation[0] = 0
        return StepOutcome(reward: Float(-(a - task.target) * (a - task.target)), terminated: false, truncated: true)
    }
}

/// `metarl eval --baseline-tasks`: the agent meets, trial for trial, the tasks the classic
/// strategies meet with the same seed (`TrialStreams`), so their rows are a paired comparison.
@Suite struct RL2PairedEvaluationTests {
    /// One arm pulled 2 000 times a trial: a trial's return is 2 000 p of its task, give or
    /// take √(2 000 p(1 − p)) ≤ 23, so the mean over ten trials names the tasks it ran on.
    @Test func baselineTasksAreTheTasksTheStrategiesMeet() throws {
        let bandit = BernoulliBandit(arms: 1), pulls = 2000, trials = 10, seed: UInt64 = 11
        var config = RL2Config()
        config.episodesPerTrial = pulls
        config.hiddenSize = 4
        let state = try RL2(config: config, prototype: bandit, seed: 3).state
        var options = RL2EvaluationOptions()
        options.trials = trials
        options.baselineTasks = true
        let paired = try RL2Algorithm().evaluate(config, state: state, prototype: bandit, options: options, seed: seed, threads: 1)
        let tasks = TrialStreams.tasks(of: bandit, count: trials, seed: seed)
        let expected = Double(pulls) * tasks.map { $0.armProbabilities[0] }.reduce(0, +) / Double(trials)
        // Five standard deviations of a ten-trial mean of the rewards' noise.
        #expect(abs(paired.meanReturn - expected) < 5 * 23 / Double(trials).squareRoot(), "\(paired.meanReturn) vs \(expected)")
        options.baselineTasks = false
        let unpaired = try RL2Algorithm().evaluate(config, state: state, prototype: bandit, options: options, seed: seed, threads: 1)
        #expect(abs(unpaired.meanReturn - expected) > 5 * 23 / Double(trials).squareRoot(), "other tasks without the option")
    }

    /// `episodesPerTrial` runs the agent on longer trials than it was trained on: with one arm,
    /// three times the pulls on the same tasks give three times the return (within the noise),
    /// and the curve has one point per pull.
    @Test func anAgentRunsOnLongerTrialsThanItWasTrainedOn() throws {
        let bandit = BernoulliBandit(arms: 1), trials = 400, seed: UInt64 = 5
        var config = RL2Config()
        config.episodesPerTrial = 50
        config.hiddenSize = 4
        let state = try RL2(config: config, prototype: bandit, seed: 3).state
        var options = RL2EvaluationOptions()
        options.trials = trials
        options.baselineTasks = true
        let trained = try RL2Algorithm().evaluate(config, state: state, prototype: bandit, options: options, seed: seed, threads: 1)
        options.episodesPerTrial = 150
        let longer = try RL2Algorithm().evaluate(config, state: state, prototype: bandit, options: options, seed: seed, threads: 1)
        #expect(trained.perEpisode.count == 50 && longer.perEpisode.count == 150)
        let expected = 150 * TrialStreams.tasks(of: bandit, count: trials, seed: seed).map { $0.armProbabilities[0] }.reduce(0, +) / Double(trials)
        // Five standard deviations of the reward noise's mean (√(150/4) per trial at most).
        #expect(abs(longer.meanReturn - expected) < 5 * (150.0 / 4).squareRoot() / Double(trials).squareRoot())
        #expect(abs(longer.meanReturn - 3 * trained.meanReturn) < 3)
        options.episodesPerTrial = -1
        #expect(throws: ConfigError.self) { try options.validate() }
    }
}

/// `distinct_actions` in `metarl eval`: how many different actions a trial took (a bandit's arms tried).
@Suite struct RL2DistinctActionsTests {
    /// Counted from the trials' own actions: exactly one with one pull; with ten pulls of five arms,
    /// between one and five, and the count over the very trials the evaluation samples (its seed
    /// drawn first from the evaluation's generator); none for continuous actions.
    @Test func distinctActionsCountTheArmsATrialTried() throws {
        let bandit = BernoulliBandit(arms: 5)
        var config = RL2Config()
        config.hiddenSize = 4
        config.episodesPerTrial = 1
        var options = RL2EvaluationOptions()
        options.trials = 200
        var state = try RL2(config: config, prototype: bandit, seed: 3).state
        let single = try RL2Algorithm().evaluate(config, state: state, prototype: bandit, options: options, seed: 9, threads: 1)
        #expect(single.distinctActions == 1 && single.distinctActionsStderr == 0)

        config.episodesPerTrial = 10
        state = try RL2(config: config, prototype: bandit, seed: 3).state
        let report = try RL2Algorithm().evaluate(config, state: state, prototype: bandit, options: options, seed: 9, threads: 1)
        var rng = Xoshiro256(seed: 9)
        let batch = try sampleTrials(model: state.model, prototype: bandit, trials: 200, episodesPerTrial: 10, seed: rng.next())
        var counts: [Double] = []
        for b in 0..<200 {
            var seen = Set<Float>()
            for t in 0..<batch.steps where batch.valid[t * 200 + b] > 0 { seen.insert(batch.actions[t * 200 + b]) }
            counts.append(Double(seen.count))
        }
        let mean = counts.reduce(0, +) / 200
        #expect(report.distinctActions.map { abs($0 - mean) < 1e-12 } == true, "\(String(describing: report.distinctActions)) vs \(mean)")
        #expect(mean > 1 && mean <= 5)
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        #expect(json.contains("\"distinct_actions\""))
        #expect(report.summary(algorithm: "rl2", env: "bandit").contains { $0.hasPrefix("different actions per trial") })

        let nav = PointNavigation()
        var navConfig = RL2Config()
        navConfig.hiddenSize = 4
        navConfig.episodesPerTrial = 1
        let navState = try RL2(config: navConfig, prototype: nav, seed: 3).state
        options.trials = 4
        let continuous = try RL2Algorithm().evaluate(navConfig, state: navState, prototype: nav, options: options, seed: 9, threads: 1)
        #expect(continuous.distinctActions == nil)
        #expect(!String(decoding: try JSONEncoder().encode(continuous), as: UTF8.self).contains("distinct_actions"))
    }
}

@Suite struct RL2WarmStart {
    /// A GRU-8 agent trained on 10 trials an iteration, one epoch: small enough for many runs.
    func tinyConfig(episodesPerTrial: Int) -> RL2Config {
        var config = RL2Config()
        config.episodesPerTrial = episodesPerTrial
        config.hiddenSize = 8
        config.trialsPerIteration = 10
        config.minibatchTrials = 5
        config.epochs = 1
        return config
    }

    /// Logits [T·B, K] of `model`'s policy over `inputs` [T, B, input] from a zero state.
    func logits(_ model: RecurrentActorCritic, _ inputs: Tensor) -> [Float] {
        let h = model.policyCell.unroll(inputs, initialState: Tensor.zeros([inputs.shape[1], model.stateSize]), resetMask: nil).outputs
        return model.policyHead(h.reshaped([inputs.shape[0] * inputs.shape[1], h.shape[2]])).values
    }

    /// Random inputs [steps, trials, input] of a 2-armed bandit agent (observation, the arm's
    /// one-hot, reward, done), and the same with `addedArms` more arms' one-hot entries, zero.
    func twoArmInputs(steps: Int, trials: Int, addedArms: Int) -> (narrow: Tensor, wide: Tensor) {
        var rng = Xoshiro256(seed: 9)
        let observation = BernoulliBandit(arms: 2).observationSpace.flatSize
        var narrow: [Float] = [], wide: [Float] = []
        for _ in 0..<(steps * trials) {
            let obs = (0..<observation).map { _ in Float(rng.uniformDouble()) }
            let arm = rng.uniformDouble() < 0.5 ? 0 : 1
            let oneHot: [Float] = (0..<2).map { $0 == arm ? 1 : 0 }
            let tail: [Float] = [Float(rng.uniformDouble() < 0.5 ? 1 : 0), 0]
            narrow += obs + oneHot + tail
            wide += obs + oneHot + [Float](repeating: 0, count: addedArms) + tail
        }
        return (Tensor(shape: [steps, trials, observation + 4], values: narrow),
                Tensor(shape: [steps, trials, observation + 4 + addedArms], values: wide))
    }

    /// A 2-armed agent widened to 5 arms gives the same logits on its 2 arms, −20 on the
    /// others (dormant), for any input in which the new arms' one-hot entries are zero; live,
    /// the same on its 2 arms, and the fresh network's weights and the old biases' mean for the
    /// new ones. The value function's head is untouched. An agent of more hidden units than the run, or of another cell, is refused by name.
    @Test func aBanditAgentWidenedToMoreArmsActsAsBefore() throws {
        var config = tinyConfig(episodesPerTrial: 3)
        var small = try RL2(config: config, prototype: BernoulliBandit(arms: 2), seed: 3)
        _ = try small.iterate()
        let large = try RL2(config: config, prototype: BernoulliBandit(arms: 5), seed: 4)
        let warm = try RL2Algorithm().warmStarted(large.state, from: small.state, settings: config, prototype: BernoulliBandit(arms: 5))
        var liveConfig = config
        liveConfig.widenedActions = .live
        let live = try RL2Algorithm().warmStarted(large.state, from: small.state, settings: liveConfig, prototype: BernoulliBandit(arms: 5))
        let oldBiases = small.state.model.policyHead.bias.values
        #expect(warm.iteration == 0 && warm.environmentSteps == 0)
        let observation = BernoulliBandit(arms: 2).observationSpace.flatSize
        let (narrow, wide) = twoArmInputs(steps: 4, trials: 3, addedArms: 3)
        let before = logits(small.state.model, narrow)
        let after = logits(warm.model, wide)
        let afterLive = logits(live.model, wide)
        for row in 0..<12 {
            for a in 0..<2 { #expect(abs(before[row * 2 + a] - after[row * 5 + a]) < 1e-5) }
            for a in 2..<5 { #expect(after[row * 5 + a] == -20) }
            // Live: the old arms as before; the new ones read by the fresh network's weights.
            for a in 0..<2 { #expect(abs(before[row * 2 + a] - afterLive[row * 5 + a]) < 1e-5) }
        }
        let liveHead = live.model.policyHead, freshHead = large.state.model.policyHead
        #expect(liveHead.bias.values[2...].allSatisfy { abs($0 - (oldBiases[0] + oldBiases[1]) / 2) < 1e-6 })
        for r in 0..<liveHead.inputSize {
            for a in 2..<5 { #expect(liveHead.weight.values[r * 5 + a] == freshHead.weight.values[r * 5 + a]) }
        }
        let liveInputs = live.model.policyCell.inputWeight, freshInputs = large.state.model.policyCell.inputWeight
        let columns = liveInputs.shape[1], newRows = ((observation + 2) * columns)..<((observation + 5) * columns)
        #expect(Array(liveInputs.values[newRows]) == Array(freshInputs.values[newRows]))
        #expect(warm.model.valueHead.weight.values == small.state.model.valueHead.weight.values)
        config.hiddenSize = 4
        let other = try RL2(config: config, prototype: BernoulliBandit(arms: 5), seed: 4)
        for mode in RL2Config.WidenedActions.allCases {  // fewer units: refused by name, not a trap, whichever way the arms start
            var otherConfig = config
            otherConfig.widenedActions = mode
            #expect(throws: WarmStartError.self) {
                try RL2Algorithm().warmStarted(other.state, from: small.state, settings: otherConfig, prototype: BernoulliBandit(arms: 5))
            }
        }
        config.hiddenSize = 8
        config.cell = .lstm
        let lstm = try RL2(config: config, prototype: BernoulliBandit(arms: 5), seed: 4)
        #expect(throws: WarmStartError.self) { try RL2Algorithm().warmStarted(lstm.state, from: small.state, settings: liveConfig, prototype: BernoulliBandit(arms: 5)) }
    }

    /// An agent grown to more hidden units (GRU 8 → 12, LSTM 8 → 11), with more arms at the
    /// same time (dormant and live), gives the same logits on its old arms and the same values
    /// as before on any history; the added units carry the fresh network's weights, the old
    /// units and the heads read them with zero weights, and the grown agent trains on. A
    /// layer-normalised GRU (whose norms span all units) is refused by name.
    @Test func anAgentGrownToMoreUnitsActsAndValuesAsBefore() throws {
        for (cell, wide) in [(RecurrentCellChoice.Kind.gru, 12), (.lstm, 11)] {
            for mode in RL2Config.WidenedActions.allCases {
                var config = tinyConfig(episodesPerTrial: 3)
                config.cell = cell
                config.widenedActions = mode
                var small = try RL2(config: config, prototype: BernoulliBandit(arms: 2), seed: 3)
                _ = try small.iterate()
                config.hiddenSize = wide
                let large = try RL2(config: config, prototype: BernoulliBandit(arms: 4), seed: 4)
                let warm = try RL2Algorithm().warmStarted(large.state, from: small.state, settings: config, prototype: BernoulliBandit(arms: 4))
                #expect(warm.model.policyCell.outputSize == wide && warm.model.valueCell.outputSize == wide)
                let observation = BernoulliBandit(arms: 2).observationSpace.flatSize
                let (narrowInputs, wideInputs) = twoArmInputs(steps: 5, trials: 3, addedArms: 2)
                let before = logits(small.state.model, narrowInputs), after = logits(warm.model, wideInputs)
                let valuesBefore = small.state.model.values(narrowInputs, state: Tensor.zeros([3, small.state.model.valueCell.stateSize])).values
                let valuesAfter = warm.model.values(wideInputs, state: Tensor.zeros([3, warm.model.valueCell.stateSize])).values
                for row in 0..<15 {
                    for a in 0..<2 { #expect(abs(before[row * 2 + a] - after[row * 4 + a]) < 1e-5, "\(cell) \(mode) row \(row)") }
                    if mode == .dormant { for a in 2..<4 { #expect(after[row * 4 + a] == -20) } }
                    #expect(abs(valuesBefore[row] - valuesAfter[row]) < 1e-4, "\(cell) \(mode) value row \(row)")
                }
                // The added units: the fresh network's input weights in their columns; nothing from them into the old units.
                let gates = cell == .gru ? 3 : 4
                let grown = warm.model.policyCell.inputWeight.values, freshWeights = large.state.model.policyCell.inputWeight.values
                for r in 0..<(observation + 6) {
                    for g in 0..<gates { for j in 8..<wide { #expect(grown[r * gates * wide + g * wide + j] == freshWeights[r * gates * wide + g * wide + j]) } }
                }
                let head = warm.model.policyHead.weight.values  // the old arms read nothing from the added units
                #expect((8..<wide).allSatisfy { r in head[r * 4] == 0 && head[r * 4 + 1] == 0 })
                #expect(warm.model.valueHead.weight.values[8...].allSatisfy { $0 == 0 })
                var grownRun = try RL2(config: config, prototype: BernoulliBandit(arms: 4), state: warm)
                let metrics = try grownRun.iterate()
                #expect(metrics.first { $0.0 == "mean_trial_return" }?.1.isFinite == true)
                #expect(grownRun.state.model.policyHead.weight.values[(8 * 4)...].contains { $0 != 0 })
            }
        }
        var config = tinyConfig(episodesPerTrial: 3)
        config.cell = .layerNormGRU
        let small = try RL2(config: config, prototype: BernoulliBandit(arms: 2), seed: 3)
        config.hiddenSize = 12
        let large = try RL2(config: config, prototype: BernoulliBandit(arms: 2), seed: 4)
        #expect(throws: WarmStartError.self) { try RL2Algorithm().warmStarted(large.state, from: small.state, settings: config, prototype: BernoulliBandit(arms: 2)) }
    }

    /// With `taskAwareValue` the value function reads the task's features (a bandit's arm
    /// probabilities, as sampled) beside the inputs and the policy does not: other features
    /// change the values, never the actions or their probabilities. It fits the returns better
    /// than the same run without it (value loss over iterations 21–30: 0.60 against 1.01). An agent
    /// without it, warm-started into such a run, gives the same values as before (the features'
    /// weights start at zero); the run resumes; a family whose tasks have no features (the
    /// grid world) is refused.
    @Test func aTaskAwareValueFunctionReadsTheTaskAndThePolicyDoesNot() throws {
        let bandit = BernoulliBandit(arms: 3)
        var config = tinyConfig(episodesPerTrial: 10)
        config.trialsPerIteration = 100
        config.minibatchTrials = 50
        config.gamma = 1
        config.gaeLambda = 0.9
        config.learningRate = 3e-3
        config.epochs = 4
        config.trainOnExpectedRewards = true  // without the payments' noise the task's share of the returns' variance shows
        var aware = config
        aware.taskAwareValue = true
        var plain = try RL2(config: config, prototype: bandit, seed: 3), told = try RL2(config: aware, prototype: bandit, seed: 3)
        #expect(told.state.model.taskFeatureCount == 3 && told.state.model.valueCell.inputSize == told.state.model.policyCell.inputSize + 3)

        let inputs = [Float](repeating: 0, count: 2 * told.state.model.policyCell.inputSize)
        func act(_ features: [Float]) -> (actions: [Float], logProbs: [Float], values: [Float]) {
            var agent = RecurrentAgent(model: told.state.model, batchSize: 2)
            var rng = Xoshiro256(seed: 1)
            return agent.act(inputs: inputs, taskFeatures: features, taskStarted: [true, true], greedy: false, using: &rng)
        }
        let a = act([0.1, 0.5, 0.9, 0.2, 0.2, 0.2]), b = act([0.9, 0.1, 0.3, 0.7, 0.6, 0.0])
        #expect(a.actions == b.actions && a.logProbs == b.logProbs)
        #expect(a.values != b.values)
        var taskRNG = Xoshiro256(seed: 5)
        let tasks = bandit.sampleTasks(4, using: &taskRNG)
        let batch = try sampleTrials(model: told.state.model, prototype: bandit, trials: 4, episodesPerTrial: 10, seed: 2, fixedTasks: tasks)
        #expect(batch.taskFeatures == tasks.flatMap(\.features))

        var plainLoss = 0.0, toldLoss = 0.0
        for i in 0..<30 {
            let p = Dictionary(try plain.iterate(), uniquingKeysWith: { x, _ in x }), t = Dictionary(try told.iterate(), uniquingKeysWith: { x, _ in x })
            if i >= 20 { plainLoss += p["value_loss"]!; toldLoss += t["value_loss"]! }
        }
        #expect(toldLoss < 0.7 * plainLoss, "value loss over iterations 21–30: \(toldLoss / 10) told the task, \(plainLoss / 10) not")

        let warm = try RL2Algorithm().warmStarted(try RL2(config: aware, prototype: bandit, seed: 4).state, from: plain.state,
                                                  settings: aware, prototype: bandit)
        var before = RecurrentAgent(model: plain.state.model, batchSize: 2), after = RecurrentAgent(model: warm.model, batchSize: 2)
        var r1 = Xoshiro256(seed: 8), r2 = Xoshiro256(seed: 8)
        let v0 = before.act(inputs: inputs, taskStarted: [true, true], greedy: false, using: &r1).values
        let v1 = after.act(inputs: inputs, taskFeatures: [0.3, 0.8, 0.1, 0.5, 0.5, 0.9], taskStarted: [true, true], greedy: false, using: &r2).values
        #expect(zip(v0, v1).allSatisfy { abs($0 - $1) < 1e-5 })
        var resumed = try RL2(config: aware, prototype: bandit, state: told.state)
        #expect(try resumed.iterate().contains { $0.0 == "value_loss" && $0.1.isFinite })
        #expect(throws: RL2Error.self) { try RL2(config: aware, prototype: GridWorld(), seed: 1) }
        #expect(try RL2(config: aware, prototype: CartPolePhysics(horizon: 20), seed: 1).state.model.taskFeatureCount == 4)
    }

    /// An agent without the trial-progress input, started into a run with it, acts exactly
    /// as before whatever the progress reads (its weights start at zero); the run then
    /// samples with the progress input (the sampler reads the model's width) and trains.
    @Test func anAgentWithoutTrialProgressStartsIntoARunWithIt() throws {
        let config = tinyConfig(episodesPerTrial: 4)
        let bandit = BernoulliBandit(arms: 3)
        var plain = try RL2(config: config, prototype: bandit, seed: 3)
        _ = try plain.iterate()
        var timedConfig = config
        timedConfig.trialProgressInput = true
        let fresh = try RL2(config: timedConfig, prototype: bandit, seed: 4)
        let warm = try RL2Algorithm().warmStarted(fresh.state, from: plain.state, settings: timedConfig, prototype: bandit)
        var rng = Xoshiro256(seed: 9)
        var narrow: [Float] = [], wide: [Float] = []
        for _ in 0..<(4 * 3) {
            let row: [Float] = [0] + (0..<3).map { _ in rng.uniformDouble() < 0.3 ? 1 : 0 } + [Float(rng.uniformDouble()), 0]
            narrow += row
            wide += row + [Float(rng.uniformDouble())]
        }
        let before = logits(plain.state.model, Tensor(shape: [4, 3, 6], values: narrow))
        let after = logits(warm.model, Tensor(shape: [4, 3, 7], values: wide))
        #expect(zip(before, after).allSatisfy { abs($0 - $1) < 1e-5 })
        // Without the setting the wider fresh run is no fit for the narrower agent, and back.
        #expect(throws: WarmStartError.self) { try RL2Algorithm().warmStarted(fresh.state, from: plain.state, settings: config, prototype: bandit) }
        #expect(throws: WarmStartError.self) { try RL2Algorithm().warmStarted(plain.state, from: warm, settings: config, prototype: bandit) }
        var continued = try RL2(config: timedConfig, prototype: bandit, state: warm)
        let metrics = try continued.iterate()
        #expect(metrics.contains { $0.0 == "mean_trial_return" && $0.1.isFinite })
        let batch = try sampleTrials(model: warm.model, prototype: bandit, trials: 2, episodesPerTrial: 4, seed: 1)
        #expect(batch.inputSize == 7 && batch.inputs[(2 * 2 * 7) + 6] == 0.5, "step 2 of trial 0 reads progress 2/4")
    }

    /// A value scale multiplies the value head's output: on a resume or a warm start that
    /// changes it the head is rescaled and every value stays the same; an agent of scale 1 is
    /// written exactly as before the scale existed (no key), another one round-trips. On trials
    /// of 40 pulls, whose returns are near 30, the value function fits them far sooner in units
    /// of 40 than in units of 1 (value loss over iterations 6–10: 54 against 154). A scale of 0 is
    /// refused by name.
    @Test func aValueScaleKeepsTheValuesAndSpeedsTheirFit() throws {
        let bandit = BernoulliBandit(arms: 2)
        var config = tinyConfig(episodesPerTrial: 40)
        config.trialsPerIteration = 32
        config.minibatchTrials = 16
        config.gamma = 1
        config.gaeLambda = 1
        config.learningRate = 3e-3
        config.epochs = 2
        config.trainOnExpectedRewards = true
        var scaled = config
        scaled.valueScale = 40
        var plain = try RL2(config: config, prototype: bandit, seed: 3), told = try RL2(config: scaled, prototype: bandit, seed: 3)
        #expect(told.state.model.valueScale == 40)

        let inputs = [Float](repeating: 0.5, count: 2 * plain.state.model.policyCell.inputSize)
        func values(_ model: RecurrentActorCritic) -> [Float] {
            var agent = RecurrentAgent(model: model, batchSize: 2)
            var rng = Xoshiro256(seed: 1)
            return agent.act(inputs: inputs, taskStarted: [true, true], greedy: false, using: &rng).values
        }
        func close(_ a: [Float], _ b: [Float]) -> Bool { zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 * Swift.max(1, abs($0)) } }
        let encoder = JSONEncoder()
        #expect(!String(decoding: try encoder.encode(plain.state.model), as: UTF8.self).contains("valueScale"))

        let resumed = try RL2(config: scaled, prototype: bandit, state: plain.state)
        #expect(resumed.state.model.valueScale == 40 && close(values(plain.state.model), values(resumed.state.model)))
        let saved = try encoder.encode(resumed.state.model)
        let read = try JSONDecoder().decode(RecurrentActorCritic.self, from: saved)
        #expect(read.valueScale == 40 && values(read) == values(resumed.state.model))
        let warm = try RL2Algorithm().warmStarted(told.state, from: plain.state, settings: scaled, prototype: bandit)
        #expect(warm.model.valueScale == 40 && close(values(plain.state.model), values(warm.model)))

        var plainLoss = 0.0, toldLoss = 0.0
        for i in 0..<10 {
            let p = Dictionary(try plain.iterate(), uniquingKeysWith: { x, _ in x }), t = Dictionary(try told.iterate(), uniquingKeysWith: { x, _ in x })
            if i >= 5 { plainLoss += p["value_loss"]!; toldLoss += t["value_loss"]! }
        }
        #expect(toldLoss < 0.5 * plainLoss, "value loss over iterations 6–10: \(toldLoss / 5) in units of 40, \(plainLoss / 5) in units of 1")

        var zero = config
        zero.valueScale = 0
        #expect { try zero.validate() } throws: { ($0 as? ConfigError)?.field == "valueScale" }
    }
}

/// The PPO gradient (at the sampling policy) of one minibatch holding all of `batch`'s trials,
/// with GAE over `rewards` in place of the batch's own.
private func ppoGradient<E: MetaEnv>(_ rl2: RL2<E>, _ batch: TrialBatch, rewards: [Float], gamma: Float, lambda: Float) throws -> [Float] {
    let (advantages, returns) = GAE.compute(rewards: rewards, values: batch.values, ends: batch.ends,
                                            bootstrap: [Float](repeating: 0, count: batch.trials),
                                            steps: batch.steps, batch: batch.trials, gamma: gamma, lambda: lambda)
    let part = RL2<E>.Part(index: 0, batch: batch, advantages: advantages, returns: returns)
    let units = (0..<batch.trials).map { RL2<E>.Unit(part: 0, chunk: 0, trial: $0) }
    return try rl2.minibatchGradient(rl2.gather(part, units[...]), model: rl2.state.model,
                                     objective: PPOObjective()).gradient.flatParameters.values
}
