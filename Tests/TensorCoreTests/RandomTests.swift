import Foundation
import Testing
import GradientChecking
@testable import TensorCore

@Suite struct RandomTests {
    @Test func seedReproducesTheStream() throws {
        var a = Xoshiro256(seed: 42), b = Xoshiro256(seed: 42), c = Xoshiro256(seed: 43)
        let sa = (0..<100).map { _ in a.next() }
        #expect(sa == (0..<100).map { _ in b.next() })
        #expect(sa != (0..<100).map { _ in c.next() })
        // The state survives a checkpoint.
        let saved = try JSONEncoder().encode(a)
        var restored = try JSONDecoder().decode(Xoshiro256.self, from: saved)
        #expect((0..<10).map { _ in restored.next() } == (0..<10).map { _ in a.next() })
    }

    @Test func distributionsHaveTheirMoments() {
        var rng = Xoshiro256(seed: 1)
        let n = 200_000
        var sum = 0.0, sumSquares = 0.0, uniformSum = 0.0, gammaSum = 0.0, betaSum = 0.0
        for _ in 0..<n {
            let z = rng.normal()
            sum += z
            sumSquares += z * z
            uniformSum += Double(rng.uniformFloat())
        }
        for _ in 0..<20_000 {
            gammaSum += rng.gamma(shape: 0.5)
            betaSum += rng.beta(2, 3)
        }
        // Tolerances are five standard errors of each estimate.
        #expect(abs(sum / Double(n)) < 5 / sqrt(Double(n)))
        #expect(abs(sumSquares / Double(n) - 1) < 5 * sqrt(2.0 / Double(n)))
        #expect(abs(uniformSum / Double(n) - 0.5) < 5 * sqrt(1 / 12.0 / Double(n)))
        #expect(abs(gammaSum / 20_000 - 0.5) < 5 * sqrt(0.5 / 20_000))
        #expect(abs(betaSum / 20_000 - 0.4) < 5 * sqrt(0.04 / 20_000))
        var counts = [0, 0, 0]
        for _ in 0..<60_000 { counts[rng.categorical(weights: [1, 0, 3])] += 1 }
        #expect(counts[1] == 0)
        #expect(abs(Double(counts[2]) / 60_000 - 0.75) < 5 * sqrt(0.75 * 0.25 / 60_000))
    }

    @Test func zigguratNormalMatchesTheNormalDistribution() {
        // Moments and tail masses of 2 000 000 draws: mean 0, variance 1, kurtosis 3,
        // P(|x| > 1) = 0.31731, P(|x| > 3) = 0.0026998, P(x > 3.4426) (the base strip's
        // tail, drawn by a separate path) = 0.00028807; each within 5 standard errors.
        var rng = Xoshiro256(seed: 5)
        let n = 2_000_000
        var m1 = 0.0, m2 = 0.0, m4 = 0.0, over1 = 0, over3 = 0, tail = 0
        for _ in 0..<n {
            let x = Double(rng.normalFloat())
            m1 += x; m2 += x * x; m4 += x * x * x * x
            if abs(x) > 1 { over1 += 1 }
            if abs(x) > 3 { over3 += 1 }
            if x > 3.442619855899 { tail += 1 }
        }
        let N = Double(n)
        #expect(abs(m1 / N) < 5 / N.squareRoot())
        #expect(abs(m2 / N - 1) < 5 * (2 / N).squareRoot())
        #expect(abs(m4 / N - 3) < 5 * (96 / N).squareRoot())
        for (count, p) in [(over1, 0.31731), (over3, 0.0026998), (tail, 0.00028807)] {
            #expect(abs(Double(count) / N - p) < 5 * (p * (1 - p) / N).squareRoot(), "tail mass \(p)")
        }
    }

    @Test func splitStreamsDiffer() {
        var parent = Xoshiro256(seed: 5)
        var a = parent.split(), b = parent.split()
        #expect(a.next() != b.next())
    }
}

@Suite struct BLASTests {
    @Test func coreTypeFollowsInstructionSets() {
        let avx512: Set<Substring> = ["avx2", "fma", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"]
        #expect(BLASLibrary.coreType(forCPUFlags: avx512) == "SKYLAKEX")
        #expect(BLASLibrary.coreType(forCPUFlags: avx512.union(["avx512_bf16"])) == "COOPERLAKE")
        #expect(BLASLibrary.coreType(forCPUFlags: ["avx2", "fma", "sse4_2"]) == "HASWELL")
        #expect(BLASLibrary.coreType(forCPUFlags: ["sse4_2"]) == nil)
        // A preset is upgraded only when it is an older tier than the CPU's.
        #expect(BLASLibrary.tier(of: "Haswell") < BLASLibrary.tier(of: "COOPERLAKE"))
        #expect(BLASLibrary.tier(of: "SkylakeX") == BLASLibrary.tier(of: "COOPERLAKE"))
        #expect(BLASLibrary.tier(of: "Prescott") < BLASLibrary.tier(of: "HASWELL"))
    }

    @Test func libraryLoadsWithOneThreadAndReportsItsCore() {
        let blas = BLASLibrary.shared
        #expect(!blas.coreName.isEmpty && blas.coreName != "unknown")
        #expect(blas.threadCount >= 1)
        // On a CPU with AVX-512 the generic kernels must not have been chosen.
        if let flags = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8), flags.contains("avx512f") {
            #expect(!["Prescott", "Core2", "Nehalem", "Sandybridge"].contains(blas.coreName), "OpenBLAS chose \(blas.coreName)")
        }
    }
}
