import Foundation
import Kafka
import Logging
import Testing

@Suite("cancel-worker dev-cluster as a child process", .timeLimit(.minutes(2)))
struct DevClusterCommandTests {
    @Test("prints only the bootstrap list first; clients produce and consume through it; SIGTERM exits 0")
    func devCluster() async throws {
        let topic = "cli-\(UUID().uuidString.prefix(6).lowercased())"
        let child = try ChildProcess(["dev-cluster", "--brokers", "2", "--partitions", "6", "--topic", topic])
        let bootstrap = try await child.firstLine()
        let servers = bootstrap.split(separator: ",")
        #expect(servers.count == 2)
        #expect(servers.allSatisfy { $0.hasPrefix("127.0.0.1:") && Int($0.split(separator: ":").last!) != nil })

        var logger = Logger(label: "cli-test")
        logger.logLevel = .critical
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: bootstrap), logger: logger)
        for index in 0..<12 {
            _ = try await producer.send(KafkaProducerMessage(topic: topic, key: "k\(index)", value: "v\(index)"))
        }
        await producer.shutdown()

        var configuration = KafkaConsumerConfiguration(bootstrapServers: bootstrap, groupID: "cli-test")
        configuration.sessionTimeout = .seconds(6)
        let consumer = try KafkaConsumer(configuration: configuration, topics: [topic], logger: logger)
        var values = Set<String>()
        for try await message in consumer.messages {
            values.insert(String(decoding: message.value, as: UTF8.self))
            if values.count == 12 { break }
        }
        consumer.close()
        #expect(values == Set((0..<12).map { "v\($0)" }))

        let admin = try KafkaAdminClient(options: KafkaClientOptions(bootstrapServers: bootstrap), logger: logger)
        #expect(try await admin.describeTopic(topic).partitions.count == 6)

        if let kcat = which("kcat") {
            let (status, output) = try await runProgram(kcat, ["-b", bootstrap, "-L", "-t", topic])
            #expect(status == 0)
            #expect(output.contains("topic \"\(topic)\" with 6 partitions"), "kcat sees the topic: \(output)")
            let consumed = try await runProgram(
                kcat, ["-b", bootstrap, "-C", "-t", topic, "-c", "12", "-e", "-f", "%s\\n"])
            #expect(Set(consumed.output.split(separator: "\n").map(String.init)) == values)
        }

        #expect(try await child.stop(signal: SIGTERM) == 0)
        #expect(child.lines == [bootstrap], "nothing but the bootstrap list on stdout")
    }

    @Test("without --topic it creates the worker's topics; bad arguments exit non-zero with a message")
    func defaultsAndValidation() async throws {
        let child = try ChildProcess(["dev-cluster", "--brokers", "1"])
        let bootstrap = try await child.firstLine()
        var logger = Logger(label: "cli-test")
        logger.logLevel = .critical
        let admin = try KafkaAdminClient(options: KafkaClientOptions(bootstrapServers: bootstrap), logger: logger)
        let topics = try await admin.listTopics()
        for expected in [
            "cancel.commands", "cancel.outcomes", "cancel.commands.dlq", "cancel.commands.retry.5s",
            "cancel.commands.retry.1m", "cancel.commands.retry.10m",
        ] {
            #expect(topics.contains(expected))
        }
        #expect(try await child.stop(signal: SIGINT) == 0)

        let bad = try ChildProcess(["dev-cluster", "--brokers", "0"])
        #expect(try await bad.waitForExit() != 0)
        #expect(bad.standardError.contains("--brokers must be at least 1"))
    }
}
