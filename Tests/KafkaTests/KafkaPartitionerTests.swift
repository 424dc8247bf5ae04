import Foundation
import Kafka
import Testing

@Suite("The murmur2 partitioner agrees with librdkafka's")
struct KafkaPartitionerTests {
    @Test("every key lands where KafkaPartitioner says, and the producer knows the partition count")
    func agreesWithLibrdkafka() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("partitioner")
        try cluster.createTopic(topic, partitions: 7)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        #expect(try await producer.partitionCount(topic: topic) == 7)
        let keys =
            (0..<200).map { "fastpod:account-\($0)" } + [
                "", "a", "ab", "abc", "abcd", "futures:demo-1", "ünïcödé:ключ",
            ]
        for key in keys {
            let report = try await producer.send(
                KafkaProducerMessage(topic: topic, key: Array(key.utf8), value: Array("v".utf8)))
            #expect(
                report.partition == KafkaPartitioner.partition(forKey: Array(key.utf8), partitionCount: 7), "\(key)")
        }
        await #expect(throws: KafkaError.self) {
            _ = try await producer.partitionCount(topic: "no-such-topic", timeout: .seconds(2))
        }
        await producer.shutdown()
    }
}
