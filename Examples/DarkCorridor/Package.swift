// swift-tools-version:6.0
// An example of MetaRL used as a library: a task family of its own (DarkCorridor) and an
// executable that is the whole `metarl` command line with that family registered.
import PackageDescription

let package = Package(
    name: "DarkCorridor",
    dependencies: [
        // From a release: .package(url: "https://github.com/…/MetaRL", from: "…")
        .package(name: "MetaRL", path: "../.."),
    ],
    targets: [
        .target(name: "DarkCorridor", dependencies: [.product(name: "Envs", package: "MetaRL")]),
        .executableTarget(name: "corridor-metarl", dependencies: [
            "DarkCorridor", .product(name: "MetaRLCLI", package: "MetaRL"),
        ]),
    ]
)
