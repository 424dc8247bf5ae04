import CancelCore
import Foundation
import Kafka
import Logging

/// Waiting and parking: an order not cancellable yet, a hand-off to the next retry tier, and
/// the produce to the tier that fits the wait.
extension CommandProcessor {
    enum Wait {
        case go
        case finished(Bool)
    }

    /// An order the provider does not accept a cancel for yet (feee.io's 5-minute rule) waits
    /// alone: in process when that is short, else parked in a retry tier without using up a
    /// round or an attempt. Other orders of the account go on meanwhile.
    @inline(never)
    func waitUntilCancellable(
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
        let wait = Duration.seconds(min(due.timeIntervalSince(self.clock.date), 86_400))
        if wait <= self.policy.maxInProcessBackoff {
            guard await scope.sleep(until: self.clock.now + wait) else {
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
    func handOff(
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
        let dueAt = self.clock.date.addingTimeInterval(wait.timeInterval)
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
    func park(
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
        let now = self.clock.date
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
                    key: command.idempotencyKey, owner: self.owner, fence: fence, deadLettered: false,
                    now: self.clock.date)
            })
        return true
    }
}
