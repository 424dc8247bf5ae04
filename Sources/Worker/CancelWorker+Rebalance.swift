import CancelCore
import Foundation
import Kafka
import Logging
import Synchronization

/// Rebalances: scopes for assigned partitions (with the providers' running pauses), drained and
/// committed revocations, and the listener librdkafka's rebalance callback calls.
extension CancelWorker {
    /// Creates the new partitions' scopes. Before their first record is fetched, the pauses
    /// providers asked for that still run (kept in the ledger by whoever got the answer) are
    /// applied, so a 29001 or Retry-After outlives the partition's move to this worker.
    func assigned(_ partitions: [KafkaTopicPartition], generation: UInt64, membership: WorkerMembership) async {
        self.scopes.joined(membership)
        self.commitHold.withLock { $0[membership] = nil }
        let limits = Dictionary(
            uniqueKeysWithValues: self.configuration.rateLimits.keys.compactMap { provider in
                self.configuration.effectiveRateLimit(for: provider).map { (provider, $0) }
            })
        let scopes = partitions.map { partition in
            PartitionScope(
                partition: partition, generation: generation, limits: limits,
                concurrency: self.configuration.partitionConcurrency,
                handoverDelay: self.configuration.handoverDelay, clock: self.clock
            )
        }
        let commands = scopes.filter { $0.partition.topic == self.configuration.topics.commands }
        if !commands.isEmpty { await self.applyKeptPauses(to: commands) }
        for scope in scopes { self.scopes.add(scope) }
        self.metrics.increment(WorkerMetrics.rebalances, [("event", "assigned")])
        self.metrics.gauge(WorkerMetrics.assignedPartitions, value: Double(self.scopes.all.count))
        if !partitions.isEmpty {
            self.logger.info("partitions assigned", metadata: ["partitions": Self.list(partitions)])
        }
    }

    /// Applies the running pauses kept in the ledger to `scopes` (accounts) and the gate
    /// (providers). A pause applied to a partition that holds none of the account's commands
    /// costs one map entry until it ends. The ledger gets `timeout` to answer; without an
    /// answer the partitions start with the hand-over delay only (logged).
    func applyKeptPauses(to scopes: [PartitionScope], timeout: Duration = .seconds(2)) async {
        let ledger = self.ledger
        let now = self.clock.date
        let loaded = await withTimeout(timeout) { () -> Result<[PacingPause], any Error> in
            do { return .success(try await ledger.pauses(activeAt: now)) } catch { return .failure(error) }
        }
        let pauses: [PacingPause]
        switch loaded {
        case .success(let found)?:
            pauses = found
        case .failure(let error)?:
            self.logger.warning(
                "could not read the providers' running pauses from the ledger", metadata: ["error": "\(error)"])
            return
        case nil:
            self.logger.warning(
                "the ledger did not list the providers' running pauses in time",
                metadata: ["timeout": .stringConvertible(timeout)])
            return
        }
        for pause in pauses {
            guard let provider = ProviderID(rawValue: pause.provider) else { continue }
            let until = self.clock.instant(for: pause.until)
            if let account = pause.account {
                for scope in scopes { scope.pacer.pause(provider, account: account, until: until) }
            } else {
                self.gate.pause(provider, until: until)
            }
        }
        if !pauses.isEmpty {
            self.logger.info(
                "applied the providers' running pauses", metadata: ["pauses": .stringConvertible(pauses.count)])
        }
    }

    /// Wakes every waiting command of the revoked partitions (they give their keys back and
    /// will be redelivered to the new owner), waits for in-flight calls to finish, writes the
    /// `published` marks still on their way, and commits.
    func revoked(_ partitions: [KafkaTopicPartition], membership: WorkerMembership) async {
        let revoked = self.scopes.remove(partitions)
        guard !revoked.isEmpty else { return }
        let lanes = self.lanesBox.withLock { $0 }
        for scope in revoked {
            scope.revoke()
            lanes?.abandon(scope)
        }
        let started = ContinuousClock.now
        let timeout = self.configuration.drainTimeout
        let drained = await withTaskGroup(of: Bool.self) { group in
            for scope in revoked { group.addTask { await scope.drained(timeout: timeout) } }
            return await group.reduce(true) { $0 && $1 }
        }
        // The next owner must find the keys these partitions published `published`, not
        // `completed` (it would publish their outcomes again): marks first, then the commit that
        // lets the partitions go.
        await self.publishedBox.withLock({ $0 })?.flush()
        if let consumers = self.consumersBox.withLock({ $0 }) {
            await self.commit(revoked, consumers: consumers, revoking: true)
        }
        // The partitions' lag is their new owner's to report now.
        for scope in revoked { self.metrics.removeGauge(WorkerMetrics.consumerLag, Self.lagLabels(scope.partition)) }
        self.metrics.increment(WorkerMetrics.rebalances, [("event", "revoked")])
        self.metrics.gauge(WorkerMetrics.assignedPartitions, value: Double(self.scopes.all.count))
        let log: Logger.Level = drained ? .info : .warning
        self.logger.log(
            level: log, "partitions revoked",
            metadata: [
                "partitions": Self.list(partitions), "drained": .stringConvertible(drained),
                "drain_time": .stringConvertible(ContinuousClock.now - started),
            ])
    }

    /// A consumer per membership, each with its own rebalance listener.
    func makeConsumers() throws -> WorkerConsumers {
        func consumer(_ membership: WorkerMembership) throws -> KafkaConsumer {
            try KafkaConsumer(
                configuration: self.configuration.consumerConfiguration(membership),
                topics: self.configuration.topics(of: membership),
                rebalanceListener: Listener(worker: self, membership: membership),
                logger: self.logger
            )
        }
        let commands = try consumer(.commands)
        do {
            return WorkerConsumers(
                commands: commands,
                retries: self.configuration.memberships.contains(.retries) ? try consumer(.retries) : nil)
        } catch {
            commands.close()
            throw error
        }
    }

    final class Listener: KafkaRebalanceListener {
        let worker: CancelWorker
        let membership: WorkerMembership

        init(worker: CancelWorker, membership: WorkerMembership) {
            self.worker = worker
            self.membership = membership
        }

        func partitionsAssigned(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
            await self.worker.assigned(partitions, generation: generation, membership: self.membership)
        }

        func partitionsRevoked(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
            await self.worker.revoked(partitions, membership: self.membership)
        }
    }
}
