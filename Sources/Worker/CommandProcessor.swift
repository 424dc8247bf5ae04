import CancelCore
import Foundation
import Kafka
import Logging
import Synchronization

/// The life of one record from the commands topic: decode → claim the key in the ledger →
/// pace the call (per-user limit, provider pauses, deadline) → call the provider → route the
/// result (outcome, in-process retry, retry tier, dead letter). Returns whether the record is
/// finished (everything it produced was acknowledged), i.e. whether its offset may be committed.
struct CommandProcessor: Sendable {
    let configuration: WorkerConfiguration
    let ledger: any IdempotencyLedger
    let providers: [ProviderID: any CancelProvider]
    let router: RecordRouter
    let gate: ProviderGate
    let keyLocks: KeyLocks
    let metrics: WorkerMetrics
    let decoder: CommandDecoder
    let logger: Logger

    private var owner: String { self.configuration.workerID }
    private var policy: RetryPolicy { self.configuration.retry }

    func process(_ message: KafkaConsumerMessage, scope: PartitionScope) async -> Bool {
        self.metrics.increment(WorkerMetrics.commandsConsumed, [("topic", message.topic)])
        switch self.decoder.decode(message.value) {
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
                await self.handle(command, message: message, scope: scope)
            }
        }
    }

    /// A user's rate limit holds only if all its commands share one partition, so one worker
    /// paces them. A command keyed otherwise than `provider:account`, or on another partition
    /// than the murmur2 partitioner gives that key (a mis-keyed producer, another partitioner,
    /// a partition-count change), is produced again where it belongs and not processed here.
    /// Nil: it is where it belongs (or the partition count is unknown right now).
    @inline(never)
    private func moveIfMisplaced(
        _ command: CancelCommand, message: KafkaConsumerMessage, scope: PartitionScope
    ) async -> Bool? {
        let key = Array("\(command.provider.rawValue):\(command.account)".utf8)
        guard let count = await self.router.partitionCount(of: message.topic) else { return nil }
        let partition = KafkaPartitioner.partition(forKey: key, partitionCount: count)
        guard message.key != key || message.partition != partition else { return nil }
        var headers = message.headers
        headers.set(WorkerHeaders.reroutedFrom, "\(message.partition)@\(message.offset)")
        let moved = KafkaProducerMessage(
            topic: message.topic, partition: partition, key: key, value: message.value, headers: headers)
        guard await self.router.deliver(moved, scope: scope) else { return false }
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
    private func exclusively(_ key: String, _ body: () async -> Bool) async -> Bool {
        // Cancelled while a duplicate holds the key (shutdown): abandoned, redelivered.
        do { try await self.keyLocks.lock(key) } catch { return false }
        let result = await body()
        self.keyLocks.unlock(key)
        return result
    }

    // MARK: The command's path

    @inline(never)
    /// An invalid command is answered `rejected` without touching the ledger: it does not use up
    /// its key, so a corrected resend under the same key is processed. Its outcome has its own id
    /// (per key and payload), never the key's terminal id.
    private func reject(
        _ identity: CommandIdentity, reason: String, message: KafkaConsumerMessage, scope: PartitionScope
    ) async -> Bool {
        self.log(.info, "rejecting invalid command", identity, ["reason": "\(reason)"])
        let outcomeID = OutcomeID.invalid(idempotencyKey: identity.idempotencyKey, payload: message.value)
        return await self.publishRejection(identity, outcomeID: outcomeID, reason: reason, scope: scope)
    }

    /// A different command under a used key: answered `rejected` (reason
    /// `idempotency_key_reused`, its own outcome id); the key's first command and its outcome stand.
    @inline(never)
    private func rejectReuse(_ command: CancelCommand, fingerprint: String, scope: PartitionScope) async -> Bool {
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
    private func publishRejection(
        _ identity: CommandIdentity, outcomeID: String, reason: String, scope: PartitionScope
    ) async -> Bool {
        let outcome = CancelOutcome(
            outcomeID: outcomeID, identity: identity, status: .rejected, reason: reason, attempts: 0,
            completedAt: Date(), workerID: self.owner
        )
        guard
            await self.router.deliver(
                self.router.outcomeMessage(outcome.encoded(), idempotencyKey: identity.idempotencyKey), scope: scope)
        else {
            return false
        }
        self.metrics.increment(
            WorkerMetrics.outcomes, [("provider", identity.provider), ("status", OutcomeStatus.rejected.rawValue)])
        return true
    }

    // The command's path is a chain of small async functions, not one inlined body: a command
    // waiting (for its user's slot, a connection, the provider) holds only the frames of the
    // calls it is in, so 10,000 commands in flight cost ~10 KB each instead of ~30 KB.
    @inline(never)
    private func handle(_ command: CancelCommand, message: KafkaConsumerMessage, scope: PartitionScope) async -> Bool {
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
        let deadline = command.deadline.map(Self.instant(for:))
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

        if let due = provider.notBefore(CancelRequest(command: command, attempt: entry.attempts + 1)), due > Date() {
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
            guard await scope.sleep(until: Self.instant(for: due)) else {
                await self.releaseQuietly(key, fence: entry.fence)
                return false
            }
        }

        while true {
            if let deadline, ContinuousClock.now >= deadline {
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
                        now: Date())
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
            let call = CallState(fence: entry.fence, leaseWritten: .now)
            var started = ContinuousClock.now
            var answered: ProviderCallResult?
            while answered == nil {
                started = .now
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
            self.recordAnswer(result, identity: identity, attempt: entry.attempts, took: .now - started)

            // The answer's side effects: a pause the provider asked for, a call in doubt; either
            // counts as this delivery's attempt.
            switch result.classification {
            case .retryLater(let after, let throttle):
                localAttempts += 1
                let until = ContinuousClock.now + (after ?? .seconds(1))
                switch throttle {
                case .account:
                    scope.pause(command.provider, account: command.account, until: until)
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
                timeLeft: deadline.map { $0 - .now }, random: Double.random(in: 0..<1))
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
                guard await scope.sleep(until: .now + delay) else {
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

    private enum Wait {
        case go
        case finished(Bool)
    }

    /// An order the provider does not accept a cancel for yet (feee.io's 5-minute rule) waits
    /// alone: in process when that is short, else parked in a retry tier without using up a
    /// round or an attempt. Other orders of the account go on meanwhile.
    @inline(never)
    private func waitUntilCancellable(
        _ command: CancelCommand, due: Date, message: KafkaConsumerMessage, round: Int, attempts: Int, fence: Int,
        uncertain: Int,
        scope: PartitionScope
    ) async -> Wait {
        let why = "\(command.provider) accepts a cancel of this order only from \(Timestamp.format(due))"
        if let deadline = command.deadline, due >= deadline {
            return .finished(
                await self.finish(
                    command.identity, status: .expired,
                    reason: "\(why), after the command's deadline; no call was made", answer: nil, attempts: attempts,
                    fence: fence, uncertain: uncertain, scope: scope))
        }
        let wait = Duration.seconds(min(due.timeIntervalSinceNow, 86_400))
        if wait <= self.policy.maxInProcessBackoff {
            guard await scope.sleep(until: .now + wait) else {
                await self.releaseQuietly(command.idempotencyKey, fence: fence)
                return .finished(false)
            }
            return .go
        }
        return .finished(
            await self.park(
                command, message: message, round: round, dueAt: due, wait: wait, attempts: attempts, fence: fence,
                uncertain: uncertain, answer: nil, reason: why, scope: scope))
    }

    /// Parks the command in the next retry tier and gives the key up until it comes back.
    @inline(never)
    private func handOff(
        _ command: CancelCommand, message: KafkaConsumerMessage, round: Int, providerAsked: Duration?,
        result: ProviderCallResult, attempts: Int, fence: Int, uncertain: Int, scope: PartitionScope
    ) async -> Bool {
        guard let tier = self.policy.tier(forRound: round) else {
            return await self.deadLetter(
                message, errorClass: .retriesExhausted,
                reason: "no retry tier configured; last answer: \(result.reason)", identity: command.identity,
                answer: result.answer, attempts: attempts, fence: fence, uncertain: uncertain, scope: scope)
        }
        let wait = max(tier.delay, providerAsked ?? .zero)
        let dueAt = Date().addingTimeInterval(wait.timeInterval)
        if let deadline = command.deadline, dueAt >= deadline {
            return await self.finish(
                command.identity, status: .expired,
                reason: "the deadline passes before the next retry (last answer: \(result.reason))",
                answer: result.answer, attempts: attempts, fence: fence, uncertain: uncertain, scope: scope)
        }
        return await self.park(
            command, message: message, round: round + 1, dueAt: dueAt, wait: wait, attempts: attempts, fence: fence,
            uncertain: uncertain, answer: result.answer, reason: result.reason, scope: scope)
    }

    /// Produces the command to the retry tier that fits `wait` (the shortest whose delay is at
    /// least `wait`, so it never holds up the records queued behind it) and releases the key.
    @inline(never)
    private func park(
        _ command: CancelCommand, message: KafkaConsumerMessage, round: Int, dueAt: Date, wait: Duration, attempts: Int,
        fence: Int, uncertain: Int,
        answer: ProviderAnswer?, reason: String, scope: PartitionScope
    ) async -> Bool {
        guard let tier = self.policy.tier(forWait: wait) else {
            return await self.deadLetter(
                message, errorClass: .retriesExhausted, reason: "no retry tier configured; last answer: \(reason)",
                identity: command.identity, answer: answer, attempts: attempts, fence: fence, uncertain: uncertain,
                scope: scope)
        }
        let now = Date()
        var retry = self.router.retryMessage(
            of: message, tier: tier, round: round, dueAt: dueAt, attempts: attempts, answer: answer, reason: reason,
            now: now
        )
        retry.headers.removeAll { $0.name == WorkerHeaders.uncertainAttempts }
        if uncertain > 0 { retry.headers.set(WorkerHeaders.uncertainAttempts, String(uncertain)) }
        guard await self.router.deliver(retry, scope: scope) else {
            await self.releaseQuietly(command.idempotencyKey, fence: fence)
            return false
        }
        self.metrics.increment(WorkerMetrics.retries, [("provider", command.provider.rawValue), ("tier", tier.name)])
        self.log(
            .info, "handed to retry tier", command.identity,
            ["tier": "\(tier.name)", "attempts": .stringConvertible(attempts), "reason": "\(reason)"])
        _ = await self.ledgerStep(
            "release", scope: scope,
            {
                try await self.ledger.release(
                    key: command.idempotencyKey, owner: self.owner, fence: fence, deadLettered: false, now: Date())
            })
        return true
    }

    // MARK: Endings

    /// Records and publishes the key's terminal outcome.
    @inline(never)
    private func finish(
        _ identity: CommandIdentity, status: OutcomeStatus, reason: String, answer: ProviderAnswer?, attempts: Int,
        fence: Int,
        uncertain: Int = 0, scope: PartitionScope
    ) async -> Bool {
        let key = identity.idempotencyKey
        var outcome = CancelOutcome(
            outcomeID: OutcomeID.terminal(idempotencyKey: key), identity: identity, status: status, reason: reason,
            providerResponse: answer, attempts: attempts, completedAt: Date(), workerID: self.owner
        )
        outcome.uncertainAttempts = uncertain > 0 ? uncertain : nil
        let bytes = outcome.encoded()
        switch await self.ledgerStep(
            "complete", scope: scope,
            { try await self.ledger.complete(key: key, owner: self.owner, fence: fence, outcome: bytes, now: Date()) })
        {
        case .ok: break
        case .leaseLost: return true
        case .abandoned: return false
        }
        // From here the ledger holds the outcome: whoever sees this key again publishes these bytes.
        guard await self.router.deliver(self.router.outcomeMessage(bytes, idempotencyKey: key), scope: scope) else {
            return false
        }
        _ = await self.ledgerStep(
            "mark_published", scope: scope, { try await self.ledger.markPublished(key: key, now: Date()) })
        self.metrics.increment(WorkerMetrics.outcomes, [("provider", identity.provider), ("status", status.rawValue)])
        self.log(
            .info, "outcome published", identity,
            ["status": "\(status.rawValue)", "attempts": .stringConvertible(attempts)])
        return true
    }

    /// Dead-letters the record (and, for a command, publishes its `failed` outcome).
    @inline(never)
    private func deadLetter(
        _ message: KafkaConsumerMessage, errorClass: DeadLetterClass, reason: String, identity: CommandIdentity?,
        answer: ProviderAnswer?, attempts: Int, fence: Int = 0, uncertain: Int = 0, scope: PartitionScope,
        deadLetterCount: Int = 1
    ) async -> Bool {
        let now = Date()
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
        var outcome = CancelOutcome(
            outcomeID: OutcomeID.failed(idempotencyKey: identity.idempotencyKey, deadLetterCount: deadLetterCount),
            identity: identity, status: .failed, reason: reason, errorClass: errorClass.rawValue,
            providerResponse: answer, attempts: attempts, completedAt: now, workerID: self.owner
        )
        outcome.uncertainAttempts = uncertain > 0 ? uncertain : nil
        guard
            await self.router.deliver(
                self.router.outcomeMessage(outcome.encoded(), idempotencyKey: identity.idempotencyKey), scope: scope)
        else {
            await self.releaseQuietly(identity.idempotencyKey, fence: fence)
            return false
        }
        _ = await self.ledgerStep(
            "release", scope: scope,
            {
                try await self.ledger.release(
                    key: identity.idempotencyKey, owner: self.owner, fence: fence, deadLettered: true, now: Date())
            })
        self.metrics.increment(
            WorkerMetrics.outcomes, [("provider", identity.provider), ("status", OutcomeStatus.failed.rawValue)])
        self.log(.warning, "dead-lettered", identity, ["error_class": "\(errorClass.rawValue)", "reason": "\(reason)"])
        return true
    }

    // MARK: Ledger

    private enum ClaimStep {
        case claimed(LedgerEntry)
        case reused
        case done
        case abandoned
    }

    /// Claims the key, waiting out other workers' leases; a key already done has its recorded
    /// outcome published again if Kafka never acknowledged it.
    @inline(never)
    private func claim(_ key: String, fingerprint: String, scope: PartitionScope) async -> ClaimStep {
        while true {
            let step = await self.ledgerStep(
                "claim", scope: scope,
                {
                    try await self.ledger.claim(
                        key: key, owner: self.owner, fingerprint: fingerprint, lease: self.configuration.claimLease,
                        now: Date())
                })
            guard case .ok(let result) = step else { return .abandoned }
            switch result {
            case .claimed(let entry):
                return .claimed(entry)
            case .reused:
                return .reused
            case .done(let entry):
                self.metrics.increment(WorkerMetrics.duplicates)
                if entry.state == .completed, let bytes = entry.outcome {
                    guard
                        await self.router.deliver(self.router.outcomeMessage(bytes, idempotencyKey: key), scope: scope)
                    else { return .abandoned }
                    _ = await self.ledgerStep(
                        "mark_published", scope: scope, { try await self.ledger.markPublished(key: key, now: Date()) })
                }
                return .done
            case .busy(_, let leaseUntil):
                let wait = min(max(leaseUntil.timeIntervalSinceNow, 0.05), 1.0)
                guard await scope.sleep(until: .now + .milliseconds(Int64(wait * 1000))) else { return .abandoned }
            }
        }
    }

    private enum LedgerStep<T> {
        case ok(T)
        case leaseLost
        case abandoned
    }

    /// Runs a ledger operation, retrying while the store is unavailable, until the partition is revoked.
    @inline(never)
    private func ledgerStep<T>(
        _ operation: String, scope: PartitionScope, _ body: () async throws -> T
    ) async -> LedgerStep<T> {
        var backoff: Duration = .milliseconds(50)
        while true {
            do {
                return .ok(try await self.metrics.ledger(operation, body))
            } catch LedgerError.leaseLost(let key, let heldBy) {
                self.log(
                    .warning, "ledger claim lost to another worker",
                    ["key": "\(key)", "held_by": "\(heldBy ?? "-")", "operation": "\(operation)"])
                return .leaseLost
            } catch {
                self.log(
                    .error, "ledger operation failed, retrying", ["operation": "\(operation)", "error": "\(error)"])
                guard await scope.sleep(until: .now + backoff) else { return .abandoned }
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    @inline(never)
    private func releaseQuietly(_ key: String, fence: Int) async {
        do {
            try await self.ledger.release(key: key, owner: self.owner, fence: fence, deadLettered: false, now: Date())
        } catch {
            self.log(
                .debug, "could not release an abandoned claim (its lease will expire)",
                ["key": "\(key)", "error": "\(error)"])
        }
    }

    // MARK: Pacing

    /// Keeps a provider's pause in the ledger, so the next owner of the account's partition
    /// (after a rebalance, a restart) waits it out too. Best effort: if the ledger cannot take
    /// it, this worker still honours the pause, and a new owner starts with its hand-over delay.
    private func keepPause(_ provider: ProviderID, account: String?, after: Duration) async {
        let now = Date()
        do {
            try await self.ledger.recordPause(
                PacingPause(
                    provider: provider.rawValue, account: account, until: now.addingTimeInterval(after.timeInterval)),
                now: now)
        } catch {
            self.log(
                .warning,
                "could not keep a provider's pause in the ledger; a new owner of the partition will not know it",
                [
                    "provider": "\(provider)", "error": "\(error)",
                ])
        }
    }

    private enum Pace {
        case go, expired, abandoned
    }

    /// Waits for the account's booked slot at the provider (rate limit, its pauses,
    /// provider-wide pauses). Every wait ends early if the partition is revoked.
    @inline(never)
    private func pace(_ command: CancelCommand, deadline: ContinuousClock.Instant?, scope: PartitionScope) async -> Pace
    {
        let provider = command.provider
        guard let booking = scope.book(provider, account: command.account, now: .now, notAfter: deadline) else {
            return .expired
        }
        let target = max(booking.at, self.gate.openAt(provider, now: .now) ?? booking.at)
        if let deadline, target > deadline { return .expired }
        if target > .now {
            self.metrics.increment(WorkerMetrics.rateLimitWaits, [("provider", provider.rawValue)])
            self.metrics.record(
                WorkerMetrics.rateLimitWaitTime, [("provider", provider.rawValue)], duration: target - .now)
            guard await scope.sleep(until: target) else { return .abandoned }
        }
        return .go
    }

    /// The send-time guard, run by the provider once the call holds its connection, right
    /// before the request is written: the partition is still ours, the deadline has not passed,
    /// the provider is not paused, the claim is current (renewed when the wait ate into its
    /// lease: a claim lost meanwhile stops the call), and the user's rate-limit slot is taken
    /// now — a slot booked before a long wait for a connection would let queued calls leave
    /// together.
    @inline(never)
    private func sendVerdict(
        _ command: CancelCommand, deadline: ContinuousClock.Instant?, call: CallState, scope: PartitionScope
    ) async -> SendVerdict {
        let now = ContinuousClock.now
        if scope.isRevoked { return call.stop(.revoked) }
        if let deadline, now >= deadline { return call.stop(.expired) }
        if let open = self.gate.openAt(command.provider, now: now) { return call.stop(.wait(until: open)) }
        // Renew unless the lease was written in the last second (markSent, usually).
        if now - call.leaseWritten > .seconds(1) {
            do {
                _ = try await self.ledger.renew(
                    key: command.idempotencyKey, owner: self.owner, fence: call.fence,
                    lease: self.configuration.claimLease, now: Date())
                call.renewed(at: now)
            } catch LedgerError.leaseLost {
                return call.stop(.leaseLost)
            } catch {
                // The ledger is unreachable: never send on an unknown claim.
                return call.stop(.wait(until: .now + .seconds(1)))
            }
        }
        if let wait = scope.acquire(command.provider, account: command.account, now: .now) {
            return call.stop(.wait(until: wait))
        }
        return .send
    }

    // MARK: Helpers

    static func instant(for date: Date) -> ContinuousClock.Instant {
        ContinuousClock.now + .milliseconds(Int64((date.timeIntervalSinceNow * 1000).rounded()))
    }

    /// A terminal outcome's reason: after a call whose result was unknown, a "not found",
    /// "already cancelled" or refusal may be the echo of our own earlier cancel.
    static func reason(_ reason: String, status: OutcomeStatus, uncertain: Int) -> String {
        guard uncertain > 0, status != .cancelled else { return reason }
        let calls =
            uncertain == 1 ? "an earlier call's result was unknown" : "\(uncertain) earlier calls' results were unknown"
        return "\(reason) — note: \(calls), so the order may have been cancelled by our own earlier call"
    }

    static func label(_ classification: CancelClassification) -> String {
        switch classification {
        case .retryLater: "retry_later"
        default: classification.description
        }
    }

    // Logging and metric bookkeeping happen in functions that are never inlined: inlined into
    // the async path, their temporaries would sit in the frames every waiting command keeps.
    // The metadata is an autoclosure, built only when the level is enabled.

    @inline(never)
    private func log(_ level: Logger.Level, _ message: Logger.Message, _ metadata: @autoclosure () -> Logger.Metadata) {
        self.logger.log(level: level, message, metadata: metadata())
    }

    @inline(never)
    private func log(
        _ level: Logger.Level, _ message: Logger.Message, _ identity: CommandIdentity,
        _ extra: @autoclosure () -> Logger.Metadata
    ) {
        guard self.logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [
            "command_id": "\(identity.commandID)", "idempotency_key": "\(identity.idempotencyKey)",
            "provider": "\(identity.provider)", "account": "\(identity.account)",
        ]
        metadata.merge(extra()) { _, new in new }
        self.logger.log(level: level, message, metadata: metadata)
    }

    @inline(never)
    private func recordAnswer(_ result: ProviderCallResult, identity: CommandIdentity, attempt: Int, took: Duration) {
        self.metrics.record(
            WorkerMetrics.providerLatency,
            [("provider", identity.provider), ("result", Self.label(result.classification))], duration: took)
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
