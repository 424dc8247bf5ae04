public import Foundation

/// The ledger's state machine as pure functions: given a key's current entry (nil if unknown),
/// what an operation returns and what must be stored. Every store applies these inside its own
/// atomic step (an actor turn, a SQLite write transaction); PostgreSQL expresses the same rules
/// as conditional SQL so several processes can share it.
public enum LedgerRules {
    /// Creates the entry, takes over an ended lease, or reports `busy`/`done`.
    /// Returns the entry to store (nil: unchanged) and the answer. With `sendIfNew`, a key seen
    /// for the first time is created as `claim` and `markSent` would leave it (`sent`, one
    /// attempt); `sent` tells whether that happened.
    public static func claim(
        _ current: LedgerEntry?, key: String, owner: String, fingerprint: String? = nil, lease: Duration, now: Date,
        sendIfNew: Bool = false
    ) -> (store: LedgerEntry?, result: ClaimResult, sent: Bool) {
        let leaseUntil = now.addingTimeInterval(lease.timeInterval)
        guard var entry = current else {
            let entry = LedgerEntry(
                key: key, state: sendIfNew ? .sent : .claimed, owner: owner, leaseUntil: leaseUntil,
                attempts: sendIfNew ? 1 : 0, fence: 1, fingerprint: fingerprint,
                outcome: nil, createdAt: now, updatedAt: now
            )
            return (entry, .claimed(entry), sendIfNew)
        }
        if let used = entry.fingerprint, let fingerprint, used != fingerprint { return (nil, .reused(entry), false) }
        if entry.isDone { return (nil, .done(entry), false) }
        if let holder = entry.owner, holder != owner, let until = entry.leaseUntil, until > now {
            return (nil, .busy(owner: holder, leaseUntil: until), false)
        }
        entry.owner = owner
        entry.leaseUntil = leaseUntil
        entry.fence += 1
        entry.fingerprint = entry.fingerprint ?? fingerprint
        entry.updatedAt = now
        return (entry, .claimed(entry), false)
    }

    public static func markSent(
        _ current: LedgerEntry?, key: String, owner: String, fence: Int, lease: Duration, now: Date
    ) throws(LedgerError) -> LedgerEntry {
        var entry = try self.held(current, key: key, by: owner, fence: fence)
        entry.state = .sent
        entry.attempts += 1
        entry.leaseUntil = now.addingTimeInterval(lease.timeInterval)
        entry.updatedAt = now
        return entry
    }

    public static func renew(
        _ current: LedgerEntry?, key: String, owner: String, fence: Int, lease: Duration, now: Date
    ) throws(LedgerError) -> LedgerEntry {
        var entry = try self.held(current, key: key, by: owner, fence: fence)
        entry.leaseUntil = max(entry.leaseUntil ?? now, now.addingTimeInterval(lease.timeInterval))
        entry.updatedAt = now
        return entry
    }

    /// Nil when this claim already completed the key with these bytes (a repeat is harmless).
    /// A completed key refuses every other completion: its outcome stands.
    public static func complete(
        _ current: LedgerEntry?, key: String, owner: String, fence: Int, outcome: [UInt8], now: Date
    ) throws(LedgerError) -> LedgerEntry? {
        if let current, current.isDone {
            guard current.fence == fence, current.outcome == outcome else {
                throw LedgerError.leaseLost(key: key, heldBy: nil)
            }
            return nil
        }
        var entry = try self.held(current, key: key, by: owner, fence: fence)
        entry.state = .completed
        entry.outcome = outcome
        entry.owner = nil
        entry.leaseUntil = nil
        entry.updatedAt = now
        return entry
    }

    public static func markPublished(_ current: LedgerEntry?, key: String, now: Date) throws(LedgerError) -> LedgerEntry
    {
        guard var entry = current, entry.isDone else { throw LedgerError.notClaimed(key: key) }
        entry.state = .published
        entry.updatedAt = now
        return entry
    }

    /// `callNotSent`: the call last marked sent never left; it comes off `attempts`, and an
    /// entry left with none is `claimed` again.
    public static func release(
        _ current: LedgerEntry?, key: String, owner: String, fence: Int, deadLettered: Bool,
        callNotSent: Bool = false, now: Date
    ) throws(LedgerError) -> LedgerEntry {
        var entry = try self.held(current, key: key, by: owner, fence: fence)
        entry.owner = nil
        entry.leaseUntil = nil
        if deadLettered { entry.deadLetters += 1 }
        if callNotSent, entry.state == .sent, entry.attempts > 0 {
            entry.attempts -= 1
            if entry.attempts == 0 { entry.state = .claimed }
        }
        entry.updatedAt = now
        return entry
    }

    /// The entry if `owner` holds it under claim `fence`: its own claim, even past the lease, as
    /// long as no other claim (another worker's, or its own later one) took it.
    private static func held(
        _ current: LedgerEntry?, key: String, by owner: String, fence: Int
    ) throws(LedgerError) -> LedgerEntry {
        guard let entry = current else { throw LedgerError.notClaimed(key: key) }
        guard entry.owner == owner, entry.fence == fence, !entry.isDone else {
            throw LedgerError.leaseLost(key: key, heldBy: entry.owner)
        }
        return entry
    }
}
