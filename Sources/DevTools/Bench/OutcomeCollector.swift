import CancelCore
import Foundation
import Histogram
import Kafka
import Logging
import Sandbox
import Synchronization

/// Follows the outcome topic while a benchmark runs, timing each command from its send.
final class OutcomeCollector: Sendable {
    private struct State {
        var sentAt: [String: ContinuousClock.Instant] = [:]
        var acknowledged = 0
        var seen = Set<String>()
        var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var statuses: [String: Int] = [:]
        /// The first reason read for each status but `cancelled`: why a run's commands did not all end cancelled.
        var reasons: [String: String] = [:]
        var lastArrival: ContinuousClock.Instant?
        /// Counted outcomes per second since `origin`.
        var origin: ContinuousClock.Instant?
        var perSecond: [Int] = []
        var warmUpSeen = Set<String>()
        var warmUpHistogram = Histogram<UInt64>(
            highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    }

    /// Keys of warm-up commands: timed apart, never counted in the scenario's figures.
    static let warmUpPrefix = "warmup-"

    private let state = Mutex(State())
    private let expected: Int
    /// Set when every expected outcome arrived.
    private let complete = OneShot<Void>()
    private let stopped = OneShot<Void>()
    /// Set when the consumer has closed and its reading ended.
    private let finished = OneShot<Void>()
    private let consumer: KafkaConsumer

    private init(expected: Int, consumer: KafkaConsumer, listener: AssignmentFlag) {
        self.expected = expected
        self.consumer = consumer
        self.listener = listener
    }

    private let listener: AssignmentFlag

    /// A collector whose consumer joins at once; run `run()` and await `waitUntilAssigned()`.
    static func make(bootstrap: String, topic: String, expected: Int, logger: Logger) throws -> OutcomeCollector {
        var configuration = KafkaConsumerConfiguration(
            bootstrapServers: bootstrap, groupID: "bench-outcomes-\(UUID().uuidString.prefix(6))")
        configuration.sessionTimeout = .seconds(6)
        configuration.bufferCapacity = 10_000
        configuration.fetchWaitMax = BenchRunner.mockFetchWait
        let listener = AssignmentFlag()
        let consumer = try KafkaConsumer(
            configuration: configuration, topics: [topic], rebalanceListener: listener, logger: logger)
        return OutcomeCollector(expected: expected, consumer: consumer, listener: listener)
    }

    /// Reads until `stop()`, and returns then without waiting for the consumer's close (see
    /// `closed(within:)`).
    ///
    /// The consumer reads in a task of its own, not a child of this one: a close that
    /// librdkafka does not finish (a mock coordinator that does not answer) must not hold the
    /// benchmark after its figures are in. `closed(within:)` says whether it finished.
    func run() async {
        Task { [self] in
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await self.consumer.run() }
                group.addTask {
                    do {
                        for try await message in self.consumer.messages { self.arrived(message) }
                    } catch {}
                }
            }
            self.finished.set(())
        }
        _ = await self.stopped.wait()
        self.consumer.close()
    }

    /// Stops reading: the consumer leaves its group.
    func stop() { self.stopped.set(()) }

    /// Whether the consumer closed within `within` (of now) after `stop()`.
    func closed(within: Duration) async -> Bool {
        await self.finished.wait(timeout: within) != nil
    }

    func waitUntilAssigned(timeout: Duration = .seconds(60)) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !self.listener.isAssigned {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
        return true
    }

    /// Starts the per-second count of outcomes (`timeline`).
    func startTimeline(at origin: ContinuousClock.Instant) {
        self.state.withLock { $0.origin = origin }
    }

    /// Counted outcomes per second since `startTimeline`.
    var timeline: [Int] { self.state.withLock { $0.perSecond } }

    func sent(_ key: String) {
        let now = ContinuousClock.now
        self.state.withLock { $0.sentAt[key] = now }
    }

    /// A sent command's record was acknowledged by the broker.
    func acknowledged() {
        self.state.withLock { $0.acknowledged += 1 }
    }

    /// Commands sent and acknowledged so far (warm-up included).
    var acknowledgedCount: Int { self.state.withLock { $0.acknowledged } }

    private func arrived(_ message: KafkaConsumerMessage) {
        let now = ContinuousClock.now
        guard let outcome = try? CancelOutcome.decode(message.value) else { return }
        let done: Bool = self.state.withLock { state in
            if outcome.idempotencyKey.hasPrefix(Self.warmUpPrefix) {
                if state.warmUpSeen.insert(outcome.idempotencyKey).inserted,
                    let sent = state.sentAt[outcome.idempotencyKey]
                {
                    _ = state.warmUpHistogram.record(UInt64(max(1, (now - sent).timeInterval * 1_000_000)))
                }
                return false
            }
            guard state.seen.insert(outcome.idempotencyKey).inserted else { return false }
            if let sent = state.sentAt[outcome.idempotencyKey] {
                let micros = (now - sent).timeInterval * 1_000_000
                _ = state.histogram.record(UInt64(max(1, micros)))
            }
            state.statuses[outcome.status.rawValue, default: 0] += 1
            if outcome.status != .cancelled, state.reasons[outcome.status.rawValue] == nil {
                state.reasons[outcome.status.rawValue] = outcome.reason
            }
            state.lastArrival = now
            if let origin = state.origin {
                let second = max(0, Int((now - origin).timeInterval))
                if state.perSecond.count <= second {
                    state.perSecond.append(contentsOf: repeatElement(0, count: second + 1 - state.perSecond.count))
                }
                state.perSecond[second] += 1
            }
            return state.seen.count >= self.expected
        }
        if done { self.complete.set(()) }
    }

    /// Waits until `count` warm-up outcomes arrived.
    func waitForWarmUp(_ count: Int, timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while self.state.withLock({ $0.warmUpSeen.count }) < count {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// The warm-up's p99 and maximum, in milliseconds.
    var warmUpLatency: (p99: Double, max: Double) {
        self.state.withLock {
            (Double($0.warmUpHistogram.valueAtPercentile(99)) / 1000, Double($0.warmUpHistogram.maxRecorded) / 1000)
        }
    }

    /// Waits until every expected outcome arrived: false once `timeout` passes, or once no new
    /// outcome arrived for `stall` (a stuck member or client says so in a minute, not at the
    /// end of a long timeout).
    func waitForAll(timeout: Duration, stall: Duration) async throws -> Bool {
        if self.expected <= 0 { return true }
        let deadline = ContinuousClock.now + timeout
        var count = self.received
        var changedAt = ContinuousClock.now
        while ContinuousClock.now < deadline {
            if await self.complete.wait(timeout: min(.seconds(1), deadline - .now)) != nil { return true }
            try Task.checkCancellation()
            let now = self.received
            if now != count {
                count = now
                changedAt = .now
            } else if ContinuousClock.now - changedAt >= stall {
                return false
            }
        }
        return self.complete.value != nil
    }

    var received: Int { self.state.withLock { $0.seen.count } }
    var lastArrival: ContinuousClock.Instant? { self.state.withLock { $0.lastArrival } }
    var histogram: Histogram<UInt64> { self.state.withLock { $0.histogram } }
    var statuses: [String: Int] { self.state.withLock { $0.statuses } }
    var reasons: [String: String] { self.state.withLock { $0.reasons } }
}

/// Tells when a consumer has an assignment.
final class AssignmentFlag: KafkaRebalanceListener {
    private let flag = Mutex(false)
    var isAssigned: Bool { self.flag.withLock { $0 } }
    func partitionsAssigned(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
        if !partitions.isEmpty { self.flag.withLock { $0 = true } }
    }
    func partitionsRevoked(_ partitions: [KafkaTopicPartition], generation: UInt64) async {}
}
