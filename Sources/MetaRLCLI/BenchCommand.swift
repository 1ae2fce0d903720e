import ArgumentParser
import Benchmarks
import Foundation
import GymBridge
import MetaRL
import NN
import Runs

/// `metarl bench`: the measurements of `Benchmarks`, printed.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of parts of the system (build with -c release).",
        subcommands: [Engine.self, EnvSteps.self, RL2Speed.self, MAMLSpeed.self, PEARLSpeed.self])

    struct Engine: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tensor engine: MLP and GRU forward+backward, BLAS matmul, Hessian-vector product.")
        @Flag(help: "Print one JSON object instead of a table.") var json = false
        @Flag(help: "Fewer repetitions (a smoke test, not a measurement).") var quick = false

        func run() throws {
            let result = EngineBenchmark.run(quick: quick)
            if json { try printJSON(result) } else { print(result.table) }
        }
    }

    struct EnvSteps: CatalogCommand {
        static let configuration = CommandConfiguration(
            commandName: "envs", abstract: "Environment steps per second of every registered task family, vectorised, one core.")
        @Option(help: "Copies per VectorEnv (default 256; 16 with --mujoco).") var copies: Int?
        @Flag(help: "Print one JSON object instead of a table.") var json = false
        @Flag(help: "Fewer repetitions (a smoke test, not a measurement).") var quick = false
        @Flag(help: "Only the Gymnasium-bridge rows: Benchmarks/pendulum_mass_env.py through the bridge (in lockstep and in two halves taking turns), in a plain Python loop and in AsyncVectorEnv.")
        var bridge = false
        @Option(help: "Copies stepped through the bridge (with --bridge).") var bridgeCopies = 64
        @Option(help: "Worker processes of the bridge and of AsyncVectorEnv (with --bridge).") var pythonWorkers = 2
        @Option(help: "Alternating rounds of bridge and plain loop (with --bridge).") var bridgeRounds = 21
        @Flag(help: "Only the MuJoCo rows: each locomotion family against bare mj_step in C on the same model, per core and on all cores.")
        var mujoco = false
        @Option(help: "A Python with gymnasium and mujoco (scripts/check-mujoco.sh makes one): add Gymnasium's own HalfCheetah-v5, Ant-v5, Hopper-v5 and Walker2d-v5 in a Python loop (with --mujoco).")
        var gymnasiumPython: String?

        func run(catalog: Catalog) throws {
            guard copies ?? 1 >= 1, bridgeCopies >= 1, pythonWorkers >= 1, bridgeRounds >= 1 else {
                throw fail("--copies, --bridge-copies, --python-workers and --bridge-rounds must be at least 1")
            }
            try reportingErrors {
                if mujoco {
                    let result = try MuJoCoBenchmark.run(copies: copies ?? 16, quick: quick, gymnasiumPython: gymnasiumPython)
                    if json { try printJSON(result) } else { print(result.table) }
                    return
                }
                if bridge {
                    var options = GymBridgeOptions.fromEnvironment()
                    options.workers = pythonWorkers
                    let result = try BridgeBenchmark.run(copies: bridgeCopies, options: options, quick: quick, rounds: bridgeRounds)
                    if json { try printJSON(result) } else { print(result.table) }
                    return
                }
                let result = try EnvBenchmark.run(copies: copies ?? 256, quick: quick, families: catalog.families)
                if json { try printJSON(result) } else { print(result.table) }
            }
        }
    }

    struct RL2Speed: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rl2",
            abstract: "RL² training speed at the PyTorch RL² implementation's settings (GRU-256, PPO 8 epochs, 240 000 steps per update).")
        @Option(help: "Iterations to time (the first included).") var iterations: Int = 2
        @Option(help: "Pulls per trial on bandits k = 5 (100: 2 400 trials per update).") var episodesPerTrial: Int = 100
        @Option(help: "Trials per iteration (0: 240 000 steps' worth).") var trialsPerIteration: Int = 0
        @Option(help: "Recurrent cell: gru, ln-gru or lstm (default: RL²'s default).") var cell: RecurrentCellChoice.Kind?
        @Option(help: "Threads for the PPO update (default: the cores, at most 2).")
        var threads: Int = min(2, ProcessInfo.processInfo.activeProcessorCount)
        @Option(help: "A checkout of lucaslingle/pytorch_rl2: time one of its updates before each metarl run (Benchmarks/pytorch_rl2_speed.py) and print the ratios.")
        var pytorchRL2: String?
        @OptionGroup var peer: PeerOptions
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            guard iterations >= 1, threads >= 1 else { throw fail("--iterations and --threads must be at least 1") }
            let setup = try peer.setup()
            try reportingErrors {
                let result = try RL2SpeedBenchmark.run(iterations: iterations, episodesPerTrial: episodesPerTrial,
                                                       trialsPerIteration: trialsPerIteration, cell: cell, threads: threads,
                                                       pytorchRL2: pytorchRL2, peer: setup, pairs: peer.pairs)
                if json { try printJSON(result) } else { print(result.table) }
            }
        }
    }

    struct MAMLSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "maml",
            abstract: "Seconds per MAML-TRPO meta-iteration on point-nav at the MAML paper's settings (20 tasks × 20 episodes, one inner step, 10 CG steps).")
        @Option(help: "Meta-iterations to run; the median leaves out the first.") var iterations: Int = 10
        @Option(help: "Threads for sampling and for the outer step (default: the cores).")
        var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(name: .customLong("pytorch-maml-rl"), help: "A checkout of tristandeleu/pytorch-maml-rl: time as many of its meta-iterations before each metarl run (Benchmarks/pytorch_maml_rl_run.py) and print the ratios of medians.")
        var pytorchMAMLRL: String?
        @OptionGroup var peer: PeerOptions
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            guard iterations >= 2, threads >= 1 else { throw fail("--iterations must be at least 2 and --threads at least 1") }
            let setup = try peer.setup()
            guard setup.processes == 1, !setup.compile else {
                throw fail("--peer-processes and --peer-compile do not apply to pytorch-maml-rl (no MPI; functional parameters); use --peer-workers")
            }
            try reportingErrors {
                let result = try MAMLSpeedBenchmark.run(iterations: iterations, threads: threads, pytorchMAMLRL: pytorchMAMLRL, peer: setup, pairs: peer.pairs)
                if json { try printJSON(result) } else { print(result.table) }
            }
        }
    }

    struct PEARLSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pearl",
            abstract: "PEARL gradient steps and environment steps per second at the PEARL paper's point-robot sizes (oyster's point-robot.json).")
        @Option(help: "Gradient steps to time.") var gradientSteps: Int = 200
        @Option(help: "Threads for the gradient steps: the meta-batch is cut into as many parts (--shards), computed side by side.")
        var threads: Int = 1
        @Option(help: "A checkout of katerakelly/oyster: time as many of its gradient steps before each metarl run (Benchmarks/oyster_pearl_speed.py) and print the ratios.")
        var oyster: String?
        @OptionGroup var peer: PeerOptions
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            guard gradientSteps >= 1, (1...16).contains(threads) else { throw fail("--gradient-steps must be at least 1 and --threads in 1…16") }
            let setup = try peer.setup()
            guard setup.processes == 1, setup.workers == 1, !setup.compile else {
                throw fail("--peer-processes, --peer-workers and --peer-compile do not apply to oyster (one process)")
            }
            try reportingErrors {
                let result = try PEARLSpeedBenchmark.run(gradientSteps: gradientSteps, threads: threads, oyster: oyster, peer: setup, pairs: peer.pairs)
                if json { try printJSON(result) } else { print(result.table) }
            }
        }
    }
}

/// How `metarl bench rl2|maml|pearl` runs the peer it is compared with, and how many
/// alternating pairs it times.
struct PeerOptions: ParsableArguments {
    @Option(help: "The Python that runs the peer (it decides which torch: Debian's python3-torch under /usr/bin/python3, or a virtualenv's).")
    var python: String = "/usr/bin/python3"
    @Option(help: "The peer's torch threads.") var peerThreads: Int = 1
    @Option(help: "The peer's processes under mpirun -np (pytorch_rl2 only; its mpi4py must be installed in --python).") var peerProcesses: Int = 1
    @Option(help: "The peer's sampler worker processes (pytorch-maml-rl's --num-workers).") var peerWorkers: Int = 1
    @Flag(help: "Wrap the peer's networks in torch.compile (pytorch_rl2, torch ≥ 2).") var peerCompile = false
    @Option(help: "Pairs to time, each the peer then metarl (with a peer checkout).") var pairs: Int = 1

    /// The options as a `PeerSetup`, or an error naming the option that is out of range.
    func setup() throws -> PeerSetup {
        guard peerThreads >= 1, peerProcesses >= 1, peerWorkers >= 1, pairs >= 1 else {
            throw fail("--peer-threads, --peer-processes, --peer-workers and --pairs must be at least 1")
        }
        return PeerSetup(python: python, threads: peerThreads, processes: peerProcesses, compile: peerCompile, workers: peerWorkers)
    }
}

extension RecurrentCellChoice.Kind: ExpressibleByArgument {}
