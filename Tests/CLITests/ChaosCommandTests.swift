import Foundation
import Testing

@Suite("cancel-worker chaos (short run)", .timeLimit(.minutes(5)))
struct ChaosCommandTests {
    @Test("workers killed with SIGKILL, a broker outage, provider faults: every invariant holds")
    func chaos() async throws {
        let child = try ChildProcess(["chaos", "--seconds", "30"])
        let status = try await child.waitForExit(timeout: .seconds(280))
        let output = child.lines.joined(separator: "\n")
        #expect(status == 0, "\(output)\n\(child.standardError.suffix(2000))")
        #expect(output.contains("workers killed with SIGKILL and restarted, 1 broker outage(s)"))
        #expect(output.contains("1 worker(s) paused with SIGSTOP"))
        #expect(child.lines.filter { $0.hasPrefix("  ok ") }.count == 6, "\(output)")
        #expect(!output.contains("FAIL"))
    }
}
