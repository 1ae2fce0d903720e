import Foundation
import Testing
import GradientChecking
import TensorCore
@testable import NN

/// Values of the distributions against closed forms, and finite-difference checks of
/// logProb, entropy and KL (first and second order, tolerances in GradientCheck).
@Suite struct DistributionTests {
    @Test func categoricalValues() {
        let d = Categorical(logits: Tensor(shape: [2, 3], values: [0, 0, 0, 1, 2, 3]))
        #expect(abs(d.entropy().values[0] - Float(Foundation.log(3.0))) < 1e-6)
        let z = exp(1.0) + exp(2.0) + exp(3.0)
        let lp = d.logProb([2, 0]).values
        #expect(abs(Double(lp[0]) - Foundation.log(1.0 / 3)) < 1e-6)
        #expect(abs(Double(lp[1]) - (1 - Foundation.log(z))) < 1e-6)
        #expect(d.kl(to: d).values.allSatisfy { abs($0) < 1e-7 })
        #expect(d.mode == [0, 2])
        // Sampling frequencies follow the probabilities.
        var rng = Xoshiro256(seed: 1)
        let wide = Categorical(logits: Tensor(shape: [1, 3], values: [1, 2, 3]))
        var counts = [0, 0, 0]
        for _ in 0..<30_000 { counts[Int(wide.sample(using: &rng)[0])] += 1 }
        for j in 0..<3 { #expect(abs(Double(counts[j]) / 30_000 - exp(Double(j + 1)) / z) < 0.01) }
    }

    @Test func categoricalGradients() {
        let other = randn([3, 4], seed: 2)
        GradientCheck.check([randn([3, 4], seed: 3)]) { x in
            let d = Categorical(logits: x[0])
            return d.logProb([0, 3, 1]).sum() + d.entropy().sum() * 0.5 + d.kl(to: Categorical(logits: other)).sum()
        }
        // KL gradient with respect to the second argument too.
        GradientCheck.check([randn([3, 4], seed: 4), other]) { x in
            Categorical(logits: x[0]).kl(to: Categorical(logits: x[1])).sum()
        }
    }

    @Test func gaussianValues() {
        let d = DiagonalGaussian(mean: Tensor(shape: [1, 2], doubleValues: [0.5, -1], dtype: .float64),
                                 logStd: Tensor(shape: [2], doubleValues: [0.2, -0.3], dtype: .float64))
        let x = Tensor(shape: [1, 2], doubleValues: [1, 0], dtype: .float64)
        var expected = 0.0
        for (xi, mi, ls) in [(1.0, 0.5, 0.2), (0.0, -1.0, -0.3)] {
            let s = exp(ls)
            expected += -0.5 * pow((xi - mi) / s, 2) - Foundation.log(s) - 0.5 * Foundation.log(2 * .pi)
        }
        #expect(abs(d.logProb(x).doubleScalar(0) - expected) < 1e-12)
        #expect(abs(d.entropy().doubleScalar(0) - (0.2 - 0.3 + 1 + Foundation.log(2 * .pi))) < 1e-12)
        // KL against a Monte-Carlo estimate E_p[log p − log q].
        let q = DiagonalGaussian(mean: Tensor(shape: [1, 2], doubleValues: [0, 0], dtype: .float64),
                                 logStd: Tensor(shape: [2], doubleValues: [0, 0.4], dtype: .float64))
        var rng = Xoshiro256(seed: 5)
        let big = DiagonalGaussian(mean: d.mean.expanded(to: [200_000, 2]), logStd: d.logStd)
        let s = big.sample(using: &rng)
        let mc = (big.logProb(s) - DiagonalGaussian(mean: q.mean.expanded(to: [200_000, 2]), logStd: q.logStd).logProb(s)).mean().doubleScalar
        #expect(abs(d.kl(to: q).doubleScalar(0) - mc) < 0.01)
    }

    @Test func gaussianGradients() {
        let x = randn([3, 2], seed: 6), otherMean = randn([3, 2], seed: 7), otherLogStd = randn([2], seed: 8, scale: 0.3)
        GradientCheck.check([randn([3, 2], seed: 9), randn([2], seed: 10, scale: 0.3), otherMean, otherLogStd]) { p in
            let d = DiagonalGaussian(mean: p[0], logStd: p[1])
            let q = DiagonalGaussian(mean: p[2], logStd: p[3])
            return d.logProb(x).sum() + d.entropy().sum() + d.kl(to: q).sum()
        }
    }

    @Test func tanhGaussianDensityIsTheChangeOfVariables() {
        let d = TanhGaussian(mean: Tensor(shape: [1, 1], doubleValues: [0.3], dtype: .float64),
                             logStd: Tensor(shape: [1], doubleValues: [-0.2], dtype: .float64))
        for a in [-0.9, -0.2, 0.4, 0.95] {
            let u = atanh(a)
            let base = -0.5 * pow((u - 0.3) / exp(-0.2), 2) + 0.2 - 0.5 * Foundation.log(2 * .pi)
            let expected = base - Foundation.log(1 - a * a)
            let got = d.logProb(action: Tensor(shape: [1, 1], doubleValues: [a], dtype: .float64)).doubleScalar(0)
            #expect(abs(got - expected) < 1e-6, "a = \(a)")
        }
        // Samples stay inside (−1, 1) and their density integrates the same way.
        var rng = Xoshiro256(seed: 11)
        let (action, u) = d.sample(using: &rng)
        #expect(abs(action.doubleScalar(0) - tanh(u.doubleScalar(0))) < 1e-12)
    }

    @Test func tanhGaussianGradients() {
        let noise = randn([4, 3, 2], seed: 12)
        let u = randn([3, 2], seed: 13)
        GradientCheck.check([randn([3, 2], seed: 14, scale: 0.5), randn([2], seed: 15, scale: 0.3), randn([3, 2], seed: 16)]) { p in
            let d = TanhGaussian(mean: p[0], logStd: p[1])
            let q = TanhGaussian(mean: p[2], logStd: p[1] * 0.5)
            return d.logProb(preSquash: u).sum() + d.entropy(noise: noise).sum() + d.kl(to: q).sum()
        }
    }
}

extension Tensor {
    func doubleScalar(_ i: Int) -> Double { self[flat: i] }
}
