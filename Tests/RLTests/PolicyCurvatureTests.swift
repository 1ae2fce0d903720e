import Envs
import NN
@testable import RL
import TensorCore
import Testing

/// The R-operator products against the engine's Hessian-vector products (the recorded
/// backward pass differentiated again) of the same losses, in float64.
@Suite struct PolicyCurvatureTests {
    static let rows = 7

    static func policy(discrete: Bool, activation: Activation) -> MLPPolicy {
        var rng = Xoshiro256(seed: 11)
        let space: Space = discrete ? .discrete(3) : .box(low: -1, high: 1, shape: [2])
        var p = MLPPolicy(observationSize: 3, actionSpace: space, hiddenSizes: [5, 4], activation: activation, using: &rng)
        // A larger output layer than the initialisation's, and a log-std away from zero,
        // so that every term of the Hessian is of a visible size.
        p.network.layers[2].weight = p.network.layers[2].weight * 20
        if !discrete { p.logStd = Tensor(shape: [2], values: [0.3, -0.2]) }
        return p.converted(to: .float64)
    }

    static func data(discrete: Bool) -> (observations: Tensor, actions: Tensor, weights: Tensor) {
        var rng = Xoshiro256(seed: 12)
        let observations = Tensor.randomNormal([rows, 3], dtype: .float64, using: &rng)
        let actions = discrete
            ? Tensor(shape: [rows, 1], values: (0..<rows).map { Float($0 % 3) }, dtype: .float64)
            : Tensor.randomNormal([rows, 2], dtype: .float64, using: &rng)
        // Signed weights, as advantages are, one of them zero, as a masked step is.
        let weights = Tensor(shape: [rows], doubleValues: [0.9, -1.3, 0.4, 0, 1.7, -0.6, 0.25])
        return (observations, actions, weights)
    }

    @Test(arguments: [false, true], [Activation.tanh, .relu, .identity])
    func negativeLogLikelihoodHessian(discrete: Bool, activation: Activation) {
        let policy = Self.policy(discrete: discrete, activation: activation)
        let (observations, actions, weights) = Self.data(discrete: discrete)
        let curvature = PolicyCurvature(policy: policy, observations: observations,
                                        loss: .negativeLogLikelihood(actions: actions, weights: weights))
        Self.expectSameProducts(policy, curvature) { p in
            -(p.logProb(observations, actions) * weights).sum()
        }
    }

    @Test(arguments: [false, true], [Activation.tanh, .relu, .identity])
    func fisherAtTheFixedPoint(discrete: Bool, activation: Activation) {
        let policy = Self.policy(discrete: discrete, activation: activation)
        let (observations, _, weights) = Self.data(discrete: discrete)
        let fixed = policy.distribution(observations).detached
        let curvature = PolicyCurvature(policy: policy, observations: observations, loss: .klFromFixedPoint(weights: weights))
        Self.expectSameProducts(policy, curvature) { p in
            (fixed.kl(to: p.distribution(observations)) * weights).sum()
        }
    }

    /// The two products agree to 1e-10 (relative) for three random directions, and are
    /// not trivially zero.
    static func expectSameProducts(_ policy: MLPPolicy, _ curvature: PolicyCurvature, loss: (MLPPolicy) -> Tensor) {
        var rng = Xoshiro256(seed: 13)
        for _ in 0..<3 {
            let v = policy.parameters.map { Tensor.randomNormal($0.shape, dtype: .float64, using: &rng) }
            let expected = hessianVectorProduct(at: policy.parameters, vector: v) { parameters in
                var p = policy
                p.parameters = parameters
                return loss(p)
            }.flatMap(\.doubleValues)
            let product = curvature(v)
            #expect(zip(product, policy.parameters).allSatisfy { $0.shape == $1.shape })
            let actual = product.flatMap(\.doubleValues)
            let scale = expected.map(abs).max()!
            #expect(scale > 1e-2)
            let worst = zip(actual, expected).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-10 * scale, "worst difference \(worst) at scale \(scale)")
        }
    }
}
