import CancelCore
import Foundation
import Kafka
import Logging

/// How a claimed delivery ends, as `DeliveryRules` decided: a skipped old copy, the key's
/// outcome, a dead letter, or a hand-off to a retry tier (the produce and the key's release).
extension CommandProcessor {
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
                attempts: delivery.attempts, fence: delivery.fence, uncertain: uncertain, answer: answer, scope: scope)
        }
    }

    /// The record with the attempt budget's base it must carry on (`cw.attempts.base`), if any.
    static func carrying(_ attemptsBase: Int?, _ message: KafkaConsumerMessage) -> KafkaConsumerMessage {
        guard let attemptsBase else { return message }
        var carried = message
        carried.headers.set(WorkerHeaders.attemptsBase, String(attemptsBase))
        return carried
    }

    /// Produces the command to its retry tier and releases the key until it comes back.
    @inline(never)
    func park(
        _ command: CancelCommand, message: KafkaConsumerMessage, _ parking: RetryParking, attempts: Int, fence: Int,
        uncertain: Int, answer: ProviderAnswer?, scope: PartitionScope
    ) async -> Bool {
        var retry = self.router.retryMessage(
            of: message, tier: parking.tier, round: parking.round, dueAt: parking.dueAt, attempts: attempts,
            answer: answer, reason: parking.reason, now: self.clock.date
        )
        retry.headers.removeAll { $0.name == WorkerHeaders.uncertainAttempts }
        if uncertain > 0 { retry.headers.set(WorkerHeaders.uncertainAttempts, String(uncertain)) }
        guard await self.router.deliver(retry, scope: scope) else {
            await self.releaseQuietly(command.idempotencyKey, fence: fence)
            return false
        }
        self.metrics.increment(
            WorkerMetrics.retries, [("provider", command.provider.rawValue), ("tier", parking.tier.name)])
        self.log(
            .info, "handed to retry tier", command.identity,
            ["tier": "\(parking.tier.name)", "attempts": .stringConvertible(attempts), "reason": "\(parking.reason)"])
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
