import Foundation
import Testing
import GradientChecking
@testable import TensorCore

/// Forward results against hand-computed values, so a kernel cannot be wrong in a way
/// its own gradient check would not see.
@Suite struct ForwardValueTests {
    @Test func broadcastingArithmetic() {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3], values: [10, 20, 30])
        #expect((a + b).values == [11, 22, 33, 14, 25, 36])
        let c = Tensor(shape: [2, 1], values: [2, 3])
        #expect((a * c).values == [2, 4, 6, 12, 15, 18])
        #expect((c - b).shape == [2, 3])
        #expect((c - b).values == [-8, -18, -28, -7, -17, -27])
        #expect((a / 2).values == [0.5, 1, 1.5, 2, 2.5, 3])
        #expect((1 - a).values == [0, -1, -2, -3, -4, -5])
        let rank3 = Tensor(shape: [2, 1, 2], values: [1, 2, 3, 4])
        let rank2 = Tensor(shape: [3, 1], values: [10, 20, 30])
        #expect((rank3 + rank2).shape == [2, 3, 2])
        #expect((rank3 + rank2).values == [11, 12, 21, 22, 31, 32, 13, 14, 23, 24, 33, 34])
    }

    @Test func matmulMatchesNaiveLoops() {
        var rng = Xoshiro256(seed: 3)
        for (m, k, n) in [(1, 64, 64), (5, 7, 3), (33, 17, 65)] {
            for tA in [false, true] {
                for tB in [false, true] {
                    let a = Tensor.randomNormal(tA ? [k, m] : [m, k], using: &rng)
                    let b = Tensor.randomNormal(tB ? [n, k] : [k, n], using: &rng)
                    let c = Tensor.matmul(a, b, transposeA: tA, transposeB: tB)
                    let av = a.doubleValues, bv = b.doubleValues, cv = c.doubleValues
                    var worst = 0.0
                    for i in 0..<m {
                        for j in 0..<n {
                            var s = 0.0
                            for l in 0..<k { s += av[tA ? l * m + i : i * k + l] * bv[tB ? j * k + l : l * n + j] }
                            worst = max(worst, abs(s - cv[i * n + j]))
                        }
                    }
                    #expect(worst < 1e-4, "matmul \(m)×\(k)×\(n) tA=\(tA) tB=\(tB): error \(worst)")
                }
            }
        }
        let batch = Tensor.matmul(Tensor(shape: [2, 1, 2], values: [1, 2, 3, 4]), Tensor(shape: [2, 2, 1], values: [5, 6, 7, 8]))
        #expect(batch.shape == [2, 1, 1])
        #expect(batch.values == [17, 53])
    }

    @Test func reductions() {
        let x = Tensor(shape: [2, 3], values: [1, 5, 3, 4, 2, 6])
        #expect(x.sum().values == [21])
        #expect(x.sum(axes: [0]).values == [5, 7, 9])
        #expect(x.sum(axes: [1]).values == [9, 12])
        #expect(x.sum(axes: [1], keepDims: true).shape == [2, 1])
        #expect(x.mean(axes: [-1]).values == [3, 4])
        #expect(x.max(axis: 1).values == [5, 6])
        #expect(x.max(axis: 0).values == [4, 5, 6])
        let y = Tensor(shape: [2, 3, 2], values: (0..<12).map(Float.init))
        #expect(y.sum(axes: [0, 2]).values == [14, 22, 30])
        #expect(y.sum(axes: [0, 1]).values == [30, 36])
        let big = Tensor(shape: [3], values: [1000, 1001, 1002])
        let lse = big.logSumExp(axis: 0).scalar
        #expect(abs(lse - (1002 + log(1 + exp(-1) + exp(-2)))) < 1e-3)
        let p = Tensor(shape: [2, 3], values: [1, 2, 3, -1, 0, 100]).softmax(axis: 1)
        #expect(abs(p.sum(axes: [1]).values[0] - 1) < 1e-6 && abs(p.values[5] - 1) < 1e-6)
    }

    @Test func movingData() {
        let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        #expect(x.transposed().values == [1, 4, 2, 5, 3, 6])
        let y = Tensor(shape: [2, 3, 2], values: (0..<12).map(Float.init))
        #expect(y.permuted([2, 0, 1]).shape == [2, 2, 3])
        #expect(y.permuted([2, 0, 1]).values == [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11])
        #expect(Tensor(shape: [2, 1], values: [1, 2]).expanded(to: [2, 2, 3]).values == [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2])
        #expect(Tensor.concat([x, Tensor(shape: [2, 1], values: [7, 8])], axis: 1).values == [1, 2, 3, 7, 4, 5, 6, 8])
        #expect(Tensor.stack([x, x * 10], axis: 0).shape == [2, 2, 3])
        #expect(x.slice(axis: 1, 1..<3).values == [2, 3, 5, 6])
        #expect(x.padded(axis: 0, start: 1, size: 3).values == [0, 0, 0, 1, 2, 3, 4, 5, 6])
        #expect(x.gathering(axis: 1, indices: [2, 0], indexShape: [2, 1]).values == [3, 4])
        #expect(
            Tensor(shape: [3], values: [1, 2, 3]).scatterAdding(axis: 0, indices: [1, 1, 0], shape: [2]).values == [3, 3])
        #expect(Tensor.where(Tensor(shape: [3], values: [1, 0, 1]), x, Tensor(-1)).values == [1, -1, 3, 4, -1, 6])
        #expect(x.reshaped([3, -1]).shape == [3, 2])
    }

    @Test func elementwiseFunctions() {
        let x = Tensor(shape: [4], values: [-2, -0.5, 0.5, 2])
        #expect(x.relu().values == [0, 0, 0.5, 2])
        #expect(x.abs().values == [2, 0.5, 0.5, 2])
        #expect(x.clamped(-1, 1).values == [-1, -0.5, 0.5, 1])
        #expect(x.greater(Tensor(0)).values == [0, 0, 1, 1])
        let sp = Tensor(shape: [3], values: [-100, 0, 100]).softplus().values
        #expect(sp[0] >= 0 && sp[0] < 1e-30 && abs(sp[1] - Float(log(2.0))) < 1e-6 && sp[2] == 100)
    }

    /// The vectorised Float exp, tanh and sigmoid against the C library in Double.
    @Test func fastFloatMathIsAccurate() {
        var worstExp = 0.0, worstTanh = 0.0, worstSigmoid = 0.0
        var values: [Float] = []
        var v: Float = -87
        while v < 88 { values.append(v); v += 0.0137 }
        let x = Tensor(shape: [values.count], values: values)
        let e = x.exp().values, t = x.tanh().values, s = x.sigmoid().values
        for (i, xi) in values.enumerated() {
            let d = Double(xi)
            worstExp = max(worstExp, abs(Double(e[i]) - Foundation.exp(d)) / Foundation.exp(d))
            worstTanh = max(worstTanh, abs(Double(t[i]) - Foundation.tanh(d)) / max(abs(Foundation.tanh(d)), 1e-30))
            let sig = 1 / (1 + Foundation.exp(-d))
            worstSigmoid = max(worstSigmoid, abs(Double(s[i]) - sig) / sig)
        }
        // One Float ulp is 1.19e-7 relative: ask for at most 3 ulp (exp, sigmoid) and 4 (tanh).
        #expect(worstExp < 3.6e-7, "exp relative error \(worstExp)")
        #expect(worstTanh < 4.8e-7, "tanh relative error \(worstTanh)")
        #expect(worstSigmoid < 3.6e-7, "sigmoid relative error \(worstSigmoid)")
        #expect(Tensor(shape: [3], values: [0, 1e-8, -3e-5]).tanh().values == [0, 1e-8, -3e-5])
    }

    /// The Float tanh and multiply-add run as C loops built for several vector widths,
    /// without fused multiply-adds: they round exactly as the Swift expressions do.
    @Test func cKernelsRoundAsTheSwiftLoops() {
        var rng = Xoshiro256(seed: 21)
        let values = (0..<4099).map { _ in rng.normalFloat() * 4 }
        #expect(Tensor(shape: [values.count], values: values).tanh().values == values.map(fastTanh))
        let s = Tensor.randomNormal([33, 7], using: &rng), a = Tensor.randomNormal([33, 7], using: &rng)
        let b = Tensor.randomNormal([33, 7], using: &rng), y = Tensor.randomNormal([33, 7], using: &rng)
        var z = y
        z.multiplyAdd(scale: s, a, b)
        let expected = (0..<y.count).map { i in y.values[i] * s.values[i] + a.values[i] * b.values[i] }
        #expect(z.values == expected)
    }

    /// In-place updates change only the tensor they are called on, even when its storage
    /// was shared, and agree with the out-of-place operations.
    @Test func inPlaceUpdatesKeepValueSemantics() {
        var rng = Xoshiro256(seed: 22)
        let a = Tensor.randomNormal([5, 3], using: &rng), b = Tensor.randomNormal([4, 3], using: &rng)
        let c = Tensor.randomNormal([5, 4], using: &rng)
        var d = c
        d.addMatrixProduct(a, b, transposeB: true)
        #expect(c.values != d.values)
        let sum = (c + Tensor.matmul(a, b, transposeB: true)).values
        #expect(zip(d.values, sum).allSatisfy { abs($0 - $1) < 1e-5 })
        // A broadcast copy is written in place without touching the vector it came from.
        let bias = Tensor(shape: [3], values: [1, -2, 0.5])
        var rows = bias.expanded(to: [5, 3])
        rows.addMatrixProduct(a, Tensor.ones([3, 3]))
        #expect(bias.values == [1, -2, 0.5] && rows.values[0] != 1)
    }

    @Test func float32AndFloat64RunTheSameGraph() {
        var rng = Xoshiro256(seed: 11)
        let x = Tensor.randomNormal([8, 5], using: &rng), w = Tensor.randomNormal([5, 3], using: &rng)
        func f(_ x: Tensor, _ w: Tensor) -> Tensor { x.matmul(w).tanh().logSoftmax(axis: 1).mean() }
        let single = f(x, w).doubleScalar
        let double = f(x.converted(to: .float64), w.converted(to: .float64)).doubleScalar
        #expect(abs(single - double) < 1e-5)
    }

    @Test func codableRoundTrip() throws {
        let x = Tensor(shape: [2, 2], values: [1, -2, 3.5, 4])
        let data = try JSONEncoder().encode(x)
        let y = try JSONDecoder().decode(Tensor.self, from: data)
        #expect(y.shape == x.shape && y.values == x.values)
        let bad = #"{"shape":[2,2],"values":[1,2,3]}"#.data(using: .utf8)!
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Tensor.self, from: bad) }
    }

    @Test func inPlaceWriteCopiesSharedStorage() {
        let a = Tensor(shape: [3], values: [1, 2, 3])
        var b = a.reshaped([3, 1])  // shares storage with a
        b.withUnsafeMutableFloats { $0[0] = 100 }
        #expect(a.values == [1, 2, 3])
        #expect(b.values == [100, 2, 3])
    }

    @Test func shapeMismatchStopsNamingBothShapes() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]) + Tensor.zeros([4])
        } .map { result in
            let text = String(decoding: result.standardErrorContent, as: UTF8.self)
            #expect(text.contains("[2, 3]") && text.contains("[4]"))
        }
    }
}

/// The fast paths of broadcasting: shapes that differ only by leading 1s add element for
/// element, a one-row gradient reaches a bias by a reshape, a scalar expands by a fill;
/// each gives what the general path gives.
@Suite struct BroadcastFastPathTests {
    @Test func alignedShapesAreRecognisedAndOthersAreNot() {
        #expect(alignedShape([1, 64], [64]) == [1, 64])
        #expect(alignedShape([64], [1, 1, 64]) == [1, 1, 64])
        #expect(alignedShape([64, 1], [1, 64]) == nil)
        #expect(alignedShape([2, 64], [64]) == nil)
        #expect(alignedShape([3], [4]) == nil)
    }

    @Test func aBiasOnOneRowAndItsGradientMatchTheGeneralPath() {
        var rng = Xoshiro256(seed: 5)
        let x = Tensor.randomNormal([1, 6], using: &rng), b = Tensor.randomNormal([6], using: &rng)
        let y = x + b
        #expect(y.shape == [1, 6])
        #expect(y.values == zip(x.values, b.values).map { $0 + $1 })
        // The same through the general broadcast (two rows), first row.
        let two = Tensor.concat([x, x], axis: 0) + b
        #expect(Array(two.values.prefix(6)) == y.values)
        let (_, g) = valueAndGradient(at: [x, b]) { p in ((p[0] + p[1]) * p[1]).sum() }
        #expect(g[1].shape == [6])
        #expect(zip(g[1].values, zip(x.values, b.values).map { $0 + 2 * $1 }).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(Tensor.zeros([3, 2]).summed(toShape: [1, 2]).shape == [1, 2])
        #expect(Tensor(repeating: 2, shape: [1, 1]).expanded(to: [2, 3]).values == [Float](repeating: 2, count: 6))
    }
}
