#if DevTools
    import ArgumentParser
    import DevTools
    import Foundation

    /// `cancel-worker bench`: throughput, latency and resource use, measured (`make bench`).
    struct BenchCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench",
            abstract:
                "Measure throughput, command→outcome latency, per-user rates, CPU and memory on the embedded cluster and sandbox.",
            discussion: """
                Scenarios (BENCHMARKS.md): p = the Kafka floor, (a)'s workload through `bench-pipe` \
                (consume, produce, commit; no ledger, no HTTP); a = provider latency 0; \
                b = 50 ms with 1,000 users; c = 100 futures users at 10/s each; \
                d = (b) with one command in flight per partition; \
                e = (b)'s latency at half of (b)'s throughput; \
                f = the load curve, (b) sent at 5, 10, 25, 50 and 100 % of (b)'s throughput; \
                pf = the Kafka floor's load curve, the pipe sent at f's rates; \
                g = (b) with 1, 2 and 3 workers; \
                h = (b)'s workload at half of (b)'s throughput for 50 s while workers join (10 s, 20 s) \
                and leave (30 s, 40 s).

                Workers run as child processes of this binary; a release build gives the real \
                figures (make bench).
                """
        )

        @Option(help: "Scenarios to run, comma separated (p,a,b,c,d,e,f,pf,g,h).")
        var scenarios: String = "p,a,b,c,d,e,f,pf,g,h"

        @Option(help: "Scale the number of commands (1 = the documented sizes).")
        var factor: Double = 1

        @Option(help: "Workers per scenario.")
        var workers: Int = 1

        @Option(help: "Ledger: sqlite (the embedded default), memory: or a postgres:// URL (keys are unique per run).")
        var ledger: String = "sqlite"

        @Option(
            help: ArgumentHelp(
                "With the sqlite ledger: the keys its file holds before each scenario's workers start (0: a new, empty file).",
                discussion:
                    "A ledger that keeps days of keys: SQLite's checkpoints cost its writer more than a new file's. The keys are written once (about 25 s per 200,000 in a release build) and the file is copied for each scenario.",
                valueName: "count"))
        var ledgerKeys = 0

        @Option(help: "Write the results as JSON to this file.")
        var json: String?

        @Option(help: "Override the workers' max-in-flight (the scenarios use 10,000).")
        var maxInFlight: Int?

        @Option(help: "Override the workers' HTTP connections per provider host (the scenarios use 512).")
        var httpConnections: Int?

        @Option(help: "The provider's latency in ms in b, d and the scenarios made from b (e–h); 50 by default.")
        var latency: Double?

        @Option(help: "Scenarios e and h's send rate in commands/s (default: half of what b reached).")
        var rate: Double?

        @Option(
            help:
                "The workers' fetch.wait.max.ms (default 5: the mock broker holds an empty fetch that long even when records arrive; a real broker answers at once)."
        )
        var fetchWait: Int?

        @Option(
            help:
                "The retry tiers' group's fetch.wait.max.ms (default 500, the worker's default: no scenario retries; the same as --fetch-wait for a build that has no kafka.retry-fetch-wait)."
        )
        var retryFetchWait: Int?

        @Option(help: "Keep the workers' logs, at info level, in this directory (one file per process).")
        var logs: String?

        @Flag(help: "Skip the wrk measurement of the HTTP ceiling.")
        var skipWrk = false

        @Option(
            help: ArgumentHelp(
                "Compare with another cancel-worker build: run the scenarios with its workers and with this build's, alternating, --rounds times each.",
                discussion:
                    "One run varies by 10–30 % on a shared machine; alternating runs put that drift on both sides. The other build must accept the worker configuration this bench writes.",
                valueName: "path"))
        var against: String?

        @Option(help: "Rounds of the comparison (with --against; 3 by default).")
        var rounds: Int?

        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            // Bounded: each scales a count or a pause the bench converts to integers.
            guard self.factor > 0, self.factor <= 100, (1...16).contains(self.workers) else {
                throw ValidationError("--factor is above 0 and at most 100; --workers from 1 to 16")
            }
            guard (0.01...1_000_000).contains(self.rate ?? 1) else {
                throw ValidationError("--rate is from 0.01 to 1000000 commands per second")
            }
            guard (1...1_000).contains(self.rounds ?? 1) else { throw ValidationError("--rounds is from 1 to 1000") }
            guard (0...60_000).contains(self.latency ?? 0) else {
                throw ValidationError("--latency is between 0 and 60000 ms")
            }
            guard (self.fetchWait ?? 1) >= 1, (self.retryFetchWait ?? 1) >= 1 else {
                throw ValidationError("--fetch-wait and --retry-fetch-wait must be at least 1 ms")
            }
            guard (1...1_000_000).contains(self.maxInFlight ?? 1), (1...10_000).contains(self.httpConnections ?? 1)
            else {
                throw ValidationError("--max-in-flight is from 1 to 1000000, --http-connections from 1 to 10000")
            }
            guard
                self.ledger == "sqlite" || self.ledger == "memory:" || self.ledger.hasPrefix("postgres://")
                    || self.ledger.hasPrefix("postgresql://")
            else {
                throw ValidationError("--ledger is sqlite, memory: or a postgres:// URL")
            }
            guard (0...10_000_000).contains(self.ledgerKeys) else {
                throw ValidationError("--ledger-keys is between 0 and 10000000")
            }
            guard self.ledgerKeys == 0 || self.ledger == "sqlite" else {
                throw ValidationError("--ledger-keys needs the sqlite ledger (--ledger sqlite)")
            }
            if let against = self.against, !FileManager.default.isExecutableFile(atPath: against) {
                throw ValidationError("--against \(against) is not an executable file")
            }
            guard self.rounds == nil || self.against != nil else { throw ValidationError("--rounds needs --against") }
            let unknown = self.scenarios.split(separator: ",").filter {
                !["p", "a", "b", "c", "d", "e", "f", "pf", "g", "h"].contains($0)
            }
            guard unknown.isEmpty else { throw ValidationError("unknown scenarios: \(unknown.joined(separator: ","))") }
        }

        func run() async throws {
            var options = self.logging
            if options.logLevel == nil { options.logLevel = "critical" }
            let logger = options.bootstrap(label: "bench")
            let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            var runner = BenchRunner(executable: executable, logger: logger) {
                FileHandle.standardError.write(Data(($0 + "\n").utf8))
            }
            runner.logDirectory = self.logs.map { URL(fileURLWithPath: $0) }
            var settings = BenchSuite.Settings()
            settings.factor = self.factor
            settings.workers = self.workers
            settings.ledger = self.ledger
            settings.maxInFlight = self.maxInFlight
            settings.httpConnections = self.httpConnections
            settings.latencyRate = self.rate
            settings.latency = self.latency
            settings.fetchWait = self.fetchWait.map { .milliseconds($0) }
            settings.retryFetchWait = self.retryFetchWait.map { .milliseconds($0) }
            settings.measureCeiling = !self.skipWrk
            let template = self.ledgerKeys > 0 ? LedgerTemplate(keys: self.ledgerKeys) : nil
            settings.ledgerTemplate = template
            defer { template?.remove() }
            let names = self.scenarios.split(separator: ",").map(String.init)
            let json: Data
            if let against = self.against {
                let (rounds, logDirectory, progress) = (self.rounds ?? 3, runner.logDirectory, runner.progress)
                let comparison = try await stoppingItsWorkersOnInterrupt("bench") { [settings] in
                    try await BenchComparison.run(
                        builds: [("this", executable), ("other", against)], rounds: rounds, names: names,
                        settings: settings, logDirectory: logDirectory, logger: logger, progress: progress)
                }
                StandardOutput.writeLine("this: \(executable)\nother: \(against)\n\n" + comparison.table)
                json = try comparison.json()
            } else {
                let suite = BenchSuite(runner: runner)
                let report = try await stoppingItsWorkersOnInterrupt("bench") { [settings] in
                    try await suite.run(names: names, settings: settings)
                }
                StandardOutput.writeLine(report.table)
                json = try report.json()
            }
            if let path = self.json {
                let url = URL(fileURLWithPath: path)
                try FileManager.default.createDirectory(
                    at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try json.write(to: url)
                StandardOutput.writeLine("results written to \(path)")
            }
        }
    }
#endif
