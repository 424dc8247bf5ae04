public import Foundation

/// A ledger in process memory: correct for one process (tests, the demo's single node,
/// benchmarks of everything else), lost on exit. Fleets use the PostgreSQL ledger.
public actor InMemoryLedger: IdempotencyLedger {
    private var entries: [String: LedgerEntry] = [:]
    private var pacing: [PauseKey: Date] = [:]

    private struct PauseKey: Hashable {
        var provider: String
        var account: String?
    }

    public init() {}

    public func claim(
        key: String, owner: String, fingerprint: String?, lease: Duration, now: Date, sendIfNew: Bool
    ) -> (result: ClaimResult, sent: Bool) {
        let (store, result, sent) = LedgerRules.claim(
            self.entries[key], key: key, owner: owner, fingerprint: fingerprint, lease: lease, now: now,
            sendIfNew: sendIfNew)
        if let store { self.entries[key] = store }
        return (result, sent)
    }

    public func markSent(key: String, owner: String, fence: Int, lease: Duration, now: Date) throws -> LedgerEntry {
        let entry = try LedgerRules.markSent(
            self.entries[key], key: key, owner: owner, fence: fence, lease: lease, now: now)
        self.entries[key] = entry
        return entry
    }

    public func renew(key: String, owner: String, fence: Int, lease: Duration, now: Date) throws -> LedgerEntry {
        let entry = try LedgerRules.renew(
            self.entries[key], key: key, owner: owner, fence: fence, lease: lease, now: now)
        self.entries[key] = entry
        return entry
    }

    public func complete(key: String, owner: String, fence: Int, outcome: [UInt8], now: Date) throws {
        if let entry = try LedgerRules.complete(
            self.entries[key], key: key, owner: owner, fence: fence, outcome: outcome, now: now)
        {
            self.entries[key] = entry
        }
    }

    public func markPublished(key: String, now: Date) throws {
        self.entries[key] = try LedgerRules.markPublished(self.entries[key], key: key, now: now)
    }

    public func release(
        key: String, owner: String, fence: Int, deadLettered: Bool, callNotSent: Bool, now: Date
    ) throws {
        self.entries[key] = try LedgerRules.release(
            self.entries[key], key: key, owner: owner, fence: fence, deadLettered: deadLettered,
            callNotSent: callNotSent, now: now)
    }

    public func entry(for key: String) -> LedgerEntry? {
        self.entries[key]
    }

    public func purge(updatedBefore cutoff: Date, limit: Int) -> Int {
        let old = self.entries.values.filter { $0.updatedAt < cutoff }.prefix(max(0, limit))
        for entry in old { self.entries[entry.key] = nil }
        return old.count
    }

    public func recordPause(_ pause: PacingPause, now: Date) {
        self.pacing = self.pacing.filter { $0.value > now }
        let key = PauseKey(provider: pause.provider, account: pause.account)
        self.pacing[key] = max(pause.until, self.pacing[key] ?? pause.until)
    }

    public func pauses(activeAt now: Date) -> [PacingPause] {
        self.pacing.filter { $0.value > now }.map {
            PacingPause(provider: $0.key.provider, account: $0.key.account, until: $0.value)
        }
    }

    public func shutdown() {}
}

extension Duration {
    /// The duration in seconds, for `Date` arithmetic.
    public var timeInterval: TimeInterval {
        let (seconds, attoseconds) = self.components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
