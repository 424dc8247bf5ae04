import CancelClient
import CancelCore
import Foundation
import Kafka
import Ledger
public import Logging
import OperatorTools
import Prometheus
import Providers
import Sandbox
import ServiceLifecycle
import Worker

/// `cancel-worker demo`: the whole system on the embedded default, for a newcomer to watch —
/// a mock Kafka cluster, the provider sandbox, two workers sharing a SQLite ledger, a mixed
/// batch for all five providers (successes, every kind of refusal, retries, an outage,
/// duplicates, poison, a deadline, a futures burst), then a replay of the outage's dead
/// letters. Prints tables to `output`; throws if the system did not do what it should.
public struct DemoRunner: Sendable {
    public let logger: Logger
    public let output: @Sendable (String) -> Void

    public init(logger: Logger, output: @escaping @Sendable (String) -> Void) {
        self.logger = logger
        self.output = output
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// One planned command and the terminal status it must end with.
    struct Planned {
        var command: CancelCommand
        var expected: OutcomeStatus
        var copies = 1
    }

    public func run() async throws {
        let started = ContinuousClock.now
        let partitions = 6
        let cluster = try KafkaMockCluster(brokers: 3, logger: self.logger)
        let topics = TopicNames.default
        let tiers = [RetryTier(name: "2s", delay: .seconds(2))]
        _ = try await cluster.ensureTopics(
            ([topics.commands, topics.outcomes, topics.deadLetters] + tiers.map { topics.retryTopic($0.name) }).map {
                KafkaNewTopic(name: $0, partitions: partitions, replicationFactor: 3)
            })
        let sandbox = ProviderSandbox(configuration: SandboxConfiguration(), logger: self.logger)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "cancel-worker-demo-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let ledger = try SQLiteLedger(path: directory.appendingPathComponent("ledger.db").path)

        try await sandbox.withRunning { url in
            self.output(
                "cancel-worker demo: mock Kafka cluster \(cluster.bootstrapServers) (3 brokers, \(partitions) partitions), provider sandbox \(url), 2 workers, SQLite ledger"
            )
            let plan = self.plan(sandbox: sandbox)
            let registry = ProviderRegistry(configuration: Self.providers(url), logger: self.logger)
            let workers = ["demo-worker-a", "demo-worker-b"].map { id in
                var configuration = WorkerConfiguration(bootstrapServers: cluster.bootstrapServers)
                configuration.workerID = id
                configuration.groupID = "cancel-worker-demo"
                configuration.retry.tiers = tiers
                configuration.retry.maxAttempts = 3
                configuration.retry.inProcessAttempts = 2
                configuration.retry.baseBackoff = .milliseconds(100)
                configuration.retry.maxInProcessBackoff = .seconds(6)
                configuration.commitInterval = .milliseconds(100)
                configuration.sessionTimeout = .seconds(6)
                configuration.fetchWaitMax = KafkaMockCluster.fetchWait
                return CancelWorker(
                    configuration: configuration, providers: registry.providers, ledger: ledger, logger: self.logger,
                    metricsFactory: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
            }
            let group = ServiceGroup(
                configuration: .init(services: workers.map { .init(service: $0) }, logger: self.logger))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                defer { tasks.cancelAll() }
                do {
                    try await self.drive(
                        cluster: cluster, topics: topics, sandbox: sandbox, ledger: ledger, workers: workers, plan: plan
                    )
                } catch {
                    await group.triggerGracefulShutdown()
                    await registry.shutdown()
                    throw error
                }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            await registry.shutdown()
        }
        self.output(
            "demo finished in \(Self.seconds(ContinuousClock.now - started)): every command has exactly one terminal outcome"
        )
    }

    private func drive(
        cluster: KafkaMockCluster, topics: TopicNames, sandbox: ProviderSandbox, ledger: SQLiteLedger,
        workers: [CancelWorker], plan: [Planned]
    ) async throws {
        let options = KafkaClientOptions(bootstrapServers: cluster.bootstrapServers)
        // Both workers in the group and owning partitions before anything is sent.
        let deadline = ContinuousClock.now + .seconds(60)
        while workers.contains(where: { $0.status.assignedPartitions.isEmpty }) {
            guard ContinuousClock.now < deadline else {
                throw Failure(description: "the workers did not join the group within 60 s")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        // Upstream sends through CancelClient (checked, keyed provider:account, murmur2).
        var client = CancelClientConfiguration(kafka: options)
        client.topics = topics
        client.listensForOutcomes = false
        let sent = try await CancelClient.withRunning(configuration: client, logger: self.logger) { client in
            var sent = 0
            for item in plan {
                for _ in 0..<item.copies {
                    _ = try await client.enqueue(item.command)
                    sent += 1
                }
            }
            return sent
        }
        // A buggy upstream that bypasses the client: one undecodable record.
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(client: options), logger: self.logger)
        _ = try await producer.send(
            KafkaProducerMessage(
                topic: topics.commands, key: "fastpod:demo-1", value: "{\"command_id\": \"oops\", truncated"))
        await producer.shutdown()
        self.output(
            "sent \(sent + 1) records: \(plan.count) distinct commands, \(sent - plan.count) duplicates, 1 undecodable record"
        )

        let outages = plan.filter { $0.command.order.orderID.hasPrefix("outage-") }
        let reader = OutcomeReader(options: options, topic: topics.outcomes, logger: self.logger)
        var outcomes = try await self.waitFor(reader, distinctKeys: plan.count, timeout: .seconds(120))
        self.output("")
        self.output(Self.table(outcomes: outcomes, title: "outcomes by provider and status"))
        let deadLetters = try await TopicSnapshot(options: options, topic: topics.deadLetters, logger: self.logger)
            .read().map(DeadLetterRecord.init)
        let classes = Dictionary(grouping: deadLetters, by: \.errorClass).mapValues(\.count).sorted { $0.key < $1.key }
            .map { "\($0.key) \($0.value)" }
        self.output("dead letters: \(deadLetters.count) (\(classes.joined(separator: ", ")))")
        let stats = sandbox.stats()
        let futuresCalls = stats.byAccount["futures:demo-1"] ?? 0
        self.output(
            "rate limit: futures account demo-1 — \(futuresCalls) calls, at most \(stats.maxRatePerUser["futures:demo-1"] ?? 0) in any second (limit 10/s), \(stats.totalViolations) violations at the exchange"
        )
        self.output(
            "provider calls: "
                + ProviderID.allCases.map { "\($0) \(stats.byProvider[$0.rawValue] ?? 0)" }.joined(separator: ", "))

        // Self-check before the replay.
        try self.check(outcomes, plan: plan, allowFailedFor: Set(outages.map(\.command.idempotencyKey)))
        guard deadLetters.count == outages.count + 1 else {
            throw Failure(description: "expected \(outages.count + 1) dead letters, found \(deadLetters.count)")
        }
        guard stats.totalViolations == 0, (stats.maxRatePerUser["futures:demo-1"] ?? 99) <= 10 else {
            throw Failure(description: "the futures rate limit was exceeded")
        }

        // The outage ends; an operator replays its dead letters.
        sandbox.clearFaults()
        self.output("")
        self.output("the fungies outage is over: replaying the dead letters")
        var replay = ReplayOptions(kafka: options, topics: topics)
        replay.group = "cancel-worker-demo-replay"
        let report = try await Replayer(options: replay, ledger: ledger, logger: self.logger).run()
        self.output(report.summary)
        let failedBefore = outcomes.values.filter { $0.last?.status == .failed }.count
        outcomes = try await self.waitFor(
            reader, distinctKeys: plan.count, terminalFor: Set(outages.map(\.command.idempotencyKey)),
            timeout: .seconds(60))
        let failedAfter = outcomes.values.filter { $0.last?.status == .failed }.count
        self.output(
            "before the replay: \(failedBefore) commands failed (dead-lettered); after: \(failedAfter) — their terminal outcomes:"
        )
        self.output(
            Self.table(
                outcomes: outcomes.filter { key, _ in outages.contains { $0.command.idempotencyKey == key } },
                title: "replayed commands"))
        try self.check(outcomes, plan: plan, allowFailedFor: [])
    }

    /// Outcomes by key (in arrival order), waiting until `distinctKeys` keys have one and every
    /// key of `terminalFor` has a terminal one.
    private func waitFor(
        _ reader: OutcomeReader, distinctKeys: Int, terminalFor: Set<String> = [], timeout: Duration
    ) async throws -> [String: [CancelOutcome]] {
        let deadline = ContinuousClock.now + timeout
        while true {
            var byKey: [String: [CancelOutcome]] = [:]
            for record in try await reader.read() {
                if let outcome = record.outcome { byKey[outcome.idempotencyKey, default: []].append(outcome) }
            }
            let terminalDone = terminalFor.allSatisfy { key in byKey[key]?.contains { $0.status.isTerminal } == true }
            if byKey.count >= distinctKeys && terminalDone { return byKey }
            guard ContinuousClock.now < deadline else {
                throw Failure(
                    description: "only \(byKey.count) of \(distinctKeys) commands have an outcome after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    private func check(_ outcomes: [String: [CancelOutcome]], plan: [Planned], allowFailedFor: Set<String>) throws {
        for item in plan {
            let key = item.command.idempotencyKey
            let terminal = (outcomes[key] ?? []).filter { $0.status.isTerminal }
            if allowFailedFor.contains(key) {
                guard terminal.isEmpty, outcomes[key]?.last?.status == .failed else {
                    throw Failure(
                        description:
                            "\(key): expected a failed outcome during the outage, got \(outcomes[key]?.map(\.status.rawValue) ?? [])"
                    )
                }
                continue
            }
            guard terminal.count == 1, terminal[0].status == item.expected else {
                throw Failure(
                    description:
                        "\(key): expected one \(item.expected.rawValue) outcome, got \(terminal.map(\.status.rawValue))"
                )
            }
        }
    }

    // MARK: The batch

    private func plan(sandbox: ProviderSandbox) -> [Planned] {
        let now = Date()
        var orders: [SandboxOrder] = []
        var plan: [Planned] = []
        func add(
            _ provider: ProviderID, _ id: String, status: String? = nil, expected: OutcomeStatus,
            account: String = "demo-1", created: Date? = nil, deadline: Date? = nil, copies: Int = 1, seed: Bool = true,
            refuse: Bool = false
        ) {
            if seed {
                orders.append(
                    SandboxOrder(
                        provider: provider, id: id, status: status, createdAt: created ?? now.addingTimeInterval(-3600))
                )
            }
            let order: OrderReference =
                switch provider {
                case .feee: .feee(orderNo: id)
                case .fungies: .fungies(orderIDOrNumber: id)
                case .taker:
                    .taker(
                        orderHash: id, takerAddress: "0x7a6e", cancellationSuccess: !refuse,
                        message: refuse
                            ? "Order already in trading process, cannot cancel" : "Order cancelled successfully")
                case .fastpod: .fastpod(id: id)
                case .futures: .futures(id: id)
                }
            plan.append(
                Planned(
                    command: CancelCommand(
                        commandID: UUID().uuidString.lowercased(), idempotencyKey: "demo-\(provider)-\(id)",
                        provider: provider, account: account,
                        order: order, requestedAt: now, deadline: deadline, orderCreatedAt: created,
                        correlationID: "demo"
                    ),
                    expected: expected, copies: copies
                ))
        }
        // Outcomes are what each provider's document says (docs/providers.md): a refusal is
        // `rejected` or `not_cancellable`, never a guess at a success.
        add(.feee, "2304170329503866885309", expected: .cancelled)
        // Completed an hour after creation: refused under feee.io's documented 5-minute rule.
        add(
            .feee, "2304170329503866885310", status: "completed", expected: .notCancellable,
            created: now.addingTimeInterval(-3600))
        // Created 4m57s ago: feee.io refuses cancels for 5 minutes, so this order waits ~3 s alone.
        add(.feee, "2304170329503866885312", expected: .cancelled, created: now.addingTimeInterval(-297))
        add(.fungies, "3c90c3cc-0d44-4b50-8888-8dd25736052a", expected: .cancelled)
        add(.fungies, "ORD-REFUNDED-1", status: "REFUNDED", expected: .rejected)
        add(.fungies, "ORD-GONE-1", expected: .notFound, seed: false)
        for index in 1...3 { add(.fungies, "outage-\(index)", expected: .cancelled, account: "demo-2") }
        add(.taker, "0x1234567890abcdef", expected: .cancelled)
        add(.taker, "0x1234567890abcdee", expected: .notCancellable, refuse: true)
        add(.fastpod, "F237-120723-000001", expected: .cancelled, copies: 3)
        add(.fastpod, "F237-120723-000002", status: "in_production", expected: .rejected)
        add(.fastpod, "F237-120723-000003", expected: .cancelled)
        add(.fastpod, "F237-120723-000004", expected: .expired, deadline: now.addingTimeInterval(-1))
        for index in 0..<30 { add(.futures, String(33_308_749_002_645_666 + index), expected: .cancelled) }
        add(.futures, "33308749002649999", expected: .notFound, account: "demo-2", seed: false)
        sandbox.seed(orders)
        // A flaky FastPOD order (two 503s, then success) and a Fungies outage for demo-2.
        sandbox.addFault(
            SandboxFault(
                .status(code: 503, retryAfterSeconds: nil), provider: .fastpod, orderPattern: "F237-120723-000003",
                count: 2))
        sandbox.addFault(
            SandboxFault(.status(code: 503, retryAfterSeconds: nil), provider: .fungies, orderPattern: "outage-*"))
        return plan
    }

    static func providers(_ url: URL) -> ProvidersConfiguration {
        var configuration = ProvidersConfiguration()
        for provider in ProviderID.allCases {
            var settings = ProviderSettings(baseURL: url.absoluteString)
            settings.timeout = .seconds(5)
            settings.accounts = SandboxConfiguration.demoAccounts[provider] ?? [:]
            configuration.settings[provider] = settings
        }
        return configuration
    }

    static func table(outcomes: [String: [CancelOutcome]], title: String) -> String {
        let statuses = OutcomeStatus.allCases
        var counts: [String: [OutcomeStatus: Int]] = [:]
        for outcome in outcomes.values.compactMap({ $0.last(where: { $0.status.isTerminal }) ?? $0.last }) {
            counts[outcome.provider, default: [:]][outcome.status, default: 0] += 1
        }
        let header =
            "provider".padding(toLength: 10, withPad: " ", startingAt: 0)
            + statuses.map { $0.rawValue.leftPadded(18) }.joined()
        var lines = [title, header]
        for provider in counts.keys.sorted() {
            lines.append(
                provider.padding(toLength: 10, withPad: " ", startingAt: 0)
                    + statuses.map { String(counts[provider]?[$0] ?? 0).leftPadded(18) }.joined())
        }
        let totals = statuses.map { status in counts.values.reduce(0) { $0 + ($1[status] ?? 0) } }
        lines.append(
            "total".padding(toLength: 10, withPad: " ", startingAt: 0)
                + totals.map { String($0).leftPadded(18) }.joined())
        return lines.joined(separator: "\n")
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f s", duration.timeInterval)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        self.count >= width ? " " + self : String(repeating: " ", count: width - self.count) + self
    }
}
