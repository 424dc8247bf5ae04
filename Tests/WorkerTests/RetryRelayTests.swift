import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Logging
import Synchronization
import Testing

@testable import Worker

/// Review finding (the Kafka layer): a retry-tier partition pauses while it holds records that
/// wait for their due time and resumes when it holds none. The resume of the record that left
/// and the pause of one that arrived could reach the consumer in either order; a resume arriving
/// last left the partition fetching while a record waited, and every later tier record took an
/// in-flight permit to sleep until it was due.
@Suite("Retry tier partitions: pauses and resumes", .timeLimit(.minutes(1)))
struct RetryRelayTests {
    @Test("a record arriving while the last one's resume is on its way: the partition ends paused")
    func resumeRacingPause() async throws {
        let clock = ManualClock()
        var configuration = WorkerConfiguration(bootstrapServers: "unused:9092")
        configuration.workerID = "unit"
        let logger = Logger(label: "relay") { _ in SwiftLogNoOpLogHandler() }
        let applied = Mutex<[String]>([])
        let resuming = Atomic<Bool>(false)
        let partition = KafkaTopicPartition(topic: configuration.topics.retryTopic("5s"), partition: 0)
        let relay = RetryRelay(
            configuration: configuration,
            router: RecordRouter(producer: RecordingProducer(), configuration: configuration, logger: logger),
            logger: logger,
            pause: { _ in applied.withLock { $0.append("pause") } },
            // The consumer takes a while to apply a resume: a pause submitted meanwhile lands first.
            resume: { _ in
                resuming.store(true, ordering: .relaxed)
                try? await Task.sleep(for: .milliseconds(300))
                applied.withLock { $0.append("resume") }
            },
            answerRefused: { _, _, _ in true }, clock: clock)
        let scope = PartitionScope(
            partition: partition, generation: 1, limits: configuration.rateLimits, clock: clock)
        func record(dueIn seconds: Double, offset: Int64) -> KafkaConsumerMessage {
            var message = KafkaConsumerMessage(
                topic: partition.topic, partition: 0, offset: offset, key: Array("fastpod:acct".utf8),
                value: command(order: "r\(offset)").encoded())
            message.headers.set(
                WorkerHeaders.retryDueAt, String(Timestamp.milliseconds(clock.date.addingTimeInterval(seconds))))
            message.headers.set(WorkerHeaders.retryPartition, "0")
            return message
        }
        let first = Task { await relay.process(record(dueIn: 1, offset: 0), scope: scope) }
        #expect(try await eventually { applied.withLock { $0 } == ["pause"] })
        await clock.waitForSleepers()
        clock.advance(by: .seconds(1))
        // The first record is due: its resume is on its way when the second arrives. (Not a
        // fixed sleep: on a loaded host the second came before the first had left, and the
        // partition rightly stayed paused with no resume to race.)
        #expect(try await eventually(timeout: .seconds(10)) { resuming.load(ordering: .relaxed) })
        let second = Task { await relay.process(record(dueIn: 4, offset: 1), scope: scope) }
        #expect(await first.value)
        #expect(try await eventually(timeout: .seconds(5)) { applied.withLock { $0 }.count >= 3 })
        try await Task.sleep(for: .milliseconds(500))
        #expect(
            applied.withLock { $0 }.last == "pause",
            "the partition fetches while a record waits: \(applied.withLock { $0 })")
        scope.revoke()
        _ = await second.value
    }

    /// Review finding (the worker's flow control): past the longest tier, the record went back to
    /// the commands topic with its due time and waited there in process, up to a day.
    @Test("review finding: a record due beyond the longest tier waits its turn there, then goes round it again")
    func roundTheLongestTier() async throws {
        let clock = ManualClock()
        let (relay, configuration, producer) = Self.relay(tiers: ["5s", "1m"], clock: clock)
        let partition = KafkaTopicPartition(topic: configuration.topics.retryTopic("1m"), partition: 0)
        let scope = PartitionScope(partition: partition, generation: 1, limits: [:], clock: clock)
        var message = KafkaConsumerMessage(
            topic: partition.topic, partition: 0, offset: 0, key: Array("feee:acct".utf8),
            value: command(.feee, order: "far").encoded())
        let due = String(Timestamp.milliseconds(clock.date.addingTimeInterval(3_600)))
        message.headers.set(WorkerHeaders.retryDueAt, due)
        message.headers.set(WorkerHeaders.retryTier, "1m")
        message.headers.set(WorkerHeaders.retryPartition, "0")
        message.headers.set(WorkerHeaders.lastFailureAt, String(Timestamp.milliseconds(clock.date)))
        let processing = Task { await relay.process(message, scope: scope) }
        await clock.waitForSleepers()
        clock.advance(by: .seconds(60) - .milliseconds(1))
        #expect(producer.records.isEmpty, "its turn: the tier's delay from its parking")
        clock.advance(by: .milliseconds(1))
        #expect(await processing.value)
        let again = try #require(producer.records.first)
        #expect(again.topic == partition.topic, "round the longest tier again, not to \(again.topic)")
        #expect(again.headers.string(WorkerHeaders.retryDueAt) == due)
        #expect(again.headers.string(WorkerHeaders.lastFailureAt) == String(Timestamp.milliseconds(clock.date)))
        #expect(producer.records(topic: configuration.topics.commands).isEmpty)
    }
    /// Review finding (CancelCore): the relay read a record's tier only from its header; a
    /// record in a tier topic without `cw.retry.tier` or `cw.last-failure-at` (another producer,
    /// an older worker), or naming a tier no longer configured, waited there until due — up to
    /// two days at the head of the tier partition, holding up every record behind it.
    @Test(
        "review finding: a tier record without its tier headers is judged by the topic it sits in: moved on, not held",
        arguments: [nil, "gone"])
    func tierFromTheTopic(header: String?) async throws {
        let clock = ManualClock()
        let (relay, configuration, producer) = Self.relay(tiers: ["5s", "1m"], clock: clock)
        let partition = KafkaTopicPartition(topic: configuration.topics.retryTopic("5s"), partition: 0)
        let scope = PartitionScope(partition: partition, generation: 1, limits: [:], clock: clock)
        var message = KafkaConsumerMessage(
            topic: partition.topic, partition: 0, offset: 0, key: Array("feee:acct".utf8),
            value: command(.feee, order: "headless").encoded())
        message.headers.set(
            WorkerHeaders.retryDueAt, String(Timestamp.milliseconds(clock.date.addingTimeInterval(47 * 3_600))))
        if let header { message.headers.set(WorkerHeaders.retryTier, header) }
        let processing = Task { await relay.process(message, scope: scope) }
        #expect(try await eventually(timeout: .seconds(5)) { !producer.records.isEmpty }, "held until due")
        #expect(producer.records.first?.topic == configuration.topics.retryTopic("1m"))
        processing.cancel()
        _ = await processing.value
    }
    /// A relay over the tiers `tiers`, producing to a recording producer, on `clock`.
    static func relay(
        tiers: [String], clock: ManualClock
    ) -> (RetryRelay, WorkerConfiguration, RecordingProducer) {
        var configuration = WorkerConfiguration(bootstrapServers: "unused:9092")
        configuration.workerID = "unit"
        configuration.retry.tiers = tiers.compactMap(RetryTier.init)
        let logger = Logger(label: "relay") { _ in SwiftLogNoOpLogHandler() }
        let producer = RecordingProducer()
        let relay = RetryRelay(
            configuration: configuration,
            router: RecordRouter(producer: producer, configuration: configuration, logger: logger),
            logger: logger, pause: { _ in }, resume: { _ in }, answerRefused: { _, _, _ in true }, clock: clock)
        return (relay, configuration, producer)
    }
}
