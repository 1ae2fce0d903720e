/// A dense, row-major, n-dimensional array of floating-point numbers that can take part
/// in reverse-mode differentiation.
///
/// A tensor is a value: operations return new tensors and never change their inputs.
/// A tensor is *tracked* when it was watched by a ``Tape`` or computed from a tracked
/// tensor; operations on tracked tensors are recorded so that ``Tape/gradients(of:withRespectTo:seed:createGraph:)``
/// can differentiate them. Untracked tensors cost nothing extra.
public struct Tensor: @unchecked Sendable {
    /// The size of each dimension; `[]` for a scalar.
    public let shape: [Int]
    var storage: Storage
    /// The tape that records operations on this tensor, or nil for a constant.
    let tape: Tape?
    /// This tensor's entry on ``tape``.
    let tapeIndex: Int

    init(shape: [Int], storage: Storage, tape: Tape? = nil, tapeIndex: Int = -1) {
        self.shape = shape
        self.storage = storage
        self.tape = tape
        self.tapeIndex = tapeIndex
    }

    /// The element type.
    public var dtype: DType { storage.dtype }
    /// The number of dimensions.
    public var rank: Int { shape.count }
    /// The number of elements.
    public var count: Int { storage.count }
    /// Whether operations on this tensor are being recorded for differentiation.
    public var isTracked: Bool { tape != nil }

    /// The same values, cut off from any tape: a constant.
    public var detached: Tensor { Tensor(shape: shape, storage: storage) }

    // MARK: Creating tensors

    /// A tensor with the given shape and Float values (row-major), stored as `dtype`.
    public init(shape: [Int], values: [Float], dtype: DType = .float32) {
        precondition(
            values.count == shapeCount(shape),
            "Tensor(shape: \(shape)) needs \(shapeCount(shape)) values, got \(values.count)")
        let storage = Storage.allocate(count: values.count, dtype: dtype)
        switch dtype {
        case .float32:
            values.withUnsafeBufferPointer {
                storage.pointer(Float.self).update(from: $0.baseAddress!, count: values.count)
            }
        case .float64:
            let p = storage.pointer(Double.self)
            for i in values.indices { p[i] = Double(values[i]) }
        }
        self.init(shape: shape, storage: storage)
    }

    /// A tensor with the given shape and Double values (row-major), stored as `dtype`.
    public init(shape: [Int], doubleValues values: [Double], dtype: DType = .float64) {
        precondition(
            values.count == shapeCount(shape),
            "Tensor(shape: \(shape)) needs \(shapeCount(shape)) values, got \(values.count)")
        let storage = Storage.allocate(count: values.count, dtype: dtype)
        switch dtype {
        case .float32:
            let p = storage.pointer(Float.self)
            for i in values.indices { p[i] = Float(values[i]) }
        case .float64:
            values.withUnsafeBufferPointer {
                storage.pointer(Double.self).update(from: $0.baseAddress!, count: values.count)
            }
        }
        self.init(shape: shape, storage: storage)
    }

    /// A scalar (rank-0) tensor.
    public init(_ value: Double, dtype: DType = .float32) {
        self.init(shape: [], doubleValues: [value], dtype: dtype)
    }

    /// A tensor of one repeated value.
    public init(repeating value: Double, shape: [Int], dtype: DType = .float32) {
        let storage = Storage.allocate(count: shapeCount(shape), dtype: dtype)
        switch dtype {
        case .float32: storage.pointer(Float.self).initialize(repeating: Float(value), count: storage.count)
        case .float64: storage.pointer(Double.self).initialize(repeating: value, count: storage.count)
        }
        self.init(shape: shape, storage: storage)
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int], dtype: DType = .float32) -> Tensor {
        Tensor(shape: shape, storage: .zeros(count: shapeCount(shape), dtype: dtype))
    }

    /// A tensor of ones.
    public static func ones(_ shape: [Int], dtype: DType = .float32) -> Tensor {
        Tensor(repeating: 1, shape: shape, dtype: dtype)
    }

    /// Independent normal samples with the given mean and standard deviation.
    public static func randomNormal(
        _ shape: [Int], mean: Double = 0, standardDeviation: Double = 1,
        dtype: DType = .float32, using rng: inout Xoshiro256
    ) -> Tensor {
        let n = shapeCount(shape)
        var values = [Double](repeating: 0, count: n)
        for i in 0..<n { values[i] = mean + standardDeviation * rng.normal() }
        return Tensor(shape: shape, doubleValues: values, dtype: dtype)
    }

    /// Independent uniform samples in [low, high).
    public static func randomUniform(
        _ shape: [Int], low: Double = 0, high: Double = 1,
        dtype: DType = .float32, using rng: inout Xoshiro256
    ) -> Tensor {
        let n = shapeCount(shape)
        var values = [Double](repeating: 0, count: n)
        for i in 0..<n { values[i] = low + (high - low) * rng.uniformDouble() }
        return Tensor(shape: shape, doubleValues: values, dtype: dtype)
    }

    // MARK: Reading values

    /// The elements in row-major order, as Float.
    public var values: [Float] {
        switch dtype {
        case .float32:
            return Array(UnsafeBufferPointer(start: storage.pointer(Float.self), count: count))
        case .float64:
            let p = storage.pointer(Double.self)
            return (0..<count).map { Float(p[$0]) }
        }
    }

    /// The elements in row-major order, as Double.
    public var doubleValues: [Double] {
        switch dtype {
        case .float32:
            let p = storage.pointer(Float.self)
            return (0..<count).map { Double(p[$0]) }
        case .float64:
            return Array(UnsafeBufferPointer(start: storage.pointer(Double.self), count: count))
        }
    }

    /// The only element of a one-element tensor, as Float.
    public var scalar: Float { Float(doubleScalar) }

    /// The only element of a one-element tensor, as Double.
    public var doubleScalar: Double {
        precondition(count == 1, "scalar of a tensor with shape \(shape)")
        return self[flat: 0]
    }

    /// The element at a row-major position, as Double.
    public subscript(flat index: Int) -> Double {
        precondition(index >= 0 && index < count, "flat index \(index) out of range for shape \(shape)")
        switch dtype {
        case .float32: return Double(storage.pointer(Float.self)[index])
        case .float64: return storage.pointer(Double.self)[index]
        }
    }

    /// The same values stored as `dtype` (a constant: conversion is not differentiated).
    public func converted(to dtype: DType) -> Tensor {
        if dtype == self.dtype { return detached }
        return Tensor(shape: shape, doubleValues: doubleValues, dtype: dtype)
    }

    // MARK: In-place access

    /// Calls `body` with the Float elements; copies first if the storage is shared, so
    /// other tensors never see the change. Only for untracked float32 tensors.
    public mutating func withUnsafeMutableFloats<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        precondition(dtype == .float32, "withUnsafeMutableFloats on a \(dtype) tensor")
        precondition(tape == nil, "in-place change of a tracked tensor would corrupt its tape")
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return try body(UnsafeMutableBufferPointer(start: storage.pointer(Float.self), count: count))
    }

    /// Calls `body` with the Float elements, read-only. Only for float32 tensors.
    public func withUnsafeFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(dtype == .float32, "withUnsafeFloats on a \(dtype) tensor")
        return try withExtendedLifetime(storage) {
            try body(UnsafeBufferPointer(start: storage.pointer(Float.self), count: count))
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = doubleValues.prefix(16).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        let more = count > 16 ? ", …" : ""
        return "Tensor(shape: \(shape), \(dtype)\(isTracked ? ", tracked" : ""), [\(shown)\(more)])"
    }
}

extension Tensor: Codable {
    private enum CodingKeys: String, CodingKey { case shape, dtype, values, bytes }

    /// Reads `bytes` (base64 of the little-endian elements, exact and compact) or, from
    /// older files, `values` (a list of numbers).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let shape = try c.decode([Int].self, forKey: .shape)
        let dtype = try c.decodeIfPresent(DType.self, forKey: .dtype) ?? .float32
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard d >= 0, !overflow, product <= 1 << 32 else {
                throw DecodingError.dataCorruptedError(forKey: .shape, in: c, debugDescription: "tensor shape \(shape) is not allowed")
            }
            count = product
        }
        if let text = try c.decodeIfPresent(String.self, forKey: .bytes) {
            let width = dtype == .float32 ? 4 : 8
            guard let data = Data(base64Encoded: text), data.count == count * width else {
                throw DecodingError.dataCorruptedError(
                    forKey: .bytes, in: c, debugDescription: "tensor of shape \(shape) needs \(count * width) bytes of base64 data")
            }
            let bytes = [UInt8](data)
            func word(_ i: Int, _ n: Int) -> UInt64 {
                var w: UInt64 = 0
                for k in 0..<n { w |= UInt64(bytes[i * n + k]) << (8 * k) }
                return w
            }
            if dtype == .float32 {
                self.init(shape: shape, values: (0..<count).map { Float(bitPattern: UInt32(word($0, 4))) })
            } else {
                self.init(shape: shape, doubleValues: (0..<count).map { Double(bitPattern: word($0, 8)) }, dtype: dtype)
            }
            return
        }
        let values = try c.decode([Double].self, forKey: .values)
        guard values.count == count else {
            throw DecodingError.dataCorruptedError(
                forKey: .values, in: c, debugDescription: "tensor of shape \(shape) needs \(count) values, found \(values.count)")
        }
        self.init(shape: shape, doubleValues: values, dtype: dtype)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(shape, forKey: .shape)
        try c.encode(dtype, forKey: .dtype)
        var bytes: [UInt8] = []
        if dtype == .float32 {
            let values = self.values
            bytes.reserveCapacity(values.count * 4)
            for v in values { let b = v.bitPattern; for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * k))) } }
        } else {
            let values = doubleValues
            bytes.reserveCapacity(values.count * 8)
            for v in values { let b = v.bitPattern; for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * k))) } }
        }
        try c.encode(Data(bytes).base64EncodedString(), forKey: .bytes)
    }
}

/// The number of elements of a shape.
@inline(__always)
public func shapeCount(_ shape: [Int]) -> Int {
    var n = 1
    for d in shape { n &*= d }
    return n
}

import Foundation
