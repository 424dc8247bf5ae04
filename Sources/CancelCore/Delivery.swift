public import Foundation

/// A delivery's facts the decisions need: the command's and its record's headers, parsed.
public struct Delivery: Sendable, Hashable {
    public var provider: ProviderID
    public var account: String
    /// The command's deadline.
    public var deadline: Date?
    /// `cw.replay.count` (0 when absent or not a number).
    public var replayCount: Int
    /// Whether the record carries `cw.replay.count`: a replayed dead letter.
    public var isReplay: Bool
    /// `cw.attempts`: calls the record reports (a replay strips it).
    public var attempts: Int?
    /// `cw.attempts.base`: the ledger count the attempt budget starts from.
    public var attemptsBase: Int?
    /// `cw.attempts.uncertain`: calls whose result was unknown, as the record reports them.
    public var uncertainAttempts: Int
    /// `cw.retry.round`: hand-offs to a retry tier so far.
    public var retryRound: Int
    /// `cw.retry.due-at`: a retry's due time, on a record back from the longest tier early.
    public var retryDueAt: Date?

    public init(
        provider: ProviderID, account: String, deadline: Date?, replayCount: Int = 0, isReplay: Bool = false,
        attempts: Int? = nil, attemptsBase: Int? = nil, uncertainAttempts: Int = 0, retryRound: Int = 0,
        retryDueAt: Date? = nil
    ) {
        self.provider = provider
        self.account = account
        self.deadline = deadline
        self.replayCount = replayCount
        self.isReplay = isReplay
        self.attempts = attempts
        self.attemptsBase = attemptsBase
        self.uncertainAttempts = uncertainAttempts
        self.retryRound = retryRound
        self.retryDueAt = retryDueAt
    }
}

/// What the worker knows of the command's provider.
public enum ProviderReadiness: Sendable, Hashable {
    /// No adapter is configured for the provider.
    case noAdapter
    /// The adapter has no credentials for the account.
    case noCredentials
    /// Callable; `notBefore` is the earliest time it accepts a cancel of this order, if known.
    case ready(notBefore: Date?)
}

/// A delivery's attempt accounting, carried from one decision to the next.
public struct DeliveryState: Sendable, Hashable {
    /// Ledger calls made before this command's attempt budget started (a replay starts afresh).
    public var budgetBase: Int
    /// Calls whose result was unknown, this delivery's and earlier ones'.
    public var uncertain: Int
    /// Calls made in this delivery that count towards its in-process attempts.
    public var localAttempts = 0
    /// Hand-offs to a retry tier so far.
    public var round: Int
    /// The last answer that led to an in-process retry, for an `expired` outcome's reason
    /// (empty: none yet).
    public var lastAnswer = ""

    public init(budgetBase: Int, uncertain: Int, localAttempts: Int = 0, round: Int, lastAnswer: String = "") {
        self.budgetBase = budgetBase
        self.uncertain = uncertain
        self.localAttempts = localAttempts
        self.round = round
        self.lastAnswer = lastAnswer
    }
}
