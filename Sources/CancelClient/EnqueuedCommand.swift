public import CancelCore

/// Where Kafka stored an enqueued command, once every in-sync replica acknowledged it.
public struct EnqueuedCommand: Sendable, Hashable, CustomStringConvertible {
    /// The key its outcome will carry.
    public var idempotencyKey: String
    /// `provider:account`: the record's Kafka key.
    public var kafkaKey: String
    /// The commands topic.
    public var topic: String
    /// The partition the murmur2 partitioner chose for `kafkaKey`: the user's partition.
    public var partition: Int32
    /// The record's offset in that partition.
    public var offset: Int64

    public init(idempotencyKey: String, kafkaKey: String, topic: String, partition: Int32, offset: Int64) {
        self.idempotencyKey = idempotencyKey
        self.kafkaKey = kafkaKey
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    public var description: String { "\(self.idempotencyKey) \(self.topic)[\(self.partition)]@\(self.offset)" }
}

/// An outcome read from the outcomes topic, with where it was stored (for a service that keeps
/// its own reading position across restarts).
public struct ReceivedOutcome: Sendable, Hashable {
    /// The outcome (`cancel-outcome.v1`).
    public var outcome: CancelOutcome
    /// Where it was stored in the outcomes topic: keep the next offset (`offset + 1`) per
    /// partition to read on from there with `OutcomePosition.offsets`.
    public var partition: Int32
    public var offset: Int64
    /// The record's timestamp, milliseconds since the epoch (`-1` when the broker had none).
    public var timestampMilliseconds: Int64

    public init(outcome: CancelOutcome, partition: Int32, offset: Int64, timestampMilliseconds: Int64) {
        self.outcome = outcome
        self.partition = partition
        self.offset = offset
        self.timestampMilliseconds = timestampMilliseconds
    }
}
