import Foundation

/// The one random number generator of MetaRL: xoshiro256** (Blackman and Vigna, 2018),
/// seeded through SplitMix64.
///
/// It is a value: pass it `inout` to whatever draws random numbers, save it in a
/// checkpoint (it is `Codable`), and a seed reproduces a run exactly. ``split()`` gives an
/// independent stream for a worker or an environment copy.
public struct Xoshiro256: RandomNumberGenerator, Codable, Sendable, Equatable {
    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64

    /// A generator whose whole stream is fixed by `seed`.
    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    @inlinable @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// A new generator seeded from this one's stream: an independent stream for a worker.
    public mutating func split() -> Xoshiro256 {
        Xoshiro256(seed: next())
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    @inlinable @inline(__always)
    public mutating func uniformDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A uniform Float in [0, 1) with 24 random bits.
    @inlinable @inline(__always)
    public mutating func uniformFloat() -> Float {
        Float(next() >> 40) * 0x1.0p-24
    }

    /// A uniform integer in `0..<n`, without modulo bias.
    @inlinable @inline(__always)
    public mutating func uniformInt(below n: Int) -> Int {
        precondition(n > 0, "uniformInt(below: \(n))")
        return Int(next(upperBound: UInt64(n)))
    }

    /// A standard normal sample (Box–Muller, one of the pair).
    @inlinable @inline(__always)
    public mutating func normal() -> Double {
        let u1 = 1 - uniformDouble()  // (0, 1]: log is finite
        let u2 = uniformDouble()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// A standard normal Float by the ziggurat method (Marsaglia & Tsang 2000, 128
    /// layers), several times faster than `normal()`. The layer index and the sample's
    /// magnitude come from disjoint bits of one 64-bit draw (avoiding the correlation
    /// Doornik 2005 found in the original).
    @inline(__always)
    public mutating func normalFloat() -> Float {
        let r = next()
        let hz = Int32(truncatingIfNeeded: r >> 32)
        let iz = Int(r & 127)
        let tables = ZigguratTables.normal
        if hz.magnitude < tables.k[iz] { return Float(hz) * tables.w[iz] }
        return normalFloatTail(hz, iz)
    }

    @inline(never)
    mutating func normalFloatTail(_ firstHz: Int32, _ firstIz: Int) -> Float {
        let tables = ZigguratTables.normal
        var hz = firstHz, iz = firstIz
        while true {
            let x = Float(hz) * tables.w[iz]
            if iz == 0 {
                // The base strip's tail beyond r (Marsaglia 1964).
                var tx: Float, ty: Float
                repeat {
                    tx = -Foundation.log(1 - uniformFloat()) / ZigguratTables.r
                    ty = -Foundation.log(1 - uniformFloat())
                } while ty + ty < tx * tx
                return hz > 0 ? ZigguratTables.r + tx : -ZigguratTables.r - tx
            }
            if tables.f[iz] + uniformFloat() * (tables.f[iz - 1] - tables.f[iz]) < Foundation.exp(-0.5 * x * x) { return x }
            let r = next()
            hz = Int32(truncatingIfNeeded: r >> 32)
            iz = Int(r & 127)
            if hz.magnitude < tables.k[iz] { return Float(hz) * tables.w[iz] }
        }
    }

    /// An index drawn with the given (unnormalised, non-negative) weights.
    public mutating func categorical(weights: UnsafeBufferPointer<Float>) -> Int {
        var total: Float = 0
        for w in weights { total += w }
        var u = uniformFloat() * total
        for i in weights.indices {
            u -= weights[i]
            if u < 0 { return i }
        }
        // Rounding can leave u just above zero: take the last index with positive weight.
        return weights.lastIndex(where: { $0 > 0 }) ?? weights.count - 1
    }

    /// An index drawn with the given (unnormalised, non-negative) weights.
    public mutating func categorical(weights: [Float]) -> Int {
        weights.withUnsafeBufferPointer { categorical(weights: $0) }
    }

    /// A Gamma(shape, 1) sample (Marsaglia and Tsang, 2000).
    public mutating func gamma(shape: Double) -> Double {
        precondition(shape > 0, "gamma(shape: \(shape)) needs shape > 0")
        if shape < 1 {
            // Boost: Gamma(a) = Gamma(a + 1) · U^(1/a).
            let u = 1 - uniformDouble()
            return gamma(shape: shape + 1) * Foundation.pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = normal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = 1 - uniformDouble()
            if Foundation.log(u) < 0.5 * x * x + d - d * v + d * Foundation.log(v) { return d * v }
        }
    }

    /// A Beta(a, b) sample.
    public mutating func beta(_ a: Double, _ b: Double) -> Double {
        let x = gamma(shape: a)
        let y = gamma(shape: b)
        return x / (x + y)
    }
}

/// The 128-layer ziggurat for the standard normal: immutable tables built once.
/// The tables live in memory that is allocated once and never written after
/// initialisation, so a draw reads them without reference counting.
struct ZigguratTables: @unchecked Sendable {
    static let r: Float = 3.442619855899
    static let normal = ZigguratTables()

    /// Acceptance thresholds on |hz|, layer widths scaled by 2⁻³¹, and densities at layer edges.
    let k: UnsafePointer<UInt32>
    let w: UnsafePointer<Float>
    let f: UnsafePointer<Float>

    init() {
        let m1 = 2147483648.0
        let v = 9.91256303526217e-3
        var dn = 3.442619855899, tn = dn
        var k = [UInt32](repeating: 0, count: 128), w = [Double](repeating: 0, count: 128), f = w
        let q = v / Foundation.exp(-0.5 * dn * dn)
        k[0] = UInt32((dn / q) * m1)
        k[1] = 0
        w[0] = q / m1
        w[127] = dn / m1
        f[0] = 1
        f[127] = Foundation.exp(-0.5 * dn * dn)
        for i in stride(from: 126, through: 1, by: -1) {
            dn = (-2 * Foundation.log(v / dn + Foundation.exp(-0.5 * dn * dn))).squareRoot()
            k[i + 1] = UInt32((dn / tn) * m1)
            tn = dn
            f[i] = Foundation.exp(-0.5 * dn * dn)
            w[i] = dn / m1
        }
        func permanent<T>(_ values: [T]) -> UnsafePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: values.count)
            p.initialize(from: values, count: values.count)
            return UnsafePointer(p)
        }
        self.k = permanent(k)
        self.w = permanent(w.map(Float.init))
        self.f = permanent(f.map(Float.init))
    }
}
