import Testing
import GradientChecking
@testable import TensorCore

/// The one-step MAML objective L₂(θ − α∇L₁(θ)): its meta-gradient from the engine
/// (differentiating through the inner gradient step) against central finite differences.
@Suite struct MetaGradientTests {
    /// A two-layer tanh regression loss on a batch.
    static func loss(_ p: [Tensor], _ x: Tensor, _ y: Tensor) -> Tensor {
        ((x.matmul(p[0]) + p[1]).tanh().matmul(p[2]) - y).squared().mean()
    }

    static let alpha = 0.3
    static let x1 = randn([6, 3], seed: 1), y1 = randn([6, 2], seed: 2)
    static let x2 = randn([5, 3], seed: 3), y2 = randn([5, 2], seed: 4)

    static func metaObjective(_ p: [Tensor]) -> Tensor {
        let inner = gradient(at: p) { loss($0, x1, y1) }
        let adapted = zip(p, inner).map { $0 - $1 * alpha }
        return loss(adapted, x2, y2)
    }

    @Test func oneStepMetaGradientMatchesFiniteDifferences() {
        let theta = [randn([3, 4], seed: 5), randn([4], seed: 6), randn([4, 2], seed: 7)]
        let engine = gradient(at: theta, of: Self.metaObjective)
        let tolerance = 1e-6
        var worst = 0.0
        for k in theta.indices {
            for j in 0..<theta[k].count {
                let numeric = GradientCheck.centralDifference(theta, input: k, element: j) {
                    Self.metaObjective($0).doubleScalar
                }
                let error = abs(engine[k][flat: j] - numeric) / max(1, abs(numeric))
                worst = max(worst, error)
                #expect(error <= tolerance, "meta-gradient θ\(k)[\(j)]: engine \(engine[k][flat: j]), numeric \(numeric)")
            }
        }
        // The second-order term is not negligible here: the first-order approximation
        // (∇L₂ at the adapted parameters) differs from the true meta-gradient.
        let inner = gradient(at: theta) { Self.loss($0, Self.x1, Self.y1) }
        let adapted = zip(theta, inner).map { $0 - $1 * Self.alpha }
        let firstOrder = gradient(at: adapted) { Self.loss($0, Self.x2, Self.y2) }
        let gap = zip(engine, firstOrder).map { ($0 - $1).abs().max(axis: 0).doubleValues.max()! }.max()!
        #expect(gap > 1e-3, "first-order and second-order meta-gradients should differ, gap \(gap)")
    }
}
