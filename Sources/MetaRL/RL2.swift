import Envs
import Foundation
import NN
import RL
import TensorCore

// RL² (Duan et al. 2016, "Fast Reinforcement Learning via Slow Reinforcement Learning").
//
// The "fast" learner is a recurrent policy whose input at every step is
//     [observation, previous action (one-hot), previous reward, done flag];
// its hidden state is carried across the episodes of a trial (one task) and reset only
// when a new trial starts. The "slow" learner is ordinary policy optimisation of the
// *trial* return: each trial is one long episode for PPO/TRPO, so GAE bootstraps across
// episode boundaries inside a trial and stops at the trial's end.
//
// One iteration: sample `trialsPerIteration` fresh trials in lockstep (sampleTrials), then
// update the policy and the value function on them (updateWithPPO / updateWithTRPO).

/// The settings of an RL² run, with the defaults of the public PyTorch RL² implementation
/// where it has one (GRU-256, 240 000 steps per update, 8 PPO epochs, clip 0.1,
/// entropy 0.01, γ = 0.99, λ = 0.3, Adam 2e-4).
public struct RL2Config: AlgorithmSettings {
    /// Outer optimiser.
    public enum Algorithm: String, NamedChoice { case ppo, trpo }

    public var episodesPerTrial: Int = 10
    public var cell: RecurrentCellChoice.Kind = .gru
    public var hiddenSize: Int = 256
    public var algorithm: Algorithm = .ppo
    /// Trials sampled per iteration; 0 means 240 000 steps' worth (at least 1).
    public var trialsPerIteration: Int = 0
    public var iterations: Int = 100
    public var gamma: Double = 0.99
    public var gaeLambda: Double = 0.3
    public var standardizeAdvantages: Bool = false
    /// Truncated-BPTT length: sequences of this many steps with the hidden state stored
    /// at their start; 0 trains on whole trials.
    public var maxSeqLen: Int = 0
    // PPO.
    public var learningRate: Double = 2e-4
    /// Decay the learning rate linearly to zero at the last iteration (as CleanRL's `anneal_lr`).
    public var annealLearningRate: Bool = false
    public var epochs: Int = 8
    /// Trials' worth of steps per PPO minibatch.
    public var minibatchTrials: Int = 60
    public var clip: Double = 0.1
    public var entropyCoefficient: Double = 0.01
    public var valueCoefficient: Double = 1
    public var maxGradientNorm: Double = 0.5
    // TRPO.
    public var trpo = TRPOSettings()
    /// Fraction of the batch's trials used for Fisher-vector products.
    public var fisherSubsample: Double = 0.2
    /// Adam epochs of the value function per TRPO iteration.
    public var valueEpochs: Int = 5
    /// Fixed parts the iteration's trials are split into: each part is sampled with its own
    /// random stream, minibatches take an equal share of every part, and the parts'
    /// gradients are summed in part order. MPI ranks each take a contiguous block of parts,
    /// so a run's numbers depend on `shards`, never on the process count. 1 keeps one batch.
    public var shards: Int = 1
    /// How the new actions of an agent widened by `--warm-start` from one of fewer actions
    /// (a bandit of fewer arms) begin.
    public var widenedActions: WidenedActions = .dormant
    /// Feed the agent one more input, the fraction of the trial's episodes done: a
    /// finite-horizon strategy depends on the pulls left, which a recurrent network
    /// otherwise has to count (and the value function to guess) over hundreds of steps.
    public var trialProgressInput: Bool = false
    /// Compute returns and advantages from each step's expected reward given its task, state
    /// and action (`StepOutcome.expectedReward`: a bandit arm's probability) instead of the
    /// sampled reward. The objective is the same (the sampled reward's noise is independent of
    /// everything before it, so the policy gradient stays unbiased) with less variance; the agent
    /// still observes the sampled reward. Only for families that report it (bandit, tabular-mdp).
    public var trainOnExpectedRewards: Bool = false
    /// Let the value function also read the task (`TaskFeatures`: a bandit's arm
    /// probabilities), an asymmetric critic: privileged information of the simulator, used
    /// only for the advantages in training (the policy never sees it). The value of a history
    /// then need not average over the tasks it could come from, which is most of the
    /// advantages' noise in long bandit trials; the policy gradient keeps its expectation
    /// (the baseline does not depend on the action, and E[V(h, task) | h] is V(h)).
    public var taskAwareValue: Bool = false
    /// The value function's output is this times its network's (`RecurrentActorCritic.valueScale`),
    /// so returns of this size are learned at the pace of returns near one: set it near the trial's
    /// return (a bandit trial's pulls) when trials are long. Changed on a resume or set on a
    /// `--warm-start`, the value head is rescaled so that the values it gives stay the same.
    public var valueScale: Double = 1

    /// How a widened agent's new actions begin: `dormant`, logits at −20, so the agent acts
    /// exactly as before (right when a trial cannot use more actions than the old agent had:
    /// n ≤ k pulls); `live`, the fresh network's weights for them and logits at the old
    /// actions' mean bias, so they are tried and told apart from the first iteration (needed
    /// when n > k: dormant actions get almost no gradient).
    public enum WidenedActions: String, NamedChoice { case dormant, live }

    public init() {}

    /// Throws a `ConfigError` naming the first field outside its allowed range.
    public func validate() throws(ConfigError) {
        try ConfigError.check("episodesPerTrial", episodesPerTrial, 1...100_000)
        try ConfigError.check("hiddenSize", hiddenSize, 1...4096)
        try ConfigError.check("trialsPerIteration", trialsPerIteration, 0...10_000_000, note: "0 means 240 000 steps' worth")
        try ConfigError.check("iterations", iterations, 1...100_000_000)
        try ConfigError.check("gamma", gamma, 0...1)
        try ConfigError.check("gaeLambda", gaeLambda, 0...1)
        try ConfigError.check("maxSeqLen", maxSeqLen, 0...1_000_000, note: "0 trains on whole trials")
        try ConfigError.check("learningRate", learningRate, open: 0..<1)
        try ConfigError.check("epochs", epochs, 1...1000)
        try ConfigError.check("minibatchTrials", minibatchTrials, 1...10_000_000)
        try ConfigError.check("clip", clip, open: 0..<1)
        try ConfigError.check("entropyCoefficient", entropyCoefficient, 0...100)
        try ConfigError.check("valueCoefficient", valueCoefficient, 0...1000)
        try ConfigError.check("maxGradientNorm", maxGradientNorm, open: 0..<1e9)
        try trpo.validate(prefix: "trpo.")
        try ConfigError.check("fisherSubsample", fisherSubsample, open: 0..<1.000_001)
        try ConfigError.check("valueEpochs", valueEpochs, 0...1000)
        try ConfigError.check("valueScale", valueScale, open: 0..<1e9)
        try ConfigError.check("shards", shards, 1...4096, note: "at most the trials per iteration")
    }

    /// Steps in one trial at most.
    public func trialLength(maxEpisodeSteps: Int) -> Int { episodesPerTrial * maxEpisodeSteps }

    /// Command-line names and help (every other key is a flag by its own name).
    public static let flags: [SettingFlag] = [
        SettingFlag("episodesPerTrial", help: "episodes per trial (pulls, for bandits)"),
        SettingFlag("algorithm", flag: "--algo", help: "outer optimiser: ppo or trpo"),
        SettingFlag("valueCoefficient", help: "PPO: weight of the value loss"),
        SettingFlag("maxGradientNorm", help: "PPO: the gradient's norm is clipped to this"),
        SettingFlag("fisherSubsample", help: "TRPO: fraction of the trials used for Fisher-vector products"),
        SettingFlag("valueEpochs", help: "TRPO: Adam epochs of the value function per iteration"),
        SettingFlag("cell", help: "recurrent cell: gru, ln-gru (layer-normalised, ReLU candidate) or lstm"),
        SettingFlag("hiddenSize", flag: "--hidden", help: "hidden units of each recurrent network"),
        SettingFlag("trialsPerIteration", help: "trials per iteration (0: 240 000 steps' worth)"),
        SettingFlag("iterations", help: "iterations to train for (with --resume: the new total)"),
        SettingFlag("learningRate", help: "Adam learning rate"),
        SettingFlag("annealLearningRate", flag: "--anneal-lr", help: "decay the learning rate linearly to zero over the iterations"),
        SettingFlag("epochs", help: "PPO epochs per iteration"),
        SettingFlag("minibatchTrials", help: "trials' worth of steps per PPO minibatch"),
        SettingFlag("maxSeqLen", help: "truncated-BPTT length in steps (0: whole trials)"),
        SettingFlag("entropyCoefficient", flag: "--entropy", help: "entropy bonus coefficient"),
        SettingFlag("gamma", help: "discount γ"),
        SettingFlag("gaeLambda", flag: "--lambda", help: "GAE λ"),
        SettingFlag("clip", help: "PPO clip range ε"),
        SettingFlag("standardizeAdvantages", help: "standardise advantages over each iteration's batch"),
        SettingFlag("widenedActions", help: "with --warm-start from an agent of fewer actions: dormant (new actions' logits −20, acts as before; for n ≤ k) or live (the fresh network's weights, logits at the old actions' mean bias: tried at once; for n > k)"),
        SettingFlag("trialProgressInput", flag: "--trial-progress", help: "one more input: the fraction of the trial's episodes done (with --warm-start from an agent without it, its weights start at zero)"),
        SettingFlag("trainOnExpectedRewards", flag: "--expected-rewards", help: "returns from each step's expected reward (a bandit arm's probability) instead of the sampled one: the same objective, less noise; the agent still sees the sampled reward (bandit, tabular-mdp)"),
        SettingFlag("taskAwareValue", flag: "--task-aware-value", help: "the value function also reads the task (a bandit's arm probabilities): privileged, training only; the policy never sees it (families whose tasks have features: bandit, tabular-mdp, point-nav, pendulum-mass, cartpole-physics; with --warm-start from an agent without it, its weights start at zero)"),
        SettingFlag("valueScale", help: "the value function outputs this times its network's, so returns of this size are learned at the pace of returns near one (near the trial's return, e.g. the pulls of a long bandit trial; a change on --resume or --warm-start keeps the values)"),
        SettingFlag("shards", help: "fixed parts of each iteration's trials, each with its own random stream (mpirun -np N needs N ≤ shards; results depend on shards, not on N)"),
    ] + TRPOSettings.flags(prefix: "trpo.")

    /// The quickstart's settings (`metarl quickstart`): bandits k = 5, n = 10 with a small
    /// network, so that training takes a minute or two on two cores. The trial return is
    /// undiscounted (γ = 1, λ = 0.9: the finite-horizon objective the Bayes-optimal strategy
    /// maximises) and the learning rate decays linearly from 2e-3 to zero.
    public static var quickstart: RL2Config {
        var c = RL2Config()
        c.episodesPerTrial = 10
        c.hiddenSize = 64
        c.trialsPerIteration = 1000
        c.learningRate = 2e-3
        c.epochs = 4
        c.entropyCoefficient = 0.001
        c.gamma = 1
        c.gaeLambda = 0.9
        c.annealLearningRate = true
        c.iterations = 600
        return c
    }

    /// The trials per iteration after resolving 0 to 240 000 steps' worth.
    public func resolvedTrials(maxEpisodeSteps: Int) -> Int {
        trialsPerIteration > 0 ? trialsPerIteration : Swift.max(1, 240_000 / trialLength(maxEpisodeSteps: maxEpisodeSteps))
    }
}

/// The recurrent policy and value function: two separate recurrent networks over the same
/// inputs, a linear head on each. The policy's head gives a softmax's logits for discrete
/// actions, or for box actions a diagonal Gaussian's mean, with a state-independent learned
/// log standard deviation (the Gaussian policy of Duan et al. 2016's continuous tasks).
public struct RecurrentActorCritic: ParameterCollection, Codable, Sendable {
    public var policyCell: RecurrentCellChoice
    public var policyHead: Linear
    /// [actionSize] for a Gaussian policy; empty for a categorical one.
    public var logStd: Tensor
    public let discrete: Bool
    public var valueCell: RecurrentCellChoice
    public var valueHead: Linear
    /// The value is this times `valueHead`'s output (`RL2Config.valueScale`; not a parameter).
    public internal(set) var valueScale: Float = 1

    /// An agent for `actionSpace`: a categorical policy over a discrete space, a Gaussian
    /// one (standard deviation e^initialLogStd at first) over a box.
    /// `taskFeatureCount` more inputs of the value function alone: the task's `TaskFeatures`.
    public init(inputSize: Int, actionSpace: Space, cell: RecurrentCellChoice.Kind, hiddenSize: Int,
                initialLogStd: Double = 0, taskFeatureCount: Int = 0, using rng: inout Xoshiro256) {
        let outputs: Int
        switch actionSpace {
        case .discrete(let n): discrete = true; outputs = n
        case .box: discrete = false; outputs = actionSpace.flatSize
        }
        policyCell = RecurrentCellChoice(cell, inputSize: inputSize, hiddenSize: hiddenSize, using: &rng)
        policyHead = Linear(inputSize: hiddenSize, outputSize: outputs, scale: 0.01, using: &rng)
        logStd = discrete ? Tensor.zeros([0]) : Tensor(repeating: initialLogStd, shape: [outputs], dtype: .float32)
        valueCell = RecurrentCellChoice(cell, inputSize: inputSize + taskFeatureCount, hiddenSize: hiddenSize, using: &rng)
        valueHead = Linear(inputSize: hiddenSize, outputSize: 1, using: &rng)
    }

    /// Inputs of the value function beyond the policy's: the task's features (0 unless task-aware).
    public var taskFeatureCount: Int { valueCell.inputSize - policyCell.inputSize }

    /// A categorical agent over `actionCount` actions.
    public init(inputSize: Int, actionCount: Int, cell: RecurrentCellChoice.Kind, hiddenSize: Int, using rng: inout Xoshiro256) {
        self.init(inputSize: inputSize, actionSpace: .discrete(actionCount), cell: cell, hiddenSize: hiddenSize, using: &rng)
    }

    /// The policy's half (what TRPO's trust region is over).
    public var policy: RecurrentPolicy {
        get { RecurrentPolicy(cell: policyCell, head: policyHead, logStd: logStd, discrete: discrete) }
        set { policyCell = newValue.cell; policyHead = newValue.head; logStd = newValue.logStd }
    }

    /// Floats per action: 1 (an index) for a categorical policy, the box's size for a Gaussian.
    public var actionWidth: Int { discrete ? 1 : policyHead.outputSize }
    public var stateSize: Int { policyCell.stateSize }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        withoutActuallyEscaping(body) { body in
            policyCell.visitParameters { name, t in body("policy.cell.\(name())", &t) }
            policyHead.visitParameters { name, t in body("policy.head.\(name())", &t) }
            if !discrete { body("policy.logStd", &logStd) }
            valueCell.visitParameters { name, t in body("value.cell.\(name())", &t) }
            valueHead.visitParameters { name, t in body("value.head.\(name())", &t) }
        }
    }

    /// The action distributions [T, B] and values [T, B] over sequences [T, B, input] from the
    /// given states (a task-aware value function reads `valueInputs`, the inputs and the task's features).
    public func unroll(_ inputs: Tensor, valueInputs: Tensor? = nil, policyState: Tensor, valueState: Tensor)
        -> (policy: MLPPolicy.ActionDistribution, values: Tensor)
    {
        (policy.distribution(inputs, state: policyState), values(valueInputs ?? inputs, state: valueState))
    }

    enum CodingKeys: String, CodingKey { case policyCell, policyHead, logStd, valueCell, valueHead, valueScale }

    /// Reads a saved agent; one saved before Gaussian heads existed is categorical.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        policyCell = try c.decode(RecurrentCellChoice.self, forKey: .policyCell)
        policyHead = try c.decode(Linear.self, forKey: .policyHead)
        let saved = try c.decodeIfPresent(Tensor.self, forKey: .logStd)
        discrete = saved == nil
        logStd = saved ?? Tensor.zeros([0])
        valueCell = try c.decode(RecurrentCellChoice.self, forKey: .valueCell)
        valueHead = try c.decode(Linear.self, forKey: .valueHead)
        valueScale = try c.decodeIfPresent(Float.self, forKey: .valueScale) ?? 1
    }

    /// Writes the agent; a categorical one exactly as before Gaussian heads existed, and one
    /// of value scale 1 as before the scale existed.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(policyCell, forKey: .policyCell)
        try c.encode(policyHead, forKey: .policyHead)
        if !discrete { try c.encode(logStd, forKey: .logStd) }
        try c.encode(valueCell, forKey: .valueCell)
        try c.encode(valueHead, forKey: .valueHead)
        if valueScale != 1 { try c.encode(valueScale, forKey: .valueScale) }
    }

    /// Values from the value network's outputs [N, hidden]: the head's, times `valueScale`.
    public func value(ofHidden v: Tensor) -> Tensor {
        valueScale == 1 ? valueHead(v) : valueHead(v) * Double(valueScale)
    }

    /// The same values in units of `scale`: the head's weights and bias are multiplied by
    /// old scale / `scale`, so every value it gives is unchanged.
    public mutating func rescaleValue(to scale: Float) {
        guard scale != valueScale else { return }
        let ratio = Double(valueScale / scale)
        valueHead = Linear(weight: valueHead.weight * ratio, bias: valueHead.bias * ratio)
        valueScale = scale
    }

    /// Values [T, B] over sequences [T, B, value input] from `state`.
    public func values(_ inputs: Tensor, state: Tensor) -> Tensor {
        let steps = inputs.shape[0], batch = inputs.shape[1]
        let v = valueCell.unroll(inputs, initialState: state).outputs
        return value(ofHidden: v.reshaped([steps * batch, v.shape[2]])).reshaped([steps, batch])
    }
}

/// A recurrent network with a linear head (softmax logits, or a Gaussian's mean beside a
/// learned log standard deviation): the policy half of the actor-critic.
public struct RecurrentPolicy: ParameterCollection, Sendable {
    public var cell: RecurrentCellChoice
    public var head: Linear
    /// [actionSize] for a Gaussian policy; empty for a categorical one.
    public var logStd: Tensor
    public let discrete: Bool

    /// The head's outputs [T, B, A] over sequences [T, B, input] from `state`.
    public func headOutputs(_ inputs: Tensor, state: Tensor) -> Tensor {
        let steps = inputs.shape[0], batch = inputs.shape[1]
        let y = cell.unroll(inputs, initialState: state).outputs
        return head(y.reshaped([steps * batch, y.shape[2]])).reshaped([steps, batch, head.outputSize])
    }

    /// π(· | history) at every step [T, B] of sequences [T, B, input] from `state`.
    public func distribution(_ inputs: Tensor, state: Tensor) -> MLPPolicy.ActionDistribution {
        Self.distribution(headOutputs: headOutputs(inputs, state: state), logStd: logStd, discrete: discrete)
    }

    /// The distribution a head's outputs stand for.
    static func distribution(headOutputs: Tensor, logStd: Tensor, discrete: Bool) -> MLPPolicy.ActionDistribution {
        discrete ? .categorical(Categorical(logits: headOutputs)) : .gaussian(DiagonalGaussian(mean: headOutputs, logStd: logStd))
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        withoutActuallyEscaping(body) { body in
            cell.visitParameters { name, t in body("cell.\(name())", &t) }
            head.visitParameters { name, t in body("head.\(name())", &t) }
        }
        if !discrete { body("logStd", &logStd) }
    }
}

/// The RL² agent acting in a `TrialEnv`: a batch of recurrent states that persist across
/// the episodes of a trial and are zeroed for exactly the copies whose trial (task) starts.
public struct RecurrentAgent {
    public var model: RecurrentActorCritic
    public private(set) var policyState: Tensor
    public private(set) var valueState: Tensor

    public init(model: RecurrentActorCritic, batchSize: Int) {
        self.model = model
        policyState = model.policyCell.zeroState(batchSize: batchSize)
        valueState = model.valueCell.zeroState(batchSize: batchSize)
    }

    /// One step for every copy: reset the memory where `taskStarted`, read the inputs
    /// [B × input], and return the actions [B × actionWidth], their log-probabilities and the
    /// values (a task-aware value function also reads `taskFeatures`, [B × its feature count]).
    /// The policy and the value function step side by side on `threads` threads (at most two);
    /// the actions are drawn afterwards on the caller's, so they do not depend on it.
    public mutating func act(inputs: [Float], taskFeatures: [Float] = [], taskStarted: [Bool], greedy: Bool, threads: Int = 1,
                             using rng: inout Xoshiro256)
        -> (actions: [Float], logProbs: [Float], values: [Float])
    {
        let b = taskStarted.count
        if taskStarted.contains(true) {
            let keep = Tensor(shape: [b, 1], values: taskStarted.map { $0 ? 0 : 1 })
            policyState = policyState * keep
            valueState = valueState * keep
        }
        let width = inputs.count / b, f = model.taskFeatureCount
        let x = Tensor(shape: [b, width], values: inputs)
        precondition(taskFeatures.count == b * f, "RecurrentAgent.act: \(taskFeatures.count) task features for \(b) × \(f)")
        let xv = f == 0 ? x : Tensor.concat([x, Tensor(shape: [b, f], values: taskFeatures)], axis: 1)
        let (model, policyState, valueState) = (self.model, self.policyState, self.valueState)
        let steps = concurrentMap(2, threads: threads) { k -> (output: Tensor, state: Tensor) in
            if k == 0 {
                let (p, next) = model.policyCell(x, state: policyState)
                return (model.policyHead(p), next)
            }
            let (v, next) = model.valueCell(xv, state: valueState)
            return (model.value(ofHidden: v), next)
        }
        self.policyState = steps[0].state
        self.valueState = steps[1].state
        let distribution = RecurrentPolicy.distribution(headOutputs: steps[0].output, logStd: model.logStd.detached,
                                                        discrete: model.discrete)
        let actions = distribution.sample(greedy: greedy, using: &rng)
        let logProbs = distribution.logProb(Tensor(shape: [b, model.actionWidth], values: actions)).values
        return (actions, logProbs, steps[1].output.values)
    }
}

/// A batch of trials sampled in lockstep, time-major [T, B]: the agent's inputs, its
/// actions and their log-probabilities and values, rewards, and masks.
public struct TrialBatch: Sendable {
    public var steps: Int
    public var trials: Int
    public var inputSize: Int
    public var inputs: [Float]
    /// [T × B × actionWidth]: an index as a Float for discrete actions, the vector for box ones.
    public var actions: [Float]
    public var actionWidth: Int
    public var logProbs: [Float]
    public var values: [Float]
    public var rewards: [Float]
    /// [T × B]: each step's expected reward (`StepOutcome.expectedReward`; NaN where the family does not know it).
    public var expectedRewards: [Float]
    /// 1 while the trial is running (0 on padding after a trial that ended early).
    public var valid: [Float]
    /// The step ended the trial (or is padding): nothing is bootstrapped past it.
    public var ends: [Bool]
    /// Per trial, per episode index: the episode's return.
    public var episodeReturns: [[Double]]
    /// Per trial, per episode index: the episode's success (`EpisodeSuccess`; NaN where the family reports none).
    public var episodeSuccesses: [[Float]]
    /// [B × taskFeatureCount]: each trial's task features, for a task-aware value function (else empty).
    public var taskFeatures: [Float]
    /// Features per trial in `taskFeatures` (0 without a task-aware value function).
    public var taskFeatureCount: Int { trials == 0 ? 0 : taskFeatures.count / trials }
    /// Recurrent states at the start of every `chunkLength`-step chunk, [chunk][B × stateSize].
    public var policyStates: [[Float]]
    public var valueStates: [[Float]]
    public var chunkLength: Int

    /// Environment steps actually taken (padding excluded).
    public var environmentSteps: Int { Int(valid.reduce(0, +)) }
    /// Per trial, how many different discrete actions it took (padding excluded): for a
    /// bandit, the arms it tried. Meaningful for discrete action spaces only.
    public var distinctActions: [Int] {
        (0..<trials).map { b in Set((0..<steps).lazy.filter { self.valid[$0 * self.trials + b] > 0 }
            .map { self.actions[($0 * self.trials + b) * self.actionWidth] }).count }
    }
    public var trialReturns: [Double] { episodeReturns.map { $0.reduce(0, +) } }
}

/// Samples `trials` trials of `episodesPerTrial` episodes of `prototype`'s task family,
/// all starting together on fresh tasks drawn from `seed`, acting by sampling from the
/// policy (`greedy` takes the most probable action instead).
public func sampleTrials<E: MetaEnv>(
    model: RecurrentActorCritic, prototype: E, trials: Int, episodesPerTrial: Int,
    chunkLength: Int = 0, seed: UInt64, greedy: Bool = false, fixedTasks: [E.Task]? = nil, threads: Int = 1
) throws -> TrialBatch {
    // The model says whether it reads the trial's progress (its input is one wider).
    let progress = model.policyCell.inputSize
        == TrialEnv<E>.inputSize(observationSpace: prototype.observationSpace, actionSpace: prototype.actionSpace, trialProgress: true)
    var env = TrialEnv(prototype, count: trials, episodesPerTrial: episodesPerTrial, seed: seed, fixedTasks: fixedTasks,
                       trialProgress: progress)
    var rng = Xoshiro256(seed: seed ^ 0x9E37_79B9_7F4A_7C15)
    let steps = episodesPerTrial * prototype.maxEpisodeSteps
    let chunk = TrialBatch.chunkLength(steps: steps, maxSeqLen: chunkLength)
    let width = env.inputSize, b = trials, actionWidth = model.actionWidth
    let featureCount = model.taskFeatureCount
    var features = [Float](repeating: 0, count: trials * featureCount)
    var batch = TrialBatch(
        steps: steps, trials: b, inputSize: width,
        inputs: [Float](repeating: 0, count: steps * b * width),
        actions: [Float](repeating: 0, count: steps * b * actionWidth), actionWidth: actionWidth,
        logProbs: [Float](repeating: 0, count: steps * b),
        values: [Float](repeating: 0, count: steps * b), rewards: [Float](repeating: 0, count: steps * b),
        expectedRewards: [Float](repeating: 0, count: steps * b), valid: [Float](repeating: 0, count: steps * b), ends: [Bool](repeating: true, count: steps * b),
        episodeReturns: [[Double]](repeating: [Double](repeating: 0, count: episodesPerTrial), count: b),
        episodeSuccesses: [[Float]](repeating: [Float](repeating: .nan, count: episodesPerTrial), count: b),
        taskFeatures: [], policyStates: [], valueStates: [], chunkLength: chunk)
    // With a family that steps while its caller works (the Python bridge), the trials go in two
    // halves: the agent acts on one half while the other half steps, so the worker processes
    // always have a step to work on. Each half has its own recurrent states, and the halves draw
    // their actions one after the other, so a run's results depend on whether its family steps
    // that way, never on timing or on the number of workers.
    let pipelined = E.stepsWhileCallerWorks && b >= 2
    let parts = pipelined ? [0..<(b / 2), (b / 2)..<b] : [0..<b]
    var agents = parts.map { RecurrentAgent(model: model, batchSize: $0.count) }
    var running = [Bool](repeating: true, count: b)
    // Per part: what it acted with at the step under way (empty once the part has stopped).
    var acted = [(actions: [Float], logProbs: [Float], values: [Float], episodeIndex: [Int])](
        repeating: ([], [], [], []), count: parts.count)
    var underWay = [Bool](repeating: false, count: parts.count)
    // The recurrent states at the start of a chunk, gathered part by part.
    var chunkStates: (policy: [Float], value: [Float])?
    let stateSize = model.stateSize
    func act(_ p: Int, at t: Int) throws {
        // Read once: each access to a generic env's property from unspecialised code costs a
        // type-metadata lookup, and this loop would otherwise make one per element.
        let part = parts[p], inputs = env.inputs, started = env.taskStarted
        if t % chunk == 0 {
            // The state the next step starts from (zero where a trial starts now).
            var states = chunkStates ?? ([Float](repeating: 0, count: b * stateSize), [Float](repeating: 0, count: b * stateSize))
            chunkStates = nil  // `states` is then the arrays' only owner: written in place
            let ps = agents[p].policyState.values, vs = agents[p].valueState.values
            for i in part where !started[i] {
                let local = (i - part.lowerBound) * stateSize
                for s in 0..<stateSize {
                    states.policy[i * stateSize + s] = ps[local + s]
                    states.value[i * stateSize + s] = vs[local + s]
                }
            }
            chunkStates = states
        }
        let base = t * b * width
        for i in (part.lowerBound * width)..<(part.upperBound * width) { batch.inputs[base + i] = inputs[i] }
        if featureCount > 0 {
            // The value function is told each trial's task (the policy is not).
            for i in part where started[i] {
                guard let task = env.task(at: i) as? any TaskFeatures, case let f = task.features, f.count == featureCount else {
                    throw RL2Error.unsupported("a task-aware value function needs tasks with \(featureCount) features (TaskFeatures); \(E.Task.self) has none or another count")
                }
                for j in 0..<featureCount { features[i * featureCount + j] = f[j] }
            }
        }
        let whole = part.count == b
        let (actions, logProbs, values) = agents[p].act(
            inputs: whole ? inputs : Array(inputs[(part.lowerBound * width)..<(part.upperBound * width)]),
            taskFeatures: whole ? features : Array(features[(part.lowerBound * featureCount)..<(part.upperBound * featureCount)]),
            taskStarted: whole ? started : Array(started[part]),
            greedy: greedy, threads: threads, using: &rng)
        acted[p] = (actions, logProbs, values, Array(env.episodeIndex[part]))
        if pipelined {
            try actions.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(EnvError) in try env.startStep(a, trials: part) }
            underWay[p] = true
        } else {
            try actions.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(EnvError) in try env.step(a) }
        }
    }
    /// Appends the chunk's states once every part that acts has written its rows.
    func closeChunk() {
        guard let states = chunkStates else { return }
        batch.policyStates.append(states.policy)
        batch.valueStates.append(states.value)
        chunkStates = nil
    }
    defer {  // a failed rollout still collects the steps it started (the workers' replies are read)
        for p in parts.indices where underWay[p] { try? env.finishStep(trials: parts[p]) }
    }
    for p in parts.indices { try act(p, at: 0) }
    closeChunk()
    if featureCount > 0 { batch.taskFeatures = features }
    for t in 0..<steps {
        for (p, part) in parts.enumerated() where !acted[p].actions.isEmpty {
            if underWay[p] {
                underWay[p] = false
                try env.finishStep(trials: part)
            }
            let (actions, logProbs, values, episodeIndex) = acted[p]
            let rewards = env.rewards, successes = env.successes, expectedRewards = env.expectedRewards, trialEnded = env.trialEnded
            for i in part where running[i] {
                let k = t * b + i, local = i - part.lowerBound
                for j in 0..<actionWidth { batch.actions[k * actionWidth + j] = actions[local * actionWidth + j] }
                batch.logProbs[k] = logProbs[local]
                batch.values[k] = values[local]
                batch.rewards[k] = rewards[i]
                batch.expectedRewards[k] = expectedRewards[i]
                batch.valid[k] = 1
                batch.ends[k] = trialEnded[i]
                batch.episodeReturns[i][episodeIndex[local]] += Double(rewards[i])
                EpisodeSuccess.accumulate(&batch.episodeSuccesses[i][episodeIndex[local]], step: successes[i])
                if trialEnded[i] { running[i] = false }
            }
            if t + 1 < steps, running[part].contains(true) { try act(p, at: t + 1) } else { acted[p] = ([], [], [], []) }
        }
        closeChunk()
        // Every trial has ended (episodes that terminate early): the rest would be padding.
        if !running.contains(true) {
            batch.trim(toSteps: t + 1)
            break
        }
    }
    return batch
}

extension TrialBatch {
    /// The length of the chunks a trial of `steps` steps is cut into for truncated
    /// backpropagation through time: `maxSeqLen`, or the whole trial when it is 0.
    public static func chunkLength(steps: Int, maxSeqLen: Int) -> Int {
        maxSeqLen > 0 ? Swift.min(maxSeqLen, steps) : steps
    }

    /// Drops the steps from `used` on (padding once every trial has ended); the chunks
    /// keep their length unless the whole batch is now shorter than one.
    mutating func trim(toSteps used: Int) {
        guard used < steps else { return }
        let b = trials
        inputs.removeSubrange((used * b * inputSize)...)
        actions.removeSubrange((used * b * actionWidth)...)
        for keyPath in [\TrialBatch.logProbs, \.values, \.rewards, \.expectedRewards, \.valid] { self[keyPath: keyPath].removeSubrange((used * b)...) }
        ends.removeSubrange((used * b)...)
        steps = used
        chunkLength = Swift.min(chunkLength, used)
    }
}

/// Everything an RL² run needs to continue exactly: the networks, the optimiser, the
/// random stream that seeds each iteration's trials, and the counters.
public struct RL2State: Codable, Sendable {
    public var model: RecurrentActorCritic
    public var optimizer: Adam
    public var rng: Xoshiro256
    public var iteration: Int
    public var environmentSteps: Int

    /// Throws unless this state has `reference`'s parameters (names and shapes), optimiser
    /// moments of the same shapes (or none yet) and non-negative counters.
    public func checkCompatible(with reference: RL2State) throws(RL2Error) {
        let mine = model.namedParameters, theirs = reference.model.namedParameters
        guard mine.map(\.name) == theirs.map(\.name) else {
            throw .incompatibleState("parameters \(mine.map(\.name)) where the config needs \(theirs.map(\.name))")
        }
        for (a, b) in zip(mine, theirs) where a.value.shape != b.value.shape {
            throw .incompatibleState("parameter \(a.name) has shape \(a.value.shape) where the config needs \(b.value.shape)")
        }
        let moments = optimizer.momentShapes
        guard moments.isEmpty || moments == theirs.map({ [$0.value.shape, $0.value.shape] }) else {
            throw .incompatibleState("optimiser moments do not match the parameters")
        }
        guard iteration >= 0, environmentSteps >= 0 else {
            throw .incompatibleState("negative counters (iteration \(iteration), steps \(environmentSteps))")
        }
    }
}

/// RL² on a task family: `iterate()` samples trials and updates the policy once.
///
/// The iteration's trials are split into `config.shards` fixed parts (one, unless a run asks
/// for more). Each part is sampled with its own random stream and holds its own trials; every
/// loss is a sum over parts, computed part by part and added in part order. Under MPI each
/// rank samples and differentiates a contiguous block of parts and the ranks gather the
/// parts' results, so every rank takes the same step, whatever the number of processes.
public struct RL2<E: MetaEnv>: IterativeAlgorithm, ProcessGroupMember {
    public let config: RL2Config
    public let prototype: E
    public var state: RL2State
    /// Threads for the PPO update: the policy's and the value function's gradients are
    /// computed side by side on two (results do not depend on it).
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// The processes the iteration's parts are split over (results do not depend on it).
    public var group: any ProcessGroup = SingleProcess()

    public var iteration: Int { state.iteration }
    public var environmentSteps: Int { state.environmentSteps }
    public var headlineMetric: String { RL2Algorithm().headlineMetric(config) }

    /// A fresh run; the seed fixes the initial networks and every trial drawn.
    public init(config: RL2Config, prototype: E, seed: UInt64) throws {
        let trials = config.resolvedTrials(maxEpisodeSteps: prototype.maxEpisodeSteps)
        guard config.shards <= trials else {
            throw RL2Error.unsupported("shards (\(config.shards)) must be at most the trials per iteration (\(trials))")
        }
        self.config = config
        self.prototype = prototype
        var rng = Xoshiro256(seed: seed)
        let inputSize = TrialEnv<E>.inputSize(observationSpace: prototype.observationSpace, actionSpace: prototype.actionSpace,
                                              trialProgress: config.trialProgressInput)
        var model = RecurrentActorCritic(inputSize: inputSize,
                                         actionSpace: prototype.actionSpace, cell: config.cell,
                                         hiddenSize: config.hiddenSize, taskFeatureCount: try Self.taskFeatureCount(config, prototype),
                                         using: &rng)
        model.valueScale = Float(config.valueScale)
        state = RL2State(model: model, optimizer: Adam(learningRate: config.learningRate, epsilon: 1e-5),
                         rng: rng, iteration: 0, environmentSteps: 0)
    }

    /// The value function's task inputs: the prototype's task's feature count when `taskAwareValue`.
    static func taskFeatureCount(_ config: RL2Config, _ prototype: E) throws(RL2Error) -> Int {
        guard config.taskAwareValue else { return 0 }
        guard let count = (prototype.task as? any TaskFeatures)?.features.count, count > 0 else {
            throw .unsupported("taskAwareValue: this task family's tasks have no features to read (TaskFeatures: bandit, tabular-mdp, point-nav, pendulum-mass and cartpole-physics have)")
        }
        return count
    }

    /// Continues from a saved state, after checking that it fits `config` and `prototype`
    /// (every parameter and optimiser moment of the right name and shape).
    /// This run with its sampling and updates on `threads` threads.
    public func using(threads: Int) -> RL2 {
        var copy = self
        copy.threads = threads
        return copy
    }

    public init(config: RL2Config, prototype: E, state: RL2State) throws {
        let fresh = try RL2(config: config, prototype: prototype, seed: 0)
        try state.checkCompatible(with: fresh.state)
        self.config = config
        self.prototype = prototype
        self.state = state
        self.state.model.rescaleValue(to: Float(config.valueScale))
    }

    // MARK: Parts of the iteration's trials

    /// One part of an iteration: its trials, sampled on this rank, with their advantages and returns.
    struct Part {
        var index: Int
        var batch: TrialBatch
        var advantages: [Float]
        var returns: [Float]
    }

    /// The trials (indices into the iteration's) of part `part` of `parts`.
    static func trials(ofPart part: Int, parts: Int, trials: Int) -> Range<Int> {
        partRange(part, of: trials, parts: parts)
    }

    /// The seed of part `part`'s trials: the iteration's own seed when there is one part.
    static func seed(ofPart part: Int, parts: Int, iterationSeed: UInt64) -> UInt64 {
        guard parts > 1 else { return iterationSeed }
        var rng = Xoshiro256(seed: iterationSeed &+ UInt64(part) &* 0x9E37_79B9_7F4A_7C15)
        return rng.next()
    }

    /// `body` on this rank's parts, each part's result then on every rank, in part order.
    func acrossParts<T: ProcessExchangeable>(_ parts: [Part], _ body: (Part) throws -> T) throws -> [T] {
        let own = group.ownShare(of: config.shards)
        return try distributedMap(config.shards, group: group, threads: 1) { try body(parts[$0 - own.lowerBound]) }
    }

    /// The mean over every part of what `body` measures on a part, each part measured on the
    /// rank that holds it (`distributedWeightedMean(_:group:threads:terms:parameters:_:)`).
    func meanAcrossParts(_ parts: [Part], terms: Int, parameters: Int,
                         _ body: (Part) throws -> WeightedPart) throws -> (terms: [Double], gradient: [Float]) {
        let own = group.ownShare(of: config.shards)
        return try distributedWeightedMean(config.shards, group: group, terms: terms, parameters: parameters) {
            try body(parts[$0 - own.lowerBound])
        }
    }

    /// What the metrics need of a part's trials.
    struct PartSummary: ProcessExchangeable {
        var trialReturns: [Double]
        var episodeReturns: [Double]
        var episodeSuccesses: [Float]
        var environmentSteps: Int

        init(_ batch: TrialBatch) {
            trialReturns = batch.trialReturns
            episodeReturns = batch.episodeReturns.flatMap { $0 }
            episodeSuccesses = batch.episodeSuccesses.flatMap { $0 }
            environmentSteps = batch.environmentSteps
        }
        func append(to bytes: inout [UInt8]) {
            trialReturns.append(to: &bytes)
            episodeReturns.append(to: &bytes)
            episodeSuccesses.append(to: &bytes)
            environmentSteps.append(to: &bytes)
        }
        init(reading reader: inout ByteReader) throws {
            trialReturns = try [Double](reading: &reader)
            episodeReturns = try [Double](reading: &reader)
            episodeSuccesses = try [Float](reading: &reader)
            environmentSteps = try Int(reading: &reader)
        }
    }

    public mutating func iterate() throws -> [(String, Double)] {
        let trials = config.resolvedTrials(maxEpisodeSteps: prototype.maxEpisodeSteps)
        let start = Date()
        let iterationSeed = state.rng.next()
        var parts: [Part] = []
        for p in group.ownShare(of: config.shards) {
            let count = Self.trials(ofPart: p, parts: config.shards, trials: trials).count
            let batch = try sampleTrials(model: state.model, prototype: prototype, trials: count,
                                         episodesPerTrial: config.episodesPerTrial, chunkLength: config.maxSeqLen,
                                         seed: Self.seed(ofPart: p, parts: config.shards, iterationSeed: iterationSeed),
                                         threads: threads)
            // Advantages: GAE over each trial as one episode.
            let (advantages, returns) = GAE.compute(
                rewards: try trainingRewards(batch), values: batch.values, ends: batch.ends, bootstrap: [Float](repeating: 0, count: count),
                steps: batch.steps, batch: count, gamma: Float(config.gamma), lambda: Float(config.gaeLambda))
            parts.append(Part(index: p, batch: batch, advantages: advantages, returns: returns))
        }
        let summaries = try acrossParts(parts) { PartSummary($0.batch) }
        let sampled = Date()
        if config.standardizeAdvantages { try standardizeAdvantages(&parts) }

        // The config's rate (annealed linearly to 0 at `iterations`), also after a resume
        // whose config changed it: the optimizer's saved rate is not the one to keep.
        let remaining = config.annealLearningRate ? 1 - Double(state.iteration) / Double(Swift.max(config.iterations, 1)) : 1
        state.optimizer.learningRate = config.learningRate * Swift.max(remaining, 0)
        let validSteps = summaries.reduce(0) { $0 + $1.environmentSteps }
        let update: [(String, Double)]
        switch config.algorithm {
        case .ppo: update = try updateWithPPO(parts)
        case .trpo: update = try updateWithTRPO(parts, validSteps: validSteps)
        }
        let updated = Date()

        state.iteration += 1
        state.environmentSteps += validSteps
        let trialReturns = summaries.flatMap(\.trialReturns)
        let episodes = config.episodesPerTrial
        let episodeReturns = summaries.flatMap(\.episodeReturns), successes = summaries.flatMap(\.episodeSuccesses)
        var metrics: [(String, Double)] = [
            ("mean_trial_return", trialReturns.reduce(0, +) / Double(trials)),
            ("mean_trial_return_stderr", SampleStatistics(trialReturns).standardError),
        ]
        for k in 0..<episodes {
            metrics.append(("return_episode_\(k + 1)",
                            stride(from: k, to: episodeReturns.count, by: episodes).reduce(0) { $0 + episodeReturns[$1] } / Double(trials)))
        }
        // Where the family reports success (Meta-World): the share of trials whose k-th episode solved its task.
        for k in 0..<episodes {
            guard let rate = EpisodeSuccess.rate(stride(from: k, to: successes.count, by: episodes).map { successes[$0] }) else { break }
            metrics.append(("success_rate_episode_\(k + 1)", rate))
        }
        metrics += update
        metrics += [
            ("environment_steps", Double(state.environmentSteps)),
            ("sample_seconds", sampled.timeIntervalSince(start)),
            ("update_seconds", updated.timeIntervalSince(sampled)),
        ]
        return metrics
    }

    /// Standardises the advantages over every part's valid steps (the mean, then the
    /// variance about it, each summed part by part in part order).
    /// The rewards returns are computed from: the sampled ones, or with `trainOnExpectedRewards`
    /// the expected ones (a family that does not report them is a configuration error).
    func trainingRewards(_ batch: TrialBatch) throws(ConfigError) -> [Float] {
        guard config.trainOnExpectedRewards else { return batch.rewards }
        for k in batch.expectedRewards.indices where batch.valid[k] > 0 && batch.expectedRewards[k].isNaN {
            throw ConfigError(field: "trainOnExpectedRewards", value: "true",
                              allowed: "false for this task family (its steps report no expected reward; bandit and tabular-mdp do)")
        }
        return batch.expectedRewards
    }

    func standardizeAdvantages(_ parts: inout [Part]) throws {
        let sums = try acrossParts(parts) { part -> [Double] in
            var n = 0.0, sum = 0.0
            for (x, m) in zip(part.advantages, part.batch.valid) where m > 0 { n += 1; sum += Double(x) }
            return [n, sum]
        }
        let n = Swift.max(sums.reduce(0) { $0 + $1[0] }, 1)
        let mean = sums.reduce(0) { $0 + $1[1] } / n
        let squares = try acrossParts(parts) { part -> Double in
            var squares = 0.0
            for (x, m) in zip(part.advantages, part.batch.valid) where m > 0 { squares += (Double(x) - mean) * (Double(x) - mean) }
            return squares
        }
        let std = (squares.reduce(0, +) / n).squareRoot() + 1e-8
        for p in parts.indices {
            for i in parts[p].advantages.indices where parts[p].batch.valid[i] > 0 {
                parts[p].advantages[i] = Float((Double(parts[p].advantages[i]) - mean) / std)
            }
        }
    }

    // MARK: Minibatches

    /// A minibatch unit: one chunk (of `chunkLength` steps) of one trial of one part.
    struct Unit { var part: Int; var chunk: Int; var trial: Int }

    /// The chunks of a full-length trial: every part lists this many units per trial, so the
    /// minibatches do not depend on where a part's trials ended (a part whose trials all
    /// ended early has fewer chunks sampled; its later units are empty).
    var chunksPerTrial: Int {
        let steps = config.episodesPerTrial * prototype.maxEpisodeSteps
        let chunk = TrialBatch.chunkLength(steps: steps, maxSeqLen: config.maxSeqLen)
        return (steps + chunk - 1) / chunk
    }

    /// A minibatch: every part's share of it, in part order (a part's share may be empty).
    typealias UnitMinibatch = [ArraySlice<Unit>]

    /// Every part's units, part by part: chunk-major, then trial, as one batch lists them.
    func units(trials: Int, chunks: Int) -> [[Unit]] {
        (0..<config.shards).map { p in
            let count = Self.trials(ofPart: p, parts: config.shards, trials: trials).count
            return (0..<chunks).flatMap { c in (0..<count).map { Unit(part: p, chunk: c, trial: $0) } }
        }
    }

    /// Shuffles every part's units (in part order, on the one shared stream) and cuts them
    /// into minibatches of `minibatchTrials` trials' worth, each taking the same share of every part.
    func minibatches(_ units: inout [[Unit]], chunks: Int, using rng: inout Xoshiro256) -> [UnitMinibatch] {
        for p in units.indices { shuffle(&units[p], using: &rng) }
        let total = units.reduce(0) { $0 + $1.count }
        let perMinibatch = Swift.max(1, config.minibatchTrials * chunks)
        let shares = units.map { Swift.max(1, (perMinibatch * $0.count + total - 1) / total) }
        let count = zip(units, shares).map { ($0.count + $1 - 1) / $1 }.max() ?? 0
        return (0..<count).map { m in
            zip(units, shares).map { units, share in units[Swift.min(m * share, units.count)..<Swift.min((m + 1) * share, units.count)] }
        }
    }

    /// Gathers one part's units into sequence tensors [L, M, …] with their stored initial states.
    func gather(_ part: Part, _ units: ArraySlice<Unit>) -> Minibatch {
        let batch = part.batch
        let length = batch.chunkLength, m = units.count, width = batch.inputSize, b = batch.trials
        let stateSize = state.model.stateSize, actionWidth = batch.actionWidth
        var x = [Float](repeating: 0, count: length * m * width)
        var actions = [Float](repeating: 0, count: length * m * actionWidth)
        var oldLogProb = [Float](repeating: 0, count: length * m), adv = oldLogProb, ret = oldLogProb, mask = oldLogProb
        var ps = [Float](repeating: 0, count: m * stateSize), vs = ps
        for (j, unit) in units.enumerated() where unit.chunk < batch.policyStates.count {
            for s in 0..<stateSize {
                ps[j * stateSize + s] = batch.policyStates[unit.chunk][unit.trial * stateSize + s]
                vs[j * stateSize + s] = batch.valueStates[unit.chunk][unit.trial * stateSize + s]
            }
            for l in 0..<length {
                let t = unit.chunk * length + l
                guard t < batch.steps else { break }
                let src = t * b + unit.trial, dst = l * m + j
                for w in 0..<width { x[dst * width + w] = batch.inputs[src * width + w] }
                for w in 0..<actionWidth { actions[dst * actionWidth + w] = batch.actions[src * actionWidth + w] }
                oldLogProb[dst] = batch.logProbs[src]
                adv[dst] = part.advantages[src]
                ret[dst] = part.returns[src]
                mask[dst] = batch.valid[src]
            }
        }
        let inputs = Tensor(shape: [length, m, width], values: x), f = batch.taskFeatureCount
        var valueInputs = inputs
        if f > 0 {
            var unitFeatures = [Float](repeating: 0, count: m * f)
            for (j, unit) in units.enumerated() {
                for k in 0..<f { unitFeatures[j * f + k] = batch.taskFeatures[unit.trial * f + k] }
            }
            let everyStep = Tensor(shape: [1, m, f], values: unitFeatures).expanded(to: [length, m, f])
            valueInputs = Tensor.concat([inputs, everyStep], axis: 2)
        }
        return (inputs, valueInputs, Tensor(shape: [m, stateSize], values: ps),
                Tensor(shape: [m, stateSize], values: vs), Tensor(shape: [length, m, actionWidth], values: actions),
                Tensor(shape: [length, m], values: oldLogProb),
                Tensor(shape: [length, m], values: adv), Tensor(shape: [length, m], values: ret),
                Tensor(shape: [length, m], values: mask), Double(mask.reduce(0, +)))
    }

    // MARK: PPO

    mutating func updateWithPPO(_ parts: [Part]) throws -> [(String, Double)] {
        let objective = PPOObjective(clip: config.clip, valueCoefficient: config.valueCoefficient,
                                     entropyCoefficient: config.entropyCoefficient)
        let chunks = chunksPerTrial
        let trials = config.resolvedTrials(maxEpisodeSteps: prototype.maxEpisodeSteps)
        var units = units(trials: trials, chunks: chunks)
        var sums = (policy: 0.0, value: 0.0, entropy: 0.0, kl: 0.0, clipped: 0.0, count: 0.0)
        var model = state.model, optimizer = state.optimizer, rng = state.rng
        try PPO.optimize(
            &model, optimizer: &optimizer, epochs: config.epochs, iteration: state.iteration + 1, quantity: "PPO loss",
            minibatches: { _ in minibatches(&units, chunks: chunks, using: &rng) },
            gradient: { model, minibatch in
                let (terms, flat) = try meanAcrossParts(parts, terms: 6, parameters: model.parameterCount) { part -> WeightedPart in
                    let share = minibatch[part.index]
                    guard !share.isEmpty else { return WeightedPart() }
                    let mb = gather(part, share)
                    guard mb.validSteps > 0 else { return WeightedPart() }
                    let update = try minibatchGradient(mb, model: model, objective: objective)
                    return WeightedPart(weight: mb.validSteps,
                                        terms: [update.total, update.policyLoss, update.valueLoss, update.entropy,
                                                update.approxKL, update.clipFraction],
                                        gradient: update.gradient.flatParameters.values)
                }
                sums.policy += terms[1]
                sums.value += terms[2]
                sums.entropy += terms[3]
                sums.kl += terms[4]
                sums.clipped += terms[5]
                sums.count += 1
                return (terms[0], clippedSeparately(model.withFlatParameters(flat)))
            })
        state.model = model
        state.optimizer = optimizer
        state.rng = rng
        let c = Swift.max(sums.count, 1)
        for (name, p) in state.model.namedParameters where !p.values.allSatisfy({ $0.isFinite }) {
            throw NonFiniteError(iteration: state.iteration + 1, quantity: "parameter \(name)")
        }
        return [("policy_loss", sums.policy / c), ("value_loss", sums.value / c), ("entropy", sums.entropy / c),
                ("approx_kl", sums.kl / c), ("clip_fraction", sums.clipped / c)]
    }

    /// A minibatch's gradient of the PPO loss and its diagnostics.
    struct MinibatchGradient {
        var gradient: RecurrentActorCritic
        var total: Double, policyLoss: Double, valueLoss: Double, entropy: Double
        /// E[log π_old − log π] and the fraction of ratios outside 1 ± ε.
        var approxKL: Double, clipFraction: Double
    }

    /// `valueInputs` are `inputs` with the task's features appended for a task-aware value function.
    typealias Minibatch = (inputs: Tensor, valueInputs: Tensor, policyState: Tensor, valueState: Tensor, actions: Tensor, oldLogProb: Tensor,
                           advantages: Tensor, returns: Tensor, mask: Tensor, validSteps: Double)
    /// ∇[policy loss − c_e·entropy] for the policy network and ∇[c_v·value loss] for the
    /// value network, on `threads` threads (at most two).
    func minibatchGradient(_ mb: Minibatch, model: RecurrentActorCritic, objective: PPOObjective) throws -> MinibatchGradient {
        let clip = config.clip
        let parts = concurrentMap(2, threads: threads) { k -> PPOUpdatePart in
            if k == 0 {
                var terms: (policyLoss: Tensor, entropy: Tensor)?
                var newLogProb: Tensor?
                let (_, grad) = valueAndGradient(at: model.policy) { policy in
                    let distribution = policy.distribution(mb.inputs, state: mb.policyState)
                    let logProb = distribution.logProb(mb.actions)
                    newLogProb = logProb.detached
                    let t = objective.policyTerms(logProb: logProb, oldLogProb: mb.oldLogProb, advantages: mb.advantages,
                                                  entropy: distribution.entropy(), mask: mb.mask)
                    terms = t
                    return t.policyLoss - objective.entropyCoefficient * t.entropy
                }
                let newLP = newLogProb!.values, oldLP = mb.oldLogProb.values, mask = mb.mask.values
                var kl = 0.0, clippedCount = 0.0, n = 0.0
                for i in mask.indices where mask[i] > 0 {
                    let logRatio = Double(newLP[i] - oldLP[i])
                    kl += -logRatio
                    if Swift.abs(Foundation.exp(logRatio) - 1) > clip { clippedCount += 1 }
                    n += 1
                }
                return .policy(grad, terms!.policyLoss.doubleScalar, terms!.entropy.doubleScalar,
                               kl / Swift.max(n, 1), clippedCount / Swift.max(n, 1))
            } else {
                let (loss, grad) = valueAndGradient(at: model) { model in
                    let values = model.values(mb.valueInputs, state: mb.valueState)
                    return objective.valueCoefficient * objective.valueLoss(values: values, returns: mb.returns, mask: mb.mask)
                }
                return .value(grad, loss.doubleScalar / Swift.max(objective.valueCoefficient, .leastNonzeroMagnitude))
            }
        }
        // concurrentMap returns the parts in index order: the policy's, then the value function's.
        guard case .policy(let policyGrad, let policyLoss, let entropy, let kl, let clipFraction) = parts[0],
              case .value(var gradient, let valueLoss) = parts[1] else { preconditionFailure("PPO update parts out of order") }
        gradient.policy = policyGrad
        let total = policyLoss + objective.valueCoefficient * valueLoss - objective.entropyCoefficient * entropy
        return MinibatchGradient(gradient: gradient, total: total, policyLoss: policyLoss, valueLoss: valueLoss,
                                 entropy: entropy, approxKL: kl, clipFraction: clipFraction)
    }

    /// The gradient with the policy's and the value function's halves each clipped to
    /// `maxGradientNorm` on its own (one joint norm would let the value loss, whose scale
    /// follows the returns, shrink the policy's step to nothing).
    func clippedSeparately(_ gradient: RecurrentActorCritic) -> RecurrentActorCritic {
        var policy = gradient.policy
        _ = clipByGlobalNorm(&policy, maxNorm: config.maxGradientNorm)
        var value = gradient
        value.policy = policy.zerosLike
        _ = clipByGlobalNorm(&value, maxNorm: config.maxGradientNorm)
        value.policy = policy
        return value
    }

    // MARK: TRPO

    /// TRPO on the policy (natural gradient by conjugate gradient on Fisher-vector products
    /// of a subsample, KL-bounded backtracking line search over the whole batch), then
    /// Adam epochs on the value function alone. Every sum over the batch is taken part by
    /// part (over its share of each minibatch) and the parts' sums added in part order.
    mutating func updateWithTRPO(_ parts: [Part], validSteps: Int) throws -> [(String, Double)] {
        let chunks = chunksPerTrial
        let trials = config.resolvedTrials(maxEpisodeSteps: prototype.maxEpisodeSteps)
        var units = units(trials: trials, chunks: chunks)
        let unitMinibatches = minibatches(&units, chunks: chunks, using: &state.rng)
        // This rank's parts' shares of every minibatch (nil where a share is empty).
        let shares: [[Minibatch?]] = parts.map { part in
            unitMinibatches.map { units -> Minibatch? in
                guard !units[part.index].isEmpty else { return nil }
                let mb = gather(part, units[part.index])
                return mb.validSteps > 0 ? mb : nil
            }
        }
        let validSteps = Swift.max(Double(validSteps), 1)
        let oldPolicy = state.model.policy
        // π_old from its head's outputs as constants (a distribution rebuilt from them, not
        // from its own normalised log-probabilities, which would round differently).
        let oldDistributions = shares.map { part in
            part.map { mb in
                mb.map {
                    RecurrentPolicy.distribution(headOutputs: oldPolicy.headOutputs($0.inputs, state: $0.policyState).detached,
                                                 logStd: oldPolicy.logStd.detached, discrete: oldPolicy.discrete)
                }
            }
        }
        let own = group.ownShare(of: config.shards)
        /// Σ over parts (in part order) of `body`'s sum over this part's shares of minibatches `range`.
        func summedOverParts(_ range: Range<Int>, length: Int,
                             _ body: (_ part: Int, _ minibatch: Int, _ share: Minibatch, _ into: inout [Double]) throws -> Void) throws -> [Double] {
            let sums = try acrossParts(parts) { part -> [Double] in
                var sum = [Double](repeating: 0, count: length)
                let local = part.index - own.lowerBound
                for m in range { if let mb = shares[local][m] { try body(local, m, mb, &sum) } }
                return sum
            }
            var total = sums[0]
            for s in sums.dropFirst() { for j in total.indices { total[j] += s[j] } }
            return total
        }

        // L(θ) = Σ mask·exp(log π_θ − log π_old)·A / N and KL(π_old ‖ π_θ) averaged the same way.
        func surrogate(_ policy: RecurrentPolicy, _ part: Int, _ m: Int, _ mb: Minibatch) -> (gain: Tensor, kl: Tensor) {
            let current = policy.distribution(mb.inputs, state: mb.policyState)
            let ratio = (current.logProb(mb.actions) - mb.oldLogProb).exp()
            let gain = (ratio * mb.advantages * mb.mask).sum() / validSteps
            let kl = (oldDistributions[part][m]!.kl(to: current) * mb.mask).sum() / validSteps
            return (gain, kl)
        }
        let parameterCount = oldPolicy.parameterCount
        let gradient = try summedOverParts(unitMinibatches.indices, length: parameterCount) { part, m, mb, sum in
            let g = NN.gradient(at: oldPolicy) { surrogate($0, part, m, mb).gain }.flatParameters.values
            for j in sum.indices { sum[j] += Double(g[j]) }
        }
        // Fisher-vector products on a subsample of the minibatches, rescaled to the batch.
        let fisherCount = Swift.max(1, Int((Double(unitMinibatches.count) * config.fisherSubsample).rounded()))
        let fisherScale = Double(unitMinibatches.count) / Double(fisherCount)
        let (policy, step) = try TRPO.step(
            from: oldPolicy, gradient: gradient, settings: config.trpo, iteration: state.iteration + 1,
            fisherProduct: { vector in
                try summedOverParts(0..<Swift.min(fisherCount, unitMinibatches.count), length: parameterCount) { part, m, mb, sum in
                    let hv = hessianVectorProduct(at: oldPolicy.parameters, vector: vector) { p in
                        var policy = oldPolicy
                        policy.parameters = p
                        return surrogate(policy, part, m, mb).kl
                    }
                    var offset = 0
                    for t in hv {
                        for x in t.values { sum[offset] += fisherScale * Double(x); offset += 1 }
                    }
                }
            },
            evaluate: { policy in
                let sums = try summedOverParts(unitMinibatches.indices, length: 2) { part, m, mb, sum in
                    let (g, k) = surrogate(policy, part, m, mb)
                    sum[0] += g.doubleScalar
                    sum[1] += k.doubleScalar
                }
                return (sums[0], sums[1])
            })
        state.model.policy = policy

        // Value function: Adam epochs on the squared error to the GAE returns.
        var valueLoss = 0.0, count = 0.0
        for _ in 0..<config.valueEpochs {
            for m in unitMinibatches.indices {
                let model = state.model
                let (terms, flat) = try meanAcrossParts(parts, terms: 1, parameters: model.parameterCount) { part -> WeightedPart in
                    guard let mb = shares[part.index - own.lowerBound][m], mb.validSteps > 0 else { return WeightedPart() }
                    let (loss, grad) = valueAndGradient(at: model) { model in
                        let v = model.valueCell.unroll(mb.valueInputs, initialState: mb.valueState).outputs
                        let values = model.value(ofHidden: v.reshaped([-1, v.shape[2]])).reshaped(mb.mask.shape)
                        return ((values - mb.returns).squared() * mb.mask).sum() / mb.validSteps
                    }
                    return WeightedPart(weight: mb.validSteps, terms: [loss.doubleScalar], gradient: grad.flatParameters.values)
                }
                let loss = terms[0]
                guard loss.isFinite else { throw NonFiniteError(iteration: state.iteration + 1, quantity: "value loss") }
                state.optimizer.update(&state.model, along: clippedSeparately(model.withFlatParameters(flat)))
                valueLoss += loss
                count += 1
            }
        }
        let updated = state.model.policy
        let entropy = try summedOverParts(unitMinibatches.indices, length: 1) { _, _, mb, sum in
            sum[0] += (updated.distribution(mb.inputs, state: mb.policyState).entropy() * mb.mask).sum().doubleScalar / validSteps
        }[0]
        return [("policy_loss", -step.improvement), ("value_loss", valueLoss / Swift.max(count, 1)), ("entropy", entropy),
                ("approx_kl", step.kl), ("step_accepted", step.accepted ? 1 : 0), ("backtracks", Double(step.backtracks))]
    }
}

// MARK: Registration

/// RL² as `metarl train rl2` runs it.
public struct RL2Algorithm: ProcessGroupAlgorithmDefinition {
    public init() {}
    public var name: String { "rl2" }
    public var summary: String { "RL²: a recurrent policy trained with PPO or TRPO over trials of several episodes of one task" }
    public var defaultEnv: String { "bandit" }

    public func headlineMetric(_ settings: RL2Config) -> String { "mean_trial_return" }

    /// A fresh run with the iteration's parts (`shards`) split over `group`'s processes.
    public func start<E: MetaEnv>(_ settings: RL2Config, prototype: E, seed: UInt64, threads: Int,
                                  group: any ProcessGroup) throws -> any IterativeAlgorithm<RL2State> {
        try splitting(RL2(config: settings, prototype: prototype, seed: seed).using(threads: threads), shards: settings.shards,
                      of: "each iteration's trials", over: group)
    }

    /// A checkpoint's run continued with the iteration's parts split over `group`'s processes.
    public func restore<E: MetaEnv>(_ settings: RL2Config, prototype: E, state: RL2State, threads: Int,
                                    group: any ProcessGroup) throws -> any IterativeAlgorithm<RL2State> {
        try splitting(RL2(config: settings, prototype: prototype, state: state).using(threads: threads), shards: settings.shards,
                      of: "each iteration's trials", over: group)
    }

    /// The fresh run's state with `source`'s agent. A categorical agent trained on fewer
    /// actions (a bandit of fewer arms) is widened as `settings.widenedActions` says: dormant,
    /// the new actions' one-hot inputs and logits get zero weights and their logits a bias of
    /// −20, so the agent acts exactly as before and never picks them unless training teaches
    /// it to (with n ≤ k pulls a k-armed agent loses nothing by keeping to n arms); live, those
    /// weights are the fresh network's (so each new action reads differently) and the bias
    /// the old actions' mean, so they are tried from the start. An agent without the trial
    /// progress input, started into a run with it (`trialProgressInput`), reads it with zero
    /// weights. An agent of fewer hidden units (a GRU or an LSTM) grows to this run's
    /// `hiddenSize`: the added units take the fresh network's weights, and neither the old
    /// units nor the heads read them at first (zero weights), so it acts and values as before
    /// and training puts the added memory to use. The value head is rescaled to
    /// `settings.valueScale` (the values stay the same). Everything else must have the same sizes.
    public func warmStarted<E: MetaEnv>(_ state: RL2State, from source: RL2State, settings: RL2Config,
                                        prototype: E) throws -> RL2State {
        var model = source.model
        let fresh = state.model
        let misfit = "the agent to start from does not fit this run (needed: the same cell; as many hidden units or fewer, exactly as many for ln-gru; as many actions or fewer)"
        let units = model.policyCell.outputSize, wideUnits = fresh.policyCell.outputSize
        // The fresh cells cut to the agent's units: the sources of weights for inputs it gains.
        func cut(_ cell: RecurrentCellChoice) -> RecurrentCellChoice? { units == wideUnits ? cell : cell.narrowed(to: units) }
        guard model.policyCell.kind == fresh.policyCell.kind, let freshPolicyCell = cut(fresh.policyCell),
              let freshValueCell = cut(fresh.valueCell)
        else {
            throw WarmStartError("\(misfit): it has a \(model.policyCell.kind.rawValue) cell of \(units) units, "
                                 + "this run a \(fresh.policyCell.kind.rawValue) cell of \(wideUnits)")
        }
        let added = model.discrete && fresh.discrete ? Swift.max(0, fresh.policyHead.outputSize - model.policyHead.outputSize) : 0
        let sourceFeatures = model.taskFeatureCount
        if settings.trialProgressInput, fresh.policyCell.inputSize == model.policyCell.inputSize + added + 1 {
            // An agent without the progress input (the last of the policy's; task features follow it): it reads
            // it with zero weights, so it acts as before.
            let at = model.policyCell.inputSize
            model.policyCell = model.policyCell.insertingInputs(1, at: at)
            model.valueCell = model.valueCell.insertingInputs(1, at: at)
        }
        if sourceFeatures == 0, fresh.taskFeatureCount > 0 {
            // A value function that did not read the task: the features start with zero weights.
            model.valueCell = model.valueCell.insertingInputs(fresh.taskFeatureCount, at: model.valueCell.inputSize)
        }
        let live = settings.widenedActions == .live
        if added > 0 {
            let actionColumns = prototype.observationSpace.flatSize + model.policyHead.outputSize
            model.policyCell = model.policyCell.insertingInputs(added, at: actionColumns, from: live ? freshPolicyCell : nil)
            model.valueCell = model.valueCell.insertingInputs(added, at: actionColumns, from: live ? freshValueCell : nil)
        }
        if wideUnits > units {
            guard let policyCell = model.policyCell.widened(into: fresh.policyCell), let valueCell = model.valueCell.widened(into: fresh.valueCell) else {
                throw WarmStartError("\(misfit): its inputs (\(model.policyCell.inputSize)) differ from this run's (\(fresh.policyCell.inputSize))")
            }
            model.policyCell = policyCell
            model.valueCell = valueCell
            model.policyHead = Linear(weight: model.policyHead.weight.insertingRows(wideUnits - units, at: units), bias: model.policyHead.bias)
            model.valueHead = Linear(weight: model.valueHead.weight.insertingRows(wideUnits - units, at: units), bias: model.valueHead.bias)
        }
        if added > 0 {
            let oldBiases = model.policyHead.bias.doubleValues
            model.policyHead = model.policyHead.appendingOutputs(added, bias: live ? oldBiases.reduce(0, +) / Double(oldBiases.count) : -20,
                                                                 weightsFrom: live ? fresh.policyHead : nil)
        }
        model.rescaleValue(to: Float(settings.valueScale))
        var warm = state
        warm.model = model
        do { try warm.checkCompatible(with: state) } catch {
            throw WarmStartError("\(misfit): \(error)")
        }
        return warm
    }

    /// `trials` fresh trials (in blocks of 2 000, so memory stays bounded): the trial return
    /// and the return by episode index inside the trial, with standard errors.
    public func evaluate<E: MetaEnv>(_ settings: RL2Config, state: RL2State, prototype: E, options: RL2EvaluationOptions,
                                     seed: UInt64, threads: Int) throws -> RL2Evaluation {
        _ = try RL2(config: settings, prototype: prototype, state: state)
        var returns: [Double] = [], perEpisode: [[Double]] = [], successes: [[Double]] = [], distinct: [Double] = []
        var rng = Xoshiro256(seed: seed)
        let tasks = options.baselineTasks ? TrialStreams.tasks(of: prototype, count: options.trials, seed: seed) : nil
        let episodes = options.episodes(trained: settings.episodesPerTrial)
        var left = options.trials
        while left > 0 {
            let n = Swift.min(left, 2000), first = options.trials - left
            let batch = try sampleTrials(model: state.model, prototype: prototype, trials: n,
                                         episodesPerTrial: episodes, seed: rng.next(), greedy: options.greedy,
                                         fixedTasks: tasks.map { Array($0[first..<(first + n)]) })
            returns += batch.trialReturns
            perEpisode += batch.episodeReturns
            successes += batch.episodeSuccesses.map { $0.map(Double.init) }
            if state.model.discrete { distinct += batch.distinctActions.map(Double.init) }
            left -= n
        }
        let trial = SampleStatistics(returns)
        let curve = (0..<episodes).map { k in SampleStatistics(perEpisode.map { $0[k] }) }
        return RL2Evaluation(meanReturn: trial.mean, stderr: trial.standardError, perEpisode: curve.map(\.mean),
                             perEpisodeStderr: curve.map(\.standardError), trials: options.trials, seed: seed, greedy: options.greedy,
                             successByTrial: successes, distinctActions: distinct.isEmpty ? nil : SampleStatistics(distinct))
    }
}

/// How `metarl eval` runs an RL² checkpoint.
public struct RL2EvaluationOptions: SettingsTable {
    /// Fresh trials to run.
    public var trials = 1000
    /// Act with each step's most probable action instead of sampling from the policy.
    public var greedy = false
    /// Draw trial i's task as `metarl baseline` does with the same seed (`TrialStreams`), so
    /// that the agent and the classic strategies are compared on the same tasks.
    public var baselineTasks = false
    /// Episodes per trial; 0 keeps the run's own (another count runs the agent on longer or
    /// shorter trials than it was trained on: a bandit agent of n = 100 pulls on n = 500).
    public var episodesPerTrial = 0
    public init() {}
    public static let flags = [SettingFlag("trials", help: "fresh trials to run"),
                               SettingFlag("greedy", help: "act with the most probable action at every step instead of sampling"),
                               SettingFlag("baselineTasks", help: "trial i on the task `metarl baseline` gives trial i with the same --seed (a paired comparison)"),
                               SettingFlag("episodesPerTrial", help: "episodes per trial (0: the run's own)")]
    public func validate() throws(ConfigError) {
        try ConfigError.check("trials", trials, 2...100_000_000)
        try ConfigError.check("episodesPerTrial", episodesPerTrial, 0...100_000)
    }

    /// The episodes per trial to evaluate with, for a run trained with `trained`.
    public func episodes(trained: Int) -> Int { episodesPerTrial > 0 ? episodesPerTrial : trained }
}

/// Meta-test results of an RL² run: on fresh tasks, the trial return and the return by
/// episode index inside the trial (the adaptation curve), with standard errors.
public struct RL2Evaluation: EvaluationReport {
    public var meanReturn: Double
    public var stderr: Double
    public var perEpisode: [Double]
    public var perEpisodeStderr: [Double]
    public var trials: Int
    public var seed: UInt64
    /// Whether the most probable action was taken at every step (not written to JSON).
    public var greedy: Bool
    /// For discrete actions, the mean number of different actions a trial took (a bandit's
    /// arms tried: how widely the agent explores) and its standard error; nil for box actions.
    public var distinctActions: Double?
    /// The standard error of `distinctActions`.
    public var distinctActionsStderr: Double?
    /// The return by episode index, as `metarl plot --adaptation` reads it.
    public let adaptation: AdaptationCurve

    enum CodingKeys: String, CodingKey {
        case meanReturn = "mean_return", stderr, perEpisode = "per_episode", perEpisodeStderr = "per_episode_stderr", trials, seed
        case distinctActions = "distinct_actions", distinctActionsStderr = "distinct_actions_stderr"
        case adaptation
    }

    /// A report of these figures; `successByTrial[i][k]` (1, 0 or NaN) is whether trial i's
    /// k-th episode solved its task, for families that report success; `distinctActions`, the
    /// statistics of the different actions per trial (discrete action spaces).
    public init(meanReturn: Double, stderr: Double, perEpisode: [Double], perEpisodeStderr: [Double], trials: Int, seed: UInt64,
                greedy: Bool = false, successByTrial: [[Double]] = [], distinctActions: SampleStatistics? = nil) {
        self.distinctActions = distinctActions?.mean
        self.distinctActionsStderr = distinctActions?.standardError
        self.meanReturn = meanReturn
        self.stderr = stderr
        self.perEpisode = perEpisode
        self.perEpisodeStderr = perEpisodeStderr
        self.trials = trials
        self.seed = seed
        self.greedy = greedy
        adaptation = AdaptationCurve(axis: "episode in the trial", first: 1, values: perEpisode, stderr: perEpisodeStderr,
                                     successByTask: successByTrial)
    }

    public func summary(algorithm: String, env: String) -> [String] {
        [String(format: "%@ on %@: mean trial return %.3f ± %.3f (s.e.) over %d fresh trials%@",
                algorithm, env, meanReturn, stderr, trials, greedy ? ", most probable actions" : ""),
         "return by episode: " + zip(perEpisode, perEpisodeStderr).enumerated()
            .map { String(format: "%d: %.3f±%.3f", $0.offset + 1, $0.element.0, $0.element.1) }.joined(separator: "  ")]
        + [adaptation.successSummary(by: "episode"),
           distinctActions.map { String(format: "different actions per trial: %.2f ± %.2f", $0, distinctActionsStderr ?? 0) }].compactMap { $0 }
    }
}

/// A refused RL² configuration.
public enum RL2Error: Error, CustomStringConvertible {
    case unsupported(String)
    /// A saved state that does not fit the run's config.
    case incompatibleState(String)
    public var description: String {
        switch self {
        case .unsupported(let s): s
        case .incompatibleState(let s): "saved state does not fit the config: " + s
        }
    }
}

/// The two halves of a PPO minibatch update: the policy's gradient with its loss, entropy,
/// approximate KL and clip fraction; the value function's with its loss.
enum PPOUpdatePart {
    case policy(RecurrentPolicy, Double, Double, Double, Double)
    case value(RecurrentActorCritic, Double)
}
