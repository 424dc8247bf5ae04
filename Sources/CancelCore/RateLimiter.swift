/// Per-user pacing with the Generic Cell Rate Algorithm, as a value type: no clock, no locks,
/// no I/O. The caller passes the time and keeps the value behind its own lock, so it tests in
/// microseconds with any clock.
///
/// Each user has a theoretical arrival time (TAT). A call at `t` is allowed when
/// `t ≥ TAT − τ`; booking it moves `TAT` to `max(TAT, t) + T`.
///
/// Users first seen by this limiter start with **no burst credit** and not before one interval
/// after `start` (the moment the partition was assigned): the previous owner of the partition
/// may have spent the user's budget just before it let go.
///
/// Two schedules per user: `reserve` books slots ahead (so waiting calls wake in order, and a
/// deadline that cannot be met is known at once), and `acquire` checks the *actual* send time
/// right before a call, so a call that woke late never squeezes the next one closer than the
/// limit allows.
public struct RateLimiter<User: Hashable & Sendable>: Sendable {
    public let limit: RateLimit
    public let start: ContinuousClock.Instant
    private var theoreticalArrival: [User: ContinuousClock.Instant] = [:]
    private var sentArrival: [User: ContinuousClock.Instant] = [:]
    /// Users the provider told to slow down: their interval is stretched by `factor`, which
    /// falls back to 1 over `slowdownRecovery` after `since`.
    private var slowdowns: [User: (factor: Double, since: ContinuousClock.Instant)] = [:]
    /// How much one "slow down" stretches a user's interval, at most `maxSlowdown` in all.
    public static var slowdownStep: Double { 0.5 }
    public static var maxSlowdown: Double { 3 }
    /// How long a slowed-down user takes to get back to the full pace.
    public static var slowdownRecovery: Duration { .seconds(60) }

    public init(limit: RateLimit, start: ContinuousClock.Instant) {
        self.limit = limit
        self.start = start
    }

    /// A booked call: when it may be made.
    public struct Slot: Sendable, Hashable {
        public var at: ContinuousClock.Instant
    }

    /// Books the next call for `user` unless it could only happen after `notAfter` (a deadline);
    /// returns `nil` then, and nothing is booked.
    public mutating func reserve(
        _ user: User, now: ContinuousClock.Instant, notAfter: ContinuousClock.Instant? = nil
    ) -> Slot? {
        let tat = self.theoreticalArrival[user] ?? self.freshTAT(now: now)
        let at = max(now, tat - self.limit.tolerance)
        if let notAfter, at > notAfter { return nil }
        self.theoreticalArrival[user] = max(tat, at) + self.interval(for: user, now: now)
        return Slot(at: at)
    }

    /// Right before a call: `nil` if it may go now (and it is recorded as sent), otherwise the
    /// instant to wait for.
    public mutating func acquire(_ user: User, now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        let tat = self.sentArrival[user] ?? self.freshTAT(now: now)
        let allowed = tat - self.limit.tolerance
        if now < allowed { return allowed }
        self.sentArrival[user] = max(tat, now) + self.interval(for: user, now: now)
        return nil
    }

    /// The spacing of `user`'s calls now: the limit's, stretched while a slow-down lasts.
    public func interval(for user: User, now: ContinuousClock.Instant) -> Duration {
        self.limit.emissionInterval * self.slowdown(for: user, now: now)
    }

    /// The factor `user`'s interval is stretched by now (1: none).
    public func slowdown(for user: User, now: ContinuousClock.Instant) -> Double {
        guard let slowdown = self.slowdowns[user] else { return 1 }
        let recovered = min(max((now - slowdown.since) / Self.slowdownRecovery, 0), 1)
        return slowdown.factor - (slowdown.factor - 1) * recovered
    }

    /// No call for `user` before `until` (a provider's Retry-After): `acquire` holds calls booked
    /// earlier until then, and new bookings start after it. After the pause the user has no
    /// burst credit.
    /// The pause also slows the user down (see `slowdown(for:now:)`), so one violation does not
    /// repeat: the interval grows by `slowdownStep` per pause (at most `maxSlowdown` times) and
    /// recovers linearly over `slowdownRecovery` from the end of the pause.
    public mutating func pause(_ user: User, until: ContinuousClock.Instant) {
        let factor = min(self.slowdown(for: user, now: until) + Self.slowdownStep, Self.maxSlowdown)
        self.slowdowns[user] = (factor, until)
        let resume = until + self.limit.tolerance
        self.theoreticalArrival[user] = max(self.theoreticalArrival[user] ?? resume, resume)
        self.sentArrival[user] = max(self.sentArrival[user] ?? resume, resume)
    }

    /// Forgets users whose schedule is fully in the past (they would be recreated with no
    /// credit, which is never more permissive). Keeps memory bounded by active users.
    public mutating func prune(now: ContinuousClock.Instant) {
        self.theoreticalArrival = self.theoreticalArrival.filter { $0.value > now }
        self.sentArrival = self.sentArrival.filter { $0.value > now }
        self.slowdowns = self.slowdowns.filter { now - $0.value.since < Self.slowdownRecovery }
    }

    /// Users with state.
    public var trackedUsers: Int { self.theoreticalArrival.count }

    /// Users with calls booked beyond their next natural slot: a backlog held back by the limit.
    public func throttledUsers(now: ContinuousClock.Instant) -> Int {
        let threshold = now + self.limit.emissionInterval
        return self.theoreticalArrival.values.filter { $0 - self.limit.tolerance > threshold }.count
    }

    private func freshTAT(now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        // No burst credit: the bucket starts full, first call one interval after the start.
        max(now, self.start + self.limit.emissionInterval) + self.limit.tolerance
    }
}
