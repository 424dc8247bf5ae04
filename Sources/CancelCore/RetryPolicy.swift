public import Foundation

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

    /// The latest due time a worker writes on a retry record parked at `now`: an order's
    /// not-before (`DeliveryRules.longestNotBefore`), a provider's Retry-After (at most a day)
    /// or the longest tier's delay, whichever is longest, and a day for the clocks of the
    /// workers between. A due time read beyond it was not written by a worker, and is ignored.
    public func latestDue(now: Date) -> Date {
        let longest = max(DeliveryRules.longestNotBefore, self.tiers.map(\.delay).max() ?? .zero)
        return now.addingTimeInterval((longest + .seconds(86_400)).timeInterval)
    }

    /// The wait before in-process attempt `attempt + 1` (attempt ≥ 1): full jitter over
    /// `base · 2^(attempt−1)`, at least what the provider asked for. `random` is in [0, 1).
    public func backoff(afterAttempt attempt: Int, providerAsked: Duration?, random: Double) -> Duration {
        let exponent = min(max(attempt - 1, 0), 20)
        let ceiling = min(self.baseBackoff * (1 << exponent), self.maxInProcessBackoff)
        let jittered = ceiling * random
        return max(jittered, providerAsked ?? .zero)
    }

    /// What the worker does after a provider's answer — the one decision between the call and
    /// the route, pure so that every branch is tested without a clock or a broker.
    ///
    /// - `callsMade`: calls counted against this command's budget so far (this one included).
    /// - `localAttempts`: calls made in this delivery (this one included).
    /// - `timeLeft`: until the command's deadline, if it has one.
    /// - `random`: in [0, 1), for the backoff's jitter.
    public func next(
        after classification: CancelClassification, callsMade: Int, localAttempts: Int, timeLeft: Duration?,
        random: Double
    ) -> NextStep {
        let providerAsked: Duration?
        switch classification {
        case .cancelled, .alreadyCancelled, .notCancellable, .notFound, .rejected:
            return .finish(classification.terminalStatus!)
        case .configuration:
            return .configurationDeadLetter
        case .retryLater(let after, _):
            providerAsked = after
        case .unknown:
            providerAsked = nil
        }
        if callsMade >= self.maxAttempts { return .retriesExhausted }
        let delay = self.backoff(afterAttempt: localAttempts, providerAsked: providerAsked, random: random)
        if let timeLeft, delay >= timeLeft { return .expire }
        if localAttempts < self.inProcessAttempts && delay <= self.maxInProcessBackoff {
            return .retryInProcess(after: delay)
        }
        return .retryTier(providerAsked: providerAsked)
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

/// The worker's next step after a provider's answer (`RetryPolicy.next`).
public enum NextStep: Sendable, Hashable {
    /// A terminal answer: publish this outcome.
    case finish(OutcomeStatus)
    /// The provider refused our configuration: dead letter (`configuration`), replay once fixed.
    case configurationDeadLetter
    /// The attempt budget is spent: dead letter (`retries_exhausted`) with a `failed` outcome.
    case retriesExhausted
    /// The deadline passes before the next attempt could be made: `expired`.
    case expire
    /// Try again in this delivery after this wait.
    case retryInProcess(after: Duration)
    /// Hand the command to a retry tier (waiting at least what the provider asked for).
    case retryTier(providerAsked: Duration?)
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
