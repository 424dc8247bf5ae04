import Foundation
import Kafka
import Testing

@testable import Console

/// The console's lag reads each topic in the group that consumes it: the workers consume the
/// commands topic in `group-id` and the retry tiers in `<group-id>-retry`.
@Suite("The console's consumer lag", .timeLimit(.minutes(2)))
struct LagReaderTests {
    @Test("each topic's lag is measured against the committed offsets of the group that consumes it")
    func lagPerGroup() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: ConsoleFixture.logger)
        let prefix = "lag\(UUID().uuidString.prefix(6).lowercased())"
        let commands = "\(prefix).commands"
        let tier = "\(prefix).commands.retry.5s"
        _ = try await cluster.ensureTopics([commands, tier].map { KafkaNewTopic(name: $0, partitions: 1) })
        let options = KafkaClientOptions(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(client: options), logger: ConsoleFixture.logger)
        for (topic, count) in [(commands, 10), (tier, 4)] {
            for index in 0..<count {
                _ = try await producer.send(KafkaProducerMessage(topic: topic, key: nil, value: "\(index)"))
            }
        }
        await producer.shutdown(flushTimeout: .seconds(5))
        // The workers' group committed 7 of the commands, the retry group 3 of the tier's records.
        for (group, topic, offset) in [("workers", commands, Int64(7)), ("workers-retry", tier, Int64(3))] {
            let committer = try KafkaConsumer(
                configuration: KafkaConsumerConfiguration(client: options, groupID: group), topics: [],
                logger: ConsoleFixture.logger)
            try await committer.commit([KafkaTopicPartitionOffset(topic: topic, partition: 0, offset: offset)])
            committer.close()
        }

        let reader = try LagReader(
            options: options, groups: [("workers", [commands]), ("workers-retry", [tier])],
            logger: ConsoleFixture.logger)
        defer { reader.close() }
        #expect(reader.topics == [commands, tier])
        let entries = try await reader.read()
        #expect(
            entries == [
                LagEntry(topic: commands, partition: 0, committed: 7, end: 10, lag: 3),
                LagEntry(topic: tier, partition: 0, committed: 3, end: 4, lag: 1),
            ])
    }
}
