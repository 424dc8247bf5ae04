import CancelCore
import Foundation
import Ledger
import Logging
import ServiceLifecycle
import Testing

/// The stores that must behave like `InMemoryLedger` (the reference).
enum Store: String, CaseIterable, CustomStringConvertible {
    case memory, sqliteFile = "sqlite-file", sqliteMemory = "sqlite-memory", postgres
    /// A file in the key-ordered layout of ledgers created before the arrival-order one.
    case sqliteKeyOrderedFile = "sqlite-key-ordered-file"

    var description: String { self.rawValue }

    static var postgresURL: String? { ProcessInfo.processInfo.environment["CANCEL_WORKER_TEST_POSTGRES_URL"] }

    /// Runs `body` with a fresh ledger of this kind (PostgreSQL: its service runs meanwhile).
    func with(_ body: @Sendable (any IdempotencyLedger) async throws -> Void) async throws {
        var logger = Logger(label: "ledger-tests")
        logger.logLevel = .critical
        switch self {
        case .memory:
            try await body(InMemoryLedger())
        case .sqliteMemory:
            try await body(try SQLiteLedger(path: ":memory:"))
        case .sqliteFile:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            try await body(try SQLiteLedger(path: directory.appendingPathComponent("ledger.db").path))
        case .sqliteKeyOrderedFile:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let path = directory.appendingPathComponent("ledger.db").path
            try SQLiteLayoutTests.createKeyOrdered(at: path)
            try await body(try SQLiteLedger(path: path))
        case .postgres:
            guard let url = Store.postgresURL else {
                // `make test` always provides a server; CI must not silently skip.
                if ProcessInfo.processInfo.environment["CI"] == "true" {
                    Issue.record(
                        "CANCEL_WORKER_TEST_POSTGRES_URL is not set in CI; run the tests through scripts/with-postgres.sh"
                    )
                }
                return
            }
            let made = try LedgerFactory.make(url: url, logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await made.service?.run() }
                defer { group.cancelAll() }
                try await body(made.ledger)
            }
        }
    }
}

func uniqueKey(_ name: String) -> String { "\(name)-\(UUID().uuidString.prefix(8))" }

@Suite("Ledger conformance: every store behaves like the in-memory reference")
struct LedgerConformanceTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("claim, busy, re-entrant claim, takeover after the lease keeps sent and attempts", arguments: Store.allCases)
    func claims(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            let key = uniqueKey("claim")
            guard case .claimed(let fresh) = try await ledger.claim(key: key, owner: "a", lease: .seconds(10), now: now)
            else {
                Issue.record("first claim must succeed")
                return
            }
            #expect(fresh.state == .claimed && fresh.attempts == 0 && fresh.owner == "a" && fresh.fence == 1)
            #expect(
                try await ledger.claim(key: key, owner: "b", lease: .seconds(10), now: now.addingTimeInterval(5))
                    == .busy(owner: "a", leaseUntil: now.addingTimeInterval(10)))
            guard
                case .claimed(let again) = try await ledger.claim(
                    key: key, owner: "a", lease: .seconds(10), now: now.addingTimeInterval(1))
            else {
                Issue.record("the owner may claim again")
                return
            }
            #expect(again.fence == 2, "every claim gets the next fencing token")
            await #expect(throws: LedgerError.leaseLost(key: key, heldBy: "a")) {
                _ = try await ledger.markSent(
                    key: key, owner: "a", fence: 1, lease: .seconds(10), now: now.addingTimeInterval(2))
            }
            let sent = try await ledger.markSent(
                key: key, owner: "a", fence: 2, lease: .seconds(10), now: now.addingTimeInterval(2))
            #expect(sent.state == .sent && sent.attempts == 1)
            #expect(sent.leaseUntil == now.addingTimeInterval(12), "markSent extends the lease")
            guard
                case .claimed(let taken) = try await ledger.claim(
                    key: key, owner: "b", lease: .seconds(10), now: now.addingTimeInterval(13))
            else {
                Issue.record("an ended lease can be taken over")
                return
            }
            #expect(taken.state == .sent && taken.attempts == 1 && taken.owner == "b" && taken.fence == 3)
            await #expect(throws: LedgerError.leaseLost(key: key, heldBy: "b")) {
                _ = try await ledger.markSent(
                    key: key, owner: "a", fence: 2, lease: .seconds(10), now: now.addingTimeInterval(14))
            }
            await #expect(throws: LedgerError.leaseLost(key: key, heldBy: "b")) {
                _ = try await ledger.renew(
                    key: key, owner: "a", fence: 2, lease: .seconds(10), now: now.addingTimeInterval(14))
            }
            let renewed = try await ledger.renew(
                key: key, owner: "b", fence: 3, lease: .seconds(30), now: now.addingTimeInterval(14))
            #expect(
                renewed.leaseUntil == now.addingTimeInterval(44) && renewed.attempts == 1,
                "renew extends the lease, nothing else")
            await #expect(throws: LedgerError.notClaimed(key: key + "-unknown")) {
                _ = try await ledger.markSent(
                    key: key + "-unknown", owner: "a", fence: 1, lease: .seconds(10), now: now)
            }
        }
    }

    @Test(
        "issue 14: a claim that marks a new key sent in the same write; an existing key is only claimed",
        arguments: Store.allCases)
    func claimAndSend(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            let key = uniqueKey("claim-sent")
            let first = try await ledger.claim(
                key: key, owner: "a", fingerprint: "f", lease: .seconds(10), now: now, sendIfNew: true)
            guard case .claimed(let entry) = first.result else {
                Issue.record("a new key is claimed")
                return
            }
            #expect(first.sent)
            #expect(entry.state == .sent && entry.attempts == 1 && entry.fence == 1 && entry.owner == "a")
            #expect(entry.leaseUntil == now.addingTimeInterval(10))
            #expect(try await ledger.entry(for: key) == entry, "stored as returned")
            try await ledger.complete(key: key, owner: "a", fence: 1, outcome: [7], now: now)

            // The lease ran out mid-call: the next claim takes over, keeps sent and the count,
            // and does not mark a call of its own.
            let orphan = uniqueKey("claim-sent-orphan")
            _ = try await ledger.claim(
                key: orphan, owner: "a", fingerprint: "f", lease: .seconds(10), now: now, sendIfNew: true)
            let taken = try await ledger.claim(
                key: orphan, owner: "b", fingerprint: "f", lease: .seconds(10), now: now.addingTimeInterval(11),
                sendIfNew: true)
            guard case .claimed(let takenEntry) = taken.result else {
                Issue.record("an ended lease can be taken over")
                return
            }
            #expect(!taken.sent)
            #expect(takenEntry.state == .sent && takenEntry.attempts == 1 && takenEntry.fence == 2)

            // A claimed (not sent) key taken over stays claimed; done and busy keys answer as always.
            let plain = uniqueKey("claim-sent-plain")
            _ = try await ledger.claim(key: plain, owner: "a", lease: .seconds(10), now: now)
            let again = try await ledger.claim(
                key: plain, owner: "a", fingerprint: nil, lease: .seconds(10), now: now, sendIfNew: true)
            guard case .claimed(let againEntry) = again.result else {
                Issue.record("the owner may claim again")
                return
            }
            #expect(!again.sent && againEntry.state == .claimed && againEntry.attempts == 0)
            let done = try await ledger.claim(
                key: key, owner: "c", fingerprint: "f", lease: .seconds(10), now: now, sendIfNew: true)
            #expect(!done.sent)
            guard case .done = done.result else {
                Issue.record("a completed key answers done")
                return
            }
            let busy = try await ledger.claim(
                key: plain, owner: "c", fingerprint: nil, lease: .seconds(10), now: now, sendIfNew: true)
            #expect(!busy.sent && busy.result == .busy(owner: "a", leaseUntil: now.addingTimeInterval(10)))
        }
    }

    @Test("marking several keys published at once: done keys only; others stay as they are", arguments: Store.allCases)
    func batchPublished(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            let done = [uniqueKey("batch-a"), uniqueKey("batch-b")]
            for key in done {
                _ = try await ledger.claim(key: key, owner: "a", lease: .seconds(10), now: now)
                try await ledger.complete(key: key, owner: "a", fence: 1, outcome: [1], now: now)
            }
            let claimed = uniqueKey("batch-claimed")
            _ = try await ledger.claim(key: claimed, owner: "a", lease: .seconds(10), now: now)
            let unknown = uniqueKey("batch-unknown")
            try await ledger.markPublished(keys: done + [claimed, unknown], now: now.addingTimeInterval(1))
            for key in done {
                let entry = try await ledger.entry(for: key)
                #expect(entry?.state == .published && entry?.outcome == [1], "\(key)")
            }
            #expect(try await ledger.entry(for: claimed)?.state == .claimed, "a key not done is left as it is")
            #expect(try await ledger.entry(for: unknown) == nil, "an unknown key is not created")
            try await ledger.markPublished(keys: [], now: now)
        }
    }

    @Test("complete, done with the outcome bytes, published; completing twice is harmless", arguments: Store.allCases)
    func completion(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            let key = uniqueKey("complete")
            let outcome: [UInt8] = Array(#"{"status":"cancelled"}"#.utf8) + [0, 255]
            _ = try await ledger.claim(key: key, owner: "a", lease: .seconds(10), now: now)
            _ = try await ledger.markSent(key: key, owner: "a", fence: 1, lease: .seconds(10), now: now)
            try await ledger.complete(key: key, owner: "a", fence: 1, outcome: outcome, now: now.addingTimeInterval(1))
            try await ledger.complete(key: key, owner: "a", fence: 1, outcome: outcome, now: now.addingTimeInterval(2))
            guard
                case .done(let done) = try await ledger.claim(
                    key: key, owner: "b", lease: .seconds(10), now: now.addingTimeInterval(3))
            else {
                Issue.record("a completed key is done")
                return
            }
            #expect(done.state == .completed && done.outcome == outcome && done.owner == nil && done.attempts == 1)
            try await ledger.markPublished(key: key, now: now.addingTimeInterval(4))
            #expect(try await ledger.entry(for: key)?.state == .published)
            await #expect(throws: LedgerError.self) {
                try await ledger.complete(
                    key: uniqueKey("never-claimed"), owner: "a", fence: 1, outcome: outcome, now: now)
            }
            await #expect(throws: LedgerError.notClaimed(key: "missing-\(key)")) {
                try await ledger.markPublished(key: "missing-\(key)", now: now)
            }
        }
    }

    @Test(
        "regression: a worker whose key was taken over cannot complete it, even after the new holder did",
        arguments: Store.allCases)
    func zombieCannotComplete(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            let key = uniqueKey("zombie")
            _ = try await ledger.claim(key: key, owner: "a", lease: .seconds(5), now: now)
            _ = try await ledger.markSent(key: key, owner: "a", fence: 1, lease: .seconds(5), now: now)
            // a is paused past its lease; b takes over, calls, completes.
            _ = try await ledger.claim(key: key, owner: "b", lease: .seconds(5), now: now.addingTimeInterval(6))
            _ = try await ledger.markSent(
                key: key, owner: "b", fence: 2, lease: .seconds(5), now: now.addingTimeInterval(6))
            let bOutcome = Array(#"{"status":"cancelled"}"#.utf8)
            try await ledger.complete(key: key, owner: "b", fence: 2, outcome: bOutcome, now: now.addingTimeInterval(7))
            // a resumes: its call answered "already cancelled"; it must not record (and so not publish) anything.
            await #expect(throws: LedgerError.self) {
                try await ledger.complete(
                    key: key, owner: "a", fence: 1, outcome: Array(#"{"status":"already_cancelled"}"#.utf8),
                    now: now.addingTimeInterval(8))
            }
            #expect(try await ledger.entry(for: key)?.outcome == bOutcome)
            // The same worker id with an old claim: a second delivery of a's own re-claimed the key.
            let key2 = uniqueKey("zombie-self")
            _ = try await ledger.claim(key: key2, owner: "a", lease: .seconds(5), now: now)
            _ = try await ledger.claim(key: key2, owner: "b", lease: .seconds(5), now: now.addingTimeInterval(6))
            try await ledger.release(
                key: key2, owner: "b", fence: 2, deadLettered: false, now: now.addingTimeInterval(7))
            _ = try await ledger.claim(key: key2, owner: "a", lease: .seconds(5), now: now.addingTimeInterval(8))
            await #expect(throws: LedgerError.leaseLost(key: key2, heldBy: "a")) {
                _ = try await ledger.markSent(
                    key: key2, owner: "a", fence: 1, lease: .seconds(5), now: now.addingTimeInterval(9))
            }
        }
    }

    @Test(
        "a key first used by one command answers reused to another; the same command claims as usual",
        arguments: Store.allCases)
    func fingerprints(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            let key = uniqueKey("fingerprint")
            guard
                case .claimed(let first) = try await ledger.claim(
                    key: key, owner: "a", fingerprint: "fp-1", lease: .seconds(10), now: now)
            else {
                Issue.record("first claim")
                return
            }
            #expect(first.fingerprint == "fp-1")
            guard
                case .reused(let used) = try await ledger.claim(
                    key: key, owner: "b", fingerprint: "fp-2", lease: .seconds(10), now: now.addingTimeInterval(20))
            else {
                Issue.record("another command under the key is a reuse, even after the lease")
                return
            }
            #expect(used.owner == "a" && used.fence == 1, "nothing changed")
            guard
                case .claimed(let again) = try await ledger.claim(
                    key: key, owner: "b", fingerprint: "fp-1", lease: .seconds(10), now: now.addingTimeInterval(20))
            else {
                Issue.record("the same command takes over an ended lease")
                return
            }
            try await ledger.complete(
                key: key, owner: "b", fence: again.fence, outcome: [1], now: now.addingTimeInterval(21))
            guard
                case .reused = try await ledger.claim(
                    key: key, owner: "c", fingerprint: "fp-2", lease: .seconds(10), now: now.addingTimeInterval(22))
            else {
                Issue.record("a done key is still a reuse for another command")
                return
            }
            guard
                case .done = try await ledger.claim(
                    key: key, owner: "c", fingerprint: "fp-1", lease: .seconds(10), now: now.addingTimeInterval(22))
            else {
                Issue.record("a done key is done for its own command")
                return
            }
            // An entry without a fingerprint (written before) adopts the first one it sees.
            let old = uniqueKey("no-fingerprint")
            _ = try await ledger.claim(key: old, owner: "a", lease: .seconds(1), now: now)
            guard
                case .claimed(let adopted) = try await ledger.claim(
                    key: old, owner: "a", fingerprint: "fp-9", lease: .seconds(1), now: now.addingTimeInterval(2))
            else {
                Issue.record("adopt")
                return
            }
            #expect(adopted.fingerprint == "fp-9")
        }
    }

    @Test(
        "a release whose last call never left takes it off: back to claimed with none, still sent with earlier ones",
        arguments: Store.allCases)
    func releaseCallNotSent(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            let key = uniqueKey("unsent")
            #expect(
                try await ledger.claim(
                    key: key, owner: "a", fingerprint: nil, lease: .seconds(60), now: now, sendIfNew: true
                ).sent)
            try await ledger.release(
                key: key, owner: "a", fence: 1, deadLettered: false, callNotSent: true, now: now.addingTimeInterval(1))
            let given = try #require(try await ledger.entry(for: key))
            #expect(given.state == .claimed && given.attempts == 0 && given.owner == nil, "\(given)")
            // Two calls marked sent, the second stopped: the first stays counted.
            let fence = try await Self.fence(ledger, key, owner: "b", now: now.addingTimeInterval(2))
            for _ in 0..<2 {
                _ = try await ledger.markSent(key: key, owner: "b", fence: fence, lease: .seconds(60), now: now)
            }
            try await ledger.release(
                key: key, owner: "b", fence: fence, deadLettered: true, callNotSent: true,
                now: now.addingTimeInterval(2))
            let kept = try #require(try await ledger.entry(for: key))
            #expect(kept.state == .sent && kept.attempts == 1 && kept.deadLetters == 1, "\(kept)")
            // A claim that marked nothing: `callNotSent` false changes nothing.
            let third = try await Self.fence(ledger, key, owner: "c", now: now.addingTimeInterval(3))
            try await ledger.release(
                key: key, owner: "c", fence: third, deadLettered: false, callNotSent: false,
                now: now.addingTimeInterval(4))
            #expect(try await ledger.entry(for: key)?.attempts == 1)
        }
    }

    /// Claims `key` for `owner`; its fence.
    private static func fence(
        _ ledger: any IdempotencyLedger, _ key: String, owner: String, now: Date
    ) async throws -> Int {
        let result = try await ledger.claim(key: key, owner: owner, lease: .seconds(60), now: now)
        guard case .claimed(let entry) = result else { throw LedgerError.notClaimed(key: key) }
        return entry.fence
    }

    @Test(
        "release ends the lease at once and counts dead letters; purge removes entries not written since the cutoff",
        arguments: Store.allCases)
    func releaseAndPurge(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            let key = uniqueKey("release")
            _ = try await ledger.claim(key: key, owner: "a", lease: .seconds(60), now: now)
            try await ledger.release(key: key, owner: "a", fence: 1, deadLettered: true, now: now.addingTimeInterval(1))
            guard
                case .claimed(let next) = try await ledger.claim(
                    key: key, owner: "b", lease: .seconds(60), now: now.addingTimeInterval(2))
            else {
                Issue.record("a released key can be claimed at once")
                return
            }
            #expect(next.deadLetters == 1)
            await #expect(throws: LedgerError.leaseLost(key: key, heldBy: "b")) {
                try await ledger.release(
                    key: key, owner: "a", fence: 1, deadLettered: false, now: now.addingTimeInterval(3))
            }
            let old = uniqueKey("old")
            // Far in the past, so the purge cannot touch what concurrent tests write to a shared database.
            let tenYears: TimeInterval = 86_400 * 3_650
            _ = try await ledger.claim(key: old, owner: "a", lease: .seconds(1), now: now.addingTimeInterval(-tenYears))
            // Bounded batches: three old entries, two per purge.
            let olds = (0..<3).map { uniqueKey("old-\($0)") }
            for (index, key) in olds.enumerated() {
                _ = try await ledger.claim(
                    key: key, owner: "a", lease: .seconds(1), now: now.addingTimeInterval(-tenYears - Double(index)))
            }
            // Created as long ago, but written since: not purged (a purge finds old entries by
            // when they were created and keeps those updated after the cutoff).
            let lived = uniqueKey("lived")
            let livedAt = now.addingTimeInterval(-tenYears - 10)
            guard
                case .claimed(let livedEntry) = try await ledger.claim(
                    key: lived, owner: "a", lease: .seconds(1), now: livedAt)
            else {
                Issue.record("claim \(lived)")
                return
            }
            _ = try await ledger.markSent(
                key: lived, owner: "a", fence: livedEntry.fence, lease: .seconds(60), now: now)
            let cutoff = now.addingTimeInterval(-tenYears + 86_400)
            var purged: [Int] = []
            while purged.last != 0 { purged.append(try await ledger.purge(updatedBefore: cutoff, limit: 2)) }
            #expect(purged.allSatisfy { $0 <= 2 } && purged.reduce(0, +) >= 4, "\(purged)")
            #expect(try await ledger.entry(for: old) == nil)
            for key in olds { #expect(try await ledger.entry(for: key) == nil) }
            #expect(try await ledger.entry(for: key) != nil)
            #expect(try await ledger.entry(for: lived)?.state == .sent, "created before the cutoff, written after it")
        }
    }

    @Test("pacing pauses: the later end wins, ended pauses are not listed and are forgotten", arguments: Store.allCases)
    func pacingPauses(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            // A provider name of its own: a shared PostgreSQL database holds other tests' rows.
            let provider = uniqueKey("futures")
            let mine = { (pauses: [PacingPause]) in
                pauses.filter { $0.provider == provider }.sorted { ($0.account ?? "") < ($1.account ?? "") }
            }
            try await ledger.recordPause(
                PacingPause(provider: provider, account: "u1", until: now.addingTimeInterval(30)), now: now)
            // An earlier end does not shorten a running pause; a later one extends it.
            try await ledger.recordPause(
                PacingPause(provider: provider, account: "u1", until: now.addingTimeInterval(10)), now: now)
            try await ledger.recordPause(
                PacingPause(provider: provider, account: "u2", until: now.addingTimeInterval(5)), now: now)
            try await ledger.recordPause(
                PacingPause(provider: provider, account: "u2", until: now.addingTimeInterval(20)), now: now)
            try await ledger.recordPause(
                PacingPause(provider: provider, account: nil, until: now.addingTimeInterval(8)), now: now)
            #expect(
                mine(try await ledger.pauses(activeAt: now)) == [
                    PacingPause(provider: provider, account: nil, until: now.addingTimeInterval(8)),
                    PacingPause(provider: provider, account: "u1", until: now.addingTimeInterval(30)),
                    PacingPause(provider: provider, account: "u2", until: now.addingTimeInterval(20)),
                ])
            // Ended pauses are not listed.
            #expect(
                mine(try await ledger.pauses(activeAt: now.addingTimeInterval(25))) == [
                    PacingPause(provider: provider, account: "u1", until: now.addingTimeInterval(30))
                ])
            // Recording forgets ended pauses: a new pause after one ended starts from its own end.
            try await ledger.recordPause(
                PacingPause(provider: provider, account: "u3", until: now.addingTimeInterval(45)),
                now: now.addingTimeInterval(40))
            try await ledger.recordPause(
                PacingPause(provider: provider, account: "u2", until: now.addingTimeInterval(42)),
                now: now.addingTimeInterval(40))
            #expect(
                mine(try await ledger.pauses(activeAt: now.addingTimeInterval(40))) == [
                    PacingPause(provider: provider, account: "u2", until: now.addingTimeInterval(42)),
                    PacingPause(provider: provider, account: "u3", until: now.addingTimeInterval(45)),
                ])
        }
    }

    @Test("contention: concurrent claims of the same keys, exactly one holder per key", arguments: Store.allCases)
    func contention(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            let keys = (0..<20).map { _ in uniqueKey("race") }
            let winners = try await withThrowingTaskGroup(of: (String, String)?.self) { group in
                for owner in 0..<10 {
                    for key in keys {
                        group.addTask {
                            if case .claimed = try await ledger.claim(
                                key: key, owner: "owner-\(owner)", lease: .seconds(60), now: now)
                            {
                                return (key, "owner-\(owner)")
                            }
                            return nil
                        }
                    }
                }
                return try await group.reduce(into: [(String, String)]()) { if let pair = $1 { $0.append(pair) } }
            }
            #expect(winners.count == keys.count, "one winner per key, got \(winners.count)")
            #expect(Set(winners.map(\.0)) == Set(keys))
        }
    }
}

extension LedgerConformanceTests {
    @Test(
        "issue 14: a burst of claims and completions at once (batched where the store batches) answers each as alone",
        arguments: Store.allCases)
    func burst(store: Store) async throws {
        let now = self.now
        try await store.with { ledger in
            // Keys in every state a claim can meet, claimed all at once.
            let fresh = (0..<120).map { _ in uniqueKey("burst-new") }
            let busy = (0..<15).map { _ in uniqueKey("burst-busy") }
            let done = (0..<15).map { _ in uniqueKey("burst-done") }
            let reused = (0..<15).map { _ in uniqueKey("burst-reused") }
            let twice = uniqueKey("burst-twice")
            for key in busy { _ = try await ledger.claim(key: key, owner: "other", lease: .seconds(60), now: now) }
            for key in done {
                _ = try await ledger.claim(key: key, owner: "other", lease: .seconds(60), now: now)
                try await ledger.complete(key: key, owner: "other", fence: 1, outcome: [9], now: now)
            }
            for key in reused {
                _ = try await ledger.claim(
                    key: key, owner: "other", fingerprint: "first", lease: .seconds(60), now: now, sendIfNew: true)
            }
            let claims: [(String, Int)] =
                (fresh + busy + done + reused).map { ($0, 0) } + [(twice, 0), (twice, 1), (twice, 2)]
            let answers = try await withThrowingTaskGroup(of: (String, ClaimResult, Bool).self) { group in
                for (key, _) in claims.shuffled() {
                    group.addTask {
                        let answer = try await ledger.claim(
                            key: key, owner: "me", fingerprint: "second", lease: .seconds(60), now: now,
                            sendIfNew: true)
                        return (key, answer.result, answer.sent)
                    }
                }
                return try await group.reduce(into: [(String, ClaimResult, Bool)]()) { $0.append($1) }
            }
            let byKey = Dictionary(grouping: answers, by: \.0)
            for key in fresh {
                guard case .claimed(let entry) = byKey[key]?.first?.1, byKey[key]?.first?.2 == true else {
                    Issue.record("a new key is claimed and sent: \(String(describing: byKey[key]))")
                    continue
                }
                #expect(entry.fence == 1 && entry.state == .sent && entry.attempts == 1 && entry.owner == "me")
            }
            for key in busy {
                #expect(byKey[key]?.first?.1 == .busy(owner: "other", leaseUntil: now.addingTimeInterval(60)))
            }
            for key in done {
                guard case .done(let entry) = byKey[key]?.first?.1 else {
                    Issue.record("a completed key is done: \(String(describing: byKey[key]))")
                    continue
                }
                #expect(entry.outcome == [9])
            }
            for key in reused {
                guard case .reused = byKey[key]?.first?.1 else {
                    Issue.record("a key of another command is reused: \(String(describing: byKey[key]))")
                    continue
                }
            }
            // The same key three times from the same owner: three claims in turn (re-entrant),
            // one of them the first, which alone marks the call sent.
            let repeats = byKey[twice] ?? []
            let fences = repeats.compactMap { if case .claimed(let entry) = $0.1 { entry.fence } else { nil } }
            #expect(fences.sorted() == [1, 2, 3], "\(repeats)")
            #expect(repeats.filter(\.2).count == 1)

            // Completions at once: each new key with its own bytes; a stale fence is refused, a
            // repeat of the same bytes is harmless.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, key) in fresh.enumerated() {
                    group.addTask {
                        try await ledger.complete(key: key, owner: "me", fence: 1, outcome: [UInt8(index)], now: now)
                    }
                }
                for key in busy.prefix(5) {
                    group.addTask {
                        await #expect(throws: LedgerError.leaseLost(key: key, heldBy: "other")) {
                            try await ledger.complete(key: key, owner: "me", fence: 1, outcome: [1], now: now)
                        }
                    }
                }
                group.addTask {
                    await #expect(throws: LedgerError.self) {
                        try await ledger.complete(key: twice, owner: "me", fence: 1, outcome: [1], now: now)
                    }
                }
                try await group.waitForAll()
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, key) in fresh.prefix(10).enumerated() {
                    group.addTask {
                        try await ledger.complete(key: key, owner: "me", fence: 1, outcome: [UInt8(index)], now: now)
                    }
                }
                try await group.waitForAll()
            }
            for (index, key) in fresh.enumerated() {
                let entry = try await ledger.entry(for: key)
                #expect(entry?.state == .completed && entry?.outcome == [UInt8(index)] && entry?.owner == nil, "\(key)")
            }
            #expect(try await ledger.entry(for: busy[0])?.owner == "other", "a refused completion changes nothing")
        }
    }
}

@Suite("PostgreSQL: two ledgers (two workers) on one database")
struct PostgresSharingTests {
    /// Runs `body` with two ledgers on the test database, as two workers have them.
    func withTwoLedgers(_ body: @Sendable ([any IdempotencyLedger]) async throws -> Void) async throws {
        var logger = Logger(label: "ledger-tests")
        logger.logLevel = .critical
        let first = try LedgerFactory.make(url: Store.postgresURL!, logger: logger)
        let second = try LedgerFactory.make(url: Store.postgresURL!, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await first.service?.run() }
            group.addTask { try await second.service?.run() }
            defer { group.cancelAll() }
            try await body([first.ledger, second.ledger])
        }
    }

    @Test(
        "two processes' ledgers never both hold a key",
        .enabled(
            if: Store.postgresURL != nil,
            "needs CANCEL_WORKER_TEST_POSTGRES_URL: run through scripts/with-postgres.sh (make test does)"))
    func twoInstances() async throws {
        let now = Date()
        try await self.withTwoLedgers { ledgers in
            let keys = (0..<30).map { _ in uniqueKey("shared") }
            let claims = try await withThrowingTaskGroup(of: Int.self) { tasks in
                for key in keys {
                    for (index, ledger) in ledgers.enumerated() {
                        tasks.addTask {
                            if case .claimed = try await ledger.claim(
                                key: key, owner: "worker-\(index)", lease: .seconds(60), now: now)
                            {
                                return 1
                            }
                            return 0
                        }
                    }
                }
                return try await tasks.reduce(0, +)
            }
            #expect(claims == keys.count)
        }
    }

    @Test(
        "issue 14: two ledgers claim 200 shared keys at once in batches, in opposite orders: one holder per key, no error",
        .enabled(
            if: Store.postgresURL != nil,
            "needs CANCEL_WORKER_TEST_POSTGRES_URL: run through scripts/with-postgres.sh (make test does)"))
    func overlap() async throws {
        let now = Date()
        try await self.withTwoLedgers { ledgers in
            let keys = (0..<200).map { _ in uniqueKey("overlap") }
            let holders = try await withThrowingTaskGroup(of: (String, String)?.self) { tasks in
                for (index, ledger) in ledgers.enumerated() {
                    for key in index == 0 ? keys : keys.reversed() {
                        tasks.addTask {
                            let answer = try await ledger.claim(
                                key: key, owner: "worker-\(index)", fingerprint: "f", lease: .seconds(60), now: now,
                                sendIfNew: true)
                            if case .claimed = answer.result { return (key, "worker-\(index)") }
                            return nil
                        }
                    }
                }
                return try await tasks.reduce(into: [(String, String)]()) { if let pair = $1 { $0.append(pair) } }
            }
            #expect(holders.count == keys.count)
            #expect(Set(holders.map(\.0)) == Set(keys))
            for (key, owner) in holders.prefix(20) {
                #expect(try await ledgers[0].entry(for: key)?.owner == owner)
            }
        }
    }
}

@Suite("Ledger URLs")
struct LedgerURLTests {
    @Test("URL forms, errors without passwords")
    func urls() throws {
        var logger = Logger(label: "ledger-tests")
        logger.logLevel = .critical
        #expect(try LedgerFactory.make(url: "memory:", logger: logger).ledger is InMemoryLedger)
        #expect(try LedgerFactory.make(url: "sqlite::memory:", logger: logger).ledger is SQLiteLedger)
        let postgres = try LedgerFactory.make(url: "postgres://cw:s3cret@db.internal:6543/ledger", logger: logger)
        #expect(postgres.service != nil)
        do {
            _ = try LedgerFactory.make(url: "mysql://cw:s3cret@db/ledger", logger: logger)
            Issue.record("mysql accepted")
        } catch {
            #expect(!"\(error)".contains("s3cret"))
            #expect("\(error)".contains("unsupported ledger URL"))
        }
        #expect(LedgerFactory.redact("postgres://cw:s3cret@db/x") == "postgres://cw:REDACTED@db/x")
    }
}
