import Foundation
import MetaRL
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
/// out-of-range values are `ConfigError`s naming the key.
public enum RunConfigFile {
    /// The top-level keys; each algorithm's section is checked against its defaults' keys.
    static let topLevelKeys: Set<String> = ["algorithm", "env", "envArguments", "seed", "rl2", "maml", "sac", "pearl"]

    /// The algorithms `metarl train` knows, each with the manifest section holding its settings.
    public static let sections = ["rl2": "rl2", "maml": "maml", "maml-fo": "maml", "meta-sgd": "maml", "reptile": "maml",
                                  "sac": "sac", "pearl": "pearl"]

    /// Parses `text` (the contents of `source`) into a manifest for `algorithm`; the
    /// algorithm's section is filled with defaults where absent and validated.
    public static func parse(_ text: String, source: String, algorithm: String) throws -> RunManifest {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw RunError("\(source): not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        guard let node, let mapping = node.mapping else {
            throw RunError("\(source): a run config is a mapping of keys (\(topLevelKeys.sorted().joined(separator: ", ")))")
        }
        try checkKeys(mapping, allowed: topLevelKeys, path: "", source: source)
        let templates = [("rl2", try template(RL2Config())), ("maml", try template(MAMLConfig())),
                         ("sac", try template(SACConfig())), ("pearl", try template(PEARLConfig()))]
        for (name, defaults) in templates {
            guard let section = mapping[name] else { continue }
            guard let sectionMapping = section.mapping else {
                throw RunError("\(source): \(name): expected a mapping of settings")
            }
            try checkKeys(sectionMapping, against: defaults, path: "\(name).", source: source)
        }
        var manifest: RunManifest
        do {
            manifest = try YAMLDecoder().decode(RunManifest.self, from: node)
        } catch let error as DecodingError {
            throw RunError("\(source): \(describe(error, in: node))")
        }
        if manifest.algorithm.isEmpty { manifest.algorithm = algorithm }
        guard manifest.algorithm == algorithm else {
            throw RunError("\(source): algorithm: \"\(manifest.algorithm)\" is not allowed here; this command trains \(algorithm)")
        }
        if manifest.algorithm == "rl2" {
            let config = manifest.rl2 ?? RL2Config()
            do { try config.validate() } catch { throw RunError("\(source): rl2.\(error)") }
            manifest.rl2 = config
        } else if sections[manifest.algorithm] == "maml" {
            var config = manifest.maml ?? MAMLConfig()
            config.mode = MAMLTraining.mode(for: manifest.algorithm)
            do { try config.validate() } catch { throw RunError("\(source): maml.\(error)") }
            manifest.maml = config
        } else if manifest.algorithm == "sac" {
            let config = manifest.sac ?? SACConfig()
            do { try config.validate() } catch { throw RunError("\(source): sac.\(error)") }
            manifest.sac = config
        } else if manifest.algorithm == "pearl" {
            let config = manifest.pearl ?? PEARLConfig()
            do { try config.validate() } catch { throw RunError("\(source): pearl.\(error)") }
            manifest.pearl = config
        }
        do { _ = try manifest.envSpec() } catch { throw RunError("\(source): \(error)") }
        return manifest
    }

    /// Reads the file at `path`.
    public static func load(path: String, algorithm: String) throws -> RunManifest {
        guard let data = FileManager.default.contents(atPath: path) else { throw RunError("\(path): cannot be read") }
        guard let text = String(data: data, encoding: .utf8) else { throw RunError("\(path): not UTF-8 text") }
        return try parse(text, source: path, algorithm: algorithm)
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

    /// The keys of a config encoded with its defaults, nested sections as sub-templates.
    static func template<T: Encodable>(_ value: T) throws -> [String: Any] {
        let data = try JSONEncoder().encode(value)
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    static func checkKeys(_ mapping: Node.Mapping, allowed: Set<String>, path: String, source: String) throws {
        for key in mapping.keys {
            guard let name = key.string, allowed.contains(name) else {
                throw RunError("\(source): \(path)\(key.string ?? "?"): unknown key; allowed: \(allowed.sorted().joined(separator: ", "))")
            }
        }
    }

    static func checkKeys(_ mapping: Node.Mapping, against template: [String: Any], path: String, source: String) throws {
        try checkKeys(mapping, allowed: Set(template.keys), path: path, source: source)
        for (key, value) in mapping {
            guard let name = key.string, let nested = template[name] as? [String: Any] else { continue }
            guard let nestedMapping = value.mapping else {
                throw RunError("\(source): \(path)\(name): expected a mapping with keys \(nested.keys.sorted().joined(separator: ", "))")
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
