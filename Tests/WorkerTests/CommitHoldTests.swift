import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import Worker

/// The chaos run's stalled partitions: after a burst of joins, commits retried every
/// `commit-interval` were in flight whenever the group formed its next generation; librdkafka
/// reads the `ILLEGAL_GENERATION` answer as a lost assignment, the member gave up every partition
/// and rejoined, starting another rebalance in which the others' commits failed the same way.
/// Partitions stayed unowned for tens of seconds, their offsets uncommitted.
@Suite("Offset commits during a rebalance", .timeLimit(.minutes(2)))
struct CommitHoldTests {
    /// The worker's log lines about offset commits.
    static func commitLines(_ logs: CapturedLogs) -> [CapturedLogs.Line] {
        logs.lines.filter { $0.source == "Worker" && $0.message.contains("offset commit") }
    }

    /// A consumer that only reads the group's committed offsets.
    static func probe(_ harness: WorkerHarness, group: String) throws -> KafkaConsumer {
        try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                bootstrapServers: harness.cluster.bootstrapServers, groupID: group),
            topics: [], logger: harnessLogger)
    }

    /// Whether the group's committed offsets of the commands topic's two partitions add up to
    /// `count` within `timeout`.
    static func committed(
        _ count: Int, _ probe: KafkaConsumer, _ harness: WorkerHarness, within timeout: Duration
    ) async throws -> Bool {
        let partitions = (0..<2).map { KafkaTopicPartition(topic: harness.topics.commands, partition: $0) }
        return try await eventually(timeout: timeout) {
            let offsets = (try? await probe.committed(partitions)) ?? []
            return offsets.map { max($0.offset, 0) }.reduce(0, +) == Int64(count)
        }
    }

    static func refusals(_ logs: CapturedLogs, after start: ContinuousClock.Instant, within window: Duration) -> Int {
        self.commitLines(logs).filter { $0.at >= start && $0.at < start + window }.count
    }

    /// Runs one worker (captured log) on `harness`; the coordinator refuses its next `refusals`
    /// commits as a rebalancing group does; `count` commands are sent and answered; `body` gets
    /// the worker's log and the instant of the first refusal.
    static func refusing(
        _ refusals: Int, count: Int, on harness: WorkerHarness, configuration: WorkerConfiguration,
        _ body: @Sendable (CapturedLogs, ContinuousClock.Instant) async throws -> Void
    ) async throws {
        let provider = ScriptedProvider(.fastpod, accounts: ["user-0", "user-1"])
        let log = CapturedLogs(level: .info)
        let worker = CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: log.logger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            let rebalanceInProgress: Int32 = 27
            try harness.cluster.pushRequestErrors(
                .offsetCommit, errors: Array(repeating: rebalanceInProgress, count: refusals))
            let commands = (0..<count).map { command(.fastpod, account: "user-\($0 % 2)", order: "order-\($0)") }
            try await harness.send(commands)
            _ = try await harness.outcomes(atLeast: commands.count)
            #expect(
                try await eventually(timeout: .seconds(10)) { !Self.commitLines(log).isEmpty }, "a commit was refused")
            try await body(log, try #require(Self.commitLines(log).first?.at))
        }
    }

    @Test(
        "regression: a commit refused mid-rebalance is not retried every commit-interval; commits resume later and reach the end"
    )
    func refusedCommitWaits() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        // Session timeout 6 s, drain timeout 5 s: a hold lasts at most 2 x 6 + 5 = 17 s.
        let configuration = harness.configuration(workerID: "holder")
        let count = 20
        // The coordinator answers the next two commits as a rebalancing group does.
        try await Self.refusing(2, count: count, on: harness, configuration: configuration) { log, first in
            try await Task.sleep(until: first + .seconds(3))
            // Retried every 50 ms, the two refusals would come within 100 ms of each other.
            #expect(
                Self.refusals(log, after: first, within: .seconds(3)) == 1,
                "one refusal, then commits wait: \(Self.commitLines(log).map(\.message))")

            // After the holds (no assignment comes to end them: at most 17 s per refusal) the
            // offsets reach the end.
            let probe = try Self.probe(harness, group: configuration.groupID)
            defer { probe.close() }
            let reached = try await Self.committed(count, probe, harness, within: .seconds(60))
            #expect(reached, "the committed offsets reach the end of both partitions")
        }
    }

    @Test("issue 14: commits stop while the worker is idle and start again with the next records")
    func commitsAfterALull() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        let provider = ScriptedProvider(.fastpod, accounts: ["user-0", "user-1"])
        var configuration = harness.configuration(workerID: "lull")
        configuration.commitInterval = .milliseconds(50)
        let worker = CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        let probe = try Self.probe(harness, group: configuration.groupID)
        defer { probe.close() }
        @Sendable func committed(_ count: Int) async throws -> Bool {
            try await Self.committed(count, probe, harness, within: .seconds(30))
        }
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            let first = (0..<6).map { command(.fastpod, account: "user-\($0 % 2)", order: "lull-a-\($0)") }
            try await harness.send(first)
            _ = try await harness.outcomes(atLeast: first.count)
            #expect(try await committed(first.count), "the first records are committed")
            // A lull of twenty commit intervals: the commit loop waits for intake.
            try await Task.sleep(for: .seconds(1))
            let second = (0..<6).map { command(.fastpod, account: "user-\($0 % 2)", order: "lull-b-\($0)") }
            try await harness.send(second)
            _ = try await harness.outcomes(atLeast: first.count + second.count)
            #expect(try await committed(first.count + second.count), "records after the lull are committed too")
        }
    }

    @Test(
        "regression: a refused commit holds the periodic commits past one session timeout (a cooperative join is two rounds)"
    )
    func holdOutlastsASessionTimeout() async throws {
        // bench h, 2026-11-27: a commit refused with REBALANCE_IN_PROGRESS as a worker joined
        // held the commits for one session timeout (3 s). The join's two rounds took longer on
        // the mock coordinator (each the session timeout - 1 s), so the next periodic commit
        // reached the second round, was answered ILLEGAL_GENERATION, taken for a lost
        // assignment, and the first member gave up every command partition: 0 outcomes for 2 s.
        let harness = try await WorkerHarness(partitions: 2)
        var configuration = harness.configuration(workerID: "holder")
        configuration.sessionTimeout = .seconds(3)  // the hold: at most 2 x 3 + 5 (drain) = 11 s
        let probe = try Self.probe(harness, group: configuration.groupID)
        defer { probe.close() }
        let count = 10
        try await Self.refusing(1, count: count, on: harness, configuration: configuration) { _, refused in
            // Two session timeouts after the refusal, no assignment came: the commits still wait
            // (with a hold of one session timeout they were made after 3 s). Slowness can only
            // delay a commit, so this cannot pass by accident on a loaded machine.
            try await Task.sleep(until: refused + .seconds(6))
            let committed = try await probe.committed(
                (0..<2).map { KafkaTopicPartition(topic: harness.topics.commands, partition: $0) })
            #expect(committed.map { max($0.offset, 0) }.reduce(0, +) == 0, "nothing committed 6 s after the refusal")
            #expect(
                try await Self.committed(count, probe, harness, within: .seconds(30)),
                "after the hold, the offsets reach the end")
        }
    }
}
