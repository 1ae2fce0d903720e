import Foundation
import Testing
import GradientChecking
import TensorCore
@testable import NN

/// Finite-difference checks (tolerances in GradientCheck: 1e-6 first order, 1e-5 second
/// order, float64) of every layer, with respect to its parameters and its inputs.
@Suite struct LayerGradientTests {
    /// Checks `f(model, inputs…)` with respect to the model's parameters and the extra inputs.
    func checkModel<M: ParameterCollection>(_ model: M, _ extra: [Tensor], _ f: @escaping (M, [Tensor]) -> Tensor) {
        let m64 = model.converted(to: .float64)
        let n = m64.parameters.count
        GradientCheck.check(m64.parameters + extra) { xs in
            var m = m64
            m.parameters = Array(xs[0..<n])
            return f(m, Array(xs[n...]))
        }
    }

    @Test func mlpWithTanhAndRelu() {
        var rng = Xoshiro256(seed: 1)
        for activation in [Activation.tanh, .relu] {
            let mlp = MLP(sizes: [3, 5, 4, 2], activation: activation, using: &rng)
            let w = randn([4, 2], seed: 3)
            checkModel(mlp, [randn([4, 3], seed: 2)]) { m, x in
                let y = m(x[0])
                return (y * y * w).sum()
            }
        }
    }

    @Test func layerNorm() {
        var norm = LayerNorm(size: 4)
        norm.gain = randn([4], seed: 4)
        norm.bias = randn([4], seed: 5)
        let w = randn([3, 4], seed: 6)
        checkModel(norm, [randn([3, 4], seed: 7)]) { m, x in (m(x[0]).tanh() * w).sum() }
    }

    @Test func gruUnrollWithResets() {
        var rng = Xoshiro256(seed: 8)
        let cell = GRUCell(inputSize: 3, hiddenSize: 4, using: &rng)
        let reset = Tensor(shape: [3, 2], doubleValues: [0, 0, 1, 0, 0, 1], dtype: .float64)
        let w = randn([3, 2, 4], seed: 9)
        checkModel(cell, [randn([3, 2, 3], seed: 10), randn([2, 4], seed: 11, scale: 0.5)]) { m, x in
            let (y, final) = m.unroll(x[0], initialState: x[1], resetMask: reset)
            return (y * w).sum() + final.squared().sum()
        }
    }

    @Test func lstmUnrollWithResets() {
        var rng = Xoshiro256(seed: 12)
        let cell = LSTMCell(inputSize: 3, hiddenSize: 3, using: &rng)
        let reset = Tensor(shape: [3, 2], doubleValues: [0, 1, 1, 0, 0, 0], dtype: .float64)
        let w = randn([3, 2, 3], seed: 13)
        checkModel(cell, [randn([3, 2, 3], seed: 14), randn([2, 6], seed: 15, scale: 0.5)]) { m, x in
            let (y, final) = m.unroll(x[0], initialState: x[1], resetMask: reset)
            return (y * w).sum() + final.squared().sum()
        }
    }

    @Test func layerNormGRUUnrollWithResets() {
        var rng = Xoshiro256(seed: 26)
        var cell = LayerNormGRUCell(inputSize: 3, hiddenSize: 4, using: &rng)
        // Gains and biases away from 1 and 0, so their gradients are exercised in general position.
        cell.hiddenGateNorm.gain = randn([8], seed: 27)
        cell.hiddenCandidateNorm.bias = randn([4], seed: 28)
        cell.inputCandidateNorm.bias = randn([4], seed: 29, scale: 0.5) + 0.5
        let reset = Tensor(shape: [3, 2], doubleValues: [0, 0, 1, 0, 0, 1], dtype: .float64)
        let w = randn([3, 2, 4], seed: 30)
        checkModel(cell, [randn([3, 2, 3], seed: 31), randn([2, 4], seed: 32, scale: 0.5)]) { m, x in
            let (y, final) = m.unroll(x[0], initialState: x[1], resetMask: reset)
            return (y * w).sum() + final.squared().sum()
        }
    }

    /// The layer-normalised GRU matches its equations written out by hand for one step:
    /// four normalisations, a ReLU candidate, the update gate shifted by the forget bias.
    @Test func layerNormGRUStepMatchesItsEquations() {
        var rng = Xoshiro256(seed: 33)
        var cell = LayerNormGRUCell(inputSize: 2, hiddenSize: 3, forgetBias: 1, using: &rng)
        cell.inputGateNorm.bias = randn([6], seed: 34)
        cell.hiddenCandidateNorm.gain = randn([3], seed: 35)
        cell = cell.converted(to: .float64)
        let x = randn([1, 2], seed: 36).doubleValues, h = randn([1, 3], seed: 37).doubleValues
        func product(_ v: [Double], _ w: Tensor, _ columns: Range<Int>) -> [Double] {
            let wv = w.doubleValues, width = w.shape[1]
            return columns.map { j in v.indices.reduce(0) { $0 + v[$1] * wv[$1 * width + j] } }
        }
        func normalised(_ v: [Double], _ norm: LayerNorm) -> [Double] {
            let mean = v.reduce(0, +) / Double(v.count)
            let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)
            let g = norm.gain.doubleValues, b = norm.bias.doubleValues
            return v.indices.map { (v[$0] - mean) / (variance + norm.epsilon).squareRoot() * g[$0] + b[$0] }
        }
        func sigmoid(_ v: Double) -> Double { 1 / (1 + exp(-v)) }
        let ax = normalised(product(x, cell.inputWeight, 0..<6), cell.inputGateNorm)
        let ah = normalised(product(h, cell.hiddenWeight, 0..<6), cell.hiddenGateNorm)
        let nx = normalised(product(x, cell.inputWeight, 6..<9), cell.inputCandidateNorm)
        let nh = normalised(product(h, cell.hiddenWeight, 6..<9), cell.hiddenCandidateNorm)
        let expected = (0..<3).map { j -> Double in
            let r = sigmoid(ax[j] + ah[j]), z = sigmoid(ax[3 + j] + ah[3 + j] - 1)
            let n = max(0, nx[j] + r * nh[j])
            return (1 - z) * h[j] + z * n
        }
        let (y, _) = cell(Tensor(shape: [1, 2], doubleValues: x, dtype: .float64), state: Tensor(shape: [1, 3], doubleValues: h, dtype: .float64))
        #expect(expected.contains { $0 > 0.05 } && expected.contains { $0 < -0.05 }, "both signs of the state are exercised")
        for (a, b) in zip(y.doubleValues, expected) { #expect(abs(a - b) < 1e-12) }
    }

    /// The reset mask must make the unroll equal to separate unrolls from a zero state.
    @Test func resetMaskStartsAFreshSequence() {
        var rng = Xoshiro256(seed: 16)
        let cell = GRUCell(inputSize: 2, hiddenSize: 3, using: &rng)
        let x = randn([4, 1, 2], seed: 17).converted(to: .float32)
        let h0 = Tensor.ones([1, 3])
        let reset = Tensor(shape: [4, 1], values: [0, 0, 1, 0])
        let (joined, _) = cell.unroll(x, initialState: h0, resetMask: reset)
        let (second, _) = cell.unroll(x.slice(axis: 0, 2..<4), initialState: cell.zeroState(batchSize: 1))
        let (first, _) = cell.unroll(x.slice(axis: 0, 0..<2), initialState: h0)
        #expect(joined.values == first.values + second.values)
        let (carried, _) = cell.unroll(x, initialState: h0)
        #expect(carried.slice(axis: 0, 2..<4).values != second.values)
    }

    /// The GRU matches PyTorch's equations written out by hand for one step.
    @Test func gruStepMatchesItsEquations() {
        var rng = Xoshiro256(seed: 18)
        let cell = GRUCell(inputSize: 2, hiddenSize: 2, using: &rng).converted(to: .float64)
        let x = randn([1, 2], seed: 19), h = randn([1, 2], seed: 20)
        func block(_ t: Tensor, _ k: Int) -> Tensor { t.slice(axis: t.rank - 1, (2 * k)..<(2 * k + 2)) }
        let gx = x.matmul(cell.inputWeight) + cell.inputBias
        let gh = h.matmul(cell.hiddenWeight) + cell.hiddenBias
        let r = (block(gx, 0) + block(gh, 0)).sigmoid()
        let z = (block(gx, 1) + block(gh, 1)).sigmoid()
        let n = (block(gx, 2) + r * block(gh, 2)).tanh()
        let expected = (1 - z) * n + z * h
        let (y, _) = cell(x, state: h)
        for (a, b) in zip(y.doubleValues, expected.doubleValues) { #expect(abs(a - b) < 1e-12) }
    }

    /// MAML through an MLP: the engine's meta-gradient of L_val(θ − α∇L_train(θ)) against
    /// central differences of that objective.
    @Test func mamlMetaGradientThroughAnMLP() {
        var rng = Xoshiro256(seed: 21)
        let mlp = MLP(sizes: [2, 4, 1], activation: .tanh, using: &rng).converted(to: .float64)
        let xTrain = randn([5, 2], seed: 22), yTrain = randn([5, 1], seed: 23)
        let xVal = randn([5, 2], seed: 24), yVal = randn([5, 1], seed: 25)
        let alpha = 0.3
        func metaObjective(_ m: MLP) -> Tensor {
            let g = gradient(at: m) { ($0(xTrain) - yTrain).squared().mean() }
            let adapted = m.zipParameters(g) { p, gp in p - gp * alpha }
            return (adapted(xVal) - yVal).squared().mean()
        }
        GradientCheck.check(mlp.parameters) { p in
            var m = mlp
            m.parameters = p
            return metaObjective(m)
        }
        // The first-order approximation (gradient detached) really differs.
        let full = gradient(at: mlp, of: metaObjective).flatParameters
        let firstOrder = gradient(at: mlp) { m -> Tensor in
            let g = gradient(at: m) { ($0(xTrain) - yTrain).squared().mean() }.detached
            return (m.zipParameters(g) { p, gp in p - gp * alpha }(xVal) - yVal).squared().mean()
        }.flatParameters
        #expect((full - firstOrder).squaredNorm().doubleScalar > 1e-8)
    }
}

/// Reading parameters in place (`forEachParameter`) gives what visiting them gives, in the
/// same order, for the collections that override it and for the default.
@Suite struct ForEachParameterTests {
    /// A collection that keeps the default `forEachParameter`.
    struct Pair: ParameterCollection {
        var a: Tensor, b: Tensor
        mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) {
            body("a", &a)
            body("b", &b)
        }
    }

    @Test func readsWhatVisitingReads() {
        var rng = Xoshiro256(seed: 2)
        let mlp = MLP(sizes: [3, 5, 2], activation: .tanh, using: &rng)
        let pairs = [Pair(a: Tensor.randomNormal([2], using: &rng), b: Tensor.randomNormal([3], using: &rng)),
                     Pair(a: Tensor.randomNormal([4], using: &rng), b: Tensor.randomNormal([1], using: &rng))]
        func visited<P: ParameterCollection>(_ p: P) -> [[Float]] {
            var copy = p, list: [[Float]] = []
            copy.visitParameters { _, t in list.append(t.values) }
            return list
        }
        func read<P: ParameterCollection>(_ p: P) -> [[Float]] {
            var list: [[Float]] = []
            p.forEachParameter { list.append($0.values) }
            return list
        }
        #expect(read(mlp) == visited(mlp) && read(mlp).count == 4)
        #expect(read(pairs) == visited(pairs) && read(pairs).count == 4)
        #expect(mlp.parameters.map(\.values) == visited(mlp))
    }
}
