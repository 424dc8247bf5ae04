import CancelWorkerTesting
import Crdkafka
import Foundation
import Synchronization
import Testing

@testable import Kafka

/// `restartStrandedPartitions`: an owned partition whose fetcher librdkafka lost (librdkafka
/// #2190: a fetch start overtaken by a pause or resume is dropped) fetches nothing until it is
/// given up and taken again. The tests strand a partition as that race leaves it — assigned to
/// the member, not paused, and no fetcher in librdkafka — by taking it out of librdkafka's
/// assignment behind the consumer's back (the race itself is a window of microseconds).
@Suite("Stranded partitions", .timeLimit(.minutes(2)))
struct KafkaStrandedPartitionTests {
    private struct Setup {
        let cluster: KafkaMockCluster
        let topic: String
        let group: String
        let producer: KafkaProducer
    }

    private func setup() async throws -> Setup {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("strand")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        return Setup(cluster: cluster, topic: topic, group: uniqueName("g"), producer: producer)
    }

    private func send(_ setup: Setup, partition: Int32, _ values: [String]) async throws {
        for value in values {
            _ = try await setup.producer.send(
                KafkaProducerMessage(topic: setup.topic, partition: partition, key: "k", value: value))
        }
    }

    /// Runs a consumer of `setup`'s topic in its group until `body` returns; `body` starts once
    /// the consumer owns both partitions.
    private func withConsumer(
        _ setup: Setup, bufferCapacity: Int? = nil, _ body: @Sendable (KafkaConsumer) async throws -> Void
    ) async throws {
        var configuration = consumerConfiguration(setup.cluster, group: setup.group)
        if let bufferCapacity { configuration.bufferCapacity = bufferCapacity }
        let listener = RecordingListener()
        let consumer = try KafkaConsumer(
            configuration: configuration, topics: [setup.topic], rebalanceListener: listener, logger: testLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.run() }
            #expect(try await eventually { listener.currentAssignment.count == 2 })
            try await body(consumer)
            consumer.close()
            try await group.waitForAll()
        }
    }

    /// Takes `partition` out of librdkafka's assignment (its fetcher stops) while the consumer
    /// still owns it, unpaused: the state a lost fetch start leaves.
    private func strand(_ consumer: KafkaConsumer, _ partition: KafkaTopicPartition) {
        let list = RDKafkaClient.makeList([partition])
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let error = rd_kafka_incremental_unassign(consumer.core.client.handle, list) {
            Issue.record("unassign failed: \(KafkaError(consuming: error))")
        }
    }

    /// Every record `consumer` delivers within `window`.
    private func drain(_ consumer: KafkaConsumer, for window: Duration) async throws -> [KafkaConsumerMessage] {
        try await withThrowingTaskGroup(of: [KafkaConsumerMessage].self) { group in
            let received = Mutex<[KafkaConsumerMessage]>([])
            group.addTask {
                for try await message in consumer.messages { received.withLock { $0.append(message) } }
                return []
            }
            try await Task.sleep(for: window)
            group.cancelAll()
            return received.withLock { $0 }
        }
    }

    /// Checks every 200 ms until a check restarts something (at most `limit`); what it restarted.
    private func restartWhenDue(
        _ consumer: KafkaConsumer, after threshold: Duration, limit: Duration = .seconds(20)
    ) async throws -> [KafkaTopicPartition] {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            let restarted = await consumer.restartStrandedPartitions(after: threshold)
            if !restarted.isEmpty { return restarted }
            try await Task.sleep(for: .milliseconds(200))
        }
        return []
    }

    @Test("a partition whose fetcher was lost is restarted where it was: every record once, in order")
    func restartsWhereItWas() async throws {
        let setup = try await self.setup()
        let stranded = KafkaTopicPartition(topic: setup.topic, partition: 1)
        try await self.withConsumer(setup) { consumer in
            try await self.send(setup, partition: 0, ["a0", "a1"])
            try await self.send(setup, partition: 1, ["b0", "b1", "b2"])
            let first = try await collect(consumer) { $0.count >= 5 }
            #expect(first.filter { $0.partition == 1 }.map(\.offset) == [0, 1, 2])

            self.strand(consumer, stranded)
            try await self.send(setup, partition: 1, ["b3", "b4", "b5", "b6"])
            try await self.send(setup, partition: 0, ["a2"])
            let whileStranded = try await self.drain(consumer, for: .milliseconds(1500))
            #expect(whileStranded.map(\.partition) == [0], "the other partition flows, the stranded one does not")

            let restarted = try await self.restartWhenDue(consumer, after: .seconds(1))
            #expect(restarted == [stranded])
            let after = try await collect(consumer) { $0.count >= 4 }
            #expect(after.allSatisfy { $0.partition == 1 })
            #expect(after.map(\.offset) == [3, 4, 5, 6], "continues after the last record delivered, none twice")
            #expect(await consumer.restartStrandedPartitions(after: .zero).isEmpty, "nothing else waits")
        }
        await setup.producer.shutdown()
    }

    /// Before flow control paused only the partitions that fill the buffer, the check skipped
    /// every partition while the buffer filled and drained (each flow resume counted as a fresh
    /// fetch start), so under sustained load a stranded partition waited for the load to drop;
    /// and the restarted partition's records could then wait behind the other's backlog.
    @Test("a partition stranded while flow control pauses and resumes the other all along is restarted")
    func restartsUnderFlowControl() async throws {
        let setup = try await self.setup()
        let stranded = KafkaTopicPartition(topic: setup.topic, partition: 1)
        try await self.withConsumer(setup, bufferCapacity: 4) { consumer in
            try await self.send(setup, partition: 1, ["b0"])
            _ = try await collect(consumer) { $0.count >= 1 }
            self.strand(consumer, stranded)
            try await self.send(setup, partition: 1, ["b1", "b2", "b3"])
            // Partition 0 holds far more than the buffer and is read at most 50 records a second:
            // the buffer fills and drains, and flow control pauses and resumes partition 0 every
            // few tens of milliseconds, all along.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<2_000 {
                    group.addTask {
                        _ = try await setup.producer.send(
                            KafkaProducerMessage(topic: setup.topic, partition: 0, key: "k", value: "a\(index)"))
                    }
                }
                try await group.waitForAll()
            }
            let reader = Task {
                var fromStranded: [Int64] = []
                var others = 0
                let end = ContinuousClock.now + .seconds(40)
                for try await message in consumer.messages {
                    if message.partition == 1 { fromStranded.append(message.offset) } else { others += 1 }
                    if fromStranded.count == 3 || ContinuousClock.now > end { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                return (fromStranded, others)
            }
            #expect(try await self.restartWhenDue(consumer, after: .seconds(1)) == [stranded])
            let (fromStranded, others) = try await reader.value
            #expect(fromStranded == [1, 2, 3], "\(others) records of partition 0 read meanwhile")
            #expect(others < 1_000, "the restarted partition's records did not wait for the other's backlog")
        }
        await setup.producer.shutdown()
    }

    @Test("a partition that fetched nothing since its assignment restarts at the group's committed offset")
    func restartsAtTheCommittedOffset() async throws {
        let setup = try await self.setup()
        let partition = KafkaTopicPartition(topic: setup.topic, partition: 1)
        try await self.send(setup, partition: 1, ["b0", "b1"])
        // A first member reads both records and commits them; the next member owns the
        // partition with nothing to fetch.
        try await self.withConsumer(setup) { first in
            _ = try await collect(first) { $0.count >= 2 }
            try await first.commit([KafkaTopicPartitionOffset(topicPartition: partition, offset: 2)])
        }
        try await self.withConsumer(setup) { consumer in
            self.strand(consumer, partition)
            try await self.send(setup, partition: 1, ["b2", "b3", "b4"])
            #expect(try await self.drain(consumer, for: .milliseconds(1500)).isEmpty)

            #expect(try await self.restartWhenDue(consumer, after: .seconds(1)) == [partition])
            let after = try await collect(consumer) { $0.count >= 3 }
            #expect(after.map(\.offset) == [2, 3, 4], "from the committed offset")
        }
        await setup.producer.shutdown()
    }

    @Test("a pause librdkafka holds that the consumer does not know of is lifted by the restart")
    func strayPauseIsLifted() async throws {
        let setup = try await self.setup()
        let partition = KafkaTopicPartition(topic: setup.topic, partition: 0)
        try await self.withConsumer(setup) { consumer in
            try await self.send(setup, partition: 0, ["a0"])
            _ = try await collect(consumer) { $0.count >= 1 }
            let list = RDKafkaClient.makeList([partition])
            rd_kafka_pause_partitions(consumer.core.client.handle, list)
            rd_kafka_topic_partition_list_destroy(list)
            try await self.send(setup, partition: 0, ["a1", "a2"])
            #expect(try await self.drain(consumer, for: .milliseconds(1500)).isEmpty)

            #expect(try await self.restartWhenDue(consumer, after: .seconds(1)) == [partition])
            let after = try await collect(consumer) { $0.count >= 2 }
            #expect(after.map(\.offset) == [1, 2])
        }
        await setup.producer.shutdown()
    }

    @Test("idle, flowing, paused and flow-controlled partitions are never restarted")
    func healthyPartitionsStay() async throws {
        let setup = try await self.setup()
        let paused = KafkaTopicPartition(topic: setup.topic, partition: 1)
        try await self.withConsumer(setup, bufferCapacity: 4) { consumer in
            @Sendable func checks(for window: Duration) async throws -> [KafkaTopicPartition] {
                var restarted: [KafkaTopicPartition] = []
                let end = ContinuousClock.now + window
                while ContinuousClock.now < end {
                    restarted += await consumer.restartStrandedPartitions(after: .milliseconds(300))
                    try await Task.sleep(for: .milliseconds(100))
                }
                return restarted
            }
            // Idle: nothing waits anywhere.
            #expect(try await checks(for: .seconds(1)).isEmpty)
            // Partition 1 paused by the application with records waiting; partition 0 flows.
            try await consumer.pause([paused])
            try await self.send(setup, partition: 1, ["b0", "b1"])
            let flowing = Task {
                for index in 0..<15 {
                    try await self.send(setup, partition: 0, ["a\(index)"])
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let reader = Task { try await collect(consumer) { $0.count >= 15 } }
            #expect(try await checks(for: .seconds(1.5)).isEmpty)
            try await flowing.value
            #expect(try await reader.value.allSatisfy { $0.partition == 0 })
            // Flow control: the buffer holds 4, the application takes nothing.
            try await self.send(setup, partition: 0, (0..<12).map { "c\($0)" })
            #expect(try await eventually { consumer.activity.fetchPaused })
            #expect(try await checks(for: .seconds(1)).isEmpty)
        }
        await setup.producer.shutdown()
    }

    @Test("the offset a restart resumes at: librdkafka's position, else after the records polled or handed out")
    func restartOffset() {
        let partition = KafkaTopicPartition(topic: "t", partition: 3)
        func record(_ offset: Int64, partition: Int32 = 3) -> KafkaConsumerMessage {
            KafkaConsumerMessage(
                topic: "t", partition: partition, offset: offset, key: nil, value: [], headers: [],
                timestampMilliseconds: 0)
        }
        var state = ConsumerCore.State()
        #expect(state.nextOffset(of: partition, polled: nil) == nil, "nothing known: the committed offset")
        #expect(state.nextOffset(of: partition, polled: KafkaTopicPartitionOffset.invalidOffset) == nil)
        state.positions[partition] = 7
        #expect(state.nextOffset(of: partition, polled: nil) == 7, "after the last record handed out")
        state.buffer.append(record(8))
        state.buffer.append(record(20, partition: 4))
        state.buffer.append(record(9))
        #expect(state.nextOffset(of: partition, polled: nil) == 10, "after the last record in the buffer")
        #expect(state.nextOffset(of: partition, polled: 12) == 12, "librdkafka's position when it has one")
    }
}
