import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import ServiceLifecycle
import Testing

@testable import Worker

/// The commands topic and the retry tiers in consumer groups of their own (issue 14): in one
/// group, `cooperative-sticky` balanced partition counts over all four topics and gave a
/// joining worker whole topics, so the second worker took every command partition from the
/// first and the first was left with idle retry tiers.
@Suite("The commands topic and the retry tiers in groups of their own", .timeLimit(.minutes(3)))
struct WorkerMembershipTests {
    /// The command partitions `worker` owns.
    static func commandPartitions(_ worker: CancelWorker, _ harness: WorkerHarness) -> Set<String> {
        Set(worker.status.assignedPartitions.filter { $0.hasPrefix(harness.topics.commands + "[") })
    }

    @Test("regression: a joining worker takes half of the command partitions; the first keeps the other half")
    func joiningWorkerSharesTheCommandsTopic() async throws {
        let harness = try await WorkerHarness(partitions: 6)  // commands and two tiers, 6 partitions each
        let provider = ScriptedProvider(.fastpod, accounts: ["user-0"])
        let workers = ["first", "second"].map { id in
            CancelWorker(
                configuration: harness.configuration(workerID: id), providers: [.fastpod: provider],
                ledger: InMemoryLedger(), logger: harnessLogger)
        }
        let firstGroup = ServiceGroup(
            configuration: .init(services: [.init(service: workers[0])], logger: harnessLogger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await firstGroup.run() }
            try await harness.waitUntilAssigned([workers[0]])
            #expect(Self.commandPartitions(workers[0], harness).count == 6, "alone, the first owns every one")
            try await harness.withWorkers([workers[1]]) {
                let shared = try await eventually(timeout: .seconds(30)) {
                    workers.allSatisfy { Self.commandPartitions($0, harness).count == 3 }
                }
                #expect(
                    shared,
                    "each owns 3 of the 6 command partitions: \(workers.map { Self.commandPartitions($0, harness).sorted() })"
                )
            }
            await firstGroup.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("a retried command's tier record is committed in the retry group, the command in the workers' group")
    func retryTierOffsetsInTheirOwnGroup() async throws {
        let harness = try await WorkerHarness(partitions: 1)  // tiers 1s and 2s
        // Three failures in process: parked in the 1 s tier, then cancelled.
        let provider = ScriptedProvider(.fastpod, script: ["order-1": [.unknown, .unknown, .unknown, .cancelled]])
        var configuration = harness.configuration()
        configuration.retry.maxInProcessBackoff = .milliseconds(500)
        #expect(configuration.retryGroupID == "workers-retry")
        let groups = [configuration.groupID, configuration.retryGroupID]
        let worker = CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        let tier = KafkaTopicPartition(topic: harness.topics.retryTopic("1s"), partition: 0)
        let commands = KafkaTopicPartition(topic: harness.topics.commands, partition: 0)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            #expect(worker.status.assignedPartitions.contains(tier.description), "the worker owns the tier too")
            try await harness.send([command(order: "order-1")])
            let outcome = try await harness.outcomes(atLeast: 1, timeout: .seconds(30)).first
            #expect(outcome?.status == .cancelled)
            #expect(provider.callCount("order-1") == 4, "three calls, the tier, the fourth")

            let probes = try groups.map { group in
                try CommitHoldTests.probe(harness, group: group)
            }
            defer { for probe in probes { probe.close() } }
            // The command record twice (sent, back from the tier), the tier record once.
            let reached = try await eventually(timeout: .seconds(20)) {
                let commandsCommitted = try? await probes[0].committed([commands, tier])
                let tierCommitted = try? await probes[1].committed([commands, tier])
                return commandsCommitted?.first { $0.topicPartition == commands }?.offset == 2
                    && tierCommitted?.first { $0.topicPartition == tier }?.offset == 1
            }
            #expect(reached, "each group commits the records of its own topics")
            let stray = try await probes[0].committed([tier]).first { $0.topicPartition == tier }?.offset ?? -1
            #expect(stray < 0, "the workers' group commits nothing on a tier")
        }
    }

    @Test(
        "regression: a join under traffic costs the first worker only the partitions that move (no commit while it rejoins)"
    )
    func joinUnderTrafficMovesOnlyAShare() async throws {
        // bench h and a debug run, 2026-11-27: the first worker's periodic commit, sent while its
        // JoinGroup was pending, was answered ILLEGAL_GENERATION; librdkafka 2.0 took that for a
        // lost assignment, and the worker gave up all its command partitions for a round.
        let harness = try await WorkerHarness(partitions: 6)
        let users = (0..<12).map { "user-\($0)" }
        let provider = ScriptedProvider(.fastpod, accounts: Set(users))
        let firstLog = CapturedLogs(level: .info)
        let configurations = ["first", "second"].map { id in
            var configuration = harness.configuration(workerID: id)
            configuration.sessionTimeout = .seconds(3)  // as bench h: each round 2 s on the mock
            configuration.commitInterval = .milliseconds(100)
            return configuration
        }
        let first = CancelWorker(
            configuration: configurations[0], providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: firstLog.logger)
        let second = CancelWorker(
            configuration: configurations[1], providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        let firstGroup = ServiceGroup(configuration: .init(services: [.init(service: first)], logger: harnessLogger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await firstGroup.run() }
            try await harness.waitUntilAssigned([first])
            try await harness.withWorkers([second]) {
                // Records in process throughout the join, so the first worker has commits to make.
                var batch = 0
                let until = ContinuousClock.now + .seconds(12)
                while ContinuousClock.now < until {
                    try await harness.send(users.map { command(.fastpod, account: $0, order: "join-\(batch)-\($0)") })
                    batch += 1
                    try await Task.sleep(for: .milliseconds(100))
                }
                let owned = [first, second].map { Self.commandPartitions($0, harness).count }
                #expect(owned == [3, 3], "the join completed: \(owned)")
            }
            await firstGroup.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // Before the first worker's own shutdown (its last two revocations, one per group).
        let revoked = firstLog.lines.filter { $0.source == "Worker" && $0.message == "partitions revoked" }
        let commandsRevoked = revoked.dropLast(2).map { line -> Int in
            guard case .array(let partitions)? = line.metadata["partitions"] else { return 0 }
            return partitions.filter { "\($0)".hasPrefix(harness.topics.commands + "[") }.count
        }
        #expect(
            commandsRevoked.reduce(0, +) == 3,
            "the first worker revoked only what moved: \(revoked.map { $0.metadata["partitions"].map { "\($0)" } ?? "" })"
        )
    }
}
