import Foundation
import RL

/// A JSON value held as data: how a run manifest keeps an algorithm's settings section
/// before the algorithm's own type reads it, and how defaults and given keys are merged.
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        if var list = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !list.isAtEnd { items.append(try list.decode(JSONValue.self)) }
            self = .array(items)
            return
        }
        if let keyed = try? decoder.container(keyedBy: AnyKey.self) {
            var object: [String: JSONValue] = [:]
            for key in keyed.allKeys { object[key.stringValue] = try keyed.decode(JSONValue.self, forKey: key) }
            self = .object(object)
            return
        }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null } else if let b = try? c.decode(Bool.self) { self = .bool(b) } else if let i = try? c.decode(Int.self) {
            self = .integer(i)
        } else if let d = try? c.decode(Double.self) { self = .number(d) } else { self = .string(try c.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .integer(let i):
            var c = encoder.singleValueContainer()
            try c.encode(i)
        case .number(let d):
            var c = encoder.singleValueContainer()
            try c.encode(d)
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for item in items { try c.encode(item) }
        case .object(let object):
            var c = encoder.container(keyedBy: AnyKey.self)
            for (key, value) in object { try c.encode(value, forKey: AnyKey(key)) }
        }
    }

    /// The members of an object (nil for anything else).
    public var object: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// `self` with `other` laid over it: objects merge key by key (recursively), anything
    /// else in `other` replaces what was there.
    public func overlaid(with other: JSONValue) -> JSONValue {
        guard case .object(var mine) = self, case .object(let theirs) = other else { return other }
        for (key, value) in theirs { mine[key] = mine[key].map { $0.overlaid(with: value) } ?? value }
        return .object(mine)
    }

    /// The value at a dotted key path, if there is one.
    public func value(at path: String) -> JSONValue? {
        var node: JSONValue? = self
        for part in path.split(separator: ".") { node = node?.object?[String(part)] }
        return node
    }

    /// `self` with the value at a dotted key path set (creating objects on the way).
    public func setting(_ value: JSONValue, at path: String) -> JSONValue {
        let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
        var object = self.object ?? [:]
        object[parts[0]] = parts.count == 1 ? value : (object[parts[0]] ?? .object([:])).setting(value, at: parts[1])
        return .object(object)
    }

    /// Every dotted key path to a value that is not an object, sorted.
    public var leafPaths: [String] {
        guard let object else { return [] }
        return object.keys.sorted().flatMap { key -> [String] in
            let below = object[key]!.leafPaths
            return object[key]!.object == nil ? [key] : below.map { key + "." + $0 }
        }
    }
}

/// A coding key made from any string (manifests' dynamic sections, JSON objects).
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// How every `SettingsTable` is read and written: the one place where "an absent key keeps
/// its default" is implemented, by laying the keys given over the encoded defaults.
public enum SettingsCoding {
    /// `value` as a JSON value (sorted keys, numbers as `JSONEncoder` writes them).
    public static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    }

    /// Reads `T` from `given` (an object naming any of its keys, or nil for all defaults).
    /// A value of the wrong type is a `DecodingError` whose coding path names its key.
    public static func decode<T: SettingsTable>(_ type: T.Type, from given: JSONValue?) throws -> T {
        let defaults = try encode(T())
        let merged = defaults.overlaid(with: given ?? .object([:]))
        do {
            return try JSONDecoder().decode(T.self, from: JSONEncoder().encode(merged))
        } catch EncodingError.invalidValue(_, let context) {
            throw DecodingError.dataCorrupted(.init(codingPath: context.codingPath, debugDescription: "expected a finite number"))
        } catch let error as DecodingError {
            // Some failures (a fraction for an integer) come back without their key: find
            // the key that fails on its own.
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty, let given {
                for path in given.leafPaths {
                    guard let value = given.value(at: path) else { continue }
                    let single = defaults.setting(value, at: path)
                    if (try? JSONDecoder().decode(T.self, from: JSONEncoder().encode(single))) == nil {
                        let expected: String = switch defaults.value(at: path) {
                        case .integer: takesFraction(T.self, at: path, defaults: defaults) ? "expected a number" : "expected an integer"
                        case .number: "expected a number"
                        case .bool: "expected true or false"
                        default: "not allowed here"
                        }
                        throw DecodingError.dataCorrupted(.init(codingPath: path.split(separator: ".").map { AnyKey(String($0)) },
                                                                debugDescription: expected))
                    }
                }
            }
            throw error
        }
    }

    /// The flags of `T`, one per settable key: the table's entries first (their names and
    /// help), then every other key path of the defaults under its derived name. A flag
    /// without a declared kind gets `.number` when its whole-number default belongs to a
    /// setting that takes fractions, so a bad value is refused as "expected a number".
    public static func flags<T: SettingsTable>(of type: T.Type) throws -> [SettingFlag] {
        let named = T.flags
        let defaults = try encode(T())
        let others = defaults.leafPaths.filter { path in !named.contains { $0.key == path } }.map { SettingFlag($0, help: "") }
        return (named + others).map { flag in
            var flag = flag
            if flag.kind == nil, case .integer = defaults.value(at: flag.key), takesFraction(T.self, at: flag.key, defaults: defaults) {
                flag.kind = .number
            }
            return flag
        }
    }

    /// Whether the setting of `T` at `path` reads a fraction: a whole-number default encodes
    /// as a JSON integer whether the field is an `Int` or a `Double`, and only the type knows.
    static func takesFraction<T: SettingsTable>(_ type: T.Type, at path: String, defaults: JSONValue) -> Bool {
        let probe = defaults.setting(.number(0.5), at: path)
        guard let data = try? JSONEncoder().encode(probe) else { return false }
        return (try? JSONDecoder().decode(T.self, from: data)) != nil
    }

    /// The kind of value the setting at `flag.key` takes, from its default (or the flag's declared kind).
    public static func kind(of flag: SettingFlag, defaults: JSONValue) -> SettingFlag.Kind {
        if let kind = flag.kind { return kind }
        switch defaults.value(at: flag.key) {
        case .integer: return .integer
        case .number: return .number
        case .bool: return .boolean
        case .array: return .integers
        default: return .text
        }
    }

    /// Parses a flag's text into the JSON value for its setting, naming the flag on failure.
    public static func parse(_ text: String, for flag: SettingFlag, kind: SettingFlag.Kind) throws -> JSONValue {
        switch kind {
        case .integer, .number:
            // The settings type decides whether a fraction is allowed (an integral Double
            // default looks like an integer here).
            if let i = Int(text) { return .integer(i) }
            guard let d = Double(text), d.isFinite else {
                throw RunError("\(flag.name) \(text): expected \(kind == .integer ? "an integer" : "a number")")
            }
            return .number(d)
        case .boolean:
            switch text {
            case "true", "1", "yes": return .bool(true)
            case "false", "0", "no": return .bool(false)
            default: throw RunError("\(flag.name)=\(text): expected true or false")
            }
        case .integers:
            let sizes = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ $0 != nil }) else {
                throw RunError("\(flag.name) \(text): expected comma-separated integers such as 64,64")
            }
            return .array(sizes.map { .integer($0!) })
        case .text:
            return .string(text)
        }
    }

    /// A `ConfigError` from `validate()` as one line naming the flag that sets the field.
    public static func describe<T: SettingsTable>(_ error: ConfigError, in type: T.Type) -> String {
        let flag = (try? flags(of: T.self))?.first { $0.key == error.field }?.name
        return "\(flag.map { "\($0) (\(error.field))" } ?? error.field): \(error.value) is not allowed; allowed: \(error.allowed)"
    }
}
