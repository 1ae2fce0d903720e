/// The processes one training run is spread over (MPI ranks, or just this process), and the
/// one collective data-parallel training needs: every rank's bytes, gathered on every rank in
/// rank order.
///
/// An algorithm splits its per-item work (MAML's tasks, for example) into contiguous blocks,
/// one per rank, with ``distributedMap(_:group:threads:_:)``; every rank then holds every
/// item's result in item order and combines them exactly as a single process does. Results
/// therefore never depend on the number of processes.
public protocol ProcessGroup: Sendable {
    /// This process's index, 0 ..< `size`.
    var rank: Int { get }
    /// The number of processes.
    var size: Int { get }
    /// Every rank's `bytes`, indexed by rank (this rank's own among them).
    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]]
    /// Block r of `blocks` (one per rank) to rank r; returns the block every rank sent this
    /// one, indexed by rank. The default gathers every block everywhere and keeps its own.
    func allToAll(_ blocks: [[UInt8]]) throws -> [[UInt8]]
}

extension ProcessGroup {
    /// The items rank `rank` computes when `count` items are split into `size` contiguous blocks.
    public func share(of count: Int, rank: Int) -> Range<Int> { partRange(rank, of: count, parts: size) }

    /// The items this process computes.
    public func ownShare(of count: Int) -> Range<Int> { share(of: count, rank: rank) }

    /// Whether this process is rank 0 (which writes the run directory and prints progress).
    public var isLeader: Bool { rank == 0 }

    public func allToAll(_ blocks: [[UInt8]]) throws -> [[UInt8]] {
        var bytes: [UInt8] = []
        for block in blocks { block.append(to: &bytes) }
        return try allGather(bytes).map { message in
            var reader = ByteReader(message)
            var mine: [UInt8] = []
            for r in 0..<size {
                let block = try [UInt8](reading: &reader)
                if r == rank { mine = block }
            }
            return mine
        }
    }
}

/// Part `index` of `count` items split into `parts` contiguous blocks as equal as they can
/// be (the first blocks the smaller): how ranks share items, and how a batch is cut into
/// the fixed parts whose sums do not depend on the process count.
public func partRange(_ index: Int, of count: Int, parts: Int) -> Range<Int> {
    (index * count / parts)..<((index + 1) * count / parts)
}

/// A run in one process: the group of size 1, whose gather is the identity.
public struct SingleProcess: ProcessGroup {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] { [bytes] }
}

/// A value that crosses between processes as bytes, bit for bit.
public protocol ProcessExchangeable {
    /// Appends the value's bytes.
    func append(to bytes: inout [UInt8])
    /// Reads a value written by `append(to:)`.
    init(reading reader: inout ByteReader) throws
}

/// Reads values back from a byte buffer another process wrote.
public struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    /// A reader at the start of `bytes`.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The next `count` values of a fixed-size type.
    public mutating func read<T: BitwiseCopyable>(_: T.Type, count: Int) throws -> [T] {
        let length = count * MemoryLayout<T>.stride
        guard count >= 0, offset + length <= bytes.count else { throw ProcessGroupError.malformedMessage(bytes.count) }
        let values = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { raw in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]))
            }
            initialized = count
        }
        offset += length
        return values
    }

    /// Whether every byte has been read.
    public var isAtEnd: Bool { offset == bytes.count }
}

/// A collective failed: a rank timed out or sent what this rank cannot read.
public enum ProcessGroupError: Error, CustomStringConvertible, Equatable {
    /// A message of this many bytes did not hold what it should.
    case malformedMessage(Int)
    /// The ranks disagree about something that must be the same everywhere.
    case mismatch(String)
    /// The transport failed (the MPI error text) or timed out.
    case transport(String)

    public var description: String {
        switch self {
        case .malformedMessage(let n): "a rank sent a malformed message (\(n) bytes)"
        case .mismatch(let what): what
        case .transport(let what): what
        }
    }
}

/// A fixed-size value whose arrays cross as their raw bytes.
public protocol FixedWidthExchangeable: ProcessExchangeable, BitwiseCopyable {}

extension Double: FixedWidthExchangeable {
    public func append(to bytes: inout [UInt8]) { withUnsafeBytes(of: bitPattern.littleEndian) { bytes += $0 } }
    public init(reading reader: inout ByteReader) throws { self = try reader.read(Double.self, count: 1)[0] }
}

extension Int: FixedWidthExchangeable {
    public func append(to bytes: inout [UInt8]) { withUnsafeBytes(of: Int64(self).littleEndian) { bytes += $0 } }
    public init(reading reader: inout ByteReader) throws { self = Int(try reader.read(Int64.self, count: 1)[0]) }
}

extension Array: ProcessExchangeable where Element: FixedWidthExchangeable {
    public func append(to bytes: inout [UInt8]) {
        count.append(to: &bytes)
        withUnsafeBytes { bytes += $0 }
    }
    public init(reading reader: inout ByteReader) throws {
        let count = try Int(reading: &reader)
        self = try reader.read(Element.self, count: count)
    }
}

extension UInt8: FixedWidthExchangeable {
    public func append(to bytes: inout [UInt8]) { bytes.append(self) }
    public init(reading reader: inout ByteReader) throws { self = try reader.read(UInt8.self, count: 1)[0] }
}

extension Float: FixedWidthExchangeable {
    public func append(to bytes: inout [UInt8]) { withUnsafeBytes(of: bitPattern.littleEndian) { bytes += $0 } }
    public init(reading reader: inout ByteReader) throws { self = try reader.read(Float.self, count: 1)[0] }
}

/// Two exchangeable values as one (a gain and its gradient, say).
public struct ExchangedPair<First: ProcessExchangeable, Second: ProcessExchangeable>: ProcessExchangeable {
    public var first: First
    public var second: Second
    /// The pair (`first`, `second`).
    public init(_ first: First, _ second: Second) {
        self.first = first
        self.second = second
    }
    public func append(to bytes: inout [UInt8]) {
        first.append(to: &bytes)
        second.append(to: &bytes)
    }
    public init(reading reader: inout ByteReader) throws {
        first = try First(reading: &reader)
        second = try Second(reading: &reader)
    }
}

/// `body(0)…body(count − 1)` split over the processes of `group` (a contiguous block each, run
/// on `threads` threads there), every result then gathered on every process: the results in
/// index order, the same on every rank as `concurrentMap` gives in one process.
public func distributedMap<T: ProcessExchangeable>(_ count: Int, group: any ProcessGroup, threads: Int,
                                                   _ body: (Int) throws -> T) throws -> [T] {
    if group.size == 1 { return try concurrentMap(count, threads: threads, body) }
    let own = group.ownShare(of: count)
    let mine = try concurrentMap(own.count, threads: threads) { try body(own.lowerBound + $0) }
    var bytes: [UInt8] = []
    for value in mine { value.append(to: &bytes) }
    var results: [T] = []
    results.reserveCapacity(count)
    for (rank, part) in try group.allGather(bytes).enumerated() {
        var reader = ByteReader(part)
        for _ in group.share(of: count, rank: rank) { results.append(try T(reading: &reader)) }
        guard reader.isAtEnd else { throw ProcessGroupError.malformedMessage(part.count) }
    }
    return results
}

/// Throws ``ProcessGroupError/mismatch(_:)`` unless every rank passed the same `value`
/// (a run's settings, the binary's identity): checked before the ranks start working together.
public func requireSameOnEveryRank(_ value: [UInt8], what: String, group: any ProcessGroup) throws {
    let all = try group.allGather(value)
    if let different = all.firstIndex(where: { $0 != all[0] }) {
        throw ProcessGroupError.mismatch("rank \(different) has a different \(what) from rank 0")
    }
}

/// FNV-1a over `bytes`: the 64-bit digest ranks compare to agree on a run's settings, state
/// or executable without sending them whole.
public func fingerprint<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Int {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
    return Int(bitPattern: UInt(hash))
}

/// One part's contribution to a mean over a batch split into parts (on this process or on
/// others): the part's own means of some terms and their gradient, and its weight (how many
/// of the batch's rows it averaged over). ``distributedWeightedMean(_:group:threads:terms:parameters:_:)``
/// gives the mean over the whole batch, the same on every rank, whatever the process count.
public struct WeightedPart: ProcessExchangeable, Sendable {
    /// Rows the part's means are over (0: an empty part, left out).
    public var weight: Double = 0
    public var terms: [Double] = []
    public var gradient: [Float] = []

    /// A part's means (`terms`) and their `gradient`, over `weight` rows.
    public init(weight: Double, terms: [Double], gradient: [Float]) {
        self.weight = weight
        self.terms = terms
        self.gradient = gradient
    }

    /// An empty part.
    public init() {}

    public func append(to bytes: inout [UInt8]) {
        weight.append(to: &bytes)
        terms.append(to: &bytes)
        gradient.append(to: &bytes)
    }

    public init(reading reader: inout ByteReader) throws {
        weight = try Double(reading: &reader)
        terms = try [Double](reading: &reader)
        gradient = try [Float](reading: &reader)
    }

    /// The part's terms and gradient times its weight: a leaf of the sum tree.
    var weighted: WeightedPart {
        guard weight > 0 else { return WeightedPart() }
        let w = Float(weight)
        return WeightedPart(weight: weight, terms: terms.map { $0 * weight }, gradient: gradient.map { $0 * w })
    }

    /// The sum of two weighted sums (an empty one adds nothing).
    static func + (a: WeightedPart, b: WeightedPart) -> WeightedPart {
        guard a.weight > 0 else { return b }
        guard b.weight > 0 else { return a }
        var sum = a
        sum.weight += b.weight
        for i in sum.terms.indices { sum.terms[i] += b.terms[i] }
        for i in sum.gradient.indices { sum.gradient[i] += b.gradient[i] }
        return sum
    }
}

/// The mean over a batch cut into `count` fixed parts of what `body(p)` measures on part p
/// (its means of some terms, their gradient, and its weight), each part computed by the rank
/// of `group` that owns it. Parts are added as a fixed binary tree over the part indices
/// (weights times means at the leaves, halves added left + right, the total divided by the
/// total weight at the end), so every rank gets the same bits for any process count. A rank
/// sends only the sums of the fewest tree nodes that cover its block of parts (one vector
/// when the ranks split the parts evenly by a power of two), not every part's gradient. With
/// three ranks or more the gradient travels as a reduce-scatter and a gather: rank r adds
/// slice r of every node's gradient (the same additions, element by element) and the slices'
/// sums are then gathered, so a rank sends and receives about two gradients' worth whatever
/// the number of ranks, where gathering whole node sums would cost one per rank.
/// A rank computes its own parts on up to `threads` threads (`body` must then be safe to run
/// concurrently); the parts and the sum tree are the same, so neither the thread count nor the
/// process count changes a bit of the result. One part is returned as computed; zeros when no
/// part has weight.
public func distributedWeightedMean(_ count: Int, group: any ProcessGroup, threads: Int = 1, terms termCount: Int, parameters: Int,
                                    _ body: (Int) throws -> WeightedPart) throws -> (terms: [Double], gradient: [Float]) {
    let zero = ([Double](repeating: 0, count: termCount), [Float](repeating: 0, count: parameters))
    if count == 1, group.size == 1 {
        let part = try body(0)
        return part.weight > 0 ? (part.terms, part.gradient) : zero
    }
    let own = group.ownShare(of: count)
    let leaves = Dictionary(uniqueKeysWithValues: zip(own, try concurrentMap(own.count, threads: threads) { try body(own.lowerBound + $0).weighted }))

    // The tree over 0..<count: node (lo, hi) splits at (lo + hi) / 2.
    func nodes(covering block: Range<Int>, _ lo: Int = 0, _ hi: Int = count) -> [Range<Int>] {
        if block.isEmpty || hi <= block.lowerBound || lo >= block.upperBound { return [] }
        if block.lowerBound <= lo && hi <= block.upperBound { return [lo..<hi] }
        let mid = (lo + hi) / 2
        return nodes(covering: block, lo, mid) + nodes(covering: block, mid, hi)
    }
    var known: [Range<Int>: WeightedPart] = [:]
    func sum(_ lo: Int, _ hi: Int) -> WeightedPart {
        if let node = known[lo..<hi] { return node }
        if hi - lo == 1 { return leaves[lo] ?? WeightedPart() }
        let mid = (lo + hi) / 2
        return sum(lo, mid) + sum(mid, hi)
    }
    /// Reads the node sums each rank sent (in its own cover's order) into `known`.
    func receive(_ messages: [[UInt8]]) throws {
        for (rank, message) in messages.enumerated() {
            var reader = ByteReader(message)
            for node in nodes(covering: group.share(of: count, rank: rank)) { known[node] = try WeightedPart(reading: &reader) }
            guard reader.isAtEnd else { throw ProcessGroupError.malformedMessage(message.count) }
        }
    }
    let mine = nodes(covering: own).map { sum($0.lowerBound, $0.upperBound) }
    var total: WeightedPart
    if group.size == 1 {
        total = sum(0, count)
    } else if group.size == 2 {
        var bytes: [UInt8] = []
        for node in mine { node.append(to: &bytes) }
        try receive(try group.allGather(bytes))
        total = sum(0, count)
    } else {
        let slices = (0..<group.size).map { partRange($0, of: parameters, parts: group.size) }
        let blocks = slices.map { slice -> [UInt8] in
            var bytes: [UInt8] = []
            for node in mine {
                WeightedPart(weight: node.weight, terms: node.terms, gradient: node.weight > 0 ? Array(node.gradient[slice]) : [])
                    .append(to: &bytes)
            }
            return bytes
        }
        try receive(try group.allToAll(blocks))
        total = sum(0, count)
        let ownSlice = total.weight > 0 ? total.gradient : [Float](repeating: 0, count: slices[group.rank].count)
        var bytes: [UInt8] = []
        ownSlice.append(to: &bytes)
        total.gradient = try group.allGather(bytes).flatMap { message in
            var reader = ByteReader(message)
            return try [Float](reading: &reader)
        }
        guard total.gradient.count == parameters else { throw ProcessGroupError.malformedMessage(total.gradient.count) }
    }
    guard total.weight > 0 else { return zero }
    let scale = 1 / total.weight
    return (total.terms.map { $0 * scale }, total.gradient.map { $0 / Float(total.weight) })
}
