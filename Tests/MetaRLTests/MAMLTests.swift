import Envs
import Foundation
import GradientChecking
@testable import MetaRL
import NN
@testable import RL
import TensorCore
import Testing

/// MAML's meta-gradient on a tiny problem, in float64.
@Suite struct MAMLTests {
    static func batch(seed: UInt64) -> EpisodeBatch {
        var rng = Xoshiro256(seed: seed)
        let episodes = 2, steps = 3
        return EpisodeBatch(
            episodes: episodes, steps: steps, observationSize: 2, actionWidth: 2,
            observations: (0..<(episodes * steps * 2)).map { _ in rng.normalFloat() },
            actions: (0..<(episodes * steps * 2)).map { _ in rng.normalFloat() * 0.5 },
            rewards: [Float](repeating: 0, count: episodes * steps),
            mask: [1, 1, 1, 1, 1, 0], episodeReturns: [0, 0])
    }

    static let train = batch(seed: 1), valid = batch(seed: 2)
    static let trainAdvantages = Tensor(shape: [6], doubleValues: [1.0, -0.5, 0.3, -1.2, 0.8, 0])
    static let validAdvantages = Tensor(shape: [6], doubleValues: [-0.7, 1.1, 0.4, 0.2, -0.9, 0])
    static let alpha = 0.3

    static func policy() -> MLPPolicy {
        var rng = Xoshiro256(seed: 3)
        var p = MLPPolicy(observationSize: 2, actionSpace: .box(low: -1, high: 1, shape: [2]), hiddenSizes: [3], using: &rng)
        // Larger output weights than the default initialisation, so the inner step matters.
        p.network.layers[1].weight = p.network.layers[1].weight * 10
        return p.converted(to: .float64)
    }

    /// J(θ) = E_valid[log π_θ′(a|s) · A] with θ′ = θ − α∇L_in(θ).
    static func postAdaptationObjective(_ theta: MLPPolicy, secondOrder: Bool) -> Tensor {
        let adapted = MAML<PointNavigation>.adapt(theta, stepSizes: nil, scalarStep: alpha, on: train,
                                                  advantages: trainAdvantages, secondOrder: secondOrder)
        let obs = valid.observationTensor.converted(to: .float64), actions = valid.actionTensor.converted(to: .float64)
        return (adapted.logProb(obs, actions) * validAdvantages * valid.maskTensor.converted(to: .float64)).sum() / valid.validSteps
    }

    /// The second-order meta-gradient equals the central finite difference of J, and the
    /// first-order one differs from it by exactly −α·H_in·∇_θ′J (the term it drops).
    @Test func metaGradientMatchesFiniteDifferencesAndFirstOrderDropsTheHessianTerm() {
        let theta = Self.policy()
        let secondOrder = NN.gradient(at: theta) { Self.postAdaptationObjective($0, secondOrder: true) }
        let firstOrder = NN.gradient(at: theta) { Self.postAdaptationObjective($0, secondOrder: false) }
        let flat = theta.parameters, engine = secondOrder.flatParameters.doubleValues
        var index = 0, worst = 0.0
        for k in flat.indices {
            for j in 0..<flat[k].count {
                let numeric = GradientCheck.centralDifference(flat, input: k, element: j) { p in
                    var t = theta
                    t.parameters = p
                    return Self.postAdaptationObjective(t, secondOrder: false).doubleScalar
                }
                worst = max(worst, abs(engine[index] - numeric) / max(1, abs(numeric)))
                index += 1
            }
        }
        #expect(worst < 1e-6, "worst relative error \(worst)")

        // ∇_θ′ J at θ′, then H_in · that vector at θ.
        let adapted = MAML<PointNavigation>.adapt(theta, stepSizes: nil, scalarStep: Self.alpha, on: Self.train,
                                                  advantages: Self.trainAdvantages, secondOrder: false).detached
        let outer = NN.gradient(at: adapted) { p in
            (p.logProb(Self.valid.observationTensor.converted(to: .float64), Self.valid.actionTensor.converted(to: .float64))
                * Self.validAdvantages * Self.valid.maskTensor.converted(to: .float64)).sum() / Self.valid.validSteps
        }
        let hv = hessianVectorProduct(at: theta.parameters, vector: outer.parameters) { p in
            var t = theta
            t.parameters = p
            let obs = Self.train.observationTensor.converted(to: .float64), actions = Self.train.actionTensor.converted(to: .float64)
            return -(t.logProb(obs, actions) * Self.trainAdvantages * Self.train.maskTensor.converted(to: .float64)).sum()
                / Self.train.validSteps
        }
        let term = hv.flatMap(\.doubleValues).map { -Self.alpha * $0 }
        let difference = zip(engine, firstOrder.flatParameters.doubleValues).map { $0 - $1 }
        #expect(zip(difference, term).allSatisfy { abs($0 - $1) < 1e-9 })
        // And the term is not negligible here.
        #expect(term.map { abs($0) }.max()! > 1e-3)
    }

    /// At θ_old the Hessian of KL(π_θ′old ‖ π_θ′(θ)) in θ is Jᵀ F′ J, J = I − α∇²L_in, F′ the
    /// KL's Hessian in θ′ (its gradient in θ′ vanishes there): the factored Fisher product
    /// equals the product through the inner step's recorded gradient (third order).
    @Test func factoredFisherProductMatchesTheProductThroughTheInnerStep() {
        let theta = Self.policy()
        let oldAdapted = MAML<PointNavigation>.adapt(theta, stepSizes: nil, scalarStep: Self.alpha, on: Self.train,
                                                     advantages: Self.trainAdvantages, secondOrder: false).detached
        let obs = Self.valid.observationTensor.converted(to: .float64)
        let old = oldAdapted.distribution(obs).detached
        func kl(_ adapted: MLPPolicy) -> Tensor { old.kl(to: adapted.distribution(obs)).mean() }
        var rng = Xoshiro256(seed: 9)
        let v = theta.parameters.map { Tensor.randomNormal($0.shape, dtype: .float64, using: &rng) }
        let full = hessianVectorProduct(at: theta.parameters, vector: v) { p in
            var m = theta
            m.parameters = p
            return kl(MAML<PointNavigation>.adapt(m, stepSizes: nil, scalarStep: Self.alpha, on: Self.train,
                                                  advantages: Self.trainAdvantages, secondOrder: true))
        }
        func jacobian(_ u: [Tensor]) -> [Tensor] {
            let hu = hessianVectorProduct(at: theta.parameters, vector: u) { p in
                var m = theta
                m.parameters = p
                return MAML<PointNavigation>.innerLoss(m, on: Self.train, advantages: Self.trainAdvantages)
            }
            return zip(u, hu).map { $0 - $1 * Self.alpha }
        }
        let fisherAdapted = hessianVectorProduct(at: oldAdapted.parameters, vector: jacobian(v)) { p in
            var m = oldAdapted
            m.parameters = p
            return kl(m)
        }
        let factored = jacobian(fisherAdapted).flatMap(\.doubleValues)
        let expected = full.flatMap(\.doubleValues)
        #expect(zip(factored, expected).allSatisfy { abs($0 - $1) < 1e-9 * max(1, abs($1)) })
        #expect(expected.map { abs($0) }.max()! > 1e-3)  // not a trivially zero product
    }

    /// The factored products and the third-order ones give the same TRPO step, up to
    /// float32 rounding that conjugate gradient amplifies.
    @Test func factoredFisherGivesTheSameOuterStep() throws {
        var config = MAMLConfig()
        config.hiddenSizes = [8]
        config.metaBatchSize = 4
        config.fastBatchSize = 4
        func step(factored: Bool) throws -> [Double] {
            var maml = try MAML(config: config, prototype: PointNavigation(horizon: 10), seed: 3)
            maml.useFactoredFisher = factored
            let before = maml.state.policy.flatParameters.doubleValues
            _ = try maml.iterate()
            return zip(maml.state.policy.flatParameters.doubleValues, before).map { $0 - $1 }
        }
        let a = try step(factored: true), b = try step(factored: false)
        let cosine = TRPO.dot(a, b) / (TRPO.dot(a, a) * TRPO.dot(b, b)).squareRoot()
        #expect(cosine > 0.999, "cosine \(cosine)")
        #expect(TRPO.dot(a, a) > 0)
    }

    /// The outer step differentiates each task on its own tape, the tasks side by side;
    /// the shares are added in task order, so a meta-iteration (TRPO, second order, and PPO,
    /// Meta-SGD) gives bit-identical parameters on one thread and on three.
    @Test(arguments: [(MAMLConfig.Mode.secondOrder, MAMLConfig.OuterOptimizer.trpo), (.metaSGD, .ppo)])
    func outerStepDoesNotDependOnTheThreadCount(mode: MAMLConfig.Mode, outer: MAMLConfig.OuterOptimizer) throws {
        var config = MAMLConfig()
        config.mode = mode
        config.outerOptimizer = outer
        config.hiddenSizes = [8]
        config.metaBatchSize = 5
        config.fastBatchSize = 3
        config.ppoEpochs = 2
        func train(threads: Int, iterations: Int) throws -> [Float] {
            var maml = try MAML(config: config, prototype: PointNavigation(horizon: 10), seed: 3)
            maml.threads = threads
            for _ in 0..<iterations { _ = try maml.iterate() }
            return MetaParameters(policy: maml.state.policy, stepSizes: maml.state.stepSizes).flatParameters.values
        }
        let one = try train(threads: 1, iterations: 2)
        #expect(one == (try train(threads: 3, iterations: 2)))
        #expect(one != (try train(threads: 1, iterations: 0)))  // the steps did move θ
    }
}

@Suite struct ReptileTests {
    /// Mode reptile has no meta-gradient: MAML refuses it (it used to run second-order MAML
    /// silently), and Reptile refuses the other modes.
    @Test func modesGoToTheirOwnAlgorithm() throws {
        var config = MAMLConfig()
        config.mode = .reptile
        #expect(throws: MAMLError.self) { try MAML(config: config, prototype: PointNavigation(), seed: 1) }
        _ = try Reptile(config: config, prototype: PointNavigation(), seed: 1)
        config.mode = .secondOrder
        #expect(throws: MAMLError.self) { try Reptile(config: config, prototype: PointNavigation(), seed: 1) }
    }

    /// With two tasks and ε = 1, Reptile's update is model aggregation w·φ₁ + (1 − w)·φ₂;
    /// with ε < 1 it moves θ that fraction of the way to the average.
    @Test func twoTasksOneStepIsModelAggregation() {
        var rng = Xoshiro256(seed: 4)
        let space = Space.box(low: -1, high: 1, shape: [2])
        let theta = MLPPolicy(observationSize: 3, actionSpace: space, hiddenSizes: [5], using: &rng)
        let phi1 = MLPPolicy(observationSize: 3, actionSpace: space, hiddenSizes: [5], using: &rng)
        let phi2 = MLPPolicy(observationSize: 3, actionSpace: space, hiddenSizes: [5], using: &rng)
        let w = 0.3
        let aggregated = Reptile<PointNavigation>.aggregate(theta, adapted: [phi1, phi2], weights: [w, 1 - w], outerStepSize: 1)
        let expected = zip(phi1.flatParameters.doubleValues, phi2.flatParameters.doubleValues).map { w * $0 + (1 - w) * $1 }
        #expect(zip(aggregated.flatParameters.doubleValues, expected).allSatisfy { abs($0 - $1) < 1e-6 })
        let halfway = Reptile<PointNavigation>.aggregate(theta, adapted: [phi1, phi2], weights: [0.5, 0.5], outerStepSize: 0.5)
        let expectedHalf = zip(theta.flatParameters.doubleValues, zip(phi1.flatParameters.doubleValues, phi2.flatParameters.doubleValues))
            .map { t, p in t + 0.5 * ((p.0 + p.1) / 2 - t) }
        #expect(zip(halfway.flatParameters.doubleValues, expectedHalf).allSatisfy { abs($0 - $1) < 1e-6 })
    }
}
