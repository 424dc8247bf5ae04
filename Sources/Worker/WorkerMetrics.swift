package import CancelCore
package import Metrics
import Synchronization

/// The worker's metrics, through swift-metrics (exported by whatever backend the process
/// bootstraps; `cancel-worker run` uses Prometheus). Labels never carry ids or secrets: only
/// provider, status, class, tier, topic and partition.
package final class WorkerMetrics: Sendable {
    private let factory: any MetricsFactory
    private let counters = Mutex<[Key: Counter]>([:])
    private let timers = Mutex<[Key: Timer]>([:])
    private let gauges = Mutex<[Key: Gauge]>([:])

    // The series every command touches, found by index instead of by hashing their labels
    // (issue 14): each is made the first time it is used, so a scrape shows only what happened.
    private let outcomeSeries: SeriesSlots<Counter>
    private let answerSeries: SeriesSlots<Timer>
    private let ledgerSeries: SeriesSlots<Timer>
    private let waitSeries: SeriesSlots<Counter>
    private let waitTimeSeries: SeriesSlots<Timer>
    private let consumedSeries = Mutex<[String: Counter]>([:])

    /// `factory`: where the metrics go; the process-wide `MetricsSystem.factory` by default, a
    /// registry of its own when several workers share a process (tests, the demo).
    package init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        let providers = ProviderID.allCases
        let statuses = OutcomeStatus.allCases
        self.outcomeSeries = SeriesSlots(count: (providers.count + 1) * statuses.count) { slot in
            let provider =
                slot / statuses.count < providers.count
                ? providers[slot / statuses.count].rawValue : Self.unknownProvider
            return Counter(
                label: Self.outcomes,
                dimensions: [("provider", provider), ("status", statuses[slot % statuses.count].rawValue)],
                factory: factory)
        }
        let results = Self.answerResults
        self.answerSeries = SeriesSlots(count: providers.count * results.count) { slot in
            Timer(
                label: Self.providerLatency,
                dimensions: [
                    ("provider", providers[slot / results.count].rawValue), ("result", results[slot % results.count]),
                ],
                preferredDisplayUnit: .seconds, factory: factory)
        }
        let operations = LedgerOperation.allCases
        self.ledgerSeries = SeriesSlots(count: operations.count) { slot in
            Timer(
                label: Self.ledgerLatency, dimensions: [("operation", operations[slot].rawValue)],
                preferredDisplayUnit: .seconds, factory: factory)
        }
        self.waitSeries = SeriesSlots(count: providers.count) { slot in
            Counter(label: Self.rateLimitWaits, dimensions: [("provider", providers[slot].rawValue)], factory: factory)
        }
        self.waitTimeSeries = SeriesSlots(count: providers.count) { slot in
            Timer(
                label: Self.rateLimitWaitTime, dimensions: [("provider", providers[slot].rawValue)],
                preferredDisplayUnit: .seconds, factory: factory)
        }
    }

    package static let commandsConsumed = "cancel_worker_commands_consumed_total"
    package static let outcomes = "cancel_worker_outcomes_total"
    package static let providerLatency = "cancel_worker_provider_request_duration_seconds"
    static let retries = "cancel_worker_retries_total"
    static let deadLetters = "cancel_worker_dead_letters_total"
    static let rateLimitWaits = "cancel_worker_rate_limit_waits_total"
    static let rateLimitWaitTime = "cancel_worker_rate_limit_wait_seconds"
    static let throttledUsers = "cancel_worker_throttled_users"
    static let inFlight = "cancel_worker_in_flight"
    package static let ledgerLatency = "cancel_worker_ledger_operation_duration_seconds"
    static let consumerLag = "cancel_worker_consumer_lag"
    static let rebalances = "cancel_worker_rebalances_total"
    /// Offset commits the coordinator refused mid-rebalance (commits then wait for the next assignment).
    static let commitsHeld = "cancel_worker_commits_held_total"
    static let duplicates = "cancel_worker_duplicates_total"
    /// Commands moved to their user's partition (keyed wrongly, or on the wrong partition).
    static let rerouted = "cancel_worker_rerouted_total"
    static let assignedPartitions = "cancel_worker_assigned_partitions"
    /// Owned partitions whose fetch was restarted: they fetched nothing while records waited.
    static let fetchRestarts = "cancel_worker_partition_fetch_restarts_total"
    static let partitionsHeld = "cancel_worker_partitions_held_total"

    /// What each metric means: the `# HELP` lines of the Prometheus exposition.
    static let help: [String: String] = [
        commandsConsumed: "Records taken from the commands topic and its retry tiers, by topic.",
        outcomes: "Outcomes published, by provider and status.",
        providerLatency: "Provider HTTP calls, from the request leaving to the answer, by provider.",
        retries: "Retries scheduled, by provider and tier (in_process or a retry topic).",
        deadLetters: "Commands handed to the dead-letter topic, by error class.",
        rateLimitWaits: "Calls that waited for their user's rate-limit slot, by provider.",
        rateLimitWaitTime: "Time calls waited for their user's rate-limit slot, by provider.",
        throttledUsers: "Users whose calls are held back by their rate limit or a provider's pause now.",
        inFlight: "Commands between intake and their final acknowledgement.",
        ledgerLatency: "Ledger operations, by operation.",
        consumerLag: "Records not yet committed in each owned partition (high watermark minus committed offset).",
        rebalances: "Consumer-group rebalance events, by event (assigned, revoked).",
        commitsHeld:
            "Offset commits refused while the group rebalanced; periodic commits then wait for this member's next assignment.",
        duplicates:
            "Commands whose idempotency key was already done (their outcome was published again if needed), or deliveries already dead-lettered.",
        rerouted: "Commands re-produced to their user's partition (mis-keyed or misplaced).",
        assignedPartitions: "Partitions this worker owns now (commands and retry tiers).",
        fetchRestarts:
            "Owned partitions whose fetch was restarted because they fetched nothing while records waited (librdkafka #2190), by topic.",
        partitionsHeld:
            "Times a commands partition was paused for holding more than its share of max-in-flight while in-flight ran past three quarters of it.",
        RecordRouter.refusedMetric: "Records Kafka refused for good, by record kind, error and what the worker did.",
    ]

    /// The `provider` label of a command naming a provider that does not exist (it is answered
    /// `rejected`): one series for all such names, so a producer's mistakes cannot add series.
    static let unknownProvider = "unknown"

    /// The `result` label of a provider call, by `slot(_:)`.
    private static let answerResults = [
        "cancelled", "already_cancelled", "not_cancellable", "not_found", "rejected", "retry_later", "unknown",
        "configuration",
    ]

    private static func slot(_ classification: CancelClassification) -> Int {
        switch classification {
        case .cancelled: 0
        case .alreadyCancelled: 1
        case .notCancellable: 2
        case .notFound: 3
        case .rejected: 4
        case .retryLater: 5
        case .unknown: 6
        case .configuration: 7
        }
    }

    private static func slot(_ provider: ProviderID) -> Int {
        ProviderID.allCases.firstIndex(of: provider)!
    }

    /// An outcome published. `provider` is the command's own text: a name no provider has
    /// counts as ``unknownProvider``.
    @inline(never)  // keeps its work out of the async frames that call it
    package func outcome(provider: String, status: OutcomeStatus) {
        let providerSlot = ProviderID(rawValue: provider).map(Self.slot) ?? ProviderID.allCases.count
        let statusSlot = OutcomeStatus.allCases.firstIndex(of: status)!
        self.outcomeSeries(providerSlot * OutcomeStatus.allCases.count + statusSlot).increment()
    }

    /// A provider call answered, and how long it took.
    @inline(never)  // keeps its work out of the async frames that call it
    package func answer(_ provider: ProviderID, _ classification: CancelClassification, took: Duration) {
        Self.record(
            self.answerSeries(Self.slot(provider) * Self.answerResults.count + Self.slot(classification)), took)
    }

    /// A call that waited for its user's rate-limit slot, and how long it will wait.
    @inline(never)  // keeps its work out of the async frames that call it
    func rateLimitWait(_ provider: ProviderID, for wait: Duration) {
        self.waitSeries(Self.slot(provider)).increment()
        Self.record(self.waitTimeSeries(Self.slot(provider)), wait)
    }

    /// A record taken from `topic` (the commands topic or a retry tier: a fixed set).
    @inline(never)  // keeps its work out of the async frames that call it
    package func consumed(topic: String) {
        let counter = self.consumedSeries.withLock { series in
            if let counter = series[topic] { return counter }
            let counter = Counter(label: Self.commandsConsumed, dimensions: [("topic", topic)], factory: self.factory)
            series[topic] = counter
            return counter
        }
        counter.increment()
    }

    @inline(never)  // keeps its work out of the async frames that call it
    package func increment(_ label: String, _ dimensions: [(String, String)] = [], by amount: Int = 1) {
        let key = Self.key(label, dimensions)
        let counter = self.counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: label, dimensions: dimensions, factory: self.factory)
            counters[key] = counter
            return counter
        }
        counter.increment(by: amount)
    }

    @inline(never)  // keeps its work out of the async frames that call it
    package func record(_ label: String, _ dimensions: [(String, String)] = [], duration: Duration) {
        let key = Self.key(label, dimensions)
        let timer = self.timers.withLock { timers in
            if let timer = timers[key] { return timer }
            let timer = Timer(
                label: label, dimensions: dimensions, preferredDisplayUnit: .seconds, factory: self.factory)
            timers[key] = timer
            return timer
        }
        Self.record(timer, duration)
    }

    private static func record(_ timer: Timer, _ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        timer.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    @inline(never)  // keeps its work out of the async frames that call it
    func gauge(_ label: String, _ dimensions: [(String, String)] = [], value: Double) {
        let key = Self.key(label, dimensions)
        let gauge = self.gauges.withLock { gauges in
            if let gauge = gauges[key] { return gauge }
            let gauge = Gauge(label: label, dimensions: dimensions, factory: self.factory)
            gauges[key] = gauge
            return gauge
        }
        gauge.record(value)
    }

    /// Drops a gauge's series (e.g. the lag of a partition this worker no longer owns).
    func removeGauge(_ label: String, _ dimensions: [(String, String)] = []) {
        let key = Self.key(label, dimensions)
        let gauge = self.gauges.withLock { $0.removeValue(forKey: key) }
        gauge?.destroy()
    }

    /// Times a ledger operation.
    package func ledger<T>(_ operation: LedgerOperation, _ body: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        defer { self.recordLedger(operation, took: .now - start) }
        return try await body()
    }

    @inline(never)  // keeps its work out of the async frames that call it
    private func recordLedger(_ operation: LedgerOperation, took: Duration) {
        Self.record(self.ledgerSeries(LedgerOperation.allCases.firstIndex(of: operation)!), took)
    }

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> Key {
        Key(label: label, dimensions: dimensions)
    }

    /// A series: its label and dimensions, hashed in place. (A string key built per call was
    /// three to five allocations on every command; issue 14.)
    private struct Key: Hashable {
        let label: String
        let dimensions: [(String, String)]

        static func == (lhs: Key, rhs: Key) -> Bool {
            lhs.label == rhs.label && lhs.dimensions.count == rhs.dimensions.count
                && zip(lhs.dimensions, rhs.dimensions).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(self.label)
            hasher.combine(self.dimensions.count)
            for (name, value) in self.dimensions {
                hasher.combine(name)
                hasher.combine(value)
            }
        }
    }
}

/// A ledger operation the worker times (the `operation` label of ``WorkerMetrics/ledgerLatency``).
package enum LedgerOperation: String, CaseIterable, Sendable {
    case claim
    case markSent = "mark_sent"
    case complete
    case release
    case markPublished = "mark_published"
}

/// The series of one metric over a fixed set of label values, one slot each, made on first use.
private final class SeriesSlots<Series: Sendable>: Sendable {
    private let slots: Mutex<[Series?]>
    private let make: @Sendable (Int) -> Series

    init(count: Int, make: @escaping @Sendable (Int) -> Series) {
        self.slots = Mutex(Array(repeating: nil, count: count))
        self.make = make
    }

    func callAsFunction(_ slot: Int) -> Series {
        self.slots.withLock { slots in
            if let series = slots[slot] { return series }
            let series = self.make(slot)
            slots[slot] = series
            return series
        }
    }
}
