import Foundation
import Testing
@testable import TensorCore

/// A stand-in for one rank of an MPI job, run in this process, replaying the collectives
/// recorded so far: its k-th gather is answered with every rank's k-th message from
/// `rounds`, and a gather past those stops the run, handing out what the rank would send.
private final class RecordedRank: ProcessGroup, @unchecked Sendable {
    struct Unanswered: Error { var sent: [UInt8] }
    let rank: Int
    let size: Int
    let rounds: [[[UInt8]]]
    private var calls = 0

    init(rank: Int, size: Int, rounds: [[[UInt8]]] = []) {
        self.rank = rank
        self.size = size
        self.rounds = rounds
    }

    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        defer { calls += 1 }
        guard calls < rounds.count else { throw Unanswered(sent: bytes) }
        #expect(rounds[calls][rank] == bytes)
        return rounds[calls]
    }

    /// Runs `body` on every rank of a job of `size`, collective by collective, and returns
    /// each rank's result and the number of gathers it took.
    static func job<T>(size: Int, _ body: (RecordedRank) throws -> T) throws -> (results: [T], gathers: Int) {
        var rounds: [[[UInt8]]] = []
        while true {
            var sent: [[UInt8]] = [], results: [T] = []
            for rank in 0..<size {
                do { results.append(try body(RecordedRank(rank: rank, size: size, rounds: rounds))) }
                catch let stop as Unanswered { sent.append(stop.sent) }
            }
            if results.count == size { return (results, rounds.count) }
            #expect(sent.count == size, "some ranks finished while others still gather")
            rounds.append(sent)
        }
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

    /// What each rank of `size` gets for `count` parts, and the gathers it took.
    static func meanOnEveryRank(count: Int, size: Int) throws -> (results: [(terms: [Double], gradient: [Float])], gathers: Int) {
        try RecordedRank.job(size: size) { group in
            try distributedWeightedMean(count, group: group, terms: 2, parameters: 33, part)
        }
    }

    @Test func everyProcessCountGivesTheSameBits() throws {
        let single = try distributedWeightedMean(7, group: SingleProcess(), terms: 2, parameters: 33, Self.part)
        for size in 2...7 {
            let job = try Self.meanOnEveryRank(count: 7, size: size)
            #expect(job.gathers == (size == 2 ? 1 : 2), "size \(size)")
            for result in job.results {
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
        } catch let stop as RecordedRank.Unanswered {
            var reader = ByteReader(stop.sent)
            let node = try WeightedPart(reading: &reader)
            #expect(reader.isAtEnd && node.gradient.count == 33)
        }
    }
}
