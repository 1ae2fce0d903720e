import Envs
import Foundation
import MetaRL
import MetaRLCLI
import NN
import RL
@testable import Runs
import Testing

/// A fresh empty directory under the system's temporary directory.
func temporaryDirectory(_ name: String) -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("metarl-tests-\(name)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))")
    try? FileManager.default.removeItem(at: url)
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A tiny RL² config that trains in well under a second per iteration in a debug build.
func tinyRL2Config(iterations: Int) -> RL2Config {
    var config = RL2Config()
    config.episodesPerTrial = 5
    config.hiddenSize = 8
    config.trialsPerIteration = 24
    config.minibatchTrials = 8
    config.epochs = 2
    config.iterations = iterations
    return config
}

/// metrics.csv without the wall-clock columns (`*_seconds`, `*_per_second`), which differ between any two runs.
func deterministicRows(_ url: URL) throws -> [String] {
    let text = try String(contentsOf: url, encoding: .utf8)
    let lines = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    guard let header = lines.first else { return [] }
    let keep = header.indices.filter { !header[$0].hasSuffix("_seconds") && !header[$0].hasSuffix("_per_second") }
    return lines.map { row in keep.map { $0 < row.count ? row[$0] : "" }.joined(separator: ",") }
}

@Suite struct ConfigTests {
    @Test func printedConfigReadsBackUnchanged() throws {
        var config = RL2Config()
        config.hiddenSize = 48
        config.learningRate = 3e-4
        config.trpo.maxKL = 0.02
        config.cell = .lstm
        let made = try manifest("rl2", env: try spec("tabular-mdp", ["states=7"]), seed: 9, config)
        let text = try RunConfigFile.yaml(made)
        #expect(text.contains("hiddenSize: 48"))
        #expect(text.contains("states: 7"))
        let back = try parseConfig(text, source: "t.yaml", algorithm: "rl2")
        #expect(back == made)
        // Every cell kind reads back by its name.
        for kind in RecurrentCellChoice.Kind.allCases {
            config.cell = kind
            let text = try RunConfigFile.yaml(try manifest("rl2", env: try spec("bandit"), seed: 1, config))
            #expect(text.contains("cell: \(kind.rawValue)"))
            #expect(try parseConfig(text, source: "t.yaml", algorithm: "rl2").rl2?.cell == kind)
        }
    }

    /// Lists (hidden sizes) and nested sections of the MAML, SAC and PEARL settings survive
    /// the round trip too, with values other than the defaults.
    @Test func listsAndNestedSectionsReadBack() throws {
        var maml = MAMLConfig()
        maml.hiddenSizes = [32, 16, 8]
        var sac = SACConfig()
        sac.hiddenSizes = [100, 50]
        sac.update.targetEntropy = -3.5
        sac.taskMixture = true
        var pearl = PEARLConfig()
        pearl.encoderHiddenSizes = [7]
        pearl.update.rewardScale = 100
        let pointNav = try spec("point-nav")
        for manifest in [try manifest("maml", env: pointNav, seed: 1, maml),
                         try manifest("sac", env: pointNav, seed: 2, sac),
                         try manifest("pearl", env: pointNav, seed: 3, pearl)] {
            let text = try RunConfigFile.yaml(manifest)
            let back = try parseConfig(text, source: "t.yaml", algorithm: manifest.algorithm)
            #expect(back == manifest, "\(text)")
        }
    }

    @Test func absentKeysKeepTheirDefaults() throws {
        let manifest = try parseConfig("env: harlow\nrl2: {hiddenSize: 32}\n", source: "t.yaml", algorithm: "rl2")
        var expected = RL2Config()
        expected.hiddenSize = 32
        #expect(manifest.rl2 == expected)
        #expect(manifest.env == "harlow")
        #expect(manifest.settingsKey == "rl2")
        #expect(manifest.envArguments.isEmpty)
        #expect(manifest.seed == 0)
    }

    /// Each bad config is a `RunError` whose message names the key, the value and what is allowed.
    @Test(arguments: [
        ("rl2: {hiddenSiz: 3}", ["rl2.hiddenSiz", "unknown key", "hiddenSize"]),
        ("rl2: {hiddenSize: abc}", ["rl2.hiddenSize", "\"abc\"", "integer"]),
        ("rl2: {hiddenSize: 0}", ["rl2.hiddenSize", "0", "1…4096"]),
        ("rl2: {gamma: 1.5}", ["rl2.gamma", "1.5", "0.0…1.0"]),
        ("rl2: {cell: rnn}", ["rl2.cell", "rnn", "gru, lstm"]),
        ("rl2: {trpo: {maxKl: 1}}", ["rl2.trpo.maxKl", "unknown key", "maxKL"]),
        ("seeds: 3", ["seeds", "unknown key", "seed"]),
        ("seed: -1", ["seed", "-1", "integer"]),
        ("env: maze", ["maze", "bandit"]),
        ("env: bandit\nenvArguments: {arms: 1}", ["arms", "1"]),
        ("algorithm: maml", ["algorithm", "maml", "rl2"]),
        ("rl2: 5", ["rl2", "mapping"]),
        ("- 1\n- 2", ["mapping"]),
        ("rl2: {hiddenSize: [", ["not valid YAML"]),
    ])
    func badConfigsAreNamedErrors(text: String, mentions: [String]) {
        do {
            _ = try parseConfig(text, source: "bad.yaml", algorithm: "rl2")
            Issue.record("accepted: \(text)")
        } catch {
            let message = "\(error)"
            #expect(message.hasPrefix("bad.yaml: "), "\(message)")
            for word in mentions { #expect(message.contains(word), "\(message) should mention \(word)") }
        }
    }
}

@Suite struct MetricsFileTests {
    /// A metric that first appears in a later iteration (a run resumed by a newer build that
    /// logs success rates) gets its own column; earlier rows leave it empty.
    @Test func aMetricFirstSeenLaterGetsAColumn() throws {
        let directory = temporaryDirectory("metrics")
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("metrics.csv")
        var csv = try MetricsCSV(url: url, keepingRowsThrough: 0)
        try csv.append(iteration: 1, metrics: [("return", 1.5), ("steps", 10)])
        try csv.append(iteration: 2, metrics: [("return", 2.5), ("steps", 20)])
        var resumed = try MetricsCSV(url: url, keepingRowsThrough: 2)
        try resumed.append(iteration: 3, metrics: [("return", 3.5), ("success_rate", 0.25), ("steps", 30)])
        try resumed.append(iteration: 4, metrics: [("return", 4.5), ("steps", 40)])
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text == """
            iteration,return,steps,success_rate
            1,1.5,10.0,
            2,2.5,20.0,
            3,3.5,30.0,0.25
            4,4.5,40.0,

            """)
        let reopened = try MetricsCSV(url: url, keepingRowsThrough: 4)
        #expect(reopened.keptRows.count == 4)
        #expect(reopened.keptRows[2].metrics.contains { $0 == ("success_rate", 0.25) })
    }
}

@Suite struct EventFileTests {
    /// The masked CRC-32C of the catalogue check string, masked by hand.
    @Test func maskedCRCMatchesTheHandComputation() {
        let crc: UInt32 = 0xE306_9283  // CRC-32C("123456789"), the catalogue's check value
        #expect(MaskedCRC32C.of(Array("123456789".utf8)) == ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8)
    }

    /// Reads the file back by its framing: every record's length and masked CRCs check,
    /// and the scalar events carry the steps written, in order.
    @Test func recordsAreFramedAndChecksummed() throws {
        let directory = temporaryDirectory("events")
        defer { try? FileManager.default.removeItem(at: directory) }
        let writer = try TensorBoardEventWriter(directory: directory, wallTime: 1000)
        try writer.append(step: 1, scalars: [("a", 1.5), ("b", -2)], wallTime: 1001)
        try writer.append(step: 2, scalars: [("a", .nan)], wallTime: 1002)
        let bytes = [UInt8](try Data(contentsOf: writer.url))
        var offset = 0, payloads: [[UInt8]] = []
        func word(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
        while offset < bytes.count {
            let lengthBytes = Array(bytes[offset..<offset + 8])
            let length = (0..<8).reduce(0) { $0 | Int(lengthBytes[$1]) << (8 * $1) }
            #expect(word(offset + 8) == MaskedCRC32C.of(lengthBytes))
            let payload = Array(bytes[offset + 12..<offset + 12 + length])
            #expect(word(offset + 12 + length) == MaskedCRC32C.of(payload))
            payloads.append(payload)
            offset += 12 + length + 4
        }
        #expect(offset == bytes.count)
        #expect(payloads.count == 3)
        // Version record: wall_time (field 1, fixed64) then file_version (field 3).
        #expect(payloads[0][0] == 0x09 && payloads[0][9] == 0x1A)
        #expect(String(decoding: payloads[0][11...], as: UTF8.self) == "brain.Event:2")
        // Step 1: field 2 varint 1; its summary holds tags "a" and "b" with float 1.5 and −2.
        #expect(payloads[1][9] == 0x10 && payloads[1][10] == 1)
        let onePointFive = withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian) { Array($0) }
        #expect(payloads[1].windows(ofCount: 4).contains(onePointFive))
        // Step 2's only value is NaN, so its summary is empty.
        #expect(payloads[2].last == 0x00 && payloads[2][payloads[2].count - 2] == 0x2A)
    }
}

extension Array where Element == UInt8 {
    func windows(ofCount n: Int) -> [[UInt8]] { count < n ? [] : (0...(count - n)).map { Array(self[$0..<$0 + n]) } }
}

@Suite struct CheckpointTests {
    @Test func truncatedAndCorruptCheckpointsFallBack() throws {
        let directory = RunDirectory(temporaryDirectory("ckpt"))
        defer { try? FileManager.default.removeItem(at: directory.url) }
        try directory.create(manifest: try manifest("rl2", env: try spec("bandit"), seed: 1, RL2Config()))
        for i in 1...3 { try directory.saveCheckpoint([Double(i), 2, 3], iteration: i, keep: 2) }
        #expect(directory.checkpointIterations() == [2, 3])
        // Truncate 3: it is reported and 2 is used.
        let three = directory.checkpointsURL.appendingPathComponent("00000003.ckpt")
        let full = try Data(contentsOf: three)
        try full.prefix(full.count - 3).write(to: three)
        var notes: [String] = []
        let loaded = try directory.latestCheckpoint([Double].self) { notes.append($0) }
        #expect(loaded?.iteration == 2 && loaded?.state == [2, 2, 3])
        #expect(notes.count == 1 && notes[0].contains("truncated"))
        // Flip a byte of 2's body: the checksum catches it, and nothing usable is left.
        let two = directory.checkpointsURL.appendingPathComponent("00000002.ckpt")
        var bytes = [UInt8](try Data(contentsOf: two))
        bytes[bytes.count - 2] ^= 0x01
        try Data(bytes).write(to: two)
        notes = []
        #expect(try directory.latestCheckpoint([Double].self) { notes.append($0) } == nil)
        #expect(notes.contains { $0.contains("checksum") })
    }

    /// Two iterations, stop, resume for two more: the same parameters, optimiser state and
    /// RNG state, bit for bit, and the same metric rows as four iterations straight through.
    @Test func resumeIsExactInProcess() throws {
        let root = temporaryDirectory("resume")
        defer { try? FileManager.default.removeItem(at: root) }
        func train(_ name: String, stops: [Int]) throws -> (Data, [String]) {
            let directory = RunDirectory(root.appendingPathComponent(name))
            try directory.create(manifest: try manifest("rl2", env: try spec("bandit", ["arms=2"]), seed: 4, tinyRL2Config(iterations: 4)))
            for (i, stop) in stops.enumerated() {
                var config = tinyRL2Config(iterations: 4)
                config.iterations = stop
                let request = TrainingRequest(settings: try SettingsCoding.encode(config), seed: 4, directory: directory, resume: i > 0,
                                              checkpointEvery: 1, keepCheckpoints: 3, threads: 2,
                                              progress: ProgressLine(isTerminal: false, output: { _ in }))
                _ = try algorithm("rl2").train(request, on: try spec("bandit", ["arms=2"]))
            }
            let last = directory.checkpointsURL.appendingPathComponent("00000004.ckpt")
            return (try Data(contentsOf: last), try deterministicRows(directory.metricsURL))
        }
        let straight = try train("straight", stops: [4])
        let resumed = try train("resumed", stops: [2, 4])
        #expect(straight.0 == resumed.0)
        #expect(straight.1 == resumed.1)
        #expect(straight.1.count == 5)
    }
}

/// The `metarl` executable built beside the test bundle.
func metarlExecutable() throws -> URL {
    var directory = Bundle.main.bundleURL
    for _ in 0..<3 {
        let candidate = directory.appendingPathComponent("metarl")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw RunError("metarl executable not found near \(Bundle.main.bundleURL.path); build it with `swift build`")
}

/// Runs `metarl` to completion and returns its exit status.
@discardableResult
func runMetarl(_ arguments: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = try metarlExecutable()
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

@Suite struct KilledRunTests {
    static let rl2 = ["train", "rl2", "--env", "bandit", "--env-arg", "arms=2", "--episodes-per-trial", "5", "--hidden", "8",
                      "--trials-per-iteration", "24", "--minibatch-trials", "8", "--epochs", "2", "--iterations", "40",
                      "--checkpoint-every", "1", "--seed", "4"]
    static let maml = ["train", "maml", "--env", "point-nav", "--env-arg", "horizon=8", "--meta-batch-size", "2",
                       "--fast-batch-size", "3", "--hidden-sizes", "4", "--iterations", "40", "--checkpoint-every", "1", "--seed", "4"]

    static let sac = ["train", "sac", "--env", "point-nav", "--env-arg", "horizon=8", "--hidden-sizes", "8", "--batch-size", "8",
                      "--steps-per-iteration", "16", "--random-steps", "20", "--eval-episodes", "2", "--iterations", "40",
                      "--checkpoint-every", "1", "--seed", "4"]
    static let ppo = ["train", "ppo", "--env", "point-nav", "--env-arg", "horizon=8", "--hidden-sizes", "8",
                      "--episodes-per-iteration", "4", "--minibatch-size", "8", "--epochs", "2", "--iterations", "40",
                      "--checkpoint-every", "1", "--seed", "4"]
    /// RL² with box actions (the Gaussian head).
    static let rl2Gaussian = ["train", "rl2", "--env", "point-nav", "--env-arg", "horizon=4", "--episodes-per-trial", "2",
                              "--hidden", "8", "--trials-per-iteration", "8", "--minibatch-trials", "4", "--epochs", "2",
                              "--iterations", "40", "--checkpoint-every", "1", "--seed", "4"]
    /// PEARL's small settings come from a config file (written by the test), the rest from flags.
    static let pearlConfig = """
        pearl:
          hiddenSizes: [8]
          encoderHiddenSizes: [8]
          trainTasks: 3
          metaBatchSize: 2
          batchSize: 8
          contextBatchSize: 4
          initialStepsPerTask: 8
          tasksPerIteration: 1
          priorSteps: 8
          extraPosteriorSteps: 8
          gradientStepsPerIteration: 3
          evalTasks: 2
          evalTrajectories: 2
        """
    static let pearl = ["train", "pearl", "--env", "pendulum-mass", "--env-arg", "horizon=8", "--iterations", "40",
                        "--checkpoint-every", "1", "--seed", "4", "--config", "PEARL_CONFIG"]

    /// `metarl train` killed with SIGKILL part-way, then `--resume`d, ends bit-identical to a
    /// run straight through: the final checkpoint (parameters, optimiser state, RNG state,
    /// counters) byte for byte, and the same metric rows apart from wall-clock columns.
    @Test(arguments: [rl2, rl2Gaussian, maml, sac, ppo, pearl])
    func resumeAfterSIGKILLIsExact(arguments: [String]) throws {
        let root = temporaryDirectory("sigkill")
        defer { try? FileManager.default.removeItem(at: root) }
        let configFile = root.appendingPathComponent("pearl.yaml")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try Data(Self.pearlConfig.utf8).write(to: configFile)
        let arguments = arguments.map { $0 == "PEARL_CONFIG" ? configFile.path : $0 }
        let straight = root.appendingPathComponent("straight"), killed = root.appendingPathComponent("killed")
        #expect(try runMetarl(arguments + ["--out", straight.path]) == 0)

        let process = Process()
        process.executableURL = try metarlExecutable()
        process.arguments = arguments + ["--out", killed.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let checkpoints = RunDirectory(killed)
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning, (checkpoints.checkpointIterations().last ?? 0) < 3, Date() < deadline { usleep(2000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the run finished before it could be killed")
        let reached = checkpoints.checkpointIterations().last ?? 0
        #expect(reached >= 3 && reached < 40)

        #expect(try runMetarl(["train", arguments[1], "--resume", killed.path]) == 0)
        let last = "checkpoints/00000040.ckpt"
        #expect(try Data(contentsOf: straight.appendingPathComponent(last)) == Data(contentsOf: killed.appendingPathComponent(last)))
        let rows = try deterministicRows(straight.appendingPathComponent("metrics.csv"))
        #expect(rows.count == 41)
        #expect(rows == (try deterministicRows(killed.appendingPathComponent("metrics.csv"))))
    }
}

@Suite struct ResumedManifestTests {
    /// `--resume DIR --iterations N` writes the new total into run.json and config.yaml, and
    /// a setting changed by hand in run.json reaches config.yaml when the run resumes.
    @Test func resumeRewritesTheManifestAndItsYAML() throws {
        let root = temporaryDirectory("resume-manifest")
        defer { try? FileManager.default.removeItem(at: root) }
        let run = root.appendingPathComponent("run")
        let arguments = KilledRunTests.rl2.map { $0 == "40" ? "2" : $0 }
        #expect(try runMetarl(arguments + ["--out", run.path]) == 0)
        let directory = RunDirectory(run)
        var manifest = try directory.manifest()
        #expect(manifest.rl2?.iterations == 2)
        manifest.settings = manifest.settings.setting(.number(5e-5), at: "learningRate")
        let encoder = JSONEncoder()
        try encoder.encode(manifest).write(to: directory.manifestURL)

        #expect(try runMetarl(["train", "rl2", "--resume", run.path, "--iterations", "3"]) == 0)
        let resumed = try directory.manifest()
        #expect(resumed.rl2?.iterations == 3 && resumed.rl2?.learningRate == 5e-5)
        #expect(try RunConfigFile.load(path: directory.configURL.path, algorithm: try algorithm("rl2"), families: catalog.families) == resumed)
        #expect(directory.checkpointIterations().last == 3)
        // A smaller --iterations keeps the total (it would change an annealed schedule) and says so.
        let lower = try runMetarlCapturing(["train", "rl2", "--resume", run.path, "--iterations", "2"])
        #expect(lower.status == 0 && lower.output.contains("note: --iterations 2 is below the run's total of 3, which it keeps"),
                "\(lower.output) \(lower.errors)")
        #expect(try directory.manifest().rl2?.iterations == 3)
    }
}

@Suite struct FailedStartTests {
    /// A new run that fails before its first iteration (SAC on a discrete-action family)
    /// exits non-zero and leaves no run behind; a directory the user made beforehand keeps
    /// what it held; the same `--out` then trains.
    @Test func newRunThatFailsAtOnceLeavesNothingBehind() throws {
        let root = temporaryDirectory("failed-start")
        defer { try? FileManager.default.removeItem(at: root) }
        let files = FileManager.default
        let fresh = root.appendingPathComponent("fresh")
        #expect(try runMetarl(["train", "sac", "--env", "bandit", "--out", fresh.path]) == 2)
        #expect(!files.fileExists(atPath: fresh.path))

        let made = root.appendingPathComponent("made")
        try files.createDirectory(at: made, withIntermediateDirectories: true)
        try Data("notes".utf8).write(to: made.appendingPathComponent("notes.txt"))
        #expect(try runMetarl(["train", "pearl", "--env", "gridworld", "--out", made.path]) == 2)
        #expect(try files.contentsOfDirectory(atPath: made.path) == ["notes.txt"])

        let small = ["train", "sac", "--env", "point-nav", "--env-arg", "horizon=8", "--hidden-sizes", "8", "--batch-size", "8",
                     "--steps-per-iteration", "16", "--random-steps", "20", "--eval-episodes", "2", "--iterations", "1",
                     "--out", fresh.path]
        #expect(try runMetarl(small) == 0)
        #expect(files.fileExists(atPath: RunDirectory(fresh).manifestURL.path))
        #expect(RunDirectory(fresh).checkpointIterations() == [1])
    }
}
