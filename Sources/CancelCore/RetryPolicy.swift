/// A retry tier: a topic where a command waits `delay` before it is tried again.
public struct RetryTier: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The topic suffix: `<commands>.retry.<name>`.
    public var name: String
    public var delay: Duration

    public init(name: String, delay: Duration) {
        self.name = name
        self.delay = delay
    }

    public var description: String { self.name }

    /// Parses `5s`, `1m`, `10m`, `2h`, `500ms` into a tier named after itself.
    public init?(_ text: String) {
        guard let delay = Duration(humanReadable: text) else { return nil }
        self.init(name: text, delay: delay)
    }
}

/// How failures that may succeed later (`retryLater`, `unknown`) are retried: a few quick
/// attempts in process (exponential backoff with full jitter, honouring Retry-After), then the
/// retry tiers in order, then the dead-letter topic once `maxAttempts` provider calls were made.
/// Never past a command's deadline.
public struct RetryPolicy: Sendable, Hashable {
    /// Provider calls per delivery before the command moves to the next tier.
    public var inProcessAttempts: Int = 3
    /// First backoff; doubles per attempt, capped by `maxInProcessBackoff`.
    public var baseBackoff: Duration = .milliseconds(200)
    /// A wait longer than this (e.g. a long Retry-After) goes to a retry tier instead of
    /// holding an in-flight slot.
    public var maxInProcessBackoff: Duration = .seconds(5)
    /// Tiers in order; the last one is reused until attempts run out.
    public var tiers: [RetryTier] = [RetryTier("5s")!, RetryTier("1m")!, RetryTier("10m")!]
    /// Provider calls in total, across tiers and workers, before the command is dead-lettered.
    public var maxAttempts: Int = 10

    public init() {}

    /// The wait before in-process attempt `attempt + 1` (attempt ≥ 1): full jitter over
    /// `base · 2^(attempt−1)`, at least what the provider asked for. `random` is in [0, 1).
    public func backoff(afterAttempt attempt: Int, providerAsked: Duration?, random: Double) -> Duration {
        let exponent = min(max(attempt - 1, 0), 20)
        let ceiling = min(self.baseBackoff * (1 << exponent), self.maxInProcessBackoff)
        let jittered = ceiling * random
        return max(jittered, providerAsked ?? .zero)
    }

    /// The tier a command that must wait `wait` goes to: the shortest tier whose delay is at
    /// least `wait` (records behind it in that tier are due no earlier, so it holds none of
    /// them up), else the longest tier.
    public func tier(forWait wait: Duration) -> RetryTier? {
        self.tiers.filter { $0.delay >= wait }.min { $0.delay < $1.delay } ?? self.tiers.max { $0.delay < $1.delay }
    }

    /// The tier for hand-off number `round` (0 for the first hand-off).
    public func tier(forRound round: Int) -> RetryTier? {
        guard !self.tiers.isEmpty else { return nil }
        return self.tiers[min(round, self.tiers.count - 1)]
    }
}

extension Duration {
    /// Parses `250ms`, `5s`, `1m`, `10m`, `2h`, `1d`, or a plain number of seconds.
    public init?(humanReadable text: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "ms" must not be read as minutes of "…m" + "s".
            if suffix == "s", number.hasSuffix("m") { continue }
            guard let value = Double(number), let duration = Self.finite(seconds: value * scale) else { return nil }
            self = duration
            return
        }
        guard let seconds = Double(text), let duration = Self.finite(seconds: seconds) else { return nil }
        self = duration
    }

    /// `seconds` as a duration when it is a number from 0 up to about 292 years (what
    /// nanoseconds in an `Int64` hold); nil for NaN, infinities, negatives and larger values.
    static func finite(seconds: Double) -> Duration? {
        guard seconds.isFinite, seconds >= 0, seconds * 1e9 < 9.2e18 else { return nil }
        return .nanoseconds(Int64((seconds * 1e9).rounded()))
    }
}
