import Foundation
import Kafka
import Testing

/// `top -H`, `perf` and the bench's CPU by thread (`ThreadGroup`: `kafka-…` threads count as
/// Kafka) know a thread by the name the kernel keeps, at most 15 bytes.
@Suite("Kafka poll threads' names")
struct PollThreadNameTests {
    /// The kernel's names of this process's threads.
    private static func threadNames() -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap {
            try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8).trimmingCharacters(
                in: .newlines)
        }
    }

    @Test("regression: the producer's and the consumer's poll threads carry their names")
    func named() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("names")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration(cluster, group: uniqueName("g")), topics: [topic],
            logger: testLogger)
        var names: [String] = []
        for _ in 0..<100 {
            names = Self.threadNames()
            if names.contains("kafka-producer") && names.contains("kafka-consumer") { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(names.contains("kafka-producer"), "\(Set(names).sorted())")
        #expect(names.contains("kafka-consumer"), "\(Set(names).sorted())")
        consumer.close()
        await producer.shutdown()
    }
}
