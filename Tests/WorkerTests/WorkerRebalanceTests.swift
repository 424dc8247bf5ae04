import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import ServiceLifecycle
import Testing

@testable import Worker

@Suite("Rebalances and shutdown (scripted provider)", .timeLimit(.minutes(4)))
struct WorkerRebalanceTests {
    @Test("a worker joins and another leaves mid-run: every key called once, one outcome each")
    func joinAndLeave() async throws {
        let harness = try await WorkerHarness(partitions: 6)
        // Calls wait for `answers`, so the first worker surely has work in flight when it leaves: a CI
        // run on a loaded machine saw all of its commands answered before the test looked.
        let answers = OneShot<Void>()
        let provider = ScriptedProvider(
            .fastpod, accounts: Set((0..<30).map { "user-\($0)" }), latency: .milliseconds(40), hold: answers)
        let ledger = InMemoryLedger()
        let first = CancelWorker(
            configuration: harness.configuration(workerID: "first"), providers: [.fastpod: provider], ledger: ledger,
            logger: harnessLogger)
        let second = CancelWorker(
            configuration: harness.configuration(workerID: "second"), providers: [.fastpod: provider], ledger: ledger,
            logger: harnessLogger)
        let count = 600
        let commands = (0..<count).map { command(.fastpod, account: "user-\($0 % 30)", order: "order-\($0)") }

        let firstGroup = ServiceGroup(configuration: .init(services: [.init(service: first)], logger: harnessLogger))
        try await harness.withWorkers([second]) {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await firstGroup.run() }
                // The second worker is already running; wait until both share the partitions.
                try await harness.waitUntilAssigned([first, second])
                try await harness.send(Array(commands[..<300]))
                // The first worker leaves while it has work in flight.
                #expect(
                    try await eventually(timeout: .seconds(30)) { first.status.inFlight > 0 },
                    "the first worker has commands in flight when it leaves")
                await firstGroup.triggerGracefulShutdown()
                answers.set(())
                try await harness.send(Array(commands[300...]))
                try await tasks.waitForAll()
            }
            let outcomes = try await harness.outcomes(atLeast: count, timeout: .seconds(120))
            let keys = outcomes.map(\.idempotencyKey)
            #expect(Set(keys).count == count, "every key has an outcome")
            #expect(keys.count == count, "no key has two")
            #expect(outcomes.allSatisfy { $0.status == .cancelled })
            #expect(Set(outcomes.map(\.workerID)) == ["first", "second"], "both workers did part of the work")
        }
        let calls = provider.calls.withLock { $0.map(\.order) }
        #expect(calls.count == count, "one provider call per key, none repeated across the handover")
        #expect(Set(calls).count == count)
    }

    @Test(
        "copies sent after their partitions moved to a joining worker: no second outcome (the old owner writes its published marks before its revocation commits)"
    )
    func duplicateAfterHandover() async throws {
        let harness = try await WorkerHarness(partitions: 4)
        // One user on each partition, so whichever partitions the joining worker gets hold a key.
        var users: [Int32: String] = [:]
        for index in 0..<1000 where users.count < harness.partitions {
            let user = "user-\(index)"
            let partition = KafkaPartitioner.partition(
                forKey: Array(CancelCommand.kafkaKey(provider: "fastpod", account: user).utf8),
                partitionCount: harness.partitions)
            if users[partition] == nil { users[partition] = user }
        }
        let provider = ScriptedProvider(.fastpod, accounts: Set(users.values))
        // The old owner's `published` marks are still on their way when the partitions move
        // (a CI run published a demo command's outcome twice this way): here they would wait 60 s.
        let ledger = RecordingLedger()
        let workers = ["first", "second"].map { id in
            var configuration = harness.configuration(workerID: id)
            configuration.publishedLinger = .seconds(60)
            return CancelWorker(
                configuration: configuration, providers: [.fastpod: provider], ledger: ledger, logger: harnessLogger)
        }
        let groups = workers.map {
            ServiceGroup(configuration: .init(services: [.init(service: $0)], logger: harnessLogger))
        }
        let originals = users.sorted { $0.key < $1.key }.map {
            command(.fastpod, account: $0.value, order: "order-\($0.key)")
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            defer { tasks.cancelAll() }
            tasks.addTask { try await groups[0].run() }
            try await harness.waitUntilAssigned([workers[0]])
            try await harness.send(originals)
            _ = try await harness.outcomes(atLeast: originals.count, timeout: .seconds(30))
            // A second worker joins and takes some of the partitions; upstream then sends every command again.
            tasks.addTask { try await groups[1].run() }
            try await harness.waitUntilAssigned(workers)
            #expect(workers[1].status.assignedPartitions.contains { $0.hasPrefix(harness.topics.commands + "[") })
            try await harness.send(originals)
            // Every copy reached the ledger (a claim each), so it had its chance to publish.
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    ledger.operations.withLock { $0.filter { $0.hasPrefix("claim") }.count } >= 2 * originals.count
                }, "every copy was claimed")
            let outcomes = try await harness.all(topic: harness.topics.outcomes, settle: .seconds(2))
            #expect(outcomes.count == originals.count, "one outcome per command, no republished copy")
            #expect(provider.calls.withLock { $0.count } == originals.count, "one provider call per command")
            for group in groups { await group.triggerGracefulShutdown() }
            try await tasks.waitForAll()
        }
    }
}
