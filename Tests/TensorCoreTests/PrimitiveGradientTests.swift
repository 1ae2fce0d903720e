import Testing
import GradientChecking
@testable import TensorCore

/// Every primitive's first and second derivatives against finite differences
/// (tolerances in GradientCheck).
@Suite struct PrimitiveGradientTests {
    @Test func addSubtractMultiplyDivideWithBroadcasting() {
        let shapes: [([Int], [Int])] = [([3, 4], [3, 4]), ([3, 4], [4]), ([3, 1], [1, 4]), ([2, 3, 4], [3, 1]), ([3, 4], [])]
        for (i, (sa, sb)) in shapes.enumerated() {
            let a = randn(sa, seed: UInt64(i))
            let b = randn(sb, seed: UInt64(i + 10))
            let positive = randu(sb, seed: UInt64(i + 20), 0.5, 2)
            GradientCheck.checkOperation([a, b]) { $0[0] + $0[1] }
            GradientCheck.checkOperation([a, b]) { $0[0] - $0[1] }
            GradientCheck.checkOperation([a, b]) { $0[0] * $0[1] }
            GradientCheck.checkOperation([a, positive]) { $0[0] / $0[1] }
            GradientCheck.checkOperation([b, a]) { $0[0] * $0[1] }  // broadcast on the left
        }
    }

    @Test func affineAndScalarOperators() {
        let x = randn([5], seed: 1)
        GradientCheck.checkOperation([x]) { $0[0].affine(scale: -1.5, shift: 0.3) }
        GradientCheck.checkOperation([x]) { 2 - $0[0] * 3 }
        GradientCheck.checkOperation([randu([5], seed: 2, 0.5, 2)]) { 1.5 / $0[0] }
    }

    @Test func matmulAllTransposes() {
        for tA in [false, true] {
            for tB in [false, true] {
                let a = randn(tA ? [4, 3] : [3, 4], seed: 1)
                let b = randn(tB ? [2, 4] : [4, 2], seed: 2)
                GradientCheck.checkOperation([a, b]) { Tensor.matmul($0[0], $0[1], transposeA: tA, transposeB: tB) }
            }
        }
    }

    /// An operand used by several products gets their gradients added, the later ones by
    /// BLAS in place (β = 1) in a first-order pass.
    @Test func matmulFanIn() {
        let a = randn([3, 3], seed: 5), b = randn([3, 3], seed: 6)
        GradientCheck.checkOperation([a, b]) { x in
            Tensor.matmul(x[0], x[1]) + Tensor.matmul(x[1], x[0], transposeA: true) + Tensor.matmul(x[0], x[0], transposeB: true)
        }
    }

    @Test func batchedMatmul() {
        for tA in [false, true] {
            for tB in [false, true] {
                let a = randn(tA ? [2, 4, 3] : [2, 3, 4], seed: 3)
                let b = randn(tB ? [2, 5, 4] : [2, 4, 5], seed: 4)
                GradientCheck.checkOperation([a, b]) { Tensor.matmul($0[0], $0[1], transposeA: tA, transposeB: tB) }
            }
        }
    }

    @Test func smoothUnaryFunctions() {
        let x = randn([2, 3], seed: 5)
        GradientCheck.checkOperation([x]) { $0[0].exp() }
        GradientCheck.checkOperation([x]) { $0[0].tanh() }
        GradientCheck.checkOperation([randn([2, 3], seed: 7), x.tanh()]) { Tensor.tanhGradient($0[0], output: $0[1]) }
        GradientCheck.checkOperation([randn([2, 3], seed: 7), randn([3], seed: 8)]) { Tensor.tanhGradient($0[0], output: $0[1]) }
        GradientCheck.checkOperation([x]) { $0[0].sigmoid() }
        GradientCheck.checkOperation([x * 3]) { $0[0].softplus() }
        let positive = randu([2, 3], seed: 6, 0.3, 3)
        GradientCheck.checkOperation([positive]) { $0[0].log() }
        GradientCheck.checkOperation([positive]) { $0[0].sqrt() }
        GradientCheck.checkOperation([positive]) { $0[0].pow(1.7) }
        GradientCheck.checkOperation([positive]) { $0[0].pow(-0.5) }
        GradientCheck.checkOperation([x]) { $0[0].pow(2) }
        GradientCheck.checkOperation([x]) { $0[0].pow(3) }
    }

    @Test func piecewiseUnaryFunctionsAwayFromKinks() {
        let x = awayFromZero([3, 3], seed: 7)
        GradientCheck.checkOperation([x]) { $0[0].relu() }
        GradientCheck.checkOperation([x]) { $0[0].abs() }
        // Bounds between the sample values, never within a finite-difference step of one.
        let values = x.doubleValues.sorted()
        let lo = (values[2] + values[3]) / 2, hi = (values[6] + values[7]) / 2
        GradientCheck.checkOperation([x]) { $0[0].clamped(lo, hi) }
    }

    @Test func whereSelectsBranchGradients() {
        let mask = Tensor(shape: [2, 3], doubleValues: [1, 0, 1, 0, 0, 1])
        let a = randn([2, 3], seed: 8), b = randn([3], seed: 9)
        GradientCheck.checkOperation([a, b]) { Tensor.where(mask, $0[0], $0[1]) }
        let p = awayFromZero([4], seed: 10), q = awayFromZero([4], seed: 11) * 2
        GradientCheck.checkOperation([p, q]) { Tensor.maximum($0[0], $0[1]) }
        GradientCheck.checkOperation([p, q]) { Tensor.minimum($0[0], $0[1]) }
    }

    @Test func sumOverAxes() {
        let x = randn([2, 3, 4], seed: 12)
        for axes in [[0], [1], [2], [0, 1], [1, 2], [0, 2], [0, 1, 2]] {
            GradientCheck.checkOperation([x]) { $0[0].sum(axes: axes) }
            GradientCheck.checkOperation([x]) { $0[0].sum(axes: axes, keepDims: true) }
        }
        GradientCheck.checkOperation([x]) { $0[0].sum() }
        GradientCheck.checkOperation([x]) { $0[0].mean(axes: [-1]) }
    }

    @Test func maxAlongAxes() {
        // Distinct values so no ties sit within a finite-difference step.
        let x = Tensor(shape: [3, 4], doubleValues: (0..<12).map { Double(($0 * 7) % 12) * 0.3 - 1 })
        GradientCheck.checkOperation([x]) { $0[0].max(axis: 0) }
        GradientCheck.checkOperation([x]) { $0[0].max(axis: 1, keepDims: true) }
        GradientCheck.checkOperation([x]) { $0[0].logSumExp(axis: 1) }
        GradientCheck.checkOperation([x]) { $0[0].softmax(axis: -1) }
        GradientCheck.checkOperation([x]) { $0[0].logSoftmax(axis: 0) }
    }

    @Test func shapeOperations() {
        let x = randn([2, 3, 4], seed: 13)
        GradientCheck.checkOperation([x]) { $0[0].reshaped([6, 4]) }
        GradientCheck.checkOperation([x]) { $0[0].reshaped([4, -1]) }
        GradientCheck.checkOperation([x]) { $0[0].permuted([2, 0, 1]) }
        GradientCheck.checkOperation([x]) { $0[0].permuted([1, 0, 2]) }
        GradientCheck.checkOperation([randn([3, 5], seed: 14)]) { $0[0].transposed() }
        GradientCheck.checkOperation([randn([3, 1], seed: 15)]) { $0[0].expanded(to: [2, 3, 4]) }
        GradientCheck.checkOperation([x]) { $0[0].slice(axis: 1, 1..<3) }
        GradientCheck.checkOperation([x]) { $0[0].slice(axis: -1, 0..<1) }
        GradientCheck.checkOperation([x]) { $0[0].padded(axis: 0, start: 1, size: 4) }
    }

    @Test func concatAndStack() {
        let a = randn([2, 3], seed: 16), b = randn([2, 1], seed: 17), c = randn([2, 2], seed: 18)
        GradientCheck.checkOperation([a, b, c]) { Tensor.concat($0, axis: 1) }
        GradientCheck.checkOperation([a, randn([1, 3], seed: 19)]) { Tensor.concat($0, axis: 0) }
        GradientCheck.checkOperation([a, randn([2, 3], seed: 20)]) { Tensor.stack($0, axis: 1) }
        // A constant part among tracked ones.
        GradientCheck.checkOperation([a]) { Tensor.concat([$0[0], c], axis: 1) }
    }

    @Test func gatherAndScatterAdd() {
        let x = randn([3, 4], seed: 21)
        let rows: [Int32] = [1, 3, 0]
        GradientCheck.checkOperation([x]) { $0[0].gathering(axis: 1, indices: rows, indexShape: [3, 1]) }
        let repeated: [Int32] = [0, 2, 2, 1, 1, 0, 2, 2]  // repeated indices accumulate
        GradientCheck.checkOperation([x]) { $0[0].gathering(axis: 0, indices: repeated, indexShape: [2, 4]) }
        let g = randn([2, 4], seed: 22)
        GradientCheck.checkOperation([g]) { $0[0].scatterAdding(axis: 0, indices: repeated, shape: [3, 4]) }
    }

    @Test func compositeOperations() {
        let x = randn([3, 4], seed: 23)
        GradientCheck.checkOperation([x]) { $0[0].variance(axes: [1], keepDims: true) }
        GradientCheck.checkOperation([randn([2, 3, 4], seed: 24), randn([4, 2], seed: 25)]) { $0[0].matmul($0[1]) }
        GradientCheck.checkOperation([x]) { $0[0].summed(toShape: [1, 4]) }
    }

    @Test func constantsAndUnusedInputsGetZeroGradients() {
        let x = randn([3], seed: 26), unused = randn([2], seed: 27)
        let g = gradient(at: [x, unused]) { ($0[0] * 2).sum() }
        #expect(g[0].doubleValues == [2, 2, 2])
        #expect(g[1].doubleValues == [0, 0])
        // A Hessian of a linear function is exactly zero.
        let hv = hessianVectorProduct(at: [x], vector: [x]) { ($0[0] * 2).sum() }
        #expect(hv[0].doubleValues == [0, 0, 0])
    }

    @Test func reusedTensorAccumulatesGradient() {
        // f = Σ x·x + Σ x, reached twice from x: ∂f/∂x = 2x + 1; ∂²f = 2I.
        let x = randn([4], seed: 28)
        let g = gradient(at: [x]) { ($0[0] * $0[0]).sum() + $0[0].sum() }
        for (gi, xi) in zip(g[0].doubleValues, x.doubleValues) { #expect(Swift.abs(gi - (2 * xi + 1)) < 1e-12) }
        GradientCheck.check([x]) { (($0[0] * $0[0]).sum() + $0[0].sum()) * $0[0].sum() }
    }
}
