/// A training algorithm as `Runs` drives it: a value whose `Codable` state is everything
/// needed to continue, and one `iterate()` that performs an iteration and returns its
/// metrics in a fixed order. Logging, checkpoints, resume and progress are the loop's job.
public protocol IterativeAlgorithm {
    associatedtype State: Codable
    /// Everything a checkpoint saves.
    var state: State { get set }
    /// Iterations completed.
    var iteration: Int { get }
    /// Environment steps taken so far.
    var environmentSteps: Int { get }
    /// The name of the headline metric (printed in the progress line).
    var headlineMetric: String { get }
    /// One iteration; returns (name, value) pairs, the same names in the same order every time.
    mutating func iterate() throws -> [(String, Double)]
}

/// Training produced a non-finite value.
public struct NonFiniteError: Error, CustomStringConvertible {
    public var iteration: Int
    public var quantity: String
    public init(iteration: Int, quantity: String) {
        self.iteration = iteration
        self.quantity = quantity
    }
    public var description: String { "iteration \(iteration): \(quantity) is NaN or infinite; stopping (the last good checkpoint is kept)" }
}
