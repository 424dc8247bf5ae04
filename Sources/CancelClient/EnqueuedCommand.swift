public import CancelCore

/// Where Kafka stored an enqueued command, once every in-sync replica acknowledged it.
public struct EnqueuedCommand: Sendable, Hashable, CustomStringConvertible {
    /// The key its outcome will carry.
    public var idempotencyKey: String
    /// `provider:account`: the record's Kafka key.
    public var kafkaKey: String
    public var topic: String
    public var partition: Int32
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
    public var outcome: CancelOutcome
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
