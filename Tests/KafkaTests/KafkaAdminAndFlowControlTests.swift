import CancelWorkerTesting
import Foundation
import Kafka
import Testing

@Suite("Admin client and flow control", .timeLimit(.minutes(2)))
struct KafkaAdminAndFlowControlTests {
    @Test("topics are provisioned idempotently; the admin client lists and describes them")
    func provisionListDescribe() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: testLogger)
        let admin = try KafkaAdminClient(
            options: KafkaClientOptions(bootstrapServers: cluster.bootstrapServers), logger: testLogger)
        let topic = uniqueName("admin")
        let provisioner: any KafkaTopicProvisioner = cluster
        #expect(
            try await provisioner.ensureTopics([KafkaNewTopic(name: topic, partitions: 6, replicationFactor: 3)]) == [
                topic
            ])
        #expect(
            try await provisioner.ensureTopics([KafkaNewTopic(name: topic, partitions: 6, replicationFactor: 3)])
                .isEmpty)
        #expect(try await admin.listTopics().contains(topic))
        let description = try await admin.describeTopic(topic)
        #expect(description.partitions.map(\.id) == Array(0..<6))
        #expect(description.partitions.allSatisfy { $0.replicas.count == 3 && $0.leader >= 1 })
        await #expect(throws: KafkaError.self) { try await admin.describeTopic(uniqueName("missing")) }
    }

    @Test("the admin client reports a cluster that cannot create topics instead of hanging")
    func createTopicsWithoutController() async throws {
        // librdkafka 2.0's mock brokers have no controller; a real cluster answers CreateTopics.
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let admin = try KafkaAdminClient(
            options: KafkaClientOptions(bootstrapServers: cluster.bootstrapServers), logger: testLogger)
        let started = ContinuousClock.now
        await #expect(throws: KafkaError.self) {
            try await admin.createTopics([KafkaNewTopic(name: uniqueName("t"), partitions: 1)], timeout: .seconds(2))
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test("a slow reader pauses fetching instead of buffering: every record once, in order")
    func flowControl() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("flow")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        let count = 3_000
        try await produce(producer, topic: topic, count: count)
        await producer.shutdown()

        var configuration = consumerConfiguration(cluster, group: uniqueName("g"))
        configuration.bufferCapacity = 50
        let consumer = try KafkaConsumer(configuration: configuration, topics: [topic], logger: testLogger)
        var received: [KafkaConsumerMessage] = []
        var stalls = 0
        var pausedDuringStalls = 0
        var mostBuffered = 0
        for try await message in consumer.messages {
            received.append(message)
            if received.count % 500 == 0 && received.count < count {
                // The reader stalls; the poll thread must pause rather than pile records up. (Waited
                // for, not slept: on a loaded machine the poll thread may take a while to fill the buffer.)
                stalls += 1
                if try await eventually(timeout: .seconds(15), { consumer.activity.fetchPaused }) {
                    pausedDuringStalls += 1
                }
                // Paused, it must not go on filling the buffer.
                try await Task.sleep(for: .milliseconds(300))
                mostBuffered = max(mostBuffered, consumer.activity.buffered)
            }
            if received.count == count { break }
        }
        consumer.close()
        #expect(received.count == count)
        // While the reader stalled, fetching was paused and the buffer stayed near its capacity
        // (what one poll hands over after the pause is decided may come on top).
        #expect(
            stalls == 5 && pausedDuringStalls == stalls, "fetching paused in \(pausedDuringStalls) of \(stalls) stalls")
        #expect(mostBuffered <= 2 * configuration.bufferCapacity, "at most \(mostBuffered) records buffered")
        #expect(Set(received.map { String(decoding: $0.value, as: UTF8.self) }).count == count, "no duplicates")
        for partition in Set(received.map(\.partition)) {
            let offsets = received.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == Array(0..<Int64(offsets.count)), "partition \(partition) is contiguous")
        }
    }
}
