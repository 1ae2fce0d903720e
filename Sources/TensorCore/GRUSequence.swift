import CKernels
// A gated recurrent unit over a whole sequence as one primitive.
//
// Composed from the small primitives, one GRU step is a matrix product and about a dozen
// element-wise operations, each allocating its result and recording a tape entry; over a
// 100-step sequence that bookkeeping costs more than the arithmetic. This primitive runs
// the forward pass in one loop over time (one GEMM per step, the gate arithmetic fused)
// and its backward pass in one reverse loop, with the hidden weight's gradient taken as
// a single GEMM over all T·B rows at the end (as cuDNN does).
//
// The equations are PyTorch's (GRUCell in NN):
//     gh = h·Wh + bh,   r = σ(gx_r + gh_r),   z = σ(gx_z + gh_z),
//     n = tanh(gx_n + r ⊙ gh_n),   h′ = n + z ⊙ (h − n),
// where gx = x·Wx + bx is computed for the whole sequence beforehand and h is the state
// after the optional reset (h ⊙ keep_t, keep_t = 0 where a new task starts).
//
// Its backward rule is fused for ordinary gradients. When the backward pass is itself
// recorded (gradients of gradients, as TRPO's Fisher-vector products need), the rule
// replays `gruSequenceComposed` on the tape instead, so higher-order derivatives stay
// exact.

extension Tensor {
    /// All hidden states [T, B, H] of a GRU run over `projected` inputs [T, B, 3H]
    /// (gate blocks r, z, n) from `initialState` [B, H], with `hiddenWeight` [H, 3H] and
    /// `hiddenBias` [3H]. `keep` [T, B], a constant, multiplies the state before step t
    /// (0 resets it); nil keeps it throughout.
    public static func gruSequence(
        projected: Tensor, initialState: Tensor, hiddenWeight: Tensor, hiddenBias: Tensor, keep: Tensor? = nil
    ) -> Tensor {
        GRUSequenceKernel.checkShapes(projected, initialState, hiddenWeight, hiddenBias, keep)
        let parts = [projected, initialState, hiddenWeight, hiddenBias]
        let (states, saved) = GRUSequenceKernel.forward(parts.map(\.detached), keep: keep?.detached)
        return Tape.recordMany(states, parts) { indices in
            .gruSequence(parts: parts.map(\.detached), indices: indices, keep: keep?.detached, saved: saved)
        }
    }

    /// The same computation written with the small primitives: the reference the fused
    /// primitive is tested against, and what its backward rule replays when recorded.
    public static func gruSequenceComposed(
        projected: Tensor, initialState: Tensor, hiddenWeight: Tensor, hiddenBias: Tensor, keep: Tensor? = nil
    ) -> Tensor {
        GRUSequenceKernel.checkShapes(projected, initialState, hiddenWeight, hiddenBias, keep)
        let steps = projected.shape[0], batch = projected.shape[1], n = hiddenWeight.shape[0]
        var h = initialState
        var states: [Tensor] = []
        for t in 0..<steps {
            if let keep { h = h * keep.detached.slice(axis: 0, t..<(t + 1)).reshaped([batch, 1]) }
            let gx = projected.slice(axis: 0, t..<(t + 1)).reshaped([batch, 3 * n])
            let gh = Tensor.matmul(h, hiddenWeight) + hiddenBias
            let rz = (gx.slice(axis: 1, 0..<(2 * n)) + gh.slice(axis: 1, 0..<(2 * n))).sigmoid()
            let r = rz.slice(axis: 1, 0..<n), z = rz.slice(axis: 1, n..<(2 * n))
            let candidate = (gx.slice(axis: 1, (2 * n)..<(3 * n)) + r * gh.slice(axis: 1, (2 * n)..<(3 * n))).tanh()
            h = candidate + z * (h - candidate)
            states.append(h)
        }
        return Tensor.stack(states, axis: 0)
    }
}

/// The fused forward and backward loops of `Tensor.gruSequence`.
enum GRUSequenceKernel {
    static func checkShapes(_ gx: Tensor, _ h0: Tensor, _ wh: Tensor, _ bh: Tensor, _ keep: Tensor?) {
        precondition(wh.rank == 2 && wh.shape[1] == 3 * wh.shape[0], "gruSequence: hidden weight \(wh.shape), expected [H, 3H]")
        let n = wh.shape[0]
        precondition(gx.rank == 3 && gx.shape[2] == 3 * n, "gruSequence: projected inputs \(gx.shape), expected [T, B, \(3 * n)]")
        precondition(h0.shape == [gx.shape[1], n], "gruSequence: initial state \(h0.shape), expected [\(gx.shape[1]), \(n)]")
        precondition(bh.shape == [3 * n], "gruSequence: hidden bias \(bh.shape), expected [\(3 * n)]")
        precondition(gx.shape[0] > 0 && gx.shape[1] > 0, "gruSequence: empty sequence \(gx.shape)")
        precondition(keep == nil || keep!.shape == [gx.shape[0], gx.shape[1]], "gruSequence: keep \(keep!.shape), expected [T, B]")
        precondition([h0, wh, bh].allSatisfy { $0.dtype == gx.dtype } && (keep == nil || keep!.dtype == gx.dtype),
                     "gruSequence: operands of different dtypes")
    }

    /// Runs the sequence; returns the states [T, B, H] and the saved gates [4, T, B, H]
    /// (r, z, n and gh_n, in that order) for the backward pass.
    static func forward(_ parts: [Tensor], keep: Tensor?) -> (states: Tensor, saved: Tensor) {
        let (gx, h0, wh, bh) = (parts[0], parts[1], parts[2], parts[3])
        let steps = gx.shape[0], batch = gx.shape[1], n = wh.shape[0], dtype = gx.dtype
        let states = Storage.allocate(count: steps * batch * n, dtype: dtype)
        let saved = Storage.allocate(count: 4 * steps * batch * n, dtype: dtype)
        func run<T: KernelScalar>(_: T.Type) {
            let pgx = gx.storage.pointer(T.self), ph0 = h0.storage.pointer(T.self)
            let pwh = wh.storage.pointer(T.self), pbh = bh.storage.pointer(T.self)
            let pkeep = keep?.storage.pointer(T.self)
            let ps = states.pointer(T.self), psaved = saved.pointer(T.self)
            let block = steps * batch * n
            let gh = UnsafeMutablePointer<T>.allocate(capacity: batch * 3 * n)
            let previous = UnsafeMutablePointer<T>.allocate(capacity: batch * n)
            defer { gh.deallocate(); previous.deallocate() }
            for t in 0..<steps {
                RecurrentSequence.startingState(step: t, initial: ph0, states: ps, keep: pkeep, batch: batch, hidden: n, into: previous)
                // gh = bh + previous·Wh: the bias rows first, the product added onto them.
                for b in 0..<batch { (gh + b * 3 * n).update(from: pbh, count: 3 * n) }
                T.productByWeight(m: batch, n: 3 * n, k: n,
                       a: previous, lda: n, b: pwh, ldb: 3 * n, beta: 1, c: gh, ldc: 3 * n)
                for b in 0..<batch {
                    // Row pointers, so the inner loops index by j alone; two short loops
                    // over few pointers, so that they vectorise.
                    let x = pgx + (t * batch + b) * 3 * n, g = gh + b * 3 * n, out = (t * batch + b) * n
                    let sr = psaved + out, sz = psaved + block + out, sn = psaved + 2 * block + out, sg = psaved + 3 * block + out
                    let h = previous + b * n, y = ps + out
                    if T.self == Float.self {
                        // The C kernel, built for the CPU's widest vectors.
                        metarl_gru_forward_row_f32(floats(x), floats(g), floats(h), n, floats(sr), floats(sz), floats(sn), floats(sg), floats(y))
                        continue
                    }
                    let xr = x, xz = x + n, xn = x + 2 * n, gr = g, gz = g + n, gn = g + 2 * n
                    for j in 0..<n {
                        sr[j] = T.kSigmoid(xr[j] + gr[j])
                        sz[j] = T.kSigmoid(xz[j] + gz[j])
                    }
                    for j in 0..<n {
                        let ghn = gn[j]
                        let candidate = T.kTanh(xn[j] + sr[j] * ghn)
                        y[j] = candidate + sz[j] * (h[j] - candidate)
                        sn[j] = candidate
                        sg[j] = ghn
                    }
                }
            }
        }
        switch dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return (Tensor(shape: [steps, batch, n], storage: states), Tensor(shape: [4, steps, batch, n], storage: saved))
    }

    /// The gradients of the four inputs (projected, initial state, hidden weight, hidden
    /// bias) given the states' gradient `g` [T, B, H].
    static func backward(_ parts: [Tensor], keep: Tensor?, saved: Tensor, states: Tensor, gradient g: Tensor) -> [Tensor] {
        let (gx, h0, wh) = (parts[0], parts[1], parts[2])
        let steps = gx.shape[0], batch = gx.shape[1], n = wh.shape[0], dtype = gx.dtype
        let g = g.detached.converted(to: dtype)
        precondition(g.shape == [steps, batch, n], "gruSequence backward: gradient \(g.shape)")
        let dgx = Storage.allocate(count: steps * batch * 3 * n, dtype: dtype)
        let dgh = Storage.allocate(count: steps * batch * 3 * n, dtype: dtype)
        let previousAll = Storage.allocate(count: steps * batch * n, dtype: dtype)
        let dh0 = Storage.allocate(count: batch * n, dtype: dtype)
        let dwh = Storage.allocate(count: n * 3 * n, dtype: dtype)
        let dbh = Storage.allocate(count: 3 * n, dtype: dtype)
        func run<T: KernelScalar>(_: T.Type) {
            let ph0 = h0.storage.pointer(T.self), pwh = wh.storage.pointer(T.self)
            let pkeep = keep?.storage.pointer(T.self)
            let ps = states.storage.pointer(T.self), psaved = saved.storage.pointer(T.self), pg = g.storage.pointer(T.self)
            let pdgx = dgx.pointer(T.self), pdgh = dgh.pointer(T.self), pprev = previousAll.pointer(T.self)
            let block = steps * batch * n
            // The state each step started from, after its reset.
            RecurrentSequence.allStartingStates(steps: steps, initial: ph0, states: ps, keep: pkeep, batch: batch, hidden: n, into: pprev)
            let dh = dh0.pointer(T.self)
            dh.initialize(repeating: 0, count: batch * n)
            let pwhT = RecurrentSequence.transposedWeight(pwh, hidden: n)
            defer { pwhT.deallocate() }
            for t in stride(from: steps - 1, through: 0, by: -1) {
                for b in 0..<batch {
                    let row = (t * batch + b) * n, gates = (t * batch + b) * 3 * n
                    let sr = psaved + row, sz = psaved + block + row, sn = psaved + 2 * block + row, sg = psaved + 3 * block + row
                    let dy = pg + row, hp = pprev + row, dhb = dh + b * n
                    if T.self == Float.self {
                        metarl_gru_backward_row_f32(floats(dy), floats(hp), floats(sr), floats(sz), floats(sn), floats(sg), n,
                                                    floats(dhb), floats(pdgx + gates), floats(pdgh + gates))
                        continue
                    }
                    let xr = pdgx + gates, xz = xr + n, xn = xr + 2 * n, hr = pdgh + gates, hz = hr + n, hn = hr + 2 * n
                    for j in 0..<n {
                        let d = dhb[j] + dy[j]
                        let r = sr[j], z = sz[j], candidate = sn[j]
                        let dCandidate = d * (1 - z) * (1 - candidate * candidate)
                        let dz = d * (hp[j] - candidate) * z * (1 - z)
                        let dr = dCandidate * sg[j] * r * (1 - r)
                        xr[j] = dr
                        xz[j] = dz
                        xn[j] = dCandidate
                        hr[j] = dr
                        hz[j] = dz
                        hn[j] = dCandidate * r
                        dhb[j] = d * z
                    }
                }
                // dh_prev += dgh_t · Whᵀ, then through the reset.
                T.productByWeight(m: batch, n: n, k: 3 * n,
                       a: pdgh + t * batch * 3 * n, lda: 3 * n, b: pwhT, ldb: n, beta: 1, c: dh, ldc: n)
                RecurrentSequence.throughReset(dh, step: t, keep: pkeep, batch: batch, hidden: n)
            }
            // dWh = Σ_t prev_tᵀ · dgh_t as one product over all T·B rows; dbh = column sums.
            T.gemm(transposeA: true, transposeB: false, m: n, n: 3 * n, k: steps * batch,
                   a: pprev, lda: n, b: pdgh, ldb: 3 * n, beta: 0, c: dwh.pointer(T.self), ldc: 3 * n)
            let pdbh = dbh.pointer(T.self)
            pdbh.initialize(repeating: 0, count: 3 * n)
            for row in 0..<(steps * batch) {
                let src = pdgh + row * 3 * n
                for j in 0..<(3 * n) { pdbh[j] += src[j] }
            }
        }
        switch dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        }
        return [Tensor(shape: [steps, batch, 3 * n], storage: dgx), Tensor(shape: [batch, n], storage: dh0),
                Tensor(shape: [n, 3 * n], storage: dwh), Tensor(shape: [3 * n], storage: dbh)]
    }
}

/// The state bookkeeping both fused GRU sequences share.
enum RecurrentSequence {
    /// Writes the state step t starts from into `into` [B, n]: the previous step's output
    /// (or the initial state at t = 0) times keep_t, row by row.
    @inline(__always)
    static func startingState<T: KernelScalar>(
        step t: Int, initial: UnsafePointer<T>, states: UnsafePointer<T>, keep: UnsafePointer<T>?,
        batch: Int, hidden n: Int, into: UnsafeMutablePointer<T>
    ) {
        let source = t == 0 ? initial : states + (t - 1) * batch * n
        guard let keep else {
            into.update(from: source, count: batch * n)
            return
        }
        for b in 0..<batch {
            let k = keep[t * batch + b]
            for j in 0..<n { into[b * n + j] = source[b * n + j] * k }
        }
    }

    /// The states every step started from, [T, B, n] into `into` (the backward pass's inputs
    /// to the hidden weight's gradient).
    static func allStartingStates<T: KernelScalar>(
        steps: Int, initial: UnsafePointer<T>, states: UnsafePointer<T>, keep: UnsafePointer<T>?,
        batch: Int, hidden n: Int, into: UnsafeMutablePointer<T>
    ) {
        for t in 0..<steps {
            startingState(step: t, initial: initial, states: states, keep: keep, batch: batch, hidden: n, into: into + t * batch * n)
        }
    }

    /// The hidden weight's transpose, [3n, n] from [n, 3n], so that the backward pass's
    /// per-step product dgh_t · Whᵀ reads a row-major weight in place
    /// (`KernelScalar.productByWeight`). The caller deallocates it.
    static func transposedWeight<T: KernelScalar>(_ w: UnsafePointer<T>, hidden n: Int) -> UnsafeMutablePointer<T> {
        let wt = UnsafeMutablePointer<T>.allocate(capacity: 3 * n * n)
        let tile = 16  // blocks of 16 × 16, so that reads and writes both stay in cache lines
        for i0 in stride(from: 0, to: n, by: tile) {
            for j0 in stride(from: 0, to: 3 * n, by: tile) {
                for i in i0..<Swift.min(i0 + tile, n) {
                    for j in j0..<Swift.min(j0 + tile, 3 * n) { wt[j * n + i] = w[i * 3 * n + j] }
                }
            }
        }
        return wt
    }

    /// Multiplies the state gradient dh [B, n] by keep_t (a reset passes nothing back).
    @inline(__always)
    static func throughReset<T: KernelScalar>(_ dh: UnsafeMutablePointer<T>, step t: Int, keep: UnsafePointer<T>?, batch: Int, hidden n: Int) {
        guard let keep else { return }
        for b in 0..<batch {
            let k = keep[t * batch + b]
            for j in 0..<n { dh[b * n + j] *= k }
        }
    }
}
