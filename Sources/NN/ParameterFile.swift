import Foundation
import TensorCore

/// Why a parameter file could not be read into a model.
public enum ParameterFileError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case notAParameterFile(path: String)
    case unsupportedVersion(path: String, found: UInt32, supported: UInt32)
    case truncated(path: String)
    case checksumMismatch(path: String, stored: UInt32, computed: UInt32)
    case parameterCountMismatch(path: String, file: Int, model: Int)
    case nameMismatch(path: String, index: Int, file: String, model: String)
    case shapeMismatch(path: String, name: String, file: [Int], model: [Int])

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): cannot read parameter file (\(reason))"
        case let .notAParameterFile(path): return "\(path): not a MetaRL parameter file (bad magic bytes)"
        case let .unsupportedVersion(path, found, supported):
            return "\(path): parameter file version \(found) is not supported (this build reads version \(supported))"
        case let .truncated(path): return "\(path): parameter file is truncated"
        case let .checksumMismatch(path, stored, computed):
            return "\(path): parameter file is corrupt (CRC32 stored \(hex(stored)), computed \(hex(computed)))"
        case let .parameterCountMismatch(path, file, model):
            return "\(path): file holds \(file) parameters, the model has \(model)"
        case let .nameMismatch(path, index, file, model):
            return "\(path): parameter \(index) is '\(file)' in the file but '\(model)' in the model"
        case let .shapeMismatch(path, name, file, model):
            return "\(path): parameter '\(name)' has shape \(file) in the file but \(model) in the model"
        }
    }
}

private func hex(_ x: UInt32) -> String { "0x" + String(x, radix: 16) }

/// The binary parameter format, version 1 (little-endian):
///
///     "MRLP" · version u32 · count u32 ·
///     count × (name length u32 · UTF-8 name · rank u32 · rank × dim u64 · float32 data) ·
///     CRC32 (IEEE) of every preceding byte, u32
///
/// Loading checks magic, version, length, checksum, and every name and shape against
/// the model, and throws a ``ParameterFileError`` naming the first problem.
public enum ParameterFile {
    public static let version: UInt32 = 1
    static let magic: [UInt8] = Array("MRLP".utf8)

    /// The encoded bytes of `model`'s parameters.
    public static func encode<Model: ParameterCollection>(_ model: Model) -> [UInt8] {
        var out = magic
        let named = model.namedParameters
        append(&out, version)
        append(&out, UInt32(named.count))
        for (name, value) in named {
            let utf8 = Array(name.utf8)
            append(&out, UInt32(utf8.count))
            out += utf8
            append(&out, UInt32(value.rank))
            for d in value.shape { append(&out, UInt64(d)) }
            for x in value.values { append(&out, x.bitPattern) }
        }
        append(&out, CRC32.checksum(out))
        return out
    }

    /// `model` with the parameters decoded from `bytes` (`path` only names the source in errors).
    public static func decode<Model: ParameterCollection>(_ bytes: [UInt8], into model: Model, path: String = "<bytes>") throws -> Model {
        var reader = ByteReader(bytes: bytes, path: path)
        guard bytes.count >= 4, Array(bytes[0..<4]) == magic else { throw ParameterFileError.notAParameterFile(path: path) }
        reader.offset = 4
        let found = try reader.read(UInt32.self)
        guard found == version else { throw ParameterFileError.unsupportedVersion(path: path, found: found, supported: version) }
        guard bytes.count >= 16 else { throw ParameterFileError.truncated(path: path) }
        let stored = UInt32(littleEndianBytes: bytes[(bytes.count - 4)...])
        let computed = CRC32.checksum(bytes[..<(bytes.count - 4)])
        guard stored == computed else { throw ParameterFileError.checksumMismatch(path: path, stored: stored, computed: computed) }
        reader.end = bytes.count - 4
        let count = Int(try reader.read(UInt32.self))
        let expected = model.namedParameters
        guard count == expected.count else {
            throw ParameterFileError.parameterCountMismatch(path: path, file: count, model: expected.count)
        }
        var values: [Tensor] = []
        for (index, (modelName, modelValue)) in expected.enumerated() {
            let nameLength = Int(try reader.read(UInt32.self))
            let name = String(decoding: try reader.bytes(nameLength), as: UTF8.self)
            guard name == modelName else { throw ParameterFileError.nameMismatch(path: path, index: index, file: name, model: modelName) }
            let rank = Int(try reader.read(UInt32.self))
            guard rank <= 8 else { throw ParameterFileError.truncated(path: path) }
            var shape: [Int] = []
            for _ in 0..<rank {
                let d = try reader.read(UInt64.self)
                guard d <= UInt64(Int32.max) else { throw ParameterFileError.truncated(path: path) }
                shape.append(Int(d))
            }
            guard shape == modelValue.shape else {
                throw ParameterFileError.shapeMismatch(path: path, name: name, file: shape, model: modelValue.shape)
            }
            var floats = [Float](repeating: 0, count: shapeCount(shape))
            for j in floats.indices { floats[j] = Float(bitPattern: try reader.read(UInt32.self)) }
            values.append(Tensor(shape: shape, values: floats, dtype: modelValue.dtype))
        }
        guard reader.offset == reader.end else { throw ParameterFileError.truncated(path: path) }
        var loaded = model
        loaded.parameters = values
        return loaded
    }

    /// Writes `model`'s parameters to `url` atomically.
    public static func save<Model: ParameterCollection>(_ model: Model, to url: URL) throws {
        try Data(encode(model)).write(to: url, options: .atomic)
    }

    /// `model` with its parameters read from `url`.
    public static func load<Model: ParameterCollection>(_ url: URL, into model: Model) throws -> Model {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ParameterFileError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        return try decode([UInt8](data), into: model, path: url.path)
    }

    static func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ x: T) {
        withUnsafeBytes(of: x.littleEndian) { out += $0 }
    }
}

/// Sequential little-endian reads that throw `truncated` past the end.
struct ByteReader {
    let bytes: [UInt8]
    let path: String
    var offset = 0
    var end: Int

    init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
        end = bytes.count
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let n = MemoryLayout<T>.size
        guard offset + n <= end else { throw ParameterFileError.truncated(path: path) }
        var x: T = 0
        for k in 0..<n { x |= T(bytes[offset + k]) << (8 * k) }
        offset += n
        return x
    }

    mutating func bytes(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, offset + n <= end else { throw ParameterFileError.truncated(path: path) }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }
}

extension UInt32 {
    init(littleEndianBytes b: ArraySlice<UInt8>) {
        let s = b.startIndex
        self = UInt32(b[s]) | UInt32(b[s + 1]) << 8 | UInt32(b[s + 2]) << 16 | UInt32(b[s + 3]) << 24
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) and CRC-32C (Castagnoli,
/// 0x82F63B78, the one TFRecord framing uses), table-driven.
public enum CRC32 {
    static let ieeeTable = table(0xEDB8_8320)
    static let castagnoliTable = table(0x82F6_3B78)

    static func table(_ polynomial: UInt32) -> [UInt32] {
        (0..<256).map { n in
            var c = UInt32(n)
            for _ in 0..<8 { c = c & 1 != 0 ? polynomial ^ (c >> 1) : c >> 1 }
            return c
        }
    }

    static func run<C: Collection>(_ bytes: C, _ table: [UInt32]) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// CRC-32 (IEEE) of `bytes`.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 { run(bytes, ieeeTable) }

    /// CRC-32C (Castagnoli) of `bytes`.
    public static func castagnoli<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 { run(bytes, castagnoliTable) }
}
