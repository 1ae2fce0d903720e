import Foundation
import Runs
import Testing

/// `mpirun` from Debian's openmpi-bin (`.ci/run` installs it), or nil.
func mpirunExecutable() -> URL? {
    for path in ["/usr/bin/mpirun", "/usr/local/bin/mpirun"] where FileManager.default.isExecutableFile(atPath: path) {
        return URL(fileURLWithPath: path)
    }
    return nil
}

/// Runs `metarl arguments` under `mpirun -np ranks` (ranks 0: without mpirun) with a time
/// limit; returns the exit status and what it printed on standard error.
func runUnderMPI(ranks: Int, _ arguments: [String], extraRanks: [String]? = nil, timeout: TimeInterval = 300) throws
    -> (status: Int32, errors: String) {
    let process = Process()
    let metarl = try metarlExecutable().path
    if ranks == 0 {
        process.executableURL = URL(fileURLWithPath: metarl)
        process.arguments = arguments
    } else {
        guard let mpirun = mpirunExecutable() else {
            throw RunError("mpirun not found: install Debian's openmpi-bin (`.ci/run` does)")
        }
        process.executableURL = mpirun
        var line = ["--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", metarl] + arguments
        if let extraRanks { line += [":", "-np", "1", metarl] + extraRanks }
        process.arguments = line
    }
    // Standard error goes to a file, read once the job has ended (no pipe to fill up).
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-mpi-\(UUID().uuidString).err")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: log) }
    let errors = try FileHandle(forWritingTo: log)
    defer { try? errors.close() }
    process.standardOutput = FileHandle.nullDevice
    process.standardError = errors
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    if process.isRunning {
        process.terminate()
        Thread.sleep(forTimeInterval: 1)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        throw RunError("mpirun \(arguments.prefix(2).joined(separator: " ")) did not finish in \(Int(timeout)) s")
    }
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self))
}

/// Data-parallel training over Open MPI: the same final checkpoint, byte for byte, for 1, 2
/// and 4 processes and for the binary run without mpirun; resume at another process count;
/// the fault paths end every rank with a named error.
@Suite(.serialized) struct MPITrainingTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-mpi-\(UUID().uuidString)")

    static let maml = ["--env", "point-nav", "--env-arg", "horizon=10", "--meta-batch-size", "4", "--fast-batch-size", "3",
                       "--hidden-sizes", "8", "--iterations", "3", "--checkpoint-every", "1", "--threads", "1", "--seed", "5"]

    func checkpoint(_ run: String, _ iteration: Int) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(run).appendingPathComponent("checkpoints")
            .appendingPathComponent(String(format: "%08d.ckpt", iteration)))
    }

    /// RL² with its trials in four fixed parts, over trials that end early (padding) and
    /// truncated-BPTT chunks, with advantages standardised across the parts.
    static let rl2 = ["--env", "gridworld", "--env-arg", "size=3", "--trials-per-iteration", "12", "--episodes-per-trial", "2",
                      "--hidden", "8", "--max-seq-len", "9", "--standardize-advantages", "--shards", "4", "--epochs", "2",
                      "--minibatch-trials", "4", "--iterations", "3", "--checkpoint-every", "1", "--threads", "1", "--seed", "5"]

    /// PEARL with each meta-batch in four fixed parts.
    static let pearl = ["--env", "point-nav", "--env-arg", "horizon=10", "--train-tasks", "6", "--meta-batch-size", "4", "--shards", "4",
                        "--batch-size", "8", "--context-batch-size", "8", "--initial-steps", "20", "--prior-steps", "10",
                        "--extra-posterior-steps", "10", "--gradient-steps", "3", "--eval-tasks", "2", "--eval-trajectories", "2",
                        "--hidden-sizes", "8", "--encoder-hidden-sizes", "8", "--iterations", "3", "--checkpoint-every", "1",
                        "--threads", "1", "--seed", "5"]

    /// SAC with each update's minibatch in four fixed parts.
    static let sac = ["--env", "pendulum-mass", "--hidden-sizes", "16,16", "--batch-size", "32", "--shards", "4", "--random-steps", "100",
                      "--steps-per-iteration", "200", "--iterations", "3", "--eval-episodes", "2", "--checkpoint-every", "1", "--seed", "5"]

    @Test(arguments: [["maml"] + maml, ["maml-fo"] + maml, ["meta-sgd"] + maml, ["maml", "--outer", "ppo"] + maml, ["reptile"] + maml,
                      ["rl2"] + rl2, ["rl2", "--algo", "trpo"] + rl2, ["pearl"] + pearl, ["sac"] + sac])
    func theFinalCheckpointDoesNotDependOnTheProcessCount(_ algorithm: [String]) throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        for ranks in [0, 1, 2, 4] {
            let out = directory.appendingPathComponent("n\(ranks)").path
            let (status, errors) = try runUnderMPI(ranks: ranks, ["train"] + algorithm + ["--out", out])
            #expect(status == 0, "\(ranks) ranks: \(errors)")
        }
        let single = try checkpoint("n0", 3)
        for ranks in [1, 2, 4] { #expect(try checkpoint("n\(ranks)", 3) == single, "\(ranks) ranks") }
        // Metrics too (all but the wall-clock columns).
        func metrics(_ run: String) throws -> [String] {
            try deterministicRows(directory.appendingPathComponent(run).appendingPathComponent("metrics.csv"))
        }
        #expect(try metrics("n4") == metrics("n0"))
    }

    @Test(arguments: [["maml"] + maml, ["rl2"] + rl2, ["pearl"] + pearl, ["sac"] + sac])
    func resumesExactlyAtAnotherProcessCount(_ algorithm: [String]) throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let straight = directory.appendingPathComponent("straight").path, resumed = directory.appendingPathComponent("resumed").path
        #expect(try runUnderMPI(ranks: 2, ["train"] + algorithm + ["--out", straight]).status == 0)
        var first = algorithm
        first[first.firstIndex(of: "--iterations")! + 1] = "1"
        #expect(try runUnderMPI(ranks: 4, ["train"] + first + ["--out", resumed]).status == 0)
        #expect(try runUnderMPI(ranks: 3, ["train", algorithm[0], "--resume", resumed, "--iterations", "3"]).status == 0)
        #expect(try checkpoint("resumed", 3) == checkpoint("straight", 3))
    }

    /// Two "hosts": network namespaces joined by a veth pair, one rank in each, MPI over TCP
    /// on that link only (`scripts/mpi-namespaces.sh` makes and removes them): the final
    /// checkpoint equals the one-process run's. Network namespaces need root (CI runs as root).
    @Test(.enabled(if: getuid() == 0, "network namespaces need root"))
    func twoHostsOverTCPGiveTheOneProcessCheckpoint() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/mpi-namespaces.sh")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path, try metarlExecutable().path, directory.path, "rl2"] + Self.rl2
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("started on 10.77.0.2 in namespace"), "\(text)")
        #expect(text.contains("identical: 00000003.ckpt"), "\(text)")
    }

    @Test func mismatchedSettingsAcrossRanksEndEveryRank() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("mismatch").path
        var other = Self.maml
        other[other.firstIndex(of: "--seed")! + 1] = "6"
        let (status, errors) = try runUnderMPI(ranks: 1, ["train", "maml"] + Self.maml + ["--out", out],
                                               extraRanks: ["train", "maml"] + other + ["--out", out], timeout: 120)
        #expect(status != 0)
        #expect(errors.contains("has a different run (its settings, or the checkpoint it resumed from) from rank 0"), "\(errors)")
        #expect(!FileManager.default.fileExists(atPath: out + "/run.json"))
    }

    @Test func anAlgorithmThatCannotSplitItsWorkSaysSo() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("ppo").path
        let (status, errors) = try runUnderMPI(ranks: 2, ["train", "ppo", "--iterations", "1", "--out", out], timeout: 120)
        #expect(status != 0)
        #expect(errors.contains("ppo does not split its work over MPI processes yet; run it without mpirun"), "\(errors)")
    }

    @Test func rl2NeedsAPartOfTheTrialsForEveryRank() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("rl2").path
        var settings = Self.rl2
        settings[settings.firstIndex(of: "--shards")! + 1] = "2"
        let (status, errors) = try runUnderMPI(ranks: 3, ["train", "rl2"] + settings + ["--out", out], timeout: 120)
        #expect(status != 0)
        #expect(errors.contains("rl2 on 3 processes needs --shards 3 or more (this run has 2): it splits each iteration's trials into that many fixed parts"), "\(errors)")
        #expect(!FileManager.default.fileExists(atPath: out + "/run.json"))
    }

    @Test func aKilledRankEndsTheJobAndKeepsTheLastCheckpoint() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("killed")
        var long = Self.maml
        long[long.firstIndex(of: "--iterations")! + 1] = "100000"
        guard let mpirun = mpirunExecutable() else { throw RunError("mpirun not found: install Debian's openmpi-bin") }
        let process = Process()
        process.executableURL = mpirun
        process.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", "2", try metarlExecutable().path, "train", "maml"] + long
            + ["--out", out.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        // Wait for a checkpoint, then SIGKILL one rank (a child of mpirun running metarl).
        let checkpoints = out.appendingPathComponent("checkpoints")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? []).filter({ $0.hasSuffix(".ckpt") }).count < 2 {
            Thread.sleep(forTimeInterval: 0.1)
        }
        let ranks = try childProcesses(of: process.processIdentifier)
        #expect(ranks.count == 2)
        kill(try #require(ranks.last), SIGKILL)
        let end = Date().addingTimeInterval(60)
        while process.isRunning, Date() < end { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!process.isRunning, "mpirun kept running after a rank was killed")
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        #expect(try childProcesses(of: process.processIdentifier).isEmpty)
        // The newest checkpoint is whole: it loads and evaluates.
        #expect(try runMetarl(["eval", out.path, "--tasks", "2"]) == 0)
    }

    /// The processes whose parent is `pid` (from /proc).
    func childProcesses(of pid: Int32) throws -> [Int32] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }.sorted()
    }

    @Test func missingOpenMPIIsANamedError() throws {
        let process = Process()
        process.executableURL = try metarlExecutable()
        process.arguments = ["train", "maml"] + Self.maml + ["--out", directory.appendingPathComponent("nompi").path]
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["OMPI_COMM_WORLD_SIZE": "2", "METARL_MPI_LIBRARY": "/nonexistent/libmpi.so.40"]) { $1 }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 2)
        #expect(text.hasPrefix("error: MPI: cannot load /nonexistent/libmpi.so.40 (install Debian's openmpi-bin"), "\(text)")
    }
}
