public import Foundation

/// A ledger in process memory: correct for one process (tests, the demo's single node,
/// benchmarks of everything else), lost on exit. Fleets use the PostgreSQL ledger.
public actor InMemoryLedger: IdempotencyLedger {
    private var entries: [String: LedgerEntry] = [:]

    public init() {}

    public func claim(key: String, owner: String, lease: Duration, now: Date) -> ClaimResult {
        let leaseUntil = now.addingTimeInterval(lease.timeInterval)
        guard var entry = self.entries[key] else {
            let entry = LedgerEntry(
                key: key, state: .claimed, owner: owner, leaseUntil: leaseUntil, attempts: 0,
                outcome: nil, createdAt: now, updatedAt: now
            )
            self.entries[key] = entry
            return .claimed(entry)
        }
        if entry.isDone { return .done(entry) }
        if let holder = entry.owner, holder != owner, let until = entry.leaseUntil, until > now {
            return .busy(owner: holder, leaseUntil: until)
        }
        entry.owner = owner
        entry.leaseUntil = leaseUntil
        entry.updatedAt = now
        self.entries[key] = entry
        return .claimed(entry)
    }

    public func markSent(key: String, owner: String, lease: Duration, now: Date) throws -> LedgerEntry {
        var entry = try self.held(key, by: owner, now: now)
        entry.state = .sent
        entry.attempts += 1
        entry.leaseUntil = now.addingTimeInterval(lease.timeInterval)
        entry.updatedAt = now
        self.entries[key] = entry
        return entry
    }

    public func complete(key: String, owner: String, outcome: [UInt8], now: Date) throws {
        if let entry = self.entries[key], entry.isDone { return }
        var entry = try self.held(key, by: owner, now: now)
        entry.state = .completed
        entry.outcome = outcome
        entry.owner = nil
        entry.leaseUntil = nil
        entry.updatedAt = now
        self.entries[key] = entry
    }

    public func markPublished(key: String, now: Date) throws {
        guard var entry = self.entries[key], entry.isDone else { throw LedgerError.notClaimed(key: key) }
        entry.state = .published
        entry.updatedAt = now
        self.entries[key] = entry
    }

    public func release(key: String, owner: String, deadLettered: Bool, now: Date) throws {
        var entry = try self.held(key, by: owner, now: now)
        entry.owner = nil
        entry.leaseUntil = nil
        if deadLettered { entry.deadLetters += 1 }
        entry.updatedAt = now
        self.entries[key] = entry
    }

    public func entry(for key: String) -> LedgerEntry? {
        self.entries[key]
    }

    public func purge(updatedBefore cutoff: Date) -> Int {
        let before = self.entries.count
        self.entries = self.entries.filter { $0.value.updatedAt >= cutoff }
        return before - self.entries.count
    }

    public func shutdown() {}

    /// The entry if `owner` holds it: its own claim, even with an expired lease, as long as
    /// nobody took it over.
    private func held(_ key: String, by owner: String, now: Date) throws -> LedgerEntry {
        guard let entry = self.entries[key] else { throw LedgerError.notClaimed(key: key) }
        guard entry.owner == owner, !entry.isDone else {
            throw LedgerError.leaseLost(key: key, heldBy: entry.owner)
        }
        return entry
    }
}

extension Duration {
    /// The duration in seconds, for `Date` arithmetic.
    public var timeInterval: TimeInterval {
        let (seconds, attoseconds) = self.components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
