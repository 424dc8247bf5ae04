import CancelCore
import Foundation
import Kafka
import Testing

@testable import Console
@testable import OperatorTools

/// Review finding (console): a confirmed replay started a fresh run with no bound but the
/// preview's own `limit` (usually none): dead letters that arrived between the preview and the
/// confirmation (a new outage) were replayed too, beyond the count the operator typed.
@Suite("Console replays on the mock cluster", .timeLimit(.minutes(3)))
struct ConsoleReplayTests {
    /// Review finding: a replayed command that failed again is released dead-lettered, owner
    /// none, state `sent`: the result page called it "in progress" and refreshed for ever.
    @Test("review finding: a replayed command dead-lettered again is shown so, and the page is final")
    func deadLetteredAgain() async throws {
        let server = try ConsoleFixture.server()
        let ledger = server.jobs.ledger
        let now = Date()
        // The key's first dead letter (its record replayed here), then the replay's own failure.
        for _ in 0..<2 {
            guard
                case .claimed(let entry) = try await ledger.claim(key: "k1", owner: "w", lease: .seconds(30), now: now)
            else { throw CancellationError() }
            _ = try await ledger.markSent(key: "k1", owner: "w", fence: entry.fence, lease: .seconds(30), now: now)
            try await ledger.release(key: "k1", owner: "w", fence: entry.fence, deadLettered: true, now: now)
        }
        // A second key the replay left waiting in a retry tier: released, not dead-lettered again.
        guard case .claimed(let other) = try await ledger.claim(key: "k2", owner: "w", lease: .seconds(30), now: now)
        else { throw CancellationError() }
        try await ledger.release(key: "k2", owner: "w", fence: other.fence, deadLettered: true, now: now)
        var report = ReplayReport(replayID: "console-1", dryRun: false)
        report.replayed = [
            ReplayReport.Item(
                position: "0@0", key: "k1", provider: "fastpod", account: "shop", errorClass: "retries_exhausted",
                decision: .replay, deadLettersAtDecision: 1),
            ReplayReport.Item(
                position: "0@1", key: "k2", provider: "fastpod", account: "shop", errorClass: "retries_exhausted",
                decision: .replay, deadLettersAtDecision: 1),
        ]
        var job = ReplayJobs.Job(
            id: "console-1", operatorName: "alice", query: DeadLetterQuery(), filter: DeadLetterFilter(),
            fromBeginning: false, limit: nil, previewed: 2, ends: [:], requestedAt: now, state: .finished(report))
        let outcomes = await server.outcomes(of: job)
        #expect(outcomes["k1"] == "dead-lettered again", "\(outcomes)")
        #expect(outcomes["k2"]?.hasPrefix("in progress") == true, "\(outcomes)")
        #expect(!ReplayPages.job(job, outcomes: outcomes).contains("data-final"), "k2 is still on its way")
        report.replayed.removeLast()
        job.state = .finished(report)
        let html = ReplayPages.job(job, outcomes: await server.outcomes(of: job))
        #expect(html.contains("dead-lettered again") && html.contains("data-final"), "\(html)")
    }

    /// `completedMeanwhile`: two of the previewed keys completed before the confirmation (an
    /// upstream resend went through). Review finding: the run then took the count from dead
    /// letters the preview never read.
    @Test(
        "regression: a confirmed replay replays at most what its preview showed, whatever arrived since",
        arguments: [false, true])
    func confirmedReplaysThePreview(completedMeanwhile: Bool) async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: ConsoleFixture.logger)
        let topics = TopicNames.default
        try cluster.createTopic(topics.deadLetters, partitions: 1)
        try cluster.createTopic(topics.commands, partitions: 1)
        let kafka = KafkaClientOptions(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(client: kafka), logger: ConsoleFixture.logger)
        func deadLetters(_ keys: Range<Int>) async throws {
            for index in keys {
                let command = CancelCommand(
                    commandID: "c-\(index)", idempotencyKey: "console-\(index)", provider: .fastpod, account: "shop",
                    order: .fastpod(id: "F-\(index)"), requestedAt: Date())
                _ = try await producer.send(
                    KafkaProducerMessage(
                        topic: topics.deadLetters, key: Array("fastpod:shop".utf8), value: command.encoded(),
                        headers: [
                            KafkaHeader(name: "cw.error.class", string: "retries_exhausted"),
                            KafkaHeader(name: "cw.error.message", string: "test"),
                            KafkaHeader(name: "cw.idempotency-key", string: command.idempotencyKey),
                            KafkaHeader(name: "cw.provider", string: "fastpod"),
                            KafkaHeader(name: "cw.account", string: "shop"),
                        ]))
            }
        }
        try await deadLetters(0..<3)
        var base = ReplayOptions(kafka: kafka, topics: topics)
        base.group = "console-replay-\(UUID().uuidString.prefix(6))"
        base.timeout = .seconds(60)
        let ledger = InMemoryLedger()
        let jobs = ReplayJobs(base: base, ledger: ledger, logger: ConsoleFixture.logger)
        let preview = try await jobs.preview(
            query: DeadLetterQuery(), fromBeginning: false, limit: nil, operatorName: "alice")
        #expect(preview.report.replayed.count == 3)
        // A new outage while the operator reads the preview.
        try await deadLetters(3..<8)
        for key in completedMeanwhile ? ["console-0", "console-1"] : [] {
            guard
                case .claimed(let entry) = try await ledger.claim(
                    key: key, owner: "w", lease: .seconds(30), now: Date())
            else { continue }
            try await ledger.complete(key: key, owner: "w", fence: entry.fence, outcome: Array("{}".utf8), now: Date())
        }
        let job = try jobs.confirm(previewID: preview.id, csrf: preview.csrf, count: "3", operatorName: "alice")
        let running = Task { try await jobs.run() }
        let deadline = ContinuousClock.now + .seconds(90)
        while jobs.job(job.id)?.isOver != true && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        running.cancel()
        guard case .finished(let report)? = jobs.job(job.id)?.state else {
            Issue.record("the job did not finish: \(String(describing: jobs.job(job.id)?.state))")
            return
        }
        let expected = completedMeanwhile ? ["console-2"] : ["console-0", "console-1", "console-2"]
        #expect(report.replayed.map(\.key) == expected, "\(report.summary)")
        #expect(report.read == 3, "only the dead letters the preview read: \(report.summary)")
        await producer.shutdown()
    }
}
