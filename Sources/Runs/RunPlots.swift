import Foundation
import RL
import TensorCore

/// Charts drawn from run directories and evaluation files (`metarl plot`).
public enum RunPlots {
    /// Learning curves of `runs` overlaid: `metric` (default: each run's headline) against
    /// `xAxis` (a metrics.csv column, e.g. environment_steps or iteration). The band is the
    /// metric's `_stderr` column where the run logs one (the standard error over that
    /// iteration's trials); otherwise the curve is a moving average over `window` iterations
    /// with the standard error of that window.
    /// The headline is the run's algorithm's (`AlgorithmDefinition.headlineMetric(_:)`), looked up in `algorithms`.
    /// `logarithmicX` draws the x axis on a log scale.
    public static func learningCurves(runs: [URL], metric: String?, xAxis: String, window: Int = 10, logarithmicX: Bool = false,
                                      algorithms: AlgorithmRegistry) throws -> LineChart {
        var series: [LineChart.Series] = []
        var metricNames: Set<String> = []
        for run in runs {
            let directory = RunDirectory(run)
            let manifest = try directory.manifest()
            let name: String
            if let metric { name = metric } else {
                guard let algorithm = try? algorithms.algorithm(named: manifest.algorithm) else {
                    throw RunError("\(run.path) was made by '\(manifest.algorithm)', which this program does not register (registered: \(algorithms.names.joined(separator: ", "))); give --metric")
                }
                name = try algorithm.headlineMetric(manifest.settings)
            }
            metricNames.insert(name)
            let table = try readCSV(directory.metricsURL)
            guard let ys = table[name] else {
                throw RunError("\(directory.metricsURL.path): no column \(name); columns: \(table.keys.sorted().joined(separator: ", "))")
            }
            guard let xs = table[xAxis] else {
                throw RunError("\(directory.metricsURL.path): no column \(xAxis) for the x axis; columns: \(table.keys.sorted().joined(separator: ", "))")
            }
            let label = run.standardizedFileURL.lastPathComponent + " (\(manifest.env))"
            if let errors = table[name + "_stderr"] {
                series.append(.init(label: label, x: xs, y: ys, band: errors))
            } else {
                var means: [Double] = [], errors: [Double] = []
                for i in ys.indices {
                    let slice = ys[max(0, i - window + 1)...i].filter(\.isFinite)
                    let stats = SampleStatistics(slice)
                    means.append(stats.mean)
                    errors.append(stats.standardError)
                }
                series.append(.init(label: label + ", \(window)-iteration moving average", x: xs, y: means, band: errors))
            }
        }
        let xLabel = xAxis == "environment_steps" ? "environment steps" : xAxis.replacingOccurrences(of: "_", with: " ")
        let yLabel = metricNames.sorted().joined(separator: " / ").replacingOccurrences(of: "_", with: " ") + " (± s.e.)"
        return LineChart(title: "Learning curves", xLabel: xLabel + (logarithmicX ? " (log scale)" : ""), yLabel: yLabel,
                         series: series, logarithmicX: logarithmicX)
    }

    /// Adaptation curves from `metarl eval --json` files: each file's `adaptation` curve (the
    /// return by episode, inner step or trajectory, whatever the algorithm reports), with
    /// standard-error bars. Files written before that key existed are read by their arrays.
    public static func adaptationCurves(files: [URL]) throws -> LineChart {
        let shapes: [(values: String, errors: String, axis: String, first: Double)] = [
            ("per_episode", "per_episode_stderr", "episode in the trial", 1),
            ("returns_by_step", "stderr_by_step", "inner adaptation steps", 0),
            ("returns_by_trajectory", "stderr_by_trajectory", "trajectory", 1),
        ]
        var series: [LineChart.Series] = []
        var axes: Set<String> = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file.path) else { throw RunError("\(file.path): cannot be read") }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw RunError("\(file.path): not a JSON object (make it with `metarl eval DIR --json > FILE`)")
            }
            struct Report: Decodable { var adaptation: AdaptationCurve? }
            if let curve = (try? JSONDecoder().decode(Report.self, from: data))?.adaptation {
                guard !curve.values.isEmpty else { throw RunError("\(file.path): the adaptation curve is empty") }
                axes.insert(curve.axis)
                series.append(.init(label: file.deletingPathExtension().lastPathComponent,
                                    x: curve.values.indices.map { Double($0 + curve.first) }, y: curve.values,
                                    band: curve.stderr.count == curve.values.count ? curve.stderr : nil, markers: true))
                continue
            }
            guard let shape = shapes.first(where: { object[$0.values] is [Any] }),
                  let values = (object[shape.values] as? [Any])?.compactMap({ ($0 as? NSNumber)?.doubleValue }), !values.isEmpty
            else {
                throw RunError("\(file.path): no adaptation curve; expected one of \(shapes.map(\.values).joined(separator: ", "))")
            }
            let errors = (object[shape.errors] as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue }
            axes.insert(shape.axis)
            series.append(.init(label: file.deletingPathExtension().lastPathComponent,
                                x: values.indices.map { Double($0) + shape.first }, y: values,
                                band: errors?.count == values.count ? errors : nil, markers: true))
        }
        return LineChart(title: "Adaptation curve", xLabel: axes.sorted().joined(separator: " / "),
                         yLabel: "mean return (± s.e.)", series: series)
    }

    /// metrics.csv as columns by name (empty or unreadable cells are NaN).
    static func readCSV(_ url: URL) throws -> [String: [Double]] {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw RunError("\(url.path): cannot be read") }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        guard let header = lines.first?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) else {
            throw RunError("\(url.path): empty (no iterations logged yet)")
        }
        var columns = [String: [Double]](uniqueKeysWithValues: header.map { ($0, []) })
        for line in lines.dropFirst() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            for (i, name) in header.enumerated() {
                columns[name]!.append(i < fields.count ? Double(fields[i]) ?? .nan : .nan)
            }
        }
        return columns
    }
}
