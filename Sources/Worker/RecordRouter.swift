import CancelCore
import Foundation
import Kafka
import Logging
import Synchronization

/// Produces what a command leads to — its outcome, its next retry, its dead letter, a
/// replayed retry — and waits for Kafka's acknowledgement, retrying the send until it is
/// acknowledged or the partition is revoked (then the command is redelivered elsewhere). A
/// record the cluster refuses for good (too large, invalid) is never retried: it ends in the
/// dead-letter topic, shortened if it must be, so the partition moves on.
///
/// The worker's clock seam (`WorkerClock`) stops here, at Kafka: the send backoff sleeps on the
/// partition scope's clock, but an undeliverable letter's `cw.dead-lettered-at` and the
/// partition-count cache's age read the system clocks, as Kafka's own record timestamps do.
struct RecordRouter: Sendable {
    let producer: any KafkaProducing
    let configuration: WorkerConfiguration
    let logger: Logger
    let partitionCounts = PartitionCounts()

    /// The topic's partition count, from metadata at most once a minute; nil while unknown.
    func partitionCount(of topic: String) async -> Int? {
        if let known = self.partitionCounts.fresh(topic) { return known }
        do {
            let count = try await self.producer.partitionCount(topic: topic, timeout: .seconds(5))
            self.partitionCounts.store(topic, count)
            return count
        } catch {
            return self.partitionCounts.any(topic)
        }
    }
    /// Where refused records are counted; nil: the process-wide metrics factory.
    var metrics: WorkerMetrics? = nil

    /// Sends `record` until it has a defined end. Returns false only when `scope` was revoked
    /// meanwhile (nothing is known to be stored: the command is redelivered elsewhere); true
    /// means the caller may treat the record as done and move on:
    ///
    /// - Transient errors (broker down, timeouts, full queue, leadership changes) are retried
    ///   with bounded backoff for as long as the partition is ours; a target partition that no
    ///   longer exists is replaced by the key's partition.
    /// - A permanent refusal (`permanentErrors`: too large, invalid record) is never retried
    ///   as is. A dead letter is produced again with its value cut to fit (headers
    ///   `cw.value.truncated`, `cw.value.original-bytes`), then, if still refused, with an empty
    ///   value. Any other record (outcome, retry, replayed retry) becomes a dead letter itself —
    ///   same key and value, `cw.error.class: undeliverable`, the refusal in `cw.error.message`,
    ///   its intended topic in `cw.undeliverable.topic` — delivered the same way.
    /// - If even the shortened dead letter is refused, the record is given up: logged as an
    ///   error, counted (`cancel_worker_produce_refused_total{result="dropped"}`), and reported
    ///   as done (true), so that one poison record cannot stall its partition.
    ///
    /// So after true the record, or its dead letter, is stored, except for that last case.
    func deliver(_ record: KafkaProducerMessage, scope: PartitionScope) async -> Bool {
        await self.place(record, scope: scope) != .revoked
    }

    /// Where `deliver` left a record.
    enum Placement: Equatable {
        /// Stored where it was meant to go.
        case stored
        /// Refused for good (`refusal`): its undeliverable dead letter was stored instead, or even
        /// that was refused and the record given up (see `deliver`).
        case refused(refusal: String)
        /// Not stored: the partition was revoked (or the producer failed for good).
        case revoked
    }

    /// `deliver`, telling a record stored where it was meant to go from one that ended as an
    /// undeliverable dead letter: a command whose retry or move is refused must still be answered.
    func place(_ record: KafkaProducerMessage, scope: PartitionScope) async -> Placement {
        let refusal: KafkaError
        switch await self.send(record, scope: scope) {
        case .acknowledged: return .stored
        case .revoked: return .revoked
        case .refused(let error): refusal = error
        }
        guard await self.deliverRefused(record, refusal: refusal, scope: scope) else { return .revoked }
        return .refused(refusal: "\(refusal)")
    }

    private enum Sent {
        case acknowledged
        case revoked
        /// The cluster (or librdkafka's own checks) refused this record for good.
        case refused(KafkaError)
    }

    /// Sends until acknowledged, refused for good, or the scope is revoked.
    private func send(_ record: KafkaProducerMessage, scope: PartitionScope) async -> Sent {
        var message = record
        var backoff: Duration = .milliseconds(100)
        while true {
            do {
                _ = try await self.producer.send(message)
                return .acknowledged
            } catch {
                // Revoked, or the producer failed for good (a fatal error: every record is refused
                // from now on, and the worker stops on it, see `CancelWorker.run`): nothing more
                // is stored, the command is redelivered.
                if scope.isRevoked || error.isFatal { return .revoked }
                if Self.permanentErrors.contains(error.code) { return .refused(error) }
                if message.partition != nil, Self.partitionErrors.contains(error.code) {
                    // The target partition no longer exists (the topic was recreated smaller):
                    // let the partitioner place it by key.
                    self.logPartitionGone(message)
                    message.partition = nil
                    continue
                }
                self.logRetry(message, error: error, backoff: backoff)
                guard await scope.sleep(until: scope.clock.now + backoff) else { return .revoked }
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    /// The defined end of a record refused for good (see `deliver`).
    @inline(never)
    private func deliverRefused(
        _ record: KafkaProducerMessage, refusal: KafkaError, scope: PartitionScope
    ) async -> Bool {
        var letter = record
        var lastRefusal = refusal
        if record.topic != self.configuration.topics.deadLetters {
            letter = self.undeliverableLetter(record, refusal: refusal)
            self.logRefused(record, error: refusal, action: "dead-lettering it as undeliverable")
            switch await self.send(letter, scope: scope) {
            case .acknowledged:
                self.countRefused(record, error: refusal, result: "dead_lettered")
                return true
            case .revoked:
                return false
            case .refused(let error):
                lastRefusal = error
            }
        }
        // A dead letter refused for good: shorten its value, first to what fits, then to nothing.
        let fitting = self.fittingValueBytes(for: letter)
        var lengths: [Int] = []
        if fitting < letter.value.count { lengths.append(fitting) }
        if !letter.value.isEmpty && fitting > 0 { lengths.append(0) }
        for length in lengths {
            self.logRefused(
                letter, error: lastRefusal, action: "producing it again with its value cut to \(length) bytes")
            switch await self.send(Self.truncated(letter, to: length), scope: scope) {
            case .acknowledged:
                self.countRefused(record, error: refusal, result: "truncated")
                return true
            case .revoked:
                return false
            case .refused(let error):
                lastRefusal = error
            }
        }
        self.logGaveUp(letter, error: lastRefusal)
        self.countRefused(record, error: refusal, result: "dropped")
        return true
    }

    /// Permanent produce errors: the same record will be refused again, however often it is
    /// sent. librdkafka's `rd_kafka_resp_err_t` values (rdkafka.h), compared by number because
    /// `KafkaError.Code` does not name them. Errors that would refuse every record alike (no
    /// authorization, clock skew — `INVALID_TIMESTAMP`, an old message format) are left out on
    /// purpose: dead-lettering would not get past them either, and retrying until an operator
    /// fixes the cause loses nothing.
    static let permanentErrors: Set<Int32> = [
        2,  // RD_KAFKA_RESP_ERR_INVALID_MSG (CORRUPT_MESSAGE): failed the broker's CRC or validation
        4,  // RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE
        // RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: above `message.max.bytes` (local) or the topic's
        // `max.message.bytes`
        10,
        18,  // RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE: batch above the broker's segment size
        87,  // RD_KAFKA_RESP_ERR_INVALID_RECORD: refused by broker-side validation (e.g. no key on a compacted topic)
    ]

    private static let partitionErrors: Set<Int32> = [
        KafkaError.Code.unknownPartition, KafkaError.Code.unknownTopicOrPartition,
    ]

    /// What a dead letter's value is cut to at most, before the headers' share is taken off.
    static let truncatedValueLimit = 64 * 1024
    /// Room left for the record framing librdkafka and the broker add (record and batch headers).
    static let framingAllowance = 512

    /// The bytes of value that fit beside `letter`'s key and headers, plus the truncation
    /// headers, within both 64 KiB and the producer's `message.max.bytes`.
    func fittingValueBytes(for letter: KafkaProducerMessage) -> Int {
        let producerLimit =
            self.configuration.kafka.additionalProperties["message.max.bytes"].flatMap {
                Int($0.trimmingCharacters(in: .whitespaces))
            } ?? 1_000_000
        var headers = letter.headers
        headers.set(WorkerHeaders.valueTruncated, "true")
        headers.set(WorkerHeaders.valueOriginalBytes, String(letter.value.count))
        // Name, value, and two varint lengths of up to 5 bytes each.
        let headerBytes = headers.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) + 10 }
        let budget =
            min(Self.truncatedValueLimit, producerLimit) - (letter.key?.count ?? 0) - headerBytes
            - Self.framingAllowance
        return max(0, min(budget, letter.value.count))
    }

    /// `letter` with its value cut to its first `length` bytes, saying so in its headers.
    static func truncated(_ letter: KafkaProducerMessage, to length: Int) -> KafkaProducerMessage {
        var shortened = letter
        shortened.value = Array(letter.value.prefix(length))
        shortened.headers.set(WorkerHeaders.valueTruncated, "true")
        shortened.headers.set(WorkerHeaders.valueOriginalBytes, String(letter.value.count))
        return shortened
    }

    /// The dead letter standing in for a record the cluster refused for good: its key, value
    /// and headers, marked `undeliverable` with the refusal and the topic it was meant for.
    /// Without `cw.idempotency-key`, so a replay never sends an outcome back as a command.
    func undeliverableLetter(_ record: KafkaProducerMessage, refusal: KafkaError) -> KafkaProducerMessage {
        var headers = record.headers
        headers.removeAll {
            [WorkerHeaders.retryDueAt, WorkerHeaders.retryTier, WorkerHeaders.retryPartition].contains($0.name)
        }
        headers.set(WorkerHeaders.errorClass, Self.undeliverableClass)
        headers.set(
            WorkerHeaders.errorMessage,
            String("the cluster refused the record for \(record.topic): \(refusal)".prefix(1_000)))
        headers.set(WorkerHeaders.undeliverableTopic, record.topic)
        headers.set(WorkerHeaders.consumerGroup, self.configuration.groupID)
        headers.set(WorkerHeaders.workerID, self.configuration.workerID)
        headers.set(WorkerHeaders.deadLetteredAt, String(Timestamp.milliseconds(Date())))
        return KafkaProducerMessage(
            topic: self.configuration.topics.deadLetters, key: record.key, value: record.value, headers: headers)
    }

    /// `cw.error.class` of a record the cluster refused for good.
    static let undeliverableClass = DeadLetterClass.undeliverable.rawValue
    static let refusedMetric = "cancel_worker_produce_refused_total"

    // Logging lives in functions of its own: inlined into `deliver`, its temporaries would sit
    // in the async frame that every command waiting for an acknowledgement keeps.
    @inline(never)
    private func logPartitionGone(_ message: KafkaProducerMessage) {
        self.logger.warning(
            "partition unavailable, producing by key",
            metadata: ["topic": "\(message.topic)", "partition": .stringConvertible(message.partition ?? -1)])
    }

    @inline(never)
    private func logRetry(_ message: KafkaProducerMessage, error: KafkaError, backoff: Duration) {
        self.logger.warning(
            "produce failed, retrying",
            metadata: ["topic": "\(message.topic)", "error": "\(error)", "backoff": .stringConvertible(backoff)])
    }

    @inline(never)
    private func logRefused(_ message: KafkaProducerMessage, error: KafkaError, action: String) {
        self.logger.error(
            "produce refused for good, \(action)",
            metadata: [
                "topic": "\(message.topic)", "error": "\(error)",
                "value_bytes": .stringConvertible(message.value.count),
                "headers": .stringConvertible(message.headers.count),
            ])
    }

    @inline(never)
    private func logGaveUp(_ message: KafkaProducerMessage, error: KafkaError) {
        self.logger.error(
            "dead letter refused for good even when shortened; the record is given up",
            metadata: [
                "topic": "\(message.topic)", "error": "\(error)",
                "value_bytes": .stringConvertible(message.value.count),
                "error_class": "\(message.headers.string(WorkerHeaders.errorClass) ?? "-")",
                "idempotency_key": "\(message.headers.string(WorkerHeaders.idempotencyKey) ?? "-")",
            ])
    }

    @inline(never)
    private func countRefused(_ record: KafkaProducerMessage, error: KafkaError, result: String) {
        let topics = self.configuration.topics
        let kind =
            switch record.topic {
            case topics.outcomes: "outcome"
            case topics.deadLetters: "dead_letter"
            case topics.commands: "command"
            default: "retry"
            }
        let dimensions = [("record", kind), ("error", error.name), ("result", result)]
        (self.metrics ?? Self.processMetrics).increment(Self.refusedMetric, dimensions)
    }

    private static let processMetrics = WorkerMetrics()

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
        headers.removeAll {
            [WorkerHeaders.retryDueAt, WorkerHeaders.retryTier, WorkerHeaders.retryPartition].contains($0.name)
        }
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

/// Topics' partition counts with the time they were read.
final class PartitionCounts: Sendable {
    private let counts = Mutex<[String: (count: Int, at: ContinuousClock.Instant)]>([:])

    func fresh(_ topic: String) -> Int? {
        self.counts.withLock { counts in
            guard let entry = counts[topic], ContinuousClock.now - entry.at < .seconds(60) else { return nil }
            return entry.count
        }
    }

    func any(_ topic: String) -> Int? { self.counts.withLock { $0[topic]?.count } }

    func store(_ topic: String, _ count: Int) { self.counts.withLock { $0[topic] = (count, .now) } }
}
