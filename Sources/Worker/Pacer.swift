import CancelCore
import Synchronization

/// The pacing of the users whose commands live in one partition, for one assignment: a GCRA
/// limiter per provider that has a rate limit (booking a call's slot ahead, confirming it right
/// before the bytes go out, provider-asked pauses), plain pauses for providers without one, and
/// the hand-over credit (paced users make their first call no earlier than one interval after
/// `start`). Provider-wide pauses are the worker's `ProviderGate`.
final class Pacer: Sendable {
    private struct State {
        var limiters: [ProviderID: RateLimiter<String>] = [:]
        var pausedUntil: [ProviderID: [String: ContinuousClock.Instant]] = [:]
    }

    private let state = Mutex(State())
    private let limits: [ProviderID: RateLimit]
    /// Paced users make their first call no earlier than one interval after this.
    private let start: ContinuousClock.Instant

    init(limits: [ProviderID: RateLimit], start: ContinuousClock.Instant) {
        self.limits = limits
        self.start = start
    }

    struct Booking: Sendable {
        var at: ContinuousClock.Instant
    }

    /// The provider's limiter (made on first use), or nil if it has no rate limit.
    private func limiter(_ provider: ProviderID, in state: State) -> RateLimiter<String>? {
        state.limiters[provider] ?? self.limits[provider].map { RateLimiter(limit: $0, start: self.start) }
    }

    /// Books the next call for `account` at `provider`; nil if it could not happen before `notAfter`.
    func book(
        _ provider: ProviderID, account: String, now: ContinuousClock.Instant, notAfter: ContinuousClock.Instant?
    ) -> Booking? {
        self.state.withLock { state in
            if var limiter = self.limiter(provider, in: state) {
                defer { state.limiters[provider] = limiter }
                return limiter.reserve(account, now: now, notAfter: notAfter).map { Booking(at: $0.at) }
            }
            let at = max(now, state.pausedUntil[provider]?[account] ?? now)
            if let notAfter, at > notAfter { return nil }
            return Booking(at: at)
        }
    }

    /// Whether anything paces `account` at `provider` now: a rate limit, or a pause it asked for.
    func paces(_ provider: ProviderID, account: String, now: ContinuousClock.Instant) -> Bool {
        if self.limits[provider] != nil { return true }
        return self.state.withLock { state in (state.pausedUntil[provider]?[account]).map { $0 > now } ?? false }
    }

    /// Right before the call: nil if it may go now (recorded as sent), else the instant to wait
    /// for. Providers without a limit only honour pauses.
    func acquire(_ provider: ProviderID, account: String, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        self.state.withLock { state in
            if var limiter = self.limiter(provider, in: state) {
                defer { state.limiters[provider] = limiter }
                return limiter.acquire(account, now: now)
            }
            if let paused = state.pausedUntil[provider]?[account], paused > now { return paused }
            return nil
        }
    }

    /// The provider asked this account to slow down until `until`.
    func pause(_ provider: ProviderID, account: String, until: ContinuousClock.Instant) {
        self.state.withLock { state in
            if var limiter = self.limiter(provider, in: state) {
                limiter.pause(account, until: until)
                state.limiters[provider] = limiter
            } else {
                state.pausedUntil[provider, default: [:]][account] = max(
                    until, state.pausedUntil[provider]?[account] ?? until)
            }
        }
    }

    /// Forgets pacing state that can no longer hold anyone back.
    func prune(now: ContinuousClock.Instant) {
        self.state.withLock { state in
            for provider in state.limiters.keys { state.limiters[provider]?.prune(now: now) }
            for provider in state.pausedUntil.keys {
                state.pausedUntil[provider] = state.pausedUntil[provider]?.filter { $0.value > now }
            }
        }
    }

    /// Users held back by their rate limit or a pause right now.
    func throttledUsers(now: ContinuousClock.Instant) -> Int {
        self.state.withLock { state in
            state.limiters.values.reduce(0) { $0 + $1.throttledUsers(now: now) }
                + state.pausedUntil.values.reduce(0) { $0 + $1.values.filter { $0 > now }.count }
        }
    }
}
