import CancelCore
import CancelWorkerTesting
import Foundation
import Ledger
import Logging
import Sandbox
import ServiceLifecycle
import Synchronization
import Testing

/// The PostgreSQL ledger's `run()` must end when its task is cancelled (a worker's shutdown),
/// whatever it is doing then: connecting, creating the schema, retrying an unreachable server,
/// with statements waiting for it.
///
/// PostgresNIO 1.33.2 never answers a query written to a connection that has just closed, as
/// the pool's shutdown closes them: before `abandonedOnCancel`, 8 and 16 of 60 such rounds did
/// not return within 20 s (the local full suite, under load, hung in every PostgreSQL
/// conformance test), and before statements were watched (``PostgresLedgerStatementTests``) a
/// claim still stayed unanswered now and then (CI on 12d7464: 1 round of 40; locally 1 of
/// 1,200 with four runs at once, none of 4,800 after).
@Suite("PostgreSQL ledger: run() ends when cancelled, whatever it is doing")
struct PostgresLedgerShutdownTests {
    static let logger: Logger = {
        var logger = Logger(label: "ledger-shutdown-tests")
        logger.logLevel = .critical
        return logger
    }()

    /// Runs the ledger's service, cancels it after `after`, and says whether `run()` and the
    /// statements returned within `within` (they run in a task of their own, so what does not
    /// return is reported, not waited for).
    static func runReturns(
        url: String, after: Duration, within: Duration = .seconds(20), statements: Int = 0
    ) async throws -> Bool {
        try await Self.stuck(url: url, after: after, within: within, statements: statements) == nil
    }

    /// What did not return within `within` of the cancellation: nil if everything did, else
    /// whether `run()` did and how many statements did not (the first question when a round
    /// sticks: the service, or a statement).
    static func stuck(
        url: String, after: Duration, within: Duration = .seconds(20), statements: Int = 0
    ) async throws -> String? {
        let made = try LedgerFactory.make(url: url, logger: Self.logger)
        let returned = OneShot<Void>()
        let runReturned = OneShot<Void>()
        let answered = Answered()
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    try? await made.service?.run()
                    runReturned.set(())
                }
                for index in 0..<statements {
                    group.addTask {
                        _ = try? await made.ledger.claim(
                            key: "shutdown-\(UUID())-\(index)", owner: "o", lease: .seconds(10), now: Date())
                        answered.count.add(1, ordering: .relaxed)
                    }
                }
                await group.waitForAll()
            }
            returned.set(())
        }
        try await Task.sleep(for: after)
        task.cancel()
        guard await returned.wait(timeout: within) == nil else { return nil }
        let run = runReturned.value == nil ? "run() did not return" : "run() returned"
        return "\(run), \(statements - answered.count.load(ordering: .relaxed)) of \(statements) statements unanswered"
    }

    /// Runs `body` with the URL of a database of its own, dropped afterwards: the schema's
    /// advisory lock (per database) of the many ledgers started here is not one the
    /// conformance tests, running meanwhile, wait for.
    static func withOwnDatabase(_ url: String, _ body: (String) async throws -> Void) async throws {
        let database = "shutdown_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = url.replacingOccurrences(of: "/cancel_worker_test", with: "/postgres")
        func psql(_ statement: String) async throws -> Int32? {
            try await SpawnedProcess(executable: "/usr/bin/psql", arguments: [admin, "-qc", statement]).waitForExit(
                timeout: .seconds(30))
        }
        #expect(try await psql("CREATE DATABASE \(database)") == 0)
        try await body(url.replacingOccurrences(of: "/cancel_worker_test", with: "/\(database)"))
        _ = try await psql("DROP DATABASE \(database) WITH (FORCE)")
    }

    @Test("cancelled at random points of its start, 40 times, with statements waiting: run() returns each time")
    func cancelledWhileStarting() async throws {
        guard let url = Store.postgresURL else { return }
        try await Self.withOwnDatabase(url) { url in
            var stuck: [String] = []
            for round in 0..<40 {
                let delay = Duration.milliseconds(Int.random(in: 0...40))
                if let what = try await Self.stuck(url: url, after: delay, statements: round % 2 == 0 ? 0 : 8) {
                    stuck.append("round \(round): \(what)")
                }
            }
            #expect(stuck.isEmpty, "rounds that did not return: \(stuck)")
        }
    }

    @Test("no server: cancelled while it retries, run() returns")
    func cancelledWhileRetrying() async throws {
        let (fd, port) = try listeningSocket()
        close(fd)  // nothing listens there now
        #expect(
            try await Self.runReturns(
                url: "postgres://ledger:secret@127.0.0.1:\(port)/ledger", after: .milliseconds(1_500), statements: 4))
    }

    @Test("a server that accepts and never answers: cancelled while it connects, run() returns")
    func cancelledWhileConnecting() async throws {
        let (fd, port) = try listeningSocket()
        defer { close(fd) }
        #expect(
            try await Self.runReturns(
                url: "postgres://ledger:secret@127.0.0.1:\(port)/ledger", after: .milliseconds(1_500),
                statements: 4))
    }
}

/// Statements that returned, of a round's.
private final class Answered: Sendable {
    let count = Atomic<Int>(0)
}
