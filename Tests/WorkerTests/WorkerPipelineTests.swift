import CancelCore
import Foundation
import Kafka
import Testing

@testable import Worker

@Suite("Worker pipeline on the mock cluster (scripted provider)", .timeLimit(.minutes(3)))
struct WorkerPipelineTests {
    @Test("duplicates, poison, invalid, unknown account, deadline, transient failures, exhaustion")
    func routing() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        let provider = ScriptedProvider(.fastpod, script: [
            "flaky": [.unknown, .retryLater(after: .milliseconds(50), scope: .account), .cancelled],
            "broken": [.unknown],
            "badkey": [.configuration],
            "gone": [.notFound],
        ])
        var configuration = harness.configuration()
        configuration.retry.maxAttempts = 4
        let worker = CancelWorker(configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(), logger: harnessLogger)

        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            let duplicate = command(order: "dup-1", key: "same-key")
            try await harness.send(Array(repeating: duplicate, count: 5))
            try await harness.sendRaw("this is not json", key: "fastpod:acct")
            try await harness.sendRaw(#"{"command_id":"c","idempotency_key":"bad-provider","provider":"paypal","account":"acct","order":{},"requested_at":"2026-01-01T00:00:00Z"}"#, key: "paypal:acct")
            try await harness.send([
                command(account: "stranger", order: "o-stranger"),
                command(order: "late", deadline: Date().addingTimeInterval(-1)),
                command(order: "flaky"),
                command(order: "broken"),
                command(order: "badkey"),
                command(order: "gone"),
            ])
            let outcomes = try await harness.outcomes(atLeast: 8)
            let byKey = Dictionary(grouping: outcomes, by: \.idempotencyKey)
            #expect(byKey["same-key"]?.map(\.status) == [.cancelled], "five copies, one outcome")
            #expect(provider.callCount("dup-1") == 1, "five copies, one call")
            #expect(byKey["bad-provider"]?.map(\.status) == [.rejected])
            #expect(byKey["fastpod-o-stranger"]?.first?.reason.contains("no credentials") == true)
            #expect(byKey["fastpod-late"]?.map(\.status) == [.expired])
            #expect(provider.callCount("late") == 0, "no call after the deadline")
            #expect(byKey["fastpod-flaky"]?.map(\.status) == [.cancelled])
            #expect(byKey["fastpod-flaky"]?.first?.attempts == 3)
            #expect(byKey["fastpod-gone"]?.map(\.status) == [.notFound])
            #expect(byKey["fastpod-badkey"]?.map(\.status) == [.failed])
            #expect(byKey["fastpod-badkey"]?.first?.errorClass == "configuration")
            #expect(byKey["fastpod-broken"]?.map(\.status) == [.failed])
            #expect(byKey["fastpod-broken"]?.first?.errorClass == "retries_exhausted")
            #expect(provider.callCount("broken") == 4, "maxAttempts calls, across in-process retries and tiers")

            let deadLetters = try await harness.deadLetters(atLeast: 3)
            let classes = deadLetters.map { $0.headers.string(WorkerHeaders.errorClass) ?? "-" }.sorted()
            #expect(classes == ["configuration", "invalid_command", "retries_exhausted"])
            let poison = try #require(deadLetters.first { $0.headers.string(WorkerHeaders.errorClass) == "invalid_command" })
            #expect(String(decoding: poison.value, as: UTF8.self) == "this is not json", "the original bytes are kept")
            #expect(poison.headers.string(WorkerHeaders.errorMessage) == "not a JSON object")
            #expect(poison.headers.string(WorkerHeaders.originTopic) == harness.topics.commands)
            let exhausted = try #require(deadLetters.first { $0.headers.string(WorkerHeaders.errorClass) == "retries_exhausted" })
            #expect(exhausted.headers.string(WorkerHeaders.attempts) == "4")
            #expect(exhausted.headers.string(WorkerHeaders.idempotencyKey) == "fastpod-broken")
            #expect(exhausted.headers.string(WorkerHeaders.retryRound) != nil, "it went through a retry tier")
        }
        let all = try await harness.all(topic: harness.topics.outcomes)
        #expect(all.count == 8, "nothing more was published")
    }
}
