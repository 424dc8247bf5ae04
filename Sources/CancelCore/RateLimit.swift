/// A request rate: `requestsPerSecond` on average, with at most `burst` calls back to back.
public struct RateLimit: Sendable, Hashable, Codable, CustomStringConvertible {
    public var requestsPerSecond: Double
    public var burst: Int

    public init(requestsPerSecond: Double, burst: Int = 1) {
        precondition(requestsPerSecond > 0, "a rate limit needs a positive rate")
        self.requestsPerSecond = requestsPerSecond
        self.burst = max(1, burst)
    }

    /// `T` in GCRA: the spacing of calls at the sustained rate.
    public var emissionInterval: Duration {
        .nanoseconds(Int64((1e9 / self.requestsPerSecond).rounded(.up)))
    }

    /// `τ` in GCRA: how far ahead of schedule a caller may be (burst − 1 intervals).
    public var tolerance: Duration {
        self.emissionInterval * (self.burst - 1)
    }

    public var description: String {
        self.burst == 1 ? "\(self.requestsPerSecond)/s" : "\(self.requestsPerSecond)/s (burst \(self.burst))"
    }
}
