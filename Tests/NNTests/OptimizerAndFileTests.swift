import Foundation
import Testing
import TensorCore
@testable import NN

@Suite struct OptimizerTests {
    struct Point: ParameterCollection {
        var x: Tensor
        mutating func visitParameters(_ body: (_ name: @autoclosure () -> String, _ value: inout Tensor) -> Void) { body("x", &x) }
    }

    @Test func adamFirstStepsMatchHandComputation() {
        var p = Point(x: Tensor(shape: [2], values: [1, -2]))
        var adam = Adam(learningRate: 0.1)
        let g = Point(x: Tensor(shape: [2], values: [0.5, -4]))
        adam.update(&p, along: g)
        // Step 1: m̂ = g, v̂ = g², so each coordinate moves by lr·sign(g) (up to ε).
        #expect(abs(p.x.values[0] - 0.9) < 1e-6 && abs(p.x.values[1] - (-1.9)) < 1e-6)
        let g2 = Point(x: Tensor(shape: [2], values: [1, 0]))
        adam.update(&p, along: g2)
        let m = 0.9 * 0.1 * 0.5 + 0.1 * 1, v = 0.999 * 0.001 * 0.25 + 0.001 * 1
        let expected = 0.9 - 0.1 * (m / (1 - 0.81)) / ((v / (1 - 0.999 * 0.999)).squareRoot() + 1e-8)
        #expect(abs(Double(p.x.values[0]) - expected) < 1e-5)  // float32 arithmetic
    }

    @Test func adamAndSGDMinimiseAQuadratic() {
        let target = Tensor(shape: [3], values: [1, -2, 0.5])
        var a = Point(x: Tensor.zeros([3])), s = a
        var adam = Adam(learningRate: 0.05), sgd = SGD(learningRate: 0.1, momentum: 0.5)
        for _ in 0..<500 {
            adam.update(&a, along: gradient(at: a) { ($0.x - target).squared().sum() })
            sgd.update(&s, along: gradient(at: s) { ($0.x - target).squared().sum() })
        }
        for (u, v) in zip(a.x.values, target.values) { #expect(abs(u - v) < 1e-3) }
        for (u, v) in zip(s.x.values, target.values) { #expect(abs(u - v) < 1e-5) }
    }

    @Test func adamStateRoundTripsThroughCodable() throws {
        var p = Point(x: Tensor(shape: [2], values: [1, 2]))
        var adam = Adam()
        adam.update(&p, along: Point(x: Tensor(shape: [2], values: [1, 1])))
        var restored = try JSONDecoder().decode(Adam.self, from: JSONEncoder().encode(adam))
        var q = p
        adam.update(&p, along: Point(x: Tensor(shape: [2], values: [0.3, -1])))
        restored.update(&q, along: Point(x: Tensor(shape: [2], values: [0.3, -1])))
        #expect(p.x.values == q.x.values)
    }

    @Test func globalNormClipping() {
        var g = [Point(x: Tensor(shape: [2], values: [3, 0])), Point(x: Tensor(shape: [1], values: [4]))]
        let norm = clipByGlobalNorm(&g, maxNorm: 1)
        #expect(abs(norm - 5) < 1e-6)
        #expect(abs(g.squaredNorm - 1) < 1e-6)
        #expect(g[0].x.values[0] == 0.6)
    }

    @Test func flatVectorRoundTripStaysDifferentiable() {
        var rng = Xoshiro256(seed: 1)
        let mlp = MLP(sizes: [2, 3, 1], using: &rng)
        #expect(mlp.parameterCount == 2 * 3 + 3 + 3 + 1)
        let flat = mlp.flatParameters
        #expect(mlp.withFlatParameters(flat).parameters.map(\.values) == mlp.parameters.map(\.values))
        // d/dv of Σ f(θ(v)) through the flat vector equals the structured gradient.
        let x = Tensor(shape: [1, 2], values: [0.5, -1])
        let structured = gradient(at: mlp) { $0(x).sum() }.flatParameters
        let throughFlat = gradient(at: [flat]) { v in mlp.withFlatParameters(v[0])(x).sum() }[0]
        #expect(structured.values == throughFlat.values)
        #expect(mlp.namedParameters.map(\.name) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"])
    }
}

@Suite struct ParameterFileTests {
    func model(_ seed: UInt64, sizes: [Int] = [3, 4, 2]) -> MLP {
        var rng = Xoshiro256(seed: seed)
        return MLP(sizes: sizes, using: &rng)
    }

    @Test func roundTripThroughAFile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-params-\(UInt32.random(in: 0...UInt32.max)).bin")
        defer { try? FileManager.default.removeItem(at: url) }
        let saved = model(1)
        try ParameterFile.save(saved, to: url)
        let loaded = try ParameterFile.load(url, into: model(2))
        #expect(loaded.parameters.map(\.values) == saved.parameters.map(\.values))
    }

    func expectError(_ bytes: [UInt8], into m: MLP, _ check: (ParameterFileError) -> Bool) {
        do {
            _ = try ParameterFile.decode(bytes, into: m, path: "p.bin")
            Issue.record("decoding should have thrown")
        } catch let error as ParameterFileError {
            #expect(check(error), "\(error)")
            #expect(error.description.hasPrefix("p.bin: "))
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func rejectsCorruptTruncatedAndMismatchedFiles() {
        let bytes = ParameterFile.encode(model(1))
        var flipped = bytes
        flipped[40] ^= 0x10
        expectError(flipped, into: model(1)) { if case .checksumMismatch = $0 { return true }; return false }
        expectError(Array(bytes.prefix(bytes.count - 9)), into: model(1)) {
            if case .checksumMismatch = $0 { return true }; if case .truncated = $0 { return true }; return false
        }
        expectError(Array(bytes.prefix(6)), into: model(1)) { $0 == .truncated(path: "p.bin") }
        expectError(Array("HELLO WORLD".utf8), into: model(1)) { $0 == .notAParameterFile(path: "p.bin") }
        var future = bytes
        future[4] = 9
        expectError(future, into: model(1)) { $0 == .unsupportedVersion(path: "p.bin", found: 9, supported: 1) }
        expectError(bytes, into: model(1, sizes: [3, 5, 2])) {
            $0 == .shapeMismatch(path: "p.bin", name: "layers.0.weight", file: [3, 4], model: [3, 5])
        }
        expectError(bytes, into: model(1, sizes: [3, 4, 4, 2])) { $0 == .parameterCountMismatch(path: "p.bin", file: 4, model: 6) }
        expectError(ParameterFile.encode([model(1)]), into: model(1)) {
            $0 == .nameMismatch(path: "p.bin", index: 0, file: "0.layers.0.weight", model: "layers.0.weight")
        }
    }

    @Test func loadingAMissingFileThrows() {
        #expect(throws: ParameterFileError.self) { try ParameterFile.load(URL(fileURLWithPath: "/nonexistent/p.bin"), into: model(1)) }
    }

    @Test func checksumsMatchKnownValues() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.castagnoli(Array("123456789".utf8)) == 0xE306_9283)
    }
}
