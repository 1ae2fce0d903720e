// swift-tools-version:6.0
import PackageDescription

// One library target per layer, each depending only on the layers below it, each a
// library product another package can depend on (package name "MetaRL"):
//
//     .package(url: "https://github.com/…/MetaRL", from: "…")   // or .package(path: "…")
//     .product(name: "MetaRLCLI", package: "MetaRL")
//
// No target uses unsafe flags, so the package can be depended on by version; the generic
// hot paths that other modules specialise are `@inlinable` instead.
let package = Package(
    name: "MetaRL",
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Envs", targets: ["Envs"]),
        .library(name: "GymBridge", targets: ["GymBridge"]),
        .library(name: "Locomotion", targets: ["Locomotion"]),
        .library(name: "Baselines", targets: ["Baselines"]),
        .library(name: "RL", targets: ["RL"]),
        .library(name: "MetaRL", targets: ["MetaRL"]),
        .library(name: "Runs", targets: ["Runs"]),
        .library(name: "OpenMPI", targets: ["OpenMPI"]),
        .library(name: "Benchmarks", targets: ["Benchmarks"]),
        .library(name: "MetaRLCLI", targets: ["MetaRLCLI"]),
        .executable(name: "metarl", targets: ["metarl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // Declarations of CBLAS and of OpenBLAS's extras. Nothing is linked at build time:
        // TensorCore loads OpenBLAS with dlopen after choosing its kernels (see BLAS.swift).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        // Float element-wise loops built for several vector widths, chosen at load time.
        .target(name: "CKernels"),
        .target(name: "TensorCore", dependencies: ["CBLAS", "CKernels"]),
        .target(name: "NN", dependencies: ["TensorCore"]),
        // Env / MetaEnv, spaces, vector and trial envs, the task families and their open registry.
        .target(name: "Envs", dependencies: ["TensorCore"]),
        // Task families written in Python (Gymnasium), stepped in worker processes over shared memory.
        .target(name: "GymBridge", dependencies: ["TensorCore", "Envs"], resources: [.copy("Resources/metarl_gym_worker.py")]),
        // MuJoCo from Debian's libmujoco-dev 2.2.2 (headers in /usr/include/mujoco), and the
        // small C shim that turns its errors and warnings into return values.
        .systemLibrary(name: "CMuJoCo", path: "Sources/CMuJoCo"),
        .target(name: "MuJoCoShim", dependencies: ["CMuJoCo"]),
        // MuJoCo locomotion task families (cheetah-vel, cheetah-dir, ant-dir, ant-goal, …) on models MetaRL ships.
        .target(name: "Locomotion", dependencies: ["TensorCore", "Envs", "CMuJoCo", "MuJoCoShim"],
                resources: [.copy("Resources/half_cheetah.xml"), .copy("Resources/ant.xml"), .copy("Resources/hopper.xml"),
                            .copy("Resources/walker2d.xml"), .copy("Resources/walker2d_v5.xml")]),
        // Open MPI for runs over several processes and machines, loaded at run time: building
        // needs nothing of MPI, and without `mpirun` nothing of it is touched.
        .target(name: "CMPI", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "OpenMPI", dependencies: ["TensorCore", "CMPI"]),
        // Classic bandit and tabular-MDP strategies that meta-RL results are read against.
        .target(name: "Baselines", dependencies: ["TensorCore", "Envs"]),
        // Rollouts, GAE, PPO, TRPO, SAC, shared by the meta-RL algorithms; the algorithm protocols.
        .target(name: "RL", dependencies: ["TensorCore", "NN", "Envs"]),
        // RL², MAML and relatives, PEARL: one file per algorithm.
        .target(name: "MetaRL", dependencies: ["TensorCore", "NN", "Envs", "RL"]),
        // Run directories, configs, checkpoints, metrics, the one training and evaluation path,
        // the registry of algorithms. Names no algorithm.
        .target(name: "Runs", dependencies: ["TensorCore", "NN", "Envs", "RL", "Yams"]),
        // The measurements behind `metarl bench`.
        .target(name: "Benchmarks", dependencies: ["TensorCore", "NN", "Envs", "GymBridge", "Locomotion", "RL", "MetaRL"]),
        // The command line as a library: a user's executable is `MetaRLCLI.main(families:algorithms:)`.
        .target(
            name: "MetaRLCLI",
            dependencies: [
                "TensorCore", "NN", "Envs", "GymBridge", "Locomotion", "Baselines", "Benchmarks", "RL", "MetaRL", "Runs", "OpenMPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "metarl", dependencies: ["MetaRLCLI"]),
        // Finite-difference gradient checks shared by the test targets.
        .target(name: "GradientChecking", dependencies: ["TensorCore"], path: "Tests/GradientChecking"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "GradientChecking"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "TensorCore", "GradientChecking"]),
        .testTarget(name: "EnvsTests", dependencies: ["Envs", "TensorCore"]),
        .testTarget(name: "GymBridgeTests", dependencies: ["GymBridge", "MetaRL", "RL", "Envs", "TensorCore"]),
        .testTarget(name: "LocomotionTests", dependencies: ["Locomotion", "Envs", "TensorCore"]),
        .testTarget(name: "BaselinesTests", dependencies: ["Baselines", "Envs", "TensorCore"]),
        .testTarget(name: "RLTests", dependencies: ["RL", "NN", "Envs", "TensorCore", "GradientChecking"]),
        .testTarget(name: "MetaRLTests", dependencies: ["MetaRL", "RL", "NN", "Envs", "TensorCore", "GradientChecking"]),
        .testTarget(name: "BenchmarksTests", dependencies: ["Benchmarks"]),
        .testTarget(name: "RunsTests", dependencies: ["Runs", "MetaRLCLI", "RL", "MetaRL", "Envs", "TensorCore"]),
    ]
)
