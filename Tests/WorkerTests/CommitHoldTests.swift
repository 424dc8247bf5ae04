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
            let probe = try KafkaConsumer(
                configuration: KafkaConsumerConfiguration(
                    bootstrapServers: harness.cluster.bootstrapServers, groupID: configuration.groupID),
                topics: [], logger: harnessLogger)
            defer { probe.close() }
            let partitions = (0..<2).map { KafkaTopicPartition(topic: harness.topics.commands, partition: $0) }
            let reached = try await eventually(timeout: .seconds(60)) {
                let committed = (try? await probe.committed(partitions)) ?? []
                return committed.map(\.offset).reduce(0, +) == Int64(commands.count)
            }
            #expect(reached, "the committed offsets reach the end of both partitions")
        }
    }
}
