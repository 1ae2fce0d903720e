import TensorCore

/// Trials for recurrent meta-learners (RL²), vectorised: each of N copies runs trials of
/// `episodesPerTrial` episodes of one task, and draws a new task when a trial ends.
///
/// The agent's input at every step is [observation, previous action (one-hot when
/// discrete), previous reward, done flag], where the done flag is 1 on the first step of
/// an episode that follows another episode of the same trial, and with `trialProgress` one
/// more entry: the fraction of the trial's episodes already done (0 in the first episode).
/// Two signals stay apart: ``taskStarted`` (a new trial and task: reset the agent's memory) and
/// ``episodeEnded`` (the episode ended but the task goes on: keep the memory).
public struct TrialEnv<E: MetaEnv> {
    @inlinable public var vector: VectorEnv<E> { _vector }
    @usableFromInline var _vector: VectorEnv<E>
    public let episodesPerTrial: Int
    public let actionSpace: Space
    /// Width of one agent input row.
    public let inputSize: Int
    /// Whether the inputs end with the fraction of the trial's episodes done.
    public let trialProgress: Bool
    /// [count × inputSize]: what the agent sees before its next action.
    @inlinable public var inputs: [Float] { _inputs }
    @usableFromInline var _inputs: [Float]
    /// Per copy: true when the next action is the first of a new trial (memory reset).
    @inlinable public var taskStarted: [Bool] { _taskStarted }
    @usableFromInline var _taskStarted: [Bool]
    /// Per copy, after a step: the step ended an episode.
    @inlinable public var episodeEnded: [Bool] { _episodeEnded }
    @usableFromInline var _episodeEnded: [Bool]
    /// Per copy, after a step: the step ended the trial (its last episode).
    @inlinable public var trialEnded: [Bool] { _trialEnded }
    @usableFromInline var _trialEnded: [Bool]
    /// Per copy, after a step: the episode ended by a true termination.
    @inlinable public var terminated: [Bool] { _vector._terminated }
    @inlinable public var rewards: [Float] { _vector._rewards }
    /// Each copy's success report for the last step (NaN where the family reports none).
    @inlinable public var successes: [Float] { _vector._successes }
    /// Each copy's expected reward for the last step (NaN where the family does not know it).
    @inlinable public var expectedRewards: [Float] { _vector._expectedRewards }
    /// Per copy: the index of the current episode inside the trial.
    @inlinable public var episodeIndex: [Int] { _episodeIndex }
    @usableFromInline var _episodeIndex: [Int]
    /// If set, trials draw tasks from this list in turn instead of sampling.
    public var fixedTasks: [E.Task]?
    @usableFromInline var nextFixedTask = 0
    /// The actions of steps started and not finished, by their range's first trial.
    @usableFromInline var _startedActions: [Int: [Float]] = [:]

    @inlinable public var count: Int { _vector.count }

    /// Floats per agent input: the observation, the previous action (one-hot for a discrete
    /// space, the vector itself for a box), the reward and the episode-done flag, and with
    /// `trialProgress` the fraction of the trial done.
    public static func inputSize(observationSpace: Space, actionSpace: Space, trialProgress: Bool = false) -> Int {
        let actionWidth: Int
        switch actionSpace {
        case .discrete(let n): actionWidth = n
        case .box: actionWidth = actionSpace.flatSize
        }
        return observationSpace.flatSize + actionWidth + 2 + (trialProgress ? 1 : 0)
    }

    @inlinable
    public init(_ prototype: E, count: Int, episodesPerTrial: Int, seed: UInt64, fixedTasks: [E.Task]? = nil, trialProgress: Bool = false) {
        precondition(episodesPerTrial >= 1, "TrialEnv: episodesPerTrial must be at least 1")
        _vector = VectorEnv(prototype, count: count, seed: seed)
        self.episodesPerTrial = episodesPerTrial
        actionSpace = prototype.actionSpace
        self.trialProgress = trialProgress
        inputSize = Self.inputSize(observationSpace: prototype.observationSpace, actionSpace: prototype.actionSpace, trialProgress: trialProgress)
        _inputs = [Float](repeating: 0, count: count * inputSize)
        _taskStarted = [Bool](repeating: true, count: count)
        _episodeEnded = [Bool](repeating: false, count: count)
        _trialEnded = _episodeEnded
        _episodeIndex = [Int](repeating: 0, count: count)
        self.fixedTasks = fixedTasks
        startTrials(Array(0..<count))
    }

    /// Starts a new trial in each copy of `indices` (ascending): its task (the next fixed one,
    /// or one drawn with the copy's generator), a reset, and its first input. Tasks and resets
    /// go in one batch each, so an environment in other processes answers them in one exchange.
    @inlinable
    mutating func startTrials(_ indices: [Int]) {
        guard !indices.isEmpty else { return }
        let tasks: [E.Task]
        if let fixedTasks, !fixedTasks.isEmpty {
            tasks = indices.indices.map { fixedTasks[(nextFixedTask + $0) % fixedTasks.count] }
            nextFixedTask += indices.count
        } else {
            tasks = _vector.sampleTasks(at: indices)
        }
        for (i, task) in zip(indices, tasks) { _vector.setTask(task, at: i) }
        _vector.reset(at: indices)
        for i in indices {
            _episodeIndex[i] = 0
            _taskStarted[i] = true
            writeInput(i, action: nil, reward: 0, done: false)
        }
    }

    /// The task copy `i` is running.
    @inlinable
    public func task(at i: Int) -> E.Task { _vector._envs[i].task }

    @inlinable
    mutating func writeInput(_ i: Int, action: UnsafeBufferPointer<Float>?, reward: Float, done: Bool) {
        let n = _vector.observationSize, base = i * inputSize
        for j in 0..<n { _inputs[base + j] = _vector._observations[i * n + j] }
        let actionWidth = inputSize - n - 2 - (trialProgress ? 1 : 0)
        for j in 0..<actionWidth { _inputs[base + n + j] = 0 }
        if let action {
            switch actionSpace {
            case .discrete: _inputs[base + n + Int(action[0])] = 1
            case .box: for j in 0..<actionWidth { _inputs[base + n + j] = action[j] }
            }
        }
        _inputs[base + n + actionWidth] = reward
        _inputs[base + n + actionWidth + 1] = done ? 1 : 0
        if trialProgress { _inputs[base + n + actionWidth + 2] = Float(_episodeIndex[i]) / Float(episodesPerTrial) }
    }

    /// Steps every copy with its row of `actions` [count × action flat size].
    @inlinable
    public mutating func step(_ actions: UnsafeBufferPointer<Float>) throws(EnvError) {
        try _vector.step(actions)
        advance(0..<count, actions: actions)
    }

    /// Starts the step of the trials in `range` with their rows of `actions` [range.count ×
    /// action flat size] and returns while a family that steps apart from its caller (the
    /// Python bridge) works; ``finishStep(trials:)`` completes it. Steps of disjoint ranges
    /// may be under way at once.
    @inlinable
    public mutating func startStep(_ actions: UnsafeBufferPointer<Float>, trials range: Range<Int>) throws(EnvError) {
        try _vector.startStep(actions, copies: range)
        _startedActions[range.lowerBound] = Array(actions)
    }

    /// Completes the step ``startStep(_:trials:)`` started on `range`: the same outcome, for
    /// those trials, as `step(_:)` gives every copy.
    @inlinable
    public mutating func finishStep(trials range: Range<Int>) throws(EnvError) {
        guard let actions = _startedActions.removeValue(forKey: range.lowerBound) else {
            preconditionFailure("TrialEnv.finishStep: no step was started on trials \(range)")
        }
        try _vector.finishStep(copies: range)
        actions.withUnsafeBufferPointer { advance(range, actions: $0) }
    }

    /// After a step of the copies in `range` (their action rows in `actions`, from the first):
    /// counts episodes, starts the next trial where one ended, and writes the next inputs.
    @inlinable
    mutating func advance(_ range: Range<Int>, actions: UnsafeBufferPointer<Float>) {
        let m = _vector.actionSize
        var trialsEnded: [Int] = []
        for i in range {
            _taskStarted[i] = false
            let ended = _vector._terminated[i] || _vector._truncated[i]
            _episodeEnded[i] = ended
            _trialEnded[i] = false
            let local = i - range.lowerBound
            let action = UnsafeBufferPointer(rebasing: actions[(local * m)..<((local + 1) * m)])
            if ended {
                _episodeIndex[i] += 1
                if _episodeIndex[i] == episodesPerTrial {
                    _trialEnded[i] = true
                    trialsEnded.append(i)
                    continue
                }
            }
            writeInput(i, action: action, reward: _vector._rewards[i], done: ended)
        }
        startTrials(trialsEnded)
    }

    @inlinable
    public mutating func step(_ actions: [Float]) throws(EnvError) {
        try actions.withUnsafeBufferPointer { (a: UnsafeBufferPointer<Float>) throws(EnvError) in try step(a) }
    }
}
