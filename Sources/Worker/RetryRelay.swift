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
    /// Wall time for due times, and the tier partition's waits (on its scope's clock).
    var clock: any WorkerClock = SystemClock()

    func process(_ message: KafkaConsumerMessage, scope: PartitionScope) async -> Bool {
        let dueMillis = message.headers.string(WorkerHeaders.retryDueAt).flatMap(Int64.init)
        let due = dueMillis.map(Timestamp.date(milliseconds:)) ?? self.clock.date
        // A record never holds its tier's partition longer than the tier's delay: the records
        // queued behind it are due by then. One due later moves on at once — to a longer tier,
        // or, past the longest, back to its commands partition, where it waits alone.
        if let overdue = self.movingOn(message, due: due) {
            guard await self.router.deliver(overdue, scope: scope) else { return false }
            self.logger.debug("retry due beyond its tier's delay, moved on", metadata: ["topic": "\(overdue.topic)"])
            return true
        }
        if due > self.clock.date {
            if scope.hold() { await self.pause(scope.partition) }
            let arrived = await scope.sleep(until: self.clock.instant(for: due))
            if scope.unhold() && !scope.isRevoked { await self.resume(scope.partition) }
            guard arrived else { return false }
        }
        var headers = message.headers
        headers.removeAll { $0.name == WorkerHeaders.retryDueAt }
        let partition = message.headers.string(WorkerHeaders.retryPartition).flatMap(Int32.init)
        let back = KafkaProducerMessage(
            topic: self.configuration.topics.commands,
            partition: partition,
            key: message.key,
            value: message.value,
            headers: headers
        )
        guard await self.router.deliver(back, scope: scope) else { return false }
        self.logger.debug(
            "retry due, returned to the commands topic",
            metadata: [
                "tier": "\(message.headers.string(WorkerHeaders.retryTier) ?? "-")",
                "key": "\(message.headers.string(WorkerHeaders.idempotencyKey) ?? "-")",
            ]
        )
        return true
    }

    /// Where a record due beyond its tier's delay (from when it was parked) goes instead of
    /// waiting here; nil when it may wait in this tier.
    func movingOn(_ message: KafkaConsumerMessage, due: Date) -> KafkaProducerMessage? {
        let tiers = self.configuration.retry.tiers
        guard let name = message.headers.string(WorkerHeaders.retryTier),
            let tier = tiers.first(where: { $0.name == name }),
            let parkedMillis = message.headers.string(WorkerHeaders.lastFailureAt).flatMap(Int64.init)
        else { return nil }
        let latest = Timestamp.date(milliseconds: parkedMillis).addingTimeInterval(tier.delay.timeInterval + 1)
        guard due > latest else { return nil }
        var headers = message.headers
        if let longer = tiers.filter({ $0.delay > tier.delay }).min(by: { $0.delay < $1.delay }) {
            headers.set(WorkerHeaders.retryTier, longer.name)
            headers.set(WorkerHeaders.lastFailureAt, String(Timestamp.milliseconds(self.clock.date)))
            return KafkaProducerMessage(
                topic: self.configuration.topics.retryTopic(longer.name), key: message.key, value: message.value,
                headers: headers)
        }
        // Past the longest tier: back to the commands partition, the due time kept; the worker
        // that owns it holds the command in process until then.
        let partition = message.headers.string(WorkerHeaders.retryPartition).flatMap(Int32.init)
        return KafkaProducerMessage(
            topic: self.configuration.topics.commands, partition: partition, key: message.key, value: message.value,
            headers: headers)
    }
}
