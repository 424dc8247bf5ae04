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
    public var partitions: Int = 12
    public var load: Load = .burst
    /// `memory:` or `sqlite` (a file per run).
    public var ledger: String = "sqlite"

    /// The standard scenarios of BENCHMARKS.md, scaled by `factor` (1 = the documented sizes).
    public static func standard(factor: Double = 1) -> [BenchScenario] {
        func scaled(_ count: Int) -> Int { max(100, Int(Double(count) * factor)) }
        return [
            BenchScenario(
                name: "a", summary: "provider latency 0: the pipeline's own overhead", commands: scaled(30_000),
                users: 1_000, provider: .fastpod, latencyMilliseconds: 0),
            BenchScenario(
                name: "b", summary: "provider latency 50 ms, 1,000 users (Little's law)", commands: scaled(30_000),
                users: 1_000, provider: .fastpod, latencyMilliseconds: 50),
            BenchScenario(
                name: "c", summary: "100 futures users held to 10 req/s each (limiter)", commands: scaled(6_000),
                users: 100, provider: .futures, latencyMilliseconds: 5),
            BenchScenario(
                name: "d", summary: "as (b), one command in flight per partition (baseline)", commands: scaled(1_200),
                users: 1_000, provider: .fastpod, latencyMilliseconds: 50, partitionConcurrency: 1),
        ]
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
    /// The joined workers' CPU before any command, in percent of one core per worker.
    public var workerIdleCPUPercent: Double
    public var workerPeakRSSMegabytes: Double
    /// The theoretical bound this scenario can reach (min of in-flight ÷ latency, the sum of
    /// the per-user limits, the HTTP ceiling), and the fraction of it reached.
    public var bound: Double?
    public var boundReason: String?
    public var outcomes: [String: Int]
}
