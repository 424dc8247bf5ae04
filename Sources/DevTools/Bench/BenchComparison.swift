public import Foundation
public import Logging

/// Two builds of the worker measured on the same rig, in alternating runs (`bench --against`).
///
/// On two shared cores one run of a scenario varies by 10–30 % from the next, more than most
/// changes gain or lose: a figure measured at 15:00 is not comparable with another measured at
/// 16:00. Runs that alternate the two builds (this one, the other, this one, …), each with its
/// own cluster, sandbox and ledger, put the rig's drift on both sides, and the per-round pairs
/// show whether a difference outlasts it. BENCHMARKS.md reports its "alternating pairs" this way.
public struct BenchComparison: Sendable, Codable {
    /// One suite run: which build ran the workers, in which round.
    public struct Run: Sendable, Codable {
        public var build: String
        public var executable: String
        public var round: Int
        public var report: BenchSuite.Report
    }

    public var runs: [Run]

    /// Runs `names` `rounds` times for each build, alternating, the builds in the given order in
    /// odd rounds and reversed in even ones (so neither always goes first after a pause). The
    /// HTTP ceiling is measured once, in the first run, if `settings` asks for it.
    public static func run(
        builds: [(name: String, executable: String)], rounds: Int, names: [String], settings: BenchSuite.Settings,
        logDirectory: URL? = nil, logger: Logger, progress: @escaping @Sendable (String) -> Void
    ) async throws -> BenchComparison {
        var runs: [Run] = []
        var settings = settings
        for round in 1...max(1, rounds) {
            for build in round.isMultiple(of: 2) ? builds.reversed() : builds {
                progress("round \(round) of \(rounds): \(build.name) (\(build.executable))")
                var runner = BenchRunner(executable: build.executable, logger: logger, progress: progress)
                runner.logDirectory = logDirectory
                let report = try await BenchSuite(runner: runner).run(names: names, settings: settings)
                settings.measureCeiling = false
                runs.append(Run(build: build.name, executable: build.executable, round: round, report: report))
            }
        }
        return BenchComparison(runs: runs)
    }

    /// Every run's figures by scenario, then each build's median per scenario.
    public var table: String {
        var lines = [
            "scen   round  build     throughput/s  µs/cmd   p99 ms  peak RSS MB"
        ]
        let scenarios = self.runs.first?.report.results.map(\.scenario.name) ?? []
        for (index, scenario) in scenarios.enumerated() {
            for run in self.runs {
                guard index < run.report.results.count else { continue }
                let result = run.report.results[index]
                lines.append(
                    [
                        scenario.padding(toLength: 5, withPad: " ", startingAt: 0), String(run.round).leftPadded(6),
                        "  " + run.build.padding(toLength: 8, withPad: " ", startingAt: 0),
                        String(format: "%12.0f", result.throughput),
                        String(format: "%7.0f", result.workerCPUMicrosPerCommand),
                        String(format: "%8.1f", result.p99Milliseconds),
                        String(format: "%12.1f", result.workerPeakRSSMegabytes),
                    ].joined(separator: " "))
            }
        }
        lines.append("")
        lines.append("medians over \(self.runs.map(\.round).max() ?? 0) round(s):")
        let builds = self.runs.reduce(into: [String]()) { if !$0.contains($1.build) { $0.append($1.build) } }
        for (index, scenario) in scenarios.enumerated() {
            let parts = builds.map { build in
                let results = self.runs.filter { $0.build == build && index < $0.report.results.count }
                    .map { $0.report.results[index] }
                return String(
                    format: "%@ %.0f/s at %.0f µs per command", build, Self.median(results.map(\.throughput)),
                    Self.median(results.map(\.workerCPUMicrosPerCommand)))
            }
            lines.append("\(scenario): " + parts.joined(separator: "; "))
            let byThread = builds.compactMap { build -> String? in
                let results = self.runs.filter { $0.build == build && index < $0.report.results.count }
                    .compactMap { $0.report.results[index].workerCPUByThread }
                guard !results.isEmpty else { return nil }
                let medians = ThreadGroup.allCases.map { group in
                    (group.rawValue, Self.median(results.map { $0[group.rawValue] ?? 0 }))
                }
                return "\(build) " + ThreadGroup.summary(Dictionary(uniqueKeysWithValues: medians))
            }
            if !byThread.isEmpty {
                lines.append("  by thread, medians in µs per command: " + byThread.joined(separator: "; "))
            }
        }
        return lines.joined(separator: "\n")
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count.isMultiple(of: 2) ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
    }
}
