import ArgumentParser
import Envs
import Foundation
import OpenMPI
import RL
import Runs
import TensorCore

/// `metarl train ALGORITHM [options]`: one command for every registered algorithm. The
/// options are the run's (below) and the algorithm's settings, each a flag derived from its
/// settings table, so registering an algorithm gives it its command line.
struct Train: CatalogCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a meta-RL agent into a run directory (metarl train ALGORITHM --help lists its settings).",
        helpNames: [])

    @Argument(parsing: .captureForPassthrough, help: "An algorithm, then its options (`metarl train --help`).")
    var arguments: [String] = []

    /// The options every algorithm's `train` takes, besides its settings.
    static let runOptions: [(flag: String, takesValue: Bool, help: String)] = [
        ("--config", true, "a run config in YAML (config.yaml of a run works); flags given as well override it"),
        ("--print-config", false, "print the resolved config as YAML and exit without training"),
        ("--env", true, "task family (see `metarl envs`)"),
        ("--env-arg", true, "a family argument, key=value (repeatable)"),
        ("--seed", true, "random seed (default 0)"),
        ("--out", true, "run directory to create"),
        ("--resume", true, "run directory to continue from its newest good checkpoint (with --iterations N: the new total)"),
        ("--warm-start", true, "with --out: start from the networks of this run of the same algorithm (rl2: an agent of fewer arms or fewer hidden units is widened, acting as before)"),
        ("--checkpoint-every", true, "checkpoint every N iterations (recorded in the run: a resume goes on so unless given again)"),
        ("--keep-checkpoints", true, "checkpoints to keep (recorded in the run, as --checkpoint-every)"),
        ("--threads", true, "threads (results do not depend on it)"),
        ("--mpi-timeout", true, "under mpirun: seconds a rank waits for the others in a collective before the job stops (default 600)"),
    ] + Catalog.pythonOptions

    func run(catalog: Catalog) throws {
        guard let name = arguments.first, !name.hasPrefix("-") else {
            print(Self.overview(catalog))
            if arguments.contains(where: { $0 == "--help" || $0 == "-h" }) || arguments.isEmpty { return }
            throw fail("give an algorithm first: metarl train ALGORITHM …; registered: \(catalog.algorithms.names.joined(separator: ", "))")
        }
        try reportingErrors {
            let algorithm = try catalog.algorithms.algorithm(named: name)
            let rest = Array(arguments.dropFirst())
            if rest.contains("--help") || rest.contains("-h") {
                print(Self.help(algorithm))
                return
            }
            let parsed = try CommandLineOptions(rest, runOptions: Self.runOptions, settingFlags: algorithm.settingFlags,
                                                defaults: algorithm.defaultSettings)
            let timeout = try parsed.integer("--mpi-timeout") ?? 600
            guard timeout >= 1 else { throw RunError("--mpi-timeout \(timeout): must be at least 1 second") }
            guard let group = try MPIProcessGroup.joinIfLaunched(timeoutSeconds: Double(timeout)) else {
                try Self.train(algorithm, parsed, catalog: try catalog.configuringPython(parsed), group: SingleProcess())
                return
            }
            // Under mpirun an error on any rank ends every rank (MPI_Abort), so none waits on
            // a collective the failed one will never join; each prints its own line first.
            do {
                try requireSameOnEveryRank(try executableFingerprint(), what: "metarl executable", group: group)
                let started = Date()
                try Self.train(algorithm, parsed, catalog: try catalog.configuringPython(parsed), group: group)
                try Self.reportTraffic(group, seconds: Date().timeIntervalSince(started))
                group.finish()
            } catch {
                FileHandle.standardError.write(Data("error: rank \(group.rank) of \(group.size): \(error)\n".utf8))
                // Rank 0, failing the same way, first removes a run directory it just made.
                if !group.isLeader { Thread.sleep(forTimeInterval: 2) }
                group.abort(code: 2)
            }
        }
    }

    /// Prints on rank 0 one line per rank: its collectives, the share of the run's wall-clock
    /// spent in them, and the bytes it sent and received (what `Benchmarks/mpi-scaling.sh` reads).
    static func reportTraffic(_ group: MPIProcessGroup, seconds: Double) throws {
        let own = group.traffic
        let all = try distributedMap(group.size, group: group, threads: 1) { _ in
            [Double(own.collectives), Double(own.bytesSent), Double(own.bytesReceived), own.seconds]
        }
        guard group.isLeader else { return }
        for (rank, t) in all.enumerated() {
            print(String(format: "mpi rank %d of %d: %.0f collectives, %.2f s in them of %.2f s (%.1f%%), %.0f bytes sent, %.0f received",
                         rank, group.size, t[0], t[3], seconds, 100 * t[3] / Swift.max(seconds, 1e-9), t[1], t[2]))
        }
    }

    /// Resolves the manifest (defaults, then the config file, then the flags), then trains
    /// a new run into `--out` or continues `--resume`.
    /// Under MPI (`group` of several ranks) every rank trains in step and rank 0 alone
    /// creates and writes the run directory and prints.
    static func train(_ algorithm: RegisteredAlgorithm, _ parsed: CommandLineOptions, catalog: Catalog,
                      group: any ProcessGroup) throws {
        let threads = try parsed.integer("--threads") ?? algorithm.defaultThreads
        for (flag, value) in [("--checkpoint-every", try parsed.integer("--checkpoint-every")), ("--keep-checkpoints", try parsed.integer("--keep-checkpoints")),
                              ("--threads", threads)] {
            if let value, value < 1 { throw RunError("\(flag) \(value): must be at least 1") }
        }
        let out = parsed.value("--out"), resume = parsed.value("--resume")
        if parsed.has("--print-config") {
            // Notes to stderr here: stdout is the YAML.
            let manifest = try resume.map { try resumedManifest(algorithm, parsed, directory: RunDirectory(URL(fileURLWithPath: $0)), note: printNote) }
                ?? resolvedManifest(algorithm, parsed, catalog: catalog)
            print(try RunConfigFile.yaml(manifest), terminator: "")
            return
        }
        guard (out == nil) != (resume == nil) else { throw RunError("give exactly one of --out DIR (new run) or --resume DIR") }
        let warmStart = try parsed.value("--warm-start").map { path -> RunDirectory in
            guard resume == nil else { throw RunError("--warm-start starts a new run (--out); a resumed run continues from its own checkpoint") }
            let source = RunDirectory(URL(fileURLWithPath: path))
            let made = try source.manifest().algorithm
            guard made == algorithm.name else { throw RunError("--warm-start \(path): that run was made by \(made), this one is \(algorithm.name)") }
            return source
        }
        let start = Date()
        let leader = group.isLeader
        let note: (String) -> Void = { if leader { print("note: " + $0) } }
        func trainIn(_ directory: RunDirectory, _ manifest: RunManifest) throws -> TrainingOutcome {
            let checkpointEvery = manifest.checkpointEvery ?? algorithm.checkpointEvery, keep = manifest.keepCheckpoints ?? algorithm.keepCheckpoints
            for (key, value) in [("checkpointEvery", checkpointEvery), ("keepCheckpoints", keep)] where value < 1 {
                throw RunError("\(key) \(value) in the run's config: must be at least 1")
            }
            var request = TrainingRequest(settings: manifest.settings, seed: manifest.seed, directory: directory, resume: resume != nil,
                                          checkpointEvery: checkpointEvery, keepCheckpoints: keep, threads: threads,
                                          notes: note, group: group)
            request.warmStart = warmStart
            return try algorithm.train(request, on: try catalog.envSpec(of: manifest, at: directory.url.path))
        }
        let resolve = { try resolvedManifest(algorithm, parsed, catalog: catalog) }
        let extend = { try resumedManifest(algorithm, parsed, directory: $0, note: note) }
        guard leader else {
            // The other ranks read the run (a resumed one's checkpoint) but never write it.
            let directory = RunDirectory(URL(fileURLWithPath: resume ?? out!))
            _ = try trainIn(directory, try resume == nil ? resolve() : extend(directory))
            return
        }
        let (directory, outcome) = try withRun(out: out, resume: resume, resolve: resolve, extend: extend, train: trainIn)
        print(String(format: "trained %d iterations, %d environment steps, in %.1f s → %@", outcome.iteration, outcome.environmentSteps,
                     Date().timeIntervalSince(start), directory.url.path))
    }

    /// Defaults, then the config file, then the flags given.
    static func resolvedManifest(_ algorithm: RegisteredAlgorithm, _ parsed: CommandLineOptions, catalog: Catalog) throws -> RunManifest {
        var manifest = try parsed.value("--config").map { try RunConfigFile.load(path: $0, algorithm: algorithm, families: catalog.families) }
            ?? RunManifest(algorithm: algorithm.name, env: try catalog.families.spec(algorithm.defaultEnv), seed: 0,
                           settingsKey: algorithm.settingsKey, settings: algorithm.defaultSettings)
        let seed = try parsed.value("--seed").map { text -> UInt64 in
            guard let s = UInt64(text) else { throw RunError("--seed \(text): expected a non-negative integer") }
            return s
        }
        try manifest.override(env: parsed.value("--env"), arguments: parsed.values("--env-arg"), seed: seed, families: catalog.families)
        manifest.settings = try parsed.applySettings(to: manifest.settings, algorithm: algorithm)
        manifest.checkpointEvery = try parsed.integer("--checkpoint-every") ?? manifest.checkpointEvery ?? algorithm.checkpointEvery
        manifest.keepCheckpoints = try parsed.integer("--keep-checkpoints") ?? manifest.keepCheckpoints ?? algorithm.keepCheckpoints
        return manifest
    }

    /// A run directory's manifest with `--iterations` applied (the larger of the two totals)
    /// and `--checkpoint-every` / `--keep-checkpoints` if given (otherwise the run's own, or
    /// the defaults for a run that recorded none); other settings and the task are the run's
    /// own: edit its run.json to change them. `note` tells the user what was not applied.
    static func resumedManifest(_ algorithm: RegisteredAlgorithm, _ parsed: CommandLineOptions, directory: RunDirectory,
                                note: (String) -> Void) throws -> RunManifest {
        var saved = try directory.manifest()
        guard saved.algorithm == algorithm.name else {
            throw RunError("\(directory.url.path) holds a \(saved.algorithm) run, not \(algorithm.name)")
        }
        let changed = parsed.settingKeys.filter { $0 != "iterations" }
        for flag in ["--config", "--env", "--env-arg", "--seed"] where parsed.has(flag) {
            throw RunError("\(flag) cannot change a run being resumed; edit \(directory.manifestURL.path) instead")
        }
        if let key = changed.first {
            throw RunError("\(parsed.flagName(of: key)) cannot change a run being resumed (only --iterations can); edit \(directory.manifestURL.path) instead")
        }
        var settings = try resolving(algorithm, saved.settings)
        if let given = try parsed.applySettings(to: .object([:]), algorithm: nil).value(at: "iterations"), case .integer(let n) = given {
            let total = try algorithm.iterations(settings)
            if n < total {
                note("--iterations \(n) is below the run's total of \(total), which it keeps (a resume can only raise the total; "
                          + "stop earlier with Ctrl-C, which ends the run after the iteration under way with a checkpoint)")
            }
            settings = try resolving(algorithm, settings.setting(.integer(max(n, total)), at: "iterations"))
        }
        saved.settingsKey = algorithm.settingsKey
        saved.settings = settings
        // How often it checkpoints does not change results: the flags may change it (and it is kept).
        if let every = try parsed.integer("--checkpoint-every") { saved.checkpointEvery = every }
        if let keep = try parsed.integer("--keep-checkpoints") { saved.keepCheckpoints = keep }
        return saved
    }

    /// `algorithm.resolve` with its errors as one line naming the run's setting.
    static func resolving(_ algorithm: RegisteredAlgorithm, _ settings: JSONValue) throws -> JSONValue {
        do { return try algorithm.resolve(settings) } catch let error as ConfigError {
            throw RunError("\(algorithm.settingsKey).\(error)")
        }
    }

    /// `metarl train --help`.
    static func overview(_ catalog: Catalog) -> String {
        var lines = ["USAGE: metarl train ALGORITHM [--out DIR | --resume DIR] [options]", "", "ALGORITHMS:"]
        for a in catalog.algorithms.algorithms { lines.append("  " + a.name.padding(toLength: 10, withPad: " ", startingAt: 0) + " " + a.summary) }
        lines.append("")
        lines.append("`metarl train ALGORITHM --help` lists its options.")
        return lines.joined(separator: "\n")
    }

    /// `metarl train ALGORITHM --help`: the run options, then every setting with its default.
    static func help(_ algorithm: RegisteredAlgorithm) -> String {
        var lines = ["USAGE: metarl train \(algorithm.name) [--out DIR | --resume DIR] [options]", "", algorithm.summary, "",
                     "RUN OPTIONS:"]
        for o in runOptions { lines.append("  " + (o.flag + (o.takesValue ? " <value>" : "")).padding(toLength: 30, withPad: " ", startingAt: 0) + o.help) }
        lines.append("  (defaults: --checkpoint-every \(algorithm.checkpointEvery), --keep-checkpoints \(algorithm.keepCheckpoints), --threads \(algorithm.defaultThreads), --env \(algorithm.defaultEnv))")
        lines.append("")
        lines.append("SETTINGS (config key \(algorithm.settingsKey).KEY; default in brackets):")
        lines += settingsHelp(algorithm.settingFlags, defaults: algorithm.defaultSettings)
        return lines.joined(separator: "\n")
    }

    /// One line per settings flag: the flag, its key, its help and its default.
    static func settingsHelp(_ flags: [SettingFlag], defaults: JSONValue) -> [String] {
        let width = max(30, (flags.map(\.name.count).max() ?? 0) + 2)
        return flags.map { f in
            let value = defaults.value(at: f.key).map(describe) ?? "none"
            let help = f.help.isEmpty ? "" : f.help + " "
            return "  " + f.name.padding(toLength: width, withPad: " ", startingAt: 0) + help + "(\(f.key); [\(value)])"
        }
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "none"
        case .bool(let b): "\(b)"
        case .integer(let i): "\(i)"
        case .number(let d): "\(d)"
        case .string(let s): s
        case .array(let items): items.map(describe).joined(separator: ",")
        case .object: "…"
        }
    }
}

/// What ranks compare to be sure they run one program: the executable's size and its first
/// and last mebibyte, digested.
func executableFingerprint() throws -> [UInt8] {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/exe"))
    defer { try? handle.close() }
    let size = try handle.seekToEnd()
    try handle.seek(toOffset: 0)
    var head = try handle.read(upToCount: 1 << 20) ?? Data()
    try handle.seek(toOffset: size > (1 << 20) ? size - (1 << 20) : 0)
    head.append(try handle.read(upToCount: 1 << 20) ?? Data())
    var bytes: [UInt8] = []
    Int(size).append(to: &bytes)
    fingerprint(head).append(to: &bytes)
    return bytes
}

/// Opens the run directory a `train` command works in and calls `train` with it: with
/// `--resume`, the existing run (`extend` reads and checks its manifest, which is written
/// back, with the new total of iterations); with `--out`, a new one created from `resolve()`.
/// A new run that fails before its first iteration is logged (say, a task family whose
/// action space the algorithm cannot use) is removed again, so that the same `--out` can be
/// given once the mistake is fixed.
func withRun<T>(out: String?, resume: String?, resolve: () throws -> RunManifest, extend: (RunDirectory) throws -> RunManifest,
                train: (RunDirectory, RunManifest) throws -> T) throws -> (RunDirectory, T) {
    if let resume {
        let directory = RunDirectory(URL(fileURLWithPath: resume))
        let saved = try extend(directory)
        try directory.write(manifest: saved)
        return (directory, try train(directory, saved))
    }
    let manifest = try resolve()
    let directory = RunDirectory(URL(fileURLWithPath: out!))
    let files = FileManager.default
    if files.fileExists(atPath: directory.manifestURL.path) {
        throw RunError("\(out!) already holds a run; use --resume \(out!) to continue it, or another --out")
    }
    let existed = files.fileExists(atPath: directory.url.path)
    try directory.create(manifest: manifest)
    do {
        return (directory, try train(directory, manifest))
    } catch {
        // Metrics rows or a checkpoint are evidence of a run worth keeping (a NaN at iteration 3, say).
        let rows = (try? String(contentsOf: directory.metricsURL, encoding: .utf8))?.split(separator: "\n").count ?? 0
        if rows <= 1 && directory.checkpointIterations().isEmpty {
            let created = existed
                ? [directory.manifestURL, directory.configURL, directory.metricsURL, directory.checkpointsURL]
                    + TensorBoardEventWriter.existingFiles(in: directory.url)
                : [directory.url]
            for url in created { try? files.removeItem(at: url) }
        }
        throw error
    }
}
