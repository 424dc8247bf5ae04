import CancelCore
import Foundation
import Kafka
import Testing

@testable import Worker

@Suite("Pacing on the mock cluster (scripted provider)", .timeLimit(.minutes(3)))
struct WorkerPacingTests {
    /// The largest number of calls inside any window of `window`.
    static func peak(_ calls: [ContinuousClock.Instant], window: Duration = .seconds(1)) -> Int {
        let sorted = calls.sorted()
        var best = 0
        var start = 0
        for end in sorted.indices {
            while sorted[end] - sorted[start] >= window { start += 1 }
            best = max(best, end - start + 1)
        }
        return best
    }

    @Test("a burst for one futures user is paced at its limit while other users complete meanwhile")
    func burst() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let busy = ScriptedProvider(.futures, accounts: ["hot", "cold-1", "cold-2"], latency: .milliseconds(5))
        var configuration = harness.configuration()
        configuration.rateLimits = [.futures: RateLimit(requestsPerSecond: 10)]
        let worker = CancelWorker(
            configuration: configuration, providers: [.futures: busy], ledger: InMemoryLedger(), logger: harnessLogger)
        let burst = 40
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send((0..<burst).map { command(.futures, account: "hot", order: "\(1000 + $0)") })
            try await harness.send(
                (0..<5).map { command(.futures, account: "cold-\($0 % 2 + 1)", order: "\(9000 + $0)") })
            let outcomes = try await harness.outcomes(atLeast: burst + 5, timeout: .seconds(90))
            #expect(Set(outcomes.map(\.idempotencyKey)).count == burst + 5)
            #expect(outcomes.allSatisfy { $0.status == .cancelled })
            // Other users were not stuck behind the hot user's backlog: stuck, they would finish
            // last (position 40 or more); paced apart from it they finish while it still runs
            // (position 20 in a CI run whose cores a benchmark shared).
            let order = outcomes.map(\.account)
            let lastCold = order.lastIndex { $0.hasPrefix("cold") }!
            #expect(lastCold < burst * 3 / 4, "cold users finished while the burst ran, at position \(lastCold)")
        }
        let calls = busy.calls.withLock { $0 }
        let hotCalls = calls.filter { Int($0.order)! < 9000 }.map(\.at)
        #expect(hotCalls.count == burst)
        #expect(
            Self.peak(hotCalls) <= 10, "at most 10 calls in any second for the hot user, saw \(Self.peak(hotCalls))")
        let span = hotCalls.max()! - hotCalls.min()!
        #expect(span >= .seconds(Double(burst - 1) / 10.0 * 0.99), "paced, not bursted: \(span)")
    }

    /// Issue 12 §8: a provider's "slow down" belongs to the user, not to the worker that heard it.
    @Test("a 29001 pause outlives the partition's move: the next owner does not call the user before it ends")
    func pauseSurvivesHandover() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let pause: Duration = .seconds(12)
        let exchange = ScriptedProvider(
            .futures, accounts: ["u"], script: ["101": [.retryLater(after: pause, scope: .account), .cancelled]])
        let ledger = InMemoryLedger()
        var configuration = harness.configuration()
        configuration.rateLimits = [.futures: RateLimit(requestsPerSecond: 10)]
        let first = CancelWorker(
            configuration: configuration, providers: [.futures: exchange], ledger: ledger, logger: harnessLogger)
        // The first owner hears the 29001, then leaves the group (a deploy, a scale-down).
        try await harness.withWorkers([first]) {
            try await harness.waitUntilAssigned([first])
            try await harness.send([command(.futures, account: "u", order: "101")])
            let deadline = ContinuousClock.now + .seconds(30)
            while exchange.callCount("101") == 0 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let heard = try #require(exchange.calledAt("101").first)
        var next = configuration
        next.workerID = "w-next"
        let second = CancelWorker(
            configuration: next, providers: [.futures: exchange], ledger: ledger, logger: harnessLogger)
        try await harness.withWorkers([second]) {
            try await harness.waitUntilAssigned([second])
            let assignedAfter = ContinuousClock.now - heard
            #expect(
                assignedAfter < pause - .seconds(3),
                "the new owner must get the partition well inside the pause (took \(assignedAfter))")
            try await harness.send([command(.futures, account: "u", order: "102")])
            let outcomes = try await harness.outcomes(atLeast: 2, timeout: .seconds(60))
            #expect(Set(outcomes.map(\.idempotencyKey)) == ["futures-101", "futures-102"])
            #expect(outcomes.allSatisfy { $0.status == .cancelled })
        }
        let later = exchange.calls.withLock { $0 }.map(\.at).filter { $0 > heard }
        #expect(later.count == 2)
        for call in later {
            #expect(
                call - heard >= pause - .milliseconds(50),
                "a call for the paused user went out \(call - heard) after the 29001 (pause: \(pause))")
        }
    }
}
