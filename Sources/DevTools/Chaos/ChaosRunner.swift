import CancelCore
import Foundation
import Kafka
import Ledger
public import Logging
import OperatorTools
import Sandbox
import Synchronization
import Worker

/// How hard the chaos run shakes the system.
public struct ChaosOptions: Sendable {
    /// How long commands are sent and faults injected; settling follows.
    public var seconds: Int = 60
    public var workers: Int = 3
    /// Commands sent per second.
    public var rate: Double = 40
    /// A worker is killed with SIGKILL (and restarted) this often.
    public var killEvery: Duration = .seconds(10)
    /// A broker goes down this long after the start, for `brokerDownFor`.
    public var brokerDownAt: Duration = .seconds(15)
    public var brokerDownFor: Duration = .seconds(5)
    /// One worker paused with SIGSTOP past its lease and session timeout, then resumed.
    public var zombie = true
    /// 0–200 ms of network jitter before the sandbox counts a request.
    public var jitter = true
    /// Every 13th command with a 3 s deadline, and the invariant that no call arrives after it.
    public var deadlines = true
    /// The invariant that every consumed partition's committed offset reaches its end.
    public var stallCheck = true
    /// One futures user's mass cancel: this many commands at once, a quarter into the run. The
    /// workers run with `max-in-flight` 64, so the user's partition takes more than its share
    /// of it and is held (paused) while the faults go on; at 10/s it needs `burst / 10` s.
    public var burst = 150
    /// `key=value` settings every worker gets on top of the run's own (`run --set`), e.g.
    /// `kafka.properties=debug=cgrp` to see the group protocol in the kept worker logs.
    public var workerSettings: [String] = []

    public init() {}
}

/// The chaos run of `make chaos`: the cluster and a faulty sandbox in this process, worker
/// processes that are killed and restarted, a broker outage, then the invariants.
public struct ChaosRunner: Sendable {
    public let executable: String
    public let options: ChaosOptions
    public let logger: Logger
    public let progress: @Sendable (String) -> Void

    public init(
        executable: String, options: ChaosOptions, logger: Logger, progress: @escaping @Sendable (String) -> Void
    ) {
        self.executable = executable
        self.options = options
        self.logger = logger
        self.progress = progress
    }

    public func run() async throws -> ChaosReport {
        let cluster = try KafkaMockCluster(brokers: 3, logger: self.logger)
        let topics = TopicNames.default
        let tiers = ["1s", "2s"]
        _ = try await cluster.ensureTopics(
            ([topics.commands, topics.outcomes, topics.deadLetters] + tiers.map(topics.retryTopic)).map {
                KafkaNewTopic(name: $0, partitions: 6, replicationFactor: 3)
            })
        var sandboxConfiguration = SandboxConfiguration()
        sandboxConfiguration.openByDefault = true
        sandboxConfiguration.requestLogCapacity = 2_000_000
        for provider in ProviderID.allCases {
            sandboxConfiguration.latency[provider] = .uniform(minMilliseconds: 5, maxMilliseconds: 30)
            // Network jitter before the provider counts a request, as real arrivals vary.
            if self.options.jitter {
                sandboxConfiguration.arrivalJitter[provider] = .uniform(minMilliseconds: 0, maxMilliseconds: 200)
            }
        }
        let sandbox = ProviderSandbox(configuration: sandboxConfiguration, logger: self.logger)
        sandbox.addFault(SandboxFault(.status(code: 503, retryAfterSeconds: nil), probability: 0.05))
        sandbox.addFault(SandboxFault(.status(code: 429, retryAfterSeconds: 1), probability: 0.03))
        sandbox.addFault(SandboxFault(.timeout(seconds: 3), probability: 0.02))
        sandbox.addFault(SandboxFault(.reset, probability: 0.01))
        // A slow provider: answers just inside the 2 s timeout.
        sandbox.addFault(SandboxFault(.latency(.fixed(milliseconds: 1_800)), probability: 0.02))
        for fault in Self.longRetryAfterFaults { sandbox.addFault(fault) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "cancel-worker-chaos-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ledgerPath = directory.appendingPathComponent("ledger.db").path
        // A failed run keeps its directory: the workers' logs are the evidence.
        var report: ChaosReport
        do {
            report = try await self.run(
                cluster: cluster, sandbox: sandbox, directory: directory, ledgerPath: ledgerPath, tiers: tiers)
        } catch {
            self.progress("chaos: failed; worker logs kept in \(directory.path)")
            throw error
        }
        if report.passed {
            try? FileManager.default.removeItem(at: directory)
        } else {
            report.keptDirectory = directory.path
        }
        return report
    }

    func run(
        cluster: KafkaMockCluster, sandbox: ProviderSandbox, directory: URL, ledgerPath: String, tiers: [String]
    ) async throws -> ChaosReport {
        let topics = TopicNames.default
        return try await sandbox.withRunning { url in
            let config = directory.appendingPathComponent("worker.json")
            try self.writeConfiguration(
                bootstrap: cluster.bootstrapServers, sandboxURL: url, ledgerPath: ledgerPath, tiers: tiers, to: config)
            let fleet = Fleet()
            defer { fleet.killAll() }
            for index in 0..<self.options.workers {
                fleet.add(
                    try WorkerProcess.start(
                        executable: self.executable, config: config, id: "chaos-\(index)-0", directory: directory,
                        settings: self.options.workerSettings))
            }
            for worker in fleet.all {
                guard try await worker.waitUntilAssigned() else {
                    // Say why: the worker's own last log lines (it may have exited, e.g. a port taken meanwhile).
                    let log =
                        (try? String(contentsOf: directory.appendingPathComponent("\(worker.id).log"), encoding: .utf8))
                        ?? ""
                    let state =
                        worker.isRunning ? "still running" : "exited with status \(worker.process.terminationStatus)"
                    throw ChaosError.workerDidNotStart("\(worker.id) (\(state)); its log ends: \(log.suffix(1_500))")
                }
            }
            self.progress(
                "chaos: \(self.options.workers) workers up; sending \(Int(self.options.rate))/s for \(self.options.seconds) s with faults"
            )

            var report = ChaosReport()
            let zombies = ZombieCount()
            let commands = try await withThrowingTaskGroup(of: [CancelCommand].self) { group in
                group.addTask { try await self.send(bootstrap: cluster.bootstrapServers) }
                group.addTask {
                    try await self.disturb(
                        cluster: cluster, fleet: fleet, config: config, directory: directory, zombies: zombies)
                    return []
                }
                var all: [CancelCommand] = []
                for try await batch in group { all += batch }
                return all
            }
            report.commands = commands.count
            report.kills = fleet.kills
            report.zombies = zombies.value
            report.jitter = self.options.jitter
            // By the sender's index (the burst's commands sit among them in `commands`).
            report.misKeyed =
                commands.filter { $0.commandID.hasPrefix("chaos-") && !$0.commandID.hasPrefix("chaos-burst-") }
                .indices.filter(Self.misKeyed).count
            report.withDeadline = commands.filter { $0.deadline != nil }.count
            report.brokerOutages = self.options.brokerDownAt < .seconds(self.options.seconds) ? 1 : 0
            self.progress("chaos: disturbances over; waiting for every command to settle")
            sandbox.clearFaults()
            let outcomes = try await self.settle(commands, bootstrap: cluster.bootstrapServers, topic: topics.outcomes)
            report.stallChecked = self.options.stallCheck
            if self.options.stallCheck {
                // The commands topic in the workers' group, the retry tiers in theirs.
                let stalled =
                    try await self.stalledPartitions(
                        bootstrap: cluster.bootstrapServers, group: "chaos", topics: [topics.commands], partitions: 6)
                    + self.stalledPartitions(
                        bootstrap: cluster.bootstrapServers, group: WorkerConfiguration.retryGroupID(of: "chaos"),
                        topics: tiers.map(topics.retryTopic), partitions: 6)
                report.violations += stalled
                if !stalled.isEmpty { report.diagnostics += await self.workerViews(fleet) }
            }

            for worker in fleet.all { worker.signal(SIGTERM) }
            for worker in fleet.all { _ = await worker.process.exited() }
            report.burst = self.options.burst
            report.partitionsHeld = Self.partitionsHeld(loggedIn: directory)
            let deadLetters = try await TopicSnapshot(
                options: KafkaClientOptions(bootstrapServers: cluster.bootstrapServers), topic: topics.deadLetters,
                logger: self.logger
            ).read()
            try await self.check(
                commands, outcomes: outcomes, deadLetters: deadLetters, sandbox: sandbox, ledgerPath: ledgerPath,
                into: &report)
            return report
        }
    }

    /// How often the workers held a partition for taking more than its share of
    /// `max-in-flight`, from their logs (each hold logs one line at notice level).
    /// Retry-After longer than every retry tier, for three orders: these records come back to
    /// their command partition and wait there alone, holding no tier up. The pattern matches the
    /// order as the sandbox identifies it (a taker order by its hash, `0x…`: the plain id never
    /// matched, and the fault was never injected).
    static var longRetryAfterFaults: [SandboxFault] {
        [7, 307, 607].map { index in
            SandboxFault(.status(code: 429, retryAfterSeconds: 8), orderPattern: "*\(70_000_000 + index)", count: 1)
        }
    }

    /// Kills every worker process this process started that still runs (an interrupted run).
    public static func killStartedWorkers() { WorkerProcess.killEveryStarted() }

    /// Whether the sender mis-keys command `index` (the account alone as key).
    static func misKeyed(_ index: Int) -> Bool { index % 23 == 5 }

    static func partitionsHeld(loggedIn directory: URL) -> Int {
        let logs = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return logs.filter { $0.hasSuffix(".log") }.reduce(0) { count, name in
            let text =
                (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
            return count
                + text.split(separator: "\n").count { $0.contains("holds more than its share of max-in-flight") }
        }
    }

    enum ChaosError: Error, CustomStringConvertible {
        case workerDidNotStart(String)
        var description: String {
            switch self {
            case .workerDidNotStart(let id): "worker \(id) did not join the group"
            }
        }
    }

    /// The worker processes; restarted ones replace the killed.
    final class ZombieCount: Sendable {
        private let count = Mutex(0)
        func add() { self.count.withLock { $0 += 1 } }
        var value: Int { self.count.withLock { $0 } }
    }

    final class Fleet: Sendable {
        private let state = Mutex<(workers: [WorkerProcess], kills: Int)>(([], 0))
        func add(_ worker: WorkerProcess) { self.state.withLock { $0.workers.append(worker) } }
        var all: [WorkerProcess] { self.state.withLock { $0.workers.filter(\.isRunning) } }
        var kills: Int { self.state.withLock { $0.kills } }
        func killed() { self.state.withLock { $0.kills += 1 } }
        func killAll() { for worker in self.state.withLock({ $0.workers }) { worker.signal(SIGKILL) } }
    }

    func writeConfiguration(
        bootstrap: String, sandboxURL: URL, ledgerPath: String, tiers: [String], to file: URL
    ) throws {
        var providers: [String: Any] = ["base-url": sandboxURL.absoluteString]
        for provider in ProviderID.allCases {
            let accounts = SandboxConfiguration.demoAccounts[provider] ?? [:]
            providers[provider.rawValue] = [
                "timeout": "2s",
                "accounts": accounts.keys.sorted().joined(separator: ","),
                "credentials": accounts.mapValues { credentials -> [String: String] in
                    var entry = ["key": credentials.key.reveal()]
                    entry["secret"] = credentials.secret?.reveal()
                    return entry
                },
            ]
        }
        let configuration: [String: Any] = [
            "kafka": [
                "bootstrap-servers": bootstrap,
                "fetch-wait": "\(KafkaMockCluster.fetchWait.milliseconds)ms",
            ],
            "group-id": "chaos", "ledger": ["url": "sqlite:\(ledgerPath)"],
            // A 10 s session: librdkafka's mock coordinator waits only session − 1 s for members to
            // rejoin a rebalance (a real one waits max.poll.interval.ms), and a member rejoins after
            // its next heartbeat (3 s) and its revoke drain (up to drain-timeout, 5 s). With 6 s, a
            // draining member missed the join, got its share back one round later, and the rounds
            // went on for minutes with commits refused (a stall seen once in 8 runs under load).
            "providers": providers, "session-timeout": "10s", "claim-lease": "4s", "drain-timeout": "5s",
            "commit-interval": "100ms",
            // Small enough that the mass cancel (`burst`) fills three quarters of it: its
            // partition is held for taking more than its share (docs/architecture.md, intake).
            "max-in-flight": 64,
            "retry": ["tiers": tiers.joined(separator: ","), "max-attempts": 6, "base-backoff": "50ms"],
            // Info: rebalances, commits refused, retries — what explains a failed run.
            "log": ["level": "info", "format": "json"],
        ]
        try JSONSerialization.data(withJSONObject: configuration).write(to: file)
    }

    /// Sends commands for `seconds` at `rate`: five providers, three accounts each.
    func send(bootstrap: String) async throws -> [CancelCommand] {
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: bootstrap), logger: self.logger)
        let enqueuer = CommandEnqueuer(producer: producer, topic: TopicNames.default.commands)
        let total = Int(self.options.rate * Double(self.options.seconds))
        let interval = Duration.nanoseconds(Int64(1e9 / self.options.rate))
        var commands: [CancelCommand] = []
        var next = ContinuousClock.now
        try await withThrowingDiscardingTaskGroup { group in
            for index in 0..<total {
                if next > .now { try await Task.sleep(until: next, clock: .continuous) }
                next += interval
                if index == total / 4 && self.options.burst > 0 {
                    let burst = (0..<self.options.burst).map { index in
                        CancelCommand(
                            commandID: "chaos-burst-\(index)", idempotencyKey: "chaos-burst-\(index)",
                            provider: .futures, account: "demo-1",
                            order: SandboxOrder.reference(.futures, id: String(71_000_000 + index)), requestedAt: Date()
                        )
                    }
                    commands += burst
                    group.addTask { for command in burst { _ = try await enqueuer.send(command) } }
                }
                let provider = ProviderID.allCases[index % ProviderID.allCases.count]
                let id = String(70_000_000 + index)
                let order = SandboxOrder.reference(provider, id: id)
                // Every 13th command must be done within 3 s (no call may reach a provider later).
                let command = CancelCommand(
                    commandID: "chaos-\(index)", idempotencyKey: "chaos-\(index)", provider: provider,
                    account: "demo-\(1 + index % 3)", order: order, requestedAt: Date(),
                    deadline: self.options.deadlines && index % 13 == 3 ? Date().addingTimeInterval(3) : nil
                )
                commands.append(command)
                // Some commands arrive twice, as upstream retries would send them; every 23rd comes
                // from a mis-keyed producer (the account alone as key).
                let copies = index % 17 == 0 ? 2 : 1
                let misKeyed = Self.misKeyed(index)
                group.addTask {
                    if misKeyed {
                        _ = try await producer.send(
                            KafkaProducerMessage(
                                topic: TopicNames.default.commands, key: Array(command.account.utf8),
                                value: command.encoded()
                            ))
                    } else {
                        for _ in 0..<copies { _ = try await enqueuer.send(command) }
                    }
                }
            }
        }
        await producer.shutdown()
        return commands
    }

    /// Kills a worker every `killEvery` (restarting it), takes a broker down once, and pauses one
    /// worker with SIGSTOP past its lease (4 s) and session timeout (10 s) for 15 s, then resumes
    /// it: the zombie that a SIGKILL never shows.
    func disturb(
        cluster: KafkaMockCluster, fleet: Fleet, config: URL, directory: URL, zombies: ZombieCount
    ) async throws {
        let started = ContinuousClock.now
        let end = started + .seconds(self.options.seconds)
        var nextKill = started + self.options.killEvery
        var brokerDown = false
        var brokerUp = false
        var generation = 1
        var paused: (worker: WorkerProcess, until: ContinuousClock.Instant)?
        var pausedOnce = false
        while ContinuousClock.now < end || paused != nil {
            try await Task.sleep(for: .milliseconds(200))
            let now = ContinuousClock.now
            if self.options.zombie, !pausedOnce, now - started >= .seconds(self.options.seconds) / 3,
                let victim = fleet.all.randomElement()
            {
                pausedOnce = true
                victim.signal(SIGSTOP)
                paused = (victim, now + .seconds(15))
                zombies.add()
                self.progress("chaos: paused \(victim.id) with SIGSTOP for 15 s")
            }
            if let (worker, until) = paused, now >= until {
                worker.signal(SIGCONT)
                paused = nil
                self.progress("chaos: resumed \(worker.id) with SIGCONT")
            }
            guard now < end else { continue }
            if !brokerDown && now - started >= self.options.brokerDownAt {
                try cluster.setBrokerDown(2)
                brokerDown = true
                self.progress("chaos: broker 2 down")
            }
            if brokerDown && !brokerUp && now - started >= self.options.brokerDownAt + self.options.brokerDownFor {
                try cluster.setBrokerUp(2)
                brokerUp = true
                self.progress("chaos: broker 2 up")
            }
            if now >= nextKill, let victim = fleet.all.filter({ $0.id != paused?.worker.id }).randomElement() {
                nextKill = now + self.options.killEvery
                victim.signal(SIGKILL)
                fleet.killed()
                let id = victim.id.split(separator: "-").dropLast().joined(separator: "-") + "-\(generation)"
                generation += 1
                fleet.add(
                    try WorkerProcess.start(
                        executable: self.executable, config: config, id: id, directory: directory,
                        settings: self.options.workerSettings))
                self.progress("chaos: killed \(victim.id) with SIGKILL, started \(id)")
            }
        }
        if brokerDown && !brokerUp { try cluster.setBrokerUp(2) }
    }

}
