import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import MetricsTestKit
import Testing

@testable import Worker

/// Records the cluster refuses for good (issue 12, item 5): each gets a defined end — a
/// dead letter, shortened if it must be — and the partition moves on. The workers process one
/// record at a time per partition, so a record stuck in a send loop would hold up every record
/// behind it.
@Suite("Poison records never stall a partition (mock cluster)", .timeLimit(.minutes(3)))
struct PoisonRecordTests {
    /// The worker's producer refuses records above this (librdkafka checks it before sending).
    static let producerLimit = 16_384

    func worker(
        _ harness: WorkerHarness, provider: ScriptedProvider, ledger: InMemoryLedger = InMemoryLedger(),
        smallProducer: Bool = true
    ) -> CancelWorker {
        var configuration = harness.configuration()
        if smallProducer { configuration.kafka.additionalProperties["message.max.bytes"] = String(Self.producerLimit) }
        configuration.partitionConcurrency = 1
        return CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: ledger, logger: harnessLogger)
    }

    @Test(
        "a dead letter larger than the producer's message.max.bytes is stored truncated, and later commands get their outcomes"
    )
    func oversizedDeadLetterIsTruncated() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.fastpod)
        let worker = self.worker(harness, provider: provider)
        // Under the worker's 64 KiB command limit, above its producer's 16 KiB record limit.
        let poison = "poison:" + String(repeating: "x", count: 30_000 - 7)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.sendRaw(poison, key: "fastpod:acct")
            try await harness.send([command(order: "after")])

            let outcomes = try await harness.outcomes(atLeast: 1, timeout: .seconds(20))
            #expect(
                outcomes.map(\.idempotencyKey) == ["fastpod-after"],
                "the command behind the poison record was processed")
            #expect(outcomes.first?.status == .cancelled)

            let letter = try #require(try await harness.deadLetters(atLeast: 1, timeout: .seconds(20)).first)
            #expect(letter.headers.string(WorkerHeaders.errorClass) == "invalid_command")
            #expect(
                letter.headers.string(WorkerHeaders.errorMessage) == "not a JSON object", "the original reason is kept")
            #expect(letter.headers.string(WorkerHeaders.valueTruncated) == "true")
            #expect(letter.headers.string(WorkerHeaders.valueOriginalBytes) == "30000")
            #expect(
                letter.value.count > 10_000 && letter.value.count < Self.producerLimit, "\(letter.value.count) bytes")
            #expect(
                letter.value == Array(poison.utf8.prefix(letter.value.count)), "the value is the original's first bytes"
            )
            #expect(letter.key == Array("fastpod:acct".utf8))
        }
    }

    /// The `cw.*` headers are the worker's own, on the records it writes (retry tiers, replays);
    /// an upstream producer can set them too. A value no worker writes (a count out of range, a
    /// due time far in the past or future) is read as if the header were absent: before, each
    /// of these trapped on an integer overflow (a crash loop: every worker that took the
    /// partition died on the same record, some after calling the provider), waited for ever
    /// (holding the partition's commits), or skipped the command without an outcome.
    @Test("regression: commands whose cw.* headers hold values no worker writes are answered, and the worker goes on")
    func outOfRangeWorkerHeaders() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let unknownThenCancelled: [CancelClassification] = [.unknown, .cancelled]
        let provider = ScriptedProvider(
            .fastpod,
            script: [
                "uncertain": unknownThenCancelled, "round": [.unknown, .unknown, .unknown, .unknown, .cancelled],
            ])
        let worker = self.worker(harness, provider: provider, smallProducer: false)
        let cases: [(order: String, header: String, value: String)] = [
            ("base", WorkerHeaders.attemptsBase, String(Int.min)),
            ("attempts", WorkerHeaders.attempts, String(Int.min)),
            ("uncertain", WorkerHeaders.uncertainAttempts, String(Int.max)),
            ("round", WorkerHeaders.retryRound, String(Int.max)),
            ("due-min", WorkerHeaders.retryDueAt, String(Int64.min)),
            ("due-max", WorkerHeaders.retryDueAt, String(Int64.max)),
            ("due-far", WorkerHeaders.retryDueAt, String(Timestamp.milliseconds(Date()) + 400 * 86_400_000)),
            ("replay", WorkerHeaders.replayCount, "-1"),
        ]
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            for entry in cases {
                try await harness.send(
                    command(order: entry.order), headers: [KafkaHeader(name: entry.header, string: entry.value)])
            }
            try await harness.send([command(order: "after")])
            let outcomes = Dictionary(
                grouping: try await harness.outcomes(atLeast: cases.count + 1, timeout: .seconds(60)),
                by: \.idempotencyKey)
            for entry in cases + [("after", "", "")] {
                let outcome = outcomes["fastpod-\(entry.order)"]?.first
                #expect(outcome?.status == .cancelled, "\(entry.order): \(outcome.map { "\($0)" } ?? "no outcome")")
                #expect(outcome?.reason.contains("9223372036854775807") != true, "\(entry.order)")
            }
            #expect(provider.callCount("base") == 1 && provider.callCount("due-max") == 1)
        }
    }

    @Test("an outcome the cluster refuses for good becomes an undeliverable dead letter instead of looping")
    func refusedOutcomeIsDeadLettered() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.fastpod)
        let worker = self.worker(harness, provider: provider)
        // The command fits (about 20 KB); its outcome echoes the metadata and is refused.
        let big = {
            var big = command(order: "big")
            big.metadata = ["blob": .string(String(repeating: "m", count: 20_000))]
            return big
        }()
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send([big, command(order: "after")])

            let outcomes = try await harness.outcomes(atLeast: 1, timeout: .seconds(20))
            #expect(
                outcomes.map(\.idempotencyKey) == ["fastpod-after"],
                "the command behind the refused outcome was processed")

            let letter = try #require(try await harness.deadLetters(atLeast: 1, timeout: .seconds(20)).first)
            #expect(letter.headers.string(WorkerHeaders.errorClass) == "undeliverable")
            #expect(letter.headers.string(WorkerHeaders.undeliverableTopic) == harness.topics.outcomes)
            #expect(
                letter.headers.string(WorkerHeaders.errorMessage)?.contains("MSG_SIZE_TOO_LARGE") == true,
                "\(letter.headers.string(WorkerHeaders.errorMessage) ?? "-")")
            #expect(
                letter.headers.string(WorkerHeaders.idempotencyKey) == nil,
                "not replayable: its value is an outcome, not a command")
            #expect(letter.headers.string(WorkerHeaders.valueTruncated) == "true")
            let original = try #require(letter.headers.string(WorkerHeaders.valueOriginalBytes).flatMap(Int.init))
            #expect(original > Self.producerLimit)
            #expect(letter.value.count > 0 && letter.value.count < Self.producerLimit)
            #expect(
                String(decoding: letter.value, as: UTF8.self).contains("fastpod-big"), "the outcome's beginning is kept"
            )
            #expect(letter.key == Array("fastpod-big".utf8), "keyed like the outcome")
            #expect(provider.callCount("big") == 1)
        }
        let all = try await harness.all(topic: harness.topics.outcomes)
        #expect(all.count == 1, "nothing more was published")
    }

    @Test("a command whose idempotency key holds a NUL is dead-lettered as invalid_command: no claim, no call, no loop")
    func nulInKeyIsDeadLettered() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.fastpod)
        let ledger = InMemoryLedger()
        let worker = self.worker(harness, provider: provider, ledger: ledger, smallProducer: false)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.sendRaw(
                #"{"command_id":"c-nul","idempotency_key":"key\u0000nul","provider":"fastpod","account":"acct","order":{"id":"o-nul"},"requested_at":"2026-01-01T00:00:00Z"}"#,
                key: "fastpod:acct"
            )
            try await harness.send([command(order: "after")])

            let outcomes = try await harness.outcomes(atLeast: 1, timeout: .seconds(20))
            #expect(outcomes.map(\.idempotencyKey) == ["fastpod-after"])
            let letter = try #require(try await harness.deadLetters(atLeast: 1, timeout: .seconds(20)).first)
            #expect(letter.headers.string(WorkerHeaders.errorClass) == "invalid_command")
            let reason = letter.headers.string(WorkerHeaders.errorMessage) ?? ""
            #expect(reason.contains("idempotency_key"), "\(reason)")
            #expect(
                !reason.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F },
                "the reason never echoes the control character")
            #expect(provider.callCount("o-nul") == 0)
            #expect(await ledger.entry(for: "key\u{0}nul") == nil, "the key never reached the ledger")
        }
    }
    @Test(
        "a command whose retry the cluster refuses for good is answered failed (undeliverable), not left without an outcome"
    )
    func refusedRetryIsAnswered() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.feee)
        var configuration = harness.configuration()
        configuration.kafka.additionalProperties["message.max.bytes"] = String(Self.producerLimit)
        configuration.retry.maxInProcessBackoff = .seconds(2)
        let worker = CancelWorker(
            configuration: configuration, providers: [.feee: provider], ledger: InMemoryLedger(), logger: harnessLogger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            // Due in 8 s, beyond the in-process backoff: the command is parked in a retry tier.
            provider.dueTimes.withLock { $0 = ["later": Date().addingTimeInterval(8)] }
            // A header of the upstream's own, carried onto the retry record, makes the retry too
            // large for the worker's producer; the outcome does not carry it.
            let parked = command(.feee, order: "later")
            _ = try await harness.producer.send(
                KafkaProducerMessage(
                    topic: harness.topics.commands, key: Array(parked.kafkaKey.utf8), value: parked.encoded(),
                    headers: [KafkaHeader(name: "x-trace", string: String(repeating: "t", count: 16_200))]))
            try await harness.send([command(.feee, order: "after")])
            let outcomes = Dictionary(
                grouping: try await harness.outcomes(atLeast: 2, timeout: .seconds(30)), by: \.idempotencyKey)
            let failed = try #require(outcomes["feee-later"]?.first, "the parked command was answered")
            #expect(failed.status == .failed)
            #expect(failed.errorClass == DeadLetterClass.undeliverable.rawValue, "\(failed.reason)")
            #expect(failed.reason.contains("retry"), "\(failed.reason)")
            #expect(outcomes["feee-after"]?.first?.status == .cancelled, "the command behind it")
            #expect(provider.callCount("later") == 0, "no call: it was due later")
        }
    }

    @Test("a mis-keyed command whose move to its user's partition the cluster refuses for good is answered failed")
    func refusedMoveIsAnswered() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.fastpod)
        let worker = self.worker(harness, provider: provider)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            // Keyed otherwise than provider:account, so the worker produces it again under its
            // user's key; the upstream's big header makes that record too large for its producer.
            let misplaced = command(order: "moved")
            _ = try await harness.producer.send(
                KafkaProducerMessage(
                    topic: harness.topics.commands, key: Array("not-the-user".utf8), value: misplaced.encoded(),
                    headers: [KafkaHeader(name: "x-trace", string: String(repeating: "t", count: 16_300))]))
            let outcome = try #require(try await harness.outcomes(atLeast: 1, timeout: .seconds(30)).first)
            #expect(outcome.idempotencyKey == "fastpod-moved")
            #expect(outcome.status == .failed)
            #expect(outcome.errorClass == DeadLetterClass.undeliverable.rawValue, "\(outcome.reason)")
            #expect(provider.callCount("moved") == 0, "not called from the wrong partition")
        }
    }

    @Test(
        "a fatal error of the worker's idempotent producer stops the worker with that error instead of retrying for ever"
    )
    func fatalProducerStopsTheWorker() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let gate = OneShot<Void>()
        let provider = ScriptedProvider(.fastpod, hold: gate)
        let worker = self.worker(harness, provider: provider, smallProducer: false)
        let run = Task { () -> (any Error)? in
            do {
                try await worker.run()
                return nil
            } catch {
                return error
            }
        }
        try await harness.waitUntilAssigned([worker])
        try await harness.send([command(.fastpod, order: "fatal-1")])
        #expect(try await eventually(timeout: .seconds(20)) { provider.callsNow.load(ordering: .relaxed) >= 1 })
        // The outcome's Produce is answered OUT_OF_ORDER_SEQUENCE_NUMBER (45): librdkafka's
        // idempotent producer raises a fatal error, and every later produce fails at once.
        try harness.cluster.pushRequestErrors(.produce, errors: [45])
        gate.set(())
        let timedOut = OneShot<Void>()
        let watchdog = Task {
            try await Task.sleep(for: .seconds(60))
            timedOut.set(())
            run.cancel()
        }
        let stopped = await run.value
        watchdog.cancel()
        #expect(timedOut.value == nil, "the worker still ran 60 s after its producer failed for good")
        let error = try #require(stopped, "the worker stopped without an error")
        let kafkaError = try #require(error as? KafkaError, "\(String(describing: error))")
        #expect(kafkaError.isFatal, "\(kafkaError)")
    }
}

/// A producer that names providers nobody configured must not grow the worker's metrics: each
/// distinct name would be a new series in the worker's memory and in every scrape (issue 14's
/// pre-resolved series; found while doing them).
@Suite("Unknown providers in metrics (mock cluster)", .timeLimit(.minutes(2)))
struct UnknownProviderMetricsTests {
    @Test(
        "commands naming 30 unknown providers are rejected and counted under provider=\"unknown\", not one series each")
    func unknownProvidersShareOneSeries() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let metrics = TestMetrics()
        let worker = CancelWorker(
            configuration: harness.configuration(), providers: [.fastpod: ScriptedProvider(.fastpod)],
            ledger: InMemoryLedger(), logger: harnessLogger, metricsFactory: metrics)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            for index in 0..<30 {
                try await harness.sendRaw(
                    #"{"command_id":"c-\#(index)","idempotency_key":"k-\#(index)","provider":"bogus-\#(index)","account":"acct","order":{"id":"o-\#(index)"},"requested_at":"2026-01-01T00:00:00Z"}"#,
                    key: "bogus-\(index):acct")
            }
            try await harness.send([command(order: "after")])

            let outcomes = try await harness.outcomes(atLeast: 31, timeout: .seconds(30))
            #expect(outcomes.filter { $0.status == .rejected }.count == 30)
            #expect(outcomes.first { $0.idempotencyKey == "k-7" }?.provider == "bogus-7", "the outcome keeps the name")

            let rejected = try metrics.expectCounter(
                WorkerMetrics.outcomes, [("provider", "unknown"), ("status", "rejected")])
            #expect(rejected.totalValue == 30)
            let cancelled = try metrics.expectCounter(
                WorkerMetrics.outcomes, [("provider", "fastpod"), ("status", "cancelled")])
            #expect(cancelled.totalValue == 1)
            let names = Set(metrics.counters.flatMap { $0.dimensions.filter { $0.0 == "provider" }.map(\.1) })
            #expect(names == ["unknown", "fastpod"], "provider label values: \(names.sorted())")
        }
    }

}
