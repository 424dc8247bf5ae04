import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Providers
import Sandbox
import Testing

@testable import Worker

/// Nothing between the rate-limit slot and the wire: what is checked right before a request is
/// written (partition still owned, claim still current, deadline not passed, the user's slot
/// taken now), measured at a provider that counts arrivals.
@Suite("The send-time guard, at a provider that counts arrivals", .serialized, .timeLimit(.minutes(3)))
struct SendTimeGuardTests {
    @Test(
        "regression: with up to 200 ms of network jitter one futures user never exceeds 10 calls in a second at arrival"
    )
    func jitterAtArrival() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        var sandboxConfiguration = SandboxConfiguration()
        sandboxConfiguration.openByDefault = true
        sandboxConfiguration.arrivalJitter[.futures] = .uniform(minMilliseconds: 0, maxMilliseconds: 200)
        try await SandboxProviders.with(sandboxConfiguration, timeout: .seconds(2), logger: harnessLogger) { sandbox in
            let worker = CancelWorker(
                configuration: harness.configuration(), providers: sandbox.registry.providers, ledger: InMemoryLedger(),
                logger: harnessLogger)
            let burst = 120
            try await harness.withWorkers([worker]) {
                try await harness.waitUntilAssigned([worker])
                try await harness.send(
                    (0..<burst).map { command(.futures, account: "demo-1", order: String(200_000 + $0)) })
                let outcomes = try await harness.outcomes(atLeast: burst, timeout: .seconds(90))
                #expect(outcomes.allSatisfy { $0.status == .cancelled }, "\(Set(outcomes.map(\.status)))")
            }
            let stats = sandbox.sandbox.stats()
            #expect(
                stats.maxRatePerUser["futures:demo-1"] ?? 99 <= 10,
                "the exchange counted \(stats.maxRatePerUser["futures:demo-1"] ?? -1) in one second")
            #expect(stats.totalViolations == 0)
        }
    }

    @Test("regression: calls that waited for a connection permit do not reach the provider together")
    func permitWaitDoesNotBunch() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        var sandboxConfiguration = SandboxConfiguration()
        sandboxConfiguration.openByDefault = true
        var http = HTTPClientSettings()
        http.maxConnectionsPerHost = 1
        try await SandboxProviders.with(sandboxConfiguration, timeout: .seconds(2), http: http, logger: harnessLogger) {
            sandbox in
            // demo-2's calls hold the one connection 600 ms each; demo-1's queue behind them.
            sandbox.sandbox.addFault(
                SandboxFault(.latency(.fixed(milliseconds: 600)), provider: .futures, account: "demo-2"))
            let worker = CancelWorker(
                configuration: harness.configuration(), providers: sandbox.registry.providers, ledger: InMemoryLedger(),
                logger: harnessLogger)
            try await harness.withWorkers([worker]) {
                try await harness.waitUntilAssigned([worker])
                var commands: [CancelCommand] = []
                for index in 0..<40 {
                    commands.append(command(.futures, account: "demo-1", order: String(300_000 + index)))
                    if index % 3 == 0 {
                        commands.append(command(.futures, account: "demo-2", order: String(400_000 + index)))
                    }
                }
                try await harness.send(commands)
                let outcomes = try await harness.outcomes(atLeast: commands.count, timeout: .seconds(90))
                #expect(outcomes.allSatisfy { $0.status == .cancelled }, "\(Set(outcomes.map(\.status)))")
            }
            let stats = sandbox.sandbox.stats()
            #expect(
                stats.maxRatePerUser["futures:demo-1"] ?? 99 <= 10,
                "the exchange counted \(stats.maxRatePerUser["futures:demo-1"] ?? -1) in one second")
            #expect(stats.totalViolations == 0)
        }
    }

    @Test("regression: no call after the deadline, also when the call waited for a connection permit")
    func deadlineDuringPermitWait() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        var http = HTTPClientSettings()
        http.maxConnectionsPerHost = 1
        try await SandboxProviders.with(SandboxConfiguration(), timeout: .seconds(5), http: http, logger: harnessLogger)
        { sandbox in
            sandbox.sandbox.seed(["slow", "late"].map { SandboxOrder(provider: .fastpod, id: $0) })
            sandbox.sandbox.addFault(
                SandboxFault(.latency(.fixed(milliseconds: 2_500)), provider: .fastpod, orderPattern: "slow"))
            let worker = CancelWorker(
                configuration: harness.configuration(), providers: sandbox.registry.providers, ledger: InMemoryLedger(),
                logger: harnessLogger)
            try await harness.withWorkers([worker]) {
                try await harness.waitUntilAssigned([worker])
                try await harness.send([command(.fastpod, account: "demo-1", order: "slow")])
                try await Task.sleep(for: .milliseconds(300))  // "slow" holds the one connection
                try await harness.send([
                    command(.fastpod, account: "demo-2", order: "late", deadline: Date().addingTimeInterval(1))
                ])
                let outcomes = Dictionary(
                    grouping: try await harness.outcomes(atLeast: 2, timeout: .seconds(30)), by: \.idempotencyKey)
                #expect(outcomes["fastpod-slow"]?.map(\.status) == [.cancelled])
                #expect(
                    outcomes["fastpod-late"]?.map(\.status) == [.expired],
                    "\(outcomes["fastpod-late"]?.first?.reason ?? "-")")
            }
            #expect(sandbox.calls(.fastpod, "late").isEmpty, "the provider saw a call after the deadline")
        }
    }
}
