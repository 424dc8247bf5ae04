import Foundation
import Sandbox
import Synchronization

/// A `cancel-worker run` child process, for benchmarks and chaos runs, or the benchmark's
/// Kafka floor (`cancel-worker bench-pipe`). Its stderr goes to a log file in `directory`.
struct WorkerProcess: Sendable {
    let process: Process
    let id: String
    /// The worker's metrics port; nil for the pipe, which has none.
    let port: Int?
    let log: URL

    static func start(
        executable: String, config: URL, id: String, directory: URL, settings: [String] = []
    ) throws -> WorkerProcess {
        let port = try freePort()
        return try Self.start(
            executable: executable,
            arguments: ["run", "--config", config.path, "--set", "worker-id=\(id)", "--set", "http.port=\(port)"]
                + settings.flatMap { ["--set", $0] }, id: id, port: port, directory: directory)
    }

    /// `cancel-worker bench-pipe` in the consumer group `group`.
    static func startPipe(
        executable: String, bootstrap: String, group: String, fetchWait: Duration, id: String, directory: URL
    ) throws -> WorkerProcess {
        try Self.start(
            executable: executable,
            arguments: [
                "bench-pipe", "--bootstrap-servers", bootstrap, "--group-id", group, "--fetch-wait-milliseconds",
                String(fetchWait.milliseconds),
            ], id: id, port: nil, directory: directory)
    }

    /// Any program as a fleet's process (the two above; tests).
    static func start(
        executable: String, arguments: [String], id: String, port: Int?, directory: URL
    ) throws -> WorkerProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CANCEL_WORKER_") }
        process.currentDirectoryURL = directory
        process.standardOutput = FileHandle.nullDevice
        let log = directory.appendingPathComponent("\(id).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        let worker = WorkerProcess(process: process, id: id, port: port, log: log)
        Self.started.withLock { $0.append(worker) }
        return worker
    }

    /// Every process started in this process (Foundation starts each in a group of its own, so
    /// a Ctrl-C at the terminal does not reach them).
    private static let started = Mutex<[WorkerProcess]>([])

    /// Kills every process this process started and that still runs: what an interrupted chaos
    /// or bench run must do before it exits, or its workers keep running.
    static func killEveryStarted() {
        for worker in Self.started.withLock({ $0 }) { worker.signal(SIGKILL) }
    }

    var isRunning: Bool { self.process.isRunning }

    func signal(_ signal: Int32) {
        if self.process.isRunning { kill(self.process.processIdentifier, signal) }
    }

    /// Waits until the worker owns partitions (its metrics say so; the pipe's log line).
    func waitUntilAssigned(timeout: Duration = .seconds(90)) async throws -> Bool {
        guard let port = self.port else {
            let deadline = ContinuousClock.now + timeout
            while !self.logTail.contains(KafkaPipe.assignedLine) {
                guard ContinuousClock.now < deadline, self.isRunning else { return false }
                try await Task.sleep(for: .milliseconds(100))
            }
            return true
        }
        return try await BenchRunner.waitForMetric(port: port, "cancel_worker_assigned_partitions", timeout: timeout) {
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
