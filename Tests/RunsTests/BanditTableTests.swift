import Foundation
import Testing

/// `metarl bandit-table`: every strategy and agent of a cell on the same tasks, the exact
/// Bayes-optimal value above them, agents in the cell of their own k and n.
@Suite(.serialized) struct BanditTableTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("metarl-table-\(UUID().uuidString)")

    /// The JSON cells the command printed, one per line.
    func cells(_ output: String) throws -> [[String: Any]] {
        try output.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }

    @Test func cellsHoldEveryStrategyAndTheAgentOnTheSameTasks() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = directory.appendingPathComponent("rl2").path
        #expect(try runMetarl(["train", "rl2", "--env", "bandit", "--env-arg", "arms=3", "--episodes-per-trial", "4",
                               "--trials-per-iteration", "20", "--hidden", "8", "--iterations", "2", "--seed", "2", "--out", run]) == 0)
        let table = try runMetarlCapturing(["bandit-table", "--arms", "2,3", "--pulls", "4", "--trials", "400", "--seed", "3",
                                            "--agent", run, "--json"])
        #expect(table.status == 0, "\(table.errors)")
        let rows = try cells(table.output)
        #expect(rows.map { $0["k"] as? Int } == [2, 3])
        for row in rows {
            let figures = try #require(row["figures"] as? [[String: Any]])
            let names = figures.compactMap { $0["name"] as? String }
            #expect(Array(names.prefix(7)) == ["Random", "Gittins", "TS", "OTS", "UCB1", "ε-Greedy", "Greedy"])
            // The agent (k = 3, n = 4) joins only its own cell.
            #expect(names.count == (row["k"] as? Int == 3 ? 8 : 7), "\(names)")
            let exact = try #require(row["bayes_optimal_exact"] as? Double)
            for figure in figures {
                let mean = try #require(figure["mean_return"] as? Double), se = try #require(figure["stderr"] as? Double)
                #expect(mean <= exact + 4 * se, "\(figure) above the optimum \(exact)")
            }
            // Acting at random earns half of each pull on U[0, 1] arms.
            let random = figures[0], mean = try #require(random["mean_return"] as? Double), se = try #require(random["stderr"] as? Double)
            #expect(Swift.abs(mean - 2) < 4 * se)
        }
        // The agent's figure is `metarl eval --baseline-tasks --greedy` on the same seed and trials.
        let eval = try runMetarlCapturing(["eval", run, "--trials", "400", "--seed", "3", "--baseline-tasks", "--greedy", "--json"])
        #expect(eval.status == 0, "\(eval.errors)")
        let evaluated = try #require(try JSONSerialization.jsonObject(with: Data(eval.output.utf8)) as? [String: Any])
        let agent = try #require((rows[1]["figures"] as? [[String: Any]])?.last)
        #expect(agent["mean_return"] as? Double == evaluated["mean_return"] as? Double)
        // With --sample-agents it is `eval --baseline-tasks` (sampled actions) instead.
        let sampled = try runMetarlCapturing(["bandit-table", "--arms", "3", "--pulls", "4", "--trials", "400", "--seed", "3",
                                              "--agent", run, "--sample-agents", "--json"])
        let sampling = try runMetarlCapturing(["eval", run, "--trials", "400", "--seed", "3", "--baseline-tasks", "--json"])
        let sampledAgent = try #require((try cells(sampled.output).first?["figures"] as? [[String: Any]])?.last)
        let sampledEval = try #require(try JSONSerialization.jsonObject(with: Data(sampling.output.utf8)) as? [String: Any])
        #expect(sampledAgent["mean_return"] as? Double == sampledEval["mean_return"] as? Double)
        // RUN@N puts the agent in the cell of N pulls: `eval --episodes-per-trial N` on the same tasks.
        let longer = try runMetarlCapturing(["bandit-table", "--arms", "3", "--pulls", "4,9", "--trials", "400", "--seed", "3",
                                             "--agent", run + "@9", "--json"])
        #expect(longer.status == 0, "\(longer.errors)")
        let longerRows = try cells(longer.output)
        #expect(longerRows.map { ($0["figures"] as? [[String: Any]])?.count } == [7, 8], "only the n = 9 cell holds it")
        let placed = try #require((longerRows[1]["figures"] as? [[String: Any]])?.last)
        #expect(placed["name"] as? String == "RL² \(run)@9")
        let nine = try runMetarlCapturing(["eval", run, "--trials", "400", "--seed", "3", "--baseline-tasks", "--greedy",
                                           "--episodes-per-trial", "9", "--json"])
        let nineEval = try #require(try JSONSerialization.jsonObject(with: Data(nine.output.utf8)) as? [String: Any])
        #expect(placed["mean_return"] as? Double == nineEval["mean_return"] as? Double)
        #expect((nineEval["per_episode"] as? [Double])?.count == 9)
    }

    @Test func badInputEndsWithOneLine() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let arms = try runMetarlCapturing(["bandit-table", "--arms", "5,0", "--pulls", "10"])
        #expect(arms.status != 0 && arms.errors.contains("--arms '5,0': expected positive integers"), "\(arms.errors)")
        let at = try runMetarlCapturing(["bandit-table", "--arms", "5", "--pulls", "10", "--agent", "somewhere@ten"])
        #expect(at.status != 0 && at.errors.contains("expected RUN or RUN@N with N a positive number of pulls"), "\(at.errors)")
        let run = directory.appendingPathComponent("grid").path
        #expect(try runMetarl(["train", "rl2", "--env", "gridworld", "--env-arg", "size=3", "--episodes-per-trial", "2",
                               "--trials-per-iteration", "4", "--hidden", "4", "--iterations", "1", "--seed", "1", "--out", run]) == 0)
        let agent = try runMetarlCapturing(["bandit-table", "--arms", "5", "--pulls", "10", "--trials", "10", "--agent", run])
        #expect(agent.status != 0 && agent.errors.contains("not on Bernoulli bandits"), "\(agent.errors)")
        #expect(agent.errors.split(separator: "\n").count == 1, "\(agent.errors)")
    }
}
