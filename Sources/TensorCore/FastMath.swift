import CKernels
import Foundation

// Float elementary functions written without calls or branches, so that loops over them
// vectorise. Double keeps the C library's functions: it is the precision used to check
// gradients, where accuracy matters more than speed.

/// e^x for Float, accurate to about 2 ulp over the whole range (Cephes expf polynomial,
/// Cody–Waite range reduction). Inputs above 88 give e^88 instead of overflowing.
@inline(__always)
func fastExp(_ x: Float) -> Float {
    let x = Swift.min(Swift.max(x, -87.33654), 88.0)
    // Round x·log2(e) to the nearest integer with the 1.5·2²³ trick (no call).
    let shifted = x * 1.442_695_04 + 12_582_912
    let n = shifted - 12_582_912
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_91e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    let e = p * r * r + r + 1
    // 2ⁿ from the bits of `shifted`, whose low mantissa bits hold n (no checked
    // float-to-integer conversion, which would stop the loop from vectorising).
    let scale = Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) << 23)
    return e * scale
}

/// tanh for Float: an odd polynomial near zero (Cephes tanhf), 1 − 2/(e^{2|x|} + 1)
/// elsewhere; both are computed and one selected, so the loop stays branch-free.
@inline(__always)
func fastTanh(_ x: Float) -> Float {
    let a = Swift.abs(x)
    let z = x * x
    var p: Float = -5.704_988_72e-3
    p = p * z + 2.063_908_88e-2
    p = p * z - 5.373_971_56e-2
    p = p * z + 1.333_144_22e-1
    p = p * z - 3.333_328_19e-1
    let small = p * z * x + x
    let large = 1 - 2 / (fastExp(2 * a) + 1)
    let signedLarge = x < 0 ? -large : large
    return a < 0.625 ? small : signedLarge
}

/// The logistic function 1/(1 + e^−x) for Float.
@inline(__always)
func fastSigmoid(_ x: Float) -> Float {
    1 / (1 + fastExp(-x))
}

/// The element operations the kernels need, for the two element types.
protocol KernelScalar: BinaryFloatingPoint {
    static func kExp(_ x: Self) -> Self
    static func kLog(_ x: Self) -> Self
    static func kTanh(_ x: Self) -> Self
    static func kSigmoid(_ x: Self) -> Self
    static func kLog1p(_ x: Self) -> Self
    static func kPow(_ x: Self, _ p: Self) -> Self
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    /// C ← A·B + beta·C, row-major, for A with few rows and B a weight used again and
    /// again (a recurrence's hidden weight, once per step): read in place where the CPU
    /// allows, rather than packed by sgemm on every call.
    static func productByWeight(
        m: Int, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
}

extension Float: KernelScalar {
    @inline(__always) static func kExp(_ x: Float) -> Float { fastExp(x) }
    @inline(__always) static func kLog(_ x: Float) -> Float { Foundation.log(x) }
    @inline(__always) static func kTanh(_ x: Float) -> Float { fastTanh(x) }
    @inline(__always) static func kSigmoid(_ x: Float) -> Float { fastSigmoid(x) }
    @inline(__always) static func kLog1p(_ x: Float) -> Float { Foundation.log1p(x) }
    @inline(__always) static func kPow(_ x: Float, _ p: Float) -> Float { Foundation.pow(x, p) }
    @inline(__always) static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        BLASLibrary.shared.gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
            a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
    /// `metarl_small_gemm_f32` for up to `inPlaceProductMaxRows` rows, else sgemm.
    @inline(__always) static func productByWeight(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m <= inPlaceProductMaxRows,
           metarl_small_gemm_f32(inPlaceProductWidth, m, n, k, a, lda, b, ldb, beta, c, ldc) != 0 { return }
        gemm(transposeA: false, transposeB: false, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

/// The vector width of the in-place product kernel on this CPU (0: none; see CKernels.h).
let inPlaceProductWidth = Int32(metarl_small_gemm_width())
/// Above this many rows sgemm's packing pays for itself.
let inPlaceProductMaxRows = 128

extension Double: KernelScalar {
    @inline(__always) static func kExp(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) static func kLog(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) static func kTanh(_ x: Double) -> Double { Foundation.tanh(x) }
    @inline(__always) static func kSigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }
    @inline(__always) static func kLog1p(_ x: Double) -> Double { Foundation.log1p(x) }
    @inline(__always) static func kPow(_ x: Double, _ p: Double) -> Double { Foundation.pow(x, p) }
    @inline(__always) static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        BLASLibrary.shared.gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
            a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
    @inline(__always) static func productByWeight(
        m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        gemm(transposeA: false, transposeB: false, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}


/// C ← A·B + beta·C for row-major Float matrices as the recurrent sequences multiply by
/// their hidden weight each step: in place (no packed copy of B) for up to 128 rows where
/// the CPU has AVX2 or AVX-512 with FMA, else sgemm. For benchmarks and tests.
public func productByWeight(
    m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    Float.productByWeight(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
}

/// The vector width, in floats, of the in-place product on this CPU (16, 8, or 0: sgemm).
public var productByWeightWidth: Int { Int(inPlaceProductWidth) }
