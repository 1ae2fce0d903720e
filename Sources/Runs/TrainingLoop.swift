import CKernels
import Foundation
import RL

/// Drives any `IterativeAlgorithm`: iterations, `metrics.csv` and a TensorBoard event
/// file, checkpoints, progress.
public struct TrainingLoop {
    public var directory: RunDirectory
    /// Iterations to reach (a resumed run continues up to it).
    public var iterations: Int
    public var checkpointEvery: Int
    public var keepCheckpoints: Int
    /// Receives progress text (a line, or a redraw with "\r" on a terminal).
    public var progress: ProgressLine
    /// Whether this process writes metrics, events, checkpoints and progress (in an MPI job,
    /// rank 0 only; the other ranks iterate in step with it).
    public var writes: Bool
    /// Whether a first SIGINT or SIGTERM ends the run after the iteration under way, with a
    /// checkpoint (`TrainingStopped`), instead of at once. Off in an MPI job, whose ranks
    /// must stop together.
    public var stopsBetweenIterations = false

    public init(directory: RunDirectory, iterations: Int, checkpointEvery: Int = 10, keepCheckpoints: Int = 3,
                progress: ProgressLine = ProgressLine(), writes: Bool = true) {
        self.writes = writes
        self.directory = directory
        self.iterations = iterations
        self.checkpointEvery = max(checkpointEvery, 1)
        self.keepCheckpoints = keepCheckpoints
        self.progress = progress
    }

    /// Runs `algorithm` until `iterations`, appending to `metrics.csv` and checkpointing.
    /// A `NonFiniteError` stops the run without writing a checkpoint of the bad state.
    public mutating func run<A: IterativeAlgorithm>(_ algorithm: inout A) throws {
        // Only a writing process (rank 0 of an MPI job) keeps metrics.csv and the event file.
        var csv = writes ? try MetricsCSV(url: directory.metricsURL, keepingRowsThrough: algorithm.iteration) : nil
        var events: TensorBoardEventWriter?
        if let csv {
            // One event file holding exactly the rows metrics.csv keeps, then the new ones.
            for old in TensorBoardEventWriter.existingFiles(in: directory.url) { try? FileManager.default.removeItem(at: old) }
            events = try TensorBoardEventWriter(directory: directory.url)
            for row in csv.keptRows { try events?.append(step: row.iteration, scalars: row.metrics) }
        }
        let startSteps = algorithm.environmentSteps, startIteration = algorithm.iteration
        let start = Date()
        if stopsBetweenIterations { metarl_catch_stop_signals() }
        defer { if stopsBetweenIterations { metarl_release_stop_signals() } }
        while algorithm.iteration < iterations {
            let iterationStart = Date()
            let metrics = try algorithm.iterate()
            for (name, value) in metrics where !value.isFinite {
                throw NonFiniteError(iteration: algorithm.iteration, quantity: name)
            }
            guard writes else { continue }
            let row = metrics + [("wall_seconds", Date().timeIntervalSince(iterationStart))]
            try csv?.append(iteration: algorithm.iteration, metrics: row)
            try events?.append(step: algorithm.iteration, scalars: row)
            let stop = stopsBetweenIterations ? metarl_stop_signal() : 0
            if algorithm.iteration % checkpointEvery == 0 || algorithm.iteration == iterations || stop != 0 {
                try directory.saveCheckpoint(algorithm.state, iteration: algorithm.iteration, keep: keepCheckpoints)
            }
            if stop != 0, algorithm.iteration < iterations { throw TrainingStopped(signal: stop, iteration: algorithm.iteration, directory: directory.url.path) }
            let elapsed = Date().timeIntervalSince(start)
            let done = algorithm.iteration - startIteration, left = iterations - algorithm.iteration
            let headline = metrics.first { $0.0 == algorithm.headlineMetric }?.1 ?? .nan
            progress.update(
                iteration: algorithm.iteration, of: iterations, steps: algorithm.environmentSteps,
                stepsPerSecond: Double(algorithm.environmentSteps - startSteps) / max(elapsed, 1e-9),
                eta: elapsed / Double(max(done, 1)) * Double(left), headlineName: algorithm.headlineMetric, headline: headline,
                final: left == 0)
        }
    }
}

/// A run ended by SIGINT or SIGTERM after an iteration, its checkpoint written: what to
/// run to go on.
public struct TrainingStopped: Error, CustomStringConvertible {
    public var signal: Int32
    public var iteration: Int
    public var directory: String

    public var description: String {
        let name = signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"
        return "stopped by \(name) after iteration \(iteration), checkpoint written; continue with --resume \(directory)"
    }
}

/// `metrics.csv`: a header of metric names, then one row per iteration.
public struct MetricsCSV {
    let url: URL
    var header: [String]?
    /// The rows kept when the file was opened: iteration and (metric, value) pairs.
    public private(set) var keptRows: [(iteration: Int, metrics: [(String, Double)])] = []

    /// Opens (or creates) the file, dropping rows after `iteration` (a resumed run rewrites them).
    public init(url: URL, keepingRowsThrough iteration: Int) throws {
        self.url = url
        if let data = FileManager.default.contents(atPath: url.path) {
            var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            if let first = lines.first {
                header = first.split(separator: ",").map(String.init).dropFirst().map { $0 }
                lines = [first] + lines.dropFirst().filter { line in
                    (Int(line.prefix { $0 != "," }) ?? Int.max) <= iteration
                }
                try writeAtomically(Data((lines.joined(separator: "\n") + "\n").utf8), to: url)
                for line in lines.dropFirst() {
                    let fields = line.split(separator: ",", omittingEmptySubsequences: false)
                    guard let iteration = Int(fields[0]) else { continue }
                    let values = zip(header!, fields.dropFirst()).compactMap { name, text in Double(text).map { (name, $0) } }
                    keptRows.append((iteration, values))
                }
            }
        }
    }

    public mutating func append(iteration: Int, metrics: [(String, Double)]) throws {
        var text = ""
        if header == nil {
            header = metrics.map(\.0)
            text += "iteration," + metrics.map(\.0).joined(separator: ",") + "\n"
        } else if case let added = metrics.map(\.0).filter({ !header!.contains($0) }), !added.isEmpty {
            try addColumns(added)
        }
        // Values in the header's order; a metric the row lacks is empty.
        let values = Dictionary(metrics, uniquingKeysWith: { first, _ in first })
        text += "\(iteration)," + header!.map { values[$0].map { "\($0)" } ?? "" }.joined(separator: ",") + "\n"
        guard let handle = FileHandle(forWritingAtPath: url.path) ?? {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            return FileHandle(forWritingAtPath: url.path)
        }() else { throw RunError("cannot write \(url.path)") }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }

    /// Appends `names` to the header and an empty field for each to every row written so
    /// far: a metric that first appears later (a run resumed by a newer build) gets a column.
    mutating func addColumns(_ names: [String]) throws {
        header! += names
        let padding = String(repeating: ",", count: names.count)
        let lines = String(decoding: FileManager.default.contents(atPath: url.path) ?? Data(), as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: true)
        let rows = ["iteration," + header!.joined(separator: ",")] + lines.dropFirst().map { $0 + padding }
        try writeAtomically(Data((rows.joined(separator: "\n") + "\n").utf8), to: url)
    }
}

/// The progress line: redrawn in place on a terminal, printed as plain lines at most every
/// `plainInterval` seconds otherwise (CI logs).
public struct ProgressLine {
    public var isTerminal: Bool
    public var plainInterval: Double
    public var output: (String) -> Void
    var lastPrint = Date.distantPast

    public init(isTerminal: Bool = isatty(STDERR_FILENO) != 0, plainInterval: Double = 10,
                output: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.isTerminal = isTerminal
        self.plainInterval = plainInterval
        self.output = output
    }

    public mutating func update(iteration: Int, of total: Int, steps: Int, stepsPerSecond: Double, eta: Double,
                                headlineName: String, headline: Double, final: Bool) {
        let line = String(format: "iter %d/%d  steps %@  %@ steps/s  ETA %@  %@ %.4g",
                          iteration, total, Self.count(Double(steps)), Self.count(stepsPerSecond), Self.duration(eta), headlineName, headline)
        if isTerminal {
            output("\r\u{1B}[2K" + line + (final ? "\n" : ""))
        } else if final || Date().timeIntervalSince(lastPrint) >= plainInterval {
            output(line + "\n")
            lastPrint = Date()
        }
    }

    static func count(_ x: Double) -> String {
        x >= 1e9 ? String(format: "%.2fG", x / 1e9) : x >= 1e6 ? String(format: "%.2fM", x / 1e6)
            : x >= 1e3 ? String(format: "%.1fk", x / 1e3) : String(format: "%.0f", x)
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t / 60 % 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}
