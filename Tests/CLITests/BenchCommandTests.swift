import Foundation
import Testing

@Suite("cancel-worker bench (small scenarios p, a and h)", .timeLimit(.minutes(4)))
struct BenchCommandTests {
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
        // `--fetch-wait` reaches the workers (and the pipe) of every scenario.
        #expect(
            child.standardError.contains("600 commands (workers' fetch.wait.max.ms 20)"),
            "\(child.standardError.suffix(2000))")
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
        let progress = child.standardError
        #expect(progress.contains("second 4, a worker joins; 3 running"), "\(progress.suffix(2000))")
        #expect(progress.contains("second 8, a worker leaves; 1 running"), "\(progress.suffix(2000))")
    }
}
