import Foundation
import Testing
@testable import TensorCore

/// A stand-in for one rank of an MPI job, run in this process: the first pass records what
/// the rank sends and stops; the second answers its gather with every rank's recorded message.
private struct RecordedRank: ProcessGroup {
    struct FirstPass: Error { var sent: [UInt8] }
    let rank: Int
    let size: Int
    var messages: [[UInt8]]?

    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        guard let messages else { throw FirstPass(sent: bytes) }
        #expect(messages[rank] == bytes)
        return messages
    }
}

/// The tree-shaped weighted mean that data-parallel updates use.
@Suite struct DistributedMeanTests {
    /// Part p of a batch: a few rows' mean of two terms and of a 33-float gradient; part 3 empty.
    static func part(_ p: Int) -> WeightedPart {
        guard p != 3 else { return WeightedPart() }
        var rng = Xoshiro256(seed: UInt64(p) + 1)
        let gradient = (0..<33).map { _ in rng.uniformFloat() * 2 - 1 }
        return WeightedPart(weight: Double(1 + p % 4), terms: [Double(p), rng.uniformDouble()], gradient: gradient)
    }

    /// What each rank of `size` gets for `count` parts.
    static func meanOnEveryRank(count: Int, size: Int) throws -> [(terms: [Double], gradient: [Float])] {
        var messages: [[UInt8]] = []
        for rank in 0..<size {
            do {
                _ = try distributedWeightedMean(count, group: RecordedRank(rank: rank, size: size), terms: 2, parameters: 33, part)
                messages.append([])
            } catch let pass as RecordedRank.FirstPass {
                messages.append(pass.sent)
            }
        }
        return try (0..<size).map { rank in
            try distributedWeightedMean(count, group: RecordedRank(rank: rank, size: size, messages: size > 1 ? messages : nil),
                                        terms: 2, parameters: 33, part)
        }
    }

    @Test func everyProcessCountGivesTheSameBits() throws {
        let single = try distributedWeightedMean(7, group: SingleProcess(), terms: 2, parameters: 33, Self.part)
        for size in 2...7 {
            for result in try Self.meanOnEveryRank(count: 7, size: size) {
                #expect(result.terms == single.terms, "size \(size)")
                #expect(result.gradient == single.gradient, "size \(size)")
            }
        }
    }

    @Test func isTheWeightedMeanOfTheParts() throws {
        let (terms, gradient) = try distributedWeightedMean(7, group: SingleProcess(), terms: 2, parameters: 33, Self.part)
        let parts = (0..<7).map(Self.part), total = parts.reduce(0) { $0 + $1.weight }
        for t in 0..<2 {
            let expected = parts.reduce(0.0) { $0 + ($1.weight > 0 ? $1.weight * $1.terms[t] : 0) } / total
            #expect(abs(terms[t] - expected) < 1e-12)
        }
        for i in 0..<33 {
            let expected = parts.reduce(0.0) { $0 + ($1.weight > 0 ? $1.weight * Double($1.gradient[i]) : 0) } / total
            #expect(abs(Double(gradient[i]) - expected) < 1e-5)
        }
    }

    @Test func onePartIsReturnedAsComputedAndNoRowsGiveZeros() throws {
        let one = try distributedWeightedMean(1, group: SingleProcess(), terms: 2, parameters: 33) { _ in Self.part(2) }
        #expect(one.terms == Self.part(2).terms && one.gradient == Self.part(2).gradient)
        let none = try distributedWeightedMean(4, group: SingleProcess(), terms: 2, parameters: 33) { _ in WeightedPart() }
        #expect(none.terms == [0, 0] && none.gradient == [Float](repeating: 0, count: 33))
    }

    /// Two ranks over four parts send one node's sum each, not two parts' gradients.
    @Test func aRankSendsTheNodesCoveringItsParts() throws {
        do {
            _ = try distributedWeightedMean(4, group: RecordedRank(rank: 1, size: 2), terms: 2, parameters: 33, Self.part)
            Issue.record("rank 1 of 2 did not gather")
        } catch let pass as RecordedRank.FirstPass {
            var reader = ByteReader(pass.sent)
            _ = try WeightedPart(reading: &reader)
            #expect(reader.isAtEnd)
        }
    }
}
