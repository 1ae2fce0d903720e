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
        var length: [UInt8] = []
        bytes.count.append(to: &length)
        let lengths = try gather(length, counts: [Int](repeating: 8, count: size)).map { chunk -> Int in
            var reader = ByteReader(chunk)
            return try Int(reading: &reader)
        }
        guard lengths.allSatisfy({ (0...Int(Int32.max)).contains($0) }), lengths.reduce(0, +) <= Int(Int32.max) else {
            throw ProcessGroupError.transport("MPI: a gathered message exceeds 2 GiB")
        }
        return try gather(bytes, counts: lengths)
    }

    private func gather(_ bytes: [UInt8], counts: [Int]) throws -> [[UInt8]] {
        let offsets = counts.indices.map { counts[..<$0].reduce(0, +) }
        var receive = [UInt8](repeating: 0, count: Swift.max(counts.reduce(0, +), 1))
        let counts32 = counts.map(Int32.init), offsets32 = offsets.map(Int32.init)
        let started = DispatchTime.now().uptimeNanoseconds
        defer {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            lock.withLock {
                counted.collectives += 1
                counted.bytesSent += bytes.count
                counted.bytesReceived += counts.reduce(0, +) - bytes.count
                counted.seconds += seconds
            }
        }
        let code = bytes.withUnsafeBytes { send in
            receive.withUnsafeMutableBytes { out in
                metarl_mpi_allgatherv(send.baseAddress, Int32(bytes.count), out.baseAddress, counts32, offsets32, timeoutSeconds)
            }
        }
        if code == -1 {
            throw ProcessGroupError.transport(
                "MPI: rank \(rank) waited \(Int(timeoutSeconds)) s for the other ranks in a collective (a rank died, hung or runs a different command)")
        }
        guard code == 0 else { throw ProcessGroupError.transport("MPI_Iallgatherv failed on rank \(rank): \(Self.errorText(code))") }
        return counts.indices.map { Array(receive[offsets[$0]..<(offsets[$0] + counts[$0])]) }
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

