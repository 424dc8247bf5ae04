public import Kafka
import Synchronization

/// A producer that keeps what it is sent, in order, and acknowledges each record at once with
/// the next offset of its partition (the key's murmur2 partition when none is given) — or
/// refuses the next sends with the errors it was told to. For running the worker's pipeline
/// without a broker.
public final class RecordingProducer: KafkaProducing {
    private struct State {
        var records: [KafkaProducerMessage] = []
        var nextOffsets: [String: Int64] = [:]
        var refusals: [KafkaError] = []
    }

    private let state = Mutex(State())
    /// Partitions per topic; topics not named have `defaultPartitions`.
    public let partitions: [String: Int]
    public let defaultPartitions: Int

    public init(partitions: [String: Int] = [:], defaultPartitions: Int = 6) {
        self.partitions = partitions
        self.defaultPartitions = defaultPartitions
    }

    /// Every acknowledged record, in the order it was sent.
    public var records: [KafkaProducerMessage] { self.state.withLock { $0.records } }

    /// The acknowledged records of one topic.
    public func records(topic: String) -> [KafkaProducerMessage] { self.records.filter { $0.topic == topic } }

    /// The next sends fail with these errors, one each, in order.
    public func refuseNext(_ errors: [KafkaError]) { self.state.withLock { $0.refusals += errors } }

    public func send(_ message: KafkaProducerMessage) async throws(KafkaError) -> KafkaDeliveryReport {
        let count = self.partitions[message.topic] ?? self.defaultPartitions
        let partition =
            message.partition ?? message.key.map { KafkaPartitioner.partition(forKey: $0, partitionCount: count) } ?? 0
        let result: Result<KafkaDeliveryReport, KafkaError> = self.state.withLock { state in
            if !state.refusals.isEmpty { return .failure(state.refusals.removeFirst()) }
            let slot = "\(message.topic)/\(partition)"
            let offset = state.nextOffsets[slot, default: 0]
            state.nextOffsets[slot] = offset + 1
            var stored = message
            stored.partition = partition
            state.records.append(stored)
            return .success(KafkaDeliveryReport(topic: message.topic, partition: partition, offset: offset))
        }
        return try result.get()
    }

    public func partitionCount(topic: String, timeout: Duration) async throws(KafkaError) -> Int {
        self.partitions[topic] ?? self.defaultPartitions
    }
}
