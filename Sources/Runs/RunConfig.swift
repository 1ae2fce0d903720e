import Envs
import Foundation
import RL
import Yams

// A run config file is a run manifest written in YAML (JSON, being YAML, works too):
//
//     algorithm: rl2
//     env: tabular-mdp
//     envArguments: {states: 10}
//     seed: 1
//     rl2:
//       episodesPerTrial: 10
//       hiddenSize: 128
//
// Absent keys keep their defaults. Every key is checked against the settings it names, so a
// misspelt key is an error rather than a silently ignored line.

/// Reads and writes run manifests as YAML, strictly: unknown keys, wrong types and
/// out-of-range values are errors naming the key.
public enum RunConfigFile {
    /// Parses `text` (the contents of `source`) into a manifest for `algorithm`: its settings
    /// section filled with defaults where absent, prepared and validated; the family (the
    /// algorithm's default when none is named) checked against `families`.
    public static func parse(_ text: String, source: String, algorithm: RegisteredAlgorithm,
                             families: TaskFamilyRegistry) throws -> RunManifest {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw RunError("\(source): not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        let topLevelKeys = Set(RunManifest.commonKeys + [algorithm.settingsKey])
        guard let node, let mapping = node.mapping else {
            throw RunError("\(source): a run config is a mapping of keys (\(topLevelKeys.sorted().joined(separator: ", ")))")
        }
        try checkKeys(mapping, allowed: topLevelKeys, path: "", source: source)
        let key = algorithm.settingsKey
        if let section = mapping[key] {
            guard let sectionMapping = section.mapping else { throw RunError("\(source): \(key): expected a mapping of settings") }
            try checkKeys(sectionMapping, against: algorithm.defaultSettings, path: "\(key).", source: source)
        }
        var manifest: RunManifest
        do {
            manifest = try YAMLDecoder().decode(RunManifest.self, from: node)
        } catch let error as DecodingError {
            throw RunError("\(source): \(describe(error, in: node))")
        }
        if manifest.algorithm.isEmpty { manifest.algorithm = algorithm.name }
        guard manifest.algorithm == algorithm.name else {
            throw RunError("\(source): algorithm: \"\(manifest.algorithm)\" is not allowed here; this command trains \(algorithm.name)")
        }
        if manifest.env.isEmpty { manifest.env = algorithm.defaultEnv }
        manifest.settingsKey = key
        do {
            manifest.settings = try algorithm.resolve(manifest.settings)
        } catch let error as ConfigError {
            throw RunError("\(source): \(key).\(error)")
        } catch let error as DecodingError {
            throw RunError("\(source): \(key).\(describe(error, in: mapping[key] ?? node))")
        }
        do { _ = try manifest.envSpec(in: families) } catch { throw RunError("\(source): \(error)") }
        return manifest
    }

    /// Reads the file at `path`.
    public static func load(path: String, algorithm: RegisteredAlgorithm, families: TaskFamilyRegistry) throws -> RunManifest {
        guard let data = FileManager.default.contents(atPath: path) else { throw RunError("\(path): cannot be read") }
        guard let text = String(data: data, encoding: .utf8) else { throw RunError("\(path): not UTF-8 text") }
        return try parse(text, source: path, algorithm: algorithm, families: families)
    }

    /// The manifest as YAML, every setting spelt out, numbers as JSON writes them (shortest
    /// exact form): what `--print-config` shows and `--config` reads back.
    public static func yaml(_ manifest: RunManifest) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // JSON is YAML: compose it to keep each scalar's text exactly as JSON wrote it.
        guard let root = try Yams.compose(yaml: String(decoding: try encoder.encode(manifest), as: UTF8.self)) else { return "" }
        var lines: [String] = []
        let order = ["algorithm", "env", "envArguments", "seed"]
        func emit(_ node: Node, indent: String) {
            guard let mapping = node.mapping else { return }
            let keys = mapping.keys.compactMap(\.string)
                .sorted { (order.firstIndex(of: $0) ?? order.count, $0) < (order.firstIndex(of: $1) ?? order.count, $1) }
            for key in keys {
                let value = mapping[key]!
                if value.mapping != nil {
                    lines.append("\(indent)\(key):")
                    emit(value, indent: indent + "  ")
                } else if let sequence = value.sequence {
                    // Lists of scalars (hidden sizes) in flow style.
                    lines.append("\(indent)\(key): [\(sequence.map { $0.scalar?.string ?? "" }.joined(separator: ", "))]")
                } else {
                    lines.append("\(indent)\(key): \(value.scalar?.string ?? "")")
                }
            }
        }
        emit(root, indent: "")
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: Checking

    static func checkKeys(_ mapping: Node.Mapping, allowed: Set<String>, path: String, source: String) throws {
        for key in mapping.keys {
            guard let name = key.string, allowed.contains(name) else {
                throw RunError("\(source): \(path)\(key.string ?? "?"): unknown key; allowed: \(allowed.sorted().joined(separator: ", "))")
            }
        }
    }

    /// Checks `mapping`'s keys against the keys of `template` (encoded defaults), nested
    /// sections against their own.
    static func checkKeys(_ mapping: Node.Mapping, against template: JSONValue, path: String, source: String) throws {
        let members = template.object ?? [:]
        try checkKeys(mapping, allowed: Set(members.keys), path: path, source: source)
        for (key, value) in mapping {
            guard let name = key.string, let nested = members[name], let nestedKeys = nested.object else { continue }
            guard let nestedMapping = value.mapping else {
                throw RunError("\(source): \(path)\(name): expected a mapping with keys \(nestedKeys.keys.sorted().joined(separator: ", "))")
            }
            try checkKeys(nestedMapping, against: nested, path: "\(path)\(name).", source: source)
        }
    }

    /// One line for a decoding failure: the key path, the value found, what was expected.
    static func describe(_ error: DecodingError, in root: Node) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        func found(_ codingPath: [any CodingKey]) -> String {
            var node: Node? = root
            for key in codingPath {
                if let i = key.intValue, let sequence = node?.sequence, i < sequence.count { node = sequence[i] } else { node = node?[key.stringValue] }
            }
            guard let node else { return "nothing" }
            if let scalar = node.scalar { return "\"\(scalar.string)\"" }
            return node.mapping != nil ? "a mapping" : "a list"
        }
        func typeName(_ type: Any.Type) -> String {
            switch type {
            case is Int.Type, is UInt64.Type: return "an integer"
            case is Double.Type, is Float.Type: return "a number"
            case is Bool.Type: return "true or false"
            case is String.Type: return "a string"
            default: return "\(type)"
            }
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)): \(found(context.codingPath)) is not allowed; expected \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): missing value; expected \(typeName(type))"
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])): required key is missing"
        case .dataCorrupted(let context):
            let where_ = path(context.codingPath)
            if context.debugDescription.contains("allowed") {
                return "\(where_): \(context.debugDescription)"
            }
            return "\(where_.isEmpty ? "config" : where_): \(found(context.codingPath)) is not allowed: \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
