import Foundation
import Logging
import Synchronization

/// Seconds-long freezes of this process — SIGSTOP, a paused VM, a host that starved it — after
/// which no provider call leaves until the group had time to say whether this member still owns
/// its partitions.
///
/// A member frozen past its session timeout lost its partitions to another member, but learns
/// so only from the first heartbeat answer after it resumes. Meanwhile every command that was
/// waiting for its user's slot wakes at once, its partition still looks owned, and a key the new
/// owner has not claimed yet renews without trouble: the two members would call the same user
/// together, beyond its limit. So the send-time guard holds calls for `hold` (a heartbeat
/// interval and 2 s) after a gap of `threshold` (half the session timeout): by then the revoke
/// has arrived, or the membership stands.
///
/// The gap is seen twice over: by a thread of its own that ticks every 100 ms, and by the guard
/// itself (`heldUntil`), whichever runs first after the freeze.
final class FreezeWatch: Sendable {
    let threshold: Duration
    let hold: Duration
    private let logger: Logger
    private struct State {
        var lastTick: ContinuousClock.Instant
        var heldUntil: ContinuousClock.Instant?
        var running = true
    }
    private let state: Mutex<State>

    init(threshold: Duration, hold: Duration, logger: Logger, now: ContinuousClock.Instant = .now) {
        self.threshold = threshold
        self.hold = hold
        self.logger = logger
        self.state = Mutex(State(lastTick: now))
    }

    /// The watch's tick: the time goes on.
    func tick(now: ContinuousClock.Instant) {
        self.report(self.state.withLock { self.observe(&$0, now: now) })
    }

    /// Until when calls must wait after a freeze (nil: they may go). One lock: the guard runs it
    /// before every call.
    func heldUntil(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        let (frozen, held) = self.state.withLock { state in
            let frozen = self.observe(&state, now: now)
            guard let until = state.heldUntil, until > now else { return (frozen, nil as ContinuousClock.Instant?) }
            return (frozen, until)
        }
        self.report(frozen)
        return held
    }

    /// The gap since the last reading, if it was a freeze (then calls are held from now).
    private func observe(_ state: inout State, now: ContinuousClock.Instant) -> Duration? {
        let gap = now - state.lastTick
        state.lastTick = max(state.lastTick, now)
        guard gap >= self.threshold else { return nil }
        state.heldUntil = max(state.heldUntil ?? now, now + self.hold)
        return gap
    }

    private func report(_ frozen: Duration?) {
        guard let frozen else { return }
        self.logger.warning(
            "the process was frozen; provider calls wait until the group has confirmed this member's partitions",
            metadata: ["frozen_for": "\(frozen)", "calls_wait": "\(self.hold)"])
    }

    /// Ticks every 100 ms on a thread of its own until `stop`; the time before counts for nothing.
    func start() {
        self.state.withLock { state in
            state.lastTick = .now
            state.running = true
        }
        let thread = Thread { [self] in
            while self.state.withLock({ $0.running }) {
                Thread.sleep(forTimeInterval: 0.1)
                self.tick(now: .now)
            }
        }
        thread.name = "freeze-watch"
        thread.start()
    }

    func stop() {
        self.state.withLock { $0.running = false }
    }
}
