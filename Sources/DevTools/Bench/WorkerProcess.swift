import Foundation

/// A `cancel-worker run` child process, for benchmarks and chaos runs. Its stderr goes to a
/// log file in `directory`.
struct WorkerProcess: Sendable {
    let process: Process
    let id: String
    let port: Int
    let log: URL

    static func start(
        executable: String, config: URL, id: String, directory: URL, settings: [String] = []
    ) throws -> WorkerProcess {
        let port = try BenchRunner.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments =
            ["run", "--config", config.path, "--set", "worker-id=\(id)", "--set", "http.port=\(port)"]
            + settings.flatMap { ["--set", $0] }
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CANCEL_WORKER_") }
        process.currentDirectoryURL = directory
        process.standardOutput = FileHandle.nullDevice
        let log = directory.appendingPathComponent("\(id).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        return WorkerProcess(process: process, id: id, port: port, log: log)
    }

    var isRunning: Bool { self.process.isRunning }

    func signal(_ signal: Int32) {
        if self.process.isRunning { kill(self.process.processIdentifier, signal) }
    }

    /// Waits until the worker owns partitions (its metrics say so).
    func waitUntilAssigned(timeout: Duration = .seconds(90)) async throws -> Bool {
        try await BenchRunner.waitForMetric(port: self.port, "cancel_worker_assigned_partitions", timeout: timeout) {
            $0 > 0
        }
    }

    var stats: ProcessStats? { ProcessStats.read(pid: self.process.processIdentifier) }

    /// The end of the worker's standard error, for a failure message.
    var logTail: String {
        let text = (try? String(contentsOf: self.log, encoding: .utf8)) ?? ""
        return String(text.suffix(1_500))
    }
}
