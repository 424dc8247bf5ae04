import CancelWorkerTesting
import Foundation
import Kafka
import Testing

/// `close()` while the member joins the group. librdkafka 2.0 aborts the process in
/// `rd_kafka_destroy` (`rdkafka_sticky_assignor.c:1896: Assertion 'assignor_state' failed`) when
/// a cooperative-sticky consumer is closed after its JoinGroup answer and before its first
/// SyncGroup answer (librdkafka#4312): a regression here ends the whole test run with SIGABRT.
@Suite("Closing a consumer during a join", .timeLimit(.minutes(2)))
struct KafkaCloseDuringJoinTests {
    /// A consumer of a fresh group on `topic` whose first SyncGroup `failedSyncs` fail, so that
    /// its JoinGroup is answered (the assignor chosen) long before its first assignment.
    private func joiningConsumer(
        _ cluster: KafkaMockCluster, topic: String, failedSyncs: Int, closeJoinWait: Duration? = nil,
        listener: RecordingListener
    ) throws -> KafkaConsumer {
        // REBALANCE_IN_PROGRESS: the member rejoins, and the mock coordinator waits for it again.
        try cluster.pushRequestErrors(.syncGroup, errors: Array(repeating: 27, count: failedSyncs))
        var configuration = consumerConfiguration(cluster, group: uniqueName("g"))
        if let closeJoinWait { configuration.closeJoinWait = closeJoinWait }
        return try KafkaConsumer(
            configuration: configuration, topics: [topic], rebalanceListener: listener, logger: testLogger)
    }

    /// Runs `consumer` until `close()` is called once its JoinGroup is answered; returns how
    /// long the close took.
    private func closeOnceJoinAnswered(_ consumer: KafkaConsumer) async throws -> Duration {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await consumer.run() }
            // The mock coordinator hands out the member id with its JoinGroup answer.
            #expect(
                try await eventually(timeout: .seconds(20)) { !consumer.memberID.isEmpty }, "the JoinGroup is answered")
            let asked = ContinuousClock.now
            consumer.close()
            try await tasks.waitForAll()
            return ContinuousClock.now - asked
        }
    }

    @Test("closed between its JoinGroup and SyncGroup answers, a member completes the join, then leaves in order")
    func joinCompletesThenLeaves() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("join")
        try cluster.createTopic(topic, partitions: 2)
        let listener = RecordingListener()
        let partitions = Set((0..<2).map { KafkaTopicPartition(topic: topic, partition: Int32($0)) })
        do {
            let consumer = try self.joiningConsumer(cluster, topic: topic, failedSyncs: 1, listener: listener)
            let took = try await self.closeOnceJoinAnswered(consumer)
            #expect(took < .seconds(10), "the close waited for the join only (\(took))")
            let events = listener.events.withLock { $0 }
            #expect(
                events.map(\.assigned) == [true, false], "assigned once the join completed, then revoked by the close")
            #expect(events.allSatisfy { Set($0.partitions) == partitions })
        }
        // The consumer is gone and its handle destroyed (where the abort would happen), once its
        // poll thread lets go of it.
        try await Task.sleep(for: .milliseconds(300))
    }

    @Test("a join that does not complete within closeJoinWait: the close goes ahead and nothing aborts")
    func joinWaitRunsOut() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("stuck")
        try cluster.createTopic(topic, partitions: 2)
        let listener = RecordingListener()
        do {
            let consumer = try self.joiningConsumer(
                cluster, topic: topic, failedSyncs: 6, closeJoinWait: .seconds(1), listener: listener)
            let took = try await self.closeOnceJoinAnswered(consumer)
            #expect(took >= .seconds(1) && took < .seconds(8), "closed after the join wait (\(took))")
            #expect(listener.events.withLock { $0 }.isEmpty, "never assigned")
        }
        try await Task.sleep(for: .milliseconds(300))
    }
}
