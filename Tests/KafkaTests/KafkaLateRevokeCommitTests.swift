import CancelWorkerTesting
import Synchronization
import Testing

@testable import Kafka

/// Review finding (the Kafka layer): a revoke listener that returns after
/// `rebalanceHandlerTimeout` (a drain, then a ledger flush that took its time) committed its
/// partitions while the member was rejoining, with the old generation. The coordinator answered
/// `ILLEGAL_GENERATION`, which librdkafka 2.0 takes for a lost assignment: the member gave up
/// every partition, the ones it was to keep too, and the group was left with none owned.
@Suite("A revoke listener past its timeout", .timeLimit(.minutes(2)))
struct KafkaLateRevokeCommitTests {
    /// Revokes: waits `delay`, then commits the revoked partitions; what the commit answered.
    final class LateCommitter: KafkaRebalanceListener {
        let consumer = Mutex<KafkaConsumer?>(nil)
        let commits = Mutex<[String]>([])
        let delay: Duration

        init(delay: Duration) { self.delay = delay }

        func partitionsAssigned(_ partitions: [KafkaTopicPartition], generation: UInt64) async {}

        func partitionsRevoked(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
            guard let consumer = self.consumer.withLock({ $0 }), !partitions.isEmpty else { return }
            try? await Task.sleep(for: self.delay)
            do {
                try await consumer.commit(partitions.map { KafkaTopicPartitionOffset(topicPartition: $0, offset: 1) })
                self.commits.withLock { $0.append("committed") }
            } catch {
                self.commits.withLock { $0.append("\(error.name)") }
            }
        }
    }

    @Test("its commit is refused; the partitions it keeps stay its own and the joiner gets the others")
    func lateCommitIsRefused() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("late")
        try cluster.createTopic(topic, partitions: 4)
        let group = uniqueName("g")
        var configuration = consumerConfiguration(cluster, group: group)
        configuration.rebalanceHandlerTimeout = .seconds(1)
        let listener = LateCommitter(delay: .milliseconds(1_300))
        let first = try KafkaConsumer(
            configuration: configuration, topics: [topic], rebalanceListener: listener, logger: testLogger)
        listener.consumer.withLock { $0 = first }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await first.run() }
            #expect(try await eventually(timeout: .seconds(30)) { first.assignment.count == 4 })
            let joiner = try KafkaConsumer(
                configuration: consumerConfiguration(cluster, group: group), topics: [topic],
                rebalanceListener: RecordingListener(), logger: testLogger)
            tasks.addTask { try await joiner.run() }
            let shared = try await eventually(timeout: .seconds(30)) {
                first.assignment.count == 2 && joiner.assignment.count == 2
            }
            #expect(shared, "first \(first.assignment), joiner \(joiner.assignment)")
            #expect(listener.commits.withLock { $0 }.first == "_ASSIGNMENT_LOST", "\(listener.commits.withLock { $0 })")
            // And it stays so: the late commit did not make the first member give up its own.
            try await Task.sleep(for: .seconds(3))
            #expect(first.assignment.count == 2 && joiner.assignment.count == 2)
            first.close()
            joiner.close()
            try await tasks.waitForAll()
        }
    }
}
