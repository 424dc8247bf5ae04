import Foundation
import Kafka
import Logging
import Synchronization
import Testing

/// Test logger: quiet unless `KAFKA_TEST_LOG` is set, so failures are readable.
let testLogger: Logger = {
    var logger = Logger(label: "kafka-tests")
    logger.logLevel = ProcessInfo.processInfo.environment["KAFKA_TEST_LOG"] == nil ? .critical : .debug
    return logger
}()

func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

func consumerConfiguration(_ cluster: KafkaMockCluster, group: String) -> KafkaConsumerConfiguration {
    var configuration = KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupID: group)
    configuration.sessionTimeout = .seconds(6)
    configuration.heartbeatInterval = .milliseconds(500)
    return configuration
}

func producerConfiguration(_ cluster: KafkaMockCluster) -> KafkaProducerConfiguration {
    var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers)
    configuration.linger = .milliseconds(1)
    return configuration
}

/// Produces `count` records `key-i`/`value-i` and waits for every acknowledgement.
@discardableResult
func produce(
    _ producer: KafkaProducer,
    topic: String,
    count: Int,
    keys: @escaping @Sendable (Int) -> String = { "key-\($0 % 7)" },
    headers: @escaping @Sendable (Int) -> [KafkaHeader] = { _ in [] }
) async throws -> [KafkaDeliveryReport] {
    try await withThrowingTaskGroup(of: KafkaDeliveryReport.self) { group in
        for index in 0..<count {
            group.addTask {
                try await producer.send(
                    KafkaProducerMessage(
                        topic: topic, key: keys(index), value: "value-\(index)", headers: headers(index))
                )
            }
        }
        return try await group.reduce(into: []) { $0.append($1) }
    }
}

/// Collects records from a consumer until `stop` says so or the time runs out.
func collect(
    _ consumer: KafkaConsumer,
    timeout: Duration = .seconds(30),
    until stop: @escaping @Sendable ([KafkaConsumerMessage]) -> Bool
) async throws -> [KafkaConsumerMessage] {
    try await withThrowingTaskGroup(of: [KafkaConsumerMessage]?.self) { group in
        group.addTask {
            var received: [KafkaConsumerMessage] = []
            for try await message in consumer.messages {
                received.append(message)
                if stop(received) { break }
            }
            return received
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        guard let received = first else {
            Issue.record("timed out after \(timeout) waiting for records")
            return []
        }
        return received
    }
}

/// Records what a consumer's listener saw.
final class RecordingListener: KafkaRebalanceListener {
    struct Event: Sendable {
        var assigned: Bool
        var partitions: [KafkaTopicPartition]
        var generation: UInt64
        var at: ContinuousClock.Instant
    }

    let events = Mutex<[Event]>([])
    let onRevoke: (@Sendable ([KafkaTopicPartition]) async -> Void)?

    init(onRevoke: (@Sendable ([KafkaTopicPartition]) async -> Void)? = nil) {
        self.onRevoke = onRevoke
    }

    func partitionsAssigned(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
        self.events.withLock {
            $0.append(Event(assigned: true, partitions: partitions, generation: generation, at: .now))
        }
    }

    func partitionsRevoked(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
        await self.onRevoke?(partitions)
        self.events.withLock {
            $0.append(Event(assigned: false, partitions: partitions, generation: generation, at: .now))
        }
    }

    var currentAssignment: Set<KafkaTopicPartition> {
        self.events.withLock { events in
            var current = Set<KafkaTopicPartition>()
            for event in events {
                if event.assigned { current.formUnion(event.partitions) } else { current.subtract(event.partitions) }
            }
            return current
        }
    }
}

/// A new topic named after `prefix` holding `count` records `produce` wrote, every one acknowledged.
func filledTopic(
    _ cluster: KafkaMockCluster, named prefix: String, count: Int, partitions: Int = 1
) async throws -> String {
    let topic = uniqueName(prefix)
    try cluster.createTopic(topic, partitions: partitions)
    let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
    try await produce(producer, topic: topic, count: count)
    await producer.shutdown()
    return topic
}
