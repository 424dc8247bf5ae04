import CancelCore
import Foundation
import Kafka
import Logging

/// The command's path once it is decoded and where it belongs: claim the key, wait until the
/// order may be cancelled, pace, mark the call sent, call with the send-time guard, and act on
/// the one decision `RetryPolicy.next` makes of the answer.
extension CommandProcessor {
    // The command's path is a chain of small async functions, not one inlined body: a command
    // waiting (for its user's slot, a connection, the provider) holds only the frames of the
    // calls it is in, so 10,000 commands in flight cost ~10 KB each instead of ~30 KB.
    @inline(never)
    func handle(_ command: CancelCommand, message: KafkaConsumerMessage, scope: PartitionScope) async -> Bool {
        let identity = command.identity
        let key = command.idempotencyKey
        let fingerprint = OutcomeID.fingerprint(of: identity)
        var entry: LedgerEntry
        switch await self.claim(key, fingerprint: fingerprint, scope: scope) {
        case .claimed(let claimed): entry = claimed
        case .reused: return await self.rejectReuse(command, fingerprint: fingerprint, scope: scope)
        case .done: return true
        case .abandoned: return false
        }
        // A delivery older than the key's latest dead letter was dead-lettered already (its
        // offset was not committed before the partition moved or the worker restarted): only a
        // replay of that dead letter (its `cw.replay.count` one higher each time) reopens the key.
        let replays = message.headers.string(WorkerHeaders.replayCount).flatMap(Int.init) ?? 0
        if entry.deadLetters > replays {
            self.log(
                .warning, "delivery already dead-lettered; replay its dead letter to try again", identity,
                [
                    "dead_letters": .stringConvertible(entry.deadLetters), "replay_count": .stringConvertible(replays),
                    "partition": .stringConvertible(message.partition), "offset": .stringConvertible(message.offset),
                ])
            self.metrics.increment(WorkerMetrics.duplicates)
            await self.releaseQuietly(key, fence: entry.fence)
            return true
        }
        // Configuration, not the command, is wrong: a dead letter, replayable once fixed; the key stays usable.
        guard let provider = self.providers[command.provider] else {
            return await self.deadLetter(
                message, errorClass: .configuration,
                reason: "no adapter is configured for provider \(command.provider)", identity: identity, answer: nil,
                attempts: entry.attempts, fence: entry.fence, scope: scope, deadLetterCount: entry.deadLetters + 1)
        }
        guard provider.knowsAccount(command.account) else {
            return await self.deadLetter(
                message, errorClass: .configuration,
                reason: "no credentials for account \"\(command.account)\" at \(command.provider)", identity: identity,
                answer: nil, attempts: entry.attempts, fence: entry.fence, scope: scope,
                deadLetterCount: entry.deadLetters + 1)
        }
        let deadline = command.deadline.map(self.clock.instant(for:))
        let round = message.headers.string(WorkerHeaders.retryRound).flatMap(Int.init) ?? 0
        var localAttempts = 0
        var lastReason = ""
        // Calls whose result was unknown, this delivery's and earlier deliveries': those the
        // records carry, and calls the ledger counted that no record reports (a worker died or
        // lost its claim mid-call).
        var uncertain = message.headers.string(WorkerHeaders.uncertainAttempts).flatMap(Int.init) ?? 0
        // A replayed command (its failure context stripped) starts a fresh attempt budget from
        // the ledger's count; its earlier calls are accounted for by its dead letter.
        let attemptsHeader = message.headers.string(WorkerHeaders.attempts).flatMap(Int.init)
        let replayedNow = message.headers.string(WorkerHeaders.replayCount) != nil && attemptsHeader == nil
        let budgetBase =
            message.headers.string(WorkerHeaders.attemptsBase).flatMap(Int.init) ?? (replayedNow ? entry.attempts : 0)
        let reported = attemptsHeader ?? (replayedNow ? entry.attempts : 0)
        if entry.state == .sent { uncertain += max(0, entry.attempts - reported) }

        if let due = provider.notBefore(CancelRequest(command: command, attempt: entry.attempts + 1)),
            due > self.clock.date
        {
            switch await self.waitUntilCancellable(
                command, due: due, message: message, round: round, attempts: entry.attempts, fence: entry.fence,
                uncertain: uncertain, scope: scope)
            {
            case .go: break
            case .finished(let finished): return finished
            }
        }
        // A retry due later than the longest tier holds came back early: it waits here, alone.
        if let dueMillis = message.headers.string(WorkerHeaders.retryDueAt).flatMap(Int64.init) {
            let due = Timestamp.date(milliseconds: dueMillis)
            if let deadline = command.deadline, due >= deadline {
                return await self.finish(
                    identity, status: .expired, reason: "the deadline passes before the next retry is due", answer: nil,
                    attempts: entry.attempts, fence: entry.fence, uncertain: uncertain, scope: scope)
            }
            guard await scope.sleep(until: self.clock.instant(for: due)) else {
                await self.releaseQuietly(key, fence: entry.fence)
                return false
            }
        }

        while true {
            if let deadline, self.clock.now >= deadline {
                let reason =
                    lastReason.isEmpty
                    ? "the deadline passed before a call could be made"
                    : "the deadline passed while retrying (last answer: \(lastReason))"
                return await self.finish(
                    identity, status: .expired, reason: reason, answer: nil, attempts: entry.attempts,
                    fence: entry.fence, scope: scope)
            }
            switch await self.pace(command, deadline: deadline, scope: scope) {
            case .go:
                break
            case .expired:
                return await self.finish(
                    identity, status: .expired,
                    reason: "the \(command.provider) rate limit for this account allows no call before the deadline",
                    answer: nil, attempts: entry.attempts, fence: entry.fence, scope: scope)
            case .abandoned:
                await self.releaseQuietly(key, fence: entry.fence)
                return false
            }
            switch await self.ledgerStep(
                "mark_sent", scope: scope,
                {
                    try await self.ledger.markSent(
                        key: key, owner: self.owner, fence: entry.fence, lease: self.configuration.claimLease,
                        now: self.clock.date)
                })
            {
            case .ok(let updated): entry = updated
            case .leaseLost: return true
            case .abandoned:
                await self.releaseQuietly(key, fence: entry.fence)
                return false
            }

            // The call, with the send-time guard checked right before the bytes go out. A guard
            // that says "not yet" (the user's slot, a provider pause) sends the call back to wait
            // without its connection; the ledger already counts this one attempt.
            let call = CallState(fence: entry.fence, leaseWritten: self.clock.now)
            var started = self.clock.now
            var answered: ProviderCallResult?
            while answered == nil {
                started = self.clock.now
                answered = await provider.cancel(CancelRequest(command: command, attempt: entry.attempts)) {
                    await self.sendVerdict(command, deadline: deadline, call: call, scope: scope)
                }
                guard answered == nil else { break }
                switch call.takeStop() {
                case .wait(let until)?:
                    if let deadline, until > deadline {
                        return await self.finish(
                            identity, status: .expired,
                            reason:
                                "the \(command.provider) rate limit for this account allows no call before the deadline; no call was made",
                            answer: nil, attempts: entry.attempts, fence: entry.fence, uncertain: uncertain,
                            scope: scope)
                    }
                    guard await scope.sleep(until: until) else {
                        await self.releaseQuietly(key, fence: entry.fence)
                        return false
                    }
                case .expired?:
                    return await self.finish(
                        identity, status: .expired,
                        reason: "the deadline passed before the call could be sent; no call was made", answer: nil,
                        attempts: entry.attempts, fence: entry.fence, uncertain: uncertain, scope: scope)
                case .leaseLost?:
                    self.log(
                        .warning, "claim lost before the call was sent; the new holder answers for the key", identity,
                        ["fence": .stringConvertible(entry.fence)])
                    return true
                case .revoked?, nil:
                    await self.releaseQuietly(key, fence: entry.fence)
                    return false
                }
            }
            guard let result = answered else { return false }
            self.recordAnswer(result, identity: identity, attempt: entry.attempts, took: self.clock.now - started)

            // The answer's side effects: a pause the provider asked for, a call in doubt; either
            // counts as this delivery's attempt.
            switch result.classification {
            case .retryLater(let after, let throttle):
                localAttempts += 1
                let until = self.clock.now + (after ?? .seconds(1))
                switch throttle {
                case .account:
                    scope.pacer.pause(command.provider, account: command.account, until: until)
                    await self.keepPause(command.provider, account: command.account, after: after ?? .seconds(1))
                case .provider:
                    self.gate.pause(command.provider, until: until)
                    await self.keepPause(command.provider, account: nil, after: after ?? .seconds(1))
                case .order: break  // only this command waits: the backoff honours `after`
                }
            case .unknown:
                localAttempts += 1
                uncertain += 1
            default:
                break
            }

            // What comes next: one decision (RetryPolicy.next), performed here.
            let step = self.policy.next(
                after: result.classification, callsMade: entry.attempts - budgetBase, localAttempts: localAttempts,
                timeLeft: deadline.map { $0 - self.clock.now }, random: Double.random(in: 0..<1))
            switch step {
            case .finish(let status):
                return await self.finish(
                    identity, status: status, reason: Self.reason(result.reason, status: status, uncertain: uncertain),
                    answer: result.answer, attempts: entry.attempts, fence: entry.fence, uncertain: uncertain,
                    scope: scope)
            case .configurationDeadLetter:
                self.log(.error, "provider refused our configuration", identity, ["reason": "\(result.reason)"])
                return await self.deadLetter(
                    message, errorClass: .configuration, reason: result.reason, identity: identity,
                    answer: result.answer, attempts: entry.attempts, fence: entry.fence, uncertain: uncertain,
                    scope: scope, deadLetterCount: entry.deadLetters + 1)
            case .retriesExhausted:
                return await self.deadLetter(
                    message, errorClass: .retriesExhausted,
                    reason: "gave up after \(entry.attempts) attempts; last answer: \(result.reason)",
                    identity: identity, answer: result.answer, attempts: entry.attempts, fence: entry.fence,
                    uncertain: uncertain, scope: scope,
                    deadLetterCount: entry.deadLetters + 1
                )
            case .expire:
                return await self.finish(
                    identity, status: .expired,
                    reason: "the deadline passes before the next attempt (last answer: \(result.reason))",
                    answer: result.answer, attempts: entry.attempts, fence: entry.fence, uncertain: uncertain,
                    scope: scope)
            case .retryInProcess(let delay):
                lastReason = result.reason
                self.metrics.increment(
                    WorkerMetrics.retries, [("provider", command.provider.rawValue), ("tier", "in_process")])
                self.log(
                    .info, "retrying in process", identity,
                    [
                        "attempts": .stringConvertible(entry.attempts), "backoff": .stringConvertible(delay),
                        "reason": "\(result.reason)",
                    ])
                guard await scope.sleep(until: self.clock.now + delay) else {
                    await self.releaseQuietly(key, fence: entry.fence)
                    return false
                }
            case .retryTier(let providerAsked):
                var carried = message
                if budgetBase > 0 { carried.headers.set(WorkerHeaders.attemptsBase, String(budgetBase)) }
                return await self.handOff(
                    command, message: carried, round: round, providerAsked: providerAsked, result: result,
                    attempts: entry.attempts, fence: entry.fence, uncertain: uncertain, scope: scope)
            }
        }
    }
}
