public import CancelClient
public import CancelCore
import Foundation
public import Kafka

/// Sends cancel commands the way an upstream service would: key `provider:account`, the Java
/// client's partitioner, one acknowledgement per command.
///
/// `cancel-worker enqueue` sends through a `CancelClient`, which checks every command with the
/// worker's intake rules first. Load generators (bench, chaos) and tests that build valid
/// commands in bulk send on a producer of their own with the same key and encoding, unchecked.
public struct CommandEnqueuer: Sendable {
    /// What happened to one input line.
    public enum Result: Sendable, Hashable {
        case sent(idempotencyKey: String, partition: Int32, offset: Int64)
        /// The line is not a valid command; with `raw`, it is sent anyway (for tests of poison handling).
        case refused(line: Int, reason: String)
    }

    private enum Sender: Sendable {
        case client(CancelClient)
        case producer(KafkaProducer, topic: String)
    }

    private let sender: Sender
    /// Where `raw` lines go: they never pass through the client, which refuses them.
    private let rawProducer: KafkaProducer?

    /// Checked sends through `client`; `rawProducer` sends the lines that `raw` lets through.
    public init(client: CancelClient, rawProducer: KafkaProducer? = nil) {
        self.sender = .client(client)
        self.rawProducer = rawProducer
    }

    /// Unchecked sends on `producer` to `topic` (load generators and tests).
    public init(producer: KafkaProducer, topic: String) {
        self.sender = .producer(producer, topic: topic)
        self.rawProducer = producer
    }

    private var topic: String {
        switch self.sender {
        case .client(let client): client.configuration.topics.commands
        case .producer(_, let topic): topic
        }
    }

    /// Sends one command.
    public func send(_ command: CancelCommand) async throws -> Result {
        switch self.sender {
        case .client(let client):
            let enqueued = try await client.enqueue(command)
            return .sent(idempotencyKey: command.idempotencyKey, partition: enqueued.partition, offset: enqueued.offset)
        case .producer(let producer, let topic):
            let report = try await producer.send(
                KafkaProducerMessage(topic: topic, key: Array(command.kafkaKey.utf8), value: command.encoded()))
            return .sent(idempotencyKey: command.idempotencyKey, partition: report.partition, offset: report.offset)
        }
    }

    /// Sends JSON lines. Valid commands are sent with their key; an invalid line is refused with
    /// the decoder's reason, unless `raw` (then it is sent as is, keyed by provider:account when
    /// those fields are readable).
    public func send(lines: [String], raw: Bool = false) async throws -> [Result] {
        var results: [Result] = []
        for (index, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let bytes = Array(line.utf8)
            switch CommandDecoder().decode(bytes) {
            case .valid(let command):
                do {
                    results.append(try await self.send(command))
                } catch let error as CancelClientError where error.code == .invalidCommand {
                    // Valid as read, but not as re-encoded (e.g. over the size limit once normalised).
                    results.append(.refused(line: index + 1, reason: error.message))
                }
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

    private func sendRaw(_ bytes: [UInt8], key: String?, label: String) async throws -> Result {
        guard let producer = self.rawProducer else {
            throw CancelClientError(.configuration, "raw sends need a producer of their own")
        }
        let report = try await producer.send(
            KafkaProducerMessage(topic: self.topic, key: key.map { Array($0.utf8) }, value: bytes))
        return .sent(idempotencyKey: label, partition: report.partition, offset: report.offset)
    }
}
