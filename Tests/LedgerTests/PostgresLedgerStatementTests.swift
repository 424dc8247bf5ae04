import CancelCore
import CancelWorkerTesting
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import Ledger

/// A statement PostgreSQL does not answer must not hold its caller for good.
///
/// PostgresNIO 1.33.2 never completes a query written to a connection that has just closed (a
/// probe, 2026-11-28: `connect`, `close`, then `query("SELECT 1")` was still waiting after 5 s;
/// the write fails on the closed channel with no promise to fail). A connection that closes
/// between its lease and the write — the pool shutting down, the server restarting, the
/// network dropping it — so left a ledger statement, and the group-commit writer behind it,
/// waiting forever: CI on 12d7464 saw one claim of "cancelled at random points of its start"
/// never return. A table locked elsewhere gives the same silence on demand.
@Suite("PostgreSQL ledger: a statement without an answer ends after the statement timeout")
struct PostgresLedgerStatementTests {
    /// Holds an ACCESS EXCLUSIVE lock on `cancel_ledger` from a connection of its own until
    /// `release` is set: every ledger statement waits for it, as for a server that went silent.
    static func withTableLocked(
        _ url: String, _ body: @escaping @Sendable () async throws -> Void
    ) async throws {
        let client = PostgresClient(configuration: try LedgerFactory.postgresConfiguration(url))
        let locked = OneShot<Void>()
        let release = OneShot<Void>()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            group.addTask {
                try await client.withConnection { connection in
                    try await connection.query("BEGIN", logger: PostgresLedgerShutdownTests.logger)
                    try await connection.query(
                        "LOCK TABLE cancel_ledger IN ACCESS EXCLUSIVE MODE", logger: PostgresLedgerShutdownTests.logger)
                    locked.set(())
                    _ = await release.wait()
                    try await connection.query("ROLLBACK", logger: PostgresLedgerShutdownTests.logger)
                }
            }
            #expect(await locked.wait(timeout: .seconds(30)) != nil, "the lock was taken")
            do {
                try await body()
            } catch {
                release.set(())
                throw error
            }
            release.set(())
            // The lock's task ends after its ROLLBACK; then the client stops.
            try await group.next()
            group.cancelAll()
        }
    }

    /// A running ledger with a 1 s statement timeout on a database of its own (`url`).
    static func withLedger(_ body: @escaping (PostgresLedger, String) async throws -> Void) async throws {
        guard let url = Store.postgresURL else { return }
        try await PostgresLedgerShutdownTests.withOwnDatabase(url) { url in
            let ledger = PostgresLedger(
                configuration: try LedgerFactory.postgresConfiguration(url), logger: PostgresLedgerShutdownTests.logger,
                statementTimeout: .seconds(1))
            let service = Task { try await ledger.run() }
            defer { service.cancel() }
            try await body(ledger, url)
        }
    }

    /// `key` claimed by owner `w` (nil, and an issue recorded, if the claim did not take it).
    static func claimed(_ ledger: PostgresLedger, _ key: String, lease: Duration) async throws -> LedgerEntry? {
        guard case .claimed(let entry) = try await ledger.claim(key: key, owner: "w", lease: lease, now: Date()) else {
            Issue.record("the first claim took the key")
            return nil
        }
        return entry
    }

    @Test(
        "regression: claims and a mark-sent the server does not answer fail as unavailable within the timeout; the ledger works on"
    )
    func unansweredStatement() async throws {
        try await Self.withLedger { ledger, url in
            guard let held = try await Self.claimed(ledger, "held", lease: .seconds(60)) else { return }
            try await Self.withTableLocked(url) {
                let started = ContinuousClock.now
                let finished = OneShot<[String]>()
                // In a task of its own: statements that never end are reported (and end when the
                // lock goes, after this body), not waited for.
                Task {
                    finished.set(await Self.attempts(ledger, fence: held.fence))
                }
                let answers = await finished.wait(timeout: .seconds(20))
                let waited = ContinuousClock.now - started
                #expect(answers != nil, "the statements were still waiting after 20 s")
                #expect(answers?.count ?? 5 == 5)
                // The server's statement_timeout usually answers first; the watch otherwise.
                for answer in answers ?? [] {
                    #expect(
                        answer.contains("no answer within 1") || answer.contains("statement timeout"), "\(answer)")
                }
                // 1 s, and the sweep that notices it (a quarter of the timeout); the rest is room
                // for a loaded machine.
                #expect(waited < .seconds(10), "the statements ended after \(waited)")
            }
            // The lock is gone: the same ledger works.
            guard case .claimed = try await ledger.claim(key: "after", owner: "w", lease: .seconds(60), now: Date())
            else {
                Issue.record("a claim after the lock took its key")
                return
            }
        }
    }

    @Test(
        "review finding: statements the ledger stopped waiting for end on the server too: none commits once the lock goes"
    )
    func abandonedStatementsEndOnTheServer() async throws {
        try await Self.withLedger { ledger, url in
            guard let first = try await Self.claimed(ledger, "K", lease: .milliseconds(1)) else { return }
            try await Self.withTableLocked(url) {
                // Claims of the expired key, each answered `unavailable` after the timeout.
                for _ in 0..<4 {
                    do {
                        _ = try await ledger.claim(key: "K", owner: "w", lease: .seconds(60), now: Date())
                        Issue.record("a claim got through the lock")
                    } catch {}
                }
                // Before: still queued behind the lock, each on a connection of the pool.
                try await Task.sleep(for: .seconds(1))
            }
            try await Task.sleep(for: .seconds(1))
            let entry = try #require(try await ledger.entry(for: "K"))
            #expect(entry.fence == first.fence, "claims abandoned by their callers committed later")
        }
    }

    @Test("the server's statement_timeout is a little under the ledger's, within PostgreSQL's range")
    func serverTimeout() {
        #expect(PostgresLedger.serverTimeoutMilliseconds(.seconds(10)) == 9_000)
        #expect(PostgresLedger.serverTimeoutMilliseconds(.milliseconds(50)) == 100)
        #expect(PostgresLedger.serverTimeoutMilliseconds(.seconds(9_000_000_000)) == Int64(Int32.max))
    }

    @Test(
        "review finding: a batch is retried key by key only when the server refused the statement, not when it went away"
    )
    func refusals() {
        for state in ["40P01", "40001", "23505", "22P02"] {
            #expect(PostgresLedger.refusesTheStatement(state), "\(state)")
        }
        // An administrator's shutdown, a cancelled statement (statement_timeout), a lost connection.
        for state in ["57P01", "57P02", "57P03", "57014", "08006", "53300"] {
            #expect(!PostgresLedger.refusesTheStatement(state), "\(state)")
        }
        #expect(!PostgresLedger.refusesTheStatement(nil))
    }

    @Test("the watch fails only statements past their deadline; once stopped, all of them and every later one")
    func watch() {
        let watch = StatementWatch()
        let ended = Mutex<[String]>([])
        let now = ContinuousClock.now
        func start(_ name: String, after: Duration) -> Int? {
            try? watch.start(deadline: now + after) { abandoned in
                let why =
                    switch abandoned {
                    case .timedOut: "timed out"
                    case .stopped(let error): "\(error)"
                    }
                ended.withLock { $0.append("\(name): \(why)") }
            }.get()
        }
        let early = start("early", after: .seconds(1))
        _ = start("late", after: .seconds(5))
        let answered = start("answered", after: .seconds(1))
        #expect(early != nil && answered != nil && watch.count == 3)
        watch.finish(answered!)
        watch.expire(at: now + .seconds(2))
        #expect(ended.withLock { $0 } == ["early: timed out"])
        watch.expire(at: now + .seconds(2))
        watch.stop(.unavailable("stopped"))
        #expect(ended.withLock { $0 } == ["early: timed out", "late: ledger unavailable: stopped"])
        #expect(start("after", after: .seconds(1)) == nil && watch.count == 0)
    }

    /// Four claims (one batch or two) and a mark-sent of `held`, at once: what each answered.
    static func attempts(_ ledger: PostgresLedger, fence: Int) async -> [String] {
        await withTaskGroup(of: String.self) { group in
            for index in 0..<4 {
                group.addTask {
                    do {
                        _ = try await ledger.claim(key: "k\(index)", owner: "w", lease: .seconds(60), now: Date())
                        return "claimed"
                    } catch {
                        return "\(error)"
                    }
                }
            }
            group.addTask {
                do {
                    _ = try await ledger.markSent(
                        key: "held", owner: "w", fence: fence, lease: .seconds(60), now: Date())
                    return "sent"
                } catch {
                    return "\(error)"
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
    }
}

/// The purge deletes keys written before the retention's cutoff; one that a claim wrote again
/// while the purge waited for its row is in use, and stays.
@Suite("PostgreSQL ledger: the purge and a claim of the same old key")
struct PostgresPurgeRaceTests {
    @Test(
        "regression: a key written again while the purge waited for its row is not deleted (the age is checked on the row as it is then)"
    )
    func rewrittenWhileWaiting() async throws {
        guard let url = Store.postgresURL else { return }
        try await PostgresLedgerShutdownTests.withOwnDatabase(url) { url in
            let logger = PostgresLedgerShutdownTests.logger
            let ledger = PostgresLedger(configuration: try LedgerFactory.postgresConfiguration(url), logger: logger)
            let service = Task { try await ledger.run() }
            defer { service.cancel() }
            // Released eight days ago and not done since: older than a week's retention.
            let old = Date().addingTimeInterval(-8 * 86_400)
            guard
                case .claimed(let entry) = try await ledger.claim(key: "old", owner: "a", lease: .seconds(60), now: old)
            else {
                Issue.record("the claim took the key")
                return
            }
            try await ledger.release(key: "old", owner: "a", fence: entry.fence, deadLettered: false, now: old)
            let client = PostgresClient(configuration: try LedgerFactory.postgresConfiguration(url))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                try await client.withConnection { connection in
                    // Another worker's claim of the key, holding its row while the purge starts.
                    try await connection.query("BEGIN", logger: logger)
                    try await connection.query(
                        "SELECT key FROM cancel_ledger WHERE key = 'old' FOR UPDATE", logger: logger)
                    let purge = Task {
                        try await ledger.purge(updatedBefore: Date().addingTimeInterval(-7 * 86_400), limit: 10)
                    }
                    try await Task.sleep(for: .milliseconds(500))
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    try await connection.query(
                        "UPDATE cancel_ledger SET owner = 'b', fence = fence + 1, updated_at = \(now) WHERE key = 'old'",
                        logger: logger)
                    try await connection.query("COMMIT", logger: logger)
                    let purged = try await purge.value
                    #expect(purged == 0, "the purge deleted \(purged) key(s)")
                }
                group.cancelAll()
            }
            let kept = try await ledger.entry(for: "old")
            #expect(kept?.owner == "b", "the key the other worker holds: \(String(describing: kept))")
        }
    }
}

/// A batch holds several callers' operations; the caller that writes it may be cancelled.
@Suite("PostgreSQL ledger: a cancelled writer")
struct PostgresCancelledWriterTests {
    @Test("a caller whose task is cancelled while it writes a batch: the claims queued behind it still land")
    func cancelledWriter() async throws {
        guard let url = Store.postgresURL else { return }
        try await PostgresLedgerShutdownTests.withOwnDatabase(url) { url in
            let ledger = PostgresLedger(
                configuration: try LedgerFactory.postgresConfiguration(url), logger: PostgresLedgerShutdownTests.logger)
            let service = Task { try await ledger.run() }
            defer { service.cancel() }
            _ = try await ledger.claim(key: "warm-up", owner: "w", lease: .seconds(60), now: Date())
            let queued = OneShot<String>()
            try await PostgresLedgerStatementTests.withTableLocked(url) {
                // Two writers' places: the first two claims write; the third queues behind them.
                let writers = (0..<2).map { index in
                    Task {
                        try await ledger.claim(key: "writer-\(index)", owner: "w", lease: .seconds(60), now: Date())
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
                Task {
                    do {
                        queued.set(
                            "\(try await ledger.claim(key: "queued", owner: "w", lease: .seconds(60), now: Date()))")
                    } catch {
                        queued.set("failed: \(error)")
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
                for writer in writers { writer.cancel() }
                try await Task.sleep(for: .milliseconds(300))
            }
            let answer = await queued.wait(timeout: .seconds(30))
            #expect(answer?.hasPrefix("claimed") == true, "the queued caller got \(answer ?? "nothing")")
            #expect(try await ledger.entry(for: "queued") != nil)
        }
    }
}
