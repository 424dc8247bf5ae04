import CancelCore
import Foundation
import Kafka
import Logging

/// Endings, as `DeliveryRules` decides them: the key's terminal outcome, a dead letter, a park
/// in a retry tier, a skipped copy; and the ledger steps around them (claim, fenced writes,
/// release).
extension CommandProcessor {
    // MARK: Endings

    /// Performs a delivery's ending; whether everything it produced was acknowledged.
    @inline(never)
    func end(
        _ ending: DeliveryEnding, _ delivery: ClaimedDelivery, answer: ProviderAnswer?, scope: PartitionScope
    ) async -> Bool {
        let identity = delivery.command.identity
        switch ending {
        case .skipDuplicate:
            self.log(
                .warning, "delivery already dead-lettered; replay its dead letter to try again", identity,
                [
                    "dead_letters": .stringConvertible(delivery.entry.deadLetters),
                    "replay_count": .stringConvertible(delivery.facts.replayCount),
                    "partition": .stringConvertible(delivery.message.partition),
                    "offset": .stringConvertible(delivery.message.offset),
                ])
            self.metrics.increment(WorkerMetrics.duplicates)
            await self.releaseQuietly(identity.idempotencyKey, fence: delivery.fence)
            return true
        case .finish(let status, let reason, let uncertain):
            return await self.finish(
                identity, status: status, reason: reason, answer: answer, attempts: delivery.attempts,
                fence: delivery.fence, uncertain: uncertain, scope: scope)
        case .deadLetter(let errorClass, let reason, let uncertain, let attemptsBase):
            return await self.deadLetter(
                Self.carrying(attemptsBase, delivery.message), errorClass: errorClass, reason: reason,
                identity: identity, answer: answer, attempts: delivery.attempts, fence: delivery.fence,
                uncertain: uncertain, scope: scope, deadLetterCount: delivery.entry.deadLetters + 1)
        case .park(let parking, let uncertain):
            return await self.park(
                delivery.command, message: Self.carrying(parking.attemptsBase, delivery.message), parking,
                attempts: delivery.attempts, fence: delivery.fence, uncertain: uncertain, answer: answer, scope: scope,
                deadLetterCount: delivery.entry.deadLetters + 1)
        }
    }

    /// The record with the attempt budget's base it must carry on (`cw.attempts.base`), if any.
    static func carrying(_ attemptsBase: Int?, _ message: KafkaConsumerMessage) -> KafkaConsumerMessage {
        guard let attemptsBase else { return message }
        var carried = message
        carried.headers.set(WorkerHeaders.attemptsBase, String(attemptsBase))
        return carried
    }

    /// Records and publishes the key's terminal outcome.
    @inline(never)
    func finish(
        _ identity: CommandIdentity, status: OutcomeStatus, reason: String, answer: ProviderAnswer?, attempts: Int,
        fence: Int,
        uncertain: Int = 0, scope: PartitionScope
    ) async -> Bool {
        let key = identity.idempotencyKey
        var outcome = CancelOutcome(
            outcomeID: OutcomeID.terminal(idempotencyKey: key), identity: identity, status: status, reason: reason,
            providerResponse: answer, attempts: attempts, completedAt: self.clock.date, workerID: self.owner
        )
        outcome.uncertainAttempts = uncertain > 0 ? uncertain : nil
        let bytes = outcome.encoded()
        switch await self.ledgerStep(
            .complete, scope: scope,
            {
                try await self.ledger.complete(
                    key: key, owner: self.owner, fence: fence, outcome: bytes, now: self.clock.date)
            })
        {
        case .ok: break
        case .leaseLost: return true
        case .abandoned: return false
        }
        // From here the ledger holds the outcome: whoever sees this key again publishes these bytes.
        guard await self.router.deliver(self.router.outcomeMessage(bytes, idempotencyKey: key), scope: scope) else {
            return false
        }
        self.published.mark(key)
        self.metrics.outcome(provider: identity.provider, status: status)
        self.log(
            .info, "outcome published", identity,
            ["status": .string(status.rawValue), "attempts": .stringConvertible(attempts)])
        return true
    }

    /// Dead-letters the record (and, for a command, publishes its `failed` outcome).
    @inline(never)
    func deadLetter(
        _ message: KafkaConsumerMessage, errorClass: DeadLetterClass, reason: String, identity: CommandIdentity?,
        answer: ProviderAnswer?, attempts: Int, fence: Int = 0, uncertain: Int = 0, scope: PartitionScope,
        deadLetterCount: Int = 1
    ) async -> Bool {
        let now = self.clock.date
        var record = self.router.deadLetterMessage(
            of: message, errorClass: errorClass, reason: reason, attempts: attempts, answer: answer, command: identity,
            now: now
        )
        record.headers.removeAll { $0.name == WorkerHeaders.uncertainAttempts }
        if uncertain > 0 { record.headers.set(WorkerHeaders.uncertainAttempts, String(uncertain)) }
        guard await self.router.deliver(record, scope: scope) else {
            if let identity { await self.releaseQuietly(identity.idempotencyKey, fence: fence) }
            return false
        }
        self.metrics.increment(WorkerMetrics.deadLetters, [("error_class", errorClass.rawValue)])
        guard let identity else { return true }
        guard
            await self.publishFailed(
                identity, reason: reason, errorClass: errorClass, answer: answer, attempts: attempts, fence: fence,
                uncertain: uncertain, deadLetterCount: deadLetterCount, completedAt: now, scope: scope)
        else { return false }
        self.log(.warning, "dead-lettered", identity, ["error_class": "\(errorClass.rawValue)", "reason": "\(reason)"])
        return true
    }

    /// Publishes the command's `failed` outcome and releases its key, if claimed (`fence`), as
    /// dead-lettered; false if the partition was revoked first.
    @inline(never)
    func publishFailed(
        _ identity: CommandIdentity, reason: String, errorClass: DeadLetterClass, answer: ProviderAnswer?,
        attempts: Int, fence: Int?, uncertain: Int, deadLetterCount: Int, completedAt: Date, scope: PartitionScope
    ) async -> Bool {
        var outcome = CancelOutcome(
            outcomeID: OutcomeID.failed(idempotencyKey: identity.idempotencyKey, deadLetterCount: deadLetterCount),
            identity: identity, status: .failed, reason: reason, errorClass: errorClass.rawValue,
            providerResponse: answer, attempts: attempts, completedAt: completedAt, workerID: self.owner
        )
        outcome.uncertainAttempts = uncertain > 0 ? uncertain : nil
        guard
            await self.router.deliver(
                self.router.outcomeMessage(outcome.encoded(), idempotencyKey: identity.idempotencyKey), scope: scope)
        else {
            if let fence { await self.releaseQuietly(identity.idempotencyKey, fence: fence) }
            return false
        }
        if let fence {
            _ = await self.ledgerStep(
                .release, scope: scope,
                {
                    try await self.ledger.release(
                        key: identity.idempotencyKey, owner: self.owner, fence: fence, deadLettered: true,
                        now: self.clock.date)
                })
        }
        self.metrics.outcome(provider: identity.provider, status: .failed)
        return true
    }

    /// Produces the command to its retry tier and releases the key until it comes back.
    @inline(never)
    func park(
        _ command: CancelCommand, message: KafkaConsumerMessage, _ parking: RetryParking, attempts: Int, fence: Int,
        uncertain: Int, answer: ProviderAnswer?, scope: PartitionScope, deadLetterCount: Int
    ) async -> Bool {
        var retry = self.router.retryMessage(
            of: message, tier: parking.tier, round: parking.round, dueAt: parking.dueAt, attempts: attempts,
            answer: answer, reason: parking.reason, now: self.clock.date
        )
        retry.headers.removeAll { $0.name == WorkerHeaders.uncertainAttempts }
        if uncertain > 0 { retry.headers.set(WorkerHeaders.uncertainAttempts, String(uncertain)) }
        switch await self.router.place(retry, scope: scope) {
        case .stored: break
        case .revoked:
            await self.releaseQuietly(command.idempotencyKey, fence: fence)
            return false
        case .refused(let refusal):
            // The retry will never come back: the command ends here, answered.
            return await self.answerUndeliverable(
                command.identity,
                reason:
                    "the cluster refused its retry (tier \(parking.tier.name)) for good: \(refusal); the record is in the dead-letter topic as undeliverable, unless even that was refused (see the log)",
                answer: answer, attempts: attempts, fence: fence, uncertain: uncertain,
                deadLetterCount: deadLetterCount, scope: scope)
        }
        self.metrics.increment(
            WorkerMetrics.retries, [("provider", command.provider.rawValue), ("tier", parking.tier.name)])
        self.log(
            .info, "handed to retry tier", command.identity,
            ["tier": "\(parking.tier.name)", "attempts": .stringConvertible(attempts), "reason": "\(parking.reason)"])
        _ = await self.ledgerStep(
            .release, scope: scope,
            {
                try await self.ledger.release(
                    key: command.idempotencyKey, owner: self.owner, fence: fence, deadLettered: false,
                    now: self.clock.date)
            })
        return true
    }

    /// A command whose own record (its retry, its move to its user's partition) the cluster
    /// refused for good, so it will not come back: answered `failed` with class
    /// `undeliverable`, and its key, if claimed (`fence`), released as dead-lettered (the
    /// letter is not replayable; a corrected resend takes a new key).
    @inline(never)
    func answerUndeliverable(
        _ identity: CommandIdentity, reason: String, answer: ProviderAnswer?, attempts: Int, fence: Int?,
        uncertain: Int, deadLetterCount: Int, scope: PartitionScope
    ) async -> Bool {
        guard
            await self.publishFailed(
                identity, reason: reason, errorClass: .undeliverable, answer: answer, attempts: attempts, fence: fence,
                uncertain: uncertain, deadLetterCount: deadLetterCount, completedAt: self.clock.date, scope: scope)
        else { return false }
        self.log(.error, "undeliverable: answered failed", identity, ["reason": "\(reason)"])
        return true
    }

    /// A retry tier's record whose next record the cluster refused for good (`RetryRelay`): its
    /// undeliverable dead letter is stored, and the command will not come back. The key is
    /// claimed (it was released when the command was parked) and the command answered `failed`
    /// (`undeliverable`), its key released as dead-lettered, so that a replay reopens it. A key
    /// done meanwhile needs nothing; a record that is no command (tiers only carry commands) has
    /// nobody to answer.
    func answerRefusedRetry(_ message: KafkaConsumerMessage, reason: String, scope: PartitionScope) async -> Bool {
        guard case .valid(let command) = self.decoder.decode(message.value) else { return true }
        let identity = command.identity
        let why =
            "\(reason); the record is in the dead-letter topic as undeliverable, unless even that was refused (see the log)"
        let uncertain = WorkerHeaders.count(WorkerHeaders.uncertainAttempts, in: message.headers) ?? 0
        return await self.exclusively(identity.idempotencyKey) {
            switch await self.claim(
                identity.idempotencyKey, fingerprint: OutcomeID.fingerprint(of: identity), sendIfNew: false,
                scope: scope)
            {
            case .claimed(let entry, _):
                return await self.answerUndeliverable(
                    identity, reason: why, answer: nil, attempts: entry.attempts, fence: entry.fence,
                    uncertain: uncertain, deadLetterCount: entry.deadLetters + 1, scope: scope)
            case .reused:
                return await self.answerUndeliverable(
                    identity, reason: why, answer: nil, attempts: 0, fence: nil, uncertain: uncertain,
                    deadLetterCount: 1, scope: scope)
            case .done: return true
            case .abandoned: return false
            }
        }
    }

    // MARK: Ledger

    enum ClaimStep {
        /// `sent`: the claim also marked the key's first call sent (a new key, `sendIfNew`).
        case claimed(LedgerEntry, sent: Bool)
        case reused
        case done
        case abandoned
    }

    /// Claims the key, waiting out other workers' leases; a key already done has its recorded
    /// outcome published again if Kafka never acknowledged it.
    @inline(never)
    func claim(_ key: String, fingerprint: String, sendIfNew: Bool, scope: PartitionScope) async -> ClaimStep {
        while true {
            let step = await self.ledgerStep(
                .claim, scope: scope,
                {
                    try await self.ledger.claim(
                        key: key, owner: self.owner, fingerprint: fingerprint, lease: self.configuration.claimLease,
                        now: self.clock.date, sendIfNew: sendIfNew)
                })
            guard case .ok(let (result, sent)) = step else { return .abandoned }
            switch DeliveryRules.claimed(result, now: self.clock.date) {
            case .proceed(let entry):
                return .claimed(entry, sent: sent)
            case .rejectReuse:
                return .reused
            case .duplicate(let republish):
                self.metrics.increment(WorkerMetrics.duplicates)
                // Published by this process a moment ago, its mark on the way: nothing to repeat.
                if let bytes = republish, !self.published.isAcknowledged(key) {
                    guard
                        await self.router.deliver(self.router.outcomeMessage(bytes, idempotencyKey: key), scope: scope)
                    else { return .abandoned }
                    self.published.mark(key)
                }
                return .done
            case .claimAgain(let wait):
                guard await scope.sleep(until: self.clock.now + wait) else { return .abandoned }
            case .awaitPublished(let wait):
                // Published by this process a moment ago, its mark on the way: nothing to repeat.
                if self.published.isAcknowledged(key) {
                    self.metrics.increment(WorkerMetrics.duplicates)
                    return .done
                }
                guard await scope.sleep(until: self.clock.now + wait) else { return .abandoned }
            }
        }
    }

    enum LedgerStep<T> {
        case ok(T)
        case leaseLost
        case abandoned
    }

    /// Runs a ledger operation, retrying while the store is unavailable, until the partition is revoked.
    @inline(never)
    func ledgerStep<T>(
        _ operation: LedgerOperation, scope: PartitionScope, _ body: () async throws -> T
    ) async -> LedgerStep<T> {
        var backoff: Duration = .milliseconds(50)
        while true {
            do {
                return .ok(try await self.metrics.ledger(operation, body))
            } catch LedgerError.leaseLost(let key, let heldBy) {
                self.log(
                    .warning, "ledger claim lost to another worker",
                    ["key": "\(key)", "held_by": "\(heldBy ?? "-")", "operation": "\(operation.rawValue)"])
                return .leaseLost
            } catch {
                self.log(
                    .error, "ledger operation failed, retrying",
                    ["operation": "\(operation.rawValue)", "error": "\(error)"])
                guard await scope.sleep(until: self.clock.now + backoff) else { return .abandoned }
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    @inline(never)
    func releaseQuietly(_ key: String, fence: Int, callNotSent: Bool = false) async {
        do {
            try await self.ledger.release(
                key: key, owner: self.owner, fence: fence, deadLettered: false, callNotSent: callNotSent,
                now: self.clock.date)
        } catch {
            self.log(
                .debug, "could not release an abandoned claim (its lease will expire)",
                ["key": "\(key)", "error": "\(error)"])
        }
    }
}
