import Foundation
import NN

// TensorBoard event files, written without protobuf or TensorFlow.
//
// A file is a sequence of TFRecords:
//     uint64 length (little-endian) | uint32 masked CRC-32C of the length bytes
//     | the payload | uint32 masked CRC-32C of the payload
// and each payload is an `Event` protocol buffer (tensorflow/core/util/event.proto):
//     Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//     Summary { repeated Value value = 1; }
//     Value   { string tag = 1; float simple_value = 2; }
// The first event carries file_version "brain.Event:2"; every later one a summary of scalars.

/// Writes per-iteration scalars as a TensorBoard event file (`events.out.tfevents.*`).
public struct TensorBoardEventWriter {
    public let url: URL

    /// Creates a new event file in `directory` holding the version record.
    public init(directory: URL, wallTime: Double = Date().timeIntervalSince1970) throws {
        let host = ProcessInfo.processInfo.hostName.isEmpty ? "localhost" : ProcessInfo.processInfo.hostName
        url = directory.appendingPathComponent("events.out.tfevents.\(Int(wallTime)).\(host)")
        var record = Data()
        Self.appendRecord(Self.versionEvent(wallTime: wallTime), to: &record)
        try writeAtomically(record, to: url)
    }

    /// Appends one event with a scalar per metric (non-finite values are left out).
    public func append(step: Int, scalars: [(String, Double)], wallTime: Double = Date().timeIntervalSince1970) throws {
        var record = Data()
        Self.appendRecord(Self.scalarEvent(step: step, scalars: scalars, wallTime: wallTime), to: &record)
        guard let handle = FileHandle(forWritingAtPath: url.path) else { throw RunError("cannot write \(url.path)") }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: record)
    }

    /// The event files already in `directory`.
    public static func existingFiles(in directory: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasPrefix("events.out.tfevents.") }.sorted().map { directory.appendingPathComponent($0) }
    }

    // MARK: Encoding

    static func versionEvent(wallTime: Double) -> [UInt8] {
        var event: [UInt8] = []
        ProtobufWriter.double(1, wallTime, into: &event)
        ProtobufWriter.bytes(3, Array("brain.Event:2".utf8), into: &event)
        return event
    }

    static func scalarEvent(step: Int, scalars: [(String, Double)], wallTime: Double) -> [UInt8] {
        var summary: [UInt8] = []
        for (tag, value) in scalars where value.isFinite {
            var entry: [UInt8] = []
            ProtobufWriter.bytes(1, Array(tag.utf8), into: &entry)
            ProtobufWriter.float(2, Float(value), into: &entry)
            ProtobufWriter.bytes(1, entry, into: &summary)
        }
        var event: [UInt8] = []
        ProtobufWriter.double(1, wallTime, into: &event)
        ProtobufWriter.varint(2, UInt64(bitPattern: Int64(step)), into: &event)
        ProtobufWriter.bytes(5, summary, into: &event)
        return event
    }

    /// TFRecord framing of one payload.
    static func appendRecord(_ payload: [UInt8], to data: inout Data) {
        var length = UInt64(payload.count).littleEndian
        let lengthBytes = withUnsafeBytes(of: &length) { Array($0) }
        func appendWord(_ word: UInt32) { var w = word.littleEndian; withUnsafeBytes(of: &w) { data.append(contentsOf: $0) } }
        data.append(contentsOf: lengthBytes)
        appendWord(MaskedCRC32C.of(lengthBytes))
        data.append(contentsOf: payload)
        appendWord(MaskedCRC32C.of(payload))
    }
}

/// The few protocol-buffer wire encodings an Event needs.
enum ProtobufWriter {
    static func rawVarint(_ value: UInt64, into out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func varint(_ field: Int, _ value: UInt64, into out: inout [UInt8]) {
        rawVarint(UInt64(field << 3 | 0), into: &out)
        rawVarint(value, into: &out)
    }

    static func double(_ field: Int, _ value: Double, into out: inout [UInt8]) {
        rawVarint(UInt64(field << 3 | 1), into: &out)
        var bits = value.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
    }

    static func float(_ field: Int, _ value: Float, into out: inout [UInt8]) {
        rawVarint(UInt64(field << 3 | 5), into: &out)
        var bits = value.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
    }

    static func bytes(_ field: Int, _ value: [UInt8], into out: inout [UInt8]) {
        rawVarint(UInt64(field << 3 | 2), into: &out)
        rawVarint(UInt64(value.count), into: &out)
        out.append(contentsOf: value)
    }
}

/// TensorFlow's masked CRC-32C, which TFRecord framing stores.
public enum MaskedCRC32C {
    /// CRC-32C rotated right by 15 bits plus a constant.
    public static func of<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        let crc = CRC32.castagnoli(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
