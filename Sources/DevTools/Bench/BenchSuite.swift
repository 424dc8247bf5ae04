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
                "scen   commands  users  latency  throughput/s  bound/s (what)                  of bound   p50 ms   p99 ms  p99.9 ms  max/user/s  viol.  worker CPU s  µs/cmd  cmd/s/core  idle %  peak RSS MB",
            ]
            for result in self.results {
                let scenario = result.scenario
                let bound = result.bound.map { String(format: "%.0f", $0) } ?? "-"
                let fraction = result.bound.map { String(format: "%.0f%%", 100 * result.throughput / $0) } ?? "-"
                lines.append(
                    [
                        scenario.name.padding(toLength: 5, withPad: " ", startingAt: 0),
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
                let prefilled =
                    result.scenario.pipe
                    ? "" : result.scenario.ledgerKeys.map { "; the ledger held \($0) keys before" } ?? ""
                lines.append(
                    "\(result.scenario.name): \(result.scenario.summary)\(prefilled); outcomes \(result.outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))"
                )
                for (status, reason) in (result.outcomeReasons ?? [:]).sorted(by: { $0.key < $1.key }) {
                    lines.append("  \(status), the first: \(reason)")
                }
            }
            lines.append(contentsOf: self.threadLines)
            lines.append(contentsOf: self.rigLines)
            lines.append(contentsOf: self.floorLines)
            lines.append(contentsOf: self.curveLines)
            lines.append(contentsOf: self.timelineLines)
            return lines.joined(separator: "\n")
        }

        /// Each scenario's throughput as a fraction of the lower floor — the Kafka pipe (p) or the
        /// HTTP ceiling, whichever is lower — when p ran.
        var floorLines: [String] {
            guard let floor = self.results.first(where: { $0.scenario.pipe && $0.scenario.load == .burst }) else {
                return []
            }
            let others = self.results.filter { !$0.scenario.pipe && $0.scenario.load == .burst }
            guard !others.isEmpty else { return [] }
            let lower = min(floor.throughput, self.httpCeiling ?? .infinity)
            let which = lower == floor.throughput ? "the Kafka floor" : "the HTTP ceiling"
            return [
                String(
                    format: "Kafka floor (p): %.0f commands/s, %.0f µs of CPU per command", floor.throughput,
                    floor.workerCPUMicrosPerCommand)
                    + (self.httpCeiling.map { String(format: "; HTTP ceiling %.0f req/s", $0) } ?? "")
                    + "; of the lower (\(which)): "
                    + others.map {
                        String(format: "%@ %.0f %%", $0.scenario.name, 100 * $0.throughput / lower)
                    }
                    .joined(separator: ", ")
            ]
        }

        /// Each scenario's worker CPU per command by thread group: where it goes (a profile of
        /// every run; a thread that exited mid-run counts up to its last sample).
        var threadLines: [String] {
            self.results.compactMap { result in
                guard let byThread = result.workerCPUByThread, !byThread.isEmpty else { return nil }
                return "\(result.scenario.name): worker CPU per command by thread, µs: "
                    + ThreadGroup.summary(byThread)
            }
        }

        /// The bench process's own CPU over the first and last quarter of each scenario's sending:
        /// a rig that grew busier as the run went on (the mock broker's fetches) is said so.
        var rigLines: [String] {
            self.results.compactMap { result in
                guard let first = result.rigCPUPercentFirstQuarter, let last = result.rigCPUPercentLastQuarter else {
                    return nil
                }
                return String(
                    format:
                        "%@: the bench process (mock broker, sandbox, generator, outcome reader) used %.0f %% of a core in the first quarter of the sending, %.0f %% in the last",
                    result.scenario.name, first, last)
            }
        }

        /// The load curve's CPU per command at each point as a multiple of its saturated point
        /// (f100, same run): issue 14 asks for at most 2× at 10 % of saturation. The same for the
        /// Kafka floor's curve (pf) when it ran, and then f's CPU above that floor at each point
        /// against f100's above pf100.
        var curveLines: [String] {
            let worker = self.curve("f")
            let floor = self.curve("pf")
            var lines: [String] = []
            if let (full, lower) = worker {
                lines.append(Self.curveLine("load curve (f)", full: full, lower: lower))
            }
            if let (full, lower) = floor {
                lines.append(Self.curveLine("the Kafka floor's load curve (pf)", full: full, lower: lower))
            }
            if let (fullF, lowerF) = worker, let (fullP, lowerP) = floor {
                let fullAbove = fullF.workerCPUMicrosPerCommand - fullP.workerCPUMicrosPerCommand
                let pairs = lowerF.compactMap { point -> String? in
                    let percent = point.scenario.name.dropFirst()
                    guard let pipe = lowerP.first(where: { $0.scenario.name.dropFirst(2) == percent }) else {
                        return nil
                    }
                    let above = point.workerCPUMicrosPerCommand - pipe.workerCPUMicrosPerCommand
                    return String(
                        format: "f%@ %.0f", String(percent), above)
                        + (fullAbove > 0 ? String(format: " (%.1f×)", above / fullAbove) : "")
                }
                if !pairs.isEmpty {
                    lines.append(
                        String(
                            format: "above the Kafka floor (f − pf), µs per command against f100's %.0f: ", fullAbove)
                            + pairs.joined(separator: ", "))
                }
            }
            return lines
        }

        /// A curve's points by name (`prefix` and a percentage): its 100 % point and the others,
        /// or nil without the 100 % point or any other.
        private func curve(_ prefix: String) -> (full: BenchResult, lower: [BenchResult])? {
            let points = self.results.filter {
                $0.scenario.name.hasPrefix(prefix) && Int($0.scenario.name.dropFirst(prefix.count)) != nil
            }
            guard let full = points.first(where: { $0.scenario.name == "\(prefix)100" }),
                full.workerCPUMicrosPerCommand > 0
            else { return nil }
            let lower = points.filter { $0.scenario.name != "\(prefix)100" }
            return lower.isEmpty ? nil : (full, lower)
        }

        private static func curveLine(_ title: String, full: BenchResult, lower: [BenchResult]) -> String {
            String(
                format: "%@: µs of worker CPU per command against %@'s %.0f: ", title, full.scenario.name,
                full.workerCPUMicrosPerCommand)
                + lower.map {
                    String(
                        format: "%@ %.0f (%.1f×)", $0.scenario.name, $0.workerCPUMicrosPerCommand,
                        $0.workerCPUMicrosPerCommand / full.workerCPUMicrosPerCommand)
                }
                .joined(separator: ", ")
        }

        /// Outcomes per second of the scenarios whose members change, and what each change cost.
        var timelineLines: [String] {
            self.results.compactMap { result -> String? in
                guard let timeline = result.timeline, case .rate(let rate) = result.scenario.load else { return nil }
                let dips = result.scenario.events.map { event in
                    let window = timeline.dropFirst(event.second).prefix(result.scenario.eventWindowSeconds)
                    let below = window.filter { Double($0) < 0.9 * rate }.count
                    return "\(event.action.rawValue) at \(event.second) s: \(below) s below 90 % of the send rate"
                }
                return "\(result.scenario.name) outcomes per second (sent at \(Int(rate))/s): "
                    + timeline.map(String.init).joined(separator: " ") + "\n  " + dips.joined(separator: "; ")
            }
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
        /// The `sqlite` ledger's keys before each scenario starts (`--ledger-keys`); nil: an empty file.
        public var ledgerTemplate: LedgerTemplate?
        /// Overrides the scenarios' worker `max-in-flight` (10,000) when set.
        public var maxInFlight: Int?
        /// Overrides the scenarios' `http-client.max-connections-per-host` (512) when set.
        public var httpConnections: Int?
        /// Scenario (e)'s send rate; by default half of what (b) reached (500/s without (b)).
        public var latencyRate: Double?
        public var measureCeiling = true
        /// Overrides the workers' `fetch.wait.max.ms` (`BenchRunner.mockFetchWait`) when set.
        public var fetchWait: Duration?
        /// Overrides the retry tiers' group's wait (`BenchScenario.retryFetchWait`) when set.
        public var retryFetchWait: Duration?
        /// The provider's latency in (b), (d) and the scenarios made from (b), in ms (50 unless set).
        public var latency: Double?

        public init() {}

        func apply(to scenario: inout BenchScenario) {
            scenario.workers = self.workers
            scenario.ledger = self.ledger
            if let template = self.ledgerTemplate, scenario.ledger == "sqlite" { scenario.ledgerKeys = template.keys }
            if let maxInFlight = self.maxInFlight { scenario.maxInFlight = maxInFlight }
            if let httpConnections = self.httpConnections { scenario.httpConnections = httpConnections }
            if let fetchWait = self.fetchWait { scenario.fetchWait = fetchWait }
            if let retryFetchWait = self.retryFetchWait { scenario.retryFetchWait = retryFetchWait }
        }
    }

    public func run(names: [String], settings: Settings) async throws -> Report {
        let factor = settings.factor
        let ceiling = settings.measureCeiling ? try await self.runner.httpCeiling() : nil
        if let ceiling { self.runner.progress(String(format: "HTTP ceiling: %.0f req/s", ceiling)) }
        var results: [BenchResult] = []
        var standard = BenchScenario.standard(factor: factor, latency: settings.latency ?? 50)
        for index in standard.indices { settings.apply(to: &standard[index]) }
        for name in names {
            for scenario in Self.scenarios(name, standard: standard, after: results, settings: settings) {
                results.append(
                    try await self.runScenario(scenario, httpCeiling: ceiling, ledgerTemplate: settings.ledgerTemplate))
            }
        }
        return Report(machine: Self.machine(), httpCeiling: ceiling, results: results)
    }

    /// The runs a scenario name stands for. e, f and h send at rates derived from what (b)
    /// reached in `results` (fixed rates without it).
    static func scenarios(
        _ name: String, standard: [BenchScenario], after results: [BenchResult], settings: Settings
    ) -> [BenchScenario] {
        let factor = settings.factor
        let saturation = results.first { $0.scenario.name == "b" }?.throughput
        /// (b) under another name, summary and load.
        func fromB(_ name: String, _ summary: String, load: BenchScenario.Load = .burst) -> BenchScenario {
            var scenario = standard.first { $0.name == "b" }!
            scenario.name = name
            scenario.summary = summary
            scenario.load = load
            return scenario
        }
        switch name {
        case "p":
            // The Kafka floor: (a)'s workload through `bench-pipe` (no ledger, no HTTP).
            var floor = standard.first { $0.name == "a" }!
            floor.name = "p"
            floor.summary = "(a)'s workload through the Kafka pipe: consume, produce, commit (the floor)"
            floor.pipe = true
            return [floor]
        case "e":
            // (b)'s latency at half the throughput (b) reached (or, without (b), 500/s).
            let rate = settings.latencyRate ?? max(50, (saturation ?? 1_000) / 2)
            var half = fromB(
                "e",
                String(
                    format: settings.latencyRate == nil
                        ? "as (b), sent at %.0f/s (half of (b)): latency" : "as (b), sent at %.0f/s: latency", rate),
                load: .rate(rate))
            half.commands = max(500, Int(rate * 20 * min(factor, 1)))
            return [half]
        case "f":
            // The load curve: (b) sent at 5, 10, 25, 50 and 100 % of what (b) reached (or of
            // 2,000/s without (b)), 10 s each: what a command costs when the worker is not busy.
            return Self.curvePercents.map { percent in
                let rate = Self.curveRate(percent, saturation: saturation)
                var point = fromB(
                    "f\(percent)",
                    String(format: "as (b), sent at %.0f/s (%d %% of saturation): load curve", rate, percent),
                    load: .rate(rate))
                point.commands = max(300, Int(rate * 10 * min(factor, 1)))
                return point
            }
        case "pf":
            // The Kafka floor's load curve: the pipe (p) sent at f's rates, 10 s each. What the
            // Kafka layer alone costs a command when records come one wake-up at a time; the
            // report sets f against it point by point.
            var floor = standard.first { $0.name == "a" }!
            floor.pipe = true
            return Self.curvePercents.map { percent in
                let rate = Self.curveRate(percent, saturation: saturation)
                var point = floor
                point.name = "pf\(percent)"
                point.summary = String(
                    format: "the Kafka pipe, sent at %.0f/s (%d %% of (b)'s saturation): the floor's load curve", rate,
                    percent)
                point.load = .rate(rate)
                point.commands = max(300, Int(rate * 10 * min(factor, 1)))
                return point
            }
        case "g":
            // Scale: (b) with 1, 2 and 3 worker processes in one group.
            return (1...3).map { count in
                var point = fromB("g\(count)", "as (b), \(count) worker\(count == 1 ? "" : "s")")
                point.workers = count
                return point
            }
        case "h":
            // Members join and leave under a steady load: (b)'s workload at half of what (b)
            // reached (or 1,000/s) for 50 s, one worker at first, a second joins at 10 s, a third
            // at 20 s, then the newest leaves at 30 s and the next at 40 s. `factor` below 1
            // shortens the steps (at least 2 s each).
            let step = max(2, Int((10 * min(factor, 1)).rounded()))
            let rate = settings.latencyRate ?? max(50, (saturation ?? 2_000) / 2)
            var steady = fromB(
                "h", String(format: "as (b), sent at %.0f/s for %d s; workers join and leave", rate, 5 * step),
                load: .rate(rate))
            steady.commands = max(100, Int(rate * Double(5 * step)))
            steady.workers = 1
            steady.events = [
                BenchEvent(second: step, action: .join), BenchEvent(second: 2 * step, action: .join),
                BenchEvent(second: 3 * step, action: .leave), BenchEvent(second: 4 * step, action: .leave),
            ]
            steady.eventWindowSeconds = step
            return [steady]
        default:
            return standard.filter { $0.name == name }
        }
    }

    /// The load curves' points (f, pf), in % of what (b) reached.
    static let curvePercents = [5, 10, 25, 50, 100]

    /// A load curve's send rate at `percent` of (b)'s throughput (2,000/s without (b)).
    static func curveRate(_ percent: Int, saturation: Double?) -> Double {
        max(10, (saturation ?? 2_000) * Double(percent) / 100)
    }

    private func runScenario(
        _ scenario: BenchScenario, httpCeiling: Double?, ledgerTemplate: LedgerTemplate?
    ) async throws -> BenchResult {
        let result = try await self.runner.run(scenario, httpCeiling: httpCeiling, ledgerTemplate: ledgerTemplate)
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
