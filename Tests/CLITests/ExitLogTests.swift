import CancelWorkerTesting
import Foundation
import Testing

/// The worker's JSON log lines are written by a thread of their own (`JSONLogSink`): the lines a
/// worker logs as it stops must still reach standard error before the process ends.
@Suite("a stopping worker's last log lines", .timeLimit(.minutes(3)))
struct ExitLogTests {
    @Test("SIGTERM: the worker exits 0 and its last line, \"worker stopped\", is on standard error")
    func lastLinesWritten() async throws {
        try await ProcessFleet.with { fleet in
            let worker = try ChildProcess(
                fleet.arguments(workerID: "exit-log", ledgerURL: "memory:", extra: ["log.level": "info"]))
            let started = try await eventually(timeout: .seconds(60)) {
                worker.standardError.contains("\"message\":\"partitions assigned\"")
            }
            #expect(started, "\(worker.standardError.suffix(2000))")
            #expect(try await worker.waitUntilTrapping(SIGTERM))
            let status = try await worker.stop(signal: SIGTERM)
            #expect(status == 0, "\(worker.standardError.suffix(2000))")
            let lines = worker.standardError.split(separator: "\n")
            let last = try #require(lines.last { $0.hasPrefix("{") })
            let object = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
            #expect(object["message"] as? String == "worker stopped", "\(worker.standardError.suffix(2000))")
        }
    }
}
