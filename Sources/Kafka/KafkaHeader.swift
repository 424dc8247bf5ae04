/// One Kafka record header. Values are bytes; most of ours are UTF-8 text.
public struct KafkaHeader: Sendable, Hashable {
    public var name: String
    public var value: [UInt8]?

    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    public init(name: String, string: String) {
        self.init(name: name, value: Array(string.utf8))
    }

    /// The value as UTF-8 text, if it is valid UTF-8.
    public var stringValue: String? {
        self.value.flatMap { String(validating: $0, as: UTF8.self) }
    }
}

extension Array where Element == KafkaHeader {
    /// The value of the last header with this name (Kafka allows repeats; the last one wins).
    public func string(_ name: String) -> String? {
        self.last { $0.name == name }?.stringValue
    }

    /// Replaces every header with this name by one with the given value.
    public mutating func set(_ name: String, _ value: String) {
        self.removeAll { $0.name == name }
        self.append(KafkaHeader(name: name, string: value))
    }
}
