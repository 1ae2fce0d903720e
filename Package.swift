// swift-tools-version:6.0
import PackageDescription

// One library target per layer; each depends only on the layers below it.
// See DEVELOPERS.md for the architecture.
/// Full cross-module optimisation in release builds, for the layers whose generic hot
/// loops are specialised in the modules that use them.
let crossModule: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]

let package = Package(
    name: "MetaRL",
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Envs", targets: ["Envs"]),
        .executable(name: "metarl", targets: ["metarl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // Declarations of CBLAS and of OpenBLAS's extras. Nothing is linked at build time:
        // TensorCore loads OpenBLAS with dlopen after choosing its kernels (see BLAS.swift).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        // Float element-wise loops built for several vector widths, chosen at load time.
        .target(name: "CKernels"),
        .target(name: "TensorCore", dependencies: ["CBLAS", "CKernels"], swiftSettings: crossModule),
        .target(name: "NN", dependencies: ["TensorCore"]),
        // Environments are stepped from other modules through generics (VectorEnv<E>),
        // so their code is made available for specialisation across modules.
        .target(name: "Envs", dependencies: ["TensorCore"], swiftSettings: crossModule),
        // Classic bandit and tabular-MDP strategies that meta-RL results are read against.
        .target(name: "Baselines", dependencies: ["TensorCore", "Envs"]),
        // Rollouts, GAE, PPO, TRPO, shared by the meta-RL algorithms.
        .target(name: "RL", dependencies: ["TensorCore", "NN", "Envs"]),
        // RL², MAML and relatives, PEARL: one file per algorithm.
        .target(name: "MetaRL", dependencies: ["TensorCore", "NN", "Envs", "RL"]),
        // Run directories, checkpoints, metrics, the training loop.
        .target(name: "Runs", dependencies: ["TensorCore", "NN", "Envs", "RL", "MetaRL", "Yams"]),
        .target(name: "Benchmarks", dependencies: ["TensorCore", "NN", "Envs", "RL"]),
        .executableTarget(
            name: "metarl",
            dependencies: [
                "TensorCore", "NN", "Envs", "Baselines", "Benchmarks", "RL", "MetaRL", "Runs",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Finite-difference gradient checks shared by the test targets.
        .target(name: "GradientChecking", dependencies: ["TensorCore"], path: "Tests/GradientChecking"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "GradientChecking"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "TensorCore", "GradientChecking"]),
        .testTarget(name: "EnvsTests", dependencies: ["Envs", "Baselines", "TensorCore"]),
        .testTarget(name: "RLTests", dependencies: ["RL", "MetaRL", "Runs", "NN", "Envs", "TensorCore", "GradientChecking"]),
        .testTarget(name: "RunsTests", dependencies: ["Runs", "RL", "MetaRL", "Envs", "TensorCore"]),
    ]
)
