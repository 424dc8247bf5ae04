import CancelWorkerTesting
import Synchronization
import Testing

@testable import Kafka

/// Review finding (the Kafka layer): a partition just assigned fetches only once the coordinator
/// answered where its group stands, and librdkafka refuses a seek before that (`_STATE`). On a
/// slow coordinator the replayer's `--from-beginning` seek from `partitionsAssigned` failed,
/// unnoticed (`try?`), and the run read on from the committed offset.
@Suite("A seek from the assignment's listener", .timeLimit(.minutes(2)))
struct KafkaSeekOnAssignTests {
    final class SeekingListener: KafkaRebalanceListener {
        let consumer = Mutex<KafkaConsumer?>(nil)
        let seeks = Mutex<[String]>([])

        func partitionsAssigned(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
            guard !partitions.isEmpty, let consumer = self.consumer.withLock({ $0 }) else { return }
            do {
                try await consumer.seek(
                    partitions.map {
                        KafkaTopicPartitionOffset(topicPartition: $0, offset: KafkaTopicPartitionOffset.beginning)
                    })
                self.seeks.withLock { $0.append("ok") }
            } catch {
                self.seeks.withLock { $0.append("\(error.name)") }
            }
        }

        func partitionsRevoked(_ partitions: [KafkaTopicPartition], generation: UInt64) async {}
    }

    @Test("on a coordinator 300 ms away the seek waits for the fetch to start and reads from the beginning")
    func seekOnSlowCoordinator() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = try await filledTopic(cluster, named: "seek", count: 10)
        let group = uniqueName("g")
        // The group has read everything.
        let queries = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: group), topics: [], logger: testLogger)
        try await queries.commit([KafkaTopicPartitionOffset(topic: topic, partition: 0, offset: 10)])
        queries.close()
        try cluster.setBrokerRoundTrip(1, .milliseconds(300))
        let listener = SeekingListener()
        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: group), topics: [topic], rebalanceListener: listener,
            logger: testLogger)
        listener.consumer.withLock { $0 = consumer }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await consumer.run() }
            let received = try await collect(consumer, timeout: .seconds(30)) { $0.count >= 10 }
            #expect(listener.seeks.withLock { $0 } == ["ok"])
            #expect(received.map(\.offset) == Array(0..<10))
            consumer.close()
            try await tasks.waitForAll()
        }
    }
}
