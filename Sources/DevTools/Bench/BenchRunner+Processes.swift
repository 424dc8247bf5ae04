import CancelCore
import Foundation
import Histogram
import Kafka
import Logging
import Sandbox
import Synchronization

/// Child programs for benchmarks and chaos runs: finding and running them off the cooperative
/// pool, free ports, and waiting for a worker's metric.
extension BenchRunner {
    static func which(_ program: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Runs a program to its end (off the cooperative pool); its standard output.
    static func run(_ executable: String, _ arguments: [String]) async throws -> String {
        try await offThePool { try Self.runBlocking(executable, arguments) }
    }

    private static func runBlocking(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// Polls a worker's metric until `condition` holds.
    static func waitForMetric(
        port: Int, _ name: String, timeout: Duration, _ condition: (Double) -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let curl = Self.which("curl") {
                let text = try await Self.run(curl, ["-sf", "--max-time", "2", "http://127.0.0.1:\(port)/metrics"])
                let value = text.split(separator: "\n").filter { $0.hasPrefix(name + " ") }.compactMap {
                    Double($0.split(separator: " ").last ?? "")
                }.first
                if let value, condition(value) { return true }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }
}
