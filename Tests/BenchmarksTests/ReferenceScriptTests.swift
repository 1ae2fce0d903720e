@testable import Benchmarks
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A reference run (a peer's timing script) that fails or stalls ends the benchmark with an
/// error instead of waiting on it, and leaves none of its processes behind.
@Suite struct ReferenceScriptTests {
    /// A folder with one script, `name`, holding `source`.
    func folder(_ name: String, _ source: String) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-reference-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(source.utf8).write(to: folder.appendingPathComponent(name))
        return folder
    }

    @Test func theJSONLinesOfAGoodRunAreReturned() throws {
        let lines = try ReferenceScript.run("ok.py", python: "/usr/bin/python3", arguments: ["3"], in: try folder("ok.py", """
            import json, sys
            for i in range(int(sys.argv[1])):
                print(json.dumps({"iteration": i + 1, "seconds": 0.5}))
            print("not json")
            """))
        #expect(lines.compactMap { $0["iteration"] as? Int } == [1, 2, 3])
    }

    @Test func aFailingRunNamesTheErrorItPrinted() throws {
        #expect {
            _ = try ReferenceScript.run("fails.py", python: "/usr/bin/python3", arguments: [], in: try folder("fails.py", """
                import json
                print(json.dumps({"error": "sampler worker SamplerWorker-2 exited with -9"}), flush=True)
                raise SystemExit(3)
                """))
        } throws: { "\($0)" == "fails.py failed (exit 3): sampler worker SamplerWorker-2 exited with -9" }
    }

    /// A run whose worker died and which then waits forever (as pytorch-maml-rl's sampler does)
    /// is stopped after the stall timeout, with the worker it started.
    @Test func aStalledRunIsStoppedWithItsWorkers() throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-stalled-\(getpid()).pid").path
        let start = Date()
        #expect {
            _ = try ReferenceScript.run("stalls.py", python: "/usr/bin/python3", arguments: [marker], stallTimeout: 1.5, in: try folder("stalls.py", """
                import json, subprocess, sys, time
                worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
                open(sys.argv[1], "w").write(str(worker.pid))
                print(json.dumps({"iteration": 1, "seconds": 0.1}), flush=True)
                time.sleep(3600)
                """))
        } throws: { "\($0)".contains("stalls.py printed nothing for 1.5 s (a stalled run: a dead or hung worker?); stopped it and its workers") }
        #expect(Date().timeIntervalSince(start) < 30)
        let worker = try #require(pid_t(try String(contentsOfFile: marker, encoding: .utf8)))
        usleep(200_000)
        // The worker was killed with its group; once its parent is gone init reaps it.
        var gone = false
        for _ in 0..<50 where !gone {
            gone = kill(worker, 0) == -1 && errno == ESRCH
            if !gone { usleep(100_000) }
        }
        #expect(gone, "the stalled run's worker \(worker) is still running")
    }
}
