import Envs
import Foundation
import MetaRL
import RL
import NN
@testable import Runs
import TensorCore
import Testing

/// Mutations of valid inputs: each must be accepted or rejected with a named error, never
/// a crash or a trap (a trap would end the test process).
@Suite struct FuzzTests {
    static let tokens = ["", "0", "-1", "1e309", "-0", ".nan", ".inf", "9999999999999999999999", "~", "[]", "{}", "true",
                         "0x10", "''", "\"", ":", "- ", "{a: [", "&a", "*a", "!!str 3", "1.5", "gru", "lstm", "ppo", "é", "\t"]

    static let validYAML = """
        algorithm: rl2
        env: tabular-mdp
        envArguments: {states: 7, actions: 3}
        seed: 5
        rl2:
          episodesPerTrial: 4
          hiddenSize: 16
          cell: gru
          learningRate: 0.001
          trpo:
            maxKL: 0.02
        """

    static func mutate(_ text: String, using rng: inout Xoshiro256) -> String {
        var chars = Array(text)
        for _ in 0..<(1 + rng.uniformInt(below: 3)) {
            guard !chars.isEmpty else { break }
            let i = rng.uniformInt(below: chars.count)
            switch rng.uniformInt(below: 5) {
            case 0:
                let alphabet = Array(":{}[],-#&*!|>'\"%@ \n0123456789.eaz")
                chars[i] = alphabet[rng.uniformInt(below: alphabet.count)]
            case 1: chars.removeSubrange(i..<min(chars.count, i + 1 + rng.uniformInt(below: 12)))
            case 2: chars.insert(contentsOf: Array(tokens[rng.uniformInt(below: tokens.count)]), at: i)
            case 3:
                // Replace the value after a colon with a token.
                if let colon = chars[i...].firstIndex(of: ":"), let end = chars[colon...].firstIndex(where: { $0 == "\n" || $0 == "," || $0 == "}" }) {
                    chars.replaceSubrange((colon + 1)..<end, with: Array(" " + tokens[rng.uniformInt(below: tokens.count)]))
                }
            default:
                // Duplicate a line.
                let lines = String(chars).split(separator: "\n", omittingEmptySubsequences: false)
                let k = rng.uniformInt(below: lines.count)
                chars = Array((lines[...k] + [lines[k]] + lines[(k + 1)...]).joined(separator: "\n"))
            }
        }
        return String(chars)
    }

    @Test func mutatedConfigsGiveNamedErrors() throws {
        var rng = Xoshiro256(seed: 11)
        var accepted = 0, rejected = 0
        for _ in 0..<3000 {
            let text = Self.mutate(Self.validYAML, using: &rng)
            do {
                let manifest = try parseConfig(text, source: "fuzz.yaml", algorithm: "rl2")
                try manifest.rl2!.validate()
                accepted += 1
            } catch let error as RunError {
                #expect(error.description.hasPrefix("fuzz.yaml: ") && error.description.count > 12, "\(error)")
                rejected += 1
            } catch {
                Issue.record("not a named error: \(error) for\n\(text)")
            }
        }
        // Both outcomes occur, so the mutations reach past the parser.
        print("fuzz configs: \(accepted) accepted, \(rejected) named errors, no traps")
        #expect(accepted > 30 && rejected > 1000, "accepted \(accepted), rejected \(rejected)")
    }

    @Test func corruptedCheckpointsGiveNamedErrors() throws {
        let directory = RunDirectory(temporaryDirectory("fuzz-ckpt"))
        defer { try? FileManager.default.removeItem(at: directory.url) }
        let config = tinyRL2Config(iterations: 1)
        let prototype = BernoulliBandit(arms: 2)
        var rl2 = try RL2(config: config, prototype: prototype, seed: 2)
        _ = try rl2.iterate()
        try directory.create(manifest: try manifest("rl2", env: try spec("bandit", ["arms=2"]), seed: 2, config))
        try directory.saveCheckpoint(rl2.state, iteration: 1, keep: 1)
        let file = directory.checkpointsURL.appendingPathComponent("00000001.ckpt")
        let original = [UInt8](try Data(contentsOf: file))
        let newline = original.firstIndex(of: 10)!
        let body = Array(original[(newline + 1)...])
        var rng = Xoshiro256(seed: 12)
        var outcomes = [String: Int]()
        for round in 0..<2000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                // Raw damage: flips, truncation, garbage appended, header edits.
                bytes = original
                switch rng.uniformInt(below: 4) {
                case 0: bytes[rng.uniformInt(below: bytes.count)] ^= UInt8(1 << rng.uniformInt(below: 8))
                case 1: bytes.removeLast(1 + rng.uniformInt(below: bytes.count - 1))
                case 2: bytes += (0..<(1 + rng.uniformInt(below: 20))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                default: bytes[rng.uniformInt(below: newline)] = Array("0123456789 x".utf8)[rng.uniformInt(below: 12)]
                }
            } else {
                // Damage inside the JSON with a correct header, so it reaches the decoder and the checks.
                var b = body
                for _ in 0..<(1 + rng.uniformInt(below: 3)) {
                    let i = rng.uniformInt(below: b.count)
                    switch rng.uniformInt(below: 3) {
                    case 0: b[i] = Array("0123456789-.,:[]{}\"e".utf8)[rng.uniformInt(below: 20)]
                    case 1: b.removeSubrange(i..<min(b.count, i + 1 + rng.uniformInt(below: 30)))
                    default: b.insert(contentsOf: Array(Self.tokens[rng.uniformInt(below: Self.tokens.count)].utf8), at: i)
                    }
                }
                bytes = Array("metarl-checkpoint-v1 \(b.count) \(CRC32.checksum(b))\n".utf8) + b
            }
            try Data(bytes).write(to: file)
            do {
                let state = try directory.loadCheckpoint(RL2State.self, iteration: 1)
                let resumed = try RL2(config: config, prototype: prototype, state: state)
                // A state that passes every check must also run.
                _ = try sampleTrials(model: resumed.state.model, prototype: prototype, trials: 2, episodesPerTrial: 2, seed: 1)
                outcomes["loaded", default: 0] += 1
            } catch let error as RunError {
                #expect(error.description.contains(file.path), "\(error)")
                outcomes["run error", default: 0] += 1
            } catch let error as RL2Error {
                #expect(error.description.hasPrefix("saved state does not fit"), "\(error)")
                outcomes["incompatible", default: 0] += 1
            } catch {
                Issue.record("not a named error: \(error)")
            }
        }
        print("fuzz checkpoints: \(outcomes.sorted { $0.key < $1.key }), no traps")
        #expect((outcomes["run error"] ?? 0) > 1000, "\(outcomes)")
    }

    /// The same damage to a PEARL checkpoint, whose state holds every task's replay and
    /// context buffers: a state that loads and passes the checks must also train.
    @Test func corruptedPEARLCheckpointsGiveNamedErrors() throws {
        let directory = RunDirectory(temporaryDirectory("fuzz-pearl"))
        defer { try? FileManager.default.removeItem(at: directory.url) }
        var config = PEARLConfig()
        config.hiddenSizes = [4]
        config.encoderHiddenSizes = [4]
        config.trainTasks = 2
        config.metaBatchSize = 2
        config.batchSize = 4
        config.contextBatchSize = 4
        config.initialStepsPerTask = 4
        config.tasksPerIteration = 1
        config.priorSteps = 4
        config.extraPosteriorSteps = 4
        config.gradientStepsPerIteration = 1
        config.evalTasks = 2
        config.evalTrajectories = 1
        let prototype = PendulumMass(horizon: 4)
        var pearl = try PEARL(config: config, prototype: prototype, seed: 2)
        _ = try pearl.iterate()
        try directory.create(manifest: try manifest("pearl", env: try spec("pendulum-mass", ["horizon=4"]), seed: 2, config))
        try directory.saveCheckpoint(pearl.state, iteration: 1, keep: 1)
        let file = directory.checkpointsURL.appendingPathComponent("00000001.ckpt")
        let original = [UInt8](try Data(contentsOf: file))
        let body = Array(original[(original.firstIndex(of: 10)! + 1)...])
        var rng = Xoshiro256(seed: 14)
        var outcomes = [String: Int]()
        for _ in 0..<600 {
            var b = body
            for _ in 0..<(1 + rng.uniformInt(below: 3)) {
                let i = rng.uniformInt(below: b.count)
                switch rng.uniformInt(below: 3) {
                case 0: b[i] = Array("0123456789-.,:[]{}\"e".utf8)[rng.uniformInt(below: 20)]
                case 1: b.removeSubrange(i..<min(b.count, i + 1 + rng.uniformInt(below: 30)))
                default: b.insert(contentsOf: Array(Self.tokens[rng.uniformInt(below: Self.tokens.count)].utf8), at: i)
                }
            }
            try Data(Array("metarl-checkpoint-v1 \(b.count) \(CRC32.checksum(b))\n".utf8) + b).write(to: file)
            do {
                let state = try directory.loadCheckpoint(PEARLState.self, iteration: 1)
                var resumed = try PEARL(config: config, prototype: prototype, state: state)
                _ = try resumed.iterate()
                outcomes["loaded and trained", default: 0] += 1
            } catch let error as RunError {
                #expect(error.description.contains(file.path), "\(error)")
                outcomes["run error", default: 0] += 1
            } catch let error as ConfigError {
                #expect(error.field == "checkpoint", "\(error)")
                outcomes["incompatible", default: 0] += 1
            } catch let error as NonFiniteError {
                // A damaged number can be a NaN: training stops with its named error.
                #expect(error.description.contains("NaN"), "\(error)")
                outcomes["non-finite", default: 0] += 1
            } catch {
                Issue.record("not a named error: \(error)")
            }
        }
        print("fuzz PEARL checkpoints: \(outcomes.sorted { $0.key < $1.key }), no traps")
        #expect((outcomes["run error"] ?? 0) > 300, "\(outcomes)")
    }

    static let flags = ["--env", "--env-arg", "--episodes-per-trial", "--algo", "--cell", "--hidden", "--trials-per-iteration",
                        "--iterations", "--learning-rate", "--epochs", "--minibatch-trials", "--max-seq-len", "--entropy",
                        "--gamma", "--lambda", "--clip", "--seed", "--config", "--anneal-lr", "--standardize-advantages",
                        "--checkpoint-every", "--keep-checkpoints", "--bogus", "-x"]
    static let values = ["bandit", "harlow", "tabular-mdp", "maze", "arms=3", "arms=1", "arms", "=", "states=1e9", "gru", "lstm",
                         "rnn", "ppo", "trpo", "3", "0", "-5", "1e-3", "2.5", "nan", "inf", "-inf", "1e999", "99999999999999999999",
                         "", "/nonexistent/run.yaml", "/dev/null", "é"]

    /// `metarl train rl2 … --print-config` on mutated argument lists: each exits with 0 or
    /// 2 (our one-line error; `train` parses its options from the algorithm's settings table,
    /// so there is no usage error of the argument parser's, 64, to expect), never on a signal.
    @Test func mutatedCommandLinesGiveNamedErrors() throws {
        let base = ["--env", "tabular-mdp", "--env-arg", "states=7", "--hidden", "16", "--episodes-per-trial", "3",
                    "--learning-rate", "1e-3", "--cell", "gru"]
        var rng = Xoshiro256(seed: 13)
        var statuses = [Int32: Int]()
        let executable = try metarlExecutable()
        for _ in 0..<1000 {
            var args = base
            switch rng.uniformInt(below: 10) {
            case 0..<5:
                // A flag's value replaced.
                args[2 * rng.uniformInt(below: args.count / 2) + 1] = Self.values[rng.uniformInt(below: Self.values.count)]
            case 5, 6:
                args += [Self.flags[rng.uniformInt(below: Self.flags.count)], Self.values[rng.uniformInt(below: Self.values.count)]]
            case 7, 8:
                let pair = 2 * rng.uniformInt(below: args.count / 2)
                args.removeSubrange(pair..<(pair + 2))
            default:
                args.insert(Self.values[rng.uniformInt(below: Self.values.count)], at: rng.uniformInt(below: args.count + 1))
            }
            let process = Process()
            process.executableURL = executable
            process.arguments = ["train", "rl2"] + args + ["--print-config"]
            let errors = Pipe()
            process.standardOutput = FileHandle.nullDevice
            process.standardError = errors
            try process.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationReason == .exit, "signal for \(args)")
            let status = process.terminationStatus
            statuses[status, default: 0] += 1
            #expect([0, 2, 64].contains(status), "status \(status) for \(args)")
            if status != 0 {
                #expect(message.lowercased().hasPrefix("error:"), "\(args): \(message)")
            }
        }
        print("fuzz command lines: exit statuses \(statuses.sorted { $0.key < $1.key }), no signals")
        #expect((statuses[2] ?? 0) > 50 && (statuses[0] ?? 0) > 50, "\(statuses)")
    }
}
