import ArgumentParser
import Foundation
import RL
import Runs

/// `metarl eval DIR [options]`: the newest good checkpoint (or `--checkpoint N`) of any
/// registered algorithm's run on fresh tasks; the options are the algorithm's evaluation options.
struct Eval: CatalogCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a run directory on fresh tasks: the return and its adaptation curve (metarl eval DIR --help lists the options).",
        helpNames: [])

    @Argument(parsing: .captureForPassthrough, help: "A run directory made by `metarl train`, then options.")
    var arguments: [String] = []

    static let commandOptions: [(flag: String, takesValue: Bool, help: String)] = [
        ("--seed", true, "random seed for the tasks and the actions (default 12345)"),
        ("--env-arg", true, "evaluate on a variant: a family argument, key=value, replacing the run's (repeatable)"),
        ("--threads", true, "threads (results do not depend on it)"),
        ("--checkpoint", true, "evaluate the checkpoint of this iteration (default: the newest good one)"),
        ("--json", false, "print one JSON object"),
    ] + Catalog.pythonOptions

    func run(catalog baseCatalog: Catalog) throws {
        guard let path = arguments.first, !path.hasPrefix("-") else {
            print("USAGE: metarl eval DIR [options]  (`metarl eval DIR --help` lists the options of its algorithm)")
            if arguments.isEmpty || arguments.contains("--help") || arguments.contains("-h") { return }
            throw fail("give a run directory first: metarl eval DIR …")
        }
        try reportingErrors {
            let directory = RunDirectory(URL(fileURLWithPath: path))
            var manifest = try directory.manifest()
            let algorithm = try baseCatalog.algorithm(of: manifest, at: path)
            let rest = Array(arguments.dropFirst())
            if rest.contains("--help") || rest.contains("-h") {
                print((["USAGE: metarl eval DIR [options]", "", "OPTIONS:"]
                    + Self.commandOptions.map { "  " + $0.flag.padding(toLength: 30, withPad: " ", startingAt: 0) + $0.help }
                    + ["", "OPTIONS OF \(algorithm.name):"]
                    + Train.settingsHelp(algorithm.evaluationFlags, defaults: algorithm.defaultEvaluationOptions)).joined(separator: "\n"))
                return
            }
            let parsed = try CommandLineOptions(rest, runOptions: Self.commandOptions, settingFlags: algorithm.evaluationFlags,
                                                defaults: algorithm.defaultEvaluationOptions)
            let catalog = try baseCatalog.configuringPython(parsed)
            let seed = try parsed.value("--seed").map { text -> UInt64 in
                guard let s = UInt64(text) else { throw RunError("--seed \(text): expected a non-negative integer") }
                return s
            } ?? 12345
            let threads = try parsed.integer("--threads") ?? algorithm.defaultThreads
            guard threads >= 1 else { throw RunError("--threads \(threads): must be at least 1") }
            let checkpoint = try parsed.integer("--checkpoint")
            _ = try catalog.envSpec(of: manifest, at: path)
            try manifest.override(env: nil, arguments: parsed.values("--env-arg"), seed: nil, families: catalog.families)
            let options = try parsed.applySettings(to: .object([:]), algorithm: nil)
            let request = EvaluationRequest(algorithm: manifest.algorithm, settings: manifest.settings, directory: directory,
                                            checkpoint: checkpoint, options: options, seed: seed, threads: threads, notes: printNote)
            let output: EvaluationOutput
            do { output = try algorithm.evaluate(request, on: try manifest.envSpec(in: catalog.families)) } catch let error as DecodingError {
                throw RunError(parsed.describe(error))
            }
            if parsed.has("--json") {
                print(String(decoding: output.json, as: UTF8.self))
            } else {
                for line in output.lines { print(line) }
            }
        }
    }
}
