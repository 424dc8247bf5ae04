import CancelCore
import Foundation
import Kafka
import Logging

/// Produces what a command leads to — its outcome, its next retry, its dead letter, a
/// replayed retry — and waits for Kafka's acknowledgement, retrying the send until it is
/// acknowledged or the partition is revoked (then the command is redelivered elsewhere).
struct RecordRouter: Sendable {
    let producer: KafkaProducer
    let configuration: WorkerConfiguration
    let logger: Logger

    /// Sends until acknowledged; false if `scope` was revoked meanwhile.
    func deliver(_ record: KafkaProducerMessage, scope: PartitionScope) async -> Bool {
        var message = record
        var backoff: Duration = .milliseconds(100)
        while true {
            do {
                _ = try await self.producer.send(message)
                return true
            } catch {
                if scope.isRevoked { return false }
                if message.partition != nil, Self.partitionErrors.contains(error.code) {
                    // The target partition no longer exists (the topic was recreated smaller):
                    // let the partitioner place it by key.
                    self.logPartitionGone(message)
                    message.partition = nil
                    continue
                }
                self.logRetry(message, error: error, backoff: backoff)
                guard await scope.sleep(until: .now + backoff) else { return false }
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    // Logging lives in functions of its own: inlined into `deliver`, its temporaries would sit
    // in the async frame that every command waiting for an acknowledgement keeps.
    @inline(never)
    private func logPartitionGone(_ message: KafkaProducerMessage) {
        self.logger.warning("partition unavailable, producing by key", metadata: ["topic": "\(message.topic)", "partition": "\(message.partition ?? -1)"])
    }

    @inline(never)
    private func logRetry(_ message: KafkaProducerMessage, error: KafkaError, backoff: Duration) {
        self.logger.warning("produce failed, retrying", metadata: ["topic": "\(message.topic)", "error": "\(error)", "backoff": "\(backoff)"])
    }

    private static let partitionErrors: Set<Int32> = [KafkaError.Code.unknownPartition, KafkaError.Code.unknownTopicOrPartition]

    /// The outcome record: keyed by the idempotency key, so one key's outcomes stay in order.
    func outcomeMessage(_ bytes: [UInt8], idempotencyKey: String) -> KafkaProducerMessage {
        KafkaProducerMessage(
            topic: self.configuration.topics.outcomes,
            key: Array(idempotencyKey.utf8),
            value: bytes,
            headers: [KafkaHeader(name: "content-type", string: "application/json")]
        )
    }

    /// The failure context every dead letter and retry carries.
    func failureHeaders(
        of message: KafkaConsumerMessage,
        attempts: Int,
        answer: ProviderAnswer?,
        reason: String,
        now: Date
    ) -> [KafkaHeader] {
        var headers = message.headers
        // The first failure records where the command came from; later ones keep it.
        if headers.string(WorkerHeaders.originTopic) == nil {
            headers.set(WorkerHeaders.originTopic, message.topic)
            headers.set(WorkerHeaders.originPartition, String(message.partition))
            headers.set(WorkerHeaders.originOffset, String(message.offset))
        }
        headers.set(WorkerHeaders.consumerGroup, self.configuration.groupID)
        headers.set(WorkerHeaders.attempts, String(attempts))
        headers.set(WorkerHeaders.errorMessage, String(reason.prefix(1_000)))
        headers.set(WorkerHeaders.workerID, self.configuration.workerID)
        let nowMillis = String(Timestamp.milliseconds(now))
        if headers.string(WorkerHeaders.firstFailureAt) == nil {
            headers.set(WorkerHeaders.firstFailureAt, nowMillis)
        }
        headers.set(WorkerHeaders.lastFailureAt, nowMillis)
        headers.removeAll { $0.name == WorkerHeaders.providerStatus || $0.name == WorkerHeaders.providerCode }
        if let status = answer?.httpStatus { headers.set(WorkerHeaders.providerStatus, String(status)) }
        if let code = answer?.code { headers.set(WorkerHeaders.providerCode, code) }
        return headers
    }

    /// The dead letter: original key and value, failure context in headers.
    func deadLetterMessage(
        of message: KafkaConsumerMessage,
        errorClass: DeadLetterClass,
        reason: String,
        attempts: Int,
        answer: ProviderAnswer?,
        command: CommandIdentity?,
        now: Date
    ) -> KafkaProducerMessage {
        var headers = self.failureHeaders(of: message, attempts: attempts, answer: answer, reason: reason, now: now)
        headers.set(WorkerHeaders.errorClass, errorClass.rawValue)
        headers.set(WorkerHeaders.deadLetteredAt, String(Timestamp.milliseconds(now)))
        if let command {
            headers.set(WorkerHeaders.idempotencyKey, command.idempotencyKey)
            headers.set(WorkerHeaders.provider, command.provider)
            headers.set(WorkerHeaders.account, command.account)
        }
        headers.removeAll { [WorkerHeaders.retryDueAt, WorkerHeaders.retryTier, WorkerHeaders.retryPartition].contains($0.name) }
        return KafkaProducerMessage(
            topic: self.configuration.topics.deadLetters,
            key: message.key,
            value: message.value,
            headers: headers
        )
    }

    /// The command parked in a retry tier until `dueAt`.
    func retryMessage(
        of message: KafkaConsumerMessage,
        tier: RetryTier,
        round: Int,
        dueAt: Date,
        attempts: Int,
        answer: ProviderAnswer?,
        reason: String,
        now: Date
    ) -> KafkaProducerMessage {
        var headers = self.failureHeaders(of: message, attempts: attempts, answer: answer, reason: reason, now: now)
        headers.set(WorkerHeaders.retryRound, String(round))
        headers.set(WorkerHeaders.retryTier, tier.name)
        headers.set(WorkerHeaders.retryDueAt, String(Timestamp.milliseconds(dueAt)))
        headers.set(WorkerHeaders.retryPartition, String(message.partition))
        return KafkaProducerMessage(
            topic: self.configuration.topics.retryTopic(tier.name),
            key: message.key,
            value: message.value,
            headers: headers
        )
    }
}
