import CancelWorkerTesting
import Foundation
import Synchronization
import Testing

@testable import Kafka

@Suite("Producer and consumer on the mock cluster", .timeLimit(.minutes(2)))
struct KafkaProducerConsumerTests {
    @Test("round trip keeps keys, headers and the order within each partition")
    func roundTrip() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("roundtrip")
        try cluster.createTopic(topic, partitions: 3)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)

        // Each key's records are sent one after another; keys go concurrently.
        let keys = (0..<5).map { "user-\($0)" }
        let perKey = 20
        let reports = try await withThrowingTaskGroup(of: [KafkaDeliveryReport].self) { group in
            for key in keys {
                group.addTask {
                    var reports: [KafkaDeliveryReport] = []
                    for index in 0..<perKey {
                        reports.append(
                            try await producer.send(
                                KafkaProducerMessage(
                                    topic: topic,
                                    key: key,
                                    value: "\(key)#\(index)",
                                    headers: [
                                        KafkaHeader(name: "trace", string: "\(key)-\(index)"),
                                        KafkaHeader(name: "empty", value: nil),
                                    ]
                                )))
                    }
                    return reports
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(reports.count == keys.count * perKey)
        #expect(Set(reports.map(\.topic)) == [topic])

        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: uniqueName("g")), topics: [topic], logger: testLogger)
        let received = try await collect(consumer) { $0.count >= keys.count * perKey }
        consumer.close()
        await producer.shutdown()

        #expect(received.count == keys.count * perKey)
        for key in keys {
            let values = received.filter { $0.keyString == key }.map { String(decoding: $0.value, as: UTF8.self) }
            #expect(values == (0..<perKey).map { "\(key)#\($0)" }, "records of \(key) arrive in send order")
            let partitions = Set(received.filter { $0.keyString == key }.map(\.partition))
            #expect(partitions.count == 1, "one key, one partition")
        }
        let first = try #require(received.first { $0.keyString == "user-0" })
        #expect(first.headers.string("trace") == "user-0-0")
        #expect(first.headers.contains { $0.name == "empty" && $0.value == nil })
        for partition in Set(received.map(\.partition)) {
            let offsets = received.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == offsets.sorted(), "offsets ascend within partition \(partition)")
        }
    }

    @Test("issue 14: consecutive records share one copy of a repeated header list and topic name; each keeps its own")
    func sharedHeaders() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("a-topic-name-longer-than-fifteen-bytes")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        let json = KafkaHeader(name: "content-type", string: "application/json")
        let sent: [[KafkaHeader]] = [
            [json], [json], [json], [json, KafkaHeader(name: "trace", string: "t-1")], [json],
            [KafkaHeader(name: "content-type", string: "application/jsoN")],
            [KafkaHeader(name: "content-type", value: nil)],
            [KafkaHeader(name: "content-type", value: [])], [],
        ]
        for (index, headers) in sent.enumerated() {
            _ = try await producer.send(
                KafkaProducerMessage(topic: topic, key: "k", value: "v\(index)", headers: headers))
        }
        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: uniqueName("g")), topics: [topic], logger: testLogger)
        let received = try await collect(consumer) { $0.count >= sent.count }
        consumer.close()
        await producer.shutdown()

        #expect(received.map(\.headers) == sent)
        #expect(received.map { String(decoding: $0.value, as: UTF8.self) } == sent.indices.map { "v\($0)" })
        #expect(received.allSatisfy { $0.topic == topic })
        func storage(_ headers: [KafkaHeader]) -> UnsafeRawPointer? {
            headers.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }
        }
        func storage(_ text: String) -> UnsafeRawPointer? {
            text.utf8.withContiguousStorageIfAvailable { UnsafeRawPointer($0.baseAddress) } ?? nil
        }
        #expect(storage(received[1].headers) == storage(received[0].headers))
        #expect(storage(received[2].headers) == storage(received[0].headers))
        #expect(storage(received[3].headers) != storage(received[0].headers))
        #expect(Set(received.map { storage($0.topic) }).count == 1)
    }

    @Test("pause stops a partition, resume continues it where it stopped")
    func pauseResume() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("pause")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        let listener = RecordingListener()
        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: uniqueName("g")),
            topics: [topic],
            rebalanceListener: listener,
            logger: testLogger
        )
        let paused = KafkaTopicPartition(topic: topic, partition: 0)
        let other = KafkaTopicPartition(topic: topic, partition: 1)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.run() }
            #expect(try await eventually { listener.currentAssignment.count == 2 })
            // Partition 0 fetches before it is paused. Paused right after the assignment, it once
            // delivered nothing in the 30 s after its resume (CI run 35): librdkafka 2.0 drops a
            // fresh assignment's fetch start that a pause overtakes (the race of librdkafka
            // #2190, open upstream). `restartStrandedPartitions` restarts a partition left so
            // (`KafkaStrandedPartitionTests`); this test is about pause and resume.
            _ = try await producer.send(KafkaProducerMessage(topic: topic, partition: 0, key: "k", value: "first"))
            let first = try await collect(consumer) { $0.count >= 1 }
            #expect(first.map(\.offset) == [0] && first.allSatisfy { $0.partition == 0 })
            try await consumer.pause([paused])

            for index in 0..<10 {
                _ = try await producer.send(
                    KafkaProducerMessage(topic: topic, partition: index % 2 == 0 ? 0 : 1, key: "k", value: "v\(index)"))
            }
            // Only partition 1 flows while partition 0 is paused.
            let whilePaused = try await collect(consumer) { $0.count >= 5 }
            #expect(whilePaused.allSatisfy { $0.partition == 1 })
            try await Task.sleep(for: .milliseconds(500))

            try await consumer.resume([paused])
            let afterResume = try await collect(consumer) { $0.count >= 5 }
            #expect(afterResume.allSatisfy { $0.partition == 0 })
            #expect(afterResume.map(\.offset) == [1, 2, 3, 4, 5], "resumes at the first unconsumed offset")
            _ = other
            consumer.close()
            try await group.waitForAll()
        }
        await producer.shutdown()
    }

    /// Three brokers and a three-partition topic whose partitions broker 1 leads, so that slowing
    /// broker 1 stalls every send.
    private static func clusterLedByBroker1(topicPrefix: String) throws -> (KafkaMockCluster, String) {
        let cluster = try KafkaMockCluster(brokers: 3, logger: testLogger)
        let topic = uniqueName(topicPrefix)
        try cluster.createTopic(topic, partitions: 3, replicationFactor: 3)
        for partition in 0..<3 {
            try cluster.setPartitionLeader(topic: topic, partition: Int32(partition), brokerID: 1)
        }
        return (cluster, topic)
    }

    /// A producer with room for `queue` records, warmed up, whose topic's leader then answers
    /// 4 s late: what it sends stays queued until the round trip is set back to zero.
    private static func stalledProducer(
        topicPrefix: String, queue: Int
    ) async throws -> (KafkaMockCluster, String, KafkaProducer) {
        let (cluster, topic) = try Self.clusterLedByBroker1(topicPrefix: topicPrefix)
        var configuration = producerConfiguration(cluster)
        configuration.maxQueuedMessages = queue
        let producer = try KafkaProducer(configuration: configuration, logger: testLogger)
        _ = try await producer.send(KafkaProducerMessage(topic: topic, key: "warm", value: "up"))
        try cluster.setBrokerRoundTrip(1, .seconds(4))
        return (cluster, topic, producer)
    }

    /// issue 14: a sender that finds librdkafka's local queue full used to try again every 2 ms,
    /// so while the broker was slow every waiting `send` woke 500 times a second. Now it waits
    /// for the poll thread to serve delivery reports (room in the queue), or for one poll
    /// interval with none: a bounded number of attempts, however long the stall.
    @Test("issue 14: sends waiting for room in a full local queue retry when reports free it, not every 2 ms")
    func fullQueueWaitsForDeliveries() async throws {
        let queue = 10
        let (cluster, topic, producer) = try await Self.stalledProducer(topicPrefix: "full-queue", queue: queue)
        let count = 100
        let stall = Duration.seconds(2)
        let (reports, attempts) = try await withThrowingTaskGroup(of: ([KafkaDeliveryReport], Int?).self) { group in
            group.addTask {
                (try await produce(producer, topic: topic, count: count, keys: { "user-\($0 % 11)" }), nil)
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(200))
                let start = producer.queueFullAttempts
                try await Task.sleep(for: stall)
                let attempts = producer.queueFullAttempts - start
                try cluster.setBrokerRoundTrip(1, .zero)
                return ([], attempts)
            }
            var reports: [KafkaDeliveryReport] = []
            var attempts = 0
            for try await (some, counted) in group {
                reports += some
                attempts += counted ?? 0
            }
            return (reports, attempts)
        }
        #expect(reports.count == count, "every send is delivered once the leader answers")
        // 90 senders wait through the 2 s stall. Retrying every 2 ms they made tens of thousands
        // of attempts; woken by reports, or once per 1 s poll interval without one, a few hundred.
        let waiting = count - queue
        #expect(attempts > 0, "the queue was full during the stall")
        #expect(attempts <= waiting * 5, "\(attempts) attempts by \(waiting) waiting senders in \(stall)")
        await producer.shutdown()
    }

    /// Review finding: a `send` that passed its shutdown check just before `shutdown()` began
    /// produced after the flush and the poll thread's last poll: nobody served its report, and it
    /// waited for ever. The window is microseconds; the test widens it (`beforeProduce`).
    @Test("review finding: a send racing shutdown returns (delivered or refused), never waits for ever")
    func sendRacingShutdown() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("race")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        _ = try await producer.send(KafkaProducerMessage(topic: topic, key: "k", value: "warm"))
        let shutdownBegan = Atomic<Bool>(false)
        producer.core.beforeProduce.withLock {
            $0 = {
                // Past its check: wait (blocking, as the window is) until shutdown began, then a
                // while longer, for the flush and the poll thread's end.
                let deadline = ContinuousClock.now + .seconds(2)
                while !shutdownBegan.load(ordering: .relaxed) && ContinuousClock.now < deadline { usleep(1_000) }
                usleep(300_000)
            }
        }
        let answer = Mutex<String?>(nil)
        Task {
            do {
                _ = try await producer.send(KafkaProducerMessage(topic: topic, key: "k", value: "racing"))
                answer.withLock { $0 = "delivered" }
            } catch {
                answer.withLock { $0 = "\(error)" }
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        shutdownBegan.store(true, ordering: .relaxed)
        await producer.shutdown(flushTimeout: .seconds(5))
        #expect(
            try await eventually(timeout: .seconds(10)) { answer.withLock { $0 } != nil }, "the send never returned")
        #expect(answer.withLock { $0 } == "delivered")
    }

    /// Review finding: the room woke one waiting sender per *event* `rd_kafka_poll` served, but
    /// librdkafka serves a batch's delivery reports as one event; with the queue full, most
    /// senders then waited for later polls (3,000 sends through a queue of 50: 3.7 s against
    /// 0.3 s). The room now counts the reports, one per record.
    @Test("review finding: the room is told of every delivery report, not of each batch's one event")
    func roomCountsEveryReport() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("reports")
        try cluster.createTopic(topic, partitions: 1)
        var configuration = producerConfiguration(cluster)
        // Batched: the records of a 50 ms linger go in one request and come back as one event.
        configuration.linger = .milliseconds(50)
        let producer = try KafkaProducer(configuration: configuration, logger: testLogger)
        let reports = try await produce(producer, topic: topic, count: 300)
        #expect(reports.count == 300)
        #expect(
            try await eventually(timeout: .seconds(5)) {
                producer.core.room.servedTotal.load(ordering: .relaxed) == 300
            },
            "the room heard of \(producer.core.room.servedTotal.load(ordering: .relaxed)) reports for 300 records")
        await producer.shutdown()
    }

    /// Before `QueueRoom`, a cancelled send in a full queue did not stop: its 2 ms sleep
    /// returned at once when cancelled, so it tried again without pause until there was room.
    @Test(
        "a send cancelled while it waits for room in a full queue stops at once with queueFull; the queued ones are delivered"
    )
    func cancelledWhileQueueFull() async throws {
        let (cluster, topic, producer) = try await Self.stalledProducer(topicPrefix: "full-cancel", queue: 5)
        let queued = Task { try await produce(producer, topic: topic, count: 5) }
        while producer.outstandingCount < 5 { try await Task.sleep(for: .milliseconds(10)) }
        let waiting = Task { () -> Result<KafkaDeliveryReport, KafkaError> in
            do throws(KafkaError) {
                return .success(try await producer.send(KafkaProducerMessage(topic: topic, key: "k", value: "late")))
            } catch {
                return .failure(error)
            }
        }
        while producer.queueFullAttempts == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let cancelled = ContinuousClock.now
        waiting.cancel()
        let result = await waiting.value
        let took = ContinuousClock.now - cancelled
        #expect(took < .seconds(1), "stopped \(took) after the cancel, while the queue was still full")
        guard case .failure(let error) = result else {
            Issue.record("the cancelled send returned \(result)")
            return
        }
        #expect(error.code == KafkaError.Code.queueFull)
        #expect(error.message.contains("nothing was sent"), "\(error)")
        #expect(producer.outstandingCount == 5, "the cancelled record was never queued")

        try cluster.setBrokerRoundTrip(1, .zero)
        #expect(try await queued.value.count == 5)
        await producer.shutdown()
    }

    /// The leader stops answering (a 4 s round trip) rather than going down: the mock's
    /// `setBrokerDown` rebinds the port and can abort this process, which binds ports for other
    /// tests in parallel (see `KafkaMockCluster.setBrokerDown`; a CI run did once). The chaos run,
    /// a process of its own, takes a broker down for real.
    @Test("a leader that stops answering during production: every record is delivered once it answers")
    func brokerDownDuringProduction() async throws {
        let (cluster, topic) = try Self.clusterLedByBroker1(topicPrefix: "outage")
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        _ = try await producer.send(KafkaProducerMessage(topic: topic, key: "warm", value: "up"))

        try cluster.setBrokerRoundTrip(1, .seconds(4))
        let count = 300
        let reports = try await withThrowingTaskGroup(of: [KafkaDeliveryReport].self) { group in
            group.addTask {
                try await produce(producer, topic: topic, count: count, keys: { "user-\($0 % 11)" })
            }
            group.addTask {
                try await Task.sleep(for: .seconds(2))
                #expect(producer.outstandingCount > 0, "records wait while the leader does not answer")
                try cluster.setBrokerRoundTrip(1, .zero)
                return []
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(reports.count == count)
        await producer.shutdown()

        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: uniqueName("g")), topics: [topic], logger: testLogger)
        let received = try await collect(consumer) { $0.count >= count + 1 }
        consumer.close()
        let values = received.map { String(decoding: $0.value, as: UTF8.self) }.filter { $0 != "up" }
        #expect(values.count == count, "no record lost, none duplicated")
        #expect(Set(values) == Set((0..<count).map { "value-\($0)" }))
    }
}
