import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Logging
import MetricsTestKit
import Synchronization
import Testing

@testable import Worker

/// One user's backlog — a mass cancel at the futures exchange, paced at 10/s — must not take
/// all of `max-in-flight`: intake would wait for a permit with the backlog's next record in
/// hand, and every other user of the worker, in every partition, would wait behind it.
@Suite("A partition's share of max-in-flight", .timeLimit(.minutes(3)))
struct WorkerPartitionShareTests {
    /// An account of `provider` whose commands go to `partition` of 2.
    static func account(_ provider: ProviderID, on partition: Int32) -> String {
        Self.account(provider, on: partition, of: 2, prefix: "user")
    }

    /// An account of `provider` whose commands go to `partition` of `count`.
    static func account(_ provider: ProviderID, on partition: Int32, of count: Int, prefix: String) -> String {
        (0..<10_000).lazy.map { "\(prefix)-\($0)" }.first { account in
            let key = Array(CancelCommand.kafkaKey(provider: provider.rawValue, account: account).utf8)
            return KafkaPartitioner.partition(forKey: key, partitionCount: count) == partition
        }!
    }

    /// The hold ends when half the partition's commands are done *or* the worker has room:
    /// the room may come from other partitions' commands ending while this one's are stuck.
    @Test("review finding: a held partition whose own calls hang is released once other partitions leave room")
    func heldReleasedByRoomElsewhere() async throws {
        let harness = try await WorkerHarness(partitions: 4)
        let hot = Self.account(.futures, on: 0, of: 4, prefix: "hot")
        let cold = Self.account(.fastpod, on: 0, of: 4, prefix: "cold")
        let busy = (1...3).map { Self.account(.fungies, on: Int32($0), of: 4, prefix: "busy") }
        let (hotGate, busyGate) = (OneShot<Void>(), OneShot<Void>())
        let exchange = ScriptedProvider(.futures, accounts: [hot], hold: hotGate)
        let shop = ScriptedProvider(.fungies, accounts: Set(busy), hold: busyGate)
        let pod = ScriptedProvider(.fastpod, accounts: [cold])
        var configuration = harness.configuration()
        configuration.maxInFlight = 8  // crowded from 6 on; a partition's share then 3; roomy below 5
        let worker = CancelWorker(
            configuration: configuration, providers: [.futures: exchange, .fungies: shop, .fastpod: pod],
            ledger: InMemoryLedger(), logger: harnessLogger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send((0..<3).map { command(.futures, account: hot, order: "\(2000 + $0)") })
            try await harness.send(busy.enumerated().map { command(.fungies, account: $1, order: "busy-\($0)") })
            let deadline = ContinuousClock.now + .seconds(20)
            while exchange.callsNow.load(ordering: .relaxed) + shop.callsNow.load(ordering: .relaxed) < 6
                && ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(20))
            }
            // Partition 0 is at its share in a crowded worker: the cold user's cancel is held.
            try await harness.send([command(.fastpod, account: cold, order: "cold-0")])
            try await Task.sleep(for: .seconds(1))
            #expect(pod.totalCalls == 0, "held while the worker is crowded")
            busyGate.set(())
            _ = try await harness.outcomes(atLeast: 3, timeout: .seconds(20))
            let called = try await eventually(timeout: .seconds(10)) { pod.totalCalls == 1 }
            #expect(called, "\(worker.status.inFlight) of 8 in flight, and the cold user's cancel still waits")
            hotGate.set(())
            _ = try await harness.outcomes(atLeast: 7, timeout: .seconds(30))
        }
    }

    @Test(
        "a paced user's backlog beyond max-in-flight: other users' cancels are answered meanwhile, every command once")
    func backlogDoesNotStallOthers() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        let (hot, cold) = (Self.account(.futures, on: 0), Self.account(.fastpod, on: 1))
        let exchange = ScriptedProvider(.futures, accounts: [hot])
        let pod = ScriptedProvider(.fastpod, accounts: [cold])
        var configuration = harness.configuration()
        configuration.rateLimits = [.futures: RateLimit(requestsPerSecond: 10)]
        configuration.maxInFlight = 40
        configuration.consumerBufferCapacity = 100
        let metrics = TestMetrics()
        let worker = CancelWorker(
            configuration: configuration, providers: [.futures: exchange, .fastpod: pod], ledger: InMemoryLedger(),
            logger: harnessLogger, metricsFactory: metrics)
        let backlog = 200
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send((0..<backlog).map { command(.futures, account: hot, order: "\(1000 + $0)") })
            // The backlog takes what it may of max-in-flight (it needs 20 s at 10/s).
            let deadline = ContinuousClock.now + .seconds(20)
            while worker.status.inFlight < 30 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(worker.status.inFlight >= 30, "in flight: \(worker.status.inFlight)")
            try await harness.send((0..<5).map { command(.fastpod, account: cold, order: "cold-\($0)") })
            let outcomes = try await harness.outcomes(atLeast: backlog + 5, timeout: .seconds(90))
            #expect(Set(outcomes.map(\.idempotencyKey)).count == backlog + 5, "every command answered once")
            #expect(outcomes.allSatisfy { $0.status == .cancelled })
        }
        let hotCalls = exchange.calls.withLock { $0 }.map(\.at)
        // Stuck behind the backlog, the other user's cancels would be sent after its next 100
        // (the consumer's buffer: intake waits for a permit with a hot record in hand, and
        // each permit comes back at the user's pace).
        let lastCold = try #require(pod.calls.withLock { $0 }.map(\.at).max())
        let hotBefore = hotCalls.count { $0 < lastCold }
        #expect(hotBefore < 80, "the other user's cancels were sent after \(hotBefore) of the backlog's \(backlog)")
        #expect(hotCalls.count == backlog, "each of the backlog's commands was sent once")
        #expect(WorkerPacingTests.peak(hotCalls) <= 10, "paced: \(WorkerPacingTests.peak(hotCalls)) in one second")
        let held = try metrics.expectCounter(WorkerMetrics.partitionsHeld, [("topic", harness.topics.commands)])
        #expect(held.totalValue >= 1)
    }

    @Test(
        "a held partition whose records come back before intake's pause is issued is resumed: records produced later are consumed"
    )
    func releasedBeforeThePause() async throws {
        let harness = try await WorkerHarness(partitions: 4)
        let account = (0..<1000).lazy.map { "user-\($0)" }.first { account in
            let key = Array(CancelCommand.kafkaKey(provider: ProviderID.fastpod.rawValue, account: account).utf8)
            return KafkaPartitioner.partition(forKey: key, partitionCount: 4) == 0
        }!
        let gate = OneShot<Void>()
        let provider = ScriptedProvider(.fastpod, accounts: [account], hold: gate)
        var configuration = harness.configuration()
        configuration.maxInFlight = 4  // crowded at 3 in process: a partition's share is 1 of 4
        let held = Atomic<Int>(0)
        // The window between holding (intake's `hold`) and the consumer's pause, widened: where
        // the worker logs the hold, the held calls are let through and that thread stops for 2 s,
        // so the partition's commands end and its held record comes back first.
        let logger = Logger(label: "cancel-worker") { _ in
            LogSeam(level: .notice) { event in
                guard event.message.description.hasPrefix("partition holds more than its share") else { return }
                held.add(1, ordering: .relaxed)
                gate.set(())
                Thread.sleep(forTimeInterval: 2)
            }
        }
        let worker = CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(), logger: logger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send((0..<3).map { command(.fastpod, account: account, order: "a\($0)") })
            try await Task.sleep(for: .seconds(1))
            // Fetched with 3 in process: intake holds it and pauses the partition.
            try await harness.send([command(.fastpod, account: account, order: "a3")])
            _ = try await harness.outcomes(atLeast: 4, timeout: .seconds(20))
            #expect(held.load(ordering: .relaxed) >= 1, "the partition was held")
            try await Task.sleep(for: .seconds(3))
            // Produced after the pause: fetched only if the partition was resumed.
            try await harness.send((4..<8).map { command(.fastpod, account: account, order: "a\($0)") })
            let outcomes = try await harness.outcomes(atLeast: 8, timeout: .seconds(20))
            #expect(Set(outcomes.map(\.idempotencyKey)).count == 8, "records after the hold were consumed")
        }
    }
}

/// A log handler that hands each event at or above `level` to `seen`, on the logging thread.
private struct LogSeam: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let seen: @Sendable (LogEvent) -> Void

    init(level: Logger.Level, seen: @escaping @Sendable (LogEvent) -> Void) {
        self.logLevel = level
        self.seen = seen
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) { self.seen(event) }
}
