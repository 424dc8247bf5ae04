import CancelCore
import CancelWorkerTesting
import Foundation
import Logging
import Synchronization
import Testing

@testable import Worker

/// Issue 14: acknowledged outcomes are marked `published` in batches off the command's path,
/// not one awaited ledger transaction per command.
@Suite("Published marks: batched, written at the end, harmless when lost", .timeLimit(.minutes(1)))
struct PublishedMarksTests {
    /// The in-memory ledger, counting batch marks; `failing` refuses them as an unreachable store.
    final class CountingLedger: IdempotencyLedger {
        let inner = InMemoryLedger()
        let batches = Mutex<[[String]]>([])
        let failing = Atomic<Bool>(false)

        func claim(
            key: String, owner: String, fingerprint: String?, lease: Duration, now: Date
        ) async throws
            -> ClaimResult
        {
            await self.inner.claim(key: key, owner: owner, fingerprint: fingerprint, lease: lease, now: now)
        }
        func markSent(key: String, owner: String, fence: Int, lease: Duration, now: Date) async throws -> LedgerEntry {
            try await self.inner.markSent(key: key, owner: owner, fence: fence, lease: lease, now: now)
        }
        func renew(key: String, owner: String, fence: Int, lease: Duration, now: Date) async throws -> LedgerEntry {
            try await self.inner.renew(key: key, owner: owner, fence: fence, lease: lease, now: now)
        }
        func complete(key: String, owner: String, fence: Int, outcome: [UInt8], now: Date) async throws {
            try await self.inner.complete(key: key, owner: owner, fence: fence, outcome: outcome, now: now)
        }
        func markPublished(key: String, now: Date) async throws {
            try await self.markPublished(keys: [key], now: now)
        }
        func markPublished(keys: [String], now: Date) async throws {
            self.batches.withLock { $0.append(keys) }
            if self.failing.load(ordering: .relaxed) { throw LedgerError.unavailable("refused by the test") }
            try await self.inner.markPublished(keys: keys, now: now)
        }
        func release(key: String, owner: String, fence: Int, deadLettered: Bool, now: Date) async throws {
            try await self.inner.release(key: key, owner: owner, fence: fence, deadLettered: deadLettered, now: now)
        }
        func entry(for key: String) async throws -> LedgerEntry? { await self.inner.entry(for: key) }
        func purge(updatedBefore cutoff: Date, limit: Int) async throws -> Int {
            await self.inner.purge(updatedBefore: cutoff, limit: limit)
        }
        func recordPause(_ pause: PacingPause, now: Date) async throws {
            await self.inner.recordPause(pause, now: now)
        }
        func pauses(activeAt now: Date) async throws -> [PacingPause] { await self.inner.pauses(activeAt: now) }
        func shutdown() async {}

        /// `count` keys claimed, sent and completed, as the worker leaves them before the mark.
        func completed(_ count: Int, prefix: String) async throws -> [String] {
            let keys = (0..<count).map { "\(prefix)-\($0)" }
            for key in keys {
                _ = try await self.claim(key: key, owner: "w", lease: .seconds(30), now: Date())
                _ = try await self.markSent(key: key, owner: "w", fence: 1, lease: .seconds(30), now: Date())
                try await self.complete(key: key, owner: "w", fence: 1, outcome: [1], now: Date())
            }
            return keys
        }

        func states(_ keys: [String]) async throws -> [LedgerState?] {
            var states: [LedgerState?] = []
            for key in keys { states.append(try await self.entry(for: key)?.state) }
            return states
        }
    }

    static func marks(
        _ ledger: CountingLedger, logs: CapturedLogs = CapturedLogs(), linger: Duration = .milliseconds(50)
    )
        -> PublishedMarks
    {
        PublishedMarks(
            ledger: ledger, clock: SystemClock(), metrics: WorkerMetrics(), logger: logs.logger, linger: linger)
    }

    @Test("marks that arrive together are written in one ledger call, after the linger; nothing while idle")
    func batched() async throws {
        let ledger = CountingLedger()
        let keys = try await ledger.completed(40, prefix: "batch")
        let marks = Self.marks(ledger)
        async let running: Void = marks.run()
        try await Task.sleep(for: .milliseconds(100))
        #expect(ledger.batches.withLock { $0.isEmpty }, "no ledger call without marks")
        for key in keys { marks.mark(key) }
        #expect(marks.isAcknowledged(keys[0]), "acknowledged, its mark on the way: a duplicate publishes nothing")
        #expect(try await eventually(timeout: .seconds(5)) { marks.backlog == 0 })
        #expect(!marks.isAcknowledged(keys[0]), "written: the ledger answers from now on")
        #expect(
            try await eventually(timeout: .seconds(5)) {
                (try? await ledger.states(keys))?.allSatisfy { $0 == .published } == true
            })
        #expect(ledger.batches.withLock { $0.map(\.count) } == [40], "one call for the 40 marks")
        marks.finish()
        await running
    }

    @Test("finish writes the marks still waiting for their linger, then run returns")
    func finishWritesTheRest() async throws {
        let ledger = CountingLedger()
        let keys = try await ledger.completed(3, prefix: "finish")
        let marks = Self.marks(ledger, linger: .seconds(30))
        async let running: Void = marks.run()
        for key in keys { marks.mark(key) }
        let start = ContinuousClock.now
        marks.finish()
        await running
        #expect(ContinuousClock.now - start < .seconds(10), "finish ends the linger")
        #expect(try await ledger.states(keys) == [.published, .published, .published])
    }

    @Test("more marks than a batch holds: several calls of at most maxBatch keys")
    func largeBacklog() async throws {
        let ledger = CountingLedger()
        let keys = try await ledger.completed(600, prefix: "large")
        let marks = Self.marks(ledger)
        for key in keys { marks.mark(key) }
        await marks.flush()
        #expect(ledger.batches.withLock { $0.map(\.count) } == [256, 256, 88])
        #expect(try await ledger.states(keys).allSatisfy { $0 == .published })
    }

    @Test("a ledger that refuses every try: keys stay completed, one warning, the marker goes on")
    func refusedMarksStayCompleted() async throws {
        let ledger = CountingLedger()
        ledger.failing.store(true, ordering: .relaxed)
        let keys = try await ledger.completed(2, prefix: "refused")
        let logs = CapturedLogs()
        let marks = Self.marks(ledger, logs: logs, linger: .milliseconds(1))
        async let running: Void = marks.run()
        for key in keys { marks.mark(key) }
        #expect(try await eventually(timeout: .seconds(5)) { ledger.batches.withLock { $0.count } == 3 })
        #expect(
            try await eventually(timeout: .seconds(5)) {
                logs.lines.contains { $0.level == .warning && $0.message.contains("could not mark keys published") }
            })
        #expect(try await ledger.states(keys) == [.completed, .completed])

        // The store is back: later marks land.
        ledger.failing.store(false, ordering: .relaxed)
        let later = try await ledger.completed(1, prefix: "later")
        marks.mark(later[0])
        #expect(try await eventually(timeout: .seconds(5)) { (try? await ledger.states(later)) == [.published] })
        marks.finish()
        await running
    }
}
