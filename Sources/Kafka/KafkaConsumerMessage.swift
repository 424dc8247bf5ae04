/// A record as the consumer delivers it.
public struct KafkaConsumerMessage: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Producer or log-append time, milliseconds since the epoch (`-1` when the broker had none).
    public var timestampMilliseconds: Int64
    /// The consumer's assignment generation when this record was fetched. It changes on every
    /// assignment and revocation, so work that began before a rebalance can be recognised.
    public var generation: UInt64

    public init(
        topic: String,
        partition: Int32,
        offset: Int64,
        key: [UInt8]?,
        value: [UInt8],
        headers: [KafkaHeader] = [],
        timestampMilliseconds: Int64 = -1,
        generation: UInt64 = 0
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
        self.generation = generation
    }

    public var topicPartition: KafkaTopicPartition {
        KafkaTopicPartition(topic: self.topic, partition: self.partition)
    }

    /// The key as UTF-8 text, if present and valid.
    public var keyString: String? {
        self.key.flatMap { String(validating: $0, as: UTF8.self) }
    }

    /// The offset to commit once this record is done.
    public var nextOffset: KafkaTopicPartitionOffset {
        KafkaTopicPartitionOffset(topicPartition: self.topicPartition, offset: self.offset + 1)
    }
}
