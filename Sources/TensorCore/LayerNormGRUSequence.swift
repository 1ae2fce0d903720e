// A layer-normalised GRU (NN's LayerNormGRUCell) over a whole sequence as one primitive.
//
// The same idea as GRUSequence.swift: composed from small primitives, one step would be
// a matrix product and some thirty element-wise operations and reductions, each with its
// own allocation and tape entry. Here the forward pass is one loop over time (one GEMM
// per step, the two normalisations and the gate arithmetic fused per row) and the backward
// pass one reverse loop, with the hidden weight's gradient taken as a single GEMM over
// all T·B rows at the end.
//
// The equations, with gx the input half already normalised for the whole sequence
// (LN(x Wx_rz) beside LN(x Wx_n)) and h the state after the optional reset:
//     gh = h·Wh,   ĝ = (gh − mean) / √(var + ε)  separately over the r,z block and the n block,
//     r = σ(gx_r + γ_r ĝ_r + β_r),   z = σ(gx_z + γ_z ĝ_z + β_z − forgetBias),
//     n = relu(gx_n + r ⊙ (γ_n ĝ_n + β_n)),   h′ = h + z ⊙ (n − h).
//
// The per-row loops run in C (CKernels) for Float, built for the CPU's widest vectors;
// the Swift loops here are the Double path and the reference.
//
// Its backward rule is fused for ordinary gradients; when the backward pass is itself
// recorded (TRPO's Fisher-vector products) it replays `layerNormGRUSequenceComposed`.

import CKernels

/// `p` as a Float pointer; only for T == Float.
@inline(__always)
func floats<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
}

@inline(__always)
func floats<T>(_ p: UnsafePointer<T>) -> UnsafePointer<Float> {
    UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
}

extension Tensor {
    /// All hidden states [T, B, H] of a layer-normalised GRU run over `projected` inputs
    /// [T, B, 3H] (gate blocks r, z, n, already normalised) from `initialState` [B, H],
    /// with `hiddenWeight` [H, 3H], the hidden gate normalisation's `gateGain`/`gateBias`
    /// [2H] and the hidden candidate normalisation's `candidateGain`/`candidateBias` [H].
    /// `keep` [T, B], a constant, multiplies the state before step t (0 resets it).
    public static func layerNormGRUSequence(
        projected: Tensor, initialState: Tensor, hiddenWeight: Tensor,
        gateGain: Tensor, gateBias: Tensor, candidateGain: Tensor, candidateBias: Tensor,
        forgetBias: Double, epsilon: Double, keep: Tensor? = nil
    ) -> Tensor {
        let parts = [projected, initialState, hiddenWeight, gateGain, gateBias, candidateGain, candidateBias]
        let constants = LayerNormGRUSequenceKernel.Constants(forgetBias: forgetBias, epsilon: epsilon)
        LayerNormGRUSequenceKernel.checkShapes(parts, keep)
        let (states, saved) = LayerNormGRUSequenceKernel.forward(parts.map(\.detached), keep: keep?.detached, constants)
        return Tape.recordMany(states, parts) { indices in
            .layerNormGRUSequence(parts: parts.map(\.detached), indices: indices, keep: keep?.detached,
                                  saved: saved, constants: constants)
        }
    }

    /// The same computation written with the small primitives: the reference the fused
    /// primitive is tested against, and what its backward rule replays when recorded.
    public static func layerNormGRUSequenceComposed(
        projected: Tensor, initialState: Tensor, hiddenWeight: Tensor,
        gateGain: Tensor, gateBias: Tensor, candidateGain: Tensor, candidateBias: Tensor,
        forgetBias: Double, epsilon: Double, keep: Tensor? = nil
    ) -> Tensor {
        LayerNormGRUSequenceKernel.checkShapes(
            [projected, initialState, hiddenWeight, gateGain, gateBias, candidateGain, candidateBias], keep)
        let steps = projected.shape[0], batch = projected.shape[1], n = hiddenWeight.shape[0]
        func normalised(_ x: Tensor, _ gain: Tensor, _ bias: Tensor) -> Tensor {
            let centred = x - x.mean(axes: [1], keepDims: true)
            return centred / (centred.squared().mean(axes: [1], keepDims: true) + epsilon).sqrt() * gain + bias
        }
        var h = initialState
        var states: [Tensor] = []
        for t in 0..<steps {
            if let keep { h = h * keep.detached.slice(axis: 0, t..<(t + 1)).reshaped([batch, 1]) }
            let gx = projected.slice(axis: 0, t..<(t + 1)).reshaped([batch, 3 * n])
            let gh = Tensor.matmul(h, hiddenWeight)
            let a = gx.slice(axis: 1, 0..<(2 * n)) + normalised(gh.slice(axis: 1, 0..<(2 * n)), gateGain, gateBias)
            let r = a.slice(axis: 1, 0..<n).sigmoid(), z = (a.slice(axis: 1, n..<(2 * n)) - forgetBias).sigmoid()
            let hn = normalised(gh.slice(axis: 1, (2 * n)..<(3 * n)), candidateGain, candidateBias)
            let candidate = (gx.slice(axis: 1, (2 * n)..<(3 * n)) + r * hn).relu()
            h = h + z * (candidate - h)
            states.append(h)
        }
        return Tensor.stack(states, axis: 0)
    }
}

/// The fused forward and backward loops of `Tensor.layerNormGRUSequence`.
enum LayerNormGRUSequenceKernel {
    /// The cell's two scalar settings.
    struct Constants {
        var forgetBias: Double
        var epsilon: Double
    }

    /// The saved tensor, flat: per row (t, b) the gates [4H] (r, z, the candidate and the
    /// normalised hidden candidate term γ_n ĝ_n + β_n), then per row the standardised
    /// hidden products ĝ [3H] (r, z, n blocks), then per row the two reciprocal standard
    /// deviations [2] (of the r,z block and of the n block).
    static func savedCount(rows: Int, hidden n: Int) -> Int { rows * (7 * n + 2) }

    static func checkShapes(_ parts: [Tensor], _ keep: Tensor?) {
        let (gx, h0, wh) = (parts[0], parts[1], parts[2])
        precondition(wh.rank == 2 && wh.shape[1] == 3 * wh.shape[0], "layerNormGRUSequence: hidden weight \(wh.shape), expected [H, 3H]")
        let n = wh.shape[0]
        precondition(gx.rank == 3 && gx.shape[2] == 3 * n, "layerNormGRUSequence: projected inputs \(gx.shape), expected [T, B, \(3 * n)]")
        precondition(h0.shape == [gx.shape[1], n], "layerNormGRUSequence: initial state \(h0.shape), expected [\(gx.shape[1]), \(n)]")
        precondition(parts[3].shape == [2 * n] && parts[4].shape == [2 * n], "layerNormGRUSequence: gate gain/bias \(parts[3].shape), \(parts[4].shape), expected [\(2 * n)]")
        precondition(parts[5].shape == [n] && parts[6].shape == [n], "layerNormGRUSequence: candidate gain/bias \(parts[5].shape), \(parts[6].shape), expected [\(n)]")
        precondition(gx.shape[0] > 0 && gx.shape[1] > 0, "layerNormGRUSequence: empty sequence \(gx.shape)")
        precondition(keep == nil || keep!.shape == [gx.shape[0], gx.shape[1]], "layerNormGRUSequence: keep \(keep!.shape), expected [T, B]")
        precondition(parts.allSatisfy { $0.dtype == gx.dtype } && (keep == nil || keep!.dtype == gx.dtype),
                     "layerNormGRUSequence: operands of different dtypes")
    }

    /// Runs the sequence; returns the states [T, B, H] and the saved values (`savedCount`).
    static func forward(_ parts: [Tensor], keep: Tensor?, _ constants: Constants) -> (states: Tensor, saved: Tensor) {
        let (gx, h0, wh) = (parts[0], parts[1], parts[2])
        let steps = gx.shape[0], batch = gx.shape[1], n = wh.shape[0], dtype = gx.dtype, rows = steps * batch
        let states = Storage.allocate(count: rows * n, dtype: dtype)
        let saved = Storage.allocate(count: savedCount(rows: rows, hidden: n), dtype: dtype)
        func run<T: KernelScalar>(_: T.Type) {
            let pgx = gx.storage.pointer(T.self), ph0 = h0.storage.pointer(T.self), pwh = wh.storage.pointer(T.self)
            let gateGain = parts[3].storage.pointer(T.self), gateBias = parts[4].storage.pointer(T.self)
            let candidateGain = parts[5].storage.pointer(T.self), candidateBias = parts[6].storage.pointer(T.self)
            let pkeep = keep?.storage.pointer(T.self)
            let ps = states.pointer(T.self), psaved = saved.pointer(T.self)
            let savedGates = psaved, savedStandard = psaved + rows * 4 * n, savedInverse = psaved + rows * 7 * n
            let forgetBias = T(constants.forgetBias), epsilon = T(constants.epsilon)
            let gh = UnsafeMutablePointer<T>.allocate(capacity: batch * 3 * n)
            let previous = UnsafeMutablePointer<T>.allocate(capacity: batch * n)
            defer { gh.deallocate(); previous.deallocate() }
            for t in 0..<steps {
                RecurrentSequence.startingState(step: t, initial: ph0, states: ps, keep: pkeep, batch: batch, hidden: n, into: previous)
                T.productByWeight(m: batch, n: 3 * n, k: n,
                       a: previous, lda: n, b: pwh, ldb: 3 * n, beta: 0, c: gh, ldc: 3 * n)
                for b in 0..<batch {
                    let row = t * batch + b, x = pgx + row * 3 * n, g = gh + b * 3 * n
                    let u = savedStandard + row * 3 * n, gates = savedGates + row * 4 * n
                    let h = previous + b * n, y = ps + row * n
                    if T.self == Float.self {
                        // The C kernel, built for the CPU's widest vectors.
                        metarl_lngru_forward_row_f32(
                            floats(x), floats(g), floats(h), floats(gateGain), floats(gateBias), floats(candidateGain),
                            floats(candidateBias), Float(constants.forgetBias), Float(constants.epsilon), n,
                            floats(u), floats(gates), floats(savedInverse + 2 * row), floats(y))
                        continue
                    }
                    // Short loops over few pointers each, so that they vectorise.
                    savedInverse[2 * row] = LayerNormalizationKernel.standardise(g, into: u, 2 * n, epsilon: epsilon)
                    savedInverse[2 * row + 1] = LayerNormalizationKernel.standardise(g + 2 * n, into: u + 2 * n, n, epsilon: epsilon)
                    let r = gates, z = gates + n, candidate = gates + 2 * n, hidden = gates + 3 * n
                    for j in 0..<n { r[j] = T.kSigmoid(x[j] + u[j] * gateGain[j] + gateBias[j]) }
                    let xz = x + n, uz = u + n, gz = gateGain + n, bz = gateBias + n
                    for j in 0..<n { z[j] = T.kSigmoid(xz[j] + uz[j] * gz[j] + bz[j] - forgetBias) }
                    let xn = x + 2 * n, un = u + 2 * n
                    for j in 0..<n { hidden[j] = un[j] * candidateGain[j] + candidateBias[j] }
                    for j in 0..<n { candidate[j] = Swift.max(0, xn[j] + r[j] * hidden[j]) }
                    for j in 0..<n { y[j] = h[j] + z[j] * (candidate[j] - h[j]) }
                }
            }
        }
        switch dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return (Tensor(shape: [steps, batch, n], storage: states), Tensor(shape: [saved.count], storage: saved))
    }

    /// The gradients of the seven inputs given the states' gradient `g` [T, B, H].
    static func backward(_ parts: [Tensor], keep: Tensor?, saved: Tensor, states: Tensor, gradient g: Tensor) -> [Tensor] {
        let (gx, h0, wh) = (parts[0], parts[1], parts[2])
        let steps = gx.shape[0], batch = gx.shape[1], n = wh.shape[0], dtype = gx.dtype
        let g = g.detached.converted(to: dtype)
        precondition(g.shape == [steps, batch, n], "layerNormGRUSequence backward: gradient \(g.shape)")
        let rows = steps * batch
        let dgx = Storage.allocate(count: rows * 3 * n, dtype: dtype)
        let dgh = Storage.allocate(count: rows * 3 * n, dtype: dtype)
        // The gradient of the normalised hidden candidate term, kept for its gain and bias.
        let dHidden = Storage.allocate(count: rows * n, dtype: dtype)
        let previousAll = Storage.allocate(count: rows * n, dtype: dtype)
        let dh0 = Storage.allocate(count: batch * n, dtype: dtype)
        let dwh = Storage.allocate(count: n * 3 * n, dtype: dtype)
        let dGateGain = Storage.allocate(count: 2 * n, dtype: dtype), dGateBias = Storage.allocate(count: 2 * n, dtype: dtype)
        let dCandidateGain = Storage.allocate(count: n, dtype: dtype), dCandidateBias = Storage.allocate(count: n, dtype: dtype)
        func run<T: KernelScalar>(_: T.Type) {
            let ph0 = h0.storage.pointer(T.self), pwh = wh.storage.pointer(T.self)
            let gateGain = parts[3].storage.pointer(T.self), candidateGain = parts[5].storage.pointer(T.self)
            let pkeep = keep?.storage.pointer(T.self)
            let psaved = saved.storage.pointer(T.self), pg = g.storage.pointer(T.self)
            let savedGates = psaved, savedStandard = psaved + rows * 4 * n, savedInverse = psaved + rows * 7 * n
            let pdgx = dgx.pointer(T.self), pdgh = dgh.pointer(T.self), pdHidden = dHidden.pointer(T.self)
            let pprev = previousAll.pointer(T.self)
            // The state each step started from, after its reset.
            let ps = states.storage.pointer(T.self)
            RecurrentSequence.allStartingStates(steps: steps, initial: ph0, states: ps, keep: pkeep, batch: batch, hidden: n, into: pprev)
            let dh = dh0.pointer(T.self)
            dh.initialize(repeating: 0, count: batch * n)
            let pwhT = RecurrentSequence.transposedWeight(pwh, hidden: n)
            defer { pwhT.deallocate() }
            for t in stride(from: steps - 1, through: 0, by: -1) {
                for b in 0..<batch {
                    let row = t * batch + b
                    let gates = savedGates + row * 4 * n, u = savedStandard + row * 3 * n
                    let r = gates, z = gates + n, candidate = gates + 2 * n, hidden = gates + 3 * n
                    let dy = pg + row * n, hp = pprev + row * n, d = dh + b * n, dHid = pdHidden + row * n
                    let dx = pdgx + row * 3 * n, du = pdgh + row * 3 * n
                    if T.self == Float.self {
                        metarl_lngru_backward_row_f32(
                            floats(dy), floats(hp), floats(gates), floats(u), floats(savedInverse + 2 * row), floats(gateGain),
                            floats(candidateGain), n, floats(d), floats(dx), floats(du), floats(dHid))
                        continue
                    }
                    // d = the state's whole gradient; then the gate arithmetic backwards.
                    for j in 0..<n { d[j] += dy[j] }
                    // (Both sides computed, then selected, so that the loop stays branch-free.)
                    let dPre = dx + 2 * n
                    for j in 0..<n {
                        let through = d[j] * z[j]
                        dPre[j] = candidate[j] > 0 ? through : 0
                    }
                    for j in 0..<n { dx[j] = dPre[j] * hidden[j] * r[j] * (1 - r[j]) }
                    for j in 0..<n { dx[n + j] = d[j] * (candidate[j] - hp[j]) * z[j] * (1 - z[j]) }
                    for j in 0..<n { dHid[j] = dPre[j] * r[j] }
                    for j in 0..<n { d[j] *= 1 - z[j] }
                    // Through the gains, then the standardisation: inverse · (v − mean(v) − ĝ · mean(v ĝ)).
                    for j in 0..<(2 * n) { du[j] = dx[j] * gateGain[j] }
                    for j in 0..<n { du[2 * n + j] = dHid[j] * candidateGain[j] }
                    let gateInverse = savedInverse[2 * row], candidateInverse = savedInverse[2 * row + 1]
                    let gateMean = Kernels.contiguousSum(du, 2 * n) / T(2 * n), gateMeanDot = Kernels.contiguousDot(du, u, 2 * n) / T(2 * n)
                    for j in 0..<(2 * n) { du[j] = gateInverse * (du[j] - gateMean - u[j] * gateMeanDot) }
                    let dn = du + 2 * n, un = u + 2 * n
                    let candidateMean = Kernels.contiguousSum(dn, n) / T(n), candidateMeanDot = Kernels.contiguousDot(dn, un, n) / T(n)
                    for j in 0..<n { dn[j] = candidateInverse * (dn[j] - candidateMean - un[j] * candidateMeanDot) }
                }
                // dh_prev += dgh_t · Whᵀ, then through the reset.
                T.productByWeight(m: batch, n: n, k: 3 * n,
                       a: pdgh + t * batch * 3 * n, lda: 3 * n, b: pwhT, ldb: n, beta: 1, c: dh, ldc: n)
                RecurrentSequence.throughReset(dh, step: t, keep: pkeep, batch: batch, hidden: n)
            }
            // dWh = Σ_t prev_tᵀ · dgh_t as one product over all T·B rows.
            T.gemm(transposeA: true, transposeB: false, m: n, n: 3 * n, k: rows,
                   a: pprev, lda: n, b: pdgh, ldb: 3 * n, beta: 0, c: dwh.pointer(T.self), ldc: 3 * n)
            // The gains and biases: sums over all rows of the normalised outputs' gradients
            // (times the standardised values, for the gains).
            let gg = dGateGain.pointer(T.self), gb = dGateBias.pointer(T.self)
            let cg = dCandidateGain.pointer(T.self), cb = dCandidateBias.pointer(T.self)
            gg.initialize(repeating: 0, count: 2 * n); gb.initialize(repeating: 0, count: 2 * n)
            cg.initialize(repeating: 0, count: n); cb.initialize(repeating: 0, count: n)
            for row in 0..<rows {
                let dx = pdgx + row * 3 * n, u = savedStandard + row * 3 * n, dHid = pdHidden + row * n, un = u + 2 * n
                for j in 0..<(2 * n) { gb[j] += dx[j] }
                for j in 0..<(2 * n) { gg[j] += dx[j] * u[j] }
                for j in 0..<n { cb[j] += dHid[j] }
                for j in 0..<n { cg[j] += dHid[j] * un[j] }
            }
        }
        switch dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return [Tensor(shape: [steps, batch, 3 * n], storage: dgx), Tensor(shape: [batch, n], storage: dh0),
                Tensor(shape: [n, 3 * n], storage: dwh),
                Tensor(shape: [2 * n], storage: dGateGain), Tensor(shape: [2 * n], storage: dGateBias),
                Tensor(shape: [n], storage: dCandidateGain), Tensor(shape: [n], storage: dCandidateBias)]
    }
}
