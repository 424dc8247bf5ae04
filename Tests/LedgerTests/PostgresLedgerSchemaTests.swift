import CancelCore
import CancelWorkerTesting
import Foundation
import Logging
import PostgresNIO
import Testing

@testable import Ledger

/// The PostgreSQL ledger's indexes. Purges find old entries by `created_at`, which is written
/// once per key; the index on `updated_at` that earlier versions made was moved by every write
/// of a key, and it kept PostgreSQL from updating rows in place (a HOT update needs every
/// indexed column unchanged), so each write also added an entry to the primary key's index
/// (issue 14).
@Suite("PostgreSQL ledger: indexes")
struct PostgresLedgerSchemaTests {
    /// Runs `body` with a client of its own on `url`.
    static func withClient(_ url: String, _ body: (PostgresClient) async throws -> Void) async throws {
        let client = PostgresClient(configuration: try LedgerFactory.postgresConfiguration(url))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await body(client)
        }
    }

    static func indexes(_ client: PostgresClient) async throws -> [String] {
        let rows = try await client.query(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'cancel_ledger' ORDER BY indexname",
            logger: PostgresLedgerShutdownTests.logger)
        var names: [String] = []
        for try await name in rows.decode(String.self) { names.append(name) }
        return names
    }

    /// How many rows of the ledger table were updated, and how many of them in place (HOT).
    static func updates(_ client: PostgresClient) async throws -> (updates: Int, inPlace: Int) {
        let rows = try await client.query(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'cancel_ledger'",
            logger: PostgresLedgerShutdownTests.logger)
        var counts = (updates: 0, inPlace: 0)
        for try await (updates, inPlace) in rows.decode((Int, Int).self) { counts = (updates, inPlace) }
        return counts
    }

    @Test(
        "review finding: a worker starting while a long read holds the table does not stall the running workers' writes"
    )
    func startBesideALongRead() async throws {
        guard let url = Store.postgresURL else { return }
        try await PostgresLedgerShutdownTests.withOwnDatabase(url) { url in
            let logger = PostgresLedgerShutdownTests.logger
            let running = PostgresLedger(
                configuration: try LedgerFactory.postgresConfiguration(url), logger: logger,
                statementTimeout: .seconds(2))
            let service = Task { try await running.run() }
            defer { service.cancel() }
            _ = try await running.claim(key: "before", owner: "a", lease: .seconds(60), now: Date())
            try await Self.withClient(url) { client in
                try await client.withConnection { connection in
                    // A report, a dump: a read of the table in a transaction that lasts.
                    try await connection.query("BEGIN", logger: logger)
                    try await connection.query("SELECT count(*) FROM cancel_ledger", logger: logger)
                    let starting = PostgresLedger(
                        configuration: try LedgerFactory.postgresConfiguration(url), logger: logger,
                        statementTimeout: .seconds(2))
                    let second = Task { try await starting.run() }
                    defer { second.cancel() }
                    try await Task.sleep(for: .milliseconds(500))
                    // Before: the new worker's ALTER TABLE queued for its exclusive lock, and this
                    // claim behind it ("no answer within 2 seconds").
                    let claimed = try await running.claim(key: "during", owner: "a", lease: .seconds(60), now: Date())
                    guard case .claimed = claimed else {
                        Issue.record("the claim did not take its key: \(claimed)")
                        return
                    }
                    _ = try await starting.claim(key: "second", owner: "b", lease: .seconds(60), now: Date())
                    try await connection.query("ROLLBACK", logger: logger)
                }
            }
        }
    }

    @Test(
        "a database of an earlier version trades its index on updated_at for one on created_at; a key's writes update its row in place"
    )
    func purgeIndex() async throws {
        guard let url = Store.postgresURL else { return }
        try await PostgresLedgerShutdownTests.withOwnDatabase(url) { url in
            try await Self.withClient(url) { client in
                // The schema as earlier versions made it.
                try await client.query(
                    """
                    CREATE TABLE cancel_ledger (
                        key TEXT PRIMARY KEY, state TEXT NOT NULL, owner TEXT, lease_until BIGINT,
                        attempts INTEGER NOT NULL DEFAULT 0, fence BIGINT NOT NULL DEFAULT 0, fingerprint TEXT,
                        dead_letters INTEGER NOT NULL DEFAULT 0, outcome BYTEA,
                        created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)
                    """, logger: PostgresLedgerShutdownTests.logger)
                try await client.query(
                    "CREATE INDEX cancel_ledger_updated_at ON cancel_ledger (updated_at)",
                    logger: PostgresLedgerShutdownTests.logger)
                #expect(try await Self.indexes(client) == ["cancel_ledger_pkey", "cancel_ledger_updated_at"])

                let ledger = PostgresLedger(
                    configuration: try LedgerFactory.postgresConfiguration(url),
                    logger: PostgresLedgerShutdownTests.logger)
                let service = Task { try await ledger.run() }
                defer { service.cancel() }
                let now = Date(timeIntervalSince1970: 1_800_000_000)
                // Claimed at a time of its own, so the key's writes below are updates.
                guard
                    case .claimed(let entry) = try await ledger.claim(
                        key: "k", owner: "w", lease: .seconds(30), now: now)
                else {
                    Issue.record("the claim took the key")
                    return
                }
                #expect(try await Self.indexes(client) == ["cancel_ledger_created_at", "cancel_ledger_pkey"])
                _ = try await ledger.markSent(
                    key: "k", owner: "w", fence: entry.fence, lease: .seconds(30), now: now + 1)
                try await ledger.complete(key: "k", owner: "w", fence: entry.fence, outcome: [1], now: now + 2)
                try await ledger.markPublished(key: "k", now: now + 3)
                #expect(try await ledger.entry(for: "k")?.state == .published)

                // The ledger's connections report their counts when idle, within seconds.
                let reported = try await eventually { try await Self.updates(client).updates >= 3 }
                let counts = try await Self.updates(client)
                #expect(reported, "updates reported: \(counts)")
                #expect(counts.inPlace == counts.updates, "HOT updates: \(counts)")
            }
        }
    }
}
