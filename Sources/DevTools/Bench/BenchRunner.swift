import CancelCore
public import Foundation
import Histogram
import Kafka
public import Logging
import OperatorTools
import Sandbox
import Synchronization
import Worker

/// Runs benchmark scenarios: the mock cluster and the sandbox in this process, the workers as
/// child processes of `executable` (so their CPU and peak memory are their own), commands sent
/// as an upstream service would, outcomes read back to time each command end to end.
public struct BenchRunner: Sendable {
    public let executable: String
    public let logger: Logger
    /// Where the workers' logs are kept (one file per process and scenario); nil: they go to a
    /// file removed after the scenario. Workers log at info, `run`'s default, as in production:
    /// one JSON line per command.
    public var logDirectory: URL?
    public let progress: @Sendable (String) -> Void

    public init(executable: String, logger: Logger, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.executable = executable
        self.logger = logger
        self.progress = progress
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The highest rate the sandbox serves on this machine (wrk, keep-alive, latency 0), or
    /// nil when wrk is not installed.
    public func httpCeiling(seconds: Int = 5, connections: Int = 128) async throws -> Double? {
        guard let wrk = Self.which("wrk") else { return nil }
        var configuration = SandboxConfiguration(accounts: [.fastpod: ["bench": ProviderCredentials(key: "bench-key")]])
        configuration.openByDefault = true
        configuration.requestLogCapacity = 10_000
        let sandbox = ProviderSandbox(configuration: configuration, logger: self.logger)
        return try await sandbox.withRunning { url in
            let script = FileManager.default.temporaryDirectory.appendingPathComponent("wrk-\(UUID()).lua")
            try Data(
                "wrk.method = \"POST\"\nwrk.headers[\"Authorization\"] = \"Bearer bench-key\"\nwrk.headers[\"Accept\"] = \"application/json\"\n"
                    .utf8
            ).write(to: script)
            defer { try? FileManager.default.removeItem(at: script) }
            let output = try await Self.run(
                wrk,
                [
                    "-t2", "-c\(connections)", "-d\(seconds)s", "-s", script.path,
                    "\(url.absoluteString)/v1/orders/wrk-1/cancel",
                ])
            let line = output.split(separator: "\n").first { $0.hasPrefix("Requests/sec:") }
            return line.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
    }

    /// Runs `scenario`; its `sqlite` ledger starts as a copy of `ledgerTemplate` when there is one.
    public func run(
        _ scenario: BenchScenario, httpCeiling: Double?, ledgerTemplate: LedgerTemplate? = nil
    ) async throws -> BenchResult {
        // Keys unique to this run: a PostgreSQL ledger outlives it, and a key it already holds
        // would be answered from the ledger, not called.
        let runID = UUID().uuidString.prefix(8).lowercased()
        let cluster = try KafkaMockCluster(brokers: 1, logger: self.logger)
        let topics = TopicNames.default
        _ = try await cluster.ensureTopics(
            ([topics.commands, topics.outcomes, topics.deadLetters]
                + RetryPolicy().tiers.map { topics.retryTopic($0.name) }).map {
                    KafkaNewTopic(name: $0, partitions: scenario.partitions)
                })
        let accounts = (0..<scenario.users).map { "user-\($0)" }
        var sandboxConfiguration = SandboxConfiguration(accounts: [:])
        if scenario.provider == .futures {
            sandboxConfiguration.accounts[.futures] = Dictionary(
                uniqueKeysWithValues: accounts.map {
                    ($0, ProviderCredentials(key: "key-\($0)", secret: "secret-\($0)"))
                })
        } else {
            sandboxConfiguration.accounts[scenario.provider] = [
                "bench": ProviderCredentials(key: "bench-key", secret: "bench-secret")
            ]
        }
        sandboxConfiguration.openByDefault = true
        sandboxConfiguration.requestLogCapacity = 10_000
        if scenario.latencyMilliseconds > 0 {
            sandboxConfiguration.latency[scenario.provider] = .fixed(milliseconds: scenario.latencyMilliseconds)
        }
        let sandbox = ProviderSandbox(configuration: sandboxConfiguration, logger: self.logger)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "cancel-worker-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer {
            self.keepLogs(of: directory)
            try? FileManager.default.removeItem(at: directory)
        }
        if scenario.ledger == "sqlite", !scenario.pipe, let ledgerTemplate {
            try await ledgerTemplate.copy(to: directory.appendingPathComponent("ledger.db"), progress: self.progress)
        }

        return try await sandbox.withRunning { url in
            let configFile = directory.appendingPathComponent("worker.json")
            try self.writeConfiguration(
                scenario, accounts: accounts, bootstrap: cluster.bootstrapServers, sandboxURL: url,
                directory: directory, to: configFile)
            let fleet = BenchFleet()
            defer { fleet.killAll() }
            let start: @Sendable () throws -> WorkerProcess = {
                let id = "bench-\(scenario.name)-\(fleet.started)"
                let worker =
                    scenario.pipe
                    ? try WorkerProcess.startPipe(
                        executable: self.executable, bootstrap: cluster.bootstrapServers,
                        group: "bench-\(scenario.name)", fetchWait: scenario.fetchWait, id: id, directory: directory)
                    : try WorkerProcess.start(
                        executable: self.executable, config: configFile, id: id, directory: directory)
                fleet.add(worker)
                return worker
            }
            for _ in 0..<scenario.workers { _ = try start() }
            for worker in fleet.running {
                guard try await worker.waitUntilAssigned() else {
                    let state = worker.isRunning ? "is running" : "exited \(worker.process.terminationStatus)"
                    throw Failure(
                        description:
                            "worker \(worker.id) did not join the group (it \(state)); its log ends:\n\(worker.logTail)"
                    )
                }
            }
            // What the joined workers cost doing nothing: polling, fetching, timers.
            let idleStart = fleet.cpuSeconds
            try await Task.sleep(for: Self.idleWindow)
            let idleCPU = fleet.cpuSeconds - idleStart
            let collector = try OutcomeCollector.make(
                bootstrap: cluster.bootstrapServers, topic: topics.outcomes, expected: scenario.commands,
                logger: self.logger)
            let threads = ThreadSampler()
            let rig = RigSampler()
            let (elapsed, measuredCPU): (Duration, Double) = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await collector.run() }
                defer {
                    collector.stop()
                    group.cancelAll()
                }
                guard try await collector.waitUntilAssigned() else {
                    throw Failure(description: "the outcome reader got no partitions")
                }
                if case .rate(let perSecond) = scenario.load {
                    try await self.warmUp(
                        scenario, rate: perSecond, accounts: accounts, bootstrap: cluster.bootstrapServers,
                        collector: collector)
                }
                let retries =
                    scenario.pipe ? "" : ", the retry tiers' group's \(scenario.retryFetchWait.milliseconds)"
                self.progress(
                    "scenario \(scenario.name): \(scenario.summary) — sending \(scenario.commands) commands (workers' fetch.wait.max.ms \(scenario.fetchWait.milliseconds)\(retries))"
                )
                let started = ContinuousClock.now
                let cpuAtStart = fleet.cpuSeconds
                threads.begin(fleet.pids)
                rig.begin()
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(250))
                        threads.sample(fleet.pids)
                        rig.sample()
                    }
                }
                collector.startTimeline(at: started)
                if !scenario.events.isEmpty {
                    group.addTask {
                        for event in scenario.events {
                            try await Task.sleep(until: started + .seconds(event.second), clock: .continuous)
                            switch event.action {
                            case .join: _ = try start()
                            case .leave: fleet.stopNewest()
                            }
                            self.progress(
                                "scenario \(scenario.name): second \(event.second), a worker \(event.action.rawValue)s; \(fleet.running.count) running"
                            )
                        }
                    }
                }
                // What the broker acknowledged and what came back, every 10 s until the end: a
                // run that stops moving says where.
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(10))
                        if Task.isCancelled { break }
                        self.progress(
                            "scenario \(scenario.name): \(collector.acknowledgedCount) records acknowledged, \(collector.received) of \(scenario.commands) outcomes after \(Self.seconds(since: started)) s"
                        )
                    }
                }
                try await self.send(
                    scenario, count: scenario.commands, keyPrefix: "bench-\(scenario.name)-\(runID)", orderBase: 0,
                    accounts: accounts, bootstrap: cluster.bootstrapServers, collector: collector)
                let timeout = Duration.seconds(max(120, Double(scenario.commands) / 50))
                let complete = try await collector.waitForAll(timeout: timeout, stall: Self.stallLimit)
                guard complete else {
                    throw Failure(
                        description:
                            "only \(collector.received) of \(scenario.commands) outcomes after \(Self.seconds(since: started)) s (none for \(Self.stallLimit), or \(timeout) in all)\n"
                            + fleet.describe())
                }
                threads.sample(fleet.pids)
                rig.sample()
                self.progress(
                    "scenario \(scenario.name): all \(scenario.commands) outcomes after \(Self.seconds(since: started)) s; stopping"
                )
                return ((collector.lastArrival ?? .now) - started, fleet.cpuSeconds - cpuAtStart)
            }
            let cpu = fleet.cpuSeconds
            let rss = fleet.peakRSSMegabytes
            let workerCount = max(1, scenario.workers)
            // Each step of the teardown is bounded, and says so when it takes too long: the
            // figures are in, and a process or client that does not stop is a finding to
            // report, not a reason to hang.
            for straggler in await fleet.terminateAll(within: .seconds(30)) {
                self.progress("scenario \(scenario.name): \(straggler)")
            }
            if !(await collector.closed(within: .seconds(30))) {
                self.progress(
                    "scenario \(scenario.name): the outcome reader's consumer had not closed 30 s after it was stopped; it is left to this process's exit"
                )
            }
            let stats = sandbox.stats()
            let histogram = collector.histogram
            let seconds = elapsed.timeInterval
            let (bound, reason) = Self.bound(scenario, httpCeiling: httpCeiling)
            let rigQuarters = rig.quarters
            return BenchResult(
                scenario: scenario,
                seconds: seconds,
                throughput: Double(scenario.commands) / seconds,
                p50Milliseconds: Double(histogram.valueAtPercentile(50)) / 1000,
                p99Milliseconds: Double(histogram.valueAtPercentile(99)) / 1000,
                p999Milliseconds: Double(histogram.valueAtPercentile(99.9)) / 1000,
                maxMilliseconds: Double(histogram.maxRecorded) / 1000,
                maxPerUserRate: scenario.provider == .futures ? stats.maxRatePerUser.values.max() ?? 0 : 0,
                rateLimitViolations: stats.totalViolations,
                workerCPUSeconds: cpu,
                workerCPUMicrosPerCommand: measuredCPU / Double(scenario.commands) * 1_000_000,
                workerCPUByThread: Dictionary(
                    uniqueKeysWithValues: threads.seconds.map {
                        ($0.key.rawValue, $0.value / Double(scenario.commands) * 1_000_000)
                    }),
                workerIdleCPUPercent: idleCPU / Self.idleWindow.timeInterval / Double(workerCount) * 100,
                workerPeakRSSMegabytes: rss,
                bound: bound,
                boundReason: reason,
                outcomes: collector.statuses,
                outcomeReasons: collector.reasons.isEmpty ? nil : collector.reasons,
                timeline: scenario.events.isEmpty ? nil : collector.timeline,
                rigCPUPercentFirstQuarter: rigQuarters?.first,
                rigCPUPercentLastQuarter: rigQuarters?.last
            )
        }
    }

    /// Copies the processes' logs of a scenario's run directory to `logDirectory`.
    private func keepLogs(of directory: URL) {
        guard let target = self.logDirectory else { return }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        try? FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        for file in files where file.hasSuffix(".log") {
            let destination = target.appendingPathComponent(file)
            try? FileManager.default.removeItem(at: destination)
            try? FileManager.default.copyItem(at: directory.appendingPathComponent(file), to: destination)
        }
    }

    /// librdkafka's mock broker holds a fetch that found no data for the whole
    /// `fetch.wait.max.ms` even when records arrive meanwhile (real brokers answer as soon as
    /// `fetch.min.bytes` is there), so every consume hop of a command would add up to the
    /// worker's 500 ms default (`kafka.fetch-wait`). The benchmark's consumers wait 5 ms instead (`bench --fetch-wait`
    /// sets the workers' wait: a worker polling the mock every 5 ms pays wake-ups that one
    /// waiting on a real broker does not, which shows at low load).
    static let mockFetchWait: Duration = .milliseconds(5)

    /// A scenario fails once no outcome arrived for this long after its records were sent.
    static let stallLimit: Duration = .seconds(60)

    static func seconds(since start: ContinuousClock.Instant) -> Int {
        Int((ContinuousClock.now - start).timeInterval.rounded())
    }

    /// How long the joined workers' idle CPU is measured before a scenario sends anything.
    static let idleWindow: Duration = .seconds(3)

    /// min(in flight ÷ latency, sum of per-user limits, HTTP ceiling), with what sets it.
    static func bound(_ scenario: BenchScenario, httpCeiling: Double?) -> (Double?, String?) {
        var candidates: [(Double, String)] = []
        if scenario.latencyMilliseconds > 0 {
            let concurrency =
                scenario.partitionConcurrency.map { $0 * scenario.partitions }
                ?? min(scenario.maxInFlight, scenario.httpConnections) * scenario.workers
            candidates.append(
                (Double(concurrency) / (scenario.latencyMilliseconds / 1000), "in flight \(concurrency) ÷ latency"))
        }
        if scenario.provider == .futures {
            // The worker paces any 11 calls of a user over 1 s + the jitter allowance (200 ms by
            // default): 10 per 1.2 s.
            let window = 1 + WorkerConfiguration(bootstrapServers: "-").rateLimitJitterAllowance.timeInterval
            candidates.append(
                (Double(scenario.users) * 10 / window, "\(scenario.users) users × 10 per \(window) s"))
        }
        // A pipe has no bound of its own; a scenario sent at a fixed rate is not after one.
        if scenario.pipe || scenario.load != .burst { return (nil, nil) }
        if let httpCeiling { candidates.append((httpCeiling, "HTTP ceiling")) }
        guard let best = candidates.min(by: { $0.0 < $1.0 }) else { return (nil, nil) }
        return (best.0, best.1)
    }

    private func writeConfiguration(
        _ scenario: BenchScenario, accounts: [String], bootstrap: String, sandboxURL: URL, directory: URL, to file: URL
    ) throws {
        var provider: [String: Any] = ["timeout": "30s"]
        if scenario.provider == .futures {
            provider["accounts"] = accounts.joined(separator: ",")
            provider["credentials"] = Dictionary(
                uniqueKeysWithValues: accounts.map { ($0, ["key": "key-\($0)", "secret": "secret-\($0)"]) })
        } else {
            provider["default-key"] = "bench-key"
            provider["default-secret"] = "bench-secret"
        }
        // See `mockFetchWait`.
        var kafka: [String: Any] = [
            "bootstrap-servers": bootstrap, "fetch-wait": "\(scenario.fetchWait.milliseconds)ms",
        ]
        if scenario.retryFetchWait != scenario.fetchWait {
            kafka["retry-fetch-wait"] = "\(scenario.retryFetchWait.milliseconds)ms"
        }
        var configuration: [String: Any] = [
            "kafka": kafka,
            "group-id": "bench-\(scenario.name)",
            "ledger": ["url": scenario.ledger == "sqlite" ? "sqlite:\(directory.path)/ledger.db" : scenario.ledger],
            "providers": ["base-url": sandboxURL.absoluteString, scenario.provider.rawValue: provider],
            "max-in-flight": scenario.maxInFlight,
            // A read timeout as long as the call's: the sandbox on loopback answers at once, so a
            // shorter one (10 s by default) fires only when the machine starves the sandbox. It
            // then does what it must (the call's result is unknown, so it is made again), and the
            // second cancel of a FastPOD order is answered 422, `rejected`: a CI run whose tests
            // starved a bench ended 65 of 600 commands so.
            "http-client": ["max-connections-per-host": scenario.httpConnections, "read-timeout": "30s"],
            "log": ["level": "info", "format": "json"],
            "commit-interval": "200ms",
            // A claim must outlive the call made under it: the provider timeout + 2 s at least.
            "claim-lease": "35s",
        ]
        if let concurrency = scenario.partitionConcurrency { configuration["partition-concurrency"] = concurrency }
        if !scenario.events.isEmpty {
            // librdkafka 2.0's mock coordinator holds every rebalance of a non-empty group open
            // for the session timeout − 1 s, whether or not every member has rejoined (a real
            // coordinator completes it once they have). With the default 10 s a join or leave
            // would measure that wait; 3 s makes it 2 s (and the heartbeat 1 s).
            configuration["session-timeout"] = "3s"
        }
        try JSONSerialization.data(withJSONObject: configuration).write(to: file)
    }

    /// A latency scenario measures the steady state: first `warmUpSeconds` of the same load,
    /// whose outcomes are awaited and reported but not counted (the first produces and fetches
    /// per partition of fresh Kafka clients on the mock broker take up to a second or two).
    private func warmUp(
        _ scenario: BenchScenario, rate: Double, accounts: [String], bootstrap: String, collector: OutcomeCollector
    ) async throws {
        let count = max(50, Int(rate * Self.warmUpSeconds))
        let prefix = OutcomeCollector.warmUpPrefix + scenario.name + "-" + UUID().uuidString.prefix(8).lowercased()
        self.progress("scenario \(scenario.name): warm-up, \(count) commands at the same rate (not counted)")
        try await self.send(
            scenario, count: count, keyPrefix: prefix, orderBase: 50_000_000, accounts: accounts, bootstrap: bootstrap,
            collector: collector)
        guard try await collector.waitForWarmUp(count, timeout: .seconds(120)) else {
            throw Failure(description: "the warm-up's outcomes did not all arrive")
        }
        let (p99, max) = collector.warmUpLatency
        self.progress(String(format: "scenario %@: warm-up done, p99 %.1f ms, max %.1f ms", scenario.name, p99, max))
    }

    static let warmUpSeconds = 2.0

    private func send(
        _ scenario: BenchScenario, count: Int, keyPrefix: String, orderBase: Int, accounts: [String], bootstrap: String,
        collector: OutcomeCollector
    ) async throws {
        var configuration = KafkaProducerConfiguration(bootstrapServers: bootstrap)
        configuration.linger = .milliseconds(5)
        // A record the mock broker does not take fails the run within a minute, not two.
        configuration.messageTimeout = .seconds(60)
        let producer = try KafkaProducer(configuration: configuration, logger: self.logger)
        // The clock starts at the first send, so the producer first learns the topic: a fresh
        // librdkafka producer sometimes held its first records a second or more while it fetched
        // the topic's metadata, and that time counted against the workers ((c) ran at ~727/s
        // instead of ~830/s in 3 runs of 3, (a) at ~2,790/s instead of ~3,630/s; BENCHMARKS.md).
        _ = try await producer.partitionCount(topic: TopicNames.default.commands, timeout: .seconds(10))
        let enqueuer = CommandEnqueuer(producer: producer, topic: TopicNames.default.commands)
        let now = Date()
        func command(_ index: Int) -> CancelCommand {
            let account = accounts[index % accounts.count]
            let order: OrderReference =
                scenario.provider == .futures
                ? .futures(id: String(10_000_000 + orderBase + index)) : .fastpod(id: "B\(orderBase + index)")
            return CancelCommand(
                commandID: "\(keyPrefix)-\(index)", idempotencyKey: "\(keyPrefix)-\(index)",
                provider: scenario.provider, account: account, order: order, requestedAt: now)
        }
        switch scenario.load {
        case .burst:
            try await withThrowingTaskGroup(of: Void.self) { group in
                var inFlight = 0
                for index in 0..<count {
                    if inFlight >= 2_000 {
                        try await group.next()
                        inFlight -= 1
                    }
                    let item = command(index)
                    group.addTask {
                        collector.sent(item.idempotencyKey)
                        _ = try await enqueuer.send(item)
                        collector.acknowledged()
                    }
                    inFlight += 1
                }
                try await group.waitForAll()
            }
        case .rate(let perSecond):
            let interval = Duration.nanoseconds(Int64(1e9 / perSecond))
            var next = ContinuousClock.now
            try await withThrowingDiscardingTaskGroup { group in
                for index in 0..<count {
                    if next > .now { try await Task.sleep(until: next, clock: .continuous) }
                    next += interval
                    let item = command(index)
                    collector.sent(item.idempotencyKey)
                    group.addTask {
                        _ = try await enqueuer.send(item)
                        collector.acknowledged()
                    }
                }
            }
        }
        await producer.shutdown()
    }

}
