import CancelWorkerTesting
import Foundation
import Synchronization

/// A `cancel-worker` (or other) process started by a test, with its output captured line by line.
final class ChildProcess: Sendable {
    let process: SpawnedProcess
    /// What `/proc/self/fd` names this process's two pipes in the test process (`pipe:[inode]`):
    /// unique while open, so a test can tell they were closed.
    let pipeNames: [String]
    private let output = CapturedOutput()

    private final class CapturedOutput: Sendable {
        let lines = Mutex<[String]>([])
        let partial = Mutex<String>("")
        let all = Mutex<String>("")
        let errors = Mutex<String>("")
        /// How many of the two pipes were read to their end.
        let ended = Mutex(0)
    }

    /// The `cancel-worker` binary next to the test bundle.
    static var cancelWorkerPath: String {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return executable.deletingLastPathComponent().appendingPathComponent("cancel-worker").path
    }

    init(
        _ arguments: [String], executable: String = ChildProcess.cancelWorkerPath, environment: [String: String] = [:]
    ) throws {
        let out = try SpawnedProcess.pipe()
        let err = try SpawnedProcess.pipe()
        self.process = try SpawnedProcess(
            executable: executable, arguments: arguments,
            environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new },
            standardOutput: out.write.fileDescriptor, standardError: err.write.fileDescriptor)
        // The child has its copies: without closing ours, the pipes would never reach their end.
        try out.write.close()
        try err.write.close()
        self.pipeNames = [out, err].compactMap { openDescriptorTarget($0.read.fileDescriptor) }
        let captured = self.output
        // Each pipe is read to its end on a thread of its own and closed there. (Readability
        // handlers kept both pipes open after the process ended; a test run that starts hundreds
        // of processes then ran out of descriptors, and Foundation trapped or hung making a pipe.)
        Self.readToEnd(out.read, captured) { data in
            captured.all.withLock { $0 += String(decoding: data, as: UTF8.self) }
            captured.partial.withLock { text in
                text += String(decoding: data, as: UTF8.self)
                while let newline = text.firstIndex(of: "\n") {
                    let line = String(text[..<newline])
                    text.removeSubrange(...newline)
                    captured.lines.withLock { $0.append(line) }
                }
            }
        }
        Self.readToEnd(err.read, captured) { data in
            captured.errors.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
    }

    /// Reads `handle` until end of file on a dedicated thread (never the cooperative pool), then closes it.
    private static func readToEnd(
        _ handle: FileHandle, _ captured: CapturedOutput, _ body: @escaping @Sendable (Data) -> Void
    ) {
        let reader = Thread {
            while case let data = handle.availableData, !data.isEmpty {
                body(data)
            }
            try? handle.close()
            captured.ended.withLock { $0 += 1 }
        }
        reader.start()
    }

    var lines: [String] { self.output.lines.withLock { $0 } }
    /// Standard output as it came, so far.
    var standardOutput: String { self.output.all.withLock { $0 } }
    var standardError: String { self.output.errors.withLock { $0 } }
    /// Whether both pipes were read to their end (the process and every process that inherited
    /// them closed them).
    var outputEnded: Bool { self.output.ended.withLock { $0 == 2 } }

    /// Waits for the first line of standard output.
    func firstLine(timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = self.lines.first { return line }
            if !self.process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ChildProcessError.noOutput(self.standardError)
    }

    /// Waits until the process handles or ignores `signal` (its `SigCgt` or `SigIgn` mask in
    /// `/proc/<pid>/status`): before that, the signal's default action ends it, whatever its code
    /// would do. Whether it does before `timeout`.
    func waitUntilTrapping(_ signal: Int32, timeout: Duration = .seconds(30)) async throws -> Bool {
        let bit = UInt64(1) << UInt64(signal - 1)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline && self.process.isRunning {
            let status = (try? String(contentsOfFile: "/proc/\(self.process.pid)/status", encoding: .utf8)) ?? ""
            let masks = status.split(separator: "\n").filter { $0.hasPrefix("SigCgt:") || $0.hasPrefix("SigIgn:") }
                .compactMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
            if masks.contains(where: { $0 & bit != 0 }) { return true }
            try await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    /// Sends a signal and waits for the exit status.
    func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(30)) async throws -> Int32 {
        self.process.send(signal)
        return try await self.waitForExit(timeout: timeout)
    }

    func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32 {
        guard let status = try await self.process.waitForExit(timeout: timeout) else {
            self.process.send(SIGKILL)
            _ = self.process.waitBlocking()
            throw ChildProcessError.timedOut(self.standardError)
        }
        return status
    }

    deinit {
        if self.process.isRunning {
            self.process.send(SIGKILL)
            _ = self.process.waitBlocking()
        }
    }
}

enum ChildProcessError: Error {
    case noOutput(String)
    case timedOut(String)
}

/// Runs a program to its end and returns its exit status and standard output. Never blocks a
/// thread of the cooperative pool; a program still running after `timeout` is killed and
/// `ChildProcessError.timedOut` thrown.
func runProgram(
    _ executable: String, _ arguments: [String], timeout: Duration = .seconds(60)
) async throws -> (status: Int32, output: String) {
    let child = try ChildProcess(arguments, executable: executable)
    let status = try await child.waitForExit(timeout: timeout)
    // The output may still be on its way through the pipe.
    let deadline = ContinuousClock.now + .seconds(10)
    while !child.outputEnded && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    return (status, child.standardOutput)
}

/// What a descriptor of this process refers to (`pipe:[inode]`, a path, `socket:[inode]`).
func openDescriptorTarget(_ fd: Int32) -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")
}

/// What every open descriptor of this process refers to.
func openDescriptorTargets() -> Set<String> {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return Set(names.compactMap { Int32($0).flatMap(openDescriptorTarget) })
}

/// The path of a program on PATH, if installed.
func which(_ program: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let path = "\(directory)/\(program)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// Fetches a URL with curl (nil if it could not connect).
func fetch(_ url: String) async -> String? {
    guard let curl = which("curl"),
        let (status, output) = try? await runProgram(curl, ["-sf", "--max-time", "2", url], timeout: .seconds(10)),
        status == 0
    else { return nil }
    return output
}

/// The sum of a metric's samples on a worker's /metrics (nil if unreachable or absent).
func metric(port: Int, _ name: String) async -> Double? {
    guard let text = await fetch("http://127.0.0.1:\(port)/metrics") else { return nil }
    let values = text.split(separator: "\n").filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }.compactMap
    { Double($0.split(separator: " ").last ?? "") }
    return values.isEmpty ? nil : values.reduce(0, +)
}

/// Polls a metric until `condition` holds (60 s at most).
func eventuallyMetric(
    port: Int, _ name: String, timeout: Duration = .seconds(60), _ condition: (Double) -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let value = await metric(port: port, name), condition(value) { return true }
        try await Task.sleep(for: .milliseconds(200))
    }
    return false
}
