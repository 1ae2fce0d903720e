import Envs
import Foundation

import NN
@testable import RL
import TensorCore
import Testing

@Suite struct ReplayBufferTests {
    func transition(_ k: Int) -> (o: [Float], a: [Float], r: Float, s: [Float], d: Bool) {
        let x = Float(k)
        return ([x, x + 0.5], [-x], x * 10, [x + 1, x + 1.5], k % 2 == 0)
    }

    @Test func wrapsAroundOverwritingTheOldest() throws {
        var buffer = ReplayBuffer(capacity: 3, observationSize: 2, actionSize: 1)
        for k in 0..<2 {
            let t = transition(k)
            buffer.add(observation: t.o, action: t.a, reward: t.r, nextObservation: t.s, terminal: t.d)
        }
        #expect(buffer.count == 2 && buffer.nextSlot == 2)
        #expect(buffer.chronologicalSlots == [0, 1])
        for k in 2..<5 {
            let t = transition(k)
            buffer.add(observation: t.o, action: t.a, reward: t.r, nextObservation: t.s, terminal: t.d)
        }
        // Five transitions into three slots: 3 and 4 overwrote 0 and 1; slot 2 holds 2.
        #expect(buffer.count == 3 && buffer.nextSlot == 2)
        #expect(buffer.chronologicalSlots == [2, 0, 1])
        let batch = buffer.batch(buffer.chronologicalSlots)
        #expect(batch.rewards.values == [20, 30, 40])
        #expect(batch.observations.values == [2, 2.5, 3, 3.5, 4, 4.5])
        #expect(batch.actions.values == [-2, -3, -4])
        #expect(batch.nextObservations.values == [3, 3.5, 4, 4.5, 5, 5.5])
        #expect(batch.terminals.values == [1, 0, 1])
        // Sampling only ever returns stored slots.
        var rng = Xoshiro256(seed: 1)
        #expect(Set(buffer.sampleSlots(200, using: &rng)) == [0, 1, 2])
    }

    /// A capacity of 10⁸ transitions of 1 000 floats (800 GB if preallocated) costs only what
    /// is filled; the storage doubles past 1 024 slots and the ring still wraps at capacity.
    @Test func storageGrowsWithWhatIsFilled() throws {
        var huge = ReplayBuffer(capacity: 100_000_000, observationSize: 1000, actionSize: 1)
        #expect(huge.allocatedSlots == 0)
        let o = [Float](repeating: 1, count: 1000)
        huge.add(observation: o, action: [2], reward: 3, nextObservation: o, terminal: false)
        #expect(huge.allocatedSlots == 1024 && huge.count == 1)
        var small = ReplayBuffer(capacity: 3000, observationSize: 2, actionSize: 1)
        for k in 0..<3005 {
            let t = transition(k)
            small.add(observation: t.o, action: t.a, reward: t.r, nextObservation: t.s, terminal: t.d)
            if k == 1024 { #expect(small.allocatedSlots == 2048) }
        }
        #expect(small.allocatedSlots == 3000 && small.count == 3000 && small.nextSlot == 5)
        #expect(small.batch([4, 5]).rewards.values == [30040, 50])
    }

    @Test func codableRoundTripKeepsSlotsAndCounters() throws {
        for added in [0, 2, 7] {
            var buffer = ReplayBuffer(capacity: 4, observationSize: 2, actionSize: 1)
            for k in 0..<added {
                let t = transition(k)
                buffer.add(observation: t.o, action: t.a, reward: t.r, nextObservation: t.s, terminal: t.d)
            }
            let copy = try JSONDecoder().decode(ReplayBuffer.self, from: JSONEncoder().encode(buffer))
            #expect(copy == buffer)
        }
        // Counters that do not match the stored rows are a decoding error, not a trap.
        let bad = #"{"capacity":4,"observationSize":2,"actionSize":1,"count":3,"nextSlot":1,"transitions":{"shape":[0,7],"dtype":"float32","values":[]}}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ReplayBuffer.self, from: Data(bad.utf8)) }
    }
}

@Suite struct SACTests {
    /// y = s·r + γ(1 − d)(min(Q′₁, Q′₂) − α log π), worked by hand for three transitions.
    @Test func targetMatchesTheHandComputation() {
        let y = SACAgent.target(
            rewards: Tensor(shape: [3], values: [1, -2, 0.5]), terminals: Tensor(shape: [3], values: [0, 0, 1]),
            nextQ1: Tensor(shape: [3], values: [10, 3, 7]), nextQ2: Tensor(shape: [3], values: [8, 4, 9]),
            nextLogProb: Tensor(shape: [3], values: [-1, 2, 0.3]), temperature: 0.2, gamma: 0.9, rewardScale: 2)
        // 1: 2·1 + 0.9·(8 − 0.2·(−1)) = 2 + 7.38 = 9.38
        // 2: 2·(−2) + 0.9·(3 − 0.2·2) = −4 + 2.34 = −1.66
        // 3: terminal: 2·0.5 = 1
        let expected: [Float] = [9.38, -1.66, 1]
        for (a, b) in zip(y.values, expected) { #expect(Swift.abs(a - b) < 1e-5) }
        #expect(!y.isTracked)
    }

    /// The agent's own target path: a′ from the actor for given noise, the target critics,
    /// and α, against the same pieces evaluated separately.
    @Test func agentTargetsUseTargetCriticsAndTheSampledAction() {
        var rng = Xoshiro256(seed: 3)
        var agent = SACAgent(inputSize: 3, actionSize: 2, hiddenSizes: [8], settings: SACUpdateSettings(), using: &rng)
        agent.targetCritics = agent.targetCritics.mapParameters { $0 * 0.5 }
        let next = Tensor.randomNormal([4, 3], using: &rng), noise = Tensor.randomNormal([4, 2], using: &rng)
        let rewards = Tensor(shape: [4], values: [1, 2, 3, 4]), terminals = Tensor(shape: [4], values: [0, 1, 0, 0])
        let y = agent.targets(rewards: rewards, terminals: terminals, nextInputs: next, noise: noise).values
        let pi = agent.actor.distribution(next)
        let (a, u) = pi.sample(noise: noise)
        let q1 = agent.targetCritics.q1(next, a).values, q2 = agent.targetCritics.q2(next, a).values
        let logp = pi.logProb(preSquash: u).values
        for i in 0..<4 {
            let soft = Swift.min(q1[i], q2[i]) - logp[i] * Float(agent.temperature.alpha)
            let expected = rewards.values[i] + (1 - terminals.values[i]) * 0.99 * soft
            #expect(Swift.abs(y[i] - expected) < 1e-5)
        }
    }

    /// Polyak averaging moves each target parameter τ of the way to the online one.
    @Test func polyakAveraging() {
        var rng = Xoshiro256(seed: 4)
        var settings = SACUpdateSettings()
        settings.polyak = 0.25
        var agent = SACAgent(inputSize: 2, actionSize: 1, hiddenSizes: [4], settings: settings, using: &rng)
        agent.targetCritics = agent.critics.mapParameters { $0 * 0 }
        agent.updateTargets()
        for (t, p) in zip(agent.targetCritics.parameters, agent.critics.parameters) {
            for (x, y) in zip(t.values, p.values) { #expect(Swift.abs(x - 0.25 * y) < 1e-7) }
        }
    }

    /// With a fixed seed and a small budget, SAC solves a 1-D point-nav-like task: move
    /// toward a goal at +0.4 (point-nav with the goal fixed by the seed), far above acting randomly.
    @Test func learnsPointNavigationOnOneTask() throws {
        var config = SACConfig()
        config.hiddenSizes = [32, 32]
        config.batchSize = 64
        config.randomSteps = 200
        config.stepsPerIteration = 400
        config.iterations = 6
        config.evalEpisodes = 4
        let env = PointNavigation(goalRange: 0.5, horizon: 20)
        var sac = try SAC(config: config, prototype: env, seed: 2)
        var returns: [Double] = []
        for _ in 0..<config.iterations {
            returns.append(Dictionary(try sac.iterate(), uniquingKeysWith: { a, _ in a })["eval_return_mean"]!)
        }
        // Standing still scores −20·|goal|; the trained policy reaches the goal in a few steps.
        let goal = sac.fixedTask.goal, still = -20 * (goal[0] * goal[0] + goal[1] * goal[1]).squareRoot()
        #expect(returns.last! > still * 0.5, "returns \(returns), standing still \(still)")
    }

    /// Each update's minibatch in fixed parts computed side by side on several threads trains
    /// the same networks, bit for bit, as on one.
    @Test func threadsDoNotChangeARun() throws {
        var config = SACConfig()
        config.hiddenSizes = [16, 16]
        config.batchSize = 30
        config.shards = 4
        config.randomSteps = 50
        config.stepsPerIteration = 80
        config.evalEpisodes = 1
        func trained(threads: Int) throws -> [Float] {
            var sac = try SAC(config: config, prototype: PointNavigation(goalRange: 0.5, horizon: 20), seed: 3, threads: threads)
            for _ in 0..<2 { _ = try sac.iterate() }
            return sac.state.agent.actor.flatParameters.values + sac.state.agent.critics.flatParameters.values
        }
        let one = try trained(threads: 1)
        #expect(try trained(threads: 2) == one)
    }
}

