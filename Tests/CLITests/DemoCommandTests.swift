import Foundation
import Testing

@Suite("cancel-worker demo", .timeLimit(.minutes(3)))
struct DemoCommandTests {
    @Test("runs the whole system, prints the summary table and the replay, exits 0")
    func demo() async throws {
        let child = try ChildProcess(["demo"])
        #expect(try await child.waitForExit(timeout: .seconds(150)) == 0, "\(child.standardError.suffix(3000))")
        let output = child.lines.joined(separator: "\n")
        #expect(output.contains("outcomes by provider and status"))
        for provider in ["feee", "fungies", "taker", "fastpod", "futures"] {
            #expect(child.lines.contains { $0.hasPrefix(provider + " ") }, "a row for \(provider)")
        }
        #expect(output.contains("dead letters: 4 (invalid_command 1, retries_exhausted 3)"))
        #expect(output.contains("0 violations at the exchange"))
        #expect(output.contains("replayed                   3"))
        #expect(output.contains("before the replay: 3 commands failed (dead-lettered); after: 0"))
        #expect(output.contains("every command has exactly one terminal outcome"))
        // Review finding (DevTools): the README's first lines promised 53 commands and "an
        // unknown account" after the plan had changed; they say what the demo sends.
        let readme = try String(contentsOf: DeployTests.root.appendingPathComponent("README.md"), encoding: .utf8)
        let promised = readme.firstMatch(of: /(\d+) commands for all five providers/).map { String($0.1) }
        let sent = output.firstMatch(of: /sent \d+ records: (\d+) distinct commands/).map { String($0.1) }
        #expect(promised != nil && promised == sent, "README: \(promised ?? "-"), the demo: \(sent ?? "-")")
        #expect(!readme.contains("an unknown\naccount") && !readme.contains("an unknown account"))
    }
}
