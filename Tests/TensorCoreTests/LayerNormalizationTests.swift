import GradientChecking
import Testing
@testable import TensorCore

/// The fused layer normalisation against its composed form and against finite differences.
@Suite struct LayerNormalizationTests {
    static func inputs(_ seed: UInt64) -> [Tensor] {
        [randn([2, 3, 7], seed: seed) + randn([2, 3, 1], seed: seed + 1, scale: 2),
         randn([7], seed: seed + 2, scale: 0.3) + 1, randn([7], seed: seed + 3)]
    }

    @Test(arguments: [nil, [7], [4, 3], [2, 2, 3]] as [[Int]?])
    func valuesAndGradientsMatchTheComposedForm(segments: [Int]?) {
        let p = Self.inputs(70)
        let a = p[0].layerNormalized(gain: p[1], bias: p[2], segments: segments, epsilon: 1e-5)
        let b = p[0].layerNormalizedComposed(gain: p[1], bias: p[2], segments: segments, epsilon: 1e-5)
        #expect(zip(a.doubleValues, b.doubleValues).allSatisfy { abs($0 - $1) < 1e-12 })
        let w = randn(a.shape, seed: 5)
        let ga = gradient(at: p) { ($0[0].layerNormalized(gain: $0[1], bias: $0[2], segments: segments, epsilon: 1e-5) * w).sum() }
        let gb = gradient(at: p) { ($0[0].layerNormalizedComposed(gain: $0[1], bias: $0[2], segments: segments, epsilon: 1e-5) * w).sum() }
        for k in p.indices {
            #expect(zip(ga[k].doubleValues, gb[k].doubleValues).allSatisfy { abs($0 - $1) < 1e-11 }, "input \(k)")
        }
    }

    /// Each segment of each row comes out with mean `bias` and standard deviation `gain`
    /// when gain and bias are constant over the segment.
    @Test func segmentsAreStandardisedSeparately() {
        let x = randn([5, 6], seed: 80, scale: 3) + 4
        let y = x.layerNormalized(gain: Tensor(repeating: 2, shape: [6], dtype: .float64),
                                  bias: Tensor(repeating: 0.5, shape: [6], dtype: .float64), segments: [4, 2], epsilon: 0).doubleValues
        for row in 0..<5 {
            for range in [0..<4, 4..<6] {
                let v = range.map { y[row * 6 + $0] }
                let mean = v.reduce(0, +) / Double(v.count)
                let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)
                #expect(abs(mean - 0.5) < 1e-12 && abs(variance - 4) < 1e-10)
            }
        }
    }

    /// Float32 (rows in C) agrees with float64 (the Swift loops) to single precision, values
    /// and gradients, at a width past the C kernels' eight-wide sums.
    @Test func float32MatchesFloat64() {
        let p = [randn([4, 29], seed: 100) + 3, randn([29], seed: 101, scale: 0.3) + 1, randn([29], seed: 102)]
        let w = randn([4, 29], seed: 103)
        func f(_ q: [Tensor]) -> Tensor { q[0].layerNormalized(gain: q[1], bias: q[2], segments: [19, 10], epsilon: 1e-5) }
        let a = f(p.map { $0.converted(to: .float32) }).doubleValues, b = f(p).doubleValues
        #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-5 })
        let g64 = gradient(at: p) { (f($0) * w).sum() }
        let g32 = gradient(at: p.map { $0.converted(to: .float32) }) { (f($0) * w.converted(to: .float32)).sum() }
        for k in p.indices {
            #expect(zip(g32[k].doubleValues, g64[k].doubleValues).allSatisfy { abs($0 - $1) < 1e-4 }, "input \(k)")
        }
    }

    /// First and second order against finite differences (the second order goes through
    /// the backward rule's composed replay).
    @Test func derivativesMatchFiniteDifferences() {
        GradientCheck.checkOperation(Self.inputs(90)) { $0[0].layerNormalized(gain: $0[1], bias: $0[2], segments: [4, 3], epsilon: 1e-5) }
    }
}
