import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Sandbox
import Testing

@testable import Worker

@Suite("End to end: mock cluster, real adapters, provider sandbox", .timeLimit(.minutes(4)))
struct WorkerEndToEndTests {
    @Test("the same key 5 times: one provider call, one outcome; poison is dead-lettered and the worker keeps going")
    func duplicatesAndPoison() async throws {
        let harness = try await WorkerHarness(partitions: 3)
        try await SandboxProviders.with(timeout: .seconds(2), logger: harnessLogger) { sandbox in
            sandbox.sandbox.seed([
                SandboxOrder(provider: .fastpod, id: "F-dup"), SandboxOrder(provider: .fungies, id: "after-poison"),
            ])
            let worker = CancelWorker(
                configuration: harness.configuration(), providers: sandbox.registry.providers, ledger: InMemoryLedger(),
                logger: harnessLogger)
            try await harness.withWorkers([worker]) {
                try await harness.waitUntilAssigned([worker])
                let duplicate = command(.fastpod, account: "demo-1", order: "F-dup", key: "dup-key")
                try await harness.send(Array(repeating: duplicate, count: 5))
                try await harness.sendRaw("{\"truncated\": ", key: "fastpod:demo-1")
                try await harness.sendRaw(String(decoding: [0xC3, 0x28, 0xFF], as: UTF8.self), key: nil)
                try await harness.send([command(.fungies, account: "demo-1", order: "after-poison")])
                let outcomes = try await harness.outcomes(atLeast: 2)
                #expect(outcomes.map(\.idempotencyKey).sorted() == ["dup-key", "fungies-after-poison"])
                #expect(outcomes.allSatisfy { $0.status == .cancelled })
                #expect(sandbox.calls(.fastpod, "F-dup").count == 1, "five copies, one call")
                let deadLetters = try await harness.deadLetters(atLeast: 2)
                #expect(deadLetters.allSatisfy { $0.headers.string(WorkerHeaders.errorClass) == "invalid_command" })
                #expect(deadLetters.allSatisfy { !($0.headers.string(WorkerHeaders.errorMessage) ?? "").isEmpty })
            }
            #expect(try await harness.all(topic: harness.topics.outcomes).count == 2)
        }
    }

    @Test("deadline passed: expired, no call; transient 5xx retried to cancelled; exhausted: DLQ and failed")
    func deadlinesAndRetries() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        try await SandboxProviders.with(timeout: .seconds(2), logger: harnessLogger) { sandbox in
            sandbox.sandbox.seed(["late", "flaky", "down"].map { SandboxOrder(provider: .fastpod, id: $0) })
            sandbox.sandbox.addFault(
                SandboxFault(
                    .status(code: 503, retryAfterSeconds: nil), provider: .fastpod, orderPattern: "flaky", count: 2))
            sandbox.sandbox.addFault(
                SandboxFault(.status(code: 500, retryAfterSeconds: nil), provider: .fastpod, orderPattern: "down"))
            var configuration = harness.configuration()
            configuration.retry.maxAttempts = 4
            let worker = CancelWorker(
                configuration: configuration, providers: sandbox.registry.providers, ledger: InMemoryLedger(),
                logger: harnessLogger)
            try await harness.withWorkers([worker]) {
                try await harness.waitUntilAssigned([worker])
                try await harness.send([
                    command(.fastpod, account: "demo-1", order: "late", deadline: Date(timeIntervalSinceNow: -5)),
                    command(.fastpod, account: "demo-1", order: "flaky"),
                    command(.fastpod, account: "demo-1", order: "down"),
                ])
                let outcomes = Dictionary(grouping: try await harness.outcomes(atLeast: 3), by: \.idempotencyKey)
                #expect(outcomes["fastpod-late"]?.map(\.status) == [.expired])
                #expect(sandbox.calls(.fastpod, "late").isEmpty, "no call after the deadline")
                #expect(outcomes["fastpod-flaky"]?.map(\.status) == [.cancelled])
                #expect(outcomes["fastpod-flaky"]?.first?.attempts == 3)
                #expect(sandbox.calls(.fastpod, "flaky").map(\.status) == [503, 503, 200])
                let failed = try #require(outcomes["fastpod-down"]?.first)
                #expect(failed.status == .failed && failed.errorClass == "retries_exhausted" && failed.attempts == 4)
                #expect(failed.providerResponse?.httpStatus == 500)
                #expect(sandbox.calls(.fastpod, "down").count == 4)
                let deadLetter = try #require(try await harness.deadLetters(atLeast: 1).first)
                #expect(deadLetter.headers.string(WorkerHeaders.errorClass) == "retries_exhausted")
                #expect(deadLetter.headers.string(WorkerHeaders.providerStatus) == "500")
                #expect(deadLetter.headers.string(WorkerHeaders.idempotencyKey) == "fastpod-down")
                #expect(
                    CommandDecoder().decode(deadLetter.value) != .undecodable(reason: ""),
                    "the original command is kept")
            }
        }
    }

    @Test("500 cancels for one futures user: never more than 10/s at the exchange, other users finish meanwhile")
    func futuresBurst() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        var sandboxConfiguration = SandboxConfiguration()
        sandboxConfiguration.openByDefault = true
        try await SandboxProviders.with(sandboxConfiguration, timeout: .seconds(2), logger: harnessLogger) { sandbox in
            let worker = CancelWorker(
                configuration: harness.configuration(), providers: sandbox.registry.providers, ledger: InMemoryLedger(),
                logger: harnessLogger)
            let burst = 500
            try await harness.withWorkers([worker]) {
                try await harness.waitUntilAssigned([worker])
                let started = ContinuousClock.now
                try await harness.send(
                    (0..<burst).map { command(.futures, account: "demo-1", order: String(100_000 + $0)) })
                let others =
                    (0..<10).map { command(.futures, account: "demo-\(2 + $0 % 2)", order: String(900_000 + $0)) }
                    + (0..<10).map { command(.fastpod, account: "demo-1", order: "other-\($0)") }
                try await harness.send(others)
                let outcomes = try await harness.outcomes(atLeast: burst + others.count, timeout: .seconds(120))
                #expect(Set(outcomes.map(\.idempotencyKey)).count == burst + others.count)
                #expect(outcomes.allSatisfy { $0.status == .cancelled }, "\(Set(outcomes.map(\.status)))")
                let elapsed = ContinuousClock.now - started
                // Others were not stuck behind the hot user's backlog.
                let otherKeys = Set(others.map(\.idempotencyKey))
                let lastOther = outcomes.lastIndex { otherKeys.contains($0.idempotencyKey) }!
                #expect(
                    lastOther < 150, "other users' outcomes came early (position \(lastOther) of \(outcomes.count))")
                #expect(elapsed >= .seconds(49), "500 calls at 10/s take about 50 s: \(elapsed)")
            }
            let stats = sandbox.sandbox.stats()
            #expect(
                stats.maxRatePerUser["futures:demo-1"] ?? 99 <= 10,
                "the exchange saw \(stats.maxRatePerUser["futures:demo-1"] ?? -1) in one second")
            #expect(stats.totalViolations == 0)
            #expect(stats.byAccount["futures:demo-1"] == burst)
        }
    }
}
