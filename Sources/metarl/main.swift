import ArgumentParser
import Benchmarks
import Foundation
import TensorCore

/// The `metarl` command line: parse, call the library, print.
@main
struct MetaRLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metarl",
        abstract: "Meta-reinforcement learning: RL², MAML and relatives, PEARL.",
        subcommands: [Bench.self])
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of parts of the system (build with -c release).",
        subcommands: [Engine.self])

    struct Engine: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tensor engine: MLP and GRU forward+backward, BLAS matmul, Hessian-vector product.")

        @Flag(help: "Print one JSON object instead of a table.") var json = false
        @Flag(help: "Fewer repetitions (a smoke test, not a measurement).") var quick = false

        func run() throws {
            let result = EngineBenchmark.run(quick: quick)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } else {
                print(result.table)
            }
        }
    }
}

