import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Logging
import Testing

@testable import Worker

/// Review finding (pacing): a worker frozen past its session timeout (SIGSTOP, a paused VM) lost
/// its partitions, but its commands that waited for their users' slots woke at once on resume,
/// before the revoke arrived: their partitions still looked owned, and keys the new owner had not
/// claimed yet renewed without trouble, so both members called the same user together. After a
/// freeze, calls now wait until the group has had time to answer.
@Suite("Calls wait after a freeze of the process", .timeLimit(.minutes(2)))
struct FreezeWatchTests {
    static let start = ContinuousClock.now

    static func at(_ milliseconds: Int) -> ContinuousClock.Instant { Self.start + .milliseconds(milliseconds) }

    static func watch() -> FreezeWatch {
        FreezeWatch(threshold: .seconds(3), hold: .seconds(4), logger: Logger(label: "freeze"), now: Self.start)
    }

    @Test("ticks 100 ms apart, or a gap under the threshold: nothing waits")
    func noFreeze() {
        let watch = Self.watch()
        for step in 1...30 { watch.tick(now: Self.at(100 * step)) }
        #expect(watch.heldUntil(now: Self.at(3_000)) == nil)
        watch.tick(now: Self.at(5_900))  // 2.9 s late
        #expect(watch.heldUntil(now: Self.at(5_950)) == nil)
    }

    @Test("a gap of the threshold seen by the watch's tick: calls wait `hold` from the end of the freeze, once")
    func tickSeesTheFreeze() {
        let watch = Self.watch()
        watch.tick(now: Self.at(100))
        watch.tick(now: Self.at(3_100))
        #expect(watch.heldUntil(now: Self.at(3_150)) == Self.at(7_100))
        watch.tick(now: Self.at(3_200))
        #expect(watch.heldUntil(now: Self.at(3_250)) == Self.at(7_100), "the freeze counted once")
        for step in 33...71 { watch.tick(now: Self.at(100 * step)) }
        #expect(watch.heldUntil(now: Self.at(7_100)) == nil, "over after the hold")
    }

    @Test("a guard that runs before the watch's tick after the freeze sees it too")
    func guardSeesTheFreeze() {
        let watch = Self.watch()
        watch.tick(now: Self.at(100))
        #expect(watch.heldUntil(now: Self.at(10_100)) == Self.at(14_100))
        watch.tick(now: Self.at(10_150))
        #expect(watch.heldUntil(now: Self.at(10_200)) == Self.at(14_100))
    }

    @Test("a worker that was frozen sends no call until the hold has passed")
    func workerHoldsCalls() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.fastpod)
        try await harness.withScriptedWorker(provider) { worker in
            // What the watch's thread sees on resume from a freeze of the threshold.
            let resumed = ContinuousClock.now + worker.freezes.threshold
            worker.freezes.tick(now: resumed)
            try await harness.send([command(order: "after-freeze")])
            let outcomes = try await harness.outcomes(atLeast: 1, timeout: .seconds(60))
            #expect(outcomes.first?.status == .cancelled)
            let called = try #require(provider.calledAt("after-freeze").first)
            #expect(called >= resumed + worker.freezes.hold, "called \(resumed + worker.freezes.hold - called) early")
        }
    }
}
