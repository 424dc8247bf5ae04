import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Synchronization
import Testing

/// A rebalance listener that returns after `rebalanceHandlerTimeout` (a worker's revoke still
/// draining when the next assignment comes): the rebalance goes on without it, but the records
/// of the partitions it was told about wait until it returned. Handed out before, they reached
/// a worker with no scope for their partition yet, which skipped them, and the offsets it later
/// committed passed them: commands lost without an error.
@Suite("A rebalance listener that returns late", .timeLimit(.minutes(2)))
struct KafkaLateListenerTests {
    final class SlowAssignListener: KafkaRebalanceListener {
        let returned = OneShot<ContinuousClock.Instant>()
        let delay: Duration

        init(delay: Duration) { self.delay = delay }

        func partitionsAssigned(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
            guard !partitions.isEmpty else { return }
            try? await Task.sleep(for: self.delay)
            self.returned.set(.now)
        }

        func partitionsRevoked(_ partitions: [KafkaTopicPartition], generation: UInt64) async {}
    }

    @Test("no record of a newly assigned partition is handed out before its listener returned; then all of them")
    func recordsWaitForTheListener() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = try await filledTopic(cluster, named: "late", count: 10)
        var configuration = consumerConfiguration(cluster, group: uniqueName("g"))
        configuration.rebalanceHandlerTimeout = .seconds(1)
        let listener = SlowAssignListener(delay: .seconds(4))
        let consumer = try KafkaConsumer(
            configuration: configuration, topics: [topic], rebalanceListener: listener, logger: testLogger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await consumer.run() }
            var received: [(offset: Int64, at: ContinuousClock.Instant)] = []
            let deadline = ContinuousClock.now + .seconds(40)
            for try await message in consumer.messages {
                received.append((message.offset, .now))
                if received.count == 10 || ContinuousClock.now > deadline { break }
            }
            #expect(received.map(\.offset) == Array(0..<10), "every record, in order")
            let returned = try #require(await listener.returned.wait(timeout: .seconds(20)), "the listener returned")
            let early = received.filter { $0.at < returned }.map(\.offset)
            #expect(early.isEmpty, "handed out before the listener returned: \(early)")
            consumer.close()
            try await tasks.waitForAll()
        }
    }
}
