import Envs
import Foundation
import NN
import RL
import TensorCore

/// The engine benchmark of `metarl bench engine`: small-network latency, large-batch
/// throughput, a GRU sequence, BLAS efficiency and a Hessian-vector product, as medians.
public struct EngineBenchmark: Codable, Sendable {
    /// MLP 8→64→64→4 (tanh), forward + backward of a scalar loss, batch 1, µs.
    public var mlp_b1_us: Double
    /// The same at batch 4096, µs.
    public var mlp_b4096_us: Double
    /// GRU input 16, hidden 256, batch 64 × 100 steps, forward + backward, ms.
    public var gru_ms: Double
    /// Engine 1024³ matmul time ÷ raw cblas_sgemm time on the same operands.
    public var matmul_ratio: Double
    /// The engine's 1024³ matmul throughput on one thread, GFLOP/s.
    public var matmul_gflops: Double
    /// The kernel set OpenBLAS chose.
    public var blas_core: String
    /// One Hessian-vector product of the MLP loss at batch 4096, ms.
    public var hvp_ms: Double
    /// MAML's two curvature products for a Gaussian MLP policy 2→64→64→2 on 2 000 steps
    /// (point-nav's shape), ms each: the policy-gradient loss's Hessian and the KL's
    /// (Fisher) at its fixed point, by the tape's recorded double backward and by
    /// `PolicyCurvature`'s R-operator pass, timed alternately.
    public var inner_hvp_tape_ms: Double
    public var inner_hvp_rop_ms: Double
    public var fisher_tape_ms: Double
    public var fisher_rop_ms: Double
    /// A recurrence's per-step products at `metarl bench rl2`'s shape (60 trials, hidden
    /// 256): `productByWeight` (B read in place) time ÷ sgemm's, forward (60×256 · 256×768)
    /// and backward (60×768 · 768×256, Wᵀ pre-transposed for the in-place kernel).
    public var step_product_forward_ratio: Double
    public var step_product_backward_ratio: Double

    /// Runs every measurement; `quick` cuts the repetitions (for smoke tests).
    public static func run(quick: Bool = false) -> EngineBenchmark {
        let blas = BLASLibrary.shared
        var rng = Xoshiro256(seed: 0)
        let mlp = MLP(sizes: [8, 64, 64, 4], activation: .tanh, using: &rng)
        func mlpLoss(_ m: MLP, _ x: Tensor) -> Tensor { m(x).squared().mean() }

        let x1 = Tensor.randomNormal([1, 8], using: &rng)
        let b1 = Timing.median(samples: quick ? 3 : 21, inner: quick ? 100 : 2000, warmup: 200) {
            _ = valueAndGradient(at: mlp) { mlpLoss($0, x1) }
        }
        let xBig = Tensor.randomNormal([4096, 8], using: &rng)
        let big = Timing.median(samples: quick ? 3 : 21, inner: quick ? 2 : 20, warmup: 5) {
            _ = valueAndGradient(at: mlp) { mlpLoss($0, xBig) }
        }
        let v = mlp.parameters.map { Tensor.randomNormal($0.shape, using: &rng) }
        let hvp = Timing.median(samples: quick ? 3 : 21, inner: quick ? 1 : 10, warmup: 3) {
            _ = hessianVectorProduct(at: mlp.parameters, vector: v) { p in
                var m = mlp
                m.parameters = p
                return mlpLoss(m, xBig)
            }
        }

        let curvature = policyCurvature(samples: quick ? 3 : 31, using: &rng)

        let gru = GRUCell(inputSize: 16, hiddenSize: 256, using: &rng)
        let sequence = Tensor.randomNormal([100, 64, 16], using: &rng)
        let h0 = gru.zeroState(batchSize: 64)
        let gruTime = Timing.median(samples: quick ? 3 : 11, inner: 1, warmup: 2) {
            _ = valueAndGradient(at: gru) { cell in cell.unroll(sequence, initialState: h0).outputs.mean() }
        }

        let n = 1024
        let a = Tensor.randomNormal([n, n], using: &rng), b = Tensor.randomNormal([n, n], using: &rng)
        var c = Tensor.zeros([n, n])
        let samples = quick ? 3 : 15
        var engine: [Double] = [], raw: [Double] = []
        _ = Tensor.matmul(a, b)
        for _ in 0..<samples {  // interleaved, so drift in the machine's speed hits both alike
            var start = Timing.now()
            _ = Tensor.matmul(a, b)
            engine.append(Timing.now() - start)
            start = Timing.now()
            a.withUnsafeFloats { pa in
                b.withUnsafeFloats { pb in
                    c.withUnsafeMutableFloats { pc in
                        blas.gemm(transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1,
                                  a: pa.baseAddress!, lda: n, b: pb.baseAddress!, ldb: n, beta: 0, c: pc.baseAddress!, ldc: n)
                    }
                }
            }
            raw.append(Timing.now() - start)
        }
        let engineTime = Timing.medianOf(engine), rawTime = Timing.medianOf(raw)
        let stepProducts = stepProductRatios(samples: quick ? 3 : 31, using: &rng)
        return EngineBenchmark(
            mlp_b1_us: b1 * 1e6, mlp_b4096_us: big * 1e6, gru_ms: gruTime * 1e3,
            matmul_ratio: engineTime / rawTime, matmul_gflops: 2 * Double(n * n * n) / engineTime / 1e9,
            blas_core: blas.coreName, hvp_ms: hvp * 1e3,
            inner_hvp_tape_ms: curvature.innerTape * 1e3, inner_hvp_rop_ms: curvature.innerROp * 1e3,
            fisher_tape_ms: curvature.fisherTape * 1e3, fisher_rop_ms: curvature.fisherROp * 1e3,
            step_product_forward_ratio: stepProducts.forward, step_product_backward_ratio: stepProducts.backward)
    }

    /// In-place ÷ sgemm median times of the per-step products (100 steps' worth per
    /// sample, alternated so that drift hits both alike).
    static func stepProductRatios(samples: Int, using rng: inout Xoshiro256) -> (forward: Double, backward: Double) {
        let rows = 60, n = 256, steps = 100
        let h = Tensor.randomNormal([rows, 3 * n], using: &rng), w = Tensor.randomNormal([n, 3 * n], using: &rng)
        let wt = w.transposed()
        var out = [Float](repeating: 0, count: rows * 3 * n)
        var times: [[Double]] = [[], [], [], []]
        let blas = BLASLibrary.shared
        h.withUnsafeFloats { ph in
            w.withUnsafeFloats { pw in
                wt.withUnsafeFloats { pwt in
                    out.withUnsafeMutableBufferPointer { pc in
                        let a = ph.baseAddress!, b = pw.baseAddress!, bt = pwt.baseAddress!, c = pc.baseAddress!
                        let runs: [() -> Void] = [
                            { productByWeight(m: rows, n: 3 * n, k: n, a: a, lda: 3 * n, b: b, ldb: 3 * n, beta: 0, c: c, ldc: 3 * n) },
                            { blas.gemm(transposeA: false, transposeB: false, m: rows, n: 3 * n, k: n, alpha: 1,
                                        a: a, lda: 3 * n, b: b, ldb: 3 * n, beta: 0, c: c, ldc: 3 * n) },
                            { productByWeight(m: rows, n: n, k: 3 * n, a: a, lda: 3 * n, b: bt, ldb: n, beta: 1, c: c, ldc: n) },
                            { blas.gemm(transposeA: false, transposeB: true, m: rows, n: n, k: 3 * n, alpha: 1,
                                        a: a, lda: 3 * n, b: b, ldb: 3 * n, beta: 1, c: c, ldc: n) },
                        ]
                        for run in runs { for _ in 0..<steps { run() } }
                        for _ in 0..<samples {
                            for (i, run) in runs.enumerated() {
                                let start = Timing.now()
                                for _ in 0..<steps { run() }
                                times[i].append(Timing.now() - start)
                            }
                        }
                    }
                }
            }
        }
        let m = times.map(Timing.medianOf)
        return (m[0] / m[1], m[2] / m[3])
    }

    /// Median seconds of one product of each kind; see `inner_hvp_tape_ms`.
    static func policyCurvature(samples: Int, using rng: inout Xoshiro256)
        -> (innerTape: Double, innerROp: Double, fisherTape: Double, fisherROp: Double) {
        let rows = 2000
        var policy = MLPPolicy(observationSize: 2, actionSpace: .box(low: -0.1, high: 0.1, shape: [2]),
                               hiddenSizes: [64, 64], using: &rng)
        policy.network.layers[2].weight = policy.network.layers[2].weight * 10
        let observations = Tensor.randomNormal([rows, 2], using: &rng)
        let actions = Tensor.randomNormal([rows, 2], using: &rng)
        let weights = Tensor.randomNormal([rows], using: &rng) / Double(rows)
        let fixed = policy.distribution(observations).detached
        func recorded(_ loss: @escaping (MLPPolicy) -> Tensor) -> HessianVectorProducts {
            HessianVectorProducts(at: policy.parameters) { p in
                var m = policy
                m.parameters = p
                return loss(m)
            }
        }
        let innerTape = recorded { -($0.logProb(observations, actions) * weights).sum() }
        let fisherTape = recorded { (fixed.kl(to: $0.distribution(observations)) * weights).sum() }
        let innerROp = PolicyCurvature(policy: policy, observations: observations,
                                       loss: .negativeLogLikelihood(actions: actions, weights: weights))
        let fisherROp = PolicyCurvature(policy: policy, observations: observations, loss: .klFromFixedPoint(weights: weights))
        let v = policy.parameters.map { Tensor.randomNormal($0.shape, using: &rng) }
        let products: [([Tensor]) -> [Tensor]] = [innerTape.callAsFunction, innerROp.callAsFunction,
                                                  fisherTape.callAsFunction, fisherROp.callAsFunction]
        var times = [[Double]](repeating: [], count: products.count)
        for product in products { _ = product(v) }
        for _ in 0..<samples {  // interleaved, so drift in the machine's speed hits all alike
            for (k, product) in products.enumerated() {
                let start = Timing.now()
                _ = product(v)
                times[k].append(Timing.now() - start)
            }
        }
        let medians = times.map(Timing.medianOf)
        return (medians[0], medians[1], medians[2], medians[3])
    }

    /// A readable table of the results beside the targets.
    public var table: String {
        let rows: [(String, String, String)] = [
            ("MLP 8→64→64→4 fwd+bwd, batch 1", String(format: "%.2f µs", mlp_b1_us), "≤ 10 µs"),
            ("MLP fwd+bwd, batch 4096", String(format: "%.0f µs", mlp_b4096_us), ""),
            ("GRU 16→256, 64 × 100 steps fwd+bwd", String(format: "%.1f ms", gru_ms), "≤ PyTorch"),
            ("matmul 1024³ engine ÷ cblas_sgemm", String(format: "%.3f", matmul_ratio), "≤ 1.25"),
            ("matmul 1024³ throughput (1 thread)", String(format: "%.1f GFLOP/s", matmul_gflops), "≥ 120"),
            ("Hessian-vector product, MLP batch 4096", String(format: "%.2f ms", hvp_ms), ""),
            ("policy-gradient Hessian product, tape", String(format: "%.2f ms", inner_hvp_tape_ms), "policy 2→64→64→2, 2 000 steps"),
            ("policy-gradient Hessian product, R-op", String(format: "%.2f ms", inner_hvp_rop_ms),
             String(format: "%.2f× the tape's", inner_hvp_rop_ms / inner_hvp_tape_ms)),
            ("Fisher product, tape", String(format: "%.2f ms", fisher_tape_ms), ""),
            ("Fisher product, R-op", String(format: "%.2f ms", fisher_rop_ms),
             String(format: "%.2f× the tape's", fisher_rop_ms / fisher_tape_ms)),
            ("step product 60×256·256×768, in place ÷ sgemm", String(format: "%.2f", step_product_forward_ratio),
             "AVX width \(productByWeightWidth) floats (0: sgemm only)"),
            ("step product 60×768·768×256ᵀ, in place ÷ sgemm", String(format: "%.2f", step_product_backward_ratio), ""),
            ("OpenBLAS kernels", blas_core, BLASLibrary.shared.coreTypeSource),
        ]
        let w0 = rows.map(\.0.count).max()!, w1 = rows.map(\.1.count).max()!
        return rows.map { r in
            r.0.padding(toLength: w0, withPad: " ", startingAt: 0) + "  "
                + r.1.padding(toLength: w1, withPad: " ", startingAt: 0) + "  " + r.2
        }.joined(separator: "\n")
    }
}
