import CancelCore
import Foundation
import Kafka
import Logging
import Synchronization

/// The life of one record from the commands topic: decode → claim the key in the ledger →
/// pace the call (per-user limit, provider pauses, deadline) → call the provider → route the
/// result (outcome, in-process retry, retry tier, dead letter). Returns whether the record is
/// finished (everything it produced was acknowledged), i.e. whether its offset may be committed.
///
/// This file: intake (decode, misplaced records, one task per key) and rejections. The path
/// of a valid command is in `CommandProcessor+Call.swift`; pacing and the send-time guard in
/// `+Pacing`; outcomes, dead letters, retry tiers and the ledger steps in `+Endings`. What to
/// do at each step is decided by `DeliveryRules` (CancelCore); these files perform it.
struct CommandProcessor: Sendable {
    let configuration: WorkerConfiguration
    let ledger: any IdempotencyLedger
    let providers: [ProviderID: any CancelProvider]
    let router: RecordRouter
    let gate: ProviderGate
    let keyLocks: KeyLocks
    let metrics: WorkerMetrics
    /// Where acknowledged outcomes are marked `published`, in batches off the command's path.
    let published: PublishedMarks
    let decoder: CommandDecoder
    let logger: Logger
    /// Wall and monotonic time for every decision and wait (a manual clock in tests).
    var clock: any WorkerClock = SystemClock()
    /// Holds calls after a freeze of the process (`FreezeWatch`); none in some unit tests.
    var freezes: FreezeWatch? = nil

    var owner: String { self.configuration.workerID }
    var policy: RetryPolicy { self.configuration.retry }

    func process(_ message: KafkaConsumerMessage, scope: PartitionScope) async -> Bool {
        await self.process(message, decoded: self.decoder.decode(message.value), scope: scope)
    }

    /// `process` of a record already decoded (the intake decodes valid commands to queue them
    /// by provider, see `CommandLanes`).
    func process(_ message: KafkaConsumerMessage, decoded: CommandDecoder.Decoded, scope: PartitionScope) async -> Bool
    {
        self.metrics.consumed(topic: message.topic)
        switch decoded {
        case .undecodable(let reason):
            self.log(
                .warning, "undecodable command, dead-lettering it",
                [
                    "partition": .stringConvertible(message.partition), "offset": .stringConvertible(message.offset),
                    "reason": "\(reason)",
                ])
            return await self.deadLetter(
                message, errorClass: .invalidCommand, reason: reason, identity: nil, answer: nil, attempts: 0,
                scope: scope
            )
        case .invalid(let identity, let reason):
            return await self.exclusively(identity.idempotencyKey) {
                await self.reject(identity, reason: reason, message: message, scope: scope)
            }
        case .valid(let command):
            if message.topic == self.configuration.topics.commands,
                let moved = await self.moveIfMisplaced(command, message: message, scope: scope)
            {
                return moved
            }
            return await self.exclusively(command.idempotencyKey) {
                // Revoked while it waited for its key: the next owner has it. Claimed and marked
                // sent here, it would count a call in doubt that never left.
                guard !scope.isRevoked else { return false }
                return await self.handle(command, message: message, scope: scope)
            }
        }
    }

    /// A user's rate limit holds only if all its commands share one partition, so one worker
    /// paces them. A command keyed otherwise than `provider:account`, or on another partition
    /// than the murmur2 partitioner gives that key (a mis-keyed producer, another partitioner,
    /// a partition-count change), is produced again where it belongs and not processed here.
    /// Nil: it is where it belongs (or the partition count is unknown right now).
    @inline(never)
    func moveIfMisplaced(
        _ command: CancelCommand, message: KafkaConsumerMessage, scope: PartitionScope
    ) async -> Bool? {
        let key = Array(command.kafkaKey.utf8)
        guard let count = await self.router.partitionCount(of: message.topic) else { return nil }
        let partition = KafkaPartitioner.partition(forKey: key, partitionCount: count)
        guard message.key != key || message.partition != partition else { return nil }
        var headers = message.headers
        headers.set(WorkerHeaders.reroutedFrom, "\(message.partition)@\(message.offset)")
        let moved = KafkaProducerMessage(
            topic: message.topic, partition: partition, key: key, value: message.value, headers: headers)
        switch await self.router.place(moved, scope: scope) {
        case .stored: break
        case .revoked: return false
        case .refused(let refusal):
            // It will not come back from its user's partition: answered here, without a claim.
            return await self.answerUndeliverable(
                command.identity,
                reason:
                    "the cluster refused its move to its user's partition (key provider:account) for good: \(refusal); the record is in the dead-letter topic as undeliverable, unless even that was refused (see the log)",
                answer: nil, attempts: 0, fence: nil, uncertain: 0, deadLetterCount: 1, scope: scope)
        }
        self.metrics.increment(WorkerMetrics.rerouted)
        self.log(
            .warning, "command moved to its user's partition", command.identity,
            [
                "from": "\(message.partition)@\(message.offset)", "to": "\(partition)",
                "key_was": "\(String(decoding: message.key ?? [], as: UTF8.self))",
            ])
        return true
    }

    /// One task per key in this process; duplicates wait and then find the key done.
    func exclusively(_ key: String, _ body: () async -> Bool) async -> Bool {
        // A free key is taken at once. Otherwise the wait is not for the provider: the command's
        // lane serves others meanwhile (stepping aside starts or wakes another lane, so only
        // when there is a wait). Cancelled (shutdown): abandoned, redelivered.
        if Task.isCancelled || !self.keyLocks.tryLock(key) {
            guard await CommandLanes.stepAside({ (try? await self.keyLocks.lock(key)) != nil }) else { return false }
        }
        let result = await body()
        self.keyLocks.unlock(key)
        return result
    }

    // MARK: Rejections (no ledger)

    @inline(never)
    /// An invalid command is answered `rejected` without touching the ledger: it does not use up
    /// its key, so a corrected resend under the same key is processed. Its outcome has its own id
    /// (per key and payload), never the key's terminal id.
    func reject(
        _ identity: CommandIdentity, reason: String, message: KafkaConsumerMessage, scope: PartitionScope
    ) async -> Bool {
        self.log(.info, "rejecting invalid command", identity, ["reason": "\(reason)"])
        let outcomeID = OutcomeID.invalid(idempotencyKey: identity.idempotencyKey, payload: message.value)
        return await self.publishRejection(identity, outcomeID: outcomeID, reason: reason, scope: scope)
    }

    /// A different command under a used key: answered `rejected` (reason
    /// `idempotency_key_reused`, its own outcome id); the key's first command and its outcome stand.
    @inline(never)
    func rejectReuse(_ command: CancelCommand, fingerprint: String, scope: PartitionScope) async -> Bool {
        let identity = command.identity
        self.log(.warning, "idempotency key reused for a different order", identity, [:])
        return await self.publishRejection(
            identity, outcomeID: OutcomeID.reused(idempotencyKey: identity.idempotencyKey, fingerprint: fingerprint),
            reason:
                "idempotency_key_reused: the key was first used for a different provider, account or order; that command's outcome stands, this one is not processed",
            scope: scope
        )
    }

    /// Publishes a `rejected` outcome that does not touch the ledger (its id is not the key's
    /// terminal id, so it never stands in for the key's outcome).
    @inline(never)
    func publishRejection(
        _ identity: CommandIdentity, outcomeID: String, reason: String, scope: PartitionScope
    ) async -> Bool {
        let outcome = CancelOutcome(
            outcomeID: outcomeID, identity: identity, status: .rejected, reason: reason, attempts: 0,
            completedAt: self.clock.date, workerID: self.owner
        )
        guard
            await self.router.deliver(
                self.router.outcomeMessage(outcome.encoded(), idempotencyKey: identity.idempotencyKey), scope: scope)
        else {
            return false
        }
        self.metrics.outcome(provider: identity.provider, status: .rejected)
        return true
    }

    // MARK: Helpers

    // Logging and metric bookkeeping happen in functions that are never inlined: inlined into
    // the async path, their temporaries would sit in the frames every waiting command keeps.
    // The metadata is an autoclosure, built only when the level is enabled.

    @inline(never)
    func log(_ level: Logger.Level, _ message: Logger.Message, _ metadata: @autoclosure () -> Logger.Metadata) {
        self.logger.log(level: level, message, metadata: metadata())
    }

    @inline(never)
    func log(
        _ level: Logger.Level, _ message: Logger.Message, _ identity: CommandIdentity,
        _ extra: @autoclosure () -> Logger.Metadata
    ) {
        guard self.logger.logLevel <= level else { return }
        let extra = extra()
        var metadata = Logger.Metadata(minimumCapacity: 4 + extra.count)
        metadata["command_id"] = .string(identity.commandID)
        metadata["idempotency_key"] = .string(identity.idempotencyKey)
        metadata["provider"] = .string(identity.provider)
        metadata["account"] = .string(identity.account)
        for (key, value) in extra { metadata[key] = value }
        self.logger.log(level: level, message, metadata: metadata)
    }

    @inline(never)
    func recordAnswer(
        _ result: ProviderCallResult, provider: ProviderID, identity: CommandIdentity, attempt: Int, took: Duration
    ) {
        self.metrics.answer(provider, result.classification, took: took)
        self.log(
            .debug, "provider answered", identity,
            [
                "attempt": .stringConvertible(attempt), "result": "\(result.classification)",
                "http_status": .stringConvertible(result.answer.httpStatus ?? 0),
            ])
    }
}

/// One call's state across its send-time guard's turns: the claim it works under, when its
/// lease was last written, and why the guard stopped it.
final class CallState: Sendable {
    enum Stop: Sendable {
        case wait(until: ContinuousClock.Instant)
        case expired, leaseLost, revoked
    }

    let fence: Int
    private let state: Mutex<(leaseWritten: ContinuousClock.Instant, stop: Stop?)>

    init(fence: Int, leaseWritten: ContinuousClock.Instant) {
        self.fence = fence
        self.state = Mutex((leaseWritten, nil))
    }

    var leaseWritten: ContinuousClock.Instant { self.state.withLock { $0.leaseWritten } }

    func renewed(at instant: ContinuousClock.Instant) {
        self.state.withLock { $0.leaseWritten = instant }
    }

    /// Why the guard stopped the call (once).
    func takeStop() -> Stop? {
        self.state.withLock { state in
            defer { state.stop = nil }
            return state.stop
        }
    }

    func stop(_ reason: Stop) -> SendVerdict {
        self.state.withLock { $0.stop = reason }
        return switch reason {
        case .wait(let until): .wait(until: until)
        case .expired: .abandon(reason: "the deadline passed")
        case .leaseLost: .abandon(reason: "the claim was lost")
        case .revoked: .abandon(reason: "the partition was revoked")
        }
    }
}
