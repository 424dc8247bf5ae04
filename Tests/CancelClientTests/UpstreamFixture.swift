import CancelClient
import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Logging
import Providers
import Sandbox
import ServiceLifecycle
import Testing
import Worker

let testLogger: Logger = {
    var logger = Logger(label: "cancel-client-tests")
    logger.logLevel =
        ProcessInfo.processInfo.environment["WORKER_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
    return logger
}()

/// What an upstream service sees: a mock cluster with the worker's topics (default names), the
/// provider sandbox with every order open, and a worker in process that can be started later.
struct UpstreamFixture: Sendable {
    let cluster: KafkaMockCluster
    let sandbox: ProviderSandbox
    let sandboxURL: URL
    let registry: ProviderRegistry
    let partitions: Int

    static func with<T: Sendable>(
        partitions: Int = 4, _ body: @Sendable (UpstreamFixture) async throws -> T
    ) async throws -> T {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topics = TopicNames.default
        _ = try await cluster.ensureTopics(
            [topics.commands, topics.outcomes, topics.deadLetters, topics.retryTopic("1s")].map {
                KafkaNewTopic(name: $0, partitions: partitions)
            })
        var sandboxConfiguration = SandboxConfiguration()
        sandboxConfiguration.openByDefault = true
        return try await SandboxProviders.with(sandboxConfiguration, logger: testLogger) { providers in
            try await body(
                UpstreamFixture(
                    cluster: cluster, sandbox: providers.sandbox, sandboxURL: providers.url,
                    registry: providers.registry, partitions: partitions))
        }
    }

    var clientConfiguration: CancelClientConfiguration {
        var configuration = CancelClientConfiguration(bootstrapServers: self.cluster.bootstrapServers)
        configuration.outcomeFetchWait = KafkaMockCluster.fetchWait
        configuration.consumerSessionTimeout = .seconds(6)
        return configuration
    }

    /// Runs one worker until `body` returns, then shuts it down gracefully.
    func withWorker<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        try await self.withWorkerHandle { _ in try await body() }
    }

    /// `withWorker`, handing `body` the worker (for its `status`).
    func withWorkerHandle<T: Sendable>(_ body: @Sendable (CancelWorker) async throws -> T) async throws -> T {
        var configuration = WorkerConfiguration(bootstrapServers: self.cluster.bootstrapServers)
        configuration.groupID = "workers"
        configuration.workerID = "worker-\(UUID().uuidString.prefix(4))"
        configuration.commitInterval = .milliseconds(50)
        configuration.sessionTimeout = .seconds(6)
        configuration.drainTimeout = .seconds(5)
        configuration.fetchWaitMax = KafkaMockCluster.fetchWait
        configuration.retry.tiers = [RetryTier(name: "1s", delay: .seconds(1))]
        let worker = CancelWorker(
            configuration: configuration, providers: self.registry.providers, ledger: InMemoryLedger(),
            logger: testLogger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [.init(service: worker)], logger: testLogger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                let result = try await body(worker)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }

    /// `client.cancel`; when no outcome comes in time, records where the command stopped before
    /// rethrowing: the provider's calls for `orderID`, the outcomes on the topic for its key (read
    /// from the beginning, apart from the client's listener), and the worker's state. A timeout
    /// here once went unexplained in a full run; the next one says whether the worker called the
    /// provider, whether an outcome was published, and what the worker still held.
    func cancel(
        _ command: CancelCommand, orderID: String, with client: CancelClient, worker: CancelWorker,
        timeout: Duration
    ) async throws -> CancelOutcome {
        // A `Result`, not `catch let error where …`: that form, on a typed throw, crashed the
        // Swift 6.3.1 compiler (SILGen cleanup).
        let result: Result<CancelOutcome, CancelClientError>
        do {
            result = .success(try await client.cancel(command, timeout: timeout))
        } catch {
            result = .failure(error)
        }
        if case .failure(let error) = result, error.code == .timedOut {
            let key = command.idempotencyKey
            let onTopic = try? await collect(client.outcomes(for: [key], from: .beginning), timeout: .seconds(5))
            let calls = self.sandbox.requests(provider: command.provider, orderID: orderID)
            let status = worker.status
            Issue.record(
                """
                no outcome for \(key) within \(timeout). Provider calls for \(orderID): \(calls.count) \
                (at \(calls.map { $0.at.ISO8601Format() })). Outcome on \(TopicNames.default.outcomes) \
                read from the beginning: \(onTopic?[key].map { "\($0.status) by \($0.workerID)" } ?? "none"). \
                Worker: joined \(status.joinedGroup), partitions \(status.assignedPartitions), in flight \
                \(status.inFlight), queued \(status.queued).
                """)
        }
        return try result.get()
    }

    /// Every record on `topic` now, per partition (high watermarks).
    func recordCounts(_ topic: String) async throws -> [Int32: Int64] {
        let queries = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: self.cluster.bootstrapServers, groupID: "q"),
            topics: [], logger: testLogger)
        defer { queries.close() }
        var counts: [Int32: Int64] = [:]
        for partition in 0..<Int32(self.partitions) {
            counts[partition] = try await queries.watermarks(
                for: KafkaTopicPartition(topic: topic, partition: partition)
            ).high
        }
        return counts
    }
}

/// The keys of the terminal outcomes from `outcomes`, in order, up to and including `key`'s
/// (or what arrived when `timeout` passed).
func collect(_ outcomes: CancelOutcomes, until key: String, timeout: Duration) async throws -> [String] {
    try await gathering(for: timeout) {
        var keys: [String] = []
        for try await received in outcomes where received.outcome.status.isTerminal {
            keys.append(received.outcome.idempotencyKey)
            if received.outcome.idempotencyKey == key { break }
        }
        return keys
    }
}

/// Terminal outcomes by key from `outcomes`, until the sequence ends or `timeout` passes (then
/// what arrived so far).
func collect(_ outcomes: CancelOutcomes, timeout: Duration) async throws -> [String: CancelOutcome] {
    try await gathering(for: timeout) {
        var byKey: [String: CancelOutcome] = [:]
        // Ends by itself once every key has a terminal outcome, or when the timeout cancels it.
        for try await received in outcomes where received.outcome.status.isTerminal {
            byKey[received.outcome.idempotencyKey] = received.outcome
        }
        return byKey
    }
}

/// `body`'s result, `body` cancelled when `timeout` passes first (a reading loop then returns
/// what it gathered so far).
private func gathering<T: Sendable>(
    for timeout: Duration, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        var gathered: T?
        while let next = try await group.next() {
            group.cancelAll()
            if let next { gathered = next }
        }
        return try #require(gathered)
    }
}
