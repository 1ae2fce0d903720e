import Foundation
import RL
import Runs

/// The options after `metarl train ALGORITHM` or `metarl eval DIR`, parsed against a fixed
/// list of command options and an algorithm's settings flags (``SettingFlag``): `--flag
/// value` or `--flag=value`; a boolean setting's flag alone means true.
struct CommandLineOptions {
    /// Command options given, by flag, in order (repeatable ones keep every value).
    private var commandValues: [String: [String]] = [:]
    /// Settings given, in order: the flag and its text.
    private var settingTexts: [(flag: SettingFlag, text: String)] = []
    private let defaults: JSONValue

    init(_ tokens: [String], runOptions: [(flag: String, takesValue: Bool, help: String)], settingFlags: [SettingFlag],
         defaults: JSONValue) throws {
        self.defaults = defaults
        var byName: [String: SettingFlag] = [:]
        for f in settingFlags {
            byName[f.name] = f
            byName[SettingFlag.derivedFlag(f.key)] = byName[SettingFlag.derivedFlag(f.key)] ?? f
        }
        var i = 0
        while i < tokens.count {
            let token = tokens[i]
            guard token.hasPrefix("--") else { throw RunError("unexpected argument '\(token)'; options start with --") }
            let parts = token.split(separator: "=", maxSplits: 1).map(String.init)
            let name = parts[0], inline = parts.count == 2 ? parts[1] : nil
            func nextValue() throws -> String {
                if let inline { return inline }
                guard i + 1 < tokens.count, !tokens[i + 1].hasPrefix("--") else { throw RunError("\(name) needs a value") }
                i += 1
                return tokens[i]
            }
            if let option = runOptions.first(where: { $0.flag == name }) {
                commandValues[name, default: []].append(option.takesValue ? try nextValue() : (inline ?? "true"))
            } else if let setting = byName[name] {
                if SettingsCoding.kind(of: setting, defaults: defaults) == .boolean, inline == nil {
                    settingTexts.append((setting, "true"))
                } else {
                    settingTexts.append((setting, try nextValue()))
                }
            } else {
                let known = runOptions.map(\.flag) + settingFlags.map(\.name)
                let near = known.filter { Self.distance($0, name) <= 2 }
                throw RunError("unknown option \(name)" + (near.isEmpty ? "" : "; did you mean \(near.joined(separator: " or "))?")
                               + " (--help lists the options)")
            }
            i += 1
        }
    }

    /// The last value of a command option.
    func value(_ flag: String) -> String? { commandValues[flag]?.last }
    /// Every value of a repeatable command option.
    func values(_ flag: String) -> [String] { commandValues[flag] ?? [] }
    func has(_ flag: String) -> Bool { commandValues[flag] != nil }

    /// A command option's value as an integer.
    func integer(_ flag: String) throws -> Int? {
        try value(flag).map { text in
            guard let n = Int(text) else { throw RunError("\(flag) \(text): expected an integer") }
            return n
        }
    }

    /// The key paths of the settings given.
    var settingKeys: [String] { settingTexts.map(\.flag.key) }

    /// The flag a setting was given as (for messages).
    func flagName(of key: String) -> String { settingTexts.first { $0.flag.key == key }?.flag.name ?? key }

    /// `settings` with every setting given laid over it; with `algorithm`, read, prepared and
    /// validated by it, errors naming the flag.
    func applySettings(to settings: JSONValue, algorithm: RegisteredAlgorithm?) throws -> JSONValue {
        var result = settings
        for (flag, text) in settingTexts {
            result = result.setting(try SettingsCoding.parse(text, for: flag, kind: SettingsCoding.kind(of: flag, defaults: defaults)),
                                    at: flag.key)
        }
        guard let algorithm else { return result }
        do { return try algorithm.resolve(result) } catch let error as ConfigError {
            throw RunError(algorithm.describe(error))
        } catch let error as DecodingError {
            throw RunError(describe(error))
        }
    }

    /// A decoding failure of a setting given on the command line, naming its flag.
    func describe(_ error: DecodingError) -> String {
        let context: DecodingError.Context
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): context = c
        case .keyNotFound(_, let c): context = c
        @unknown default: return "\(error)"
        }
        let key = context.codingPath.map(\.stringValue).joined(separator: ".")
        let given = settingTexts.last { $0.flag.key == key }
        var what = context.debugDescription
        if case .typeMismatch(let type, _) = error {
            what = type == Int.self ? "expected an integer" : type == Double.self ? "expected a number" : "expected \(type)"
        }
        let prefix = what.contains("not allowed") ? "" : given.map { "\($0.text) is not allowed; " } ?? ""
        return "\(given?.flag.name ?? key) (\(key)): \(prefix)\(what)"
    }

    /// Levenshtein distance, for "did you mean".
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}
