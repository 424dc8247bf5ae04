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

    func process(_ message: KafkaConsumerMessage, scope: PartitionScope) async -> Bool {
        let dueMillis = message.headers.string(WorkerHeaders.retryDueAt).flatMap(Int64.init)
        let due = dueMillis.map(Timestamp.date(milliseconds:)) ?? Date()
        if due > Date() {
            if scope.hold() { await self.pause(scope.partition) }
            let arrived = await scope.sleep(until: CommandProcessor.instant(for: due))
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
            metadata: ["tier": "\(message.headers.string(WorkerHeaders.retryTier) ?? "-")", "key": "\(message.headers.string(WorkerHeaders.idempotencyKey) ?? "-")"]
        )
        return true
    }
}
