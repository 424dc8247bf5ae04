import CancelWorkerTesting
import Foundation
import Kafka
import Synchronization
import Testing

@Suite("Consumer groups on the mock cluster", .timeLimit(.minutes(3)))
struct KafkaConsumerGroupTests {
    @Test("two members split the partitions; when one leaves, the other gets them all")
    func splitAndTakeOver() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("split")
        try cluster.createTopic(topic, partitions: 6)
        let group = uniqueName("g")
        let listenerA = RecordingListener()
        let listenerB = RecordingListener()
        let consumerA = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: group), topics: [topic], rebalanceListener: listenerA,
            logger: testLogger)
        let consumerB = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: group), topics: [topic], rebalanceListener: listenerB,
            logger: testLogger)
        let all = Set((0..<6).map { KafkaTopicPartition(topic: topic, partition: Int32($0)) })

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await consumerA.run() }
            tasks.addTask { try await consumerB.run() }
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    listenerA.currentAssignment.count == 3 && listenerB.currentAssignment.count == 3
                })
            #expect(listenerA.currentAssignment.isDisjoint(with: listenerB.currentAssignment))
            #expect(listenerA.currentAssignment.union(listenerB.currentAssignment) == all)
            #expect(Set(consumerA.assignment) == listenerA.currentAssignment)

            consumerB.close()
            #expect(try await eventually(timeout: .seconds(60)) { listenerA.currentAssignment == all })
            #expect(listenerB.currentAssignment.isEmpty)
            consumerA.close()
            try await tasks.waitForAll()
        }
    }

    @Test("committed offsets survive a restart: nothing lost, only the uncommitted redelivered")
    func committedOffsetsSurviveRestart() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("commit")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        for index in 0..<100 {
            _ = try await producer.send(KafkaProducerMessage(topic: topic, key: "k", value: "value-\(index)"))
        }
        await producer.shutdown()
        let group = uniqueName("g")
        let partition = KafkaTopicPartition(topic: topic, partition: 0)

        // First life: read 50, mark only the first 30 done.
        let first = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: group), topics: [topic], logger: testLogger)
        let firstBatch = try await collect(first) { $0.count >= 50 }
        #expect(firstBatch.map(\.offset) == Array(0..<50))
        try await first.commit([firstBatch[29].nextOffset])
        let committed = try await first.committed([partition])
        #expect(committed.map(\.offset) == [30])
        first.close()

        // Second life: starts exactly after the last committed record.
        let second = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: group), topics: [topic], logger: testLogger)
        let secondBatch = try await collect(second) { $0.count >= 70 }
        #expect(secondBatch.first?.offset == 30)
        #expect(secondBatch.map(\.offset) == Array(30..<100))
        try await second.commit([secondBatch.last!.nextOffset])
        let watermarks = try await second.watermarks(for: partition)
        #expect(watermarks.high == 100)
        #expect(try await second.committed([partition]).map(\.offset) == [watermarks.high], "lag is zero")
        second.close()
    }

    @Test("a revoke hook drains in-flight work and commits before the partition moves")
    func revokeHookDrains() async throws {
        // librdkafka 2.0's mock coordinator now and then refuses every commit for the whole
        // revoke (REBALANCE_IN_PROGRESS; seen beside the full suite, never alone): such a run
        // says nothing about the hook's commit, so it runs again, at most five times. Three were
        // not enough once: a fresh-clone CI run (58, 2026-11-28) saw all three refused, 65 s
        // each. The drain-before-move order is checked in every run.
        let runs = 5
        for run in 1...runs {
            if try await self.revokeHookScenario(lastTry: run == runs) { break }
        }
    }

    /// One run; false when the coordinator refused the hook's commit throughout.
    private func revokeHookScenario(lastTry: Bool) async throws -> Bool {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("drain")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        for index in 0..<20 {
            _ = try await producer.send(
                KafkaProducerMessage(topic: topic, partition: Int32(index % 2), key: "k", value: "value-\(index)"))
        }
        let group = uniqueName("g")
        // The mock coordinator waits about session.timeout.ms − 1 s for every member to rejoin
        // before it completes a rebalance without the late ones (and A's commit then carries an
        // old generation). A's drain takes 1 s; under a full parallel test run it can take
        // several, so this test gives the group a longer window than the 6 s default.
        var configuration = consumerConfiguration(cluster, group: group)
        configuration.sessionTimeout = .seconds(12)

        // A's in-flight work: records it took but has not finished. Draining finishes them.
        struct Drain: Sendable {
            var inFlight: [KafkaConsumerMessage] = []
            var finishedAt: ContinuousClock.Instant?
            var refused = false
        }
        let drain = Mutex(Drain())
        let consumerABox = Mutex<KafkaConsumer?>(nil)
        let listenerA = RecordingListener { revoked in
            let work = drain.withLock { $0.inFlight }.filter { revoked.contains($0.topicPartition) }
            // Simulate finishing slow provider calls, then commit what they completed.
            try? await Task.sleep(for: .seconds(1))
            var commits: [KafkaTopicPartition: KafkaTopicPartitionOffset] = [:]
            for message in work { commits[message.topicPartition] = message.nextOffset }
            if let consumer = consumerABox.withLock({ $0 }) {
                // librdkafka's mock coordinator refuses commits while its group state machine is
                // between JOINING and SYNCING (real brokers accept the current generation's
                // commits while a rebalance is prepared): retry briefly, as an application would —
                // up to 7 s, inside the group's rejoin window (session timeout 12 s − 1 s, less the
                // 1 s drain), so the hook still returns in time for the member to rejoin.
                var attempt = 0
                while true {
                    do {
                        try await consumer.commit(Array(commits.values))
                        break
                    } catch  where (error as? KafkaError)?.code == KafkaError.Code.rebalanceInProgress && attempt < 35 {
                        attempt += 1
                        try? await Task.sleep(for: .milliseconds(200))
                    } catch {
                        let refusedThroughout = (error as? KafkaError)?.code == KafkaError.Code.rebalanceInProgress
                        if refusedThroughout { drain.withLock { $0.refused = true } }
                        if !refusedThroughout || lastTry { Issue.record("commit in the revoke hook failed: \(error)") }
                        break
                    }
                }
            }
            drain.withLock {
                $0.finishedAt = .now; $0.inFlight.removeAll()
            }
        }
        let consumerA = try KafkaConsumer(
            configuration: configuration, topics: [topic], rebalanceListener: listenerA, logger: testLogger)
        consumerABox.withLock { $0 = consumerA }
        let listenerB = RecordingListener()

        let committed = try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await consumerA.run() }
            let taken = try await collect(consumerA) { $0.count >= 20 }
            drain.withLock { $0.inFlight = taken }

            // B joins: A must give up one partition, after draining it.
            let consumerB = try KafkaConsumer(
                configuration: configuration, topics: [topic], rebalanceListener: listenerB, logger: testLogger)
            tasks.addTask { try await consumerB.run() }
            #expect(try await eventually(timeout: .seconds(60)) { !listenerB.currentAssignment.isEmpty })
            let finishedAt = try #require(drain.withLock { $0.finishedAt })
            let assignedToB = try #require(
                listenerB.events.withLock { $0.first { $0.assigned && !$0.partitions.isEmpty } })
            #expect(finishedAt < assignedToB.at, "A finished its work before B got the partition")
            if drain.withLock({ $0.refused }) {
                consumerA.close()
                consumerB.close()
                try await tasks.waitForAll()
                return false
            }

            // B starts after A's committed offsets: nothing A finished is redelivered.
            for index in 20..<24 {
                _ = try await producer.send(
                    KafkaProducerMessage(topic: topic, partition: Int32(index % 2), key: "k", value: "value-\(index)"))
            }
            let bPartitions = listenerB.currentAssignment
            let bReceived = try await collect(consumerB) { $0.count >= 2 * bPartitions.count }
            #expect(bReceived.allSatisfy { $0.offset >= 10 }, "B sees only records produced after A's commit")
            consumerA.close()
            consumerB.close()
            try await tasks.waitForAll()
            return true
        }
        await producer.shutdown()
        return committed
    }
}
