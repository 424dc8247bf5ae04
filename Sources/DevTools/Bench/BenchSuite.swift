public import Foundation

/// The standard scenarios, in order, with the figures BENCHMARKS.md reports.
public struct BenchSuite: Sendable {
    public let runner: BenchRunner

    public init(runner: BenchRunner) {
        self.runner = runner
    }

    public struct Report: Sendable, Codable {
        public var machine: String
        public var httpCeiling: Double?
        public var results: [BenchResult]

        public var table: String {
            var lines = [
                "machine: \(self.machine)",
                "HTTP ceiling (wrk, sandbox at latency 0): \(self.httpCeiling.map { String(format: "%.0f req/s", $0) } ?? "not measured")",
                "",
                "scen  commands  users  latency  throughput/s  bound/s (what)                  of bound   p50 ms   p99 ms  p99.9 ms  max/user/s  viol.  worker CPU s  µs/cmd  cmd/s/core  idle %  peak RSS MB",
            ]
            for result in self.results {
                let scenario = result.scenario
                let bound = result.bound.map { String(format: "%.0f", $0) } ?? "-"
                let fraction = result.bound.map { String(format: "%.0f%%", 100 * result.throughput / $0) } ?? "-"
                lines.append(
                    [
                        scenario.name.padding(toLength: 4, withPad: " ", startingAt: 0),
                        String(scenario.commands).leftPadded(9), String(scenario.users).leftPadded(6),
                        String(format: "%5.0f ms", scenario.latencyMilliseconds),
                        String(format: "%13.0f", result.throughput),
                        "  "
                            + (bound + " (" + (result.boundReason ?? "-") + ")").padding(
                                toLength: 30, withPad: " ", startingAt: 0),
                        fraction.leftPadded(9), String(format: "%8.1f", result.p50Milliseconds),
                        String(format: "%8.1f", result.p99Milliseconds),
                        String(format: "%9.1f", result.p999Milliseconds), String(result.maxPerUserRate).leftPadded(11),
                        String(result.rateLimitViolations).leftPadded(6),
                        String(format: "%13.1f", result.workerCPUSeconds),
                        String(format: "%7.0f", result.workerCPUMicrosPerCommand),
                        String(format: "%11.0f", 1_000_000 / max(result.workerCPUMicrosPerCommand, 1)),
                        String(format: "%7.2f", result.workerIdleCPUPercent),
                        String(format: "%12.1f", result.workerPeakRSSMegabytes),
                    ].joined(separator: " "))
            }
            for result in self.results {
                lines.append(
                    "\(result.scenario.name): \(result.scenario.summary); outcomes \(result.outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))"
                )
            }
            return lines.joined(separator: "\n")
        }

        public func json() throws -> Data {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return try encoder.encode(self)
        }
    }

    /// What the command line changes in every scenario.
    public struct Settings: Sendable {
        public var factor: Double = 1
        public var workers: Int = 1
        public var ledger: String = "sqlite"
        /// Overrides the scenarios' worker `max-in-flight` (10,000) when set.
        public var maxInFlight: Int?
        /// Overrides the scenarios' `http-client.max-connections-per-host` (512) when set.
        public var httpConnections: Int?
        /// Scenario (e)'s send rate; by default half of what (b) reached (500/s without (b)).
        public var latencyRate: Double?
        public var measureCeiling = true

        public init() {}

        func apply(to scenario: inout BenchScenario) {
            scenario.workers = self.workers
            scenario.ledger = self.ledger
            if let maxInFlight = self.maxInFlight { scenario.maxInFlight = maxInFlight }
            if let httpConnections = self.httpConnections { scenario.httpConnections = httpConnections }
        }
    }

    public func run(names: [String], settings: Settings) async throws -> Report {
        let factor = settings.factor
        let ceiling = settings.measureCeiling ? try await self.runner.httpCeiling() : nil
        if let ceiling { self.runner.progress(String(format: "HTTP ceiling: %.0f req/s", ceiling)) }
        var results: [BenchResult] = []
        var standard = BenchScenario.standard(factor: factor)
        for index in standard.indices { settings.apply(to: &standard[index]) }
        for name in names {
            if name == "f" {
                // The load curve: (b) sent at 5, 25, 50 and 100 % of what (b) reached (or of
                // 2,000/s without (b)), 10 s each: what a command costs when the worker is not busy.
                let saturation = results.first { $0.scenario.name == "b" }?.throughput ?? 2_000
                for percent in [5, 25, 50, 100] {
                    var point = standard.first { $0.name == "b" }!
                    let rate = max(10, saturation * Double(percent) / 100)
                    point.name = "f\(percent)"
                    point.summary = String(
                        format: "as (b), sent at %.0f/s (%d %% of saturation): load curve", rate, percent)
                    point.load = .rate(rate)
                    point.commands = max(300, Int(rate * 10 * min(factor, 1)))
                    results.append(try await self.runScenario(point, httpCeiling: ceiling))
                }
                continue
            }
            var scenario: BenchScenario
            if name == "e" {
                // (b)'s latency at half the throughput (b) reached (or, without (b), 500/s).
                let base = results.first { $0.scenario.name == "b" }
                var half = standard.first { $0.name == "b" }!
                half.name = "e"
                let rate = settings.latencyRate ?? max(50, (base?.throughput ?? 1_000) / 2)
                half.summary = String(
                    format: settings.latencyRate == nil
                        ? "as (b), sent at %.0f/s (half of (b)): latency" : "as (b), sent at %.0f/s: latency", rate)
                half.load = .rate(rate)
                half.commands = max(500, Int(rate * 20 * min(factor, 1)))
                scenario = half
            } else {
                guard let found = standard.first(where: { $0.name == name }) else { continue }
                scenario = found
            }
            results.append(try await self.runScenario(scenario, httpCeiling: ceiling))
        }
        return Report(machine: Self.machine(), httpCeiling: ceiling, results: results)
    }

    private func runScenario(_ scenario: BenchScenario, httpCeiling: Double?) async throws -> BenchResult {
        let result = try await self.runner.run(scenario, httpCeiling: httpCeiling)
        self.runner.progress(
            String(
                format: "scenario %@: %.0f commands/s, p99 %.1f ms, %.0f µs of worker CPU per command", scenario.name,
                result.throughput, result.p99Milliseconds, result.workerCPUMicrosPerCommand))
        return result
    }

    static func machine() -> String {
        let cpu =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n").first {
                $0.hasPrefix("model name")
            }?
            .split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        let memory =
            (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8))?.split(separator: "\n").first?.split(
                separator: " "
            ).dropFirst().first.flatMap { Double($0) }.map { String(format: "%.0f GiB", $0 / 1_048_576) } ?? "?"
        return "\(ProcessInfo.processInfo.activeProcessorCount) cores (\(cpu)), \(memory)"
    }
}
