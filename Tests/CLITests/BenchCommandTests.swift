import Foundation
import Testing

@Suite("cancel-worker bench (small scenarios p, a and h)", .timeLimit(.minutes(4)))
struct BenchCommandTests {
    /// A new directory under the temporary one (the caller removes it).
    private static func newDirectory(_ prefix: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// The bench's workers start from the configuration it writes: that configuration must pass
    /// the checks `run` applies (the claim-lease rule refused it, and `make bench` stopped with
    /// "a worker did not join the group").
    /// Scenario p runs the Kafka floor (`bench-pipe`) on the same workload: every command gets
    /// its outcome from the pipe, and (a) is reported as a fraction of it.
    @Test("regression: the bench's workers start, and scenarios p and a print their figures (with --fetch-wait)")
    func scenariosPAndA() async throws {
        let child = try ChildProcess([
            "bench", "--scenarios", "p,a", "--factor", "0.02", "--skip-wrk", "--fetch-wait", "20",
        ])
        let status = try await child.waitForExit(timeout: .seconds(200))
        let output = child.lines.joined(separator: "\n")
        #expect(status == 0, "\(output)\n\(child.standardError.suffix(2000))")
        #expect(output.contains("throughput/s"), "\(output)")
        #expect(
            output.contains("p: (a)'s workload through the Kafka pipe") && output.contains("outcomes cancelled 600"))
        #expect(
            output.contains("\na: provider latency 0: the pipeline's own overhead; outcomes cancelled 600"), "\(output)"
        )
        #expect(
            output.contains("Kafka floor (p): ") && output.contains("; of the lower (the Kafka floor): a "), "\(output)"
        )
        // Where the worker's CPU went, by thread (the tasks, the HTTP event loops, the SQLite
        // writer and Kafka all work on every command).
        let byThread = try #require(child.lines.first { $0.hasPrefix("a: worker CPU per command by thread, µs: ") })
        for group in ["tasks ", "HTTP event loops ", "SQLite writer ", "Kafka "] {
            #expect(byThread.contains(group), "\(byThread)")
        }
        // `--fetch-wait` reaches the workers (and the pipe) of every scenario; their retry tiers'
        // group waits the worker's default (`kafka.retry-fetch-wait`, which the workers accepted).
        #expect(
            child.standardError.contains(
                "600 commands (workers' fetch.wait.max.ms 20, the retry tiers' group's 500)"),
            "\(child.standardError.suffix(2000))")
    }

    /// `--ledger-keys`: the scenario's SQLite ledger starts with that many keys (issue 14: a
    /// ledger that keeps days of keys checkpoints at a cost a new file does not show). The keys
    /// are written once and the file copied per scenario; nothing of it is left behind.
    @Test("--ledger-keys: each scenario's workers start on a ledger holding the keys, written once; the run reports it")
    func ledgerKeys() async throws {
        let directory = try Self.newDirectory("bench-ledger-keys")
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = directory.appendingPathComponent("report.json")
        // The bench's own temporary directory, so that a bench run elsewhere on the machine
        // (another test process, a developer's `make bench`) cannot add or remove templates here.
        let temporary = directory.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        let templates = { () -> Set<String> in
            Set(
                (try? FileManager.default.contentsOfDirectory(atPath: temporary.path))?.filter {
                    $0.hasPrefix("cancel-worker-bench-ledger-")
                } ?? [])
        }
        let child = try ChildProcess(
            [
                "bench", "--scenarios", "p,a,c", "--factor", "0.02", "--skip-wrk", "--fetch-wait", "20",
                "--ledger-keys", "5000", "--json", json.path,
            ], environment: ["TMPDIR": temporary.path])
        let status = try await child.waitForExit(timeout: .seconds(200))
        let output = child.lines.joined(separator: "\n")
        #expect(status == 0, "\(output)\n\(child.standardError.suffix(2000))")
        #expect(output.contains("; the ledger held 5000 keys before; outcomes cancelled 600"), "\(output)")
        #expect(output.contains("(limiter); the ledger held 5000 keys before; outcomes cancelled"), "\(output)")
        #expect(
            output.contains(
                "\np: (a)'s workload through the Kafka pipe: consume, produce, commit (the floor); outcomes"),
            "the Kafka floor has no ledger: \(output)")
        // Written once for the two scenarios with a ledger.
        let written = child.standardError.components(separatedBy: "ledger template: 5000 keys written in ").count - 1
        #expect(written == 1, "\(child.standardError.suffix(2000))")
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let scenarios = (report["results"] as? [[String: Any]])?.compactMap { $0["scenario"] as? [String: Any] } ?? []
        #expect(scenarios.map { $0["name"] as? String } == ["p", "a", "c"])
        #expect(scenarios.dropFirst().allSatisfy { $0["ledgerKeys"] as? Int == 5000 }, "\(scenarios)")
        #expect(templates().isEmpty, "the template's files are removed")
    }

    /// `--against`: the other build's workers run too (a wrapper script stands for the other
    /// build and notes each process it starts), the rounds alternate the builds, and each
    /// build's median is printed.
    @Test("--against: the scenarios run with each build's workers, alternating, and each build's median is printed")
    func against() async throws {
        let directory = try Self.newDirectory("bench-against")
        defer { try? FileManager.default.removeItem(at: directory) }
        let marker = directory.appendingPathComponent("started")
        let other = directory.appendingPathComponent("other-build")
        try """
        #!/bin/sh
        echo "$1" >> '\(marker.path)'
        exec '\(ChildProcess.cancelWorkerPath)' "$@"
        """.write(to: other, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: other.path)

        let child = try ChildProcess([
            "bench", "--scenarios", "a", "--factor", "0.02", "--skip-wrk", "--fetch-wait", "20", "--against",
            other.path, "--rounds", "2",
        ])
        let status = try await child.waitForExit(timeout: .seconds(200))
        let output = child.lines.joined(separator: "\n")
        #expect(status == 0, "\(output)\n\(child.standardError.suffix(2000))")
        let rows = child.lines.map { $0.split(separator: " ").map(String.init) }.filter { $0.first == "a" }
        #expect(
            rows.map { Array($0.prefix(3)) } == [
                ["a", "1", "this"], ["a", "1", "other"], ["a", "2", "other"], ["a", "2", "this"],
            ], "\(output)")
        #expect(rows.allSatisfy { $0.count == 7 && $0.dropFirst(3).allSatisfy { Double($0) != nil } }, "\(output)")
        #expect(output.contains("medians over 2 round(s):\na: this "), "\(output)")
        #expect(output.contains(" per command; other "), "\(output)")
        #expect(
            output.contains("\n  by thread, medians in µs per command: this tasks ")
                && output.contains("; other tasks "), "\(output)")
        // The other build ran the workers of its two runs (one `run` each), and the second round
        // began with it.
        let started = try String(contentsOf: marker, encoding: .utf8).split(separator: "\n")
        #expect(started == ["run", "run"], "\(started)")
        let progress = child.standardError
        let order = ["round 1 of 2: this", "round 1 of 2: other", "round 2 of 2: other", "round 2 of 2: this"].map {
            progress.range(of: $0)?.lowerBound
        }
        #expect(order.allSatisfy { $0 != nil } && order == order.sorted { $0! < $1! }, "\(progress.suffix(3000))")
    }

    @Test("--against, --rounds, --latency and --ledger-keys refuse what they cannot use, before anything starts")
    func againstValidation() async throws {
        for (arguments, message) in [
            (
                ["--against", "/nonexistent/cancel-worker"],
                "--against /nonexistent/cancel-worker is not an executable file"
            ),
            (["--rounds", "2"], "--rounds needs --against"),
            (["--against", ChildProcess.cancelWorkerPath, "--rounds", "0"], "--rounds is from 1 to 1000"),
            // Review finding: these trapped (a Double beyond Int, a pause beyond Int64 nanoseconds).
            (["--factor", "inf"], "--factor is above 0 and at most 100"),
            (["--rate", "inf"], "--rate is from 0.01 to 1000000"),
            (["--rate", "1e-12"], "--rate is from 0.01 to 1000000"),
            (["--latency", "70000"], "--latency is between 0 and 60000 ms"),
            (["--ledger-keys", "1000", "--ledger", "memory:"], "--ledger-keys needs the sqlite ledger"),
            (["--ledger-keys", "20000000"], "--ledger-keys is between 0 and 10000000"),
        ] {
            let child = try ChildProcess(["bench", "--scenarios", "a", "--skip-wrk"] + arguments)
            let status = try await child.waitForExit(timeout: .seconds(30))
            #expect(status == 64, "\(arguments): \(child.standardError)")
            #expect(child.standardError.contains(message), "\(arguments): \(child.standardError)")
        }
    }

    /// Scenario h, shortened: a second and a third worker join while commands are sent, then two
    /// leave (SIGTERM: drain, commit, leave). Every command still ends `cancelled` exactly once
    /// (the reader counts each key once and waits for all), and the timeline is printed.
    @Test("scenario h: workers join and leave under load, every command gets its outcome")
    func scenarioH() async throws {
        let child = try ChildProcess([
            "bench", "--scenarios", "h", "--factor", "0.2", "--rate", "40", "--skip-wrk",
        ])
        let status = try await child.waitForExit(timeout: .seconds(200))
        let output = child.lines.joined(separator: "\n")
        #expect(status == 0, "\(output)\n\(child.standardError.suffix(2000))")
        #expect(output.contains("h: as (b), sent at 40/s for 10 s; workers join and leave; outcomes cancelled 400"))
        #expect(output.contains("h outcomes per second (sent at 40/s): "), "\(output)")
        #expect(output.contains("join at 2 s: ") && output.contains("leave at 8 s: "), "\(output)")
        // The rig's own CPU, sampled while it sent (10 s here).
        #expect(
            output.contains(
                "h: the bench process (mock broker, sandbox, generator, outcome reader) used "),
            "\(output)")
        let progress = child.standardError
        #expect(progress.contains("second 4, a worker joins; 3 running"), "\(progress.suffix(2000))")
        #expect(progress.contains("second 8, a worker leaves; 1 running"), "\(progress.suffix(2000))")
    }
}
