import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The arrays one worker and metarl share, in a file under /dev/shm mapped by both: per
/// copy slot an action row, an observation row, a reward, a success flag, a reset seed and
/// the two episode-end flags. The layout (order, 64-byte alignment) is the worker's `Layout`.
final class SharedArrays {
    let capacity: Int
    let actions: UnsafeMutablePointer<Float>
    let observations: UnsafeMutablePointer<Float>
    let rewards: UnsafeMutablePointer<Float>
    let success: UnsafeMutablePointer<Float>
    let seeds: UnsafeMutablePointer<UInt64>
    /// [capacity × 2]: terminated, truncated (0 or 1).
    let flags: UnsafeMutablePointer<UInt8>
    /// The file the worker maps; removed once it has (``unlink()``).
    let path: String
    private let base: UnsafeMutableRawPointer
    private let size: Int

    /// Creates and maps the file for `capacity` slots of `observationSize`/`actionSize` Floats.
    init(capacity: Int, observationSize n: Int, actionSize m: Int, tag: String) throws(WorkerFault) {
        func padded(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }
        let sizes = [padded(capacity * m * 4), padded(capacity * n * 4), padded(capacity * 4), padded(capacity * 4),
                     padded(capacity * 8), padded(capacity * 2)]
        size = sizes.reduce(0, +)
        path = "/dev/shm/metarl-\(getpid())-\(tag)"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WorkerFault(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0, let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
              mapped != MAP_FAILED
        else {
            let reason = String(cString: strerror(errno))
            Glibc.unlink(path)
            throw WorkerFault(description: "cannot map \(size) bytes of shared memory at \(path): \(reason)")
        }
        base = mapped
        self.capacity = capacity
        var offset = 0
        func take(_ i: Int) -> UnsafeMutableRawPointer {
            defer { offset += sizes[i] }
            return mapped + offset
        }
        actions = take(0).bindMemory(to: Float.self, capacity: capacity * m)
        observations = take(1).bindMemory(to: Float.self, capacity: capacity * n)
        rewards = take(2).bindMemory(to: Float.self, capacity: capacity)
        success = take(3).bindMemory(to: Float.self, capacity: capacity)
        seeds = take(4).bindMemory(to: UInt64.self, capacity: capacity)
        flags = take(5).bindMemory(to: UInt8.self, capacity: capacity * 2)
    }

    /// Whether the file's name is gone already: the name may since belong to another file.
    private var unlinked = false

    /// Removes the file's name (both sides keep their mapping); nothing is left in /dev/shm.
    func unlink() {
        guard !unlinked else { return }
        unlinked = true
        Glibc.unlink(path)
    }

    deinit {
        munmap(base, size)
        unlink()
    }
}
