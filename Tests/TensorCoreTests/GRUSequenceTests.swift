import GradientChecking
import Testing
@testable import TensorCore

/// The fused GRU sequence primitive against its composed form and against finite differences.
@Suite struct GRUSequenceTests {
    static let steps = 4, batch = 3, hidden = 2
    static let keep = Tensor(shape: [4, 3], doubleValues: [1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1])

    static func inputs(_ seed: UInt64) -> [Tensor] {
        [randn([steps, batch, 3 * hidden], seed: seed), randn([batch, hidden], seed: seed + 1, scale: 0.5),
         randn([hidden, 3 * hidden], seed: seed + 2, scale: 0.7), randn([3 * hidden], seed: seed + 3, scale: 0.3)]
    }

    static func fused(_ p: [Tensor], keep: Tensor?) -> Tensor {
        Tensor.gruSequence(projected: p[0], initialState: p[1], hiddenWeight: p[2], hiddenBias: p[3],
                           keep: keep?.converted(to: p[0].dtype))
    }

    static func composed(_ p: [Tensor], keep: Tensor?) -> Tensor {
        Tensor.gruSequenceComposed(projected: p[0], initialState: p[1], hiddenWeight: p[2], hiddenBias: p[3],
                                   keep: keep?.converted(to: p[0].dtype))
    }

    @Test(arguments: [false, true])
    func valuesAndGradientsMatchTheComposedForm(withResets: Bool) {
        let p = Self.inputs(10), keep = withResets ? Self.keep : nil
        let a = Self.fused(p, keep: keep), b = Self.composed(p, keep: keep)
        #expect(zip(a.doubleValues, b.doubleValues).allSatisfy { abs($0 - $1) < 1e-12 })
        let w = randn(a.shape, seed: 3)
        let ga = gradient(at: p) { (Self.fused($0, keep: keep) * w).sum() }
        let gb = gradient(at: p) { (Self.composed($0, keep: keep) * w).sum() }
        for k in p.indices {
            #expect(zip(ga[k].doubleValues, gb[k].doubleValues).allSatisfy { abs($0 - $1) < 1e-12 }, "input \(k)")
        }
        // A reset really cuts the dependence: with keep = 0 at step 1 for copy 1, that
        // copy's later states do not depend on the initial state.
        if withResets {
            let onCopyOne = gradient(at: p) { Self.fused($0, keep: keep).slice(axis: 0, 1..<4).slice(axis: 1, 1..<2).sum() }
            #expect(onCopyOne[1].slice(axis: 0, 1..<2).doubleValues.allSatisfy { $0 == 0 })
        }
    }

    /// First and second order against finite differences (the second order goes through
    /// the backward rule's composed replay).
    @Test func derivativesMatchFiniteDifferences() {
        GradientCheck.checkOperation(Self.inputs(20)) { Self.fused($0, keep: Self.keep) }
    }

    /// Float32 (the training dtype, whose rows run in C) agrees with float64 (the Swift loops)
    /// to single precision, values and gradients, also at a width that fills the C kernels'
    /// widest vectors and leaves a remainder.
    @Test func float32MatchesFloat64() {
        var p = Self.inputs(30)
        let a = Self.fused(p.map { $0.converted(to: .float32) }, keep: Self.keep).doubleValues
        let b = Self.fused(p, keep: Self.keep).doubleValues
        #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-5 })
        let n = 37
        p = [randn([5, 3, 3 * n], seed: 31), randn([3, n], seed: 32, scale: 0.5), randn([n, 3 * n], seed: 33, scale: 0.3),
             randn([3 * n], seed: 34, scale: 0.3)]
        let keep = Tensor(shape: [5, 3], doubleValues: [1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1])
        let w = randn([5, 3, n], seed: 35)
        let v64 = Self.fused(p, keep: keep).doubleValues
        let v32 = Self.fused(p.map { $0.converted(to: .float32) }, keep: keep).doubleValues
        #expect(zip(v32, v64).allSatisfy { abs($0 - $1) < 1e-5 })
        let g64 = gradient(at: p) { (Self.fused($0, keep: keep) * w).sum() }
        let g32 = gradient(at: p.map { $0.converted(to: .float32) }) { (Self.fused($0, keep: keep) * w.converted(to: .float32)).sum() }
        for k in p.indices {
            let scale = g64[k].doubleValues.map(abs).max()!
            #expect(zip(g32[k].doubleValues, g64[k].doubleValues).allSatisfy { abs($0 - $1) < 1e-4 * Swift.max(1, scale) }, "input \(k)")
        }
    }
}
