import CancelCore
import Foundation
import Kafka
import Logging
import OperatorTools
import ServiceLifecycle
import Synchronization
import Testing

@testable import Worker

let harnessLogger: Logger = {
    var logger = Logger(label: "worker-tests")
    logger.logLevel =
        ProcessInfo.processInfo.environment["WORKER_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
    return logger
}()

/// A mock cluster with the worker's topics (unique names per harness), and helpers to run
/// workers in process, send commands and read outcomes and dead letters.
final class WorkerHarness: Sendable {
    let cluster: KafkaMockCluster
    let topics: TopicNames
    let partitions: Int
    let producer: KafkaProducer
    let tiers = [RetryTier(name: "1s", delay: .seconds(1)), RetryTier(name: "2s", delay: .seconds(2))]
    /// The workers `withWorkers` runs now (their state goes into a timed-out read's report).
    private let running = Mutex<[CancelWorker]>([])

    init(partitions: Int = 4, brokers: Int = 1) async throws {
        self.cluster = try KafkaMockCluster(brokers: brokers, logger: harnessLogger)
        let prefix = "t\(UUID().uuidString.prefix(6).lowercased())"
        self.topics = TopicNames(
            commands: "\(prefix).commands", outcomes: "\(prefix).outcomes", deadLetters: "\(prefix).dlq")
        self.partitions = partitions
        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: self.cluster.bootstrapServers)
        producerConfiguration.linger = .milliseconds(1)
        self.producer = try KafkaProducer(configuration: producerConfiguration, logger: harnessLogger)
        let topics = self.topics
        let names =
            [topics.commands, topics.outcomes, topics.deadLetters] + self.tiers.map { topics.retryTopic($0.name) }
        _ = try await self.cluster.ensureTopics(names.map { KafkaNewTopic(name: $0, partitions: partitions) })
    }

    func configuration(
        workerID: String = "w-\(UUID().uuidString.prefix(4))", group: String = "workers"
    ) -> WorkerConfiguration {
        var configuration = WorkerConfiguration(bootstrapServers: self.cluster.bootstrapServers)
        configuration.groupID = group
        configuration.topics = self.topics
        configuration.workerID = workerID
        configuration.commitInterval = .milliseconds(50)
        configuration.claimLease = .seconds(5)
        configuration.drainTimeout = .seconds(5)
        configuration.sessionTimeout = .seconds(6)
        configuration.producerLinger = .milliseconds(1)
        configuration.fetchWaitMax = KafkaMockCluster.fetchWait
        configuration.retry.baseBackoff = .milliseconds(20)
        configuration.retry.tiers = self.tiers
        return configuration
    }

    /// Runs workers until `body` returns, then shuts them down gracefully.
    func withWorkers<T: Sendable>(
        _ workers: [CancelWorker],
        _ body: @Sendable () async throws -> T
    ) async throws -> T {
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: workers.map { .init(service: $0) }, logger: harnessLogger))
        self.running.withLock { $0.append(contentsOf: workers) }
        defer {
            self.running.withLock { running in running.removeAll { worker in workers.contains { $0 === worker } } }
        }
        return try await withThrowingTaskGroup(of: T?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            let result: T
            do {
                result = try await body()
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        }
    }

    /// Waits until every worker has joined the group and the command partitions are owned.
    /// One worker whose only provider is `provider` (an in-memory ledger), run until `body`
    /// returns; `body` starts once the worker owns every partition.
    func withScriptedWorker<T: Sendable>(
        _ provider: ScriptedProvider, _ body: @Sendable (CancelWorker) async throws -> T
    ) async throws -> T {
        let worker = CancelWorker(
            configuration: self.configuration(), providers: [provider.id: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        return try await self.withWorkers([worker]) {
            try await self.waitUntilAssigned([worker])
            return try await body(worker)
        }
    }

    func waitUntilAssigned(_ workers: [CancelWorker], timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let owned = Set(
                workers.flatMap { $0.status.assignedPartitions }.filter { $0.hasPrefix(self.topics.commands + "[") })
            if workers.allSatisfy({ $0.status.joinedGroup }) && owned.count == self.partitions { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("workers did not get every partition within \(timeout)")
    }

    func send(_ commands: [CancelCommand]) async throws {
        let enqueuer = CommandEnqueuer(producer: self.producer, topic: self.topics.commands)
        for command in commands { _ = try await enqueuer.send(command) }
    }

    func sendRaw(_ value: String, key: String?) async throws {
        _ = try await self.producer.send(KafkaProducerMessage(topic: self.topics.commands, key: key, value: value))
    }

    /// `command` as its upstream would enqueue it, with `headers` of the producer's choosing.
    func send(_ command: CancelCommand, headers: [KafkaHeader]) async throws {
        _ = try await self.producer.send(
            KafkaProducerMessage(
                topic: self.topics.commands, key: Array(command.kafkaKey.utf8), value: command.encoded(),
                headers: headers))
    }

    /// Reads the outcome topic until `count` records arrived (or `timeout`).
    func outcomes(atLeast count: Int, timeout: Duration = .seconds(60)) async throws -> [CancelOutcome] {
        try await self.read(topic: self.topics.outcomes, atLeast: count, timeout: timeout).map {
            try CancelOutcome.decode($0.value)
        }
    }

    func deadLetters(atLeast count: Int, timeout: Duration = .seconds(60)) async throws -> [KafkaConsumerMessage] {
        try await self.read(topic: self.topics.deadLetters, atLeast: count, timeout: timeout)
    }

    /// Everything on `topic` after `settle` of quiet (to check that nothing more arrives).
    func all(topic: String, settle: Duration = .seconds(2)) async throws -> [KafkaConsumerMessage] {
        let reader = OutcomeReader(
            options: KafkaClientOptions(bootstrapServers: self.cluster.bootstrapServers), topic: topic,
            logger: harnessLogger)
        try await Task.sleep(for: settle)
        return try await reader.read().map {
            KafkaConsumerMessage(topic: topic, partition: $0.partition, offset: $0.offset, key: nil, value: $0.value)
        }
    }

    private func read(topic: String, atLeast count: Int, timeout: Duration) async throws -> [KafkaConsumerMessage] {
        var configuration = KafkaConsumerConfiguration(
            bootstrapServers: self.cluster.bootstrapServers, groupID: "reader-\(UUID().uuidString.prefix(6))")
        configuration.sessionTimeout = .seconds(6)
        let consumer = try KafkaConsumer(configuration: configuration, topics: [topic], logger: harnessLogger)
        defer { consumer.close() }
        let progress = ReceivedCount()
        return try await withThrowingTaskGroup(of: [KafkaConsumerMessage]?.self) { group in
            group.addTask {
                var received: [KafkaConsumerMessage] = []
                for try await message in consumer.messages {
                    received.append(message)
                    progress.value.store(received.count, ordering: .relaxed)
                    if received.count >= count { break }
                }
                return received
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let received = first else {
                Issue.record(
                    """
                    only \(progress.value.load(ordering: .relaxed)) of \(count) records on \(topic) within \(timeout). \
                    \(await self.report())
                    """)
                return []
            }
            return received
        }
    }
}

extension WorkerHarness {
    /// What a timed-out read reports, to tell a stuck worker from a reader that missed records:
    /// every topic's records read from the beginning, and each running worker's state.
    fileprivate func report() async -> String {
        var lines: [String] = []
        for topic in [self.topics.commands, self.topics.outcomes, self.topics.deadLetters] {
            let snapshot = TopicSnapshot(
                options: KafkaClientOptions(bootstrapServers: self.cluster.bootstrapServers), topic: topic,
                logger: harnessLogger)
            do {
                let records = try await snapshot.read(timeout: .seconds(10))
                let keys = records.map { record in
                    (try? CancelOutcome.decode(record.value)).map { "\($0.idempotencyKey) \($0.status)" }
                        ?? "p\(record.partition)@\(record.offset)"
                }
                lines.append("\(topic), read from the beginning: \(records.count) records \(keys.prefix(20))")
            } catch {
                lines.append("\(topic): not readable (\(error))")
            }
        }
        for worker in self.running.withLock({ $0 }) {
            let status = worker.status
            lines.append(
                """
                worker: joined \(status.joinedGroup), partitions \(status.assignedPartitions), \
                in flight \(status.inFlight), queued \(status.queued)
                """)
        }
        return lines.joined(separator: "\n")
    }
}

func command(
    _ provider: ProviderID = .fastpod,
    account: String = "acct",
    order: String,
    key: String? = nil,
    deadline: Date? = nil
) -> CancelCommand {
    let reference: OrderReference
    switch provider {
    case .feee: reference = .feee(orderNo: order)
    case .fungies: reference = .fungies(orderIDOrNumber: order)
    case .fastpod: reference = .fastpod(id: order)
    case .futures: reference = .futures(id: order)
    case .taker:
        reference = .taker(orderHash: order, takerAddress: "0xtaker", cancellationSuccess: true, message: "cancelled")
    }
    return CancelCommand(
        commandID: UUID().uuidString, idempotencyKey: key ?? "\(provider)-\(order)", provider: provider,
        account: account,
        order: reference, requestedAt: Date(), deadline: deadline
    )
}

/// How many records a reader has received so far (for a useful message on a timeout).
final class ReceivedCount: Sendable {
    let value = Atomic<Int>(0)
}
