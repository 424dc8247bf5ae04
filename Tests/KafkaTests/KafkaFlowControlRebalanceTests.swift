import CancelWorkerTesting
import Foundation
import Testing

@testable import Kafka

/// Issue 12 item 3: fetching paused for a full buffer must resume however the buffer empties,
/// not only when the application takes records from it.
@Suite("Flow control when the buffer empties without the application", .timeLimit(.minutes(5)))
struct KafkaFlowControlRebalanceTests {
    /// Two one-partition topics: the hot one holds 200 records, far more than a 10-record buffer;
    /// the cold one nothing yet.
    static func hotAndCold() async throws -> (KafkaMockCluster, hot: String, cold: String, KafkaProducer) {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let hot = uniqueName("hot")
        let cold = uniqueName("cold")
        try cluster.createTopic(hot, partitions: 1)
        try cluster.createTopic(cold, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        try await produce(producer, topic: hot, count: 200)
        return (cluster, hot, cold, producer)
    }

    @Test(
        "a revoke that drops the full buffer resumes fetching of the partitions that stay",
        arguments: ["cooperative-sticky", "range"]
    )
    func revokeDroppingTheBufferResumesFetching(strategy: String) async throws {
        let (cluster, hot, cold, producer) = try await Self.hotAndCold()
        let hotPartition = KafkaTopicPartition(topic: hot, partition: 0)
        let coldPartition = KafkaTopicPartition(topic: cold, partition: 0)

        var configuration = consumerConfiguration(cluster, group: uniqueName("g"))
        configuration.assignmentStrategy = strategy
        var configurationA = configuration
        configurationA.bufferCapacity = 10
        let listenerA = RecordingListener()
        let consumerA = try KafkaConsumer(
            configuration: configurationA, topics: [cold, hot], rebalanceListener: listenerA, logger: testLogger)
        let listenerB = RecordingListener()

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await consumerA.run() }
            // A fills its buffer with hot records and pauses fetching; its application takes none.
            #expect(try await eventually(timeout: .seconds(30)) { consumerA.activity.fetchPaused })

            // B subscribes to the hot topic only, so the rebalance takes the hot partition from
            // A (cooperative) or everything (eager): either way A drops every buffered record.
            let consumerB = try KafkaConsumer(
                configuration: configuration, topics: [hot], rebalanceListener: listenerB, logger: testLogger)
            tasks.addTask { try await consumerB.run() }
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    let eventsA = listenerA.events.withLock { $0 }
                    guard eventsA.contains(where: { !$0.assigned }) else { return false }
                    if strategy == "cooperative-sticky" {
                        // The partition whose records filled A's buffer moved; A keeps the other.
                        return listenerB.currentAssignment == [hotPartition]
                            && listenerA.currentAssignment == [coldPartition]
                    }
                    return eventsA.last?.assigned == true && listenerA.currentAssignment.contains(coldPartition)
                        && listenerB.events.withLock { $0.contains(where: \.assigned) }
                })
            if strategy == "cooperative-sticky" {
                #expect(consumerA.activity.buffered == 0, "A dropped the moved partition's records")
            }

            // New records for the partition A kept: A fetches and delivers them.
            try await produce(producer, topic: cold, count: 5)
            let received = try await collect(consumerA, timeout: .seconds(20)) { received in
                received.filter { $0.topic == cold }.count >= 5
            }
            #expect(
                received.filter { $0.topic == cold }.map(\.offset) == Array(0..<5),
                "A resumed fetching \(coldPartition)")

            consumerA.close()
            consumerB.close()
            try await tasks.waitForAll()
        }
        await producer.shutdown()
    }

    /// librdkafka keeps a pause across a revoke, and the consumer resumes on assignment only the
    /// partitions it had paused (a resume of a fresh assignment can overtake its fetch start,
    /// librdkafka #2190): a partition flow control paused must fetch again when it comes back.
    @Test("a partition flow control paused, revoked and assigned again fetches again")
    func flowPausedPartitionComesBack() async throws {
        let (cluster, hot, cold, producer) = try await Self.hotAndCold()
        await producer.shutdown()
        let hotPartition = KafkaTopicPartition(topic: hot, partition: 0)

        let configuration = consumerConfiguration(cluster, group: uniqueName("g"))
        var configurationA = configuration
        configurationA.bufferCapacity = 10
        let listenerA = RecordingListener()
        let consumerA = try KafkaConsumer(
            configuration: configurationA, topics: [cold, hot], rebalanceListener: listenerA, logger: testLogger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await consumerA.run() }
            #expect(try await eventually(timeout: .seconds(30)) { consumerA.activity.fetchPaused })

            // B takes the hot partition while A holds it paused, then leaves: it comes back to A.
            let listenerB = RecordingListener()
            let consumerB = try KafkaConsumer(
                configuration: configuration, topics: [hot], rebalanceListener: listenerB, logger: testLogger)
            let runB = Task { try await consumerB.run() }
            #expect(try await eventually(timeout: .seconds(60)) { listenerB.currentAssignment == [hotPartition] })
            consumerB.close()
            try await runB.value
            #expect(
                try await eventually(timeout: .seconds(60)) { listenerA.currentAssignment.contains(hotPartition) })
            // The partition librdkafka still held paused from before its revoke was resumed with
            // the assignment (before the listener heard of it). Its records may have filled the
            // buffer since, and flow control paused it again: then it is flow control's to resume
            // (fresh-clone CI run 90 saw that; without the resume it is paused and not flow control's).
            #expect(
                consumerA.core.state.withLock {
                    !$0.pausedInLibrdkafka.contains(hotPartition) || $0.flowPaused.contains(hotPartition)
                }, "the partition that came back was resumed")

            // Nothing was committed: A reads the hot partition from its start, all of it. The
            // resume of the partition that came back can itself overtake its fetch start
            // (librdkafka #2190): the worker's stranded-partition check restarts such a fetch, so
            // it runs here as in the worker (fresh-clone CI run 86: nothing in 20 s without it).
            let checks = Task {
                var restarted: [KafkaTopicPartition] = []
                while !Task.isCancelled {
                    restarted += await consumerA.restartStrandedPartitions(after: .seconds(3))
                    try? await Task.sleep(for: .milliseconds(500))
                }
                return restarted
            }
            let received = try await collect(consumerA, timeout: .seconds(60)) { received in
                received.contains { $0.topic == hot && $0.offset == 199 }
            }
            checks.cancel()
            let restarted = await checks.value
            #expect(restarted.allSatisfy { $0 == hotPartition }, "only the partition that came back: \(restarted)")
            let offsets = received.filter { $0.topic == hot }.map(\.offset)
            #expect(offsets.last == 199, "A fetched the partition that came back")
            #expect(offsets == Array(0...199), "from its start, once each")
            consumerA.close()
            try await tasks.waitForAll()
        }
    }

    /// A consumer of one partition holding 200 records, its 10-record buffer full and fetching
    /// paused (its application takes nothing).
    static func pausedConsumer(
        _ name: String
    ) async throws -> (
        KafkaMockCluster, KafkaTopicPartition, KafkaConsumer
    ) {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = try await filledTopic(cluster, named: name, count: 200)
        var configuration = consumerConfiguration(cluster, group: uniqueName("g"))
        configuration.bufferCapacity = 10
        let consumer = try KafkaConsumer(configuration: configuration, topics: [topic], logger: testLogger)
        #expect(try await eventually(timeout: .seconds(30)) { consumer.activity.fetchPaused })
        return (cluster, KafkaTopicPartition(topic: topic, partition: 0), consumer)
    }

    @Test("a seek that drops the full buffer resumes fetching")
    func seekDroppingTheBufferResumesFetching() async throws {
        let (cluster, partition, consumer) = try await Self.pausedConsumer("seek")
        defer { withExtendedLifetime(cluster) {} }

        // Every buffered record belongs to the partition that moves: the buffer empties.
        // (Fetching resumes at once, so the buffer may hold the new position's records already.)
        try await consumer.seek([KafkaTopicPartitionOffset(topicPartition: partition, offset: 150)])
        let received = try await collect(consumer, timeout: .seconds(20)) { $0.count >= 50 }
        #expect(received.map(\.offset) == Array(150..<200))
        consumer.close()
    }

    /// Regression: a fresh-clone CI run failed "a seek that drops the full buffer resumes
    /// fetching" with `_TIMED_OUT`: in the first seconds, with every suite starting on two cores,
    /// librdkafka's broker thread did not confirm the seek within 5 s. The seek had been issued
    /// (librdkafka sets its version barrier at once) and would have been applied; throwing told
    /// the caller it had not. Here the confirmation wait is 1 ms, which the broker thread often
    /// misses even on a quiet host: every seek must return, and fetching continue from it.
    @Test("regression: a seek librdkafka has not confirmed in time still stands, and is not an error")
    func unconfirmedSeekStands() async throws {
        let (cluster, partition, consumer) = try await Self.pausedConsumer("seek-unconfirmed")
        defer { withExtendedLifetime(cluster) {} }
        for start in stride(from: 100, through: 190, by: 10) {
            try await consumer.seek(
                [KafkaTopicPartitionOffset(topicPartition: partition, offset: Int64(start))],
                confirmationWait: .milliseconds(1))
        }
        let received = try await collect(consumer, timeout: .seconds(20)) { $0.contains { $0.offset == 199 } }
        #expect(received.first?.offset == 190, "the last seek decides where fetching continues")
        #expect(received.map(\.offset) == Array(190..<200))
        consumer.close()
    }
}
