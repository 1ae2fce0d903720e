/// A setting chosen by name from a fixed list (a recurrent cell, an optimiser). Decoding
/// an unknown name fails with a message that lists the allowed names.
public protocol NamedChoice: RawRepresentable, CaseIterable, Codable, Sendable where RawValue == String {}

extension NamedChoice {
    /// The allowed names, comma-separated, in declaration order.
    public static var allowedNames: String { allCases.map(\.rawValue).joined(separator: ", ") }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let name = try container.decode(String.self)
        guard let value = Self(rawValue: name) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\"\(name)\" is not allowed; allowed: \(Self.allowedNames)")
        }
        self = value
    }
}
