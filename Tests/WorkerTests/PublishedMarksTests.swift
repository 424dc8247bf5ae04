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
    static func marks(
        _ ledger: RecordingLedger, logs: CapturedLogs = CapturedLogs(), linger: Duration = .milliseconds(50)
    )
        -> PublishedMarks
    {
        PublishedMarks(
            ledger: ledger, clock: SystemClock(), metrics: WorkerMetrics(), logger: logs.logger, linger: linger)
    }

    @Test("marks that arrive together are written in one ledger call, after the linger; nothing while idle")
    func batched() async throws {
        let ledger = RecordingLedger()
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
        let ledger = RecordingLedger()
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

    @Test(
        "a flush (a revocation's) returns only when the marks acknowledged before it are written, the batch the marker is writing included"
    )
    func flushWaitsForTheBatchInFlight() async throws {
        let ledger = RecordingLedger()
        ledger.markDelay.withLock { $0 = .milliseconds(500) }
        let keys = try await ledger.completed(3, prefix: "flush")
        let marks = Self.marks(ledger, linger: .zero)
        // Marked before the marker runs, so that its first batch holds all three: marked while
        // it runs, a starved test thread (a CI run) let it take the first key alone.
        for key in keys { marks.mark(key) }
        async let running: Void = marks.run()
        // The marker took the batch and is writing it (slowly): the queue is empty. (30 s: a CI
        // run's starved pool did not start the marker within 5 s; this waits for an order, not a
        // duration.)
        #expect(try await eventually(timeout: .seconds(30)) { ledger.batches.withLock { $0.count } == 1 })
        await marks.flush()
        #expect(try await ledger.states(keys) == [.published, .published, .published], "written when flush returned")
        #expect(ledger.batches.withLock { $0.count } == 1, "no second write of the same keys")
        marks.finish()
        await running
    }

    @Test("more marks than a batch holds: several calls of at most maxBatch keys")
    func largeBacklog() async throws {
        let ledger = RecordingLedger()
        let keys = try await ledger.completed(600, prefix: "large")
        let marks = Self.marks(ledger)
        for key in keys { marks.mark(key) }
        await marks.flush()
        #expect(ledger.batches.withLock { $0.map(\.count) } == [256, 256, 88])
        #expect(try await ledger.states(keys).allSatisfy { $0 == .published })
    }

    @Test("a ledger that refuses every try: keys stay completed, one warning, the marker goes on")
    func refusedMarksStayCompleted() async throws {
        let ledger = RecordingLedger()
        ledger.failing.store(true, ordering: .relaxed)
        let keys = try await ledger.completed(2, prefix: "refused")
        let logs = CapturedLogs()
        let marks = Self.marks(ledger, logs: logs, linger: .milliseconds(1))
        async let running: Void = marks.run()
        for key in keys { marks.mark(key) }
        // Three tries take ~0.3 s; the generous waits only absorb a loaded machine (the whole
        // suite shares two cores), they return as soon as the condition holds.
        #expect(try await eventually(timeout: .seconds(30)) { ledger.batches.withLock { $0.count } == 3 })
        #expect(
            try await eventually(timeout: .seconds(30)) {
                logs.lines.contains { $0.level == .warning && $0.message.contains("could not mark keys published") }
            })
        #expect(try await ledger.states(keys) == [.completed, .completed])

        // The store is back: later marks land.
        ledger.failing.store(false, ordering: .relaxed)
        let later = try await ledger.completed(1, prefix: "later")
        marks.mark(later[0])
        #expect(try await eventually(timeout: .seconds(30)) { (try? await ledger.states(later)) == [.published] })
        marks.finish()
        await running
    }
}
