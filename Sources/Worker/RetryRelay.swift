import CancelCore
import Foundation
import Kafka
import Logging

/// The consumer side of a retry tier: each record waits until it is due — its partition is
/// paused meanwhile, so a waiting tier never fills memory or blocks other partitions — and
/// then goes back to the commands topic, to the partition it came from, where the owner of
/// that partition paces its user. Tier records never call a provider themselves.
struct RetryRelay: Sendable {
    let configuration: WorkerConfiguration
    let router: RecordRouter
    let logger: Logger
    let pause: @Sendable (KafkaTopicPartition) async -> Void
    let resume: @Sendable (KafkaTopicPartition) async -> Void
    /// The tier record's next record (back to the commands topic, on to a longer tier) was
    /// refused for good (`refusal`) and stored as an undeliverable dead letter instead: the
    /// command will not come back, so it is answered here (`CommandProcessor.answerRefusedRetry`).
    /// False: its partition was revoked meanwhile.
    let answerRefused: @Sendable (KafkaConsumerMessage, String, PartitionScope) async -> Bool

    /// Wall time for due times, and the tier partition's waits (on its scope's clock).
    var clock: any WorkerClock = SystemClock()

    func process(_ message: KafkaConsumerMessage, scope: PartitionScope) async -> Bool {
        let headers = message.headers
        let now = self.clock.date
        let latest = self.configuration.retry.latestDue(now: now)
        // The tier is the topic the record sits in (its header only for a topic that names no
        // configured tier); a record parked by another producer without `cw.last-failure-at`
        // counts as parked now. Read from the headers alone, such a record waited at the head
        // of its tier partition until due, up to two days.
        let sittingIn = self.configuration.retry.tiers.first {
            self.configuration.topics.retryTopic($0.name) == message.topic
        }
        let parkedAt = WorkerHeaders.time(WorkerHeaders.lastFailureAt, in: headers, latest: latest)
        let step = DeliveryRules.retryRecord(
            due: WorkerHeaders.time(WorkerHeaders.retryDueAt, in: headers, latest: latest),
            tier: sittingIn?.name ?? headers.string(WorkerHeaders.retryTier),
            parkedAt: parkedAt ?? (sittingIn != nil ? now : nil),
            tiers: self.configuration.retry.tiers, now: now)
        switch step {
        case .moveToTier(let longer):
            return await self.moveOn(self.tierRecord(of: message, in: longer), of: message, scope: scope)
        case .repark(let tier, let turn):
            // Past the longest tier: its turn here, then round the same tier again.
            guard await self.wait(until: turn, scope: scope) else { return false }
            return await self.moveOn(self.tierRecord(of: message, in: tier), of: message, scope: scope)
        case .wait(let due):
            guard await self.wait(until: due, scope: scope) else { return false }
        case .backToCommands:
            break
        }
        var back = headers
        back.removeAll { $0.name == WorkerHeaders.retryDueAt }
        switch await self.router.place(self.commandsRecord(of: message, headers: back), scope: scope) {
        case .stored: break
        case .revoked: return false
        case .refused(let refusal):
            return await self.answerRefused(
                message, "the cluster refused its return to the commands topic for good: \(refusal)", scope)
        }
        self.logger.debug(
            "retry due, returned to the commands topic",
            metadata: [
                "tier": "\(headers.string(WorkerHeaders.retryTier) ?? "-")",
                "key": "\(headers.string(WorkerHeaders.idempotencyKey) ?? "-")",
            ]
        )
        return true
    }

    /// Holds the record until `date`, its partition paused meanwhile; false if it was revoked.
    private func wait(until date: Date, scope: PartitionScope) async -> Bool {
        scope.hold()
        await self.settle(scope)
        let arrived = await scope.sleep(until: self.clock.instant(for: date))
        scope.unhold()
        await self.settle(scope)
        return arrived
    }

    /// Pauses the tier partition while it holds records, resumes it once it holds none. One
    /// caller at a time applies the steps, and looks again after each: a resume and a pause
    /// submitted by two records at once could reach the consumer in either order, and a resume
    /// arriving last left the partition fetching while a record waited.
    func settle(_ scope: PartitionScope) async {
        var step = scope.tierStep(applied: nil)
        while let next = step {
            switch next {
            case .pause: await self.pause(scope.partition)
            case .resume: await self.resume(scope.partition)
            }
            step = scope.tierStep(applied: next)
        }
    }

    /// A record due beyond its tier's delay (from when it was parked) moves on at once instead
    /// of holding up the records queued behind it.
    func moveOn(
        _ overdue: KafkaProducerMessage, of message: KafkaConsumerMessage, scope: PartitionScope
    ) async -> Bool {
        switch await self.router.place(overdue, scope: scope) {
        case .stored: break
        case .revoked: return false
        case .refused(let refusal):
            return await self.answerRefused(
                message, "the cluster refused its move to \(overdue.topic) for good: \(refusal)", scope)
        }
        self.logger.debug("retry due beyond its tier's delay, moved on", metadata: ["topic": "\(overdue.topic)"])
        return true
    }

    /// The record parked again in `tier`, from now.
    func tierRecord(of message: KafkaConsumerMessage, in tier: RetryTier) -> KafkaProducerMessage {
        var headers = message.headers
        headers.set(WorkerHeaders.retryTier, tier.name)
        headers.set(WorkerHeaders.lastFailureAt, String(Timestamp.milliseconds(self.clock.date)))
        return KafkaProducerMessage(
            topic: self.configuration.topics.retryTopic(tier.name), key: message.key, value: message.value,
            headers: headers)
    }

    /// The record back on the commands topic, on the partition it came from.
    func commandsRecord(of message: KafkaConsumerMessage, headers: [KafkaHeader]) -> KafkaProducerMessage {
        KafkaProducerMessage(
            topic: self.configuration.topics.commands,
            partition: message.headers.string(WorkerHeaders.retryPartition).flatMap(Int32.init),
            key: message.key, value: message.value, headers: headers)
    }
}
