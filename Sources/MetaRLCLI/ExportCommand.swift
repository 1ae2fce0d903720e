import ArgumentParser
import Foundation
import Runs

/// `metarl export DIR --out DIR2`: a run kept for evaluation only — its manifest, config,
/// metrics and TensorBoard files, and its newest checkpoint without what only further
/// training needs (SAC's and PEARL's replay buffers). Small enough for a model zoo; `eval`
/// and `plot` read it, `train --resume` refuses it.
struct Export: CatalogCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a run for evaluation only: its logs and newest checkpoint, without replay buffers (for a model zoo).")

    @Argument(help: "A run directory made by `metarl train`.") var run: String
    @Option(help: "The directory to write (must not exist yet).") var out: String

    func run(catalog: Catalog) throws {
        try reportingErrors {
            let source = RunDirectory(URL(fileURLWithPath: run))
            let manifest = try source.manifest()
            let algorithm = try catalog.algorithm(of: manifest, at: run)
            let destination = RunDirectory(URL(fileURLWithPath: out))
            guard !FileManager.default.fileExists(atPath: destination.url.path) else {
                throw RunError("\(out) exists; give a new directory to export into")
            }
            try destination.create(manifest: manifest)
            do {
                let files = try FileManager.default.contentsOfDirectory(atPath: source.url.path)
                for name in files where name == "metrics.csv" || name.hasPrefix("events.out.tfevents.") {
                    try FileManager.default.copyItem(at: source.url.appendingPathComponent(name), to: destination.url.appendingPathComponent(name))
                }
                let iteration = try algorithm.exportCheckpoint(from: source, to: destination, notes: printNote)
                let bytes = { (url: URL) in
                    (try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: [.fileSizeKey]))?
                        .compactMap { try? $0.resourceValues(forKeys: [.fileSizeKey]).fileSize }.reduce(0, +) ?? 0
                }
                print(String(format: "exported %@ iteration %d → %@ (checkpoint %.1f MB; the run's newest: %.1f MB)", run, iteration, out,
                             Double(bytes(destination.checkpointsURL)) / 1e6,
                             Double((try? FileManager.default.attributesOfItem(atPath: source.checkpointsURL
                                .appendingPathComponent(String(format: "%08d.ckpt", iteration)).path)[.size] as? Int) ?? 0) / 1e6))
            } catch {
                try? FileManager.default.removeItem(at: destination.url)
                throw error
            }
        }
    }
}
