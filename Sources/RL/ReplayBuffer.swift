import TensorCore

/// A ring buffer of transitions (s, a, r, s′, terminal) for off-policy learning: once full,
/// each new transition overwrites the oldest. Its storage grows by doubling as transitions
/// arrive, up to `capacity`, so a large capacity (PEARL's per-task buffers, 10⁶ each in
/// oyster) costs only what is filled; a step allocates nothing except at those few doublings.
///
/// `terminal` marks a true end (no bootstrapping past it); a time-limit cut is stored as
/// not terminal, with s′ the last observation.
public struct ReplayBuffer: Sendable {
    public let capacity: Int
    public let observationSize: Int
    public let actionSize: Int
    /// Transitions held (at most `capacity`).
    public private(set) var count = 0
    /// The slot the next transition goes into.
    public private(set) var nextSlot = 0
    var observations: [Float]
    var actions: [Float]
    var rewards: [Float]
    var nextObservations: [Float]
    var terminals: [Float]

    public init(capacity: Int, observationSize: Int, actionSize: Int) {
        precondition(capacity >= 1 && observationSize >= 1 && actionSize >= 1, "ReplayBuffer: sizes must be positive")
        self.capacity = capacity
        self.observationSize = observationSize
        self.actionSize = actionSize
        observations = []
        actions = []
        rewards = []
        nextObservations = []
        terminals = []
    }

    /// Slots the storage holds now (≤ capacity).
    var allocatedSlots: Int { rewards.count }

    /// Grows the storage to at least `slots` slots, doubling (from 1 024) up to `capacity`.
    mutating func reserveSlots(_ slots: Int) {
        guard slots > allocatedSlots else { return }
        let target = Swift.min(capacity, Swift.max(slots, 1024, 2 * allocatedSlots))
        let extra = target - allocatedSlots
        observations.append(contentsOf: repeatElement(0, count: extra * observationSize))
        nextObservations.append(contentsOf: repeatElement(0, count: extra * observationSize))
        actions.append(contentsOf: repeatElement(0, count: extra * actionSize))
        rewards.append(contentsOf: repeatElement(0, count: extra))
        terminals.append(contentsOf: repeatElement(0, count: extra))
    }

    /// Stores one transition in the next slot (overwriting the oldest when full).
    public mutating func add(observation: UnsafeBufferPointer<Float>, action: UnsafeBufferPointer<Float>, reward: Float,
                             nextObservation: UnsafeBufferPointer<Float>, terminal: Bool) {
        let slot = nextSlot, n = observationSize, m = actionSize
        if slot >= allocatedSlots { reserveSlots(slot + 1) }
        observations.withUnsafeMutableBufferPointer { o in
            for j in 0..<n { o[slot * n + j] = observation[j] }
        }
        nextObservations.withUnsafeMutableBufferPointer { o in
            for j in 0..<n { o[slot * n + j] = nextObservation[j] }
        }
        actions.withUnsafeMutableBufferPointer { a in
            for j in 0..<m { a[slot * m + j] = action[j] }
        }
        rewards[slot] = reward
        terminals[slot] = terminal ? 1 : 0
        nextSlot = (slot + 1) % capacity
        count = Swift.min(count + 1, capacity)
    }

    /// Stores one transition given as arrays (tests, scripts).
    public mutating func add(observation: [Float], action: [Float], reward: Float, nextObservation: [Float], terminal: Bool) {
        observation.withUnsafeBufferPointer { o in
            action.withUnsafeBufferPointer { a in
                nextObservation.withUnsafeBufferPointer { n in
                    add(observation: o, action: a, reward: reward, nextObservation: n, terminal: terminal)
                }
            }
        }
    }

    /// Forgets every transition (PEARL's context buffer is refilled per collection).
    public mutating func removeAll() {
        count = 0
        nextSlot = 0
    }

    /// The slots in order from oldest to newest.
    public var chronologicalSlots: [Int] {
        count < capacity ? Array(0..<count) : (0..<capacity).map { (nextSlot + $0) % capacity }
    }

    /// `n` slots drawn uniformly with replacement.
    public func sampleSlots(_ n: Int, using rng: inout Xoshiro256) -> [Int] {
        precondition(count > 0, "ReplayBuffer.sample: the buffer is empty")
        return (0..<n).map { _ in rng.uniformInt(below: count) }
    }

    /// The transitions in `slots`, as tensors.
    public func batch(_ slots: [Int]) -> TransitionBatch {
        func gather(_ source: [Float], width: Int) -> Tensor {
            var out = [Float](repeating: 0, count: slots.count * width)
            source.withUnsafeBufferPointer { s in
                for (row, slot) in slots.enumerated() {
                    for j in 0..<width { out[row * width + j] = s[slot * width + j] }
                }
            }
            return Tensor(shape: [slots.count, width], values: out)
        }
        return TransitionBatch(
            observations: gather(observations, width: observationSize), actions: gather(actions, width: actionSize),
            rewards: gather(rewards, width: 1).reshaped([slots.count]),
            nextObservations: gather(nextObservations, width: observationSize),
            terminals: gather(terminals, width: 1).reshaped([slots.count]))
    }

    /// The transitions in `slots` as flat rows (s, a, r, s′), and the terminal flag after
    /// them if `withTerminal`: PEARL's encoder inputs, and the checkpoint layout.
    public func transitionRows(_ slots: [Int], withTerminal: Bool = false) -> [Float] {
        let n = observationSize, m = actionSize, width = 2 * n + m + 1 + (withTerminal ? 1 : 0)
        var rows = [Float](repeating: 0, count: slots.count * width)
        for (row, slot) in slots.enumerated() {
            var k = row * width
            for j in 0..<n { rows[k] = observations[slot * n + j]; k += 1 }
            for j in 0..<m { rows[k] = actions[slot * m + j]; k += 1 }
            rows[k] = rewards[slot]; k += 1
            for j in 0..<n { rows[k] = nextObservations[slot * n + j]; k += 1 }
            if withTerminal { rows[k] = terminals[slot] }
        }
        return rows
    }

    /// A buffer of the same capacity and sizes holding nothing (an evaluation export's).
    public var emptied: ReplayBuffer { ReplayBuffer(capacity: capacity, observationSize: observationSize, actionSize: actionSize) }

    /// `n` transitions drawn uniformly with replacement.
    public func sample(_ n: Int, using rng: inout Xoshiro256) -> TransitionBatch {
        batch(sampleSlots(n, using: &rng))
    }
}

extension ReplayBuffer: Equatable {
    /// Two buffers are equal when they hold the same transitions in the same slots, whatever
    /// storage each has grown so far.
    public static func == (a: ReplayBuffer, b: ReplayBuffer) -> Bool {
        a.capacity == b.capacity && a.observationSize == b.observationSize && a.actionSize == b.actionSize
            && a.count == b.count && a.nextSlot == b.nextSlot
            && a.transitionRows(Array(0..<a.count), withTerminal: true) == b.transitionRows(Array(0..<b.count), withTerminal: true)
    }
}

/// A checkpoint that cannot be trained further: an evaluation export (`metarl export`),
/// whose replay buffers were dropped.
public struct EvaluationExportError: Error, CustomStringConvertible {
    public var description: String

    /// Throws unless `buffers` could continue a run at `iteration`: a run past its first
    /// iteration has filled some buffer, so all of them empty means an export.
    public static func requireReplay(_ buffers: [ReplayBuffer], iteration: Int, algorithm: String) throws {
        guard iteration == 0 || buffers.contains(where: { $0.count > 0 }) else {
            throw EvaluationExportError(description: "this \(algorithm) checkpoint is an evaluation export (`metarl export` dropped its replay "
                + "buffers): it can be evaluated and plotted, not resumed; resume the run it was exported from")
        }
    }
}

/// A minibatch of transitions: observations and next observations [N, obs], actions
/// [N, act], rewards and terminal flags (1 = true end) [N].
public struct TransitionBatch {
    public var observations: Tensor
    public var actions: Tensor
    public var rewards: Tensor
    public var nextObservations: Tensor
    public var terminals: Tensor

    /// The transitions in `rows` (the whole batch itself when `rows` covers it).
    public func rows(_ rows: Range<Int>) -> TransitionBatch {
        guard rows != 0..<observations.shape[0] else { return self }
        return TransitionBatch(observations: observations.slice(axis: 0, rows), actions: actions.slice(axis: 0, rows),
                               rewards: rewards.slice(axis: 0, rows), nextObservations: nextObservations.slice(axis: 0, rows),
                               terminals: terminals.slice(axis: 0, rows))
    }

    /// The rows of several batches one after another (PEARL's meta-batch).
    public static func concatenated(_ parts: [TransitionBatch]) -> TransitionBatch {
        TransitionBatch(observations: .concat(parts.map(\.observations), axis: 0), actions: .concat(parts.map(\.actions), axis: 0),
                        rewards: .concat(parts.map(\.rewards), axis: 0),
                        nextObservations: .concat(parts.map(\.nextObservations), axis: 0),
                        terminals: .concat(parts.map(\.terminals), axis: 0))
    }
}

extension ReplayBuffer: Codable {
    enum CodingKeys: String, CodingKey { case capacity, observationSize, actionSize, count, nextSlot, transitions }

    /// Stores the filled slots only, in slot order (so a resumed run samples the same slots),
    /// as one [count, obs + act + 1 + obs + 1] tensor.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(capacity, forKey: .capacity)
        try c.encode(observationSize, forKey: .observationSize)
        try c.encode(actionSize, forKey: .actionSize)
        try c.encode(count, forKey: .count)
        try c.encode(nextSlot, forKey: .nextSlot)
        let rows = transitionRows(Array(0..<count), withTerminal: true)
        try c.encode(Tensor(shape: [count, 2 * observationSize + actionSize + 2], values: rows), forKey: .transitions)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let capacity = try c.decode(Int.self, forKey: .capacity)
        let n = try c.decode(Int.self, forKey: .observationSize), m = try c.decode(Int.self, forKey: .actionSize)
        guard (1...100_000_000).contains(capacity), (1...1_000_000).contains(n), (1...1_000_000).contains(m) else {
            throw DecodingError.dataCorruptedError(forKey: .capacity, in: c, debugDescription: "replay buffer sizes out of range")
        }
        let count = try c.decode(Int.self, forKey: .count), nextSlot = try c.decode(Int.self, forKey: .nextSlot)
        let width = 2 * n + m + 2
        let rows = try c.decode(Tensor.self, forKey: .transitions)
        guard (0...capacity).contains(count), (0..<capacity).contains(nextSlot), count == capacity || nextSlot == count,
              rows.shape == [count, width], rows.dtype == .float32
        else { throw DecodingError.dataCorruptedError(forKey: .transitions, in: c, debugDescription: "replay buffer contents do not match its counters") }
        self.init(capacity: capacity, observationSize: n, actionSize: m)
        reserveSlots(count)
        let values = rows.values
        for slot in 0..<count {
            var k = slot * width
            for j in 0..<n { observations[slot * n + j] = values[k]; k += 1 }
            for j in 0..<m { actions[slot * m + j] = values[k]; k += 1 }
            rewards[slot] = values[k]; k += 1
            for j in 0..<n { nextObservations[slot * n + j] = values[k]; k += 1 }
            terminals[slot] = values[k]
        }
        self.count = count
        self.nextSlot = nextSlot
    }
}
