import Foundation
import Testing

/// Runs `metarl arguments`; returns its exit status, standard output and standard error.
func runMetarlCapturing(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
    let process = Process()
    process.executableURL = try metarlExecutable()
    process.arguments = arguments
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let out = output.fileHandleForReading.readDataToEndOfFile(), err = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

/// `metarl export`: a run kept for evaluation only evaluates exactly as the run does, is
/// smaller where replay buffers were dropped, and refuses to be resumed by name.
@Suite(.serialized) struct ExportTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-export-\(UUID().uuidString)")

    static let pearl = ["train", "pearl", "--env", "point-nav", "--env-arg", "horizon=10", "--train-tasks", "6", "--meta-batch-size", "2",
                        "--batch-size", "8", "--context-batch-size", "8", "--initial-steps", "20", "--prior-steps", "10",
                        "--extra-posterior-steps", "10", "--gradient-steps", "3", "--eval-tasks", "2", "--eval-trajectories", "2",
                        "--hidden-sizes", "8", "--encoder-hidden-sizes", "8", "--iterations", "2", "--seed", "5"]
    static let sac = ["train", "sac", "--env", "point-nav", "--env-arg", "horizon=8", "--hidden-sizes", "8", "--batch-size", "8",
                      "--steps-per-iteration", "16", "--random-steps", "20", "--eval-episodes", "2", "--iterations", "2", "--seed", "4"]
    static let maml = ["train", "maml", "--env", "point-nav", "--env-arg", "horizon=8", "--meta-batch-size", "2",
                       "--fast-batch-size", "3", "--hidden-sizes", "4", "--iterations", "2", "--seed", "4"]

    @Test(arguments: [(pearl, true), (sac, true), (maml, false)])
    func anExportEvaluatesAsItsRunAndIsNotResumed(_ train: [String], dropsReplay: Bool) throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = directory.appendingPathComponent("run").path, export = directory.appendingPathComponent("export").path
        #expect(try runMetarl(train + ["--out", run]) == 0)
        let exported = try runMetarlCapturing(["export", run, "--out", export])
        #expect(exported.status == 0, "\(exported.errors)")
        #expect(exported.output.contains("exported \(run) iteration 2"), "\(exported.output)")
        let checkpoint = "/checkpoints/00000002.ckpt"
        let before = try Data(contentsOf: URL(fileURLWithPath: run + checkpoint)), after = try Data(contentsOf: URL(fileURLWithPath: export + checkpoint))
        #expect(dropsReplay ? after.count < before.count : after == before)
        for file in ["run.json", "config.yaml", "metrics.csv"] {
            #expect(FileManager.default.contents(atPath: run + "/" + file) == FileManager.default.contents(atPath: export + "/" + file))
        }
        let evaluation = try runMetarlCapturing(["eval", run, "--json", "--seed", "9"])
        #expect(evaluation.status == 0)
        #expect(try runMetarlCapturing(["eval", export, "--json", "--seed", "9"]).output == evaluation.output)
        let resumed = try runMetarlCapturing(["train", train[1], "--resume", export, "--iterations", "3"])
        if dropsReplay {
            #expect(resumed.status == 2)
            #expect(resumed.errors.contains("checkpoint is an evaluation export (`metarl export` dropped its replay buffers)"), "\(resumed.errors)")
        } else {
            #expect(resumed.status == 0, "\(resumed.errors)")
        }
        let again = try runMetarlCapturing(["export", run, "--out", export])
        #expect(again.status == 2 && again.errors.contains("exists; give a new directory"), "\(again.errors)")
    }
}
