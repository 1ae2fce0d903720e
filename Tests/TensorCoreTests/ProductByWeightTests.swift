import Testing
@testable import TensorCore

/// The in-place per-step product (`productByWeight`) against a product summed in Double,
/// over the tile edges of its kernels: rows not a multiple of the 6-row tile, columns in
/// 64-wide panels plus 16- or 8-wide tails, strides wider than the rows, beta 0 and 1.
@Suite struct ProductByWeightTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var m: Int, n: Int, k: Int, beta: Float
        var testDescription: String { "\(m)×\(k)·\(k)×\(n), beta \(beta)" }
    }

    static let cases: [Case] = [
        Case(m: 60, n: 768, k: 256, beta: 0), Case(m: 60, n: 256, k: 768, beta: 1),
        Case(m: 1, n: 16, k: 1, beta: 0), Case(m: 5, n: 80, k: 7, beta: 1), Case(m: 7, n: 24, k: 33, beta: 0),
        Case(m: 13, n: 144, k: 19, beta: 1), Case(m: 128, n: 64, k: 3, beta: 0),
        Case(m: 4, n: 20, k: 9, beta: 1),  // 20 columns: not a multiple of any vector width, so sgemm
    ]

    @Test(arguments: cases)
    func matchesADoubleProduct(_ c: Case) {
        var rng = Xoshiro256(seed: UInt64(c.m * 1000 + c.n + c.k))
        let lda = c.k + 3, ldb = c.n + 5, ldc = c.n + 2
        let a = (0..<(c.m * lda)).map { _ in rng.normalFloat() }
        let b = (0..<(c.k * ldb)).map { _ in rng.normalFloat() }
        let c0 = (0..<(c.m * ldc)).map { _ in rng.normalFloat() }
        var out = c0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { pc in
                    productByWeight(m: c.m, n: c.n, k: c.k, a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb,
                                    beta: c.beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
        var worst = 0.0
        for i in 0..<c.m {
            for j in 0..<ldc {
                let index = i * ldc + j
                guard j < c.n else {
                    #expect(out[index] == c0[index], "padding column \(j) of row \(i) was written")
                    continue
                }
                var sum = Double(c.beta) * Double(c0[index]), scale = abs(sum)
                for p in 0..<c.k {
                    let term = Double(a[i * lda + p]) * Double(b[p * ldb + j])
                    sum += term
                    scale += abs(term)
                }
                worst = max(worst, abs(Double(out[index]) - sum) / max(scale, 1))
            }
        }
        #expect(worst < 1e-5, "largest error relative to the sum of magnitudes: \(worst)")
    }

    /// The recurrences' transposed hidden weight is the weight's transpose.
    @Test func transposedWeightIsTheTranspose() {
        let n = 5
        let w = (0..<(n * 3 * n)).map(Float.init)
        let wt = w.withUnsafeBufferPointer { RecurrentSequence.transposedWeight($0.baseAddress!, hidden: n) }
        defer { wt.deallocate() }
        for i in 0..<n {
            for j in 0..<(3 * n) { #expect(wt[j * n + i] == w[i * 3 * n + j]) }
        }
    }
}
