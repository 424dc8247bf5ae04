import CancelCore
import Foundation
import Kafka
import Logging

/// A consumer of the outcomes topic that starts exactly at a chosen position.
///
/// It is the only member of a consumer group of its own, and the group's start offsets are
/// committed *before* it joins: so the position is fixed the moment `open` returns (an outcome
/// published afterwards cannot be skipped, however long the join takes). The client's listener
/// commits where it is as it goes (a rejoin continues there); a reader of `outcomes(…)` commits
/// nothing itself. The group's committed start stays on the cluster for its offset
/// retention (`offsets.retention.minutes`, 7 days by default), like any consumer group's.
struct OutcomeSource: Sendable {
    let consumer: KafkaConsumer
    let topic: String
    /// Where each partition starts: the next offset to read.
    let start: [Int32: Int64]
    /// For `.time`: records older than this (milliseconds since the epoch) are skipped.
    let notBefore: Int64?

    static func open(
        _ configuration: CancelClientConfiguration, from position: OutcomePosition, purpose: String, logger: Logger
    ) async throws(CancelClientError) -> OutcomeSource {
        let topic = configuration.topics.outcomes
        let group = "\(configuration.kafka.clientID)-\(purpose)-\(UUID().uuidString.lowercased())"
        let start: [Int32: Int64]
        do {
            let partitions = try await KafkaAdminClient(options: configuration.kafka, logger: logger)
                .describeTopic(topic).partitions.map(\.id)
            let queries = try KafkaConsumer(
                configuration: configuration.consumer(group: group), topics: [], logger: logger)
            defer { queries.close() }
            var offsets: [Int32: Int64] = [:]
            for partition in partitions {
                let marks = try await queries.watermarks(for: KafkaTopicPartition(topic: topic, partition: partition))
                switch position {
                case .beginning, .time: offsets[partition] = marks.low
                case .end: offsets[partition] = marks.high
                // An offset the topic no longer (or not yet) holds is moved into the retained range.
                case .offsets(let given):
                    offsets[partition] = min(max(given[partition] ?? marks.low, marks.low), marks.high)
                }
            }
            try await queries.commit(
                offsets.map { KafkaTopicPartitionOffset(topic: topic, partition: $0.key, offset: $0.value) })
            start = offsets
        } catch {
            throw .kafka(error, "positioning a reader of \(topic)")
        }
        let consumer: KafkaConsumer
        do {
            consumer = try KafkaConsumer(
                configuration: configuration.consumer(group: group), topics: [topic], logger: logger)
        } catch {
            throw .kafka(error, "subscribing to \(topic)")
        }
        var notBefore: Int64?
        if case .time(let date) = position { notBefore = Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }
        logger.debug(
            "outcome reader positioned",
            metadata: ["topic": "\(topic)", "group": "\(group)", "start": "\(start.sorted { $0.key < $1.key })"])
        return OutcomeSource(consumer: consumer, topic: topic, start: start, notBefore: notBefore)
    }

    /// The outcome a record carries, or nil when the record is not one to hand out (another
    /// topic, older than `.time`, or not a `cancel-outcome.v1`: logged and skipped).
    func outcome(of message: KafkaConsumerMessage, logger: Logger) -> ReceivedOutcome? {
        guard message.topic == self.topic else { return nil }
        if let notBefore = self.notBefore, message.timestampMilliseconds < notBefore { return nil }
        guard let outcome = try? CancelOutcome.decode(message.value) else {
            logger.warning(
                "skipping a record of the outcomes topic that is not a cancel-outcome.v1",
                metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)"])
            return nil
        }
        return ReceivedOutcome(
            outcome: outcome, partition: message.partition, offset: message.offset,
            timestampMilliseconds: message.timestampMilliseconds)
    }
}
