/// The mean of a sample and the standard error of that mean (sample standard deviation
/// over √n), as reported beside every evaluation figure.
public struct SampleStatistics: Codable, Sendable, Equatable {
    public var mean: Double
    public var standardError: Double
    public var count: Int

    public init<C: Collection>(_ values: C) where C.Element == Double {
        count = values.count
        let n = Double(Swift.max(count, 1))
        let m = values.reduce(0, +) / n
        mean = m
        let variance = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(Swift.max(count - 1, 1))
        standardError = (variance / n).squareRoot()
    }
}
