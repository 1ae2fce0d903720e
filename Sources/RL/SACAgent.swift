import Foundation
import Envs
import NN
import TensorCore

// The networks and the update of soft actor-critic (Haarnoja et al. 2018, "Soft
// Actor-Critic Algorithms and Applications": twin Q, target networks, automatic
// temperature). `SAC.swift` trains it on one task; PEARL trains it with a latent task
// variable appended to the observations.

/// SAC's policy: an MLP from inputs to the mean and log standard deviation of a Gaussian
/// over pre-squash actions u; the action is tanh(u) in (−1, 1)^d (scaled to the
/// environment's box by the caller). The log standard deviation is squashed smoothly into
/// [−5, 2].
public struct SquashedGaussianActor: ParameterCollection, Codable, Sendable {
    public var network: MLP
    public static let logStdBounds = (low: -5.0, high: 2.0)

    public init(inputSize: Int, actionSize: Int, hiddenSizes: [Int], using rng: inout Xoshiro256) {
        network = MLP(sizes: [inputSize] + hiddenSizes + [2 * actionSize], activation: .relu, using: &rng)
    }

    public var actionSize: Int { network.outputSize / 2 }

    /// π(· | inputs) for inputs [N, in].
    public func distribution(_ inputs: Tensor) -> TanhGaussian {
        let out = network(inputs), d = actionSize
        let (low, high) = Self.logStdBounds
        let logStd = (out.slice(axis: 1, d..<(2 * d)).tanh() + 1) * (0.5 * (high - low)) + low
        return TanhGaussian(mean: out.slice(axis: 1, 0..<d), logStd: logStd)
    }

    /// Actions [N × d] in (−1, 1): tanh of a sample, or of the mean when `deterministic`.
    public func actions(_ inputs: Tensor, deterministic: Bool, using rng: inout Xoshiro256) -> [Float] {
        let pi = distribution(inputs.detached)
        if deterministic { return pi.base.mean.tanh().values }
        return pi.sample(using: &rng).action.values
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        withoutActuallyEscaping(body) { body in network.visitParameters { name, t in body("network.\(name())", &t) } }
    }
}

/// A soft Q function: an MLP from [inputs, action] to one value.
public struct QNetwork: ParameterCollection, Codable, Sendable {
    public var network: MLP

    public init(inputSize: Int, actionSize: Int, hiddenSizes: [Int], using rng: inout Xoshiro256) {
        network = MLP(sizes: [inputSize + actionSize] + hiddenSizes + [1], activation: .relu, using: &rng)
    }

    /// Q(inputs, actions) for [N, in] and [N, act]: [N].
    public func callAsFunction(_ inputs: Tensor, _ actions: Tensor) -> Tensor {
        let n = inputs.shape[0]
        return network(Tensor.concat([inputs, actions], axis: 1)).reshaped([n])
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        withoutActuallyEscaping(body) { body in network.visitParameters { name, t in body("network.\(name())", &t) } }
    }
}

/// Two Q functions trained on the same targets; the smaller of the two is used wherever a
/// value is read, against overestimation (clipped double Q).
public struct TwinQ: ParameterCollection, Codable, Sendable {
    public var q1: QNetwork
    public var q2: QNetwork

    public init(inputSize: Int, actionSize: Int, hiddenSizes: [Int], using rng: inout Xoshiro256) {
        q1 = QNetwork(inputSize: inputSize, actionSize: actionSize, hiddenSizes: hiddenSizes, using: &rng)
        q2 = QNetwork(inputSize: inputSize, actionSize: actionSize, hiddenSizes: hiddenSizes, using: &rng)
    }

    /// min(Q₁, Q₂) per row.
    public func minimum(_ inputs: Tensor, _ actions: Tensor) -> Tensor { Tensor.minimum(q1(inputs, actions), q2(inputs, actions)) }

    /// ½ (mean (Q₁ − y)² + mean (Q₂ − y)²): the critic loss against fixed targets y [N].
    public func loss(_ inputs: Tensor, _ actions: Tensor, targets: Tensor) -> Tensor {
        ((q1(inputs, actions) - targets).squared().mean() + (q2(inputs, actions) - targets).squared().mean()) * 0.5
    }

    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        withoutActuallyEscaping(body) { body in
            q1.visitParameters { name, t in body("q1.\(name())", &t) }
            q2.visitParameters { name, t in body("q2.\(name())", &t) }
        }
    }
}

/// SAC's entropy temperature α, learned as log α.
public struct Temperature: ParameterCollection, Codable, Sendable {
    public var logAlpha: Tensor
    public init(_ alpha: Double) { logAlpha = Tensor(repeating: Foundation.log(alpha), shape: [1]) }
    public var alpha: Double { Foundation.exp(logAlpha.doubleScalar) }
    public mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
        body("logAlpha", &logAlpha)
    }
}

/// The settings SAC's update uses (shared by `SACConfig` and `PEARLConfig`).
public struct SACUpdateSettings: Codable, Sendable, Equatable {
    public var learningRate: Double = 3e-4
    public var gamma: Double = 0.99
    /// τ of the Polyak average θ′ ← (1 − τ)θ′ + τθ of the target critics.
    public var polyak: Double = 0.005
    /// Rewards are multiplied by this before entering the targets.
    public var rewardScale: Double = 1
    public var initialTemperature: Double = 1
    /// The entropy α is tuned toward; nil: −(action dimensions), the SAC paper's heuristic.
    public var targetEntropy: Double?

    /// Help for the `update.` settings every SAC-based algorithm shows by their own names
    /// (`--update-gamma` …); the learning rate and reward scale each algorithm names itself.
    public static let flags: [SettingFlag] = [
        SettingFlag("update.gamma", help: "discount"),
        SettingFlag("update.polyak", help: "τ, the rate the target critics follow the critics at"),
        SettingFlag("update.initialTemperature", help: "the entropy temperature α at the start"),
        SettingFlag("update.targetEntropy", kind: .number, help: "the entropy α is tuned toward (default −dim A)"),
    ]

    enum CodingKeys: String, CodingKey { case learningRate, gamma, polyak, rewardScale, initialTemperature, targetEntropy }

    public init() {}

    /// Writes every key, `targetEntropy` as null when unset (so a config file lists it).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(gamma, forKey: .gamma)
        try c.encode(polyak, forKey: .polyak)
        try c.encode(rewardScale, forKey: .rewardScale)
        try c.encode(initialTemperature, forKey: .initialTemperature)
        try c.encode(targetEntropy, forKey: .targetEntropy)
    }

    public func validate(prefix: String) throws(ConfigError) {
        try ConfigError.check(prefix + "learningRate", learningRate, open: 0..<1)
        try ConfigError.check(prefix + "gamma", gamma, 0...1)
        try ConfigError.check(prefix + "polyak", polyak, open: 0..<1.000_001)
        try ConfigError.check(prefix + "rewardScale", rewardScale, open: 0..<1e6)
        try ConfigError.check(prefix + "initialTemperature", initialTemperature, open: 0..<1e6)
        if let targetEntropy { try ConfigError.check(prefix + "targetEntropy", targetEntropy, -1e6...1e6) }
    }
}

/// What one SAC update measured.
public struct SACLosses: Sendable {
    public var critic = 0.0
    public var actor = 0.0
    public var temperature = 0.0
    /// −mean log π(a|s) of the actions drawn for the actor loss.
    public var entropy = 0.0
    public var meanQ = 0.0

    public init() {}

    /// Running sums, for averaging over an iteration's updates.
    public static func + (a: SACLosses, b: SACLosses) -> SACLosses {
        var s = a
        s.critic += b.critic
        s.actor += b.actor
        s.temperature += b.temperature
        s.entropy += b.entropy
        s.meanQ += b.meanQ
        return s
    }

    public func scaled(by c: Double) -> SACLosses {
        var s = self
        s.critic *= c
        s.actor *= c
        s.temperature *= c
        s.entropy *= c
        s.meanQ *= c
        return s
    }
}

/// Soft actor-critic's learner: the actor, the twin critics and their Polyak-averaged
/// targets, the temperature, and an Adam optimiser for each. Everything is `Codable`, so
/// a checkpoint resumes exactly.
public struct SACAgent: Codable, Sendable {
    public var actor: SquashedGaussianActor
    public var critics: TwinQ
    public var targetCritics: TwinQ
    public var temperature: Temperature
    public var actorOptimizer: Adam
    public var criticOptimizer: Adam
    public var temperatureOptimizer: Adam
    public var settings: SACUpdateSettings
    public let targetEntropy: Double

    /// Networks over `inputSize` inputs (observations, and PEARL's latent) and actions in (−1, 1)^actionSize.
    public init(inputSize: Int, actionSize: Int, hiddenSizes: [Int], settings: SACUpdateSettings, using rng: inout Xoshiro256) {
        actor = SquashedGaussianActor(inputSize: inputSize, actionSize: actionSize, hiddenSizes: hiddenSizes, using: &rng)
        critics = TwinQ(inputSize: inputSize, actionSize: actionSize, hiddenSizes: hiddenSizes, using: &rng)
        targetCritics = critics
        temperature = Temperature(settings.initialTemperature)
        actorOptimizer = Adam(learningRate: settings.learningRate)
        criticOptimizer = Adam(learningRate: settings.learningRate)
        temperatureOptimizer = Adam(learningRate: settings.learningRate)
        self.settings = settings
        targetEntropy = settings.targetEntropy ?? -Double(actionSize)
    }

    /// The soft Bellman target y = s·r + γ(1 − d)(min(Q′₁, Q′₂)(s′, a′) − α log π(a′|s′)),
    /// with a′ ~ π(·|s′), s the reward scale and d the terminal flag (all [N], constants).
    public static func target(rewards: Tensor, terminals: Tensor, nextQ1: Tensor, nextQ2: Tensor, nextLogProb: Tensor,
                              temperature alpha: Double, gamma: Double, rewardScale: Double = 1) -> Tensor {
        let softValue = Tensor.minimum(nextQ1, nextQ2) - nextLogProb * alpha
        return (rewards * rewardScale + (1 - terminals) * softValue * gamma).detached
    }

    /// The critics' targets for a batch whose next inputs are `nextInputs` [N, in]
    /// (next observations, with PEARL's latent appended), drawing a′ with `noise` [N, act].
    public func targets(rewards: Tensor, terminals: Tensor, nextInputs: Tensor, noise: Tensor) -> Tensor {
        let pi = actor.distribution(nextInputs.detached)
        let (nextAction, u) = pi.sample(noise: noise)
        return Self.target(rewards: rewards, terminals: terminals, nextQ1: targetCritics.q1(nextInputs, nextAction),
                           nextQ2: targetCritics.q2(nextInputs, nextAction), nextLogProb: pi.logProb(preSquash: u),
                           temperature: temperature.alpha, gamma: settings.gamma, rewardScale: settings.rewardScale)
    }

    /// The actor step on E[α log π(ã|s) − min Q(s, ã)], ã = tanh(μ + σε) (reparameterised),
    /// then the temperature step on E[−log α · (log π(ã|s) + H̄)], over a batch in `parts`
    /// fixed parts: part p has `rows(p)` rows, inputs `inputs(p)` (constants) and noise
    /// `noise(p)`. Each part's gradient is computed on its own (the parts of `group`'s other
    /// ranks there, on up to `threads` threads) and the means added in part order, so the step
    /// depends on neither the process count nor the thread count; one part is the plain batch step.
    public mutating func updateActorAndTemperature(parts: Int, group: any ProcessGroup, threads: Int = 1, rows: (Int) -> Int,
                                                   inputs: (Int) -> Tensor, noise: (Int) -> Tensor, losses: inout SACLosses) throws {
        let agent = self
        let (terms, flat) = try distributedWeightedMean(parts, group: group, threads: threads, terms: 3,
                                                        parameters: actor.parameterCount) { p -> WeightedPart in
            let part = agent.actorGradient(inputs: inputs(p), noise: noise(p))
            return WeightedPart(weight: Double(rows(p)), terms: [part.loss, Double(part.entropyGap), part.entropy],
                                gradient: part.gradient.flatParameters.values)
        }
        let gap = Float(terms[1])
        losses.actor = terms[0]
        losses.temperature = temperatureLoss(entropyGap: gap)
        losses.entropy = terms[2]
        updateActorAndTemperature(along: actor.withFlatParameters(flat), entropyGap: gap)
    }

    /// The actor loss E[α log π(ã|s) − min Q(s, ã)] over `inputs` (constants) with ã drawn
    /// with `noise`, its gradient, the mean of log π(ã|s) + H̄ the temperature step needs, and
    /// the entropy −mean log π(ã|s): what one part of a batch split over processes contributes.
    public func actorGradient(inputs: Tensor, noise: Tensor) -> (loss: Double, gradient: SquashedGaussianActor, entropyGap: Float, entropy: Double) {
        let inputs = inputs.detached, critics = self.critics, alpha = temperature.alpha
        var logProb = Tensor(0)
        let (actorLoss, actorGradient) = NN.valueAndGradient(at: actor) { actor -> Tensor in
            let pi = actor.distribution(inputs)
            let (action, u) = pi.sample(noise: noise)
            logProb = pi.logProb(preSquash: u)
            return (logProb * alpha - critics.minimum(inputs, action)).mean()
        }
        let gap = (logProb.detached + targetEntropy).mean()
        return (actorLoss.doubleScalar, actorGradient, gap.values[0], -logProb.detached.mean().doubleScalar)
    }

    /// Adam steps of the actor along `gradient`, then of log α on −log α · `entropyGap`.
    public mutating func updateActorAndTemperature(along gradient: SquashedGaussianActor, entropyGap: Float) {
        actorOptimizer.update(&actor, along: gradient)
        let gap = Tensor(Double(entropyGap))
        let (_, temperatureGradient) = NN.valueAndGradient(at: temperature) { t in -(t.logAlpha * gap).sum() }
        temperatureOptimizer.update(&temperature, along: temperatureGradient)
    }

    /// The temperature loss −log α · `entropyGap` at the current α (before its step).
    public func temperatureLoss(entropyGap: Float) -> Double {
        -(temperature.logAlpha * Tensor(Double(entropyGap))).sum().doubleScalar
    }

    /// θ′ ← (1 − τ)θ′ + τθ for the target critics.
    public mutating func updateTargets() {
        let tau = Float(settings.polyak)
        let online = critics.parameters
        var i = 0
        targetCritics.visitParameters { _, target in
            online[i].withUnsafeFloats { theta in
                target.withUnsafeMutableFloats { t in
                    for j in 0..<t.count { t[j] += tau * (theta[j] - t[j]) }
                }
            }
            i += 1
        }
    }

    /// One SAC update on a batch: critics toward the soft Bellman targets, then the actor
    /// and the temperature, then the targets. The batch is cut into `parts` fixed parts of
    /// rows (`partRange(_:of:parts:)`) whose gradients are computed one by one, or by
    /// `group`'s ranks, and added in part order: the update depends on `parts`, never on the
    /// process count. Every random number is drawn for the whole batch first, on every rank.
    /// A rank's parts run on up to `threads` threads, which changes nothing in the result.
    public mutating func update(_ batch: TransitionBatch, parts: Int = 1, group: any ProcessGroup = SingleProcess(),
                                threads: Int = 1, using rng: inout Xoshiro256) throws -> SACLosses {
        let n = batch.observations.shape[0], d = actor.actionSize
        let targetNoise = Tensor.randomNormal([n, d], using: &rng)
        let actorNoise = Tensor.randomNormal([n, d], using: &rng)
        func rows(_ p: Int) -> Range<Int> { partRange(p, of: n, parts: parts) }
        func rows(_ x: Tensor, _ p: Int) -> Tensor { parts == 1 ? x : x.slice(axis: 0, rows(p)) }

        let agent = self
        let (terms, flat) = try distributedWeightedMean(parts, group: group, threads: threads, terms: 2,
                                                        parameters: critics.parameterCount) { p -> WeightedPart in
            let part = batch.rows(rows(p))
            let y = agent.targets(rewards: part.rewards, terminals: part.terminals, nextInputs: part.nextObservations,
                                  noise: rows(targetNoise, p))
            let (loss, gradient) = NN.valueAndGradient(at: agent.critics) { q in q.loss(part.observations, part.actions, targets: y) }
            return WeightedPart(weight: Double(rows(p).count), terms: [loss.doubleScalar, y.mean().doubleScalar],
                                gradient: gradient.flatParameters.values)
        }
        criticOptimizer.update(&critics, along: critics.withFlatParameters(flat))
        var losses = SACLosses()
        losses.critic = terms[0]
        losses.meanQ = terms[1]
        try updateActorAndTemperature(parts: parts, group: group, threads: threads, rows: { rows($0).count },
                                      inputs: { rows(batch.observations, $0) }, noise: { rows(actorNoise, $0) }, losses: &losses)
        updateTargets()
        return losses
    }
}

/// Scales actions in (−1, 1) to an environment's box: low + (a + 1)(high − low)/2.
public struct ActionScaling: Sendable {
    public let low: [Float]
    public let high: [Float]

    public init(_ space: Space) throws(ConfigError) {
        guard case .box(let low, let high, _) = space, low.allSatisfy(\.isFinite), high.allSatisfy(\.isFinite) else {
            throw ConfigError(field: "env", value: "\(space) actions", allowed: "a task family with bounded continuous actions (point-nav, pendulum-mass)")
        }
        self.low = low
        self.high = high
    }

    @inline(__always)
    public func callAsFunction(_ a: Float, _ j: Int) -> Float { low[j] + (a + 1) * 0.5 * (high[j] - low[j]) }
}
