/// What a component that produces records needs of a producer: send one and wait for its
/// acknowledgement, and a topic's partition count. `KafkaProducer` is the real one; a stand-in
/// (`CancelWorkerTesting.RecordingProducer`) lets the worker's pipeline run in a unit test
/// without a broker.
public protocol KafkaProducing: Sendable {
    /// Sends `message` and returns once the cluster acknowledged it (or refused it).
    func send(_ message: KafkaProducerMessage) async throws(KafkaError) -> KafkaDeliveryReport
    /// The number of partitions of `topic`, from metadata.
    func partitionCount(topic: String, timeout: Duration) async throws(KafkaError) -> Int
}

extension KafkaProducer: KafkaProducing {}
