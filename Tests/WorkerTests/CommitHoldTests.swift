import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Logging
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

    @Test(
        "regression: a commit refused mid-rebalance is not retried every commit-interval; commits resume later and reach the end"
    )
    func refusedCommitWaits() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        let provider = ScriptedProvider(.fastpod, accounts: ["user-0", "user-1"])
        let log = CapturedLogs(level: .info)
        let configuration = harness.configuration(workerID: "holder")  // session timeout 6 s: the longest hold
        let worker = CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: log.logger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            // The coordinator answers the next three commits as a rebalancing group does.
            let rebalanceInProgress: Int32 = 27
            try harness.cluster.pushRequestErrors(
                .offsetCommit, errors: Array(repeating: rebalanceInProgress, count: 3))
            let commands = (0..<20).map { command(.fastpod, account: "user-\($0 % 2)", order: "order-\($0)") }
            try await harness.send(commands)
            _ = try await harness.outcomes(atLeast: commands.count)
            #expect(
                try await eventually(timeout: .seconds(10)) { !Self.commitLines(log).isEmpty }, "a commit was refused")
            let first = try #require(Self.commitLines(log).first?.at)
            try await Task.sleep(until: first + .seconds(3))
            // Retried every 50 ms, the three refusals would come within 150 ms of the first.
            #expect(
                Self.refusals(log, after: first, within: .seconds(3)) == 1,
                "one refusal, then commits wait: \(Self.commitLines(log).map(\.message))")

            // After the hold (at most a session timeout per refusal) the offsets reach the end.
            let probe = try Self.probe(harness, group: configuration.groupID)
            defer { probe.close() }
            let reached = try await Self.committed(commands.count, probe, harness, within: .seconds(60))
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
}
