import TensorCore

/// The Harlow task: each task shows two never-seen objects (random Gaussian feature
/// vectors), one of them rewarded. An episode is one choice: the two objects appear left
/// and right and the agent picks a side (0 left, 1 right); the rewarded object pays
/// +5, the other −5 (`terminated` after the choice). Over the `episodesPerTask` episodes
/// (six) the rewarded object is on the left in half and on the right in half, in shuffled
/// order, so reward follows the object, not the side. Observation: [left, right] features.
/// With `balancedSides` false each episode's side is an independent coin flip instead, which
/// removes the published version's side channel (after five choices the sixth side is known
/// from the count alone).
public struct Harlow: MetaEnv, Sendable {
    public struct Task: Codable, Sendable, Equatable {
        /// The two objects' features, object 0 then object 1.
        public var objects: [[Float]]
        public var rewardedObject: Int
        /// For each episode, whether object 0 is on the left.
        public var objectZeroLeft: [Bool]
        public init(objects: [[Float]], rewardedObject: Int, objectZeroLeft: [Bool]) {
            self.objects = objects
            self.rewardedObject = rewardedObject
            self.objectZeroLeft = objectZeroLeft
        }
    }

    public let featureSize: Int
    public let episodesPerTask: Int
    public let balancedSides: Bool
    public private(set) var task: Task
    @inlinable public var episodeInTask: Int { _episodeInTask }
    @usableFromInline var _episodeInTask: Int = 0
    @usableFromInline var started = false

    public init(featureSize: Int = 8, episodesPerTask: Int = 6, balancedSides: Bool = true) {
        self.featureSize = featureSize
        self.episodesPerTask = episodesPerTask
        self.balancedSides = balancedSides
        task = Task(objects: [[Float](repeating: 1, count: featureSize), [Float](repeating: -1, count: featureSize)],
                    rewardedObject: 0, objectZeroLeft: (0..<episodesPerTask).map { $0 % 2 == 0 })
    }

    public var observationSpace: Space { .box(low: -.infinity, high: .infinity, shape: [2 * featureSize]) }
    public var actionSpace: Space { .discrete(2) }
    public var maxEpisodeSteps: Int { 1 }

    public func sampleTasks(_ n: Int, using rng: inout Xoshiro256) -> [Task] {
        (0..<n).map { _ in
            let objects = (0..<2).map { _ in (0..<featureSize).map { _ in Float(rng.normal()) } }
            let rewarded = rng.uniformInt(below: 2)
            // The rewarded object on the left in half the episodes, order shuffled.
            var rewardedLeft = (0..<episodesPerTask).map { $0 < episodesPerTask / 2 }
            if balancedSides {
                for i in stride(from: rewardedLeft.count - 1, to: 0, by: -1) {
                    rewardedLeft.swapAt(i, rng.uniformInt(below: i + 1))
                }
            } else {
                for i in rewardedLeft.indices { rewardedLeft[i] = rng.uniformInt(below: 2) == 0 }
            }
            return Task(objects: objects, rewardedObject: rewarded,
                        objectZeroLeft: rewardedLeft.map { rewarded == 0 ? $0 : !$0 })
        }
    }

    public mutating func setTask(_ task: Task) {
        self.task = task
        _episodeInTask = 0
        started = false
    }

    @inlinable
    public mutating func reset(observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256) {
        if started { _episodeInTask += 1 }
        started = true
        let zeroLeft = task.objectZeroLeft[_episodeInTask % task.objectZeroLeft.count]
        let left = task.objects[zeroLeft ? 0 : 1], right = task.objects[zeroLeft ? 1 : 0]
        for j in 0..<featureSize {
            observation[j] = left[j]
            observation[featureSize + j] = right[j]
        }
    }

    @inlinable
    public mutating func step(
        _ action: UnsafeBufferPointer<Float>, observation: UnsafeMutableBufferPointer<Float>, using rng: inout Xoshiro256
    ) throws(EnvError) -> StepOutcome {
        let side = try discreteAction(action, count: 2, environment: "harlow")
        let zeroLeft = task.objectZeroLeft[_episodeInTask % task.objectZeroLeft.count]
        let chosen = (side == 0) == zeroLeft ? 0 : 1
        return StepOutcome(reward: chosen == task.rewardedObject ? 5 : -5, terminated: true, truncated: false)
    }
}

extension Harlow {
    /// The `harlow` family.
    public static let family = TaskFamily(
        name: "harlow", summary: "Harlow task: two novel objects, one rewarded (+5/−5), sides shuffled",
        arguments: [.integer("features", default: 8, in: 1...1024, help: "feature vector size of an object"),
                    .integer("episodes-per-task", default: 6, in: 2...100, help: "choices per task"),
                    .integer("balanced-sides", default: 1, in: 0...1,
                             help: "1: rewarded object left in exactly half the episodes (published); 0: a coin flip each")]
    ) { Harlow(featureSize: $0.int("features"), episodesPerTask: $0.int("episodes-per-task"), balancedSides: $0.flag("balanced-sides")) }
}
