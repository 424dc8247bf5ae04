import CancelCore
import Foundation
import Kafka
import Logging

/// The command's path once it is decoded and where it belongs: claim the key, take the steps
/// `DeliveryRules.start` plans up to the first call (waits, or an ending), then per attempt
/// check the deadline, pace, mark the call sent, call with the send-time guard, and perform
/// the step `DeliveryRules.afterAnswer` makes of the answer. Every decision is in
/// `DeliveryRules`; this file only performs them.
extension CommandProcessor {
    // The command's path is a chain of small async functions, not one inlined body: a command
    // waiting (for its user's slot, a connection, the provider) holds only the frames of the
    // calls it is in, so 10,000 commands in flight cost ~10 KB each instead of ~30 KB.
    @inline(never)
    func handle(_ command: CancelCommand, message: KafkaConsumerMessage, scope: PartitionScope) async -> Bool {
        let identity = command.identity
        let key = command.idempotencyKey
        let fingerprint = OutcomeID.fingerprint(of: identity)
        let provider = self.providers[command.provider]
        let facts = Self.delivery(command, message: message, policy: self.policy, clock: self.clock)
        let immediate = self.immediateStart(command, facts: facts, provider: provider, scope: scope)
        let entry: LedgerEntry
        switch await self.claim(key, fingerprint: fingerprint, sendIfNew: immediate != nil, scope: scope) {
        case .claimed(let claimed, let sent):
            if sent, let state = immediate, let provider {
                // A new key, marked sent by its claim: the call leaves now.
                let delivery = ClaimedDelivery(
                    command: command, message: message, facts: facts, entry: claimed, state: state)
                return await self.attempts(delivery, provider: provider, markedSent: true, scope: scope)
            }
            entry = claimed
        case .reused: return await self.rejectReuse(command, fingerprint: fingerprint, scope: scope)
        case .done: return true
        case .abandoned: return false
        }
        let plan = DeliveryRules.start(
            facts, entry: entry, provider: Self.readiness(provider, command, attempt: entry.attempts + 1),
            policy: self.policy,
            now: self.clock.date)
        let delivery = ClaimedDelivery(
            command: command, message: message, facts: facts, entry: entry, state: plan.state)
        for due in plan.waits {
            guard await scope.sleep(until: self.clock.instant(for: due)) else {
                await self.releaseQuietly(key, fence: entry.fence)
                return false
            }
        }
        if let ending = plan.ending { return await self.end(ending, delivery, answer: nil, scope: scope) }
        // `start` lets a call go only to a configured provider that knows the account.
        guard let provider else { return false }
        return await self.attempts(delivery, provider: provider, scope: scope)
    }

    /// `DeliveryRules.immediateStart` for this command: its plan if its key is new, and whether
    /// a rate limit or a pause paces its account or provider right now.
    func immediateStart(
        _ command: CancelCommand, facts: Delivery, provider: (any CancelProvider)?, scope: PartitionScope
    ) -> DeliveryState? {
        let now = self.clock.now
        let paced =
            scope.pacer.paces(command.provider, account: command.account, now: now)
            || self.gate.openAt(command.provider, now: now) != nil
        return DeliveryRules.immediateStart(
            facts, provider: Self.readiness(provider, command, attempt: 1), policy: self.policy, paced: paced,
            now: self.clock.date)
    }

    /// What `DeliveryRules` reads of the command's provider for its call number `attempt`.
    static func readiness(
        _ provider: (any CancelProvider)?, _ command: CancelCommand, attempt: Int
    ) -> ProviderReadiness {
        guard let provider else { return .noAdapter }
        guard provider.knowsAccount(command.account) else { return .noCredentials }
        return .ready(notBefore: provider.notBefore(CancelRequest(command: command, attempt: attempt)))
    }

    /// The delivery's facts as `DeliveryRules` reads them from the command and its headers.
    /// A header's value that no worker writes reads as absent (`WorkerHeaders.count`, `time`).
    static func delivery(
        _ command: CancelCommand, message: KafkaConsumerMessage, policy: RetryPolicy, clock: any WorkerClock
    ) -> Delivery {
        let headers = message.headers
        let replayCount = WorkerHeaders.count(WorkerHeaders.replayCount, in: headers)
        return Delivery(
            provider: command.provider, account: command.account, deadline: command.deadline,
            replayCount: replayCount ?? 0, isReplay: replayCount != nil,
            attempts: WorkerHeaders.count(WorkerHeaders.attempts, in: headers),
            attemptsBase: WorkerHeaders.count(WorkerHeaders.attemptsBase, in: headers),
            uncertainAttempts: WorkerHeaders.count(WorkerHeaders.uncertainAttempts, in: headers) ?? 0,
            retryRound: WorkerHeaders.count(WorkerHeaders.retryRound, in: headers) ?? 0,
            retryDueAt: WorkerHeaders.time(
                WorkerHeaders.retryDueAt, in: headers, latest: policy.latestDue(now: clock.date)))
    }

    /// The delivery's calls: before each, the deadline and the user's slot; the call under the
    /// send-time guard; after it, the answer's decision. `markedSent`: the claim already marked
    /// the first call sent.
    @inline(never)
    func attempts(
        _ delivery: ClaimedDelivery, provider: any CancelProvider, markedSent: Bool = false, scope: PartitionScope
    ) async -> Bool {
        let command = delivery.command
        let key = command.idempotencyKey
        var delivery = delivery
        var markedSent = markedSent
        let deadline = command.deadline.map(self.clock.instant(for:))
        while true {
            if let expired = DeliveryRules.beforeCall(deadline: deadline, now: self.clock.now, state: delivery.state) {
                return await self.end(expired, delivery, answer: nil, scope: scope)
            }
            switch await self.pace(command, deadline: deadline, state: delivery.state, scope: scope) {
            case .go: break
            case .ended(let ending): return await self.end(ending, delivery, answer: nil, scope: scope)
            case .abandoned:
                // A call its claim marked sent has not left.
                await self.releaseQuietly(key, fence: delivery.fence, callNotSent: markedSent)
                return false
            }
            if markedSent {
                markedSent = false
            } else {
                switch await self.markSent(delivery, scope: scope) {
                case .ok(let updated): delivery.entry = updated
                case .leaseLost: return true
                case .abandoned:
                    await self.releaseQuietly(key, fence: delivery.fence)
                    return false
                }
            }
            let result: ProviderCallResult
            switch await self.call(delivery, provider: provider, deadline: deadline, scope: scope) {
            case .answered(let answered): result = answered
            case .ended(let ending): return await self.end(ending, delivery, answer: nil, scope: scope)
            case .leaseLost: return true
            case .abandoned:
                // The guard stopped it: marked sent, it never left. (An abandoned `markSent`
                // above may or may not have been written: its call stays counted, in doubt.)
                await self.releaseQuietly(key, fence: delivery.fence, callNotSent: true)
                return false
            }

            let decision = DeliveryRules.afterAnswer(
                result, attempts: delivery.attempts, state: delivery.state, policy: self.policy,
                deadline: command.deadline, deadlineInstant: deadline, now: self.clock.reading,
                random: Double.random(in: 0..<1))
            delivery.state = decision.state
            if let pause = decision.pause { await self.pause(pause, command: command, scope: scope) }
            switch decision.step {
            case .retry(let delay):
                self.metrics.increment(
                    WorkerMetrics.retries, [("provider", command.provider.rawValue), ("tier", "in_process")])
                self.log(
                    .info, "retrying in process", command.identity,
                    [
                        "attempts": .stringConvertible(delivery.attempts), "backoff": .stringConvertible(delay),
                        "reason": "\(result.reason)",
                    ])
                guard await scope.sleep(until: self.clock.now + delay) else {
                    await self.releaseQuietly(key, fence: delivery.fence)
                    return false
                }
            case .end(let ending):
                if case .deadLetter(.configuration, _, _, _) = ending {
                    self.log(
                        .error, "provider refused our configuration", command.identity, ["reason": "\(result.reason)"])
                }
                return await self.end(ending, delivery, answer: result.answer, scope: scope)
            }
        }
    }

    /// Before a call: state `sent`, one attempt more, the lease extended.
    @inline(never)
    func markSent(_ delivery: ClaimedDelivery, scope: PartitionScope) async -> LedgerStep<LedgerEntry> {
        await self.ledgerStep(
            .markSent, scope: scope,
            {
                try await self.ledger.markSent(
                    key: delivery.command.idempotencyKey, owner: self.owner, fence: delivery.fence,
                    lease: self.configuration.claimLease, now: self.clock.date)
            })
    }

    enum Call {
        case answered(ProviderCallResult)
        case ended(DeliveryEnding)
        case leaseLost, abandoned
    }

    /// The call, with the send-time guard checked right before the bytes go out. A guard that
    /// says "not yet" (the user's slot, a provider pause) sends the call back to wait without
    /// its connection; the ledger already counts this one attempt.
    @inline(never)
    func call(
        _ delivery: ClaimedDelivery, provider: any CancelProvider, deadline: ContinuousClock.Instant?,
        scope: PartitionScope
    ) async -> Call {
        let command = delivery.command
        // When the ledger's lease was written (its `lease_until` less the lease), not when the
        // write returned: a ledger step that waited behind a busy writer came back with a lease
        // already partly spent, and the guard skipped its renewal as "written just now".
        let now = self.clock.now
        let written = delivery.entry.leaseUntil.map {
            self.clock.instant(for: $0.addingTimeInterval(-self.configuration.claimLease.timeInterval))
        }
        let call = CallState(fence: delivery.fence, leaseWritten: min(written ?? now, now))
        while true {
            let started = self.clock.now
            let answered = await provider.cancel(CancelRequest(command: command, attempt: delivery.attempts)) {
                await self.sendVerdict(command, deadline: deadline, call: call, scope: scope)
            }
            if let answered {
                self.recordAnswer(
                    answered, provider: command.provider, identity: command.identity, attempt: delivery.attempts,
                    took: self.clock.now - started)
                return .answered(answered)
            }
            switch call.takeStop() {
            case .wait(let until)?:
                if let expired = DeliveryRules.guardHolds(
                    until: until, deadline: deadline, provider: command.provider, state: delivery.state)
                {
                    return .ended(expired)
                }
                guard await scope.sleep(until: until) else { return .abandoned }
            case .expired?:
                return .ended(DeliveryRules.guardFoundDeadlinePassed(state: delivery.state))
            case .leaseLost?:
                self.log(
                    .warning, "claim lost before the call was sent; the new holder answers for the key",
                    command.identity, ["fence": .stringConvertible(delivery.fence)])
                return .leaseLost
            case .revoked?, nil:
                return .abandoned
            }
        }
    }

    /// The pause a provider asked for: this worker honours it at once, and the ledger keeps it
    /// for the next owner of the account's partition.
    func pause(_ pause: ProviderPause, command: CancelCommand, scope: PartitionScope) async {
        if pause.everyAccount {
            self.gate.pause(command.provider, until: pause.until)
            await self.keepPause(command.provider, account: nil, after: pause.after)
        } else {
            scope.pacer.pause(command.provider, account: command.account, until: pause.until)
            await self.keepPause(command.provider, account: command.account, after: pause.after)
        }
    }
}

/// A delivery the worker holds the key for: the command and its record, the facts the
/// decisions read, the ledger entry as last written, and the attempt accounting so far.
struct ClaimedDelivery: Sendable {
    let command: CancelCommand
    let message: KafkaConsumerMessage
    let facts: Delivery
    var entry: LedgerEntry
    var state: DeliveryState

    /// The claim the delivery works under.
    var fence: Int { self.entry.fence }
    /// The ledger's count of calls for the key.
    var attempts: Int { self.entry.attempts }
}
