import CancelCore
import Kafka
import OperatorTools

extension ProcessFleet {
    /// Sends `commands` as an upstream service does, then each of `raw` as is on the same key
    /// (undecodable input), and waits until Kafka acknowledged them all.
    func produce(_ commands: [CancelCommand], raw: [String] = [], rawKey: String = "fastpod:demo-1") async throws {
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: self.cluster.bootstrapServers),
            logger: self.logger)
        let enqueuer = CommandEnqueuer(producer: producer, topic: TopicNames.default.commands)
        for command in commands { _ = try await enqueuer.send(command) }
        for value in raw {
            _ = try await producer.send(
                KafkaProducerMessage(topic: TopicNames.default.commands, key: rawKey, value: value))
        }
        await producer.shutdown()
    }
}
