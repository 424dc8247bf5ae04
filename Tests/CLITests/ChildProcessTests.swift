import CancelWorkerTesting
import Foundation
import Testing

/// The helper every process test starts its programs with.
@Suite("Child processes started by tests", .timeLimit(.minutes(2)))
struct ChildProcessTests {
    /// Regression: each ended `ChildProcess` left its two pipes open in the test process (the
    /// readability handlers kept them alive). The suite starts hundreds of processes; past the
    /// descriptor limit (1,024 on many CI machines) creating a pipe trapped, or hung the run.
    @Test("regression: a child process's output is captured to its end and its pipes are closed after it exits")
    func pipesClosedAfterExit() async throws {
        var pipes: [String] = []
        for index in 0..<5 {
            let child = try ChildProcess(["-c", "echo out-\(index); echo err-\(index) >&2"], executable: "/bin/sh")
            #expect(child.pipeNames.count == 2 && child.pipeNames.allSatisfy { $0.hasPrefix("pipe:") })
            pipes += child.pipeNames
            #expect(try await child.waitForExit(timeout: .seconds(20)) == 0)
            #expect(try await eventually(timeout: .seconds(10)) { child.lines == ["out-\(index)"] })
            #expect(try await eventually(timeout: .seconds(10)) { child.standardError == "err-\(index)\n" })
        }
        let names = pipes
        let closed = try await eventually(timeout: .seconds(20)) { openDescriptorTargets().isDisjoint(with: names) }
        #expect(closed, "still open: \(openDescriptorTargets().intersection(pipes).sorted())")
    }
}
