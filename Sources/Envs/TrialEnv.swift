import TensorCore

/// Trials for recurrent meta-learners (RL²), vectorised: each of N copies runs trials of
/// `episodesPerTrial` episodes of one task, and draws a new task when a trial ends.
///
/// The agent's input at every step is [observation, previous action (one-hot when
/// discrete), previous reward, done flag], where the done flag is 1 on the first step of
/// an episode that follows another episode of the same trial. Two signals stay apart:
/// ``taskStarted`` (a new trial and task: reset the agent's memory) and
/// ``episodeEnded`` (the episode ended but the task goes on: keep the memory).
public struct TrialEnv<E: MetaEnv> {
    public private(set) var vector: VectorEnv<E>
    public let episodesPerTrial: Int
    public let actionSpace: Space
    /// Width of one agent input row.
    public let inputSize: Int
    /// [count × inputSize]: what the agent sees before its next action.
    public private(set) var inputs: [Float]
    /// Per copy: true when the next action is the first of a new trial (memory reset).
    public private(set) var taskStarted: [Bool]
    /// Per copy, after a step: the step ended an episode.
    public private(set) var episodeEnded: [Bool]
    /// Per copy, after a step: the step ended the trial (its last episode).
    public private(set) var trialEnded: [Bool]
    /// Per copy, after a step: the episode ended by a true termination.
    public var terminated: [Bool] { vector.terminated }
    public var rewards: [Float] { vector.rewards }
    /// Per copy: the index of the current episode inside the trial.
    public private(set) var episodeIndex: [Int]
    /// If set, trials draw tasks from this list in turn instead of sampling.
    public var fixedTasks: [E.Task]?
    var nextFixedTask = 0

    public var count: Int { vector.count }

    public init(_ prototype: E, count: Int, episodesPerTrial: Int, seed: UInt64, fixedTasks: [E.Task]? = nil) {
        precondition(episodesPerTrial >= 1, "TrialEnv: episodesPerTrial must be at least 1")
        vector = VectorEnv(prototype, count: count, seed: seed)
        self.episodesPerTrial = episodesPerTrial
        actionSpace = prototype.actionSpace
        let actionWidth: Int
        switch prototype.actionSpace {
        case .discrete(let n): actionWidth = n
        case .box: actionWidth = prototype.actionSpace.flatSize
        }
        inputSize = vector.observationSize + actionWidth + 2
        inputs = [Float](repeating: 0, count: count * inputSize)
        taskStarted = [Bool](repeating: true, count: count)
        episodeEnded = [Bool](repeating: false, count: count)
        trialEnded = episodeEnded
        episodeIndex = [Int](repeating: 0, count: count)
        self.fixedTasks = fixedTasks
        for i in 0..<count { startTrial(i) }
    }

    mutating func startTrial(_ i: Int) {
        let task: E.Task
        if let fixedTasks, !fixedTasks.isEmpty {
            task = fixedTasks[nextFixedTask % fixedTasks.count]
            nextFixedTask += 1
        } else {
            task = vector.sampleTask(at: i)
        }
        vector.setTask(task, at: i)
        vector.reset(at: i)
        episodeIndex[i] = 0
        taskStarted[i] = true
        writeInput(i, action: nil, reward: 0, done: false)
    }

    /// The task copy `i` is running.
    public func task(at i: Int) -> E.Task { vector.envs[i].task }

    mutating func writeInput(_ i: Int, action: UnsafeBufferPointer<Float>?, reward: Float, done: Bool) {
        let n = vector.observationSize, base = i * inputSize
        for j in 0..<n { inputs[base + j] = vector.observations[i * n + j] }
        let actionWidth = inputSize - n - 2
        for j in 0..<actionWidth { inputs[base + n + j] = 0 }
        if let action {
            switch actionSpace {
            case .discrete: inputs[base + n + Int(action[0])] = 1
            case .box: for j in 0..<actionWidth { inputs[base + n + j] = action[j] }
            }
        }
        inputs[base + n + actionWidth] = reward
        inputs[base + n + actionWidth + 1] = done ? 1 : 0
    }

    /// Steps every copy with its row of `actions` [count × action flat size].
    public mutating func step(_ actions: UnsafeBufferPointer<Float>) throws(InvalidAction) {
        try vector.step(actions)
        let m = vector.actionSize
        for i in 0..<count {
            taskStarted[i] = false
            let ended = vector.terminated[i] || vector.truncated[i]
            episodeEnded[i] = ended
            trialEnded[i] = false
            let action = UnsafeBufferPointer(rebasing: actions[(i * m)..<((i + 1) * m)])
            if ended {
                episodeIndex[i] += 1
                if episodeIndex[i] == episodesPerTrial {
                    trialEnded[i] = true
                    startTrial(i)
                    continue
                }
            }
            writeInput(i, action: action, reward: vector.rewards[i], done: ended)
        }
    }

    public mutating func step(_ actions: [Float]) throws(InvalidAction) {
        try actions.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(InvalidAction) in try step(a) }
    }
}
