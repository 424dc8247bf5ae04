public import Foundation

/// Where a key stands. `claimed → sent → completed → published`; a claim whose lease ran out
/// may be taken over by another worker, keeping `sent` (a call may have happened).
public enum LedgerState: String, Sendable, Hashable, Codable {
    /// A worker holds the key; no provider call was made under this claim yet.
    case claimed
    /// A provider call was (or is being) made; its result is not recorded yet.
    case sent
    /// The terminal outcome is recorded (`outcome` holds its bytes) but Kafka has not acknowledged it.
    case completed
    /// The terminal outcome was acknowledged by Kafka. Nothing more happens for this key.
    case published
}

/// One idempotency key's record.
public struct LedgerEntry: Sendable, Hashable {
    public var key: String
    public var state: LedgerState
    /// The worker holding the claim, while `state` is `claimed` or `sent`.
    public var owner: String?
    /// Until when `owner` holds the key; after it, another worker may claim it.
    public var leaseUntil: Date?
    /// Provider calls made for this key so far (across workers and retries).
    public var attempts: Int
    /// The fencing token: how many claims the key has had. Each claim (a new one, a takeover, a
    /// re-claim after a release) gets the next number, and only the current one may mark the
    /// key sent, complete it, renew or release it: a worker that was paused past its lease (a
    /// zombie) and resumes holds an old number, so it can record — and publish — nothing.
    public var fence: Int
    /// What the command that first used the key asks (`OutcomeID.fingerprint`): another command
    /// under the same key is a reuse, never a duplicate. Nil for entries written before it existed.
    public var fingerprint: String?
    /// Times this key was handed to the dead-letter topic.
    public var deadLetters: Int
    /// The encoded terminal outcome, once `completed`.
    public var outcome: [UInt8]?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        key: String,
        state: LedgerState,
        owner: String?,
        leaseUntil: Date?,
        attempts: Int,
        fence: Int = 0,
        fingerprint: String? = nil,
        deadLetters: Int = 0,
        outcome: [UInt8]?,
        createdAt: Date,
        updatedAt: Date
    ) {
        self.fence = fence
        self.fingerprint = fingerprint
        self.key = key
        self.state = state
        self.owner = owner
        self.leaseUntil = leaseUntil
        self.attempts = attempts
        self.deadLetters = deadLetters
        self.outcome = outcome
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// `completed` or `published`: the key's terminal outcome exists.
    public var isDone: Bool { self.state == .completed || self.state == .published }
}

/// The answer to a claim.
public enum ClaimResult: Sendable, Hashable {
    /// The caller holds the key until the lease ends. The entry tells what happened before
    /// (`attempts > 0`: an earlier call may have reached the provider).
    case claimed(LedgerEntry)
    /// Another worker (or another task of this one) holds an unexpired lease.
    case busy(owner: String, leaseUntil: Date)
    /// The key has its terminal outcome; publish `entry.outcome` again only if not `published`.
    case done(LedgerEntry)
    /// The key was first used by a different command (another fingerprint); nothing changed.
    case reused(LedgerEntry)
}

/// A provider's request to slow down (a 29001, a 429 with Retry-After), kept in the ledger so
/// that whichever worker owns the account's partition next honours it too: pacing lives with
/// the partition, and a pause must not end because the partition moved.
public struct PacingPause: Sendable, Hashable {
    /// The provider's identifier (`ProviderID.rawValue`).
    public var provider: String
    /// The account asked to wait; nil when the provider asked every account (a global limit).
    public var account: String?
    /// No call before this instant.
    public var until: Date

    public init(provider: String, account: String?, until: Date) {
        self.provider = provider
        self.account = account
        self.until = until
    }
}

/// Errors a ledger store raises.
public enum LedgerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The caller's claim is gone: its lease ran out and another claim took the key (or
    /// completed it). The caller must not call the provider or publish anything for the key.
    case leaseLost(key: String, heldBy: String?)
    /// The key has no entry (or not the state the operation needs).
    case notClaimed(key: String)
    /// The store could not be reached or failed; the operation may be retried.
    case unavailable(String)

    public var description: String {
        switch self {
        case .leaseLost(let key, let heldBy): "lease on \(key) lost to \(heldBy ?? "nobody")"
        case .notClaimed(let key): "\(key) is not claimed"
        case .unavailable(let reason): "ledger unavailable: \(reason)"
        }
    }
}

/// The only state of the system: one entry per idempotency key, shared by every worker.
///
/// Implementations: SQLite (embedded default, one node) and PostgreSQL (fleets). Every
/// operation is atomic; `claim` is the mutual exclusion that keeps two workers from calling
/// the provider for the same key at once.
public protocol IdempotencyLedger: Sendable {
    /// Creates the entry (`claimed`) or takes it over when its lease ended; `busy` while
    /// someone else's lease runs; `done` once a terminal outcome is recorded. A claim gets the
    /// next fencing token (`entry.fence`): the operations below succeed only with it.
    /// `fingerprint` identifies the command: a key first used by another fingerprint answers
    /// `reused` and stays as it is; an entry without one (written before) adopts it.
    func claim(key: String, owner: String, fingerprint: String?, lease: Duration, now: Date) async throws -> ClaimResult

    /// `claim`, and for a key seen for the first time also `markSent` in the same atomic step
    /// (state `sent`, one attempt, `sent` true): for a command whose first call leaves at once,
    /// one ledger write instead of two. A key that exists is claimed as `claim` does, `sent`
    /// false: the caller marks it sent before calling.
    func claim(
        key: String, owner: String, fingerprint: String?, lease: Duration, now: Date, sendIfNew: Bool
    ) async throws -> (result: ClaimResult, sent: Bool)

    /// Before a provider call: state `sent`, `attempts + 1`, lease extended to `now + lease`.
    /// Throws `leaseLost` unless `owner` holds the key under claim `fence`.
    func markSent(key: String, owner: String, fence: Int, lease: Duration, now: Date) async throws -> LedgerEntry

    /// Extends the lease to `now + lease` while a call is in flight. Throws `leaseLost` unless
    /// `owner` holds the key under claim `fence`.
    func renew(key: String, owner: String, fence: Int, lease: Duration, now: Date) async throws -> LedgerEntry

    /// Records the terminal outcome (state `completed`). Throws `leaseLost` unless `owner` holds
    /// the key under claim `fence`; the same claim repeating it with the same outcome is harmless,
    /// any other completion of a completed key is refused (its outcome stands).
    func complete(key: String, owner: String, fence: Int, outcome: [UInt8], now: Date) async throws

    /// Kafka acknowledged the terminal outcome (state `published`).
    func markPublished(key: String, now: Date) async throws

    /// `markPublished` for several keys at once, in one transaction where the store has them.
    /// A key that is not done (unknown, or claimed again meanwhile) is left as it is.
    func markPublished(keys: [String], now: Date) async throws

    /// Gives the claim up without a terminal outcome (the command went to a retry tier or the
    /// dead-letter topic): the lease ends now so the next delivery can claim at once.
    /// `deadLettered` counts a dead-lettering. `callNotSent`: the call last marked sent never
    /// left (the send-time guard stopped it): it comes off `attempts`, and an entry left with
    /// none is `claimed` again, so the next owner does not count a call in doubt that was never
    /// made. Throws `leaseLost` unless the claim is current.
    func release(key: String, owner: String, fence: Int, deadLettered: Bool, callNotSent: Bool, now: Date) async throws

    /// The entry, if the key is known.
    func entry(for key: String) async throws -> LedgerEntry?

    /// Removes at most `limit` entries not updated since `cutoff` (retention), so one purge
    /// never holds the store for long. Returns how many; call again while it returns `limit`.
    func purge(updatedBefore cutoff: Date, limit: Int) async throws -> Int

    /// Keeps `pause` (the later `until` wins over one already kept for the same provider and
    /// account) and forgets pauses that ended before `now`.
    func recordPause(_ pause: PacingPause, now: Date) async throws

    /// The pauses still running at `now` (few: they last seconds to minutes).
    func pauses(activeAt now: Date) async throws -> [PacingPause]

    /// Releases connections and files.
    func shutdown() async
}

extension IdempotencyLedger {
    /// `claim` without the combined step: what every store's plain claim is.
    public func claim(
        key: String, owner: String, fingerprint: String?, lease: Duration, now: Date
    ) async throws -> ClaimResult {
        try await self.claim(key: key, owner: owner, fingerprint: fingerprint, lease: lease, now: now, sendIfNew: false)
            .result
    }

    /// `release` of a claim whose calls all left (or none was marked sent).
    public func release(key: String, owner: String, fence: Int, deadLettered: Bool, now: Date) async throws {
        try await self.release(
            key: key, owner: owner, fence: fence, deadLettered: deadLettered, callNotSent: false, now: now)
    }

    /// A claim without a fingerprint (tools, tests): no reuse check, an existing one stays.
    public func claim(key: String, owner: String, lease: Duration, now: Date) async throws -> ClaimResult {
        try await self.claim(key: key, owner: owner, fingerprint: nil, lease: lease, now: now)
    }
}

extension IdempotencyLedger {
    /// One key after another; stores with transactions write them in one.
    public func markPublished(keys: [String], now: Date) async throws {
        for key in keys {
            do {
                try await self.markPublished(key: key, now: now)
            } catch LedgerError.notClaimed {
                continue
            }
        }
    }
}
