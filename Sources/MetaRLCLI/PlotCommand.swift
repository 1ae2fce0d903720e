import ArgumentParser
import Foundation
import Runs

/// `metarl plot`: learning curves of run directories, or adaptation curves of `eval --json` files, as SVG.
struct Plot: CatalogCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw learning curves of run directories, or adaptation curves of `eval --json` files, as SVG.")

    @Argument(help: "Run directories (learning curves) or, with --adaptation, evaluation JSON files.") var inputs: [String]
    @Flag(help: "The inputs are `metarl eval DIR --json` outputs: draw the return by episode / step / trajectory.") var adaptation = false
    @Option(help: "metrics.csv column to draw (default: the algorithm's headline metric).") var metric: String?
    @Option(help: "metrics.csv column for the x axis.") var x: String = "environment_steps"
    @Option(help: "Moving-average window, in iterations, for metrics logged without a _stderr column.") var window: Int = 10
    @Flag(help: "A logarithmic x axis (learning curves), as meta-RL papers draw sample efficiency.") var logX = false
    @Option(name: .shortAndLong, help: "SVG file to write.") var output: String

    func run(catalog: Catalog) throws {
        try reportingErrors {
            guard !inputs.isEmpty else { throw RunError("give at least one run directory (or eval JSON file with --adaptation)") }
            guard window >= 1 else { throw RunError("--window \(window): must be at least 1") }
            let urls = inputs.map { URL(fileURLWithPath: $0) }
            let chart = adaptation ? try RunPlots.adaptationCurves(files: urls)
                : try RunPlots.learningCurves(runs: urls, metric: metric, xAxis: x, window: window, logarithmicX: logX,
                                              algorithms: catalog.algorithms)
            try writeAtomically(Data(chart.svg().utf8), to: URL(fileURLWithPath: output))
            print("wrote \(output)")
        }
    }
}

/// `metarl envs`: the registered task families.
struct EnvsCommand: CatalogCommand {
    static let configuration = CommandConfiguration(
        commandName: "envs", abstract: "List the task families with their arguments, defaults and ranges.")
    func run(catalog: Catalog) throws { print(catalog.families.listing) }
}
