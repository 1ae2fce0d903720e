import CBLAS
#if canImport(Glibc)
import Glibc
#endif

/// The element type of a tensor's storage.
///
/// Training runs in `float32`; `float64` runs the same graph in double precision, which
/// is what finite-difference gradient checks use.
public enum DType: UInt8, Codable, Sendable, CustomStringConvertible {
    case float32 = 0
    case float64 = 1

    /// Bytes per element.
    public var byteWidth: Int { self == .float32 ? 4 : 8 }

    public var description: String { self == .float32 ? "float32" : "float64" }
}

struct StorageHeader {
    var count: Int
    var dtype: DType
}

/// A contiguous buffer of tensor elements, allocated together with its header.
///
/// Storages are shared between tensors (a reshape shares its input's storage) and are
/// treated as immutable once a tensor holds them; the few in-place writers check
/// uniqueness first (copy on write).
final class Storage: ManagedBuffer<StorageHeader, Double> {
    /// A new storage of `count` elements, uninitialised.
    static func allocate(count: Int, dtype: DType) -> Storage {
        _ = allocatorTuned
        let words = dtype == .float32 ? (count + 1) / 2 : count
        let buffer = Storage.create(minimumCapacity: max(words, 1)) { _ in
            StorageHeader(count: count, dtype: dtype)
        }
        let storage = unsafeDowncast(buffer, to: Storage.self)
        if dtype == .float32 {
            storage.withUnsafeMutablePointerToElements {
                _ = UnsafeMutableRawPointer($0).bindMemory(to: Float.self, capacity: count)
            }
        }
        return storage
    }

    /// glibc serves blocks above 128 KiB with fresh `mmap`s and gives a freed heap top back
    /// to the kernel, and a second thread gets its own arena, whose 64 MiB heaps are
    /// unmapped whenever they empty; either way every large tensor of a training step
    /// page-faults on first touch. A GRU step once lost a quarter of its time to the kernel
    /// this way, and RL²'s two-thread PPO update (`metarl bench rl2`) 3.5 million page
    /// faults and 6 s of system time per update. So all threads share the main heap, no
    /// block is mmapped, and up to 2 GiB of free heap top is kept rather than returned (a
    /// 256 MiB limit still let that update's heap shrink and regrow: 25 million faults). See
    /// `metarl_keep_large_blocks_in_heap`. Skipped when the user tunes malloc through the
    /// environment.
    static let allocatorTuned: Bool = {
        #if canImport(Glibc)
        let userTuned = ["GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
            .contains { (name: String) in getenv(name) != nil }
        if !userTuned { return metarl_keep_large_blocks_in_heap(Int32.max) != 0 }
        #endif
        return false
    }()

    /// A new storage of `count` zeros.
    static func zeros(count: Int, dtype: DType) -> Storage {
        let storage = allocate(count: count, dtype: dtype)
        storage.raw.initializeMemory(as: UInt8.self, repeating: 0, count: count * dtype.byteWidth)
        return storage
    }

    @inline(__always) var count: Int { header.count }
    @inline(__always) var dtype: DType { header.dtype }

    @inline(__always) var raw: UnsafeMutableRawPointer {
        withUnsafeMutablePointerToElements { UnsafeMutableRawPointer($0) }
    }

    /// The elements as `T`; `T` must match ``dtype``.
    @inline(__always) func pointer<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        raw.assumingMemoryBound(to: T.self)
    }

    /// A new storage with the same elements.
    func copy() -> Storage {
        let result = Storage.allocate(count: count, dtype: dtype)
        result.raw.copyMemory(from: raw, byteCount: count * dtype.byteWidth)
        return result
    }
}
