import CKernels

// The loops behind the primitives. Every kernel takes tensor values, allocates its
// result and returns an untracked tensor; recording for differentiation happens in
// Primitives.swift. Kernels are generic over the element type and dispatch on the
// tensor's dtype once per call, so each loop is specialised for Float and Double.

/// Element-wise functions of one tensor.
enum UnaryKind {
    case exp, log, tanh, sigmoid, relu, softplus, sqrt, abs
    /// a·x + b
    case affine(Double, Double)
    /// x^p
    case power(Double)
    case clamp(Double, Double)
    /// 1 where x > 0, else 0
    case positiveMask
    /// −1, 0 or 1
    case sign
    /// 1 where lo ≤ x ≤ hi, else 0
    case insideMask(Double, Double)
}

/// Element-wise functions of two broadcast tensors.
enum BinaryKind {
    case add, subtract, multiply, divide
    case greater, greaterEqual, less, lessEqual, equal
    /// Fused backward rules (first-order passes only): g·(1 − y²) and g·y·(1 − y), with
    /// the upstream gradient g first and the forward output y second.
    case tanhBackward, sigmoidBackward
}

enum Kernels {
    // MARK: Element-wise

    static func unary(_ kind: UnaryKind, _ x: Tensor) -> Tensor {
        let out = Storage.allocate(count: x.count, dtype: x.dtype)
        switch x.dtype {
        case .float32:
            if case .tanh = kind {
                metarl_tanh_f32(x.storage.pointer(Float.self), out.pointer(Float.self), x.count)
            } else {
                unaryLoop(kind, x.storage.pointer(Float.self), out.pointer(Float.self), x.count)
            }
        case .float64: unaryLoop(kind, x.storage.pointer(Double.self), out.pointer(Double.self), x.count)
        }
        return Tensor(shape: x.shape, storage: out)
    }

    static func unaryLoop<T: KernelScalar>(
        _ kind: UnaryKind, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int
    ) {
        switch kind {
        case .exp: for i in 0..<n { y[i] = T.kExp(x[i]) }
        case .log: for i in 0..<n { y[i] = T.kLog(x[i]) }
        case .tanh: for i in 0..<n { y[i] = T.kTanh(x[i]) }
        case .sigmoid: for i in 0..<n { y[i] = T.kSigmoid(x[i]) }
        case .relu: for i in 0..<n { y[i] = x[i] > 0 ? x[i] : 0 }
        case .softplus:
            // log(1 + e^x) = max(x, 0) + log1p(e^−|x|), stable for large |x|.
            for i in 0..<n { y[i] = Swift.max(x[i], 0) + T.kLog1p(T.kExp(-Swift.abs(x[i]))) }
        case .sqrt: for i in 0..<n { y[i] = x[i].squareRoot() }
        case .abs: for i in 0..<n { y[i] = Swift.abs(x[i]) }
        case .affine(let a, let b):
            let a = T(a), b = T(b)
            for i in 0..<n { y[i] = a * x[i] + b }
        case .power(let p):
            if p == 2 {
                for i in 0..<n { y[i] = x[i] * x[i] }
            } else if p == 0.5 {
                for i in 0..<n { y[i] = x[i].squareRoot() }
            } else if p == -1 {
                for i in 0..<n { y[i] = 1 / x[i] }
            } else {
                let p = T(p)
                for i in 0..<n { y[i] = T.kPow(x[i], p) }
            }
        case .clamp(let lo, let hi):
            let lo = T(lo), hi = T(hi)
            for i in 0..<n { y[i] = Swift.min(Swift.max(x[i], lo), hi) }
        case .positiveMask: for i in 0..<n { y[i] = x[i] > 0 ? 1 : 0 }
        case .sign: for i in 0..<n { y[i] = x[i] > 0 ? 1 : (x[i] < 0 ? -1 : 0) }
        case .insideMask(let lo, let hi):
            let lo = T(lo), hi = T(hi)
            for i in 0..<n { y[i] = (x[i] >= lo && x[i] <= hi) ? 1 : 0 }
        }
    }

    static func binary(_ kind: BinaryKind, _ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.dtype == b.dtype, "\(kind): dtypes differ, \(a.dtype) and \(b.dtype)")
        let shape = a.shape == b.shape ? a.shape : (alignedShape(a.shape, b.shape) ?? broadcastShape(a.shape, b.shape))
        let count = shapeCount(shape)
        let out = Storage.allocate(count: count, dtype: a.dtype)
        switch a.dtype {
        case .float32:
            binaryLoop(kind, a, b, shape, a.storage.pointer(Float.self), b.storage.pointer(Float.self), out.pointer(Float.self))
        case .float64:
            binaryLoop(kind, a, b, shape, a.storage.pointer(Double.self), b.storage.pointer(Double.self), out.pointer(Double.self))
        }
        return Tensor(shape: shape, storage: out)
    }

    static func binaryLoop<T: KernelScalar>(
        _ kind: BinaryKind, _ a: Tensor, _ b: Tensor, _ shape: [Int],
        _ pa: UnsafePointer<T>, _ pb: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>
    ) {
        if a.count == b.count, a.count == shapeCount(shape) {  // nothing broadcast: elements line up one for one
            binaryRow(kind, a.count, pa, 1, pb, 1, out)
        } else if b.count == 1 {
            binaryRow(kind, a.count, pa, 1, pb, 0, out)
        } else if a.count == 1 {
            binaryRow(kind, b.count, pa, 0, pb, 1, out)
        } else {
            let sa = broadcastStrides(a.shape, to: shape)
            let sb = broadcastStrides(b.shape, to: shape)
            let inner = shape.last ?? 1
            forEachRow(shape, sa, sb, []) { row, oa, ob, _ in
                binaryRow(kind, inner, pa + oa, sa.last ?? 0, pb + ob, sb.last ?? 0, out + row * inner)
            }
        }
    }

    @inline(__always)
    static func binaryRow<T: KernelScalar>(
        _ kind: BinaryKind, _ n: Int, _ a: UnsafePointer<T>, _ sa: Int,
        _ b: UnsafePointer<T>, _ sb: Int, _ out: UnsafeMutablePointer<T>
    ) {
        switch kind {
        case .add: stridedRow(n, a, sa, b, sb, out, +)
        case .subtract: stridedRow(n, a, sa, b, sb, out, -)
        case .multiply: stridedRow(n, a, sa, b, sb, out, *)
        case .divide: stridedRow(n, a, sa, b, sb, out, /)
        case .greater: stridedRow(n, a, sa, b, sb, out) { $0 > $1 ? 1 : 0 }
        case .greaterEqual: stridedRow(n, a, sa, b, sb, out) { $0 >= $1 ? 1 : 0 }
        case .less: stridedRow(n, a, sa, b, sb, out) { $0 < $1 ? 1 : 0 }
        case .lessEqual: stridedRow(n, a, sa, b, sb, out) { $0 <= $1 ? 1 : 0 }
        case .equal: stridedRow(n, a, sa, b, sb, out) { $0 == $1 ? 1 : 0 }
        case .tanhBackward: stridedRow(n, a, sa, b, sb, out) { g, y in g * (1 - y * y) }
        case .sigmoidBackward: stridedRow(n, a, sa, b, sb, out) { g, y in g * (y * (1 - y)) }
        }
    }

    /// out[i] = f(a[i·sa], b[i·sb]) with the common stride patterns written out so that
    /// they vectorise.
    @inline(__always)
    static func stridedRow<T>(
        _ n: Int, _ a: UnsafePointer<T>, _ sa: Int, _ b: UnsafePointer<T>, _ sb: Int,
        _ out: UnsafeMutablePointer<T>, _ f: (T, T) -> T
    ) {
        if sa == 1 && sb == 1 {
            for i in 0..<n { out[i] = f(a[i], b[i]) }
        } else if sa == 1 && sb == 0 {
            let v = b[0]
            for i in 0..<n { out[i] = f(a[i], v) }
        } else if sa == 0 && sb == 1 {
            let v = a[0]
            for i in 0..<n { out[i] = f(v, b[i]) }
        } else {
            for i in 0..<n { out[i] = f(a[i * sa], b[i * sb]) }
        }
    }

    /// mask ? a : b, all three broadcast to a common shape.
    static func select(_ mask: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.dtype == b.dtype && mask.dtype == a.dtype, "select: dtypes differ")
        let shape = broadcastShape(broadcastShape(a.shape, b.shape), mask.shape)
        let out = Storage.allocate(count: shapeCount(shape), dtype: a.dtype)
        let sm = broadcastStrides(mask.shape, to: shape)
        let sa = broadcastStrides(a.shape, to: shape)
        let sb = broadcastStrides(b.shape, to: shape)
        let inner = shape.last ?? 1
        func loop<T: KernelScalar>(_: T.Type) {
            let pm = mask.storage.pointer(T.self), pa = a.storage.pointer(T.self)
            let pb = b.storage.pointer(T.self), po = out.pointer(T.self)
            let im = sm.last ?? 0, ia = sa.last ?? 0, ib = sb.last ?? 0
            forEachRow(shape, sa, sb, sm) { row, oa, ob, om in
                let o = po + row * inner
                for i in 0..<inner { o[i] = pm[om + i * im] != 0 ? pa[oa + i * ia] : pb[ob + i * ib] }
            }
        }
        switch a.dtype {
        case .float32: loop(Float.self)
        case .float64: loop(Double.self)
        }
        return Tensor(shape: shape, storage: out)
    }

    // MARK: Matrix products

    /// op(A)·op(B) for rank-2 operands, or batch-wise for rank-3 operands with equal batch.
    static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        precondition(a.dtype == b.dtype, "matmul: dtypes differ, \(a.dtype) and \(b.dtype)")
        precondition(
            (a.rank == 2 && b.rank == 2) || (a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0]),
            "matmul needs two matrices or two batches of matrices of equal batch size, got \(a.shape) and \(b.shape)")
        let batched = a.rank == 3
        let batch = batched ? a.shape[0] : 1
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        precondition(
            k == k2,
            "matmul: inner dimensions differ, \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let shape = batched ? [batch, m, n] : [m, n]
        let out = Storage.allocate(count: batch * m * n, dtype: a.dtype)
        gemm(a, b, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, batch: batch, beta: 0, into: out)
        return Tensor(shape: shape, storage: out)
    }

    /// c += op(a)·op(b) for matrices, in c's own storage (BLAS's β = 1: no product is
    /// allocated and no separate addition pass runs). `c` must own its storage.
    static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, accumulatingInto c: inout Tensor) {
        precondition(a.rank == 2 && b.rank == 2 && a.dtype == b.dtype && c.dtype == a.dtype, "matmul accumulating: two matrices of c's dtype")
        let (m, k) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (k2, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        precondition(k == k2 && c.shape == [m, n], "matmul accumulating: \(a.shape) · \(b.shape) into \(c.shape)")
        gemm(a, b, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, batch: 1, beta: 1, into: c.storage)
    }

    private static func gemm(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool,
                             m: Int, n: Int, k: Int, batch: Int, beta: Float, into out: Storage) {
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        func run<T: KernelScalar>(_: T.Type) {
            let pa = a.storage.pointer(T.self), pb = b.storage.pointer(T.self), pc = out.pointer(T.self)
            if k == 0 {
                if beta == 0 { pc.initialize(repeating: 0, count: batch * m * n) }
                return
            }
            for i in 0..<batch {
                T.gemm(
                    transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                    a: pa + i * ar * ac, lda: ac, b: pb + i * br * bc, ldb: bc,
                    beta: T(beta), c: pc + i * m * n, ldc: n)
            }
        }
        if m * n > 0 {
            switch a.dtype {
            case .float32: run(Float.self)
            case .float64: run(Double.self)
            }
        }
    }

    // MARK: Reductions

    /// Sum over `axes` (normalised, ascending); the result keeps the reduced axes as 1.
    static func sum(_ x: Tensor, axes: [Int]) -> Tensor {
        var shape = x.shape
        var current = x
        // Axes of size 1 change nothing; group the rest into contiguous runs and reduce
        // each run as one [outer, n, inner] reduction, last run first.
        let live = axes.filter { x.shape[$0] != 1 }
        var runs: [(Int, Int)] = []
        for axis in live {
            if let last = runs.last, last.1 == axis - 1 { runs[runs.count - 1].1 = axis } else { runs.append((axis, axis)) }
        }
        for (first, last) in runs.reversed() {
            let outer = shapeCount(Array(shape[..<first]))
            let n = shapeCount(Array(shape[first...last]))
            let inner = shapeCount(Array(shape[(last + 1)...]))
            for d in first...last { shape[d] = 1 }
            current = reduceSum(current, outer: outer, n: n, inner: inner, shape: shape)
        }
        if runs.isEmpty { return Tensor(shape: shape, storage: x.storage) }
        return current
    }

    private static func reduceSum(_ x: Tensor, outer: Int, n: Int, inner: Int, shape: [Int]) -> Tensor {
        let out = Storage.zeros(count: outer * inner, dtype: x.dtype)
        func loop<T: KernelScalar>(_: T.Type) {
            let px = x.storage.pointer(T.self), po = out.pointer(T.self)
            for o in 0..<outer {
                if inner == 1 {
                    po[o] = contiguousSum(px + o * n, n)
                } else {
                    let dst = po + o * inner
                    for j in 0..<n {
                        let src = px + (o * n + j) * inner
                        for i in 0..<inner { dst[i] += src[i] }
                    }
                }
            }
        }
        switch x.dtype {
        case .float32: loop(Float.self)
        case .float64: loop(Double.self)
        }
        return Tensor(shape: shape, storage: out)
    }

    /// The sum of n contiguous values with eight interleaved accumulators, so the loop
    /// vectorises (a single accumulator forces strict, serial order).
    @inline(__always)
    static func contiguousSum<T: KernelScalar>(_ p: UnsafePointer<T>, _ n: Int) -> T {
        var a0: T = 0, a1: T = 0, a2: T = 0, a3: T = 0, a4: T = 0, a5: T = 0, a6: T = 0, a7: T = 0
        var j = 0
        while j + 8 <= n {
            a0 += p[j]; a1 += p[j + 1]; a2 += p[j + 2]; a3 += p[j + 3]
            a4 += p[j + 4]; a5 += p[j + 5]; a6 += p[j + 6]; a7 += p[j + 7]
            j += 8
        }
        while j < n { a0 += p[j]; j += 1 }
        return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    }

    /// Σ x[j]·y[j] over `n` values, in eight partial sums combined pairwise, as
    /// `contiguousSum` adds.
    @inline(__always)
    static func contiguousDot<T: KernelScalar>(_ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ n: Int) -> T {
        var s0: T = 0, s1: T = 0, s2: T = 0, s3: T = 0, s4: T = 0, s5: T = 0, s6: T = 0, s7: T = 0
        var j = 0
        while j + 8 <= n {
            s0 += x[j] * y[j]; s1 += x[j + 1] * y[j + 1]; s2 += x[j + 2] * y[j + 2]; s3 += x[j + 3] * y[j + 3]
            s4 += x[j + 4] * y[j + 4]; s5 += x[j + 5] * y[j + 5]; s6 += x[j + 6] * y[j + 6]; s7 += x[j + 7] * y[j + 7]
            j += 8
        }
        while j < n { s0 += x[j] * y[j]; j += 1 }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    }

    /// Maximum along one axis (kept as size 1), and the one-hot mask of the first
    /// position that attains it.
    static func max(_ x: Tensor, axis: Int) -> (values: Tensor, mask: Tensor) {
        let (outer, n, inner) = splitAround(x.shape, axis)
        precondition(n > 0, "max along an empty axis of shape \(x.shape)")
        var shape = x.shape
        shape[axis] = 1
        let out = Storage.allocate(count: outer * inner, dtype: x.dtype)
        let mask = Storage.zeros(count: x.count, dtype: x.dtype)
        func loop<T: KernelScalar>(_: T.Type) {
            let px = x.storage.pointer(T.self), po = out.pointer(T.self), pm = mask.pointer(T.self)
            for o in 0..<outer {
                for i in 0..<inner {
                    var best = px[o * n * inner + i]
                    var where_ = 0
                    for j in 1..<n {
                        let v = px[(o * n + j) * inner + i]
                        if v > best || (best.isNaN && !v.isNaN) { best = v; where_ = j }
                    }
                    po[o * inner + i] = best
                    pm[(o * n + where_) * inner + i] = 1
                }
            }
        }
        switch x.dtype {
        case .float32: loop(Float.self)
        case .float64: loop(Double.self)
        }
        return (Tensor(shape: shape, storage: out), Tensor(shape: x.shape, storage: mask))
    }

    // MARK: Moving data

    static func permute(_ x: Tensor, _ permutation: [Int]) -> Tensor {
        let shape = permutation.map { x.shape[$0] }
        let strides = contiguousStrides(x.shape)
        let source = permutation.map { strides[$0] }
        let out = Storage.allocate(count: x.count, dtype: x.dtype)
        let inner = shape.last ?? 1
        let step = source.last ?? 1
        func loop<T: KernelScalar>(_: T.Type) {
            let px = x.storage.pointer(T.self), po = out.pointer(T.self)
            if shape.count == 2 && permutation == [1, 0] {
                transpose2D(px, po, rows: x.shape[0], columns: x.shape[1])
                return
            }
            forEachRow(shape, source, [], []) { row, offset, _, _ in
                let o = po + row * inner
                for i in 0..<inner { o[i] = px[offset + i * step] }
            }
        }
        if x.count > 0 {
            switch x.dtype {
            case .float32: loop(Float.self)
            case .float64: loop(Double.self)
            }
        }
        return Tensor(shape: shape, storage: out)
    }

    /// Cache-blocked transpose of a rows × columns matrix.
    private static func transpose2D<T>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, rows: Int, columns: Int) {
        let block = 32
        var r0 = 0
        while r0 < rows {
            let r1 = Swift.min(r0 + block, rows)
            var c0 = 0
            while c0 < columns {
                let c1 = Swift.min(c0 + block, columns)
                for r in r0..<r1 {
                    for c in c0..<c1 { y[c * rows + r] = x[r * columns + c] }
                }
                c0 = c1
            }
            r0 = r1
        }
    }

    /// Copies `x` broadcast to `shape`.
    static func expand(_ x: Tensor, to shape: [Int]) -> Tensor {
        let out = Storage.allocate(count: shapeCount(shape), dtype: x.dtype)
        if x.count == 1 {  // one value everywhere (a full sum's gradient)
            switch x.dtype {
            case .float32: out.pointer(Float.self).initialize(repeating: x.storage.pointer(Float.self)[0], count: out.count)
            case .float64: out.pointer(Double.self).initialize(repeating: x.storage.pointer(Double.self)[0], count: out.count)
            }
            return Tensor(shape: shape, storage: out)
        }
        let strides = broadcastStrides(x.shape, to: shape)
        let inner = shape.last ?? 1
        let step = strides.last ?? 0
        func loop<T: KernelScalar>(_: T.Type) {
            let px = x.storage.pointer(T.self), po = out.pointer(T.self)
            forEachRow(shape, strides, [], []) { row, offset, _, _ in
                let o = po + row * inner
                if step == 0 {
                    o.initialize(repeating: px[offset], count: inner)
                } else {
                    o.update(from: px + offset, count: inner)
                }
            }
        }
        if out.count > 0 {
            switch x.dtype {
            case .float32: loop(Float.self)
            case .float64: loop(Double.self)
            }
        }
        return Tensor(shape: shape, storage: out)
    }

    static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        let first = parts[0]
        var shape = first.shape
        shape[axis] = 0
        for p in parts {
            precondition(
                p.rank == first.rank && p.dtype == first.dtype
                    && (0..<p.rank).allSatisfy { $0 == axis || p.shape[$0] == first.shape[$0] },
                "concat along axis \(axis): shapes \(first.shape) and \(p.shape) do not fit")
            shape[axis] += p.shape[axis]
        }
        let (outer, total, inner) = splitAround(shape, axis)
        let out = Storage.allocate(count: shapeCount(shape), dtype: first.dtype)
        let width = first.dtype.byteWidth
        var offset = 0
        for p in parts {
            let chunk = p.shape[axis] * inner * width
            let src = p.storage.raw
            for o in 0..<outer {
                (out.raw + (o * total * inner) * width + offset).copyMemory(from: src + o * chunk, byteCount: chunk)
            }
            offset += chunk
        }
        return Tensor(shape: shape, storage: out)
    }

    /// Elements `start..<start + length` along `axis`.
    static func slice(_ x: Tensor, axis: Int, start: Int, length: Int) -> Tensor {
        let (outer, n, inner) = splitAround(x.shape, axis)
        var shape = x.shape
        shape[axis] = length
        let out = Storage.allocate(count: shapeCount(shape), dtype: x.dtype)
        let width = x.dtype.byteWidth
        let chunk = length * inner * width
        for o in 0..<outer {
            (out.raw + o * chunk).copyMemory(from: x.storage.raw + ((o * n + start) * inner) * width, byteCount: chunk)
        }
        return Tensor(shape: shape, storage: out)
    }

    /// Zeros of size `size` along `axis` with `x` placed at `start`: the adjoint of slice.
    static func pad(_ x: Tensor, axis: Int, start: Int, size: Int) -> Tensor {
        let (outer, length, inner) = splitAround(x.shape, axis)
        var shape = x.shape
        shape[axis] = size
        let out = Storage.zeros(count: shapeCount(shape), dtype: x.dtype)
        let width = x.dtype.byteWidth
        let chunk = length * inner * width
        for o in 0..<outer {
            (out.raw + ((o * size + start) * inner) * width).copyMemory(from: x.storage.raw + o * chunk, byteCount: chunk)
        }
        return Tensor(shape: shape, storage: out)
    }

    /// out[o, j, i] = x[o, index[o, j, i], i] around `axis` (torch.gather).
    static func gather(_ x: Tensor, axis: Int, indices: [Int32], indexShape: [Int]) -> Tensor {
        let (outer, n, inner) = splitAround(x.shape, axis)
        let k = indexShape[axis]
        let out = Storage.allocate(count: indices.count, dtype: x.dtype)
        func loop<T: KernelScalar>(_: T.Type) {
            let px = x.storage.pointer(T.self), po = out.pointer(T.self)
            for o in 0..<outer {
                for j in 0..<k {
                    for i in 0..<inner {
                        let position = (o * k + j) * inner + i
                        po[position] = px[(o * n + Int(indices[position])) * inner + i]
                    }
                }
            }
        }
        switch x.dtype {
        case .float32: loop(Float.self)
        case .float64: loop(Double.self)
        }
        return Tensor(shape: indexShape, storage: out)
    }

    /// Zeros of `shape` with g[o, j, i] added at [o, index[o, j, i], i]: the adjoint of gather.
    static func scatterAdd(_ g: Tensor, axis: Int, indices: [Int32], shape: [Int]) -> Tensor {
        let (outer, n, inner) = splitAround(shape, axis)
        let k = g.shape[axis]
        let out = Storage.zeros(count: shapeCount(shape), dtype: g.dtype)
        func loop<T: KernelScalar>(_: T.Type) {
            let pg = g.storage.pointer(T.self), po = out.pointer(T.self)
            for o in 0..<outer {
                for j in 0..<k {
                    for i in 0..<inner {
                        let position = (o * k + j) * inner + i
                        po[(o * n + Int(indices[position])) * inner + i] += pg[position]
                    }
                }
            }
        }
        switch g.dtype {
        case .float32: loop(Float.self)
        case .float64: loop(Double.self)
        }
        return Tensor(shape: shape, storage: out)
    }

    /// a[…, start..<start+len, …] += g along `axis`, in place: the backward of slice
    /// without materialising the padded gradient.
    static func addIntoSlice(_ a: inout Tensor, _ g: Tensor, axis: Int, start: Int) {
        let (outer, size, inner) = splitAround(a.shape, axis)
        let run = g.shape[axis] * inner
        func loop<T: KernelScalar>(_: T.Type) {
            let pa = a.storage.pointer(T.self), pg = g.storage.pointer(T.self)
            for o in 0..<outer {
                let dst = pa + (o * size + start) * inner, src = pg + o * run
                for i in 0..<run { dst[i] += src[i] }
            }
        }
        switch a.dtype {
        case .float32: loop(Float.self)
        case .float64: loop(Double.self)
        }
    }

    /// −2·u·g·y element-wise (same shapes): the derivative of g ⊙ (1 − y²) with respect to
    /// y, times the upstream gradient u, in one pass.
    static func tanhGradientOutputBackward(_ u: Tensor, _ g: Tensor, _ y: Tensor) -> Tensor {
        let n = y.count
        let out = Storage.allocate(count: n, dtype: y.dtype)
        func loop<T: KernelScalar>(_: T.Type) {
            let pu = u.storage.pointer(T.self), pg = g.storage.pointer(T.self), py = y.storage.pointer(T.self)
            let po = out.pointer(T.self)
            for i in 0..<n { po[i] = -2 * pu[i] * pg[i] * py[i] }
        }
        switch y.dtype {
        case .float32: loop(Float.self)
        case .float64: loop(Double.self)
        }
        return Tensor(shape: y.shape, storage: out)
    }

    /// a += b in place, same shape and dtype; `a` must own its storage.
    static func addInPlace(_ a: inout Tensor, _ b: Tensor) {
        let n = a.count
        switch a.dtype {
        case .float32:
            let pa = a.storage.pointer(Float.self), pb = b.storage.pointer(Float.self)
            for i in 0..<n { pa[i] += pb[i] }
        case .float64:
            let pa = a.storage.pointer(Double.self), pb = b.storage.pointer(Double.self)
            for i in 0..<n { pa[i] += pb[i] }
        }
    }
}

// MARK: Shape arithmetic

/// The shape two shapes broadcast to (NumPy rules); stops with both shapes named if
/// they cannot.
func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
    if a == b { return a }
    let rank = Swift.max(a.count, b.count)
    var shape = [Int](repeating: 1, count: rank)
    for d in 0..<rank {
        let x = d - (rank - a.count) >= 0 ? a[d - (rank - a.count)] : 1
        let y = d - (rank - b.count) >= 0 ? b[d - (rank - b.count)] : 1
        precondition(x == y || x == 1 || y == 1, "shapes \(a) and \(b) do not broadcast")
        shape[d] = x == 1 ? y : x
    }
    return shape
}

/// Row-major strides of a contiguous tensor.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[d] = s
        s *= shape[d]
    }
    return strides
}

/// The broadcast shape of two shapes that differ only by leading 1s ([1, 64] and [64], a
/// bias added to one row), whose elements therefore line up one for one; nil otherwise.
/// Decided without allocating, ahead of the general broadcast.
@inline(__always)
func alignedShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let (long, short) = a.count >= b.count ? (a, b) : (b, a)
    let lead = long.count - short.count
    for d in 0..<lead where long[d] != 1 { return nil }
    for d in 0..<short.count where long[lead + d] != short[d] { return nil }
    return long
}

/// Strides that read a contiguous tensor of `shape` as if broadcast to `target`
/// (0 along broadcast dimensions).
func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
    precondition(shape.count <= target.count, "cannot broadcast \(shape) to \(target)")
    let own = contiguousStrides(shape)
    let lead = target.count - shape.count
    var strides = [Int](repeating: 0, count: target.count)
    for d in 0..<shape.count {
        precondition(
            shape[d] == target[d + lead] || shape[d] == 1, "cannot broadcast \(shape) to \(target)")
        strides[d + lead] = shape[d] == 1 ? 0 : own[d]
    }
    return strides
}

/// (product of dimensions before `axis`, dimension `axis`, product after it).
func splitAround(_ shape: [Int], _ axis: Int) -> (Int, Int, Int) {
    var outer = 1, inner = 1
    for d in 0..<axis { outer *= shape[d] }
    for d in (axis + 1)..<shape.count { inner *= shape[d] }
    return (outer, shape[axis], inner)
}

/// Calls `body(row, offsetA, offsetB, offsetC)` for every row (every index of all
/// dimensions but the last) of `shape`, with the offsets of up to three strided operands.
/// An empty stride array means "no such operand".
@inline(__always)
func forEachRow(
    _ shape: [Int], _ sa: [Int], _ sb: [Int], _ sc: [Int],
    _ body: (Int, Int, Int, Int) -> Void
) {
    let rank = shape.count
    if rank <= 1 {
        if shapeCount(shape) > 0 { body(0, 0, 0, 0) }
        return
    }
    let rows = shapeCount(Array(shape[..<(rank - 1)]))
    if rows == 0 || shape[rank - 1] == 0 { return }
    var index = [Int](repeating: 0, count: rank - 1)
    var oa = 0, ob = 0, oc = 0
    for row in 0..<rows {
        body(row, oa, ob, oc)
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            if !sa.isEmpty { oa += sa[d] }
            if !sb.isEmpty { ob += sb[d] }
            if !sc.isEmpty { oc += sc[d] }
            if index[d] < shape[d] { break }
            if !sa.isEmpty { oa -= sa[d] * shape[d] }
            if !sb.isEmpty { ob -= sb[d] * shape[d] }
            if !sc.isEmpty { oc -= sc[d] * shape[d] }
            index[d] = 0
            d -= 1
        }
    }
}
