public import CancelCore
import Foundation
public import Kafka
import Logging

/// Sends cancel commands the way an upstream service would: key `provider:account`, the Java
/// client's partitioner, one acknowledgement per command.
public struct CommandEnqueuer: Sendable {
    /// What happened to one input line.
    public enum Result: Sendable, Hashable {
        case sent(idempotencyKey: String, partition: Int32, offset: Int64)
        /// The line is not a valid command; with `raw`, it is sent anyway (for tests of poison handling).
        case refused(line: Int, reason: String)
    }

    public let producer: KafkaProducer
    public let topic: String

    public init(producer: KafkaProducer, topic: String) {
        self.producer = producer
        self.topic = topic
    }

    /// Sends one command.
    public func send(_ command: CancelCommand) async throws(KafkaError) -> Result {
        let report = try await self.producer.send(
            KafkaProducerMessage(topic: self.topic, key: Array(command.kafkaKey.utf8), value: command.encoded())
        )
        return .sent(idempotencyKey: command.idempotencyKey, partition: report.partition, offset: report.offset)
    }

    /// Sends JSON lines. Valid commands are sent with their key; an invalid line is refused with
    /// the decoder's reason, unless `raw` (then it is sent as is, keyed by provider:account when
    /// those fields are readable).
    public func send(lines: [String], raw: Bool = false) async throws(KafkaError) -> [Result] {
        var results: [Result] = []
        for (index, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let bytes = Array(line.utf8)
            switch CommandDecoder().decode(bytes) {
            case .valid(let command):
                results.append(try await self.send(command))
            case .invalid(let identity, let reason):
                guard raw else {
                    results.append(.refused(line: index + 1, reason: reason))
                    continue
                }
                results.append(
                    try await self.sendRaw(
                        bytes, key: CancelCommand.kafkaKey(provider: identity.provider, account: identity.account),
                        label: identity.idempotencyKey))
            case .undecodable(let reason):
                guard raw else {
                    results.append(.refused(line: index + 1, reason: reason))
                    continue
                }
                results.append(try await self.sendRaw(bytes, key: nil, label: "line \(index + 1)"))
            }
        }
        return results
    }

    private func sendRaw(_ bytes: [UInt8], key: String?, label: String) async throws(KafkaError) -> Result {
        let report = try await self.producer.send(
            KafkaProducerMessage(topic: self.topic, key: key.map { Array($0.utf8) }, value: bytes))
        return .sent(idempotencyKey: label, partition: report.partition, offset: report.offset)
    }
}
