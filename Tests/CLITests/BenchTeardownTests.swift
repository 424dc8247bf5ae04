import Foundation
import Kafka
import Logging
import Testing

@testable import DevTools

/// The benchmark's waits are bounded and say why they ended: a process that ignores SIGTERM
/// is killed and reported, a run whose outcomes stop coming fails after the stall limit, and
/// the outcome reader's close never holds the run (CI once saw a bench print nothing for
/// 190 s after "sending 600 commands").
@Suite("bench: bounded waits at a scenario's end", .timeLimit(.minutes(2)))
struct BenchTeardownTests {
    private static func directory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-teardown-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// A Python process with SIGTERM unblocked and set to `disposition` (a test runner's
    /// children can inherit a blocked SIGTERM), which says so on standard error.
    private static func python(_ id: String, _ disposition: String, in directory: URL) throws -> WorkerProcess {
        try WorkerProcess.start(
            executable: "/usr/bin/python3",
            arguments: [
                "-c",
                "import signal, sys, time; signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM]); "
                    + "signal.signal(signal.SIGTERM, signal.\(disposition)); print('\(id) ready', file=sys.stderr, flush=True); time.sleep(60)",
            ], id: id, port: nil, directory: directory)
    }

    @Test("a process that ignores SIGTERM is killed after the bound and reported; one that stops is not")
    func terminateAllIsBounded() async throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fleet = BenchFleet()
        let deaf = try Self.python("deaf", "SIG_IGN", in: directory)
        let polite = try Self.python("polite", "SIG_DFL", in: directory)
        fleet.add(deaf)
        fleet.add(polite)
        for process in [deaf, polite] {  // their dispositions are set
            while !process.logTail.contains("ready") { try await Task.sleep(for: .milliseconds(50)) }
        }
        let started = ContinuousClock.now
        let stragglers = await fleet.terminateAll(within: .seconds(2))
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(stragglers.count == 1, "\(stragglers)")
        #expect(stragglers.first?.hasPrefix("deaf did not exit within 2.0 seconds of SIGTERM (killed)") == true)
        #expect(stragglers.first?.hasSuffix("deaf ready\n") == true, "the report carries the end of its log")
        #expect(fleet.running.isEmpty)
        #expect(fleet.describe().contains("deaf (exited"), "\(fleet.describe())")

        let calm = BenchFleet()
        let another = try Self.python("another", "SIG_DFL", in: directory)
        calm.add(another)
        while !another.logTail.contains("ready") { try await Task.sleep(for: .milliseconds(50)) }
        #expect(await calm.terminateAll(within: .seconds(10)) == [])
    }

    @Test("outcomes that stop coming end the wait after the stall limit, not the timeout; the reader stops at once")
    func stallEndsTheWait() async throws {
        var logger = Logger(label: "bench-teardown")
        logger.logLevel = .critical
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        _ = try await cluster.ensureTopics([KafkaNewTopic(name: "outcomes", partitions: 2)])
        let collector = try OutcomeCollector.make(
            bootstrap: cluster.bootstrapServers, topic: "outcomes", expected: 5, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await collector.run() }
            #expect(try await collector.waitUntilAssigned())
            let started = ContinuousClock.now
            let complete = try await collector.waitForAll(timeout: .seconds(60), stall: .seconds(2))
            let waited = ContinuousClock.now - started
            #expect(!complete)
            #expect(waited >= .seconds(2) && waited < .seconds(10), "\(waited)")
            collector.stop()
            try await group.waitForAll()
        }
        #expect(await collector.closed(within: .seconds(15)), "the reader's consumer closed")
    }
}
