import CancelCore
import Foundation
import GRDB
import Ledger
import Testing

/// The SQLite ledger writes each batch of operations in one transaction, with its `BEGIN` and
/// `COMMIT` prepared once (issue 14). A batch that fails as a whole must leave nothing behind
/// and the ledger must go on.
@Suite("SQLite ledger: a batch's transaction")
struct SQLiteTransactionTests {
    @Test("a batch that fails as a whole lands nothing, each of its operations fails, and the next batches commit")
    func failedBatchRollsBack() async throws {
        try await withLedgerFile("transaction") { path in
            let ledger = try SQLiteLedger(path: path)
            let now = Date()
            // A failure SQLite raises inside the batch, as a full disk would: the claim of one key aborts.
            try await DatabaseQueue(path: path).write { db in
                try db.execute(
                    sql: """
                        CREATE TRIGGER refuse_poison BEFORE INSERT ON cancel_ledger WHEN NEW.key = 'poison'
                        BEGIN SELECT RAISE(ABORT, 'injected failure'); END
                        """)
            }
            let keys = ["poison"] + (0..<300).map { "key-\($0)" }
            let results = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
                for key in keys.shuffled() {
                    group.addTask {
                        do {
                            _ = try await ledger.claim(
                                key: key, owner: "w", fingerprint: "f", lease: .seconds(30), now: now, sendIfNew: true)
                            return (key, true)
                        } catch LedgerError.unavailable {
                            return (key, false)
                        }
                    }
                }
                return try await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
            }
            #expect(results["poison"] == false)
            let failed = results.filter { !$0.value }.keys.sorted()
            for (key, landed) in results.sorted(by: { $0.key < $1.key }) {
                let entry = try await ledger.entry(for: key)
                #expect(
                    (entry != nil) == landed,
                    "\(key): \(landed ? "answered" : "failed"), entry \(String(describing: entry))")
            }
            // The ledger goes on: the keys whose batch failed are claimed now, and completed.
            for key in failed where key != "poison" {
                let claim = try await ledger.claim(key: key, owner: "w", lease: .seconds(30), now: now)
                guard case .claimed(let entry) = claim else {
                    Issue.record("\(key): \(claim)")
                    continue
                }
                try await ledger.complete(key: key, owner: "w", fence: entry.fence, outcome: [1], now: now)
            }
            for key in failed where key != "poison" {
                #expect(try await ledger.entry(for: key)?.state == .completed, "\(key)")
            }
            // Shared a batch with the poison: what makes this test see the rollback (the first claim
            // is written alone; the others queue behind it and go together).
            #expect(failed.count > 1, "the poison's batch held other keys: \(failed.count) failed")
        }
    }

    /// Fresh-clone CI run 91: the bench's ledger template was copied after `shutdown()`, which
    /// did nothing; the file closed (and SQLite checkpointed and removed its log) whenever the last
    /// batch's block on the writer's thread let go of it, and a worker found the copy malformed.
    @Test("regression: shutdown closes the file, so a copy of it made right after is a whole ledger")
    func shutdownCloses() async throws {
        try await withLedgerFile("shutdown") { path in
            let ledger = try SQLiteLedger(path: path)
            let now = Date()
            for index in 0..<200 {
                _ = try await ledger.claim(
                    key: "k-\(index)", owner: "w", fingerprint: "f", lease: .seconds(30), now: now, sendIfNew: true)
            }
            await ledger.shutdown()
            #expect(!FileManager.default.fileExists(atPath: path + "-wal"), "the log was checkpointed and removed")
            let copy = path + ".copy"
            try FileManager.default.copyItem(atPath: path, toPath: copy)
            let reopened = try SQLiteLedger(path: copy)
            #expect(try await reopened.entry(for: "k-199")?.state == .sent)
            await reopened.shutdown()
            withExtendedLifetime(ledger) {}
        }
    }

    @Test(
        "a caller whose task is cancelled while it writes a batch: the batch and the ones after it are still written"
    )
    func cancelledWriter() async throws {
        try await withLedgerFile("transaction") { path in
            let ledger = try SQLiteLedger(path: path)
            let now = Date()
            // Another connection holds the write lock: the first claim's caller becomes the writer
            // and waits for it (the busy timeout); the second claim queues behind that batch.
            let other = try DatabaseQueue(path: path)
            let locked = DispatchSemaphore(value: 0)
            let unlock = DispatchSemaphore(value: 0)
            Thread {
                try? other.writeWithoutTransaction { db in
                    try db.execute(sql: "BEGIN IMMEDIATE")
                    locked.signal()
                    unlock.wait()
                    try db.execute(sql: "COMMIT")
                }
            }.start()
            locked.wait()
            let first = Task {
                try await ledger.claim(key: "first", owner: "w", fingerprint: "f", lease: .seconds(30), now: now)
            }
            try await Task.sleep(for: .milliseconds(300))
            let second = Task {
                try await ledger.claim(key: "second", owner: "w", fingerprint: "f", lease: .seconds(30), now: now)
            }
            try await Task.sleep(for: .milliseconds(300))
            // The writer's own caller goes away (a worker stopping, a purge cancelled).
            first.cancel()
            try await Task.sleep(for: .milliseconds(300))
            unlock.signal()
            let answer = await second.result
            guard case .success(.claimed) = answer else {
                Issue.record("the second caller, not cancelled, got \(answer)")
                return
            }
            #expect(try await ledger.entry(for: "second") != nil)
            #expect(try await ledger.entry(for: "first") != nil, "the cancelled caller's batch was written too")
        }
    }
}
