import Foundation
import Testing

@Suite("cancel-worker bench (a small scenario a)", .timeLimit(.minutes(4)))
struct BenchCommandTests {
    /// The bench's workers start from the configuration it writes: that configuration must pass
    /// the checks `run` applies (the claim-lease rule refused it, and `make bench` stopped with
    /// "a worker did not join the group").
    @Test("regression: the bench's workers start, and scenario a prints its figures")
    func scenarioA() async throws {
        let child = try ChildProcess(["bench", "--scenarios", "a", "--factor", "0.02", "--skip-wrk"])
        let status = try await child.waitForExit(timeout: .seconds(200))
        let output = child.lines.joined(separator: "\n")
        #expect(status == 0, "\(output)\n\(child.standardError.suffix(2000))")
        #expect(output.contains("throughput/s") && output.contains("outcomes cancelled 600"), "\(output)")
    }
}
