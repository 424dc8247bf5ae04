public import CancelCore
public import Foundation
import GRDB
import Logging

/// The embedded ledger: one SQLite file (WAL mode) on the worker's disk, for a single node.
///
/// Writes use **group commit** (``GroupCommit``, one writer): operations that arrive while a
/// transaction is being written wait, then go together in the next one, so a busy worker pays
/// one transaction per batch, not per operation. Reads (`entry(for:)`) never wait for writes.
public final class SQLiteLedger: IdempotencyLedger, Sendable {
    private let writer: any DatabaseWriter
    /// Where batches are written (`write`): a serial queue of its own, so its thread is one of
    /// libdispatch's overcommit threads, as GRDB's writer queue's were, not one the cooperative
    /// pool's `…default-qos` threads are counted with (the bench's CPU by thread).
    private let writeQueue = DispatchQueue(label: "cancel-worker.sqlite-writer")
    /// Operations waiting for the next transaction (one transaction is written at a time).
    private let pending: GroupCommit<Operation>
    /// Operations per transaction, at most.
    public var maxBatch: Int { self.pending.maxBatch }

    /// A queued operation: `apply` runs inside the batch's transaction and returns how to
    /// answer the caller once the transaction committed; `fail` answers if it did not.
    private struct Operation: Sendable {
        let apply: @Sendable (Database) throws -> @Sendable () -> Void
        let fail: @Sendable (any Error) -> Void
    }

    /// Opens (or creates) the ledger at `path`; `":memory:"` keeps it in memory (tests).
    /// A transaction of fewer than `lingerBelow` operations waits up to `linger` after the last
    /// one committed, for more to share it, while operations arrive at `lingerFrom` per `linger`
    /// or faster (``GroupCommit``): by default 2 per 2 ms, about 500 commands a second, each
    /// making two (its claim, its completion). A `linger` of zero writes each batch at once.
    public init(
        path: String, maxBatch: Int = 512, linger: Duration = .milliseconds(2), lingerBelow: Int = 64,
        lingerFrom: Int = 2
    ) throws {
        self.pending = GroupCommit(
            maxBatch: maxBatch, writers: 1, linger: linger, lingerBelow: lingerBelow, lingerFrom: lingerFrom)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            // WAL without an fsync per commit: a power loss may lose the last transactions,
            // a crash of the process does not (docs/operations.md, "SQLite durability").
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            if path == ":memory:" {
                self.writer = try DatabaseQueue(configuration: configuration)
            } else {
                let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                self.writer = try Self.openPool(path: path, configuration: configuration)
            }
            try self.writer.write { db in
                // A file a newer version wrote (`user_version` above ours) may hold states or
                // columns this one does not know: read as they are, an unknown state would be
                // claimable. Refused; files before the stamp (0) are this layout.
                let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                guard version <= Self.layoutVersion else {
                    throw NewerLayout(version: version, supported: Self.layoutVersion)
                }
                try db.execute(
                    sql: """
                        CREATE TABLE IF NOT EXISTS cancel_ledger (
                            id INTEGER PRIMARY KEY,
                            key TEXT NOT NULL UNIQUE,
                            state TEXT NOT NULL,
                            owner TEXT,
                            lease_until INTEGER,
                            attempts INTEGER NOT NULL DEFAULT 0,
                            fence INTEGER NOT NULL DEFAULT 0,
                            fingerprint TEXT,
                            dead_letters INTEGER NOT NULL DEFAULT 0,
                            outcome BLOB,
                            created_at INTEGER NOT NULL,
                            updated_at INTEGER NOT NULL
                        );
                        CREATE INDEX IF NOT EXISTS cancel_ledger_created_at ON cancel_ledger (created_at);
                        DROP INDEX IF EXISTS cancel_ledger_updated_at;
                        CREATE TABLE IF NOT EXISTS cancel_pacing (
                            provider TEXT NOT NULL,
                            account TEXT NOT NULL,
                            until INTEGER NOT NULL,
                            PRIMARY KEY (provider, account)
                        ) WITHOUT ROWID;
                        """)
                // Ledgers created before fencing tokens existed gain the column (every key at 0:
                // its next claim gets 1).
                let columns = try db.columns(in: "cancel_ledger").map(\.name)
                if !columns.contains("fence") {
                    try db.execute(sql: "ALTER TABLE cancel_ledger ADD COLUMN fence INTEGER NOT NULL DEFAULT 0")
                }
                if !columns.contains("fingerprint") {
                    try db.execute(sql: "ALTER TABLE cancel_ledger ADD COLUMN fingerprint TEXT")
                }
                if version < Self.layoutVersion {
                    try db.execute(sql: "PRAGMA user_version = \(Self.layoutVersion)")
                }
            }
        } catch {
            throw LedgerError.unavailable("SQLite \(path): \(error)")
        }
    }

    /// The file layout this version writes and reads (`PRAGMA user_version`); one more with
    /// each change an older version could not read.
    public static let layoutVersion = 1

    /// A file whose layout version is above `layoutVersion`.
    struct NewerLayout: Error, CustomStringConvertible {
        let version: Int
        let supported: Int
        var description: String {
            "the file's layout version is \(self.version), written by a newer cancel-worker; this one reads up to "
                + "\(self.supported): run the newer version, or point ledger.url at another file"
        }
    }

    /// Opens the file, retrying for up to 10 s while another connection holds its lock. GRDB
    /// switches a new file to WAL as it opens it, and SQLite answers that switch `SQLITE_BUSY` at
    /// once, without the busy timeout, while another connection opens the same file: three chaos
    /// workers starting together on a new ledger had one exit with "database is locked".
    private static func openPool(path: String, configuration: Configuration) throws -> DatabasePool {
        let deadline = ContinuousClock.now + .seconds(10)
        var delay = 0.01
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && ContinuousClock.now < deadline
            {
                Thread.sleep(forTimeInterval: delay * Double.random(in: 0.5...1.5))
                delay = min(delay * 2, 0.2)
            }
        }
    }

    // MARK: IdempotencyLedger

    public func claim(
        key: String, owner: String, fingerprint: String?, lease: Duration, now: Date, sendIfNew: Bool
    ) async throws -> (result: ClaimResult, sent: Bool) {
        try await self.transact { db in
            // A new key (nearly every claim) in one statement: the rules' entry for a key without
            // one, inserted unless a row exists; only then is the row read and the rules applied.
            let new = LedgerRules.claim(
                nil, key: key, owner: owner, fingerprint: fingerprint, lease: lease, now: now, sendIfNew: sendIfNew)
            if let entry = new.store, try Self.insertNew(db, entry) { return (new.result, new.sent) }
            let (store, result, sent) = LedgerRules.claim(
                try Self.fetch(db, key), key: key, owner: owner, fingerprint: fingerprint, lease: lease, now: now,
                sendIfNew: sendIfNew)
            if let store { try Self.save(db, store) }
            return (result, sent)
        }
    }

    public func markSent(key: String, owner: String, fence: Int, lease: Duration, now: Date) async throws -> LedgerEntry
    {
        try await self.transact { db in
            let entry = try LedgerRules.markSent(
                try Self.fetch(db, key), key: key, owner: owner, fence: fence, lease: lease, now: now)
            try Self.save(db, entry)
            return entry
        }
    }

    public func renew(key: String, owner: String, fence: Int, lease: Duration, now: Date) async throws -> LedgerEntry {
        try await self.transact { db in
            let entry = try LedgerRules.renew(
                try Self.fetch(db, key), key: key, owner: owner, fence: fence, lease: lease, now: now)
            try Self.save(db, entry)
            return entry
        }
    }

    public func complete(key: String, owner: String, fence: Int, outcome: [UInt8], now: Date) async throws {
        try await self.transact { db in
            // `LedgerRules.complete` for the claim that holds the key, in one statement; anything
            // else (a repeat, a lost claim) reads the row and lets the rules answer.
            try db.cachedStatement(
                sql: """
                    UPDATE cancel_ledger SET state = 'completed', outcome = ?, owner = NULL, lease_until = NULL,
                        updated_at = ?
                    WHERE key = ? AND owner = ? AND fence = ? AND state IN ('claimed', 'sent')
                    """
            ).execute(arguments: [Data(outcome), Self.millis(now), key, owner, fence])
            if db.changesCount == 1 { return }
            if let entry = try LedgerRules.complete(
                try Self.fetch(db, key), key: key, owner: owner, fence: fence, outcome: outcome, now: now)
            {
                try Self.save(db, entry)
            }
        }
    }

    public func markPublished(key: String, now: Date) async throws {
        try await self.transact { db in
            try Self.save(db, try LedgerRules.markPublished(try Self.fetch(db, key), key: key, now: now))
        }
    }

    public func markPublished(keys: [String], now: Date) async throws {
        try await self.transact { db in
            // `LedgerRules.markPublished` as one statement per key, without reading the row
            // first: the batch's keys are nearly always done, and a key that is not is left as
            // it is by the WHERE clause.
            let statement = try db.cachedStatement(
                sql: """
                    UPDATE cancel_ledger SET state = 'published', updated_at = ?
                    WHERE key = ? AND state IN ('completed', 'published')
                    """)
            let millis = Self.millis(now)
            for key in keys { try statement.execute(arguments: [millis, key]) }
        }
    }

    public func release(
        key: String, owner: String, fence: Int, deadLettered: Bool, callNotSent: Bool, now: Date
    ) async throws {
        try await self.transact { db in
            try Self.save(
                db,
                try LedgerRules.release(
                    try Self.fetch(db, key), key: key, owner: owner, fence: fence, deadLettered: deadLettered,
                    callNotSent: callNotSent, now: now)
            )
        }
    }

    public func entry(for key: String) async throws -> LedgerEntry? {
        do {
            return try await self.writer.read { db in try Self.fetch(db, key) }
        } catch {
            throw LedgerError.unavailable("SQLite read: \(error)")
        }
    }

    /// Entries not updated since `cutoff` are among those created before it: the purge looks
    /// them up by `created_at`, whose index is written once per key, where one on `updated_at`
    /// was moved by each of a key's writes (issue 14). A key whose writer's clock ran behind
    /// its creator's (`updated_at` below `created_at`) waits for the cutoff to pass
    /// `created_at` too.
    public func purge(updatedBefore cutoff: Date, limit: Int) async throws -> Int {
        try await self.transact { db in
            try db.execute(
                sql:
                    "DELETE FROM cancel_ledger WHERE key IN (SELECT key FROM cancel_ledger WHERE created_at < ? AND updated_at < ? LIMIT ?)",
                arguments: [Self.millis(cutoff), Self.millis(cutoff), limit]
            )
            return db.changesCount
        }
    }

    public func recordPause(_ pause: PacingPause, now: Date) async throws {
        try await self.transact { db in
            try db.execute(sql: "DELETE FROM cancel_pacing WHERE until <= ?", arguments: [Self.millis(now)])
            try db.execute(
                sql: """
                    INSERT INTO cancel_pacing (provider, account, until) VALUES (?, ?, ?)
                    ON CONFLICT (provider, account) DO UPDATE SET until = max(until, excluded.until)
                    """,
                arguments: [pause.provider, pause.account ?? Self.everyAccount, Self.millis(pause.until)]
            )
        }
    }

    public func pauses(activeAt now: Date) async throws -> [PacingPause] {
        do {
            return try await self.writer.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT provider, account, until FROM cancel_pacing WHERE until > ?",
                    arguments: [Self.millis(now)]
                ).map { row in
                    let account: String = row["account"]
                    return PacingPause(
                        provider: row["provider"], account: account == Self.everyAccount ? nil : account,
                        until: Self.date(row["until"]))
                }
            }
        } catch {
            throw LedgerError.unavailable("SQLite read: \(error)")
        }
    }

    /// The `account` column of a provider-wide pause (account names are never empty).
    static let everyAccount = ""

    /// Closes the file once the batches already handed to the writer are written: SQLite
    /// checkpoints its log into the file, and a copy made after this returns is whole. (Before,
    /// the file closed whenever the last batch's block let go of it, on the writer's thread: the
    /// bench copied its ledger template meanwhile, and a worker found the copy "malformed" in
    /// fresh-clone CI run 91.) Operations after it fail.
    public func shutdown() async {
        await withCheckedContinuation { (written: CheckedContinuation<Void, Never>) in
            self.writeQueue.async { written.resume() }
        }
        // Still in use (a read in progress): it closes when the last reference goes.
        try? self.writer.close()
    }

    // MARK: Group commit

    /// Runs `body` inside the next write transaction, together with whatever else is queued.
    private func transact<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let answer = PendingAnswer<T>()
        let operation = Operation(
            apply: { db in
                // A rule violation (lease lost…) fails this operation only, not the batch; it
                // throws before writing anything.
                do {
                    let value = try body(db)
                    return { answer.set(.success(value)) }
                } catch let error as LedgerError {
                    return { answer.set(.failure(error)) }
                }
            },
            fail: { error in answer.set(.failure(error)) }
        )
        await self.pending.submit(operation) { batch in await self.write(batch) }
        return try await answer.value()
    }

    /// Writes one batch in one transaction, on `writeQueue`'s thread (GRDB's synchronous access
    /// runs there, the writer queue being free: no thread hop more than its async API takes),
    /// and answers once the access is over.
    ///
    /// No task's cancellation reaches it: the batch is written by whichever caller found the
    /// writer's place free (`GroupCommit`), and holds other callers' operations too. With GRDB's
    /// async API, that caller's cancellation (a worker stopping, a cancelled purge) interrupted
    /// the batch and failed every later one it wrote, other callers' claims and marks included.
    private func write(_ batch: [Operation]) async {
        let writer = self.writer
        let answers: Result<[@Sendable () -> Void], any Error> = await withCheckedContinuation { continuation in
            self.writeQueue.async {
                continuation.resume(
                    returning: Result {
                        try writer.writeWithoutTransaction { db in
                            var answers: [@Sendable () -> Void] = []
                            try Self.inTransaction(db) {
                                for operation in batch { answers.append(try operation.apply(db)) }
                            }
                            return answers
                        }
                    })
            }
        }
        switch answers {
        case .success(let answers):
            for answer in answers { answer() }
        case .failure(let error):
            // The transaction failed as a whole (disk full, I/O error): nothing landed.
            let failure = LedgerError.unavailable("SQLite write: \(error)")
            for operation in batch { operation.fail(failure) }
        }
    }

    /// `db.inTransaction(.immediate)` with its `BEGIN` and `COMMIT` prepared once per connection:
    /// GRDB parses both again for every transaction, which was 7.6 % of the writer's samples at
    /// 1,000 commands/s, where each transaction holds few operations (issue 14). An error rolls
    /// the whole transaction back and is thrown.
    static func inTransaction(_ db: Database, _ body: () throws -> Void) throws {
        try db.cachedStatement(sql: "BEGIN IMMEDIATE TRANSACTION").execute()
        do {
            try body()
            try db.cachedStatement(sql: "COMMIT TRANSACTION").execute()
        } catch {
            // SQLite may have rolled back already (SQLITE_FULL, SQLITE_IOERR…); then there is nothing to undo.
            if db.isInsideTransaction { try? db.rollback() }
            throw error
        }
    }

    // MARK: Rows

    private static func fetch(_ db: Database, _ key: String) throws -> LedgerEntry? {
        // Cached statements: every ledger operation runs this and `save`, and compiling the SQL
        // each time (GRDB's authorizer walks every column) cost more than the writes themselves.
        // Columns by position, not by name: GRDB resolves a name with a case-insensitive search
        // (a `lowercased()` per column per read, ~1.4 % of the worker's CPU; issue 14).
        let statement = try db.cachedStatement(
            sql: """
                SELECT key, state, owner, lease_until, attempts, fence, fingerprint, dead_letters, outcome,
                    created_at, updated_at
                FROM cancel_ledger WHERE key = ?
                """)
        guard let row = try Row.fetchOne(statement, arguments: [key]) else { return nil }
        let outcome: Data? = row[8]
        let leaseUntil: Int64? = row[3]
        return LedgerEntry(
            key: row[0],
            state: LedgerState(rawValue: row[1]) ?? .claimed,
            owner: row[2],
            leaseUntil: leaseUntil.map(Self.date),
            attempts: row[4],
            fence: row[5],
            fingerprint: row[6],
            deadLetters: row[7],
            outcome: outcome.map { Array($0) },
            createdAt: Self.date(row[9]),
            updatedAt: Self.date(row[10])
        )
    }

    /// Inserts `entry` unless its key has a row; whether it did.
    private static func insertNew(_ db: Database, _ entry: LedgerEntry) throws -> Bool {
        try db.cachedStatement(
            sql: """
                INSERT INTO cancel_ledger (key, state, owner, lease_until, attempts, fence, fingerprint, dead_letters, outcome, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)
                ON CONFLICT (key) DO NOTHING
                """
        ).execute(
            arguments: [
                entry.key, entry.state.rawValue, entry.owner, entry.leaseUntil.map(Self.millis), entry.attempts,
                entry.fence, entry.fingerprint, entry.deadLetters, Self.millis(entry.createdAt),
                Self.millis(entry.updatedAt),
            ]
        )
        return db.changesCount == 1
    }

    private static func save(_ db: Database, _ entry: LedgerEntry) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO cancel_ledger (key, state, owner, lease_until, attempts, fence, fingerprint, dead_letters, outcome, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET state = excluded.state, owner = excluded.owner,
                    lease_until = excluded.lease_until, attempts = excluded.attempts, fence = excluded.fence,
                    fingerprint = excluded.fingerprint,
                    dead_letters = excluded.dead_letters,
                    outcome = excluded.outcome, updated_at = excluded.updated_at
                """
        ).execute(
            arguments: [
                entry.key, entry.state.rawValue, entry.owner, entry.leaseUntil.map(Self.millis), entry.attempts,
                entry.fence,
                entry.fingerprint, entry.deadLetters, entry.outcome.map { Data($0) }, Self.millis(entry.createdAt),
                Self.millis(entry.updatedAt),
            ]
        )
    }

    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }
}
