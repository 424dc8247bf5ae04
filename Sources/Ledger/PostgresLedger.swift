public import CancelCore
public import Foundation
public import Logging
import NIOCore
import NIOSSL
public import PostgresNIO
public import ServiceLifecycle
import Synchronization

/// The ledger for fleets: one PostgreSQL table shared by every worker. Each operation is one
/// conditional statement (`INSERT … ON CONFLICT … WHERE lease ended`, `UPDATE … WHERE owner =`),
/// so the database arbitrates: two workers never both hold a key while a lease runs. Claims and
/// completions, one or two per command, use group commit (``GroupCommit``): those that arrive
/// while two statements are in flight go together in the next one, one multi-row statement
/// (`PostgresLedger+Batches.swift`).
///
/// It is a `Service`: run it in the same `ServiceGroup` as the worker, before it (services
/// stop in reverse order, so the ledger outlives the worker's drain). `run()` keeps the
/// connection pool and creates the schema; operations wait (up to `readyTimeout`) until then.
public final class PostgresLedger: IdempotencyLedger, Service, Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Claims and completions waiting for their statement: each batch is one multi-row statement
    /// (`unnest` of arrays), so PostgreSQL parses, plans and commits once per batch.
    let claims = GroupCommit<Claim>(maxBatch: 256, writers: 2)
    let completions = GroupCommit<Completion>(maxBatch: 256, writers: 2)
    /// Set once the schema exists, or `run()` ended; statements wait for it (at most
    /// `readyTimeout`).
    private let ready = OneShot<Void>()
    private let readyTimeout: Duration
    /// How long a statement may wait for its answer before it fails as unavailable.
    public let statementTimeout: Duration
    /// `statementTimeout` unless set (`ledger.statement-timeout`): far above a statement's usual
    /// milliseconds.
    public static let defaultStatementTimeout: Duration = .seconds(10)
    let statements = StatementWatch()

    public init(
        configuration: PostgresClient.Configuration, logger: Logger, readyTimeout: Duration = .seconds(30),
        statementTimeout: Duration = PostgresLedger.defaultStatementTimeout
    ) {
        var configuration = configuration
        // The server ends a statement the ledger stopped waiting for (`StatementWatch` answers
        // its caller `unavailable` at `statementTimeout`): an abandoned statement would otherwise
        // hold its connection, and may still commit, while its caller retries beside it.
        configuration.options.additionalStartupParameters.append(
            ("statement_timeout", String(Self.serverTimeoutMilliseconds(statementTimeout))))
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.logger = logger
        self.readyTimeout = readyTimeout
        self.statementTimeout = statementTimeout
    }

    public func run() async throws {
        defer {
            // Statements still waiting, and every later one, fail at once: nobody answers them
            // any more. Then those waiting for the schema wake, and find it so.
            self.statements.stop(.unavailable("PostgreSQL ledger stopped"))
            self.ready.set(())
        }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                await cancelWhenGracefulShutdown { await self.client.run() }
            }
            group.addTask {
                // Abandons statements past their deadline (a quarter of the timeout late, at most).
                let sweep = min(self.statementTimeout / 4, .seconds(1))
                try? await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        try await Task.sleep(for: sweep)
                        self.statements.expire(at: .now)
                    }
                }
            }
            var backoff: Duration = .milliseconds(200)
            while true {
                do {
                    // Watched like every statement (a query on a connection that just closed is
                    // never answered, ``StatementWatch``), and abandoned when cancelled: the
                    // watch ends only with this `run()`.
                    try await abandonedOnCancel { try await self.watched("schema") { try await self.migrate() } }
                    self.ready.set(())
                    self.logger.info("PostgreSQL ledger ready")
                    break
                } catch {
                    if Task.isCancelled || Task.isShuttingDownGracefully { return }
                    self.logger.warning(
                        "PostgreSQL ledger not reachable yet, retrying",
                        metadata: ["error": "\(String(reflecting: error))", "backoff": .stringConvertible(backoff)])
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(5))
                }
            }
        }
    }

    /// The server's `statement_timeout`, a little under `statementTimeout` (so the server's
    /// error, not the watch's, usually answers), in whole milliseconds.
    /// At most PostgreSQL's largest (`INT_MAX` ms, ~24 days).
    static func serverTimeoutMilliseconds(_ statementTimeout: Duration) -> Int64 {
        let (seconds, attoseconds) = statementTimeout.components
        let milliseconds = min(seconds, 3_000_000) * 1000 + attoseconds / 1_000_000_000_000_000
        return min(max(milliseconds * 9 / 10, 100), Int64(Int32.max))
    }

    /// Whether the schema is what this version writes, from the catalog alone: no lock on the
    /// tables, which the DDL below takes even when it changes nothing (`ALTER TABLE … IF NOT
    /// EXISTS` asks for an exclusive lock; a worker starting behind a long read of the table
    /// queued every other worker's writes behind it).
    private func schemaIsCurrent() async throws -> Bool {
        let rows = try await self.client.query(
            """
            SELECT (SELECT count(*) FROM information_schema.columns
                    WHERE table_schema = current_schema() AND table_name = 'cancel_ledger'
                      AND column_name IN ('fence', 'fingerprint')) = 2
               AND to_regclass('cancel_ledger_created_at') IS NOT NULL
               AND to_regclass('cancel_ledger_updated_at') IS NULL
               AND to_regclass('cancel_pacing') IS NOT NULL
            """, logger: self.logger)
        for try await current in rows.decode(Bool.self) { return current }
        return false
    }

    private func migrate() async throws {
        if try await self.schemaIsCurrent() { return }
        try await self.client.withTransaction(logger: self.logger) { connection in
            // A lock the DDL cannot get soon fails the attempt (retried with a backoff) rather
            // than queue every other worker's statements behind it.
            try await connection.query("SET LOCAL lock_timeout = '2s'", logger: self.logger)
            // An index built on a large table of an earlier version may take longer than a
            // statement's usual bound (`statement_timeout`, set per connection).
            try await connection.query("SET LOCAL statement_timeout = 0", logger: self.logger)
            // Workers start together: one of them creates the schema at a time.
            try await connection.query("SELECT pg_advisory_xact_lock(7204931)", logger: self.logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS cancel_ledger (
                    key TEXT PRIMARY KEY,
                    state TEXT NOT NULL,
                    owner TEXT,
                    lease_until BIGINT,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    fence BIGINT NOT NULL DEFAULT 0,
                    fingerprint TEXT,
                    dead_letters INTEGER NOT NULL DEFAULT 0,
                    outcome BYTEA,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """, logger: self.logger)
            // Tables created before fencing tokens existed gain the column.
            try await connection.query(
                "ALTER TABLE cancel_ledger ADD COLUMN IF NOT EXISTS fence BIGINT NOT NULL DEFAULT 0",
                logger: self.logger)
            try await connection.query(
                "ALTER TABLE cancel_ledger ADD COLUMN IF NOT EXISTS fingerprint TEXT", logger: self.logger)
            // Purges find old entries by `created_at`, written once per key: an index on
            // `updated_at`, which every write of a key moves, made each of them update the index
            // too (and, here, kept PostgreSQL from updating rows in place, HOT).
            try await connection.query(
                "CREATE INDEX IF NOT EXISTS cancel_ledger_created_at ON cancel_ledger (created_at)", logger: self.logger
            )
            try await connection.query("DROP INDEX IF EXISTS cancel_ledger_updated_at", logger: self.logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS cancel_pacing (
                    provider TEXT NOT NULL,
                    account TEXT NOT NULL,
                    until BIGINT NOT NULL,
                    PRIMARY KEY (provider, account)
                )
                """, logger: self.logger)
        }
    }

    // MARK: IdempotencyLedger

    /// The columns every statement returns, in the order `first` decodes them.
    static let columns =
        "key, state, owner, lease_until, attempts, fence, fingerprint, dead_letters, outcome, created_at, updated_at"

    public func claim(
        key: String, owner: String, fingerprint: String?, lease: Duration, now: Date, sendIfNew: Bool
    ) async throws -> (result: ClaimResult, sent: Bool) {
        let nowMillis = Self.millis(now)
        let claim = Claim(
            key: key, owner: owner, fingerprint: fingerprint,
            leaseUntil: Self.millis(now.addingTimeInterval(lease.timeInterval)), now: nowMillis, sendIfNew: sendIfNew)
        await self.claims.submit(claim) { batch in await self.write(claims: batch) }
        return try await claim.answer.value()
    }

    public func markSent(key: String, owner: String, fence: Int, lease: Duration, now: Date) async throws -> LedgerEntry
    {
        let nowMillis = Self.millis(now)
        let leaseUntil = Self.millis(now.addingTimeInterval(lease.timeInterval))
        let fence = Int64(fence)
        let entry = try await self.run("mark_sent") {
            try await Self.first(
                try await self.client.query(
                    """
                    UPDATE cancel_ledger SET state = 'sent', attempts = attempts + 1, lease_until = \(leaseUntil), updated_at = \(nowMillis)
                    WHERE key = \(key) AND owner = \(owner) AND fence = \(fence) AND state IN ('claimed', 'sent')
                    RETURNING \(unescaped: Self.columns)
                    """, logger: self.logger))
        }
        if let entry { return entry }
        throw try await self.refusal(key)
    }

    public func renew(key: String, owner: String, fence: Int, lease: Duration, now: Date) async throws -> LedgerEntry {
        let nowMillis = Self.millis(now)
        let leaseUntil = Self.millis(now.addingTimeInterval(lease.timeInterval))
        let fence = Int64(fence)
        let entry = try await self.run("renew") {
            try await Self.first(
                try await self.client.query(
                    """
                    UPDATE cancel_ledger SET lease_until = GREATEST(COALESCE(lease_until, 0), \(leaseUntil)), updated_at = \(nowMillis)
                    WHERE key = \(key) AND owner = \(owner) AND fence = \(fence) AND state IN ('claimed', 'sent')
                    RETURNING \(unescaped: Self.columns)
                    """, logger: self.logger))
        }
        if let entry { return entry }
        throw try await self.refusal(key)
    }

    public func complete(key: String, owner: String, fence: Int, outcome: [UInt8], now: Date) async throws {
        let completion = Completion(key: key, owner: owner, fence: fence, outcome: outcome, now: Self.millis(now))
        await self.completions.submit(completion) { batch in await self.write(completions: batch) }
        try await completion.answer.value()
    }

    public func markPublished(key: String, now: Date) async throws {
        let nowMillis = Self.millis(now)
        let entry = try await self.run("mark_published") {
            try await Self.first(
                try await self.client.query(
                    """
                    UPDATE cancel_ledger SET state = 'published', updated_at = \(nowMillis)
                    WHERE key = \(key) AND state IN ('completed', 'published')
                    RETURNING \(unescaped: Self.columns)
                    """, logger: self.logger))
        }
        if entry == nil { throw LedgerError.notClaimed(key: key) }
    }

    public func markPublished(keys: [String], now: Date) async throws {
        guard !keys.isEmpty else { return }
        let nowMillis = Self.millis(now)
        try await self.run("mark_published") {
            let rows = try await self.client.query(
                """
                UPDATE cancel_ledger SET state = 'published', updated_at = \(nowMillis)
                WHERE key = ANY(\(keys)) AND state IN ('completed', 'published')
                """, logger: self.logger)
            for try await _ in rows {}
        }
    }

    /// `callNotSent` as `LedgerRules.release`: the SET's expressions read the row as it was.
    public func release(
        key: String, owner: String, fence: Int, deadLettered: Bool, callNotSent: Bool, now: Date
    ) async throws {
        let nowMillis = Self.millis(now)
        let increment = deadLettered ? 1 : 0
        let unsent = callNotSent ? 1 : 0
        let fence = Int64(fence)
        let entry = try await self.run("release") {
            try await Self.first(
                try await self.client.query(
                    """
                    UPDATE cancel_ledger SET owner = NULL, lease_until = NULL, dead_letters = dead_letters + \(increment),
                        attempts = CASE WHEN \(unsent) = 1 AND state = 'sent' AND attempts > 0 THEN attempts - 1 ELSE attempts END,
                        state = CASE WHEN \(unsent) = 1 AND state = 'sent' AND attempts = 1 THEN 'claimed' ELSE state END,
                        updated_at = \(nowMillis)
                    WHERE key = \(key) AND owner = \(owner) AND fence = \(fence) AND state IN ('claimed', 'sent')
                    RETURNING \(unescaped: Self.columns)
                    """, logger: self.logger))
        }
        if entry == nil { throw try await self.refusal(key) }
    }

    public func entry(for key: String) async throws -> LedgerEntry? {
        let entry = try await self.run("entry") {
            try await Self.first(
                try await self.client.query(
                    """
                    SELECT \(unescaped: Self.columns) FROM cancel_ledger WHERE key = \(key)
                    """, logger: self.logger))
        }
        return entry
    }

    /// The age is checked again outside the subquery: under READ COMMITTED, a row that another
    /// worker's claim wrote while the DELETE waited for it is re-checked against the outer WHERE
    /// only, as it is after that write, so a key in use again is not deleted.
    public func purge(updatedBefore cutoff: Date, limit: Int) async throws -> Int {
        let cutoffMillis = Self.millis(cutoff)
        let limit = Int64(limit)
        let count = try await self.run("purge") {
            let rows = try await self.client.query(
                """
                DELETE FROM cancel_ledger WHERE key IN (
                    SELECT key FROM cancel_ledger WHERE created_at < \(cutoffMillis) AND updated_at < \(cutoffMillis) LIMIT \(limit))
                AND created_at < \(cutoffMillis) AND updated_at < \(cutoffMillis)
                RETURNING key
                """, logger: self.logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
        return count
    }

    public func recordPause(_ pause: PacingPause, now: Date) async throws {
        let nowMillis = Self.millis(now)
        let until = Self.millis(pause.until)
        let account = pause.account ?? Self.everyAccount
        try await self.run("pause") {
            try await self.client.withTransaction(logger: self.logger) { connection in
                try await connection.query("DELETE FROM cancel_pacing WHERE until <= \(nowMillis)", logger: self.logger)
                try await connection.query(
                    """
                    INSERT INTO cancel_pacing AS p (provider, account, until) VALUES (\(pause.provider), \(account), \(until))
                    ON CONFLICT (provider, account) DO UPDATE SET until = GREATEST(p.until, EXCLUDED.until)
                    """, logger: self.logger)
            }
        }
    }

    public func pauses(activeAt now: Date) async throws -> [PacingPause] {
        let nowMillis = Self.millis(now)
        return try await self.run("pauses") {
            let rows = try await self.client.query(
                "SELECT provider, account, until FROM cancel_pacing WHERE until > \(nowMillis)", logger: self.logger
            )
            var pauses: [PacingPause] = []
            for try await (provider, account, until) in rows.decode((String, String, Int64).self) {
                pauses.append(
                    PacingPause(
                        provider: provider, account: account == Self.everyAccount ? nil : account,
                        until: Self.date(until)))
            }
            return pauses
        }
    }

    /// The `account` column of a provider-wide pause (account names are never empty).
    static let everyAccount = ""

    public func shutdown() async {}

    // MARK: Helpers

    /// Why an update matched no row: the key is unknown, or someone else holds it.
    func refusal(_ key: String) async throws -> LedgerError {
        guard let current = try await self.entry(for: key) else { return .notClaimed(key: key) }
        return .leaseLost(key: key, heldBy: current.owner)
    }

    /// Waits until the schema exists, runs the statement, and turns database errors into
    /// `LedgerError.unavailable` (with PostgreSQL's message, never the connection password).
    /// `separatingRefusals`: an error the server answered the statement with (a deadlock, a
    /// constraint) is thrown as `Refused`, apart from the rest (no connection, no schema).
    ///
    /// The statement runs in a task of its own, watched (``StatementWatch``): without an answer
    /// within `statementTimeout`, or once the ledger stopped, the caller gets `unavailable` and
    /// the statement is abandoned. `body` reads the rows it needs: it must not hand out the
    /// sequence, whose reading would not be watched.
    func run<T: Sendable>(
        _ operation: String, separatingRefusals: Bool = false, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard await self.ready.wait(timeout: self.readyTimeout) != nil else {
            throw LedgerError.unavailable("PostgreSQL not reachable within \(self.readyTimeout)")
        }
        return try await self.watched(operation, separatingRefusals: separatingRefusals, body)
    }

    /// Runs `body` in a task of its own, watched by ``StatementWatch``, and answers what it
    /// answered, or `unavailable` once `statementTimeout` passed or the ledger stopped.
    package func watched<T: Sendable>(
        _ operation: String, separatingRefusals: Bool = false, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let answer = PendingAnswer<T>()
        let timeout = self.statementTimeout
        let watched = self.statements.start(deadline: .now + timeout) { abandoned in
            switch abandoned {
            case .timedOut:
                answer.set(.failure(LedgerError.unavailable("PostgreSQL \(operation): no answer within \(timeout)")))
            case .stopped(let error):
                answer.set(.failure(error))
            }
        }
        let id = try watched.get()
        let statement = Task {
            do {
                answer.set(.success(try await body()))
            } catch {
                answer.set(
                    .failure(Self.ledgerError(error, operation: operation, separatingRefusals: separatingRefusals)))
            }
            self.statements.finish(id)
        }
        return try await withTaskCancellationHandler {
            try await answer.value()
        } onCancel: {
            // A statement not yet sent is not sent; one sent still gets its answer (or its end).
            statement.cancel()
        }
    }

    /// A statement's error as the ledger throws it.
    static func ledgerError(_ error: any Error, operation: String, separatingRefusals: Bool) -> any Error {
        switch error {
        case let error as PSQLError:
            let reason = LedgerError.unavailable(
                "PostgreSQL \(operation): \(error.serverInfo?[.message] ?? "\(error.code)")")
            return separatingRefusals && Self.refusesTheStatement(error.serverInfo?[.sqlState])
                ? Refused(reason: reason) : reason
        case let error as LedgerError:
            return error
        default:
            return LedgerError.unavailable("PostgreSQL \(operation): \(error)")
        }
    }

    /// Whether a server error refuses the statement itself (a deadlock or serialization failure,
    /// a constraint, bad data: classes 40, 23, 22), so that its operations may go again one at a
    /// time; not a server going away (57: an administrator's shutdown, a cancelled statement;
    /// 08: the connection), after which trying each key again would wait once per key.
    static func refusesTheStatement(_ sqlState: String?) -> Bool {
        guard let sqlState else { return false }
        return ["40", "23", "22"].contains(String(sqlState.prefix(2)))
    }

    /// A statement the server answered with an error: unlike an unreachable server, the same
    /// operations one at a time may go through.
    struct Refused: Error {
        let reason: LedgerError
    }

    static func first(_ rows: PostgresRowSequence) async throws -> LedgerEntry? {
        for try await row in rows { return try Self.entry(row) }
        return nil
    }

    /// A row of `columns`.
    static func entry(_ row: PostgresRow) throws -> LedgerEntry {
        let (
            key, state, owner, leaseUntil, attempts, fence, fingerprint, deadLetters, outcome, createdAt, updatedAt
        ) = try row.decode(
            (String, String, String?, Int64?, Int32, Int64, String?, Int32, ByteBuffer?, Int64, Int64).self
        )
        return LedgerEntry(
            key: key,
            state: LedgerState(rawValue: state) ?? .claimed,
            owner: owner,
            leaseUntil: leaseUntil.map(Self.date),
            attempts: Int(attempts),
            fence: Int(fence),
            fingerprint: fingerprint,
            deadLetters: Int(deadLetters),
            outcome: outcome.map { Array($0.readableBytesView) },
            createdAt: Self.date(createdAt),
            updatedAt: Self.date(updatedAt)
        )
    }

    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }
}
