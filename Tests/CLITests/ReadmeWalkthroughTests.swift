import CancelWorkerTesting
import Foundation
import Synchronization
import Testing

/// The README's five-minute walkthrough, run as a newcomer would: its commands verbatim, and
/// its expected output checked, so the manual cannot rot.
@Suite("The README walkthrough runs as written", .timeLimit(.minutes(3)))
struct ReadmeWalkthroughTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The text of the first fenced block between `<!-- name:start -->` and `<!-- name:end -->`.
    static func block(_ name: String, in readme: String) throws -> [String] {
        let section = try #require(
            readme.components(separatedBy: "<!-- \(name):start -->").dropFirst().first?.components(
                separatedBy: "<!-- \(name):end -->"
            ).first,
            "the README has a \(name) section"
        )
        let fenced = section.components(separatedBy: "```").dropFirst().first ?? ""
        // Drop the fence's language tag line.
        var lines = fenced.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().map(String.init)
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    /// Whether `line` matches `pattern`, where `…` stands for any text.
    static func matches(_ line: String, _ pattern: String) -> Bool {
        let parts = pattern.components(separatedBy: "…")
        var rest = Substring(line)
        for (index, part) in parts.enumerated() {
            if index == 0 {
                guard rest.hasPrefix(part) else { return false }
                rest = rest.dropFirst(part.count)
            } else if index == parts.count - 1 {
                return part.isEmpty || rest.hasSuffix(part)
            } else {
                guard let range = rest.range(of: part) else { return false }
                rest = rest[range.upperBound...]
            }
        }
        return rest.isEmpty
    }

    @Test("the walkthrough's commands, run verbatim, print what it promises")
    func walkthrough() async throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let commands = try Self.block("walkthrough", in: readme)
        let expected = try Self.block("walkthrough-output", in: readme).filter { !$0.isEmpty }
        #expect(commands.count >= 8 && expected.count >= 2)
        // Verbatim, but for two things: the build is the test's own (so `swift build` is not
        // run inside `swift test`), and the binary is the one this test bundle was built with.
        let script = commands.filter { !$0.hasPrefix("swift build") }.joined(separator: "\n")
            .replacingOccurrences(of: ".build/debug/cancel-worker", with: ChildProcess.cancelWorkerPath)
        #expect(
            !script.contains("sleep 1;") && !script.contains("sleep 2"),
            "no fixed sleeps: the walkthrough waits for readiness")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "walkthrough-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("walkthrough.sh")
        let session = directory.appendingPathComponent("session")
        // The script notes its session id first: everything it starts shares it, and is stopped
        // at the end whether the walkthrough stopped it or not.
        try ("echo $$ > '\(session.path)'\nset -e\n" + script + "\n").write(to: file, atomically: true, encoding: .utf8)

        let output = try SpawnedProcess.pipe()
        let process = try SpawnedProcess(
            executable: "/usr/bin/setsid", arguments: ["--wait", "bash", file.path], directory: Self.root.path,
            standardOutput: output.write.fileDescriptor, standardError: output.write.fileDescriptor)
        try output.write.close()
        let collected = Collected()
        output.read.readabilityHandler = { handle in collected.append(handle.availableData) }
        let deadline = ContinuousClock.now + .seconds(120)
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        let finished = !process.isRunning
        if let leader = (try? String(contentsOf: session, encoding: .utf8)).flatMap({
            Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }) {
            kill(-leader, SIGKILL)
        }
        if !finished { process.send(SIGTERM) }
        // Whatever is still in the pipe (never a blocking read: a leftover could hold it open).
        try await Task.sleep(for: .milliseconds(300))
        output.read.readabilityHandler = nil
        let text = collected.text
        #expect(finished, "the walkthrough ends by itself within 120 s; its output:\n\(text)")
        if finished { #expect(process.terminationStatus == 0, "the walkthrough's commands succeed; output:\n\(text)") }
        // Nothing but what it promises: no log noise from the tools (warnings and worse only).
        for line in text.split(separator: "\n") where !expected.contains(where: { Self.matches(String(line), $0) }) {
            Issue.record("the walkthrough printed a line the README does not show: \(line)")
        }
        // The expected output, line by line and in order (`…`: whatever varies).
        var lines = text.split(separator: "\n").map(String.init)[...]
        for pattern in expected {
            guard let index = lines.firstIndex(where: { Self.matches($0, pattern) }) else {
                Issue.record("the README promises a line like\n  \(pattern)\nbut the walkthrough printed:\n\(text)")
                break
            }
            lines = lines[(index + 1)...]
        }
    }

    @Test("… matches any text, the rest literally")
    func wildcard() {
        #expect(Self.matches("sent fastpod-1001 2@0", "sent fastpod-1001 …"))
        #expect(Self.matches(#"{"a":1,"status":"cancelled","z":2}"#, #"{…"status":"cancelled",…}"#))
        #expect(!Self.matches(#"{"status":"rejected"}"#, #"{…"status":"cancelled"…}"#))
        #expect(!Self.matches("sent other 1@0", "sent fastpod-1001 …"))
        #expect(Self.matches("exact", "exact") && !Self.matches("exact!", "exact"))
    }
}

/// Output gathered from a pipe's handler thread.
private final class Collected: Sendable {
    private let data = Mutex(Data())
    func append(_ chunk: Data) { self.data.withLock { $0.append(chunk) } }
    var text: String { self.data.withLock { String(decoding: $0, as: UTF8.self) } }
}
