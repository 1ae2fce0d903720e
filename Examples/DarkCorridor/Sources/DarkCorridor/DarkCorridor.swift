import Envs
import TensorCore

/// A dark corridor: `length` cells, the agent starts in the middle and sees only where it
/// is; one other cell, drawn per task, is the exit (+1, the episode ends); every step costs
/// `stepCost`. In a trial of several episodes the first must search both ways, the later
/// ones can walk straight to the exit they found.
public struct DarkCorridor: MetaEnv, Sendable {
    public struct Task: Codable, Sendable, Equatable { public var exit: Int }

    public let length: Int
    public let stepCost: Float
    public private(set) var task = Task(exit: 0)
    var position = 0, steps = 0
    var start: Int { length / 2 }

    public init(length: Int, stepCost: Float) { self.length = length; self.stepCost = stepCost }

    public var observationSpace: Space { .box(low: 0, high: 1, shape: [1]) }
    /// 0: step left, 1: stay, 2: step right.
    public var actionSpace: Space { .discrete(3) }
    public var maxEpisodeSteps: Int { 3 * length }

    public func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task] {
        (0..<n).map { _ in
            let cell = rng.uniformInt(below: length - 1)
            return Task(exit: cell < start ? cell : cell + 1)
        }
    }
    public mutating func setTask(_ task: Task) { self.task = task }

    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        position = start; steps = 0; observation[0] = Float(start) / Float(length - 1)
    }

    public mutating func step(_ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>,
                              using rng: inout Xoshiro256) throws(EnvError) -> StepOutcome {
        let move = try discreteAction(action, count: 3, environment: "dark-corridor") - 1
        position = min(max(position + move, 0), length - 1)
        steps += 1
        observation[0] = Float(position) / Float(length - 1)
        let found = position == task.exit
        return StepOutcome(reward: (found ? 1 : 0) - stepCost, terminated: found, truncated: !found && steps == maxEpisodeSteps)
    }

    /// The family as `--env dark-corridor` names it.
    public static let family = TaskFamily(
        name: "dark-corridor", summary: "a dark corridor with its exit at a random cell (example of a user family)",
        arguments: [.integer("length", default: 6, in: 2...1000, help: "cells"),
                    .real("step-cost", default: 0.05, in: 0...1, help: "cost of each step")]
    ) { DarkCorridor(length: $0.int("length"), stepCost: Float($0.real("step-cost"))) }
}
