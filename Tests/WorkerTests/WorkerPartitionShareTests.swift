import CancelCore
import Foundation
import Kafka
import MetricsTestKit
import Testing

@testable import Worker

/// One user's backlog — a mass cancel at the futures exchange, paced at 10/s — must not take
/// all of `max-in-flight`: intake would wait for a permit with the backlog's next record in
/// hand, and every other user of the worker, in every partition, would wait behind it.
@Suite("A partition's share of max-in-flight", .timeLimit(.minutes(3)))
struct WorkerPartitionShareTests {
    /// An account of `provider` whose commands go to `partition` of 2.
    static func account(_ provider: ProviderID, on partition: Int32) -> String {
        (0..<100).lazy.map { "user-\($0)" }.first { account in
            let key = Array(CancelCommand.kafkaKey(provider: provider.rawValue, account: account).utf8)
            return KafkaPartitioner.partition(forKey: key, partitionCount: 2) == partition
        }!
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
}
