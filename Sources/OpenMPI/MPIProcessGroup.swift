import CMPI
import Foundation
import TensorCore

/// The ranks of an `mpirun` job as a `ProcessGroup`, over Open MPI loaded at run time.
///
/// Nothing of MPI is linked: ``joinIfLaunched(timeoutSeconds:environment:)`` looks for the variables
/// `mpirun` sets, and only then opens `libmpi.so.40`, so every command works unchanged on a
/// machine without Open MPI. Each collective is non-blocking MPI polled against a deadline:
/// a rank that stops answering ends the wait with an error instead of a hang.
public final class MPIProcessGroup: ProcessGroup, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// Seconds a collective may wait for the slowest rank before the run stops.
    public let timeoutSeconds: Double

    private let lock = NSLock()
    private var counted = CollectiveTraffic()

    /// What this rank's collectives have cost so far.
    public var traffic: CollectiveTraffic { lock.withLock { counted } }

    private init(rank: Int, size: Int, timeoutSeconds: Double) {
        self.rank = rank
        self.size = size
        self.timeoutSeconds = timeoutSeconds
    }

    /// The rank count `mpirun` announced to this process (Open MPI's, or the PMI variables
    /// other launchers set), or nil outside an MPI job.
    public static func launchedSize(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"] {
            if let value = environment[key], let n = Int(value) { return n }
        }
        return nil
    }

    /// The job's group when this process was started by `mpirun` (MPI initialised here),
    /// otherwise nil. Throws when the job needs MPI and it cannot be loaded or started.
    public static func joinIfLaunched(timeoutSeconds: Double = 600,
                                      environment: [String: String] = ProcessInfo.processInfo.environment) throws -> MPIProcessGroup? {
        guard launchedSize(environment: environment) != nil else { return nil }
        var message = [CChar](repeating: 0, count: 512)
        let library = environment["METARL_MPI_LIBRARY"]
        let loaded = library.map { metarl_mpi_load($0, &message, Int32(message.count)) } ?? metarl_mpi_load(nil, &message, Int32(message.count))
        guard loaded == 0 else { throw ProcessGroupError.transport("MPI: " + Self.text(message)) }
        let code = metarl_mpi_init()
        guard code == 0 else { throw ProcessGroupError.transport("MPI_Init_thread failed: \(errorText(code))") }
        return MPIProcessGroup(rank: Int(metarl_mpi_rank()), size: Int(metarl_mpi_size()), timeoutSeconds: timeoutSeconds)
    }

    /// A C string buffer's text, up to its terminating zero.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func errorText(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: 300)
        metarl_mpi_error_string(code, &text, Int32(text.count))
        return Self.text(text)
    }

    /// Every rank's bytes: the lengths first (8 bytes from each rank), then the contents.
    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        let lengths = try Self.lengths(try gather(Self.length(of: bytes), counts: [Int](repeating: 8, count: size)))
        return try gather(bytes, counts: lengths)
    }

    /// Block r of `blocks` to rank r, for every r; the block each rank sent this one, by rank:
    /// the lengths first (8 bytes to each rank), then the contents, each an MPI_Ialltoallv.
    public func allToAll(_ blocks: [[UInt8]]) throws -> [[UInt8]] {
        guard blocks.count == size else { throw ProcessGroupError.mismatch("allToAll: \(blocks.count) blocks for \(size) ranks") }
        let lengths = try Self.lengths(try exchange(blocks.map(Self.length(of:)), receiveCounts: [Int](repeating: 8, count: size)))
        return try exchange(blocks, receiveCounts: lengths)
    }

    /// A message's length as the 8 bytes ranks exchange before it.
    private static func length(of bytes: [UInt8]) -> [UInt8] {
        var length: [UInt8] = []
        bytes.count.append(to: &length)
        return length
    }

    /// The lengths other ranks announced, checked to fit MPI's 32-bit counts.
    private static func lengths(_ chunks: [[UInt8]]) throws -> [Int] {
        let lengths = try chunks.map { chunk -> Int in
            var reader = ByteReader(chunk)
            return try Int(reading: &reader)
        }
        guard lengths.allSatisfy({ (0...Int(Int32.max)).contains($0) }), lengths.reduce(0, +) <= Int(Int32.max) else {
            throw ProcessGroupError.transport("MPI: a message exceeds 2 GiB")
        }
        return lengths
    }

    /// Byte offsets of consecutive blocks of `counts` bytes.
    private static func offsets(_ counts: [Int]) -> [Int32] {
        var offsets: [Int32] = [], total = 0
        for count in counts {
            offsets.append(Int32(total))
            total += count
        }
        return offsets
    }

    /// Cuts `receive` into blocks of `counts` bytes.
    private static func blocks(_ receive: [UInt8], counts: [Int]) -> [[UInt8]] {
        var start = 0
        return counts.map { count in
            defer { start += count }
            return Array(receive[start..<(start + count)])
        }
    }

    private func gather(_ bytes: [UInt8], counts: [Int]) throws -> [[UInt8]] {
        var receive = [UInt8](repeating: 0, count: Swift.max(counts.reduce(0, +), 1))
        let counts32 = counts.map(Int32.init), offsets32 = Self.offsets(counts)
        try collective("MPI_Iallgatherv", sent: bytes.count, received: counts.reduce(0, +) - bytes.count) {
            bytes.withUnsafeBytes { send in
                receive.withUnsafeMutableBytes { out in
                    metarl_mpi_allgatherv(send.baseAddress, Int32(bytes.count), out.baseAddress, counts32, offsets32, timeoutSeconds)
                }
            }
        }
        return Self.blocks(receive, counts: counts)
    }

    private func exchange(_ blocks: [[UInt8]], receiveCounts: [Int]) throws -> [[UInt8]] {
        let send = blocks.flatMap { $0 }, sendCounts = blocks.map(\.count)
        var receive = [UInt8](repeating: 0, count: Swift.max(receiveCounts.reduce(0, +), 1))
        let sendCounts32 = sendCounts.map(Int32.init), sendOffsets32 = Self.offsets(sendCounts)
        let receiveCounts32 = receiveCounts.map(Int32.init), receiveOffsets32 = Self.offsets(receiveCounts)
        try collective("MPI_Ialltoallv", sent: send.count - sendCounts[rank], received: receiveCounts.reduce(0, +) - receiveCounts[rank]) {
            send.withUnsafeBytes { sendBytes in
                receive.withUnsafeMutableBytes { out in
                    metarl_mpi_alltoallv(sendBytes.baseAddress, sendCounts32, sendOffsets32, out.baseAddress, receiveCounts32,
                                         receiveOffsets32, timeoutSeconds)
                }
            }
        }
        return Self.blocks(receive, counts: receiveCounts)
    }

    /// Runs one collective (`call` returns its code), counts its bytes to and from the other
    /// ranks and its time, and turns a timeout or an MPI error into a named error.
    private func collective(_ name: String, sent: Int, received: Int, _ call: () -> Int32) throws {
        let started = DispatchTime.now().uptimeNanoseconds
        let code = call()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        lock.withLock {
            counted.collectives += 1
            counted.bytesSent += sent
            counted.bytesReceived += received
            counted.seconds += seconds
        }
        if code == -1 {
            throw ProcessGroupError.transport(
                "MPI: rank \(rank) waited \(Int(timeoutSeconds)) s for the other ranks in a collective (a rank died, hung or runs a different command)")
        }
        guard code == 0 else { throw ProcessGroupError.transport("\(name) failed on rank \(rank): \(Self.errorText(code))") }
    }

    /// Ends every rank of the job (after an error on this one, so that no rank waits forever).
    public func abort(code: Int32 = 1) -> Never {
        metarl_mpi_abort(code)
        exit(code)
    }

    /// Shuts MPI down at the end of a run.
    public func finish() { _ = metarl_mpi_finalize() }
}

/// The cost of one rank's collectives: how many it joined, the bytes it contributed and
/// those it received from the other ranks, and the wall-clock seconds it spent in them
/// (transfer and waiting for slower ranks alike).
public struct CollectiveTraffic: Sendable, Equatable {
    public var collectives = 0
    public var bytesSent = 0
    public var bytesReceived = 0
    public var seconds = 0.0

    /// No collectives yet.
    public init() {}
}

