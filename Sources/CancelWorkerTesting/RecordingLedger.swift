public import CancelCore
public import Foundation
public import Synchronization

/// The in-memory ledger, recording the writes the worker asks of it: the operations in order
/// (`operations`: "claim", "claim+sent" for a claim that also marked the key sent, "mark_sent",
/// "renew", "complete", "release"), and each batch of published marks (`batches`). `failing`
/// refuses the published marks as an unreachable store would.
public final class RecordingLedger: IdempotencyLedger {
    public let inner = InMemoryLedger()
    public let operations = Mutex<[String]>([])
    public let batches = Mutex<[[String]]>([])
    public let failing = Atomic<Bool>(false)
    /// How long each `markPublished` call takes (a slow ledger); zero by default.
    public let markDelay = Mutex<Duration>(.zero)
    /// How long each `renew` call takes (a slow ledger); zero by default.
    public let renewDelay = Mutex<Duration>(.zero)
    /// Runs after each claim is written and before its answer returns (a claim answered late,
    /// behind a busy writer: a test advances its clock here); nil by default.
    public let afterClaim = Mutex<(@Sendable () async -> Void)?>(nil)
    /// How long each `entry(for:)` stalls, deaf to cancellation (a database that stopped
    /// answering, as a PostgreSQL statement waits for its answer); zero by default.
    public let entryStall = Mutex<Duration>(.zero)

    public init() {}

    private func record(_ operation: String) { self.operations.withLock { $0.append(operation) } }

    public func claim(
        key: String, owner: String, fingerprint: String?, lease: Duration, now: Date, sendIfNew: Bool
    ) async throws -> (result: ClaimResult, sent: Bool) {
        let answer = await self.inner.claim(
            key: key, owner: owner, fingerprint: fingerprint, lease: lease, now: now, sendIfNew: sendIfNew)
        self.record(answer.sent ? "claim+sent" : "claim")
        if let hook = self.afterClaim.withLock({ $0 }) { await hook() }
        return answer
    }

    public func markSent(key: String, owner: String, fence: Int, lease: Duration, now: Date) async throws -> LedgerEntry
    {
        self.record("mark_sent")
        return try await self.inner.markSent(key: key, owner: owner, fence: fence, lease: lease, now: now)
    }

    public func renew(key: String, owner: String, fence: Int, lease: Duration, now: Date) async throws -> LedgerEntry {
        self.record("renew")
        let delay = self.renewDelay.withLock { $0 }
        if delay > .zero { try await Task.sleep(for: delay) }
        return try await self.inner.renew(key: key, owner: owner, fence: fence, lease: lease, now: now)
    }

    public func complete(key: String, owner: String, fence: Int, outcome: [UInt8], now: Date) async throws {
        self.record("complete")
        try await self.inner.complete(key: key, owner: owner, fence: fence, outcome: outcome, now: now)
    }

    public func markPublished(key: String, now: Date) async throws {
        try await self.markPublished(keys: [key], now: now)
    }

    public func markPublished(keys: [String], now: Date) async throws {
        self.batches.withLock { $0.append(keys) }
        let delay = self.markDelay.withLock { $0 }
        if delay > .zero { try await Task.sleep(for: delay) }
        if self.failing.load(ordering: .relaxed) { throw LedgerError.unavailable("refused by the test") }
        try await self.inner.markPublished(keys: keys, now: now)
    }

    public func release(
        key: String, owner: String, fence: Int, deadLettered: Bool, callNotSent: Bool, now: Date
    ) async throws {
        self.record(callNotSent ? "release+unsent" : "release")
        try await self.inner.release(
            key: key, owner: owner, fence: fence, deadLettered: deadLettered, callNotSent: callNotSent, now: now)
    }

    public func entry(for key: String) async throws -> LedgerEntry? {
        let stall = self.entryStall.withLock { $0 }
        if stall > .zero {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().asyncAfter(deadline: .now() + stall.timeInterval) { continuation.resume() }
            }
        }
        return await self.inner.entry(for: key)
    }

    public func purge(updatedBefore cutoff: Date, limit: Int) async throws -> Int {
        await self.inner.purge(updatedBefore: cutoff, limit: limit)
    }

    public func recordPause(_ pause: PacingPause, now: Date) async throws {
        await self.inner.recordPause(pause, now: now)
    }

    public func pauses(activeAt now: Date) async throws -> [PacingPause] { await self.inner.pauses(activeAt: now) }

    public func shutdown() async {}

    /// `count` keys claimed, sent and completed, as the worker leaves them before the mark.
    public func completed(_ count: Int, prefix: String) async throws -> [String] {
        let keys = (0..<count).map { "\(prefix)-\($0)" }
        for key in keys {
            _ = try await self.claim(key: key, owner: "w", lease: .seconds(30), now: Date())
            _ = try await self.markSent(key: key, owner: "w", fence: 1, lease: .seconds(30), now: Date())
            try await self.complete(key: key, owner: "w", fence: 1, outcome: [1], now: Date())
        }
        return keys
    }

    /// The keys' states (nil: unknown).
    public func states(_ keys: [String]) async throws -> [LedgerState?] {
        var states: [LedgerState?] = []
        for key in keys { states.append(try await self.entry(for: key)?.state) }
        return states
    }
}
