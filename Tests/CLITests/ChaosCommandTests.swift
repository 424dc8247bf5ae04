import CancelWorkerTesting
import Foundation
import Testing

// Serialized: the short run is timing-sensitive and runs alone (see the Makefile); the
// interrupted run beside it loaded the machine and, cleaning up, killed its workers.
@Suite("cancel-worker chaos (short run)", .serialized, .timeLimit(.minutes(8)))
struct ChaosCommandTests {
    @Test("workers killed with SIGKILL, a broker outage, provider faults: every invariant holds")
    func chaos() async throws {
        // `make test` runs this suite last, alone (see the Makefile): run beside every other suite
        // on two cores, the sandbox read calls sent 1.2 s apart up to 224 ms late and counted 11
        // in a second. The timing-sensitive faults (the SIGSTOP zombie, arrival jitter, deadlines
        // measured at arrival) and the stall check are left to `make chaos`. What they found under
        // load — a late call from a frozen worker, the sandbox's overslept jitter, commits retried
        // mid-rebalance — is fixed and tested on its own (SendWindowTests,
        // SandboxMisbehaviourTests, CommitHoldTests; see BENCHMARKS.md).
        var (child, status) = try await Self.run()
        var runs = 1
        while status != 0 && Self.mockCoordinatorAborted(child.standardError) && runs < 4 {
            // librdkafka 2.0's mock coordinator, in the chaos process, asserted on a SyncGroup it
            // already held (`rd_kafka_mock_cgrp_member_sync_set: Assertion '!member->resp'`): a
            // bug of the test cluster, not of the workers (BENCHMARKS.md, chaos). Up to four runs
            // while, and only while, that is how they end (a fresh-clone CI run on 2026-11-28 saw
            // it end two in a row); any other failure fails at once.
            runs += 1
            print("chaos: librdkafka's mock coordinator aborted (a librdkafka 2.0 mock bug); run \(runs) of at most 4")
            // The aborted process never stopped its workers: left running, they kept a port and
            // CPU each for the rest of the test run (two were found 90 minutes later).
            Self.killOrphanedWorkers()
            (child, status) = try await Self.run()
        }
        let output = child.lines.joined(separator: "\n")
        #expect(status == 0, "\(output)\n\(child.standardError.suffix(2000))")
        #expect(output.contains("workers killed with SIGKILL and restarted, 1 broker outage(s)"))
        #expect(output.contains("0 worker(s) paused with SIGSTOP") && output.contains("mis-keyed commands"))
        #expect(child.lines.filter { $0.hasPrefix("  ok ") }.count == 6, "\(output)")
        // The mass cancel took more than its partition's share of max-in-flight: held, and
        // every one of its commands still got its one outcome (the invariants above).
        let held = child.lines.first { $0.contains("partitions held for more than their share of max-in-flight: ") }
        let count = held.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        #expect(count > 0, "\(held ?? output)")
        #expect(child.lines.contains { $0.hasPrefix("  skip no partition stalled") }, "\(output)")
        #expect(!output.contains("FAIL"))
    }

    @Test("review finding: values that trapped are refused before anything starts (exit 64)")
    func refusesUnboundedValues() async throws {
        for (arguments, message) in [
            (["--rate", "inf"], "--rate from 0.1 to 10000"),
            (["--rate", "1e-12"], "--rate from 0.1 to 10000"),
            (["--seconds", "9223372036854775807"], "--seconds is from 20"),
            (["--workers", "1000"], "--workers is from 2 to 16"),
        ] {
            let child = try ChildProcess(["chaos"] + arguments)
            let status = try await child.waitForExit(timeout: .seconds(30))
            #expect(status == 64, "\(arguments): \(child.standardError)")
            #expect(child.standardError.contains(message), "\(arguments): \(child.standardError)")
        }
    }

    /// One short chaos run: the process and its exit status.
    static func run() async throws -> (ChildProcess, Int32) {
        let child = try ChildProcess([
            "chaos", "--seconds", "30", "--no-zombie", "--no-jitter", "--no-deadlines", "--no-stall-check",
        ])
        return (child, try await child.waitForExit(timeout: .seconds(200)))
    }

    /// SIGKILLs the workers of chaos runs whose process is gone (their `--config` is a chaos
    /// run's `worker.json`; this suite runs alone, so no other chaos run is going).
    /// Review finding (DevTools): Foundation starts each worker in a process group of its own,
    /// so Ctrl-C at the terminal reached `make` and the chaos process only; the workers kept
    /// running (a port and CPU each) against a cluster that was gone.
    @Test("review finding: SIGINT stops a chaos run and the workers it started (exit 130)")
    func interruptStopsItsWorkers() async throws {
        let child = try ChildProcess(["chaos", "--seconds", "60", "--workers", "2"])
        let up = try await eventually(timeout: .seconds(150)) { child.standardError.contains("workers up") }
        try #require(up, "\(child.standardError.suffix(2000))")
        let workers = Self.children(of: child.process.pid)
        #expect(workers.count == 2, "\(workers)")
        let status = try await child.stop(signal: SIGINT, timeout: .seconds(30))
        #expect(status == 130, "\(child.standardError.suffix(1000))")
        #expect(
            try await eventually(timeout: .seconds(10)) { workers.allSatisfy { kill($0, 0) != 0 } },
            "still running: \(workers.filter { kill($0, 0) == 0 })")
        // Its own workers only: `killOrphanedWorkers` would kill another run's too.
        for worker in workers where kill(worker, 0) == 0 { kill(worker, SIGKILL) }
    }

    /// The processes whose parent is `pid` (from /proc).
    static func children(of pid: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let child = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? child : nil
        }
    }

    static func killOrphanedWorkers() {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
            else { continue }
            let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            let chaosWorker =
                arguments.contains("run")
                && arguments.contains { $0.contains("/cancel-worker-chaos-") && $0.hasSuffix("/worker.json") }
            if chaosWorker { kill(pid, SIGKILL) }
        }
    }

    /// Whether `standardError` is librdkafka's mock coordinator aborting on its own assertion.
    static func mockCoordinatorAborted(_ standardError: String) -> Bool {
        standardError.contains("rdkafka_mock_cgrp.c") && standardError.contains("Assertion")
    }
}
