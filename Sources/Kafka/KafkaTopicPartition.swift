/// A partition of a topic: the unit of assignment, ordering and offset commits.
public struct KafkaTopicPartition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(self.topic)[\(self.partition)]" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }
}

/// A partition with an offset: for commits, the offset is the *next* one to consume.
public struct KafkaTopicPartitionOffset: Sendable, Hashable, CustomStringConvertible {
    public var topicPartition: KafkaTopicPartition
    public var offset: Int64

    public init(topicPartition: KafkaTopicPartition, offset: Int64) {
        self.topicPartition = topicPartition
        self.offset = offset
    }

    public init(topic: String, partition: Int32, offset: Int64) {
        self.init(topicPartition: KafkaTopicPartition(topic: topic, partition: partition), offset: offset)
    }

    public var topic: String { self.topicPartition.topic }
    public var partition: Int32 { self.topicPartition.partition }

    public var description: String { "\(self.topicPartition)@\(self.offset)" }

    /// Marker librdkafka uses for "no offset" (nothing committed yet).
    public static let invalidOffset: Int64 = -1001
    /// Marker for the start of a partition, for `seek`.
    public static let beginning: Int64 = -2
    /// Marker for the end of a partition, for `seek`.
    public static let end: Int64 = -1
}

/// Low and high watermark of a partition: the first offset still stored and the offset the
/// next produced record will get. `high - committed` is a group's lag.
public struct KafkaWatermarks: Sendable, Hashable {
    public var low: Int64
    public var high: Int64

    public init(low: Int64, high: Int64) {
        self.low = low
        self.high = high
    }
}
