public import CancelCore

/// One benchmark run: how many commands, for how many users, through how many workers,
/// against how slow a provider.
public struct BenchScenario: Sendable, Hashable, Codable {
    public enum Load: Sendable, Hashable, Codable {
        /// Send everything as fast as possible: the throughput the system sustains.
        case burst
        /// Send at this many commands per second (open loop): latency at a given load.
        case rate(Double)
    }

    public var name: String
    public var summary: String
    public var commands: Int
    public var users: Int
    public var provider: ProviderID
    /// The sandbox's added latency per call.
    public var latencyMilliseconds: Double
    public var workers: Int = 1
    public var maxInFlight: Int = 10_000
    /// 1: one command in flight per partition (a plain sequential consumer).
    public var partitionConcurrency: Int?
    public var httpConnections: Int = 512
    /// The workers' `fetch.wait.max.ms` (see `BenchRunner.mockFetchWait`).
    public var fetchWait: Duration = BenchRunner.mockFetchWait
    /// The retry tiers' group's `fetch.wait.max.ms` (`kafka.retry-fetch-wait`, written only when
    /// it differs from `fetchWait`): the worker's default, 500 ms. No scenario retries, so at
    /// `fetchWait` this idle group would fetch ~200 times a second per broker, a cost a worker
    /// on its defaults does not pay.
    public var retryFetchWait: Duration = .milliseconds(500)
    public var partitions: Int = 12
    public var load: Load = .burst
    /// `memory:`, `sqlite` (a file per run) or a `postgres://` URL.
    public var ledger: String = "sqlite"
    /// With the `sqlite` ledger: the keys its file holds before the workers start (nil: a new,
    /// empty file). See `LedgerTemplate`.
    public var ledgerKeys: Int?
    /// The processes are the Kafka floor (`cancel-worker bench-pipe`: consume, produce an
    /// outcome; no ledger, no HTTP), not workers.
    public var pipe = false
    /// Workers started or stopped while the commands are sent, at seconds from the first send.
    public var events: [BenchEvent] = []

    /// The seconds after a change of members in which its cost is counted.
    public var eventWindowSeconds = 10

    /// The standard scenarios of BENCHMARKS.md, scaled by `factor` (1 = the documented sizes).
    /// `latency`: the provider's latency in (b) and (d), and so in the scenarios made from (b).
    public static func standard(factor: Double = 1, latency: Double = 50) -> [BenchScenario] {
        func scaled(_ count: Int) -> Int { max(100, Int(Double(count) * factor)) }
        let milliseconds = latency == latency.rounded() ? String(Int(latency)) : String(latency)
        return [
            BenchScenario(
                name: "a", summary: "provider latency 0: the pipeline's own overhead", commands: scaled(30_000),
                users: 1_000, provider: .fastpod, latencyMilliseconds: 0),
            BenchScenario(
                name: "b", summary: "provider latency \(milliseconds) ms, 1,000 users (Little's law)",
                commands: scaled(30_000), users: 1_000, provider: .fastpod, latencyMilliseconds: latency),
            BenchScenario(
                name: "c", summary: "100 futures users held to 10 req/s each (limiter)", commands: scaled(6_000),
                users: 100, provider: .futures, latencyMilliseconds: 5),
            BenchScenario(
                name: "d", summary: "as (b), one command in flight per partition (baseline)", commands: scaled(1_200),
                users: 1_000, provider: .fastpod, latencyMilliseconds: latency, partitionConcurrency: 1),
        ]
    }
}

/// A change of the group's members during a scenario.
public struct BenchEvent: Sendable, Hashable, Codable {
    public enum Action: String, Sendable, Hashable, Codable {
        /// Another worker process starts and joins the group.
        case join
        /// The most recently started worker gets SIGTERM: it drains, commits and leaves.
        case leave
    }

    public var second: Int
    public var action: Action

    public init(second: Int, action: Action) {
        self.second = second
        self.action = action
    }
}

/// What one scenario measured.
public struct BenchResult: Sendable, Hashable, Codable {
    public var scenario: BenchScenario
    public var seconds: Double
    public var throughput: Double
    public var p50Milliseconds: Double
    public var p99Milliseconds: Double
    public var p999Milliseconds: Double
    public var maxMilliseconds: Double
    /// The most calls one user made in any second, as the sandbox counted.
    public var maxPerUserRate: Int
    public var rateLimitViolations: Int
    /// The workers' CPU time (user + system) and their highest peak resident set.
    public var workerCPUSeconds: Double
    /// The workers' CPU from the first command sent to the last outcome read, per command
    /// (warm-up and idle time excluded).
    public var workerCPUMicrosPerCommand: Double
    /// The same CPU by thread group (`ThreadGroup`'s raw values), µs per command: where it goes.
    public var workerCPUByThread: [String: Double]? = nil
    /// The joined workers' CPU before any command, in percent of one core per worker.
    public var workerIdleCPUPercent: Double
    public var workerPeakRSSMegabytes: Double
    /// The theoretical bound this scenario can reach (min of in-flight ÷ latency, the sum of
    /// the per-user limits, the HTTP ceiling), and the fraction of it reached.
    public var bound: Double?
    public var boundReason: String?
    public var outcomes: [String: Int]
    /// The first reason read for each status but `cancelled` (nil: every command ended cancelled).
    public var outcomeReasons: [String: String]? = nil
    /// Outcomes read per second from the first send, when the scenario changes its members.
    public var timeline: [Int]? = nil
    /// The bench process's own CPU (mock broker, sandbox, generator, outcome reader) in % of a
    /// core over the first and the last quarter of the sending: whether the rig grew busier.
    public var rigCPUPercentFirstQuarter: Double? = nil
    public var rigCPUPercentLastQuarter: Double? = nil
}
