import Synchronization

/// Told about partition assignment changes, on the consumer's `run()` task, *before* librdkafka
/// moves on. A revocation handler can therefore finish in-flight work for the revoked
/// partitions and commit their offsets before another group member receives them; the
/// partitions are released only when it returns (or after
/// `KafkaConsumerConfiguration.rebalanceHandlerTimeout`).
public protocol KafkaRebalanceListener: Sendable {
    /// New partitions are assigned. Records fetched from them carry `generation` or later.
    func partitionsAssigned(_ partitions: [KafkaTopicPartition], generation: UInt64) async
    /// These partitions are being taken away. Records fetched before carry an older generation;
    /// any still buffered in the consumer were dropped and will be redelivered to the new owner.
    func partitionsRevoked(_ partitions: [KafkaTopicPartition], generation: UInt64) async
}

/// One rebalance step handed from the poll thread to `KafkaConsumer.run()`.
final class RebalanceWork: Sendable {
    enum Event {
        case assigned([KafkaTopicPartition], generation: UInt64)
        case revoked([KafkaTopicPartition], generation: UInt64)
    }

    let event: Event
    private let done: Mutex<Bool> = Mutex(false)
    private let onComplete: @Sendable () -> Void

    init(event: Event, onComplete: @escaping @Sendable () -> Void) {
        self.event = event
        self.onComplete = onComplete
    }

    var isDone: Bool { self.done.withLock { $0 } }

    func complete() {
        self.done.withLock { $0 = true }
        self.onComplete()
    }
}
