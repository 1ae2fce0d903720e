import GradientChecking
import Testing
@testable import TensorCore

/// The fused layer-normalised GRU sequence primitive against its composed form and
/// against finite differences.
@Suite struct LayerNormGRUSequenceTests {
    static let steps = 4, batch = 3, hidden = 3
    static let keep = Tensor(shape: [4, 3], doubleValues: [1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1])

    /// Inputs in general position: gains and biases away from 1 and 0, the candidate's
    /// input shifted so that some ReLUs are open and some closed.
    static func inputs(_ seed: UInt64) -> [Tensor] {
        [randn([steps, batch, 3 * hidden], seed: seed), randn([batch, hidden], seed: seed + 1, scale: 0.5),
         randn([hidden, 3 * hidden], seed: seed + 2, scale: 0.7),
         randn([2 * hidden], seed: seed + 3, scale: 0.3) + 1, randn([2 * hidden], seed: seed + 4, scale: 0.3),
         randn([hidden], seed: seed + 5, scale: 0.3) + 1, randn([hidden], seed: seed + 6, scale: 0.3)]
    }

    static func fused(_ p: [Tensor], keep: Tensor?) -> Tensor {
        Tensor.layerNormGRUSequence(projected: p[0], initialState: p[1], hiddenWeight: p[2], gateGain: p[3], gateBias: p[4],
                                    candidateGain: p[5], candidateBias: p[6], forgetBias: 1, epsilon: 1e-5,
                                    keep: keep?.converted(to: p[0].dtype))
    }

    static func composed(_ p: [Tensor], keep: Tensor?) -> Tensor {
        Tensor.layerNormGRUSequenceComposed(projected: p[0], initialState: p[1], hiddenWeight: p[2], gateGain: p[3], gateBias: p[4],
                                            candidateGain: p[5], candidateBias: p[6], forgetBias: 1, epsilon: 1e-5,
                                            keep: keep?.converted(to: p[0].dtype))
    }

    @Test(arguments: [false, true])
    func valuesAndGradientsMatchTheComposedForm(withResets: Bool) {
        let p = Self.inputs(40), keep = withResets ? Self.keep : nil
        let a = Self.fused(p, keep: keep), b = Self.composed(p, keep: keep)
        #expect(zip(a.doubleValues, b.doubleValues).allSatisfy { abs($0 - $1) < 1e-12 })
        // Both sides of the ReLU are exercised: some candidates are cut to zero, some pass.
        let n = Self.hidden
        let saved = LayerNormGRUSequenceKernel.forward(p, keep: keep, .init(forgetBias: 1, epsilon: 1e-5)).saved.doubleValues
        var candidates: [Double] = []
        for row in 0..<(Self.steps * Self.batch) {
            let start = row * 4 * n + 2 * n
            candidates += saved[start..<(start + n)]
        }
        #expect(candidates.contains(0) && candidates.contains { $0 > 0.1 })
        let w = randn(a.shape, seed: 3)
        let ga = gradient(at: p) { (Self.fused($0, keep: keep) * w).sum() }
        let gb = gradient(at: p) { (Self.composed($0, keep: keep) * w).sum() }
        for k in p.indices {
            #expect(zip(ga[k].doubleValues, gb[k].doubleValues).allSatisfy { abs($0 - $1) < 1e-11 }, "input \(k)")
        }
        if withResets {
            let onCopyOne = gradient(at: p) { Self.fused($0, keep: keep).slice(axis: 0, 1..<4).slice(axis: 1, 1..<2).sum() }
            #expect(onCopyOne[1].slice(axis: 0, 1..<2).doubleValues.allSatisfy { $0 == 0 })
        }
    }

    /// First and second order against finite differences (the second order goes through
    /// the backward rule's composed replay).
    @Test func derivativesMatchFiniteDifferences() {
        GradientCheck.checkOperation(Self.inputs(50)) { Self.fused($0, keep: Self.keep) }
    }

    /// Float32 (the training dtype, whose rows run in C) agrees with float64 (the Swift
    /// loops) to single precision, values and gradients, at a width past the C kernels'
    /// eight-wide sums.
    @Test func float32MatchesFloat64() {
        var p = Self.inputs(60)
        let a = Self.fused(p.map { $0.converted(to: .float32) }, keep: Self.keep).doubleValues
        let b = Self.fused(p, keep: Self.keep).doubleValues
        #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-5 })
        let n = 19
        p = [randn([5, 3, 3 * n], seed: 61), randn([3, n], seed: 62, scale: 0.5), randn([n, 3 * n], seed: 63, scale: 0.3),
             randn([2 * n], seed: 64, scale: 0.3) + 1, randn([2 * n], seed: 65, scale: 0.3),
             randn([n], seed: 66, scale: 0.3) + 1, randn([n], seed: 67, scale: 0.3)]
        let keep = Tensor(shape: [5, 3], doubleValues: [1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1])
        let w = randn([5, 3, n], seed: 68)
        let g64 = gradient(at: p) { (Self.fused($0, keep: keep) * w).sum() }
        let g32 = gradient(at: p.map { $0.converted(to: .float32) }) { (Self.fused($0, keep: keep) * w.converted(to: .float32)).sum() }
        for k in p.indices {
            let scale = g64[k].doubleValues.map(abs).max()!
            #expect(zip(g32[k].doubleValues, g64[k].doubleValues).allSatisfy { abs($0 - $1) < 1e-4 * Swift.max(1, scale) }, "input \(k)")
        }
    }
}
