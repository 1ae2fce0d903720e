import CBLAS
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS, loaded at run time with the kernels that suit this CPU.
///
/// Debian's OpenBLAS 0.3.21 does not recognise recent CPUs (for example Xeon family 6
/// model 207) and falls back to its generic Prescott kernels, seven times slower. It
/// takes the kernel set from `OPENBLAS_CORETYPE`, but reads that variable only when the
/// library is loaded. So the library is never linked: the first use of ``shared`` reads
/// the CPU's flags, sets `OPENBLAS_CORETYPE` (a preset naming an older kernel set than
/// the CPU runs is upgraded; `METARL_BLAS_CORETYPE` forces any choice), sets one
/// BLAS thread (unless a thread count is already set: parallelism in MetaRL comes from
/// batching environments across cores, and a second BLAS thread pays only for large
/// products), and only then loads `libopenblas.so.0` with `dlopen`.
public struct BLASLibrary: @unchecked Sendable {
    /// The library every tensor operation uses, loaded on first use.
    public static let shared = BLASLibrary.load()

    let sgemm: metarl_sgemm_fn
    let dgemm: metarl_dgemm_fn
    private let setThreads: metarl_set_num_threads_fn
    private let getThreads: metarl_get_num_threads_fn

    /// The kernel set OpenBLAS chose, as `openblas_get_corename()` reports it.
    public let coreName: String
    /// Where the core type came from: the user's environment, this CPU's flags, or
    /// OpenBLAS's own detection.
    public let coreTypeSource: String
    /// The path the library was loaded from.
    public let libraryName: String

    /// The number of threads OpenBLAS uses for one product.
    public var threadCount: Int { Int(getThreads()) }

    /// Sets the number of threads OpenBLAS uses for one product.
    public func setThreadCount(_ n: Int) { setThreads(Int32(max(1, n))) }

    private static func load() -> BLASLibrary {
        let source: String
        let detected = coreType(forCPUFlags: cpuFlags())
        let preset = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        if let forced = getenv("METARL_BLAS_CORETYPE").map({ String(cString: $0) }), !forced.isEmpty {
            setenv("OPENBLAS_CORETYPE", forced, 1)
            source = "METARL_BLAS_CORETYPE=\(forced)"
        } else if let preset, !preset.isEmpty, let detected, tier(of: preset) < tier(of: detected) {
            // A machine-wide setting for older CPUs (clusters pin Haswell for uniformity)
            // would halve the speed here; use what this CPU runs, and say so.
            setenv("OPENBLAS_CORETYPE", detected, 1)
            source = "cpu flags (\(detected); OPENBLAS_CORETYPE=\(preset) in the environment is an older kernel set — set METARL_BLAS_CORETYPE to force a choice)"
        } else if let preset, !preset.isEmpty {
            source = "environment (OPENBLAS_CORETYPE=\(preset))"
        } else if let detected {
            setenv("OPENBLAS_CORETYPE", detected, 1)
            source = "cpu flags (set OPENBLAS_CORETYPE=\(detected))"
        } else {
            source = "OpenBLAS detection"
        }
        let threadVariables = ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"]
        if threadVariables.allSatisfy({ getenv($0) == nil }) {
            setenv("OPENBLAS_NUM_THREADS", "1", 1)
        }

        var handle: UnsafeMutableRawPointer?
        var loadedName = ""
        for name in ["libopenblas.so.0", "libopenblas.so"] {
            handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)
            if handle != nil { loadedName = name; break }
        }
        guard let handle else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
            fatalError("""
                MetaRL needs OpenBLAS at run time and could not load it (\(reason)). \
                Install it with: apt-get install -y libopenblas-dev
                """)
        }
        func symbol<F>(_ name: String, as type: F.Type) -> F {
            guard let pointer = dlsym(handle, name) else {
                fatalError("\(loadedName) has no symbol \(name); MetaRL needs OpenBLAS 0.3 or later")
            }
            return unsafeBitCast(pointer, to: type)
        }
        let corename = symbol("openblas_get_corename", as: metarl_get_corename_fn.self)
        return BLASLibrary(
            sgemm: symbol("cblas_sgemm", as: metarl_sgemm_fn.self),
            dgemm: symbol("cblas_dgemm", as: metarl_dgemm_fn.self),
            setThreads: symbol("openblas_set_num_threads", as: metarl_set_num_threads_fn.self),
            getThreads: symbol("openblas_get_num_threads", as: metarl_get_num_threads_fn.self),
            coreName: corename().map { String(cString: $0) } ?? "unknown",
            coreTypeSource: source,
            libraryName: loadedName
        )
    }

    /// The OpenBLAS core type for a CPU with these `/proc/cpuinfo` flags, or nil to let
    /// OpenBLAS detect it. Only instruction sets decide: AVX-512 with BF16 gets the Cooper
    /// Lake kernels, AVX-512 without it the Skylake-X ones, AVX2 with FMA the Haswell ones.
    static func coreType(forCPUFlags flags: Set<Substring>) -> String? {
        let avx512 = ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"]
        if avx512.allSatisfy({ flags.contains(Substring($0)) }) {
            return flags.contains("avx512_bf16") ? "COOPERLAKE" : "SKYLAKEX"
        }
        if flags.contains("avx2") && flags.contains("fma") { return "HASWELL" }
        return nil
    }

    /// A rough order of x86 kernel sets by the widest vectors they use: 3 for AVX-512,
    /// 2 for AVX2, 1 for anything else (including names this table does not know).
    static func tier(of coreType: String) -> Int {
        switch coreType.uppercased() {
        case "SKYLAKEX", "COOPERLAKE", "SAPPHIRERAPIDS": return 3
        case "HASWELL", "ZEN": return 2
        default: return 1
        }
    }

    private static func cpuFlags() -> Set<Substring> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":")
        else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " "))
    }

    /// C ← alpha·op(A)·op(B) + beta·C for row-major Float matrices (raw `cblas_sgemm`).
    @inline(__always)
    public func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
            beta, c, blasint(ldc))
    }

    /// C ← alpha·op(A)·op(B) + beta·C for row-major Double matrices.
    @inline(__always)
    func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        dgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
            beta, c, blasint(ldc))
    }
}
