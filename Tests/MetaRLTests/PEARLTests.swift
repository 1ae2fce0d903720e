import Envs
import Foundation
@testable import MetaRL
import NN
@testable import RL
import Testing
import TensorCore

@Suite struct PEARLTests {
    /// Two factors N(1, 1) and N(3, 3): precision 1 + 1/3, so σ² = 3/4 and μ = ¾(1/1 + 3/3) = 1.5.
    @Test func productOfGaussiansMatchesTheHandComputation() {
        let means = Tensor(shape: [1, 2, 1], values: [1, 3]), variances = Tensor(shape: [1, 2, 1], values: [1, 3])
        let q = ContextEncoder.productOfGaussians(means: means, variances: variances)
        #expect(Swift.abs(q.variance.scalar - 0.75) < 1e-6)
        #expect(Swift.abs(q.mean.scalar - 1.5) < 1e-6)
        // Two dimensions, three factors: each dimension on its own.
        let m2 = Tensor(shape: [1, 3, 2], values: [0, 1, 2, 1, 4, 1]), v2 = Tensor(shape: [1, 3, 2], values: [1, 2, 1, 2, 2, 2])
        let q2 = ContextEncoder.productOfGaussians(means: m2, variances: v2)
        // dim 0: precisions 1, 1, 0.5 → σ² = 0.4, μ = 0.4·(0 + 2 + 2) = 1.6; dim 1: σ² = 2/3, μ = 1.
        let expectedVariance: [Float] = [0.4, 2.0 / 3], expectedMean: [Float] = [1.6, 1]
        for (a, b) in zip(q2.variance.values, expectedVariance) { #expect(Swift.abs(a - b) < 1e-6) }
        for (a, b) in zip(q2.mean.values, expectedMean) { #expect(Swift.abs(a - b) < 1e-6) }
    }

    /// The encoder's posterior does not depend on the order of the context.
    @Test func posteriorIsOrderInvariant() {
        var rng = Xoshiro256(seed: 5)
        let encoder = ContextEncoder(transitionSize: 4, latentSize: 3, hiddenSizes: [16], using: &rng)
        let context = Tensor.randomNormal([1, 6, 4], using: &rng)
        let reversed = Tensor.concat((0..<6).reversed().map { context.slice(axis: 1, $0..<($0 + 1)) }, axis: 1)
        let a = encoder.posterior(context), b = encoder.posterior(reversed)
        for (x, y) in zip(a.mean.values + a.variance.values, b.mean.values + b.variance.values) { #expect(Swift.abs(x - y) < 1e-5) }
    }

    /// KL(N(μ, σ²) ‖ N(0, I)) against ½ Σ (σ² + μ² − 1 − ln σ²) worked by hand, and
    /// against the general two-Gaussian closed form.
    @Test func klToThePriorMatchesTheClosedForm() {
        let mean = Tensor(shape: [2, 2], values: [1, 0, -0.5, 2]), variance = Tensor(shape: [2, 2], values: [2, 1, 0.25, 0.5])
        let kl = ContextEncoder.klToStandardNormal(mean: mean, variance: variance).values
        // row 0: ½(2 + 1 − 1 − ln 2) + ½(1 + 0 − 1 − 0) = 1 − ½ ln 2
        // row 1: ½(0.25 + 0.25 − 1 − ln 0.25) + ½(0.5 + 4 − 1 − ln 0.5)
        let row0: Double = 1 - 0.5 * Foundation.log(2.0)
        let row1: Double = 0.5 * (0.25 + 0.25 - 1 - Foundation.log(0.25)) + 0.5 * (0.5 + 4 - 1 - Foundation.log(0.5))
        let expected = [row0, row1]
        for (a, b) in zip(kl, expected) { #expect(Swift.abs(Double(a) - b) < 1e-5) }
        let general = DiagonalGaussian(mean: mean, logStd: variance.log() * 0.5)
            .kl(to: DiagonalGaussian(mean: Tensor.zeros([2, 2]), logStd: Tensor.zeros([2, 2]))).values
        for (a, b) in zip(kl, general) { #expect(Swift.abs(a - b) < 1e-5) }
    }

    static var tinyConfig: PEARLConfig {
        var c = PEARLConfig()
        c.hiddenSizes = [16]
        c.encoderHiddenSizes = [16]
        c.trainTasks = 4
        c.metaBatchSize = 2
        c.batchSize = 16
        c.contextBatchSize = 8
        c.initialStepsPerTask = 20
        c.tasksPerIteration = 2
        c.priorSteps = 10
        c.extraPosteriorSteps = 10
        c.gradientStepsPerIteration = 5
        c.evalTasks = 3
        c.evalTrajectories = 2
        return c
    }

    /// Buffers fill as the protocol says, the critic loss reaches the encoder, and a seed
    /// reproduces the run exactly.
    @Test func iterationsFillBuffersTrainTheEncoderAndAreDeterministic() throws {
        let env = PendulumMass(horizon: 10)
        func run() throws -> (PEARL<PendulumMass>, [[(String, Double)]]) {
            var pearl = try PEARL(config: Self.tinyConfig, prototype: env, seed: 9)
            var rows: [[(String, Double)]] = []
            for _ in 0..<2 { rows.append(try pearl.iterate()) }
            return (pearl, rows)
        }
        let initialEncoder = try PEARL(config: Self.tinyConfig, prototype: env, seed: 9).state.encoder
        let (a, rowsA) = try run()
        let (b, rowsB) = try run()
        // Initial collection: 2 episodes × 10 steps into each task's buffers.
        let stored: Int = a.state.buffers.map(\.count).reduce(0, +)
        #expect(stored == 160, "4 tasks × 20 initial steps, then 2 iterations × 2 tasks × (10 prior + 10 posterior)")
        // A context buffer refilled this iteration holds only its prior episode.
        #expect(a.state.contextBuffers.allSatisfy { $0.count == 10 || $0.count == 20 })
        #expect(a.state.encoder.flatParameters.values != initialEncoder.flatParameters.values)
        func deterministic(_ rows: [[(String, Double)]]) -> [[Double]] {
            rows.map { row in row.filter { !$0.0.hasSuffix("seconds") && $0.0 != "gradient_steps_per_second" }.map(\.1) }
        }
        #expect(deterministic(rowsA) == deterministic(rowsB))
        #expect(a.state.agent.actor.flatParameters.values == b.state.agent.actor.flatParameters.values)
        let evaluation = try a.evaluate(taskCount: 3, trajectories: 2, seed: 1)
        #expect(evaluation.returns.count == 2 && evaluation.perTask.count == 3)
    }

    /// With the meta-batch in fixed parts, computing them side by side on several threads
    /// changes no bit of the trained networks; the parts themselves do change them.
    @Test func threadsDoNotChangeARunButShardsDo() throws {
        var config = Self.tinyConfig
        config.trainTasks = 6
        config.metaBatchSize = 4
        config.shards = 3
        func trained(_ config: PEARLConfig, threads: Int) throws -> [Float] {
            var pearl = try PEARL(config: config, prototype: PendulumMass(horizon: 10), seed: 4, threads: threads)
            for _ in 0..<2 { _ = try pearl.iterate() }
            let s = pearl.state
            return s.agent.actor.flatParameters.values + s.agent.critics.flatParameters.values + s.encoder.flatParameters.values
        }
        let one = try trained(config, threads: 1)
        #expect(try trained(config, threads: 2) == one)
        #expect(try trained(config, threads: 3) == one)
        var single = config
        single.shards = 1
        #expect(try trained(single, threads: 2) != one)
    }
}
