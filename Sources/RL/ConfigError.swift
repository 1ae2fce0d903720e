/// A setting outside what an algorithm accepts: names the field, the value given and what
/// is allowed, so `metarl` can print it as one line.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var field: String
    public var value: String
    public var allowed: String

    public init(field: String, value: String, allowed: String) {
        self.field = field
        self.value = value
        self.allowed = allowed
    }

    public var description: String { "\(field): \(value) is not allowed; allowed: \(allowed)" }

    /// Throws unless `value` lies in the closed range.
    public static func check<T: Comparable & CustomStringConvertible>(
        _ field: String, _ value: T, _ range: ClosedRange<T>, note: String? = nil
    ) throws(ConfigError) {
        guard range.contains(value) else {
            throw ConfigError(field: field, value: "\(value)",
                              allowed: "\(range.lowerBound)…\(range.upperBound)" + (note.map { " (\($0))" } ?? ""))
        }
    }

    /// Throws unless `value` lies strictly above the range's lower bound and below its upper bound.
    public static func check(_ field: String, _ value: Double, open range: Range<Double>) throws(ConfigError) {
        guard value > range.lowerBound && value < range.upperBound, value.isFinite else {
            throw ConfigError(field: field, value: "\(value)",
                              allowed: "greater than \(range.lowerBound) and less than \(range.upperBound)")
        }
    }
}
