public import CancelCore
public import Foundation
public import Kafka
import Worker

/// A dead letter read back: the original record plus the failure context its headers carry.
public struct DeadLetterRecord: Sendable, Hashable {
    public var message: KafkaConsumerMessage

    public init(_ message: KafkaConsumerMessage) {
        self.message = message
    }

    private func header(_ name: String) -> String? { self.message.headers.string(name) }

    public var errorClass: String { self.header(WorkerHeaders.errorClass) ?? "unknown" }
    public var reason: String { self.header(WorkerHeaders.errorMessage) ?? "" }
    public var idempotencyKey: String? { self.header(WorkerHeaders.idempotencyKey) }
    public var provider: String? { self.header(WorkerHeaders.provider) }
    public var account: String? { self.header(WorkerHeaders.account) }
    public var attempts: Int { WorkerHeaders.count(WorkerHeaders.attempts, in: self.message.headers) ?? 0 }
    /// Times this command was replayed before it landed here again (0 for a value no worker writes).
    public var replayCount: Int { WorkerHeaders.count(WorkerHeaders.replayCount, in: self.message.headers) ?? 0 }
    public var deadLetteredAt: Date? {
        (self.header(WorkerHeaders.deadLetteredAt) ?? self.header(WorkerHeaders.lastFailureAt)).flatMap(Int64.init).map(
            Timestamp.date(milliseconds:))
            ?? (self.message.timestampMilliseconds > 0
                ? Timestamp.date(milliseconds: self.message.timestampMilliseconds) : nil)
    }
    /// Where the dead letter is stored: `partition@offset`.
    public var position: String { "\(self.message.partition)@\(self.message.offset)" }

    /// Undecodable input cannot be replayed as is.
    public var isReplayable: Bool {
        self.errorClass != DeadLetterClass.invalidCommand.rawValue && self.idempotencyKey != nil
    }
}

/// Which dead letters a replay or a listing considers.
public struct DeadLetterFilter: Sendable, Hashable {
    public var provider: String?
    public var account: String?
    public var errorClass: String?
    public var key: String?
    public var since: Date?
    public var until: Date?

    public init(
        provider: String? = nil, account: String? = nil, errorClass: String? = nil, key: String? = nil,
        since: Date? = nil, until: Date? = nil
    ) {
        self.provider = provider
        self.account = account
        self.errorClass = errorClass
        self.key = key
        self.since = since
        self.until = until
    }

    public func matches(_ record: DeadLetterRecord) -> Bool {
        if let provider, record.provider != provider { return false }
        if let account, record.account != account { return false }
        if let errorClass, record.errorClass != errorClass { return false }
        if let key, record.idempotencyKey != key { return false }
        if let since, (record.deadLetteredAt ?? .distantPast) < since { return false }
        if let until, (record.deadLetteredAt ?? .distantFuture) > until { return false }
        return true
    }
}

/// What a replay does with one dead letter.
public enum ReplayDecision: Sendable, Hashable {
    case replay
    /// The key already has its terminal outcome: replaying would change nothing.
    case skipCompleted(status: String)
    /// Replayed `count` times already (at or beyond the maximum): parked unless `--force`.
    case skipReplayedTooOften(count: Int)
    /// Undecodable input (`invalid_command`): fix it upstream and send a new command.
    case skipNotReplayable(reason: String)
    /// Dead-lettered before the ledger's retention: its key may have been purged, so a replay
    /// could call the provider again and publish a second outcome. `--force` replays it.
    case skipOlderThanRetention(deadLetteredAt: Date)
    /// The key was dead-lettered again after this record (`latest` dead letters in all, this one
    /// earlier): the worker drops a delivery older than the key's latest dead letter, so only
    /// the latest one's replay reopens the key. `--force` does not change that.
    case skipSuperseded(latest: Int)

    public var label: String {
        switch self {
        case .skipSuperseded: "superseded by a later dead letter"
        case .replay: "replay"
        case .skipCompleted: "completed in the ledger"
        case .skipReplayedTooOften: "replayed too often"
        case .skipNotReplayable: "not replayable"
        case .skipOlderThanRetention: "older than the ledger's retention"
        }
    }

    /// Decides for one selected record. `entry` is the key's ledger entry, if any.
    public static func decide(
        _ record: DeadLetterRecord, entry: LedgerEntry?, maxReplays: Int, force: Bool, retention: Duration? = nil,
        now: Date = Date()
    ) -> ReplayDecision {
        // A value shortened to fit the dead-letter topic is not the command any more: replayed,
        // it would come straight back as an invalid command.
        if record.message.headers.string(WorkerHeaders.valueTruncated) == "true" {
            let original = record.message.headers.string(WorkerHeaders.valueOriginalBytes) ?? "?"
            return .skipNotReplayable(
                reason: "its value was shortened to fit the dead-letter topic (\(original) bytes originally)")
        }
        guard record.isReplayable else {
            return .skipNotReplayable(reason: record.reason.isEmpty ? record.errorClass : record.reason)
        }
        if let retention, !force, entry == nil, let at = record.deadLetteredAt,
            at < now.addingTimeInterval(-retention.timeInterval)
        {
            return .skipOlderThanRetention(deadLetteredAt: at)
        }
        if let entry, entry.isDone {
            let status =
                entry.outcome.flatMap { try? CancelOutcome.decode($0) }?.status.rawValue ?? entry.state.rawValue
            return .skipCompleted(status: status)
        }
        // Replayed, it carries replay count + 1; the worker skips it if the key has more dead
        // letters than that (`DeliveryRules.start`).
        if let entry, entry.deadLetters > record.replayCount + 1 {
            return .skipSuperseded(latest: entry.deadLetters)
        }
        if record.replayCount >= maxReplays && !force {
            return .skipReplayedTooOften(count: record.replayCount)
        }
        return .replay
    }

    /// The command record to send back, with replay provenance and the failure context removed
    /// (so the worker starts its retry rounds afresh).
    public static func replayMessage(
        of record: DeadLetterRecord, topic: String, partition: Int32?, replayID: String
    ) -> KafkaProducerMessage {
        let failureContext: Set<String> = [
            WorkerHeaders.errorClass, WorkerHeaders.errorMessage, WorkerHeaders.providerStatus,
            WorkerHeaders.providerCode,
            WorkerHeaders.firstFailureAt, WorkerHeaders.lastFailureAt, WorkerHeaders.deadLetteredAt,
            WorkerHeaders.workerID,
            WorkerHeaders.retryRound, WorkerHeaders.retryTier, WorkerHeaders.retryDueAt, WorkerHeaders.retryPartition,
            WorkerHeaders.attempts, WorkerHeaders.attemptsBase, WorkerHeaders.consumerGroup,
            // Who confirmed an earlier replay: this one sets its own, or none.
            ReplayDecision.requestedByHeader, ReplayDecision.requestedAtHeader,
        ]
        var headers = record.message.headers.filter { !failureContext.contains($0.name) }
        headers.set(WorkerHeaders.replayID, replayID)
        headers.set(WorkerHeaders.replayCount, String(record.replayCount + 1))
        headers.set(WorkerHeaders.replayOriginTopic, record.message.topic)
        headers.set(WorkerHeaders.replayOriginPartition, String(record.message.partition))
        headers.set(WorkerHeaders.replayOriginOffset, String(record.message.offset))
        return KafkaProducerMessage(
            topic: topic, partition: partition, key: record.message.key, value: record.message.value, headers: headers)
    }
}
