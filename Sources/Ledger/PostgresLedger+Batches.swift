import CancelCore
import Foundation
import NIOCore
import PostgresNIO

/// Claims and completions in batches: one `INSERT … SELECT FROM unnest(…)` or
/// `UPDATE … FROM unnest(…)` for every key of a batch, with the same conditions as one key's
/// statement. A statement holds each key once (PostgreSQL refuses to upsert a row twice in one
/// statement), in key order, so that two workers' batches lock shared keys in the same order.
extension PostgresLedger {
    /// An operation waiting for its batch's statement.
    protocol Batched: Sendable {
        var key: String { get }
        var isAnswered: Bool { get }
        func fail(_ error: any Error)
    }

    /// One `claim` waiting for its statement.
    struct Claim: Batched {
        let key: String
        let owner: String
        let fingerprint: String?
        let leaseUntil: Int64
        let now: Int64
        let sendIfNew: Bool
        let answer = PendingAnswer<(result: ClaimResult, sent: Bool)>()
        var isAnswered: Bool { self.answer.isSet }
        func fail(_ error: any Error) { self.answer.set(.failure(error)) }
    }

    /// One `complete` waiting for its statement.
    struct Completion: Batched {
        let key: String
        let owner: String
        let fence: Int
        let outcome: [UInt8]
        let now: Int64
        let answer = PendingAnswer<Void>()
        var isAnswered: Bool { self.answer.isSet }
        func fail(_ error: any Error) { self.answer.set(.failure(error)) }
    }

    /// Writes a batch of claims.
    func write(claims batch: [Claim]) async {
        await Self.shieldedFromCancellation { await self.write(batch) { try await self.claimTogether($0) } }
    }

    /// Writes a batch of completions.
    func write(completions batch: [Completion]) async {
        await Self.shieldedFromCancellation { await self.write(batch) { try await self.completeTogether($0) } }
    }

    /// Runs `body` in a task of its own, which its caller's cancellation does not reach: a batch
    /// is written by whichever caller found the writer's place free (`GroupCommit`) and holds
    /// other callers' operations, which that caller's cancellation (a worker stopping, a
    /// cancelled purge) must not fail. Each statement is still bounded by `statementTimeout`.
    private static func shieldedFromCancellation(_ body: @escaping @Sendable () async -> Void) async {
        await Task { await body() }.value
    }

    /// One `statement` per round of distinct keys, in key order. A round the server refuses as a
    /// whole (a deadlock with another worker's batch) is tried again one key at a time, so a
    /// conflict costs only its own operation; a round that could not reach the server fails its
    /// operations at once (trying each again would wait for the server once per key).
    private func write<Item: Batched>(_ batch: [Item], statement: ([Item]) async throws -> Void) async {
        for round in Self.rounds(batch, key: \.key) {
            let sorted = round.sorted { $0.key < $1.key }
            do {
                try await statement(sorted)
            } catch let refused as Refused where sorted.count > 1 {
                self.logger.debug(
                    "PostgreSQL refused a batch; its operations go one at a time",
                    metadata: ["size": "\(sorted.count)", "error": "\(refused.reason)"])
                for item in sorted where !item.isAnswered {
                    do {
                        try await statement([item])
                    } catch {
                        item.fail((error as? Refused)?.reason ?? error)
                    }
                }
            } catch {
                for item in sorted where !item.isAnswered { item.fail((error as? Refused)?.reason ?? error) }
            }
        }
    }

    /// `items` split so that no key is twice in one part; order is kept within each key.
    static func rounds<Item>(_ items: [Item], key: (Item) -> String) -> [[Item]] {
        var rounds: [[Item]] = []
        var keysPerRound: [Set<String>] = []
        for item in items {
            let name = key(item)
            // After the last round that already has this key: a key's items stay in order.
            let last = keysPerRound.lastIndex { $0.contains(name) }
            let index = last.map { $0 + 1 } ?? 0
            if index == rounds.count {
                rounds.append([])
                keysPerRound.append([])
            }
            rounds[index].append(item)
            keysPerRound[index].insert(name)
        }
        return rounds
    }

    private func claimTogether(_ claims: [Claim]) async throws {
        // A new key's row is written as `claim` and `markSent` would leave it; an existing row
        // keeps its state and attempts (the ON CONFLICT branch). A missing fingerprint travels
        // as "" (fingerprints are hex digests, never empty).
        let keys = claims.map(\.key)
        let states = claims.map { $0.sendIfNew ? LedgerState.sent.rawValue : LedgerState.claimed.rawValue }
        let owners = claims.map(\.owner)
        let leases = claims.map(\.leaseUntil)
        let attempts = claims.map { Int32($0.sendIfNew ? 1 : 0) }
        let fingerprints = claims.map { $0.fingerprint ?? "" }
        let nows = claims.map(\.now)
        let taken = try await self.run("claim", separatingRefusals: true) {
            let rows = try await self.client.query(
                """
                INSERT INTO cancel_ledger AS l (key, state, owner, lease_until, attempts, fence, fingerprint, dead_letters, created_at, updated_at)
                SELECT v.key, v.state, v.owner, v.lease_until, v.attempts, 1, NULLIF(v.fingerprint, ''), 0, v.now, v.now
                FROM unnest(\(keys)::text[], \(states)::text[], \(owners)::text[], \(leases)::bigint[], \(attempts)::int[],
                    \(fingerprints)::text[], \(nows)::bigint[]) AS v(key, state, owner, lease_until, attempts, fingerprint, now)
                ORDER BY v.key
                ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until, fence = l.fence + 1,
                    fingerprint = COALESCE(l.fingerprint, EXCLUDED.fingerprint), updated_at = EXCLUDED.updated_at
                WHERE l.state IN ('claimed', 'sent')
                  AND (l.fingerprint IS NULL OR EXCLUDED.fingerprint IS NULL OR l.fingerprint = EXCLUDED.fingerprint)
                  AND (l.owner IS NULL OR l.owner = EXCLUDED.owner OR l.lease_until IS NULL OR l.lease_until <= EXCLUDED.updated_at)
                RETURNING \(unescaped: Self.columns)
                """, logger: self.logger)
            return try await Self.entries(rows)
        }
        var refused: [Claim] = []
        for claim in claims {
            guard let entry = taken[claim.key] else {
                refused.append(claim)
                continue
            }
            // Inserted, not taken over: a takeover raises the fence above 1 (rows from before
            // fencing start at 0, and were created long before this claim) and keeps created_at.
            let inserted = entry.fence == 1 && Self.millis(entry.createdAt) == claim.now
            claim.answer.set(.success((.claimed(entry), claim.sendIfNew && inserted && entry.state == .sent)))
        }
        guard !refused.isEmpty else { return }
        // Busy, done or reused: why, from the rows as they are now.
        let current = try await self.entries(for: refused.map(\.key))
        for claim in refused {
            guard let entry = current[claim.key] else {
                claim.answer.set(
                    .failure(LedgerError.unavailable("claim of \(claim.key) neither took nor found a row")))
                continue
            }
            let result: ClaimResult =
                if let used = entry.fingerprint, let fingerprint = claim.fingerprint, used != fingerprint {
                    .reused(entry)
                } else if entry.isDone {
                    .done(entry)
                } else {
                    .busy(owner: entry.owner ?? "unknown", leaseUntil: entry.leaseUntil ?? Self.date(claim.now))
                }
            claim.answer.set(.success((result, false)))
        }
    }

    private func completeTogether(_ completions: [Completion]) async throws {
        let keys = completions.map(\.key)
        let owners = completions.map(\.owner)
        let fences = completions.map { Int64($0.fence) }
        let outcomes = completions.map { ByteBuffer(bytes: $0.outcome) }
        let nows = completions.map(\.now)
        let completed = try await self.run("complete", separatingRefusals: true) {
            let rows = try await self.client.query(
                """
                UPDATE cancel_ledger AS l SET state = 'completed', outcome = v.outcome, owner = NULL, lease_until = NULL,
                    updated_at = v.now
                FROM unnest(\(keys)::text[], \(owners)::text[], \(fences)::bigint[], \(outcomes)::bytea[], \(nows)::bigint[])
                    AS v(key, owner, fence, outcome, now)
                WHERE l.key = v.key AND l.owner = v.owner AND l.fence = v.fence AND l.state IN ('claimed', 'sent')
                RETURNING l.key
                """, logger: self.logger)
            var completed = Set<String>()
            for try await key in rows.decode(String.self) { completed.insert(key) }
            return completed
        }
        for completion in completions where completed.contains(completion.key) {
            completion.answer.set(.success(()))
        }
        let refused = completions.filter { !completed.contains($0.key) }
        guard !refused.isEmpty else { return }
        let current = try await self.entries(for: refused.map(\.key))
        for completion in refused {
            guard let entry = current[completion.key] else {
                completion.answer.set(.failure(LedgerError.notClaimed(key: completion.key)))
                continue
            }
            // Completed already: harmless only for this claim repeating its own bytes.
            if entry.isDone {
                let same = entry.fence == completion.fence && entry.outcome == completion.outcome
                completion.answer.set(
                    same ? .success(()) : .failure(LedgerError.leaseLost(key: completion.key, heldBy: nil)))
            } else {
                completion.answer.set(.failure(LedgerError.leaseLost(key: completion.key, heldBy: entry.owner)))
            }
        }
    }

    /// The rows of `keys` that exist, by key.
    func entries(for keys: [String]) async throws -> [String: LedgerEntry] {
        try await self.run("entry") {
            try await Self.entries(
                try await self.client.query(
                    "SELECT \(unescaped: Self.columns) FROM cancel_ledger WHERE key = ANY(\(keys))", logger: self.logger
                ))
        }
    }

    /// Rows of `columns`, by key.
    private static func entries(_ rows: PostgresRowSequence) async throws -> [String: LedgerEntry] {
        var entries: [String: LedgerEntry] = [:]
        for try await row in rows {
            let entry = try Self.entry(row)
            entries[entry.key] = entry
        }
        return entries
    }
}
