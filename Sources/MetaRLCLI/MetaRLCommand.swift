import ArgumentParser
import CKernels
import Envs
import Foundation
import GymBridge
import Locomotion
import MetaRL
import RL
import Runs

/// The `metarl` command line as a library: `metarl` itself is `MetaRLCLI.main()`, and a
/// user's own executable is the same command line with its task families and algorithms
/// added, `MetaRLCLI.main(families: [MyFamily.family], algorithms: [RegisteredAlgorithm(MyAlgorithm())])`.
public enum MetaRLCLI {
    /// Parses the process's arguments (or `arguments`), runs the command with the built-in
    /// catalog plus `families` and `algorithms`, and exits: 0 on success, 2 with one
    /// `error:` line on bad input, 64 on a usage error.
    public static func main(families: [TaskFamily] = [], algorithms: [RegisteredAlgorithm] = [], arguments: [String]? = nil) -> Never {
        // Whole lines reach a log file as they are printed, so a run stopped by a signal keeps its notes.
        metarl_line_buffer_stdout()
        let catalog: Catalog
        do { catalog = try Catalog.metarl.adding(families: families, algorithms: algorithms) } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(2)
        }
        do {
            var command = try MetaRLCommand.parseAsRoot(arguments)
            if let withCatalog = command as? any CatalogCommand {
                try withCatalog.run(catalog: catalog)
            } else {
                try command.run()
            }
            exit(0)
        } catch {
            MetaRLCommand.exit(withError: error)
        }
    }
}

extension Catalog {
    /// The algorithms MetaRL ships, registered as a user's are.
    public static let builtInAlgorithms: [RegisteredAlgorithm] = [
        RegisteredAlgorithm(RL2Algorithm()), RegisteredAlgorithm(MAMLAlgorithm(mode: .secondOrder)),
        RegisteredAlgorithm(MAMLAlgorithm(mode: .firstOrder)), RegisteredAlgorithm(MAMLAlgorithm(mode: .metaSGD)),
        RegisteredAlgorithm(ReptileAlgorithm()), RegisteredAlgorithm(SACAlgorithm()), RegisteredAlgorithm(PPOAlgorithm()),
        RegisteredAlgorithm(PEARLAlgorithm()),
    ]

    /// `metarl`'s catalog: the seven built-in task families, the MuJoCo locomotion families, the `gym:` families of the Python
    /// bridge (configured from the environment: `METARL_PYTHON`, …) and the built-in algorithms.
    public static var metarl: Catalog {
        var families = TaskFamilyRegistry.builtIn
        for family in LocomotionFamilies.all {
            do { try families.register(family) } catch { preconditionFailure("a MuJoCo family clashes with a built-in one: \(error)") }
        }
        families.register(GymFamilies.provider())
        do { return Catalog(families: families, algorithms: try AlgorithmRegistry(builtInAlgorithms)) } catch {
            preconditionFailure("the built-in algorithms have clashing names: \(error)")
        }
    }

    /// The options of commands that open task families, for the Python bridge's `gym:` families.
    static let pythonOptions: [(flag: String, takesValue: Bool, help: String)] = [
        ("--python", true, "the Python that runs gym: envs (default $METARL_PYTHON, else a private virtualenv made on first use)"),
        ("--python-workers", true, "worker processes stepping gym: envs (default 2; results do not depend on it)"),
        ("--python-timeout", true, "seconds a gym: worker may take to answer before it counts as hung (default 60)"),
    ]

    /// The catalog with the bridge's provider configured by `--python`, `--python-workers` and
    /// `--python-timeout` (over the environment's settings).
    func configuringPython(_ parsed: CommandLineOptions) throws -> Catalog {
        guard Self.pythonOptions.contains(where: { parsed.has($0.flag) }) else { return self }
        var options = GymBridgeOptions.fromEnvironment()
        if let python = parsed.value("--python") { options.python = python }
        if let workers = try parsed.integer("--python-workers") {
            guard workers >= 1 else { throw RunError("--python-workers \(workers): must be at least 1") }
            options.workers = workers
        }
        if let text = parsed.value("--python-timeout") {
            guard let t = Double(text), t > 0, t.isFinite else { throw RunError("--python-timeout \(text): expected a positive number of seconds") }
            options.timeout = t
        }
        var catalog = self
        catalog.families.register(GymFamilies.provider(options))
        return catalog
    }
}

/// A command that needs to know the registered families and algorithms. Run through
/// ``MetaRLCLI/main(families:algorithms:arguments:)`` it gets that program's catalog; run
/// alone, the built-in one.
protocol CatalogCommand: ParsableCommand {
    func run(catalog: Catalog) throws
}

extension CatalogCommand {
    func run() throws { try run(catalog: .metarl) }
}

/// The root command.
struct MetaRLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metarl",
        abstract: "Meta-reinforcement learning: RL², MAML and relatives, PEARL.",
        subcommands: [Quickstart.self, Train.self, Eval.self, Plot.self, Export.self, Bench.self, EnvsCommand.self, Baseline.self,
                      BanditTable.self, MuJoCoReplay.self])
}

/// Prints `value` as one JSON object with sorted keys.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints a one-line error and returns the exit code to throw (user input problems, never a trap).
func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
    return ExitCode(2)
}

/// Runs `body`, turning any error but an `ExitCode` into one `error:` line and exit code 2.
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let error as ExitCode { throw error } catch { throw fail("\(error)") }
}

/// Notes (a skipped checkpoint, a resume) on standard error.
func printNote(_ note: String) { FileHandle.standardError.write(Data(("note: " + note + "\n").utf8)) }
