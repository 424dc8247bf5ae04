import CancelWorkerTesting
import Foundation
import Kafka
import Testing

/// `checkProgress`: what a readiness probe asks — do records wait that the application does
/// not get?
@Suite("Consumer progress (stall detection)", .timeLimit(.minutes(2)))
struct KafkaConsumerProgressTests {
    /// Checks `consumer` every 100 ms for `window` and returns every answer (an observation
    /// window for what must *not* happen).
    private func observe(
        _ consumer: KafkaConsumer, stallAfter: Duration, for window: Duration
    ) async throws -> [KafkaConsumerProgress] {
        var answers: [KafkaConsumerProgress] = []
        let end = ContinuousClock.now + window
        while ContinuousClock.now < end {
            answers.append(await consumer.checkProgress(stallAfter: stallAfter))
            try await Task.sleep(for: .milliseconds(100))
        }
        return answers
    }

    @Test("records that wait untaken make a stall after the threshold; taking one ends it")
    func stallAndRecovery() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = try await filledTopic(cluster, named: "stall", count: 20)
        let partition = KafkaTopicPartition(topic: topic, partition: 0)

        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: uniqueName("g")), topics: [topic], logger: testLogger)
        #expect(try await eventually { consumer.assignment == [partition] })
        let threshold = Duration.seconds(1)
        let first = await consumer.checkProgress(stallAfter: threshold)
        #expect(first.lag == [partition: 20], "nothing delivered nor committed: from the low watermark")
        #expect(first.waitingSince != nil && !first.isStalled && first.lastDelivery == nil)

        let started = ContinuousClock.now
        #expect(try await eventually { await consumer.checkProgress(stallAfter: threshold).isStalled })
        #expect(ContinuousClock.now - started >= threshold - .milliseconds(200))
        let stalled = await consumer.checkProgress(stallAfter: threshold)
        #expect(stalled.isStalled && stalled.lag == [partition: 20] && stalled.waitingSince == first.waitingSince)

        // The application takes a record: progress, and the wait is timed anew.
        let taken = try await collect(consumer) { $0.count >= 1 }
        #expect(taken.map(\.offset) == [0])
        #expect(consumer.activity.positions == [partition: 1] && consumer.activity.lastDelivery != nil)
        let after = await consumer.checkProgress(stallAfter: threshold)
        #expect(!after.isStalled && after.lag == [partition: 19])
        let firstWait = try #require(first.waitingSince)
        #expect(try #require(after.waitingSince) > firstWait)
        consumer.close()
    }

    @Test("a caught-up idle consumer is never stalled, by its positions or by the committed offsets")
    func idleWithoutLag() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("idle")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        for index in 0..<6 {
            _ = try await producer.send(
                KafkaProducerMessage(topic: topic, partition: Int32(index % 2), key: "k", value: "value-\(index)"))
        }
        await producer.shutdown()
        let group = uniqueName("g")
        let threshold = Duration.milliseconds(300)

        // Positions: it took every record.
        let first = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: group), topics: [topic], logger: testLogger)
        let taken = try await collect(first) { $0.count >= 6 }
        for answer in try await self.observe(first, stallAfter: threshold, for: threshold * 4) {
            #expect(!answer.isStalled && answer.lag == [:] && answer.waitingSince == nil, "\(answer)")
        }
        var commits: [KafkaTopicPartition: KafkaTopicPartitionOffset] = [:]
        for message in taken { commits[message.topicPartition] = message.nextOffset }
        try await first.commit(Array(commits.values))
        first.close()

        // Committed offsets: a new member that has received nothing.
        let second = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: group), topics: [topic], logger: testLogger)
        #expect(try await eventually { second.assignment.count == 2 })
        for answer in try await self.observe(second, stallAfter: threshold, for: threshold * 4) {
            #expect(!answer.isStalled && answer.lag == [:] && answer.waitingSince == nil, "\(answer)")
        }
        #expect(second.activity.lastDelivery == nil)
        second.close()
    }

    @Test("a partition the application paused does not count as waiting")
    func applicationPauseIsNoStall() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = try await filledTopic(cluster, named: "held", count: 10)
        let partition = KafkaTopicPartition(topic: topic, partition: 0)

        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: uniqueName("g")), topics: [topic], logger: testLogger)
        #expect(try await eventually { consumer.assignment == [partition] })
        try await consumer.pause([partition])
        let threshold = Duration.milliseconds(300)
        for answer in try await self.observe(consumer, stallAfter: threshold, for: threshold * 4) {
            #expect(!answer.isStalled && answer.lag == [:], "\(answer)")
        }
        try await consumer.resume([partition])
        #expect(
            try await eventually { await consumer.checkProgress(stallAfter: threshold).isStalled },
            "resumed, the untaken records count again")
        consumer.close()
    }
}
