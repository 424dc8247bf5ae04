import CancelCore
import Metrics

/// The client's metrics through swift-metrics (whatever backend the service bootstrapped).
/// Labels are provider and status only: never keys, accounts or order ids.
struct CancelClientMetrics: Sendable {
    static let enqueued = "cancel_client_commands_enqueued_total"
    static let refused = "cancel_client_commands_refused_total"
    static let sendFailures = "cancel_client_send_failures_total"
    static let outcomes = "cancel_client_outcomes_received_total"
    static let timeouts = "cancel_client_cancel_timeouts_total"
    static let waiting = "cancel_client_waiting_cancels"
    static let enqueueLatency = "cancel_client_enqueue_duration_seconds"
    static let cancelLatency = "cancel_client_cancel_duration_seconds"

    private let enqueuedByProvider: [ProviderID: Counter]
    private let refusedByProvider: [ProviderID: Counter]
    private let outcomesByStatus: [OutcomeStatus: Counter]
    private let cancelLatencyByStatus: [OutcomeStatus: Timer]
    private let sendFailures: Counter
    private let timeouts: Counter
    private let waiting: Gauge
    private let enqueueLatency: Timer

    init(factory: any MetricsFactory) {
        func byProvider(_ label: String) -> [ProviderID: Counter] {
            Dictionary(
                uniqueKeysWithValues: ProviderID.allCases.map {
                    ($0, Counter(label: label, dimensions: [("provider", $0.rawValue)], factory: factory))
                })
        }
        self.enqueuedByProvider = byProvider(Self.enqueued)
        self.refusedByProvider = byProvider(Self.refused)
        self.outcomesByStatus = Dictionary(
            uniqueKeysWithValues: OutcomeStatus.allCases.map {
                ($0, Counter(label: Self.outcomes, dimensions: [("status", $0.rawValue)], factory: factory))
            })
        self.cancelLatencyByStatus = Dictionary(
            uniqueKeysWithValues: OutcomeStatus.allCases.map {
                (
                    $0,
                    Timer(
                        label: Self.cancelLatency, dimensions: [("status", $0.rawValue)],
                        preferredDisplayUnit: .seconds,
                        factory: factory)
                )
            })
        self.sendFailures = Counter(label: Self.sendFailures, factory: factory)
        self.timeouts = Counter(label: Self.timeouts, factory: factory)
        self.waiting = Gauge(label: Self.waiting, factory: factory)
        self.enqueueLatency = Timer(label: Self.enqueueLatency, preferredDisplayUnit: .seconds, factory: factory)
    }

    func enqueued(_ provider: ProviderID, after duration: Duration) {
        self.enqueuedByProvider[provider]?.increment()
        self.enqueueLatency.recordNanoseconds(duration.nanoseconds)
    }

    func refused(_ provider: ProviderID) { self.refusedByProvider[provider]?.increment() }
    func sendFailed() { self.sendFailures.increment() }
    func received(_ status: OutcomeStatus) { self.outcomesByStatus[status]?.increment() }
    func answered(_ status: OutcomeStatus, after duration: Duration) {
        self.cancelLatencyByStatus[status]?.recordNanoseconds(duration.nanoseconds)
    }
    func timedOut() { self.timeouts.increment() }
    func waiting(_ count: Int) { self.waiting.record(count) }
}

extension Duration {
    fileprivate var nanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
