import CancelCore
import Foundation
import Kafka
import Logging

/// A mock cluster with the worker's default topic names and one dead-lettered FastPOD command
/// (key `key-1`, account `shop`, class `retries_exhausted`), for the operator-tool tests.
struct DeadLetterFixture {
    let cluster: KafkaMockCluster
    let producer: KafkaProducer
    let command: CancelCommand
    let logger: Logger

    /// `topics`: which of the default topics to create (one partition each); `headers`: more
    /// headers on the dead letter, after the identity and class every dead letter has.
    init(label: String, topics: [String], headers: [KafkaHeader] = []) async throws {
        var logger = Logger(label: label)
        logger.logLevel = .critical
        self.logger = logger
        self.cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        _ = try await self.cluster.ensureTopics(topics.map { KafkaNewTopic(name: $0, partitions: 1) })
        self.producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: self.cluster.bootstrapServers), logger: logger)
        self.command = CancelCommand(
            commandID: "c1", idempotencyKey: "key-1", provider: .fastpod, account: "shop", order: .fastpod(id: "F1"),
            requestedAt: Date())
        _ = try await self.producer.send(
            KafkaProducerMessage(
                topic: TopicNames.default.deadLetters, key: Array("fastpod:shop".utf8), value: self.command.encoded(),
                headers: [
                    KafkaHeader(name: "cw.error.class", string: "retries_exhausted"),
                    KafkaHeader(name: "cw.idempotency-key", string: "key-1"),
                    KafkaHeader(name: "cw.provider", string: "fastpod"),
                    KafkaHeader(name: "cw.account", string: "shop"),
                ] + headers))
    }
}
