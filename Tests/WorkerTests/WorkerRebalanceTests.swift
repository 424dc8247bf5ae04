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
        let provider = ScriptedProvider(
            .fastpod, accounts: Set((0..<30).map { "user-\($0)" }), latency: .milliseconds(40))
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
}
