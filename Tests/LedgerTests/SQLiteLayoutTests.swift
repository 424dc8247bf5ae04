import CancelCore
import Foundation
import GRDB
import Ledger
import Testing

/// The SQLite ledger's table layouts. A new file keeps its entries in arrival order (a rowid
/// table, the key in a unique index): a batch of new keys then appends to the table's last
/// pages instead of dirtying one random page per key, which halved the bytes written per
/// command (issue 14). Files created before keep their key-ordered layout (a `WITHOUT ROWID`
/// table keyed by the idempotency key) and work as they are; every statement serves both.
@Suite("SQLite ledger: table layouts")
struct SQLiteLayoutTests {
    /// The table as ledgers created before the arrival-order layout have it.
    static func createKeyOrdered(at path: String) throws {
        try FileManager.default.createDirectory(
            at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE cancel_ledger (
                        key TEXT PRIMARY KEY NOT NULL,
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
                    ) WITHOUT ROWID;
                    CREATE INDEX cancel_ledger_updated_at ON cancel_ledger (updated_at);
                    """)
        }
    }

    /// The `CREATE TABLE` statement of the file's ledger table.
    static func tableSQL(at path: String) throws -> String {
        try DatabaseQueue(path: path).read { db in
            try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = 'cancel_ledger'") ?? ""
        }
    }

    /// The names of the ledger table's own indexes (not those SQLite makes for constraints).
    static func indexes(at path: String) throws -> [String] {
        try DatabaseQueue(path: path).read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT name FROM sqlite_master
                    WHERE type = 'index' AND tbl_name = 'cancel_ledger' AND sql IS NOT NULL ORDER BY name
                    """)
        }
    }

    @Test("a new file keeps its entries in arrival order; claims of new keys are rows at its end")
    func newFileIsArrivalOrdered() async throws {
        try await withLedgerFile("layout") { path in
            let ledger = try SQLiteLedger(path: path)
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            let keys = ["zz-last-by-key", "aa-first-by-key", "mm-middle"]
            for key in keys {
                _ = try await ledger.claim(
                    key: key, owner: "w", fingerprint: nil, lease: .seconds(30), now: now, sendIfNew: true)
            }
            let sql = try Self.tableSQL(at: path)
            #expect(!sql.contains("WITHOUT ROWID") && sql.contains("id INTEGER PRIMARY KEY"))
            let stored = try await DatabaseQueue(path: path).read { db in
                try String.fetchAll(db, sql: "SELECT key FROM cancel_ledger ORDER BY rowid")
            }
            #expect(stored == keys)
        }
    }

    /// Review finding (SQLite ledger): a file a newer cancel-worker wrote was used as it is: a
    /// state this version does not know read as `claimed` (claimable: a second call), a column it
    /// does not fill failed every batch. Files carry their layout's version now.
    @Test("review finding: a file of a newer layout is refused by name; a file is stamped with its version")
    func newerLayoutRefused() async throws {
        try await withLedgerFile("layout") { path in
            let ledger = try SQLiteLedger(path: path)
            await ledger.shutdown()
            let version = try await DatabaseQueue(path: path).read { db in
                try Int.fetchOne(db, sql: "PRAGMA user_version")
            }
            #expect(version == SQLiteLedger.layoutVersion)
            try await DatabaseQueue(path: path).writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA user_version = \(SQLiteLedger.layoutVersion + 1)")
            }
            do {
                let newer = try SQLiteLedger(path: path)
                await newer.shutdown()
                Issue.record("a newer layout was opened")
            } catch {
                #expect("\(error)".contains("newer cancel-worker") && "\(error)".contains(path), "\(error)")
            }
        }
    }

    @Test("a key-ordered file of an earlier version is used as it is, not rewritten")
    func keyOrderedFileStays() async throws {
        try await withLedgerFile("layout") { path in
            try Self.createKeyOrdered(at: path)
            let ledger = try SQLiteLedger(path: path)
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            let claimed = try await ledger.claim(
                key: "k", owner: "w", fingerprint: "f", lease: .seconds(30), now: now, sendIfNew: true)
            guard case .claimed(let entry) = claimed.result else {
                Issue.record("not claimed: \(claimed.result)")
                return
            }
            try await ledger.complete(key: "k", owner: "w", fence: entry.fence, outcome: Array("o".utf8), now: now)
            #expect(try await ledger.entry(for: "k")?.state == .completed)
            #expect(try Self.tableSQL(at: path).contains("WITHOUT ROWID"))
        }
    }

    /// The conversion docs/operations.md gives (between `sqlite3 ledger.db <<'SQL'` and `SQL`).
    static func documentedConversion() throws -> String {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/operations.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        guard let start = text.range(of: "sqlite3 ledger.db <<'SQL'\n"),
            let end = text.range(of: "\nSQL\n", range: start.upperBound..<text.endIndex)
        else { return "" }
        return String(text[start.upperBound..<end.lowerBound])
    }

    @Test(
        "the conversion docs/operations.md gives turns a key-ordered file into the arrival-order layout, entries intact"
    )
    func documentedConversionWorks() async throws {
        try await withLedgerFile("layout") { path in
            try Self.createKeyOrdered(at: path)
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            do {
                let ledger = try SQLiteLedger(path: path)
                for (index, key) in ["c", "a", "b"].enumerated() {
                    let claimed = try await ledger.claim(
                        key: key, owner: "w", fingerprint: "f-\(key)", lease: .seconds(30),
                        now: now + Double(index), sendIfNew: true)
                    guard case .claimed(let entry) = claimed.result else { continue }
                    if key != "b" {
                        try await ledger.complete(
                            key: key, owner: "w", fence: entry.fence, outcome: Array("o-\(key)".utf8), now: now)
                    }
                }
                // Closed before the conversion opens the file: a ledger left to its deinit closes
                // it on its writer's thread whenever that lets go, and the conversion's open found
                // the database locked (a loaded CI run).
                await ledger.shutdown()
            }
            let conversion = try Self.documentedConversion()
            #expect(conversion.contains("CREATE TABLE cancel_ledger_new"))
            // sqlite3 runs the script as it is, BEGIN and COMMIT included.
            try await DatabaseQueue(path: path).writeWithoutTransaction { db in try db.execute(sql: conversion) }
            #expect(!(try Self.tableSQL(at: path)).contains("WITHOUT ROWID"))

            let ledger = try SQLiteLedger(path: path)
            for key in ["a", "c"] {
                let entry = try await ledger.entry(for: key)
                #expect(entry?.state == .completed && entry?.outcome == Array("o-\(key)".utf8))
                #expect(entry?.fingerprint == "f-\(key)")
            }
            #expect(try await ledger.entry(for: "b")?.state == .sent)
            let order = try await DatabaseQueue(path: path).read { db in
                try String.fetchAll(db, sql: "SELECT key FROM cancel_ledger ORDER BY rowid")
            }
            #expect(order == ["c", "a", "b"], "in arrival order")
            let again = try await ledger.claim(
                key: "d", owner: "w", fingerprint: nil, lease: .seconds(30), now: now, sendIfNew: true)
            #expect(again.sent)
            #expect(try Self.indexes(at: path) == ["cancel_ledger_created_at"])
        }
    }

    @Test(
        "a file of an earlier version trades its index on updated_at for one on created_at, and purges look entries up by it"
    )
    func purgeIndex() async throws {
        for earlier in [false, true] {
            try await withLedgerFile("layout") { path in
                if earlier { try Self.createKeyOrdered(at: path) }
                if earlier { #expect(try Self.indexes(at: path) == ["cancel_ledger_updated_at"]) }
                let ledger = try SQLiteLedger(path: path)
                #expect(try Self.indexes(at: path) == ["cancel_ledger_created_at"], "earlier file: \(earlier)")
                // The purge's own lookup, as the ledger runs it.
                let plan = try await DatabaseQueue(path: path).read { db in
                    try Row.fetchAll(
                        db,
                        sql: """
                            EXPLAIN QUERY PLAN
                            DELETE FROM cancel_ledger WHERE key IN
                            (SELECT key FROM cancel_ledger WHERE created_at < 1 AND updated_at < 1 LIMIT 10)
                            """
                    ).map { $0["detail"] as String? ?? "" }
                }
                #expect(plan.contains { $0.contains("USING INDEX cancel_ledger_created_at") }, "\(plan)")
                let now = Date(timeIntervalSince1970: 1_800_000_000)
                _ = try await ledger.claim(key: "old", owner: "w", lease: .seconds(1), now: now)
                #expect(try await ledger.purge(updatedBefore: now + 1, limit: 10) == 1)
                #expect(try await ledger.entry(for: "old") == nil)
            }
        }
    }
}

/// `body` with the path of a ledger file in a new temporary directory (`prefix`-…), removed after.
func withLedgerFile(_ prefix: String, _ body: (String) async throws -> Void) async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID())")
    defer { try? FileManager.default.removeItem(at: directory) }
    try await body(directory.appendingPathComponent("ledger.db").path)
}
