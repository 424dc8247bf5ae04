import CancelCore
import Synchronization

/// Provider-wide pauses: when a provider says *everyone* must wait (a global limit, an
/// outage), every account's calls to it wait, in every partition of this worker.
final class ProviderGate: Sendable {
    private let pausedUntil = Mutex<[ProviderID: ContinuousClock.Instant]>([:])

    func pause(_ provider: ProviderID, until: ContinuousClock.Instant) {
        self.pausedUntil.withLock { paused in
            paused[provider] = max(until, paused[provider] ?? until)
        }
    }

    /// When calls to `provider` may go again (nil: now).
    func openAt(_ provider: ProviderID, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        self.pausedUntil.withLock { paused in
            guard let until = paused[provider], until > now else { return nil }
            return until
        }
    }
}
