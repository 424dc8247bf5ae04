public import Foundation

// What `DeliveryRules` decides: the steps of a delivery, performed by the worker.

/// What the worker does with a claim's answer (`DeliveryRules.claimed`).
public enum ClaimDecision: Sendable, Hashable {
    /// The key is ours under this entry: go on with the delivery.
    case proceed(LedgerEntry)
    /// A different command used the key first: answer `rejected` (`idempotency_key_reused`).
    case rejectReuse
    /// The key is done: a duplicate. Publish its recorded outcome again if Kafka may never have
    /// acknowledged it (`completed`, not yet `published`).
    case duplicate(republish: [UInt8]?)
    /// Another holder's lease is running: claim again after this wait.
    case claimAgain(after: Duration)
    /// The key was completed a moment ago and its `published` mark may be on its way (the
    /// worker that completed it writes it a few milliseconds after Kafka's acknowledgement):
    /// look again after this wait rather than publish the outcome a second time.
    case awaitPublished(after: Duration)
}

/// `DeliveryRules.start`'s plan: wait until each of `waits`, then end with `ending` or, if
/// there is none, call; and the accounting to begin with.
public struct DeliveryStart: Sendable, Hashable {
    public var waits: [Date] = []
    public var ending: DeliveryEnding?
    public var state: DeliveryState
}

/// `DeliveryRules.afterAnswer`'s decision.
public struct AnswerDecision: Sendable, Hashable {
    public var step: AnswerStep
    public var state: DeliveryState
    /// A pause the provider asked of the account or of everyone, to apply before the step.
    public var pause: ProviderPause?
}

/// A provider's request that the account, or every account, waits.
public struct ProviderPause: Sendable, Hashable {
    /// Every account of the provider waits (a global limit), not only the command's.
    public var everyAccount: Bool
    public var until: ContinuousClock.Instant
    /// How long, for the ledger's copy of the pause.
    public var after: Duration

    public init(everyAccount: Bool, until: ContinuousClock.Instant, after: Duration) {
        self.everyAccount = everyAccount
        self.until = until
        self.after = after
    }
}

/// Where a command goes to wait in a retry tier.
public struct RetryParking: Sendable, Hashable {
    public var tier: RetryTier
    /// The record's `cw.retry.round`.
    public var round: Int
    public var dueAt: Date
    /// Why it waits: the last answer, or the provider's rule.
    public var reason: String
    /// The attempt budget's base the record carries (`cw.attempts.base`), if any.
    public var attemptsBase: Int?

    public init(tier: RetryTier, round: Int, dueAt: Date, reason: String, attemptsBase: Int? = nil) {
        self.tier = tier
        self.round = round
        self.dueAt = dueAt
        self.reason = reason
        self.attemptsBase = attemptsBase
    }
}

/// Before a call: go now, wait for the slot, or end (`DeliveryRules.pace`).
public enum SlotStep: Sendable, Hashable {
    case call
    /// Wait for the call's slot (a rate limit, a provider pause), then go on.
    case wait(until: ContinuousClock.Instant)
    case end(DeliveryEnding)
}

/// After an answer: another call in this delivery, or the end (`DeliveryRules.afterAnswer`).
public enum AnswerStep: Sendable, Hashable {
    /// Call again in this delivery after this backoff.
    case retry(after: Duration)
    case end(DeliveryEnding)
}

/// How a delivery ends, decided by `DeliveryRules` and performed by the worker (a parked
/// command comes back as a new delivery).
public enum DeliveryEnding: Sendable, Hashable {
    /// A delivery already dealt with (an old copy of a dead-lettered command): acknowledge it,
    /// no call, no outcome.
    case skipDuplicate
    /// Publish the key's terminal outcome.
    case finish(OutcomeStatus, reason: String, uncertain: Int)
    /// Dead-letter the command with a `failed` outcome (the record carries `attemptsBase`, if any).
    case deadLetter(DeadLetterClass, reason: String, uncertain: Int, attemptsBase: Int? = nil)
    /// Park the command in a retry tier and give the key up until it comes back.
    case park(RetryParking, uncertain: Int)
}

/// A retry-tier record's next step (`DeliveryRules.retryRecord`).
public enum RetryRecordStep: Sendable, Hashable {
    /// Hold the tier's partition until the record is due, then send it back.
    case wait(until: Date)
    /// Due beyond this tier's reach: on to this longer tier at once.
    case moveToTier(RetryTier)
    /// Due beyond the longest tier's reach: hold the tier's partition until `at` (the tier's
    /// delay from when the record was parked, its turn), then park it in `tier` again. It goes
    /// round the longest tier until it is due within it: a command's record never waits on the
    /// commands topic, where it would hold its partition's committed offset and an in-flight
    /// permit for as long (up to a day for an order created in the future).
    case repark(RetryTier, at: Date)
    /// Due: back to the commands topic, to the partition it came from.
    case backToCommands
}
