public import CancelCore
public import Foundation
public import Kafka
public import Logging
import Synchronization
import Worker

/// What a replay run is asked to do.
public struct ReplayOptions: Sendable {
    public var kafka: KafkaClientOptions
    public var topics: TopicNames
    /// The replay's own consumer group on the dead-letter topic: it remembers how far replays
    /// have read, so a second run continues where the first stopped.
    public var group: String = "cancel-worker-replay"
    public var filter = DeadLetterFilter()
    /// Report what would happen; produce nothing, commit nothing.
    public var dryRun = false
    /// Replay at most this many records, then stop (resumable).
    public var limit: Int?
    /// Records replayed per second, at most.
    public var rate: Double?
    /// Read the dead-letter topic from its beginning instead of where the last run stopped.
    public var fromBeginning = false
    /// Replay records even if they were replayed `maxReplays` times already.
    public var force = false
    public var maxReplays = 3
    /// The ledger's retention: older dead letters are not replayed without `force` (their keys
    /// may have been purged). Nil: no such check.
    public var ledgerRetention: Duration?
    /// Marks every replayed record (`cw.replay.id`).
    public var replayID = "replay-\(UUID().uuidString.prefix(8).lowercased())"
    /// Gives up waiting for the consumer group after this long.
    public var timeout: Duration = .seconds(120)
    /// Who asked for this replay and when (the console's audit): set as `cw.replay.requested-by`
    /// and `cw.replay.requested-at` on every replayed record. Nil: no such headers.
    public var requestedBy: (who: String, at: Date)?
    /// Reads each dead-letter partition no further than this offset (exclusive), and a partition
    /// not named not at all: a confirmed preview's `ReplayReport.ends`, so the run replays from
    /// what the operator saw, never from what arrived since. Nil: to the ends at the start.
    public var readUntil: [Int32: Int64]?

    public init(kafka: KafkaClientOptions, topics: TopicNames = .default) {
        self.kafka = kafka
        self.topics = topics
    }
}

/// What a replay run did (or, dry, would do).
public struct ReplayReport: Sendable, Hashable {
    public struct Item: Sendable, Hashable {
        public var position: String
        public var key: String
        public var provider: String
        public var account: String
        public var errorClass: String
        public var decision: ReplayDecision
        /// The key's dead letters in the ledger when it was decided: more later means the
        /// replayed command was dead-lettered again.
        public var deadLettersAtDecision = 0
    }

    public var replayID: String
    public var dryRun: Bool
    /// Dead letters read in this run.
    public var read = 0
    /// Read but outside the filters.
    public var notSelected = 0
    public var replayed: [Item] = []
    public var skipped: [Item] = []
    /// Stopped because `limit` was reached; the rest is left for the next run.
    public var stoppedAtLimit = false
    /// Dead-letter partitions another member of the replay's group took before this run read
    /// them to their end (another replay under the same group): their remaining records are
    /// that member's, or the next run's.
    public var leftToOthers: [Int32] = []
    /// How far the run read each dead-letter partition (the next offset, exclusive): the ends
    /// at its start, bounded by `ReplayOptions.readUntil`.
    public var ends: [Int32: Int64] = [:]

    public func count(_ label: String) -> Int { self.skipped.filter { $0.decision.label == label }.count }

    /// The summary table printed at the end of a run.
    public var summary: String {
        // A run commits past the records it skips: only a read from the beginning (or another
        // group) comes back to them.
        let force =
            self.dryRun
            ? "--force replays them" : "--force --from-beginning, or --force with another --group, replays them"
        var lines = [
            "replay \(self.replayID)\(self.dryRun ? " (dry run: nothing produced, nothing committed)" : "")",
            "  dead letters read          \(self.read)",
            "  not matching the filters   \(self.notSelected)",
            "  \(self.dryRun ? "would replay" : "replayed    ")               \(self.replayed.count)",
            "  skipped                    \(self.skipped.count)",
            "    completed in the ledger  \(self.count("completed in the ledger"))",
            "    replayed too often       \(self.count("replayed too often"))  (parked; \(force))",
            "    not replayable           \(self.count("not replayable"))",
            "    older than retention     \(self.count("older than the ledger's retention"))  (\(force))",
            "    superseded by a later    \(self.count("superseded by a later dead letter"))  (the key's latest dead letter is the one to replay)",
        ]
        if self.stoppedAtLimit { lines.append("  stopped at --limit; run again to continue") }
        if !self.leftToOthers.isEmpty {
            lines.append(
                "  partitions left to another member of the replay's group: "
                    + self.leftToOthers.map(String.init).joined(separator: ", ")
                    + " (another replay under the same group reads them; run again once it is done)")
        }
        return lines.joined(separator: "\n")
    }

    /// The columns of `details`, in order.
    public static let detailColumns = ["position", "error class", "provider", "account", "key", "decision"]

    /// Every record decided in this run, sorted by position, as the cells of `details`.
    public var detailRows: [[String]] {
        (self.replayed + self.skipped).sorted { $0.position < $1.position }.map { item in
            let what: String
            switch item.decision {
            case .replay: what = self.dryRun ? "would replay" : "replayed"
            case .skipCompleted(let status): what = "skip: completed (\(status))"
            case .skipReplayedTooOften(let count): what = "skip: replayed \(count) times (parked)"
            case .skipNotReplayable(let reason): what = "skip: not replayable (\(reason))"
            case .skipOlderThanRetention(let at):
                what = "skip: dead-lettered \(Timestamp.format(at)), before the ledger's retention"
            case .skipSuperseded(let latest): what = "skip: superseded by the key's dead letter \(latest)"
            }
            return [item.position, item.errorClass, item.provider, item.account, item.key, what]
        }
    }

    /// Every record decided in this run, one line each.
    public var details: String {
        ([Self.detailColumns] + self.detailRows).map { $0.joined(separator: "\t") }.joined(separator: "\n")
    }
}

/// Replays dead letters to the commands topic — safely: completed keys are skipped (the
/// ledger knows), records replayed too often are parked, undecodable input is reported, and
/// every replayed record carries its provenance. Offsets of handled records are committed in
/// the replay's own group as it goes, so an interrupted run resumes without repeating or
/// skipping anything.
public struct Replayer: Sendable {
    public let options: ReplayOptions
    public let ledger: any IdempotencyLedger
    public let logger: Logger

    public init(options: ReplayOptions, ledger: any IdempotencyLedger, logger: Logger) {
        self.options = options
        self.ledger = ledger
        self.logger = logger
    }

    public enum ReplayError: Error, CustomStringConvertible {
        case noAssignment(Duration)
        case topicMissing(String)
        case startFailed(String)

        public var description: String {
            switch self {
            case .noAssignment(let timeout): "the replay group got no partitions within \(timeout)"
            case .topicMissing(let topic): "topic \(topic) does not exist"
            case .startFailed(let why): why
            }
        }
    }

    /// Runs until every partition is read up to where it ended at the start, `limit` is
    /// reached, or the task is cancelled: then the records handled so far are committed and
    /// the report says what happened (the next run continues from there). `progress` is called
    /// about once a second.
    public func run(progress: @escaping @Sendable (ReplayReport) -> Void = { _ in }) async throws -> ReplayReport {
        let options = self.options
        let dlq = options.topics.deadLetters
        let admin = try KafkaAdminClient(options: options.kafka, logger: self.logger)
        // Only a missing topic is reported as such; any other error (an unreachable broker) as itself.
        func describe(_ topic: String) async throws -> KafkaTopicDescription {
            do {
                return try await admin.describeTopic(topic)
            } catch  where error.code == KafkaError.Code.unknownTopicOrPartition {
                throw ReplayError.topicMissing(topic)
            }
        }
        let dlqPartitions = try await describe(dlq).partitions.map(\.id)
        let commandPartitions = try await describe(options.topics.commands).partitions.count

        let tracker = ReplayTracker()
        var configuration = KafkaConsumerConfiguration(client: options.kafka, groupID: options.group)
        configuration.autoOffsetReset = .earliest
        configuration.sessionTimeout = .seconds(6)
        // Commits wait out a rebalance of the replay's group (`handled`).
        configuration.tracksJoinState = true
        let listener = ReplayListener(fromBeginning: options.fromBeginning, tracker: tracker)
        let consumer = try KafkaConsumer(
            configuration: configuration, topics: [dlq], rebalanceListener: listener, logger: self.logger)
        listener.consumer.withLock { $0 = consumer }
        var ends: [Int32: Int64] = [:]
        for partition in dlqPartitions {
            let high = try await consumer.watermarks(for: KafkaTopicPartition(topic: dlq, partition: partition)).high
            ends[partition] = options.readUntil.map { min(high, $0[partition] ?? 0) } ?? high
        }
        tracker.setEnds(ends)
        let producer: KafkaProducer? =
            options.dryRun
            ? nil
            : try KafkaProducer(configuration: KafkaProducerConfiguration(client: options.kafka), logger: self.logger)

        var initial = ReplayReport(replayID: options.replayID, dryRun: options.dryRun)
        initial.ends = ends
        let state = ReportBox(initial)
        let startedAt = ContinuousClock.now
        // Not a child of the read: cancelling the replay must not close the consumer under a
        // record in process (cancelling `run()` closes at once). The read closes it instead.
        let serving = Task { try await consumer.run() }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Ends the read when every partition is done, when no assignment comes, or on
                // cancellation (once the record in process, if any, is committed).
                group.addTask {
                    var lastProgress = ContinuousClock.now
                    while !Task.isCancelled {
                        if tracker.allDone {
                            let left = tracker.leftToOthers
                            state.withLock { $0.leftToOthers = left }
                            break
                        }
                        if tracker.stopped { break }
                        if !tracker.assigned && ContinuousClock.now - startedAt > options.timeout { break }
                        if ContinuousClock.now - lastProgress >= .seconds(1) {
                            progress(state.withLock { $0 })
                            lastProgress = .now
                        }
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                    let waitUntil = ContinuousClock.now + .seconds(10)
                    // `pause`: this task may be cancelled, and must still wait.
                    while tracker.handling && ContinuousClock.now < waitUntil { await Self.pause(.milliseconds(10)) }
                    consumer.close()
                }
                var lastSent = ContinuousClock.now - .seconds(3600)
                for try await message in consumer.messages {
                    if Task.isCancelled { break }
                    tracker.handling = true
                    defer { tracker.handling = false }
                    guard message.offset < (ends[message.partition] ?? 0) else {
                        tracker.reached(message.partition, next: message.offset)
                        continue
                    }
                    let record = DeadLetterRecord(message)
                    state.withLock { $0.read += 1 }
                    guard options.filter.matches(record) else {
                        state.withLock { $0.notSelected += 1 }
                        try await self.handled(message, consumer: consumer, tracker: tracker)
                        continue
                    }
                    let entry: LedgerEntry? =
                        if let key = record.idempotencyKey { try await self.ledger.entry(for: key) } else { nil }
                    let decision = ReplayDecision.decide(
                        record, entry: entry, maxReplays: options.maxReplays, force: options.force,
                        retention: options.ledgerRetention
                    )
                    let item = ReplayReport.Item(
                        position: record.position, key: record.idempotencyKey ?? "-", provider: record.provider ?? "-",
                        account: record.account ?? "-", errorClass: record.errorClass, decision: decision,
                        deadLettersAtDecision: entry?.deadLetters ?? 0
                    )
                    if decision == .replay {
                        if let limit = options.limit, state.withLock({ $0.replayed.count }) >= limit {
                            state.withLock { $0.stoppedAtLimit = true }
                            tracker.stop()
                            break
                        }
                        if let producer {
                            if let rate = options.rate, rate > 0 {
                                // At most an hour apart, whatever the caller asked (no trap).
                                let next = lastSent + .milliseconds(Int64(min(1000 / rate, 3_600_000)))
                                if next > .now { try? await Task.sleep(until: next, clock: .continuous) }
                                // Interrupted while pacing: this record stays for the next run.
                                if Task.isCancelled { break }
                            }
                            let origin = record.message.headers.string(WorkerHeaders.originPartition).flatMap(
                                Int32.init)
                            let partition = origin.flatMap { $0 < commandPartitions ? $0 : nil }
                            var message = ReplayDecision.replayMessage(
                                of: record, topic: options.topics.commands, partition: partition,
                                replayID: options.replayID)
                            if let requester = options.requestedBy {
                                message.headers.set(ReplayDecision.requestedByHeader, requester.who)
                                message.headers.set(ReplayDecision.requestedAtHeader, Timestamp.format(requester.at))
                            }
                            _ = try await producer.send(message)
                            lastSent = .now
                        }
                        state.withLock { $0.replayed.append(item) }
                    } else {
                        state.withLock { $0.skipped.append(item) }
                    }
                    try await self.handled(message, consumer: consumer, tracker: tracker)
                }
                tracker.stop()
                consumer.close()
                try await group.waitForAll()
            }
            try await serving.value
        } catch {
            consumer.close()
            _ = try? await serving.value
            await producer?.shutdown()
            throw error
        }
        await producer?.shutdown()
        if let failure = tracker.failure { throw ReplayError.startFailed(failure) }
        if !tracker.assigned && !tracker.allDone {
            throw ReplayError.noAssignment(options.timeout)
        }
        return state.withLock { $0 }
    }

    /// How long a record's commit waits for a rebalance of the replay's group to end.
    static var rebalanceWait: Duration { .seconds(8) }

    /// Commits the record's offset once the replay's group is not rebalancing (another replay
    /// joined it). The coordinator refuses a commit during a round (`REBALANCE_IN_PROGRESS`),
    /// and this member learns of a round only at its next heartbeat, so a refused commit waits
    /// for the round to start and end, then goes again. Bounded by `rebalanceWait`, below the
    /// 10 s an interrupted read waits for this record, and not cut short by that interruption.
    ///
    /// Still refused then — or answered `ILLEGAL_GENERATION`, or refused by the consumer because
    /// the partition was revoked while the listener was late (`_ASSIGNMENT_LOST`): librdkafka 2.0 sends a commit
    /// whatever its join state, and takes that answer to one that crossed a join for a lost
    /// assignment (#4059) — the offset stays uncommitted rather than failing the replay: the
    /// record was sent, the next record's commit covers it, and at worst a resumed replay (or
    /// the partition's next owner) sends it again, which the worker's ledger keeps to one call.
    private func commit(_ message: KafkaConsumerMessage, consumer: KafkaConsumer) async throws {
        let settleBy = ContinuousClock.now + Self.rebalanceWait
        while true {
            while consumer.isRebalancing && ContinuousClock.now < settleBy { await Self.pause() }
            // (The refusal is returned, not caught here: a `throw` from a typed catch in this
            // loop crashes Swift 6.3's SILGen.)
            guard let error = await Self.refusal(committing: message, consumer: consumer) else { return }
            guard
                [
                    KafkaError.Code.rebalanceInProgress, KafkaError.Code.illegalGeneration,
                    KafkaError.Code.assignmentLost,
                ]
                .contains(error.code)
            else {
                throw error
            }
            guard error.code == KafkaError.Code.rebalanceInProgress && ContinuousClock.now < settleBy else {
                self.logger.warning(
                    "replay: a commit was refused while the replay's group rebalanced; the record stays uncommitted (the next commit covers it; a resumed replay may send it again, and the ledger keeps that to one call)",
                    metadata: [
                        "partition": .stringConvertible(message.partition),
                        "offset": .stringConvertible(message.offset),
                        "error": "\(error)",
                    ])
                return
            }
            // Until the heartbeat tells this member of the round (the consumer's heartbeat
            // interval at most), or the round ends.
            let noticeBy = min(ContinuousClock.now + .seconds(3), settleBy)
            while !consumer.isRebalancing && ContinuousClock.now < noticeBy { await Self.pause() }
        }
    }

    private static func refusal(committing message: KafkaConsumerMessage, consumer: KafkaConsumer) async -> KafkaError?
    {
        do {
            try await consumer.commit([message.nextOffset])
            return nil
        } catch {
            return error
        }
    }

    /// A short sleep that a cancelled task still takes (its own task).
    private static func pause(_ duration: Duration = .milliseconds(20)) async {
        await Task { try? await Task.sleep(for: duration) }.value
    }

    /// The record is dealt with: remember it (commit, unless dry) and note the partition's progress.
    private func handled(_ message: KafkaConsumerMessage, consumer: KafkaConsumer, tracker: ReplayTracker) async throws
    {
        if !self.options.dryRun {
            try await self.commit(message, consumer: consumer)
        }
        tracker.reached(message.partition, next: message.offset + 1)
    }
}

/// Which DLQ partitions are read to their end.
final class ReplayTracker: Sendable {
    private struct State {
        var ends: [Int32: Int64] = [:]
        var positions: [Int32: Int64] = [:]
        var assigned = false
        var stopped = false
        /// Why the run cannot go on as asked (a `--from-beginning` seek refused).
        var failure: String?
        var handling = false
        /// The partitions this member holds now.
        var owned: Set<Int32> = []
        /// When the last revocation left it holding none.
        var emptySince: ContinuousClock.Instant?
    }

    /// How long a member that holds no partition after a revocation waits for new ones before
    /// it takes them to be another member's for good. Well above a rebalance round and a
    /// member's leave (its session timeout is 6 s): a member that lost its only partition to a
    /// joiner gets it back when that joiner leaves, and must still be waiting then.
    static let settleTime: Duration = .seconds(30)

    private let state = Mutex(State())

    func setEnds(_ ends: [Int32: Int64]) { self.state.withLock { $0.ends = ends } }

    /// Stops the run, which then throws `why`.
    func fail(_ why: String) {
        self.state.withLock { state in
            state.failure = state.failure ?? why
            state.stopped = true
        }
    }

    var failure: String? { self.state.withLock { $0.failure } }

    /// A record is between its send and its commit: an interruption waits for it, or the
    /// resumed replay would send it again (its commit failed with the handle closing under it).
    var handling: Bool {
        get { self.state.withLock { $0.handling } }
        set { self.state.withLock { $0.handling = newValue } }
    }

    /// The group gave `partitions` to this member; until `start` gives each its position, they
    /// count as held and not done.
    func hold(_ partitions: [Int32]) {
        self.state.withLock { state in
            state.owned.formUnion(partitions)
            if !state.owned.isEmpty { state.emptySince = nil }
        }
    }

    func start(_ partition: Int32, at offset: Int64) {
        self.state.withLock { state in
            state.assigned = true
            state.owned.insert(partition)
            state.emptySince = nil
            state.positions[partition] = max(offset, state.positions[partition] ?? 0)
        }
    }

    /// The group took `partitions` from this member (a rebalance: some may come back).
    func revoked(_ partitions: [Int32]) {
        self.state.withLock { state in
            state.owned.subtract(partitions)
            if state.owned.isEmpty { state.emptySince = .now }
        }
    }

    func reached(_ partition: Int32, next: Int64) {
        self.state.withLock { state in state.positions[partition] = max(next, state.positions[partition] ?? 0) }
    }

    func stop() { self.state.withLock { $0.stopped = true } }

    var stopped: Bool { self.state.withLock { $0.stopped } }
    var assigned: Bool { self.state.withLock { $0.assigned } }

    /// Every partition this member holds is read up to where it ended when the run started;
    /// the others are another member's (it holds some, or has held none for `settleTime`).
    var allDone: Bool {
        self.state.withLock { state in
            let settled =
                !state.owned.isEmpty || state.emptySince.map { ContinuousClock.now - $0 >= Self.settleTime } ?? false
            return state.assigned && settled
                && state.ends.allSatisfy { partition, end in
                    end == 0 || (state.positions[partition] ?? -1) >= end || !state.owned.contains(partition)
                }
        }
    }

    /// Partitions not read to their end that this member does not hold.
    var leftToOthers: [Int32] {
        self.state.withLock { state in
            state.ends.filter { partition, end in
                end > 0 && (state.positions[partition] ?? -1) < end && !state.owned.contains(partition)
            }.keys.sorted()
        }
    }
}

/// Seeks to the beginning on a partition's first assignment in the run (`--from-beginning`),
/// records where each partition starts (its committed offset, or its first record if the
/// records there were deleted), and which partitions the member holds.
final class ReplayListener: KafkaRebalanceListener {
    let fromBeginning: Bool
    let tracker: ReplayTracker
    let consumer = Mutex<KafkaConsumer?>(nil)
    /// Partitions this run has started reading: one that comes back after a rebalance continues
    /// from the group's committed offset, never from its beginning again.
    private let begun = Mutex<Set<KafkaTopicPartition>>([])

    init(fromBeginning: Bool, tracker: ReplayTracker) {
        self.fromBeginning = fromBeginning
        self.tracker = tracker
    }

    func partitionsAssigned(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
        // All of them held before any is started: a partition started first and already at
        // its end must not make the others look like another member's.
        self.tracker.hold(partitions.map(\.partition))
        guard let consumer = self.consumer.withLock({ $0 }) else { return }
        let fresh = self.begun.withLock { begun in
            defer { begun.formUnion(partitions) }
            return self.fromBeginning ? partitions.filter { !begun.contains($0) } : []
        }
        if !fresh.isEmpty {
            do {
                try await consumer.seek(
                    fresh.map {
                        KafkaTopicPartitionOffset(topicPartition: $0, offset: KafkaTopicPartitionOffset.beginning)
                    })
            } catch {
                // Reading on from the committed offset would not be what was asked: the run stops.
                self.tracker.fail(
                    "could not move partitions \(fresh.map(\.partition).sorted()) to their beginning: \(error)")
                return
            }
            for partition in fresh {
                let low = (try? await consumer.watermarks(for: partition).low) ?? 0
                self.tracker.start(partition.partition, at: low)
            }
        }
        let continuing = partitions.filter { !fresh.contains($0) }
        guard !continuing.isEmpty else { return }
        let committed = (try? await consumer.committed(continuing)) ?? []
        for partition in continuing {
            let offset =
                committed.first { $0.topicPartition == partition }?.offset ?? KafkaTopicPartitionOffset.invalidOffset
            // Records before the partition's first one were deleted (retention): librdkafka
            // resets to the first one, so no record below it will ever arrive.
            let low = (try? await consumer.watermarks(for: partition).low) ?? 0
            self.tracker.start(partition.partition, at: max(offset, low))
        }
    }

    func partitionsRevoked(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
        self.tracker.revoked(partitions.map(\.partition))
    }
}

/// The report being built, shared with the progress task.
final class ReportBox: Sendable {
    private let report: Mutex<ReplayReport>

    init(_ report: ReplayReport) {
        self.report = Mutex(report)
    }

    func withLock<T>(_ body: (inout ReplayReport) -> T) -> T {
        self.report.withLock { body(&$0) }
    }
}

extension ReplayDecision {
    /// Who confirmed a replay (the console's operator), on each record it replayed.
    public static let requestedByHeader = "cw.replay.requested-by"
    /// When that replay was confirmed, RFC 3339.
    public static let requestedAtHeader = "cw.replay.requested-at"
}
