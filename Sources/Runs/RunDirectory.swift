import Envs
import Foundation
import NN
import RL

/// What a run directory was made by: the algorithm, the task family with its arguments,
/// the seed and the algorithm's resolved settings. `metarl eval` reads it back.
///
/// As JSON (run.json) and YAML (config.yaml) it is one object: `algorithm`, `env`,
/// `envArguments`, `seed`, and one more key, the algorithm's settings section (`rl2`,
/// `maml`, …, `AlgorithmDefinition.settingsKey`), kept here as data until the
/// algorithm's own settings type reads it.
public struct RunManifest: Codable, Sendable, Equatable {
    /// The registered algorithm's name.
    public var algorithm: String
    /// The registered task family's name and its arguments.
    public var env: String
    public var envArguments: [String: EnvArgumentValue]
    public var seed: UInt64
    /// The settings section's key ("" when a config file names none).
    public var settingsKey: String
    /// The settings section (an object), as written.
    public var settings: JSONValue
    /// Checkpoint every this many iterations, keeping this many (nil: the algorithm's
    /// defaults); recorded so that a resumed run goes on checkpointing as it started.
    public var checkpointEvery: Int?
    public var keepCheckpoints: Int?

    /// The keys a manifest may have besides its settings section.
    public static let commonKeys = ["algorithm", "env", "envArguments", "seed", "checkpointEvery", "keepCheckpoints"]

    /// A manifest for `algorithm` on `env` with `settings` (a `SettingsTable` value) under `settingsKey`.
    public init<S: Encodable>(algorithm: String, env: EnvSpec, seed: UInt64, settingsKey: String, settings: S) throws {
        self.algorithm = algorithm
        self.env = env.name
        self.envArguments = env.recorded
        self.seed = seed
        self.settingsKey = settingsKey
        self.settings = try SettingsCoding.encode(settings)
    }

    /// Reads the keys present; absent ones default to no algorithm (the command supplies it),
    /// no family (the algorithm's default), seed 0 and no settings section. More than one
    /// key besides the common ones is an error naming them.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        algorithm = try c.decodeIfPresent(String.self, forKey: AnyKey("algorithm")) ?? ""
        env = try c.decodeIfPresent(String.self, forKey: AnyKey("env")) ?? ""
        envArguments = try c.decodeIfPresent([String: EnvArgumentValue].self, forKey: AnyKey("envArguments")) ?? [:]
        seed = try c.decodeIfPresent(UInt64.self, forKey: AnyKey("seed")) ?? 0
        checkpointEvery = try c.decodeIfPresent(Int.self, forKey: AnyKey("checkpointEvery"))
        keepCheckpoints = try c.decodeIfPresent(Int.self, forKey: AnyKey("keepCheckpoints"))
        let sections = c.allKeys.filter { !Self.commonKeys.contains($0.stringValue) }
        guard sections.count <= 1 else {
            throw DecodingError.dataCorrupted(.init(codingPath: [sections[1]],
                debugDescription: "more than one settings section (\(sections.map(\.stringValue).sorted().joined(separator: ", "))); allowed: one"))
        }
        settingsKey = sections.first?.stringValue ?? ""
        settings = try sections.first.map { try c.decode(JSONValue.self, forKey: $0) } ?? .object([:])
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(algorithm, forKey: AnyKey("algorithm"))
        try c.encode(env, forKey: AnyKey("env"))
        try c.encode(envArguments, forKey: AnyKey("envArguments"))
        try c.encode(seed, forKey: AnyKey("seed"))
        try c.encodeIfPresent(checkpointEvery, forKey: AnyKey("checkpointEvery"))
        try c.encodeIfPresent(keepCheckpoints, forKey: AnyKey("keepCheckpoints"))
        if !settingsKey.isEmpty { try c.encode(settings, forKey: AnyKey(settingsKey)) }
    }

    /// The settings section read as `T` (absent keys at their defaults).
    public func settings<T: SettingsTable>(as type: T.Type) throws -> T {
        try SettingsCoding.decode(T.self, from: settings)
    }

    /// Applies a command line's task flags: `env` switches the family (dropping the old
    /// family's arguments), `arguments` (`key=value`) override the ones kept, `seed` replaces
    /// the seed. The result is checked against the family's argument ranges.
    public mutating func override(env: String?, arguments: [String], seed: UInt64?, families: TaskFamilyRegistry) throws {
        if let env, env != self.env {
            self.env = env
            envArguments = [:]
        }
        let kept = envArguments.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        envArguments = try families.spec(self.env, arguments: kept + arguments).recorded
        if let seed { self.seed = seed }
    }

    /// The task family, re-checked against the registry.
    public func envSpec(in families: TaskFamilyRegistry) throws -> EnvSpec {
        try families.spec(env, values: envArguments)
    }
}

/// A failure reading or writing a run directory, naming the file.
public struct RunError: Error, CustomStringConvertible {
    /// The one line `metarl` prints.
    public var description: String
    /// An error with this message.
    public init(_ description: String) { self.description = description }
}

/// A run directory:
/// ```
/// DIR/run.json                 the manifest (algorithm, env, seed, resolved config)
/// DIR/config.yaml              the same, as YAML (`--config` reads it)
/// DIR/metrics.csv              one row per iteration
/// DIR/events.out.tfevents.*    the same rows as TensorBoard scalars
/// DIR/checkpoints/NNNNNNNN.ckpt  the last few checkpoints (header with length and CRC-32, then JSON state)
/// ```
public struct RunDirectory: Sendable {
    /// The directory.
    public let url: URL
    /// The run directory at `url` (nothing is read or created yet).
    public init(_ url: URL) { self.url = url }

    /// run.json, metrics.csv, config.yaml and checkpoints/ inside the directory.
    public var manifestURL: URL { url.appendingPathComponent("run.json") }
    public var metricsURL: URL { url.appendingPathComponent("metrics.csv") }
    /// The resolved config as YAML, for reading and for `--config` to start a similar run.
    public var configURL: URL { url.appendingPathComponent("config.yaml") }
    public var checkpointsURL: URL { url.appendingPathComponent("checkpoints") }

    /// Creates the directory (and checkpoints/) and writes `manifest`.
    public func create(manifest: RunManifest) throws {
        do {
            try FileManager.default.createDirectory(at: checkpointsURL, withIntermediateDirectories: true)
        } catch {
            throw RunError("cannot create run directory \(url.path): \(error.localizedDescription)")
        }
        try write(manifest: manifest)
    }

    /// Writes `manifest` as run.json and as config.yaml, replacing both: a resumed run
    /// records its new total of iterations, and a hand-edited run.json its YAML twin.
    public func write(manifest: RunManifest) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(manifest), to: manifestURL)
        try writeAtomically(Data(try RunConfigFile.yaml(manifest).utf8), to: configURL)
    }

    /// Reads run.json, naming the file in every error.
    public func manifest() throws -> RunManifest {
        guard let data = FileManager.default.contents(atPath: manifestURL.path) else {
            throw RunError("\(url.path) is not a run directory: \(manifestURL.lastPathComponent) is missing")
        }
        do { return try JSONDecoder().decode(RunManifest.self, from: data) } catch {
            throw RunError("\(manifestURL.path) is not a valid manifest: \(error)")
        }
    }

    // MARK: Checkpoints

    static let magic = "metarl-checkpoint-v1"

    /// Writes `state` as checkpoint `iteration` (temporary file, fsync, rename) and keeps
    /// the newest `keep`.
    public func saveCheckpoint<S: Encodable>(_ state: S, iteration: Int, keep: Int) throws {
        // Sorted keys: the same state is the same bytes in every process.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = try encoder.encode(state)
        let header = "\(Self.magic) \(body.count) \(CRC32.checksum(body))\n"
        try writeAtomically(Data(header.utf8) + body, to: checkpointsURL.appendingPathComponent(String(format: "%08d.ckpt", iteration)))
        let all = checkpointIterations()
        for old in all.dropLast(max(keep, 1)) {
            try? FileManager.default.removeItem(at: checkpointsURL.appendingPathComponent(String(format: "%08d.ckpt", old)))
        }
    }

    /// Iterations with a checkpoint file, oldest first.
    public func checkpointIterations() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsURL.path)) ?? []
        return names.compactMap { $0.hasSuffix(".ckpt") ? Int($0.dropLast(5)) : nil }.sorted()
    }

    /// Reads one checkpoint, checking its length and checksum.
    public func loadCheckpoint<S: Decodable>(_ type: S.Type, iteration: Int) throws -> S {
        let file = checkpointsURL.appendingPathComponent(String(format: "%08d.ckpt", iteration))
        guard let data = FileManager.default.contents(atPath: file.path) else { throw RunError("\(file.path): cannot be read") }
        guard let newline = data.firstIndex(of: 10) else { throw RunError("\(file.path): no header (truncated or not a checkpoint)") }
        let header = String(decoding: data[data.startIndex..<newline], as: UTF8.self).split(separator: " ")
        guard header.count == 3, header[0] == Self.magic, let length = Int(header[1]), let crc = UInt32(header[2]) else {
            throw RunError("\(file.path): not a metarl checkpoint (bad header)")
        }
        let body = data[(newline + 1)...]
        guard body.count == length else { throw RunError("\(file.path): truncated (\(body.count) of \(length) bytes)") }
        guard CRC32.checksum(body) == crc else { throw RunError("\(file.path): corrupt (checksum mismatch)") }
        do { return try JSONDecoder().decode(S.self, from: Data(body)) } catch {
            throw RunError("\(file.path): state does not decode: \(error)")
        }
    }

    /// The checkpoint of `iteration`, or an error naming the iterations that have one.
    public func checkpoint<S: Decodable>(_ type: S.Type, iteration: Int) throws -> S {
        let kept = checkpointIterations()
        guard kept.contains(iteration) else {
            throw RunError("\(url.path) has no checkpoint of iteration \(iteration); "
                           + (kept.isEmpty ? "it has none" : "it has iterations \(kept.map(String.init).joined(separator: ", "))"))
        }
        return try loadCheckpoint(S.self, iteration: iteration)
    }

    /// The newest checkpoint that loads; `notes` receives a line for each one skipped.
    public func latestCheckpoint<S: Decodable>(_ type: S.Type, notes: (String) -> Void = { _ in }) throws -> (iteration: Int, state: S)? {
        for iteration in checkpointIterations().reversed() {
            do { return (iteration, try loadCheckpoint(S.self, iteration: iteration)) } catch {
                notes("skipping checkpoint: \(error); falling back to the previous one")
            }
        }
        return nil
    }
}

/// Writes `data` to a temporary file beside `url`, flushes it to disk, and renames it over `url`.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
    guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
        throw RunError("cannot write \(temporary.path)")
    }
    do {
        let handle = try FileHandle(forWritingTo: temporary)
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
        if rename(temporary.path, url.path) != 0 { throw RunError("cannot rename \(temporary.path) to \(url.path): errno \(errno)") }
    } catch let error as RunError {
        throw error
    } catch {
        throw RunError("cannot write \(url.path): \(error.localizedDescription)")
    }
}
