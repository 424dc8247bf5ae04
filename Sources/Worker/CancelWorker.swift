public import CancelCore
import Foundation
import Kafka
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization

/// One worker replica: a member of the consumer group that turns cancel commands into
/// provider calls and outcomes, and of the retry tiers' group that hands due retries back
/// (`WorkerMembership`). Run it in a `ServiceGroup`; on graceful shutdown (SIGTERM) it stops
/// fetching, drains in-flight work within `drainTimeout`, commits, leaves both groups and
/// flushes the producer.
public final class CancelWorker: Service, Sendable {
    /// How long a stopping worker's producer flushes its outcomes, retry and dead-letter records.
    public static let outcomeFlushTimeout: Duration = .seconds(10)

    public let configuration: WorkerConfiguration
    private let providers: [ProviderID: any CancelProvider]
    let ledger: any IdempotencyLedger
    let logger: Logger
    let scopes = ScopeRegistry()
    let metrics: WorkerMetrics
    private let inFlight: AsyncSemaphore
    /// Provider-wide pauses, shared by every partition of this worker.
    let gate = ProviderGate()
    let consumersBox = Mutex<WorkerConsumers?>(nil)
    /// The running worker's command lanes (queued commands of revoked partitions leave them).
    let lanesBox = Mutex<CommandLanes?>(nil)
    /// The running worker's `published` marks (a revocation writes them before it commits).
    let publishedBox = Mutex<PublishedMarks?>(nil)
    /// Set when the coordinator refused a commit because the group is rebalancing: the periodic
    /// commits of that membership wait until this member's next assignment in its group (or
    /// this instant, at the latest).
    let commitHold = Mutex<[WorkerMembership: ContinuousClock.Instant]>([:])
    /// Intake's signal that records arrived: it starts the periodic commits again after a lull.
    private let activity = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    /// Set once the worker begins to stop (a graceful shutdown, a fatal producer error, a
    /// consumer that closed): readiness fails from then on, while it drains.
    private let stopping = Atomic<Bool>(false)
    /// Commands partitions whose held records may come back (`PartitionScope.hold`).
    private let heldReleases = AsyncStream.makeStream(of: PartitionScope.self)
    /// Commands partitions that began holding and may still hold: a record ending anywhere
    /// while the worker has room wakes them, not only their own records ending (those may all
    /// be stuck: a user's 429 pause, calls hanging to their timeout). `holdingCount` mirrors
    /// the count, so a record ending with nothing held reads one atomic.
    private let holding = Mutex<[PartitionScope]>([])
    private let holdingCount = Atomic<Int>(0)
    /// What the command pipeline reads the time from and sleeps on. The worker's own loops
    /// (commits, maintenance, draining) run on the system clocks: they pace Kafka and the ledger.
    let clock: any WorkerClock
    /// Holds provider calls after a freeze of the process (SIGSTOP, a paused VM), until the
    /// group has had time to revoke this member's partitions or confirm them.
    let freezes: FreezeWatch

    public init(
        configuration: WorkerConfiguration,
        providers: [ProviderID: any CancelProvider],
        ledger: any IdempotencyLedger,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        clock: any WorkerClock = SystemClock()
    ) {
        self.clock = clock
        self.metrics = WorkerMetrics(factory: metricsFactory)
        self.configuration = configuration
        self.providers = providers
        self.ledger = ledger
        var logger = logger
        logger[metadataKey: "worker_id"] = "\(configuration.workerID)"
        self.logger = logger
        self.inFlight = AsyncSemaphore(permits: configuration.maxInFlight)
        // A gap of half the session timeout; then a heartbeat interval and 2 s for the answer.
        let heartbeat = configuration.consumerConfiguration(.commands).heartbeatInterval
        self.freezes = FreezeWatch(
            threshold: configuration.sessionTimeout / 2, hold: heartbeat + .seconds(2), logger: logger)
    }

    /// What readiness probes and tests look at.
    public struct Status: Sendable, Hashable {
        /// Both groups (commands, retry tiers) gave this member an assignment (possibly empty)
        /// since it started.
        public var joinedGroup: Bool
        /// Partitions owned now.
        public var assignedPartitions: [String]
        /// Commands between intake and their final acknowledgement.
        public var inFlight: Int
        /// Of those, valid commands waiting for a lane of their provider, held as data.
        public var queued: Int
        /// The worker is stopping: draining, leaving its groups, or stopped.
        public var stopping: Bool
    }

    /// The `# HELP` text of every metric the worker records, by metric name.
    public static var metricsHelp: [String: String] { WorkerMetrics.help }

    public var status: Status {
        Status(
            joinedGroup: self.scopes.hasJoined(self.configuration.memberships),
            assignedPartitions: self.scopes.all.map(\.partition.description).sorted(),
            inFlight: self.inFlight.inUse,
            queued: self.lanesBox.withLock { $0 }?.queued ?? 0,
            stopping: self.stopping.load(ordering: .relaxed)
        )
    }

    public func run() async throws {
        let producer = try KafkaProducer(configuration: self.configuration.producerConfiguration(), logger: self.logger)
        let consumers = try self.makeConsumers()
        self.consumersBox.withLock { $0 = consumers }
        let router = RecordRouter(
            producer: producer, configuration: self.configuration, logger: self.logger, metrics: self.metrics)
        let published = PublishedMarks(
            ledger: self.ledger, clock: self.clock, metrics: self.metrics, logger: self.logger,
            linger: self.configuration.publishedLinger)
        self.publishedBox.withLock { $0 = published }
        let processor = CommandProcessor(
            configuration: self.configuration, ledger: self.ledger, providers: self.providers, router: router,
            gate: self.gate, keyLocks: KeyLocks(), metrics: self.metrics, published: published,
            decoder: CommandDecoder(maxRecordBytes: self.configuration.maxCommandBytes), logger: self.logger,
            clock: self.clock, freezes: self.freezes
        )
        self.freezes.start()
        defer { self.freezes.stop() }
        let relay = RetryRelay(
            configuration: self.configuration, router: router, logger: self.logger,
            pause: { [logger] partition in
                do { try await consumers.retries?.pause([partition]) } catch {
                    logger.warning("pause failed", metadata: ["error": "\(error)"])
                }
            },
            resume: { [logger] partition in
                do { try await consumers.retries?.resume([partition]) } catch {
                    logger.warning("resume failed", metadata: ["error": "\(error)"])
                }
            },
            answerRefused: processor.answerRefusedRetry,
            clock: self.clock
        )
        self.logger.info(
            "worker starting",
            metadata: [
                "group": "\(self.configuration.groupID)",
                "retry_group": "\(self.configuration.retryGroupID)",
                "topics": .array(self.configuration.consumedTopics.map { .string($0) }),
                "max_in_flight": .stringConvertible(self.configuration.maxInFlight),
            ])

        let lanes = self.lanes(processor: processor)
        self.lanesBox.withLock { $0 = lanes }
        // Outside the task group: the last marks are written after every command ended.
        async let marking: Void = published.run()
        var failure: (any Error)?
        let producerFailure = OneShot<KafkaError>()
        do {
            try await withGracefulShutdownHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { await self.commitLoop(consumers) }
                    group.addTask { await self.lagLoop(consumers) }
                    group.addTask { await self.strandLoop(consumers) }
                    group.addTask { await self.maintenanceLoop() }
                    group.addTask { await lanes.run() }
                    group.addTask {
                        // A producer that failed for good refuses every record from then on: the
                        // worker leaves its groups as in a graceful shutdown (the commands in
                        // process end unfinished, to be redelivered) and stops with the error, so
                        // that a new process starts over with a new producer.
                        guard let fatal = await producer.failure() else { return }
                        producerFailure.set(fatal)
                        self.stopping.store(true, ordering: .relaxed)
                        self.logger.critical(
                            "the producer failed for good: stopping", metadata: ["error": "\(fatal)"])
                        for (_, consumer) in consumers.all { consumer.close() }
                    }
                    try await withThrowingDiscardingTaskGroup { members in
                        for (_, consumer) in consumers.all {
                            members.addTask {
                                try await withThrowingDiscardingTaskGroup { work in
                                    work.addTask { try await consumer.run() }
                                    if consumer === consumers.commands {
                                        work.addTask {
                                            await self.releaseHeld(consumer, processor: processor, lanes: lanes)
                                        }
                                    }
                                    try await self.intake(
                                        consumer, processor: processor, relay: relay, lanes: lanes, group: &work)
                                    // This consumer closed (every partition revoked and drained): the
                                    // worker stops, so the other closes too.
                                    self.stopping.store(true, ordering: .relaxed)
                                    for (_, other) in consumers.all { other.close() }
                                    work.cancelAll()
                                }
                            }
                        }
                    }
                    // Both consumers closed: stop the loops.
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                self.stopping.store(true, ordering: .relaxed)
                self.logger.info("graceful shutdown: draining and leaving the groups")
                for (_, consumer) in consumers.all { consumer.close() }
            }
        } catch {
            failure = error
        }
        self.stopping.store(true, ordering: .relaxed)
        failure = failure ?? producerFailure.value
        if let failure { self.logger.error("worker stopped on an error", metadata: ["error": "\(failure)"]) }
        for (_, consumer) in consumers.all { consumer.close() }
        published.finish()
        await marking
        await producer.shutdown(flushTimeout: Self.outcomeFlushTimeout)
        self.consumersBox.withLock { $0 = nil }
        self.lanesBox.withLock { $0 = nil }
        self.publishedBox.withLock { $0 = nil }
        self.logger.info("worker stopped")
        if let failure { throw failure }
    }

    private func intake(
        _ consumer: KafkaConsumer, processor: CommandProcessor, relay: RetryRelay, lanes: CommandLanes,
        group: inout ThrowingDiscardingTaskGroup<any Error>
    ) async throws {
        let commandsTopic = self.configuration.topics.commands
        for try await message in consumer.messages {
            guard let scope = self.scopes.scope(for: message) else { continue }
            if message.topic == commandsTopic {
                switch scope.hold(message, share: self.shareWhenCrowded()) {
                case .admit: break
                case .parked: continue
                case .pause:
                    self.holding.withLock { held in
                        // At most the partitions holding now: a crowded worker whose partitions
                        // pause again and again never grows the list.
                        held.removeAll { $0 === scope || !$0.isHolding || $0.isRevoked }
                        held.append(scope)
                        self.holdingCount.store(held.count, ordering: .relaxed)
                    }
                    await self.pauseHolding(scope, consumer: consumer)
                    continue
                }
            }
            switch await self.admit(message, scope: scope, processor: processor, lanes: lanes) {
            case .stop: return  // cancelled: the worker stops
            case .done: continue
            case .task(let decoded):
                group.addTask {
                    await self.inTurn(scope, offset: message.offset) {
                        if let decoded { return await processor.process(message, decoded: decoded, scope: scope) }
                        return await relay.process(message, scope: scope)
                    }
                }
            }
        }
    }

    private enum Admission {
        /// The worker stops.
        case stop
        /// Skipped (seen before, or its partition was revoked), or queued in its provider's lane.
        case done
        /// Needs a task: an invalid command (`decoded`) or a retry-tier record (nil).
        case task(CommandDecoder.Decoded?)
    }

    /// Takes a record into processing: a permit of `max-in-flight`, then its offset. A valid
    /// command waits for its provider's lane as data; the rest (invalid records, retry tiers)
    /// is quick or waits on its own and gets a task at once.
    private func admit(
        _ message: KafkaConsumerMessage, scope: PartitionScope, processor: CommandProcessor, lanes: CommandLanes
    ) async -> Admission {
        do { try await self.inFlight.acquire() } catch { return .stop }
        guard scope.begin(message.offset) else {
            self.inFlight.release()
            return .done
        }
        self.activity.continuation.yield()
        guard message.topic == self.configuration.topics.commands else { return .task(nil) }
        let result = processor.decoder.decode(message.value)
        if case .valid(let command) = result {
            lanes.submit(CommandLanes.Item(message: message, scope: scope, command: command))
            return .done
        }
        return .task(result)
    }

    /// When commands in process reach three quarters of `max-in-flight`, a commands partition's
    /// share of it: one and a half times an even split (`max-in-flight` ÷ the commands
    /// partitions owned); nil while there is room. A partition holding its share stops taking
    /// more (`PartitionScope.hold`): one user's backlog — a mass cancel paced at 10/s — cannot
    /// fill `max-in-flight` and stall every other user. A saturated worker holds partitions of
    /// an evenly spread load too, since records arrive in fetched batches per partition: such a
    /// hold ends as soon as half of the partition's commands are done (BENCHMARKS.md measures
    /// it at nothing).
    private func shareWhenCrowded() -> Int? {
        let maxInFlight = self.configuration.maxInFlight
        guard self.inFlight.inUse * 4 >= maxInFlight * 3 else { return nil }
        let even = maxInFlight / max(1, self.scopes.count(of: self.configuration.topics.commands))
        return max(1, even + even / 2)
    }

    private func pauseHolding(_ scope: PartitionScope, consumer: KafkaConsumer) async {
        self.metrics.increment(WorkerMetrics.partitionsHeld, [("topic", scope.partition.topic)])
        self.logger.notice(
            "partition holds more than its share of max-in-flight: paused until half of its commands are done or the worker has room",
            metadata: [
                "partition": "\(scope.partition)", "in_process": .stringConvertible(scope.activeTasks),
                "max_in_flight": .stringConvertible(self.configuration.maxInFlight),
            ])
        await self.settleHolding(scope, consumer: consumer)
    }

    /// Brings the consumer's pause of `scope`'s partition in line with the scope: paused while it
    /// holds records, fetching otherwise. Intake (which starts a hold) and the release of held
    /// records (which ends it) each call it after their change, and each reads the scope again
    /// once its call returned: a pause that reaches the consumer after the hold already ended —
    /// the release's resume went first — is undone, and so is a late resume of an earlier hold.
    /// Without that, the partition stayed paused for good, with nothing in process to resume it.
    private func settleHolding(_ scope: PartitionScope, consumer: KafkaConsumer) async {
        var applied: Bool?
        while !scope.isRevoked {
            let holding = scope.isHolding
            if holding == applied { return }
            do {
                if holding {
                    try await consumer.pause([scope.partition])
                } else {
                    try await consumer.resume([scope.partition])
                }
            } catch {
                // Paused or not, the records are safe: held ones wait as data until they may come back.
                self.logger.warning(holding ? "pause failed" : "resume failed", metadata: ["error": "\(error)"])
                return
            }
            applied = holding
        }
    }

    /// Takes the held records of each partition that may have them back (`leave`) into
    /// processing, in order, while it stays under its share; once none is left, resumes its
    /// fetching.
    private func releaseHeld(_ consumer: KafkaConsumer, processor: CommandProcessor, lanes: CommandLanes) async {
        for await scope in self.heldReleases.stream {
            release: while true {
                switch scope.nextHeld(share: self.shareWhenCrowded()) {
                case .admit(let message):
                    switch await self.admit(message, scope: scope, processor: processor, lanes: lanes) {
                    case .stop: return
                    case .done: continue
                    case .task(let decoded):
                        // An invalid command: answered here, in order (quick: no provider call).
                        guard let decoded else { continue }
                        await self.inTurn(scope, offset: message.offset) {
                            await processor.process(message, decoded: decoded, scope: scope)
                        }
                    }
                case .resume:
                    await self.settleHolding(scope, consumer: consumer)
                    break release
                case .holdOn, .revoked:
                    break release
                }
            }
        }
    }

    /// The command lanes: at most about twice a provider's connections of its commands at once
    /// (`CommandLanes`), the rest queued.
    private func lanes(processor: CommandProcessor) -> CommandLanes {
        let maxInFlight = self.configuration.maxInFlight
        let limits = self.providers.mapValues { provider in
            provider.concurrentCalls.map { min(maxInFlight, max(16, 2 * $0)) } ?? maxInFlight
        }
        // A rate-limited account's commands start toward their calls at most burst + 1 at a
        // time: the next one is booked while one waits for its slot, the rest wait as data.
        let turns = Dictionary(
            uniqueKeysWithValues: ProviderID.allCases.compactMap { provider in
                self.configuration.effectiveRateLimit(for: provider).map { (provider, $0.burst + 1) }
            })
        return CommandLanes(
            limit: { limits[$0] ?? maxInFlight }, paced: { turns[$0] }, decoder: processor.decoder,
            work: { item in
                await self.inTurn(item.scope, offset: item.message.offset) {
                    // Revoked while queued: nothing was done, the record is redelivered.
                    guard !item.scope.isRevoked else { return false }
                    return await processor.process(item.message, decoded: item.decoded, scope: item.scope)
                }
            },
            abandoned: { item in self.giveUp(item.scope, offset: item.message.offset) })
    }

    /// Runs a record's `work` in its partition's turn, and leaves the turn with whether the work
    /// finished the record; does nothing if the turn never comes (see `enterPartition`).
    private func inTurn(_ scope: PartitionScope, offset: Int64, _ work: () async -> Bool) async {
        guard await self.enterPartition(scope, offset: offset) else { return }
        let finished = await work()
        self.leavePartition(scope, offset: offset, finished: finished)
    }

    /// Waits for the partition's turn (`partition-concurrency`, FIFO); false: cancelled before
    /// the record began, given up (it is redelivered).
    private func enterPartition(_ scope: PartitionScope, offset: Int64) async -> Bool {
        guard let permits = scope.permits else { return true }
        if !Task.isCancelled && permits.tryAcquire() { return true }
        guard await CommandLanes.stepAside({ (try? await permits.acquire()) != nil }) else {
            self.giveUp(scope, offset: offset)
            return false
        }
        return true
    }

    /// A record given up before it began (its partition revoked, the worker stopping): it is
    /// redelivered.
    private func giveUp(_ scope: PartitionScope, offset: Int64) {
        self.leave(scope, offset: offset, finished: false)
    }

    private func leavePartition(_ scope: PartitionScope, offset: Int64, finished: Bool) {
        scope.permits?.release()
        self.leave(scope, offset: offset, finished: finished)
    }

    private func leave(_ scope: PartitionScope, offset: Int64, finished: Bool) {
        // A held partition's records come back when half of its commands are done, or when the
        // worker is below five eighths of max-in-flight again (not at once below three quarters:
        // a partition paused and resumed for every command would churn its fetches).
        let roomy = { self.inFlight.inUse * 8 < self.configuration.maxInFlight * 5 }
        if scope.end(offset, finished: finished, roomy: roomy()) { self.heldReleases.continuation.yield(scope) }
        self.inFlight.release()
        if self.holdingCount.load(ordering: .relaxed) > 0, roomy() { self.wakeHeld() }
    }

    /// The worker has room: every partition still holding may have its records back
    /// (`releaseHeld` takes them while each stays under its share). Partitions no longer
    /// holding (released, revoked) are forgotten.
    private func wakeHeld() {
        let woken: [PartitionScope] = self.holding.withLock { held in
            held.removeAll { !$0.isHolding || $0.isRevoked }
            self.holdingCount.store(held.count, ordering: .relaxed)
            return held.filter { $0.wake() }
        }
        for scope in woken { self.heldReleases.continuation.yield(scope) }
    }

    /// Commits the contiguous finished offsets of every owned partition every `commitInterval`
    /// while records are in process or finished ones wait for their commit. An idle worker does
    /// not wake for commits: the next record intake admits starts them again (issue 14, idle CPU).
    private func commitLoop(_ consumers: WorkerConsumers) async {
        for await _ in self.activity.stream {
            repeat {
                try? await Task.sleep(for: self.configuration.commitInterval)
                if Task.isCancelled { return }
                await self.commit(self.scopes.all, consumers: consumers)
                self.metrics.gauge(WorkerMetrics.inFlight, value: Double(self.inFlight.inUse))
            } while self.inFlight.inUse > 0 || self.scopes.all.contains { $0.pendingCommit() != nil }
        }
    }

    /// Refreshes the lag of every owned partition once a second, traffic or not.
    private func lagLoop(_ consumers: WorkerConsumers) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            for (_, consumer, scopes) in self.byMembership(self.scopes.all, consumers) {
                await self.reportLag(scopes, consumer: consumer)
            }
        }
    }

    /// Restarts the fetch of owned partitions that fetch nothing while records wait in them
    /// (`strandTimeout`; librdkafka #2190), checking every third of it.
    private func strandLoop(_ consumers: WorkerConsumers) async {
        let timeout = self.configuration.strandTimeout
        guard timeout > .zero else { return }
        while !Task.isCancelled {
            try? await Task.sleep(for: timeout / 3)
            for (_, consumer) in consumers.all {
                for partition in await consumer.restartStrandedPartitions(after: timeout) {
                    self.metrics.increment(WorkerMetrics.fetchRestarts, [("topic", partition.topic)])
                }
            }
        }
    }

    /// `consumer_lag` for every owned partition, traffic or not: its high watermark (as last
    /// fetched; no round trip) minus the group's committed offset. A partition that committed
    /// nothing under this assignment asks the coordinator for its committed offset once (again
    /// only if the coordinator did not answer).
    func reportLag(_ scopes: [PartitionScope], consumer: KafkaConsumer) async {
        let unknown = scopes.filter(\.needsCommittedLookup)
        if !unknown.isEmpty,
            let committed = try? await consumer.committed(unknown.map(\.partition), timeout: .seconds(2))
        {
            for scope in unknown {
                let entry = committed.first { $0.topicPartition == scope.partition }
                scope.lookedUpCommitted(entry.flatMap { $0.offset >= 0 ? $0.offset : nil })
            }
        }
        for scope in scopes {
            guard let high = consumer.cachedWatermarks(for: scope.partition)?.high else { continue }
            let committed = scope.committedOffset ?? consumer.cachedWatermarks(for: scope.partition)?.low ?? 0
            self.metrics.gauge(
                WorkerMetrics.consumerLag, Self.lagLabels(scope.partition), value: Double(max(high - committed, 0)))
        }
    }

    /// Partitions as a log field: a JSON array of `topic[partition]` strings.
    static func list(_ partitions: [KafkaTopicPartition]) -> Logger.MetadataValue {
        .array(partitions.map(\.description).sorted().map { .string($0) })
    }

    static func lagLabels(_ partition: KafkaTopicPartition) -> [(String, String)] {
        [("topic", partition.topic), ("partition", String(partition.partition))]
    }

    /// Commits the finished offsets of `scopes`.
    ///
    /// A commit the coordinator refuses because the group is rebalancing (`REBALANCE_IN_PROGRESS`,
    /// or `ILLEGAL_GENERATION` once the group moved on) is not retried every `commit-interval`:
    /// periodic commits wait for this member's next assignment (at most `commitHoldLimit`).
    /// Retried at once, a commit is in flight whenever the group forms its next generation, and
    /// librdkafka reads the `ILLEGAL_GENERATION` answer as a lost assignment: the member gives up
    /// every partition and rejoins, which starts another rebalance in which the other members'
    /// commits fail the same way. Under a burst of joins (a rolling restart, a crashed member)
    /// that cascade kept partitions unowned for tens of seconds. `revoking` commits go ahead:
    /// they run inside this member's rebalance callback, with the generation it is joining.
    func commit(_ scopes: [PartitionScope], consumers: WorkerConsumers, revoking: Bool = false) async {
        for (membership, consumer, own) in self.byMembership(scopes, consumers) where !own.isEmpty {
            await self.commit(own, membership: membership, consumer: consumer, revoking: revoking)
        }
    }

    /// Each running consumer with those of `scopes` that belong to its membership.
    private func byMembership(
        _ scopes: [PartitionScope], _ consumers: WorkerConsumers
    ) -> [(WorkerMembership, KafkaConsumer, [PartitionScope])] {
        consumers.all.map { membership, consumer in
            (membership, consumer, scopes.filter { self.configuration.membership(of: $0.partition) == membership })
        }
    }

    /// Commits the finished offsets of `scopes`, all of `membership`, through its consumer.
    private func commit(
        _ scopes: [PartitionScope], membership: WorkerMembership, consumer: KafkaConsumer, revoking: Bool
    ) async {
        if !revoking, let held = self.commitHold.withLock({ $0[membership] }), ContinuousClock.now < held { return }
        // A commit sent mid-rebalance can cost every partition (`KafkaConsumer.isRebalancing`).
        if !revoking && consumer.isRebalancing { return }
        let pending = scopes.compactMap { scope in scope.pendingCommit().map { (scope, $0) } }
        guard !pending.isEmpty else { return }
        do {
            try await consumer.commit(pending.map(\.1))
            for (scope, offset) in pending { scope.markCommitted(offset.offset) }
        } catch  where [KafkaError.Code.rebalanceInProgress, KafkaError.Code.illegalGeneration].contains(error.code) {
            let until = ContinuousClock.now + self.configuration.commitHoldLimit
            self.commitHold.withLock { $0[membership] = until }
            self.metrics.increment(WorkerMetrics.commitsHeld)
            self.logger.info(
                "offset commit refused while the group rebalances; commits wait for this member's next assignment",
                metadata: ["error": "\(error)"])
        } catch {
            self.logger.warning("offset commit failed; the next one retries", metadata: ["error": "\(error)"])
        }
    }

    /// Forgets idle pacing state every 10 s; purges ledger entries past `ledger-retention` at
    /// start and every hour, in batches.
    private func maintenanceLoop() async {
        await self.purgeLedger()
        var lastPurge = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(10))
            let now = ContinuousClock.now
            var throttled = 0
            for scope in self.scopes.all {
                scope.pacer.prune(now: now)
                throttled += scope.pacer.throttledUsers(now: now)
            }
            self.metrics.gauge(WorkerMetrics.throttledUsers, value: Double(throttled))
            if now - lastPurge >= .seconds(3600) {
                lastPurge = now
                await self.purgeLedger()
            }
        }
    }

    /// Removes ledger entries older than the retention, 1,000 per statement, pausing between
    /// batches so commands keep the ledger; at most 100 batches a run (the next run continues).
    func purgeLedger(batch: Int = 1_000) async {
        let cutoff = Date().addingTimeInterval(-self.configuration.ledgerRetention.timeInterval)
        var total = 0
        do {
            for _ in 0..<100 {
                let purged = try await self.ledger.purge(updatedBefore: cutoff, limit: batch)
                total += purged
                guard purged == batch, !Task.isCancelled else { break }
                try? await Task.sleep(for: .milliseconds(50))
            }
            self.logger.info(
                "ledger retention",
                metadata: [
                    "purged": .stringConvertible(total),
                    "retention": .stringConvertible(self.configuration.ledgerRetention),
                ])
        } catch {
            self.logger.warning(
                "ledger purge failed", metadata: ["error": "\(error)", "purged": .stringConvertible(total)])
        }
    }
}

extension CancelWorker {
    /// Whether a broker answers (for readiness); false before the worker runs.
    public func brokerReachable(timeout: Duration = .seconds(1)) async -> Bool {
        guard let consumers = self.consumersBox.withLock({ $0 }) else { return false }
        return await consumers.commands.brokerReachable(timeout: timeout)
    }

    /// Readiness: whether the worker takes the records it owns. Fails when records wait in
    /// partitions it owns and has not paused itself (high watermark above the next offset it
    /// takes, or the committed offset before it took any) and it has taken none for
    /// `stallTimeout` — a member that holds partitions but reads nothing. A worker without
    /// lag, or one taking records however slowly, passes; so does one whose lag cannot be
    /// measured within `timeout` (the broker check reports an unreachable cluster), and one
    /// not running yet (the group check reports that). `stallTimeout` of zero turns it off.
    ///
    /// The first probe that sees records waiting starts timing, so with probes every `p` a
    /// stall is reported between `stallTimeout` and `stallTimeout + p` after it is first seen.
    public func consumptionCheck(
        stallTimeout: Duration = .seconds(60), timeout: Duration = .milliseconds(900)
    ) async -> (ok: Bool, detail: String) {
        guard stallTimeout > .zero, let consumers = self.consumersBox.withLock({ $0 }) else { return (true, "") }
        // Each membership's consumer on its own: a stall in either fails the check.
        let checks = await withTaskGroup(of: (WorkerMembership, KafkaConsumerProgress).self) { group in
            for (membership, consumer) in consumers.all {
                group.addTask {
                    (membership, await consumer.checkProgress(stallAfter: stallTimeout, timeout: timeout))
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let stalled = checks.filter(\.1.isStalled).sorted { $0.0 == .commands && $1.0 != .commands }
        guard !stalled.isEmpty else { return (true, "") }
        let detail = stalled.map { membership, progress in
            let lag = (progress.lag ?? [:]).sorted { $0.key < $1.key }
            let waiting = lag.map { "\($0.key) (\($0.value))" }.joined(separator: ", ")
            let since =
                progress.lastDelivery.map { "for \((ContinuousClock.now - $0).components.seconds) s" }
                ?? "since the worker started"
            let group = membership == .commands ? "" : " (retry tiers)"
            return "no record consumed\(group) \(since) while \(lag.reduce(0) { $0 + $1.value }) wait in \(waiting)"
        }.joined(separator: "; ")
        self.logger.warning("consumer stalled: records wait but none is consumed", metadata: ["detail": "\(detail)"])
        return (false, detail)
    }
}
