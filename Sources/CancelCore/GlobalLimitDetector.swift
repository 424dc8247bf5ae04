/// Tells a provider's global rate limit from one account's: CoinW's 29001 "API access
/// frequently" is the answer to both ("10 requests/s per user ID and IP. In addition to this
/// per-interface limit, a global rate limit is also enforced", seed 004). When "slow down"
/// reaches `accounts` different accounts within `window`, it is the provider's limit, and the
/// whole provider must back off, not only the account that happened to get it.
///
/// A value type on an explicit clock, so it is tested on manual time; `HTTPCancelProvider`
/// keeps one per provider behind a lock.
public struct GlobalLimitDetector: Sendable {
    public let accounts: Int
    public let window: Duration
    /// Account → when it was last told to slow down (only entries inside the window matter).
    private var seen: [String: ContinuousClock.Instant] = [:]

    public init(accounts: Int, window: Duration) {
        self.accounts = max(1, accounts)
        self.window = window
    }

    /// Records that `account` was told to slow down at `now`; returns the scope the pause
    /// should have.
    public mutating func record(account: String, now: ContinuousClock.Instant) -> ThrottleScope {
        self.seen[account] = now
        let since = now - self.window
        self.seen = self.seen.filter { $0.value > since }
        return self.seen.count >= self.accounts ? .provider : .account
    }
}
