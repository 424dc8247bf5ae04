public import Foundation

/// A delivery's decisions as pure functions: given the command's facts, its ledger entry, its
/// record's headers, the provider's facts, the policy and the time, what the worker does next.
/// The worker only performs what they return; every branch is tested with a manual clock and
/// no broker (`DeliveryRulesTests`). After a provider's answer, `afterAnswer` runs
/// `RetryPolicy.next` and turns its step into the delivery's next one.
public enum DeliveryRules {
    /// The furthest ahead a provider's first-accepted time (`CancelProvider.notBefore`) may be:
    /// beyond it the command is a dead letter (`invalid_command`), not a wait.
    public static let longestNotBefore: Duration = .seconds(86_400)

    /// What to do with the ledger's answer to a claim.
    /// How long after a key was completed a copy waits for its `published` mark before it
    /// publishes the recorded outcome again. A partition can reach its next owner while the
    /// previous one still writes the mark of an outcome it published (librdkafka declared the
    /// assignment lost, so the group moved on without the old owner's revocation): a copy that
    /// republished at once gave the key a second outcome (the demo, 2026-11-27). Past this, the
    /// completing worker most likely died before its mark (the documented limit: a byte-identical
    /// outcome, dedupe by `outcome_id`).
    public static let publishedMarkGrace: Duration = .seconds(2)

    public static func claimed(_ result: ClaimResult, now: Date) -> ClaimDecision {
        switch result {
        case .claimed(let entry):
            return .proceed(entry)
        case .reused:
            return .rejectReuse
        case .done(let entry):
            guard entry.state == .completed else { return .duplicate(republish: nil) }
            let remaining = entry.updatedAt.addingTimeInterval(Self.publishedMarkGrace.timeInterval).timeIntervalSince(
                now)
            guard remaining <= 0 else {
                return .awaitPublished(after: .milliseconds(Int64((min(remaining, 0.1) * 1000).rounded(.up))))
            }
            return .duplicate(republish: entry.outcome)
        case .busy(_, let leaseUntil):
            // Poll the other holder's lease: at least every second, never faster than 50 ms.
            let wait = min(max(leaseUntil.timeIntervalSince(now), 0.05), 1.0)
            return .claimAgain(after: .milliseconds(Int64(wait * 1000)))
        }
    }

    /// From a fresh claim to the first call: a delivery older than the key's latest dead letter
    /// is skipped; a provider or account without configuration is a dead letter; an order the
    /// provider does not accept a cancel for yet (feee.io's 5-minute rule), or a retry not due
    /// yet (`cw.retry.due-at`, from an older worker or another producer), waits in process when
    /// that is short (`maxInProcessBackoff`), else is parked. The worker waits until each of
    /// `waits` in order, then ends the delivery with
    /// `ending` or, if there is none, calls.
    public static func start(
        _ delivery: Delivery, entry: LedgerEntry, provider: ProviderReadiness, policy: RetryPolicy, now: Date
    ) -> DeliveryStart {
        let state = Self.state(delivery, entry: entry)
        // A delivery older than the key's latest dead letter was dead-lettered already (its
        // offset was not committed before the partition moved or the worker restarted): only a
        // replay of that dead letter (its `cw.replay.count` one higher each time) reopens the key.
        if entry.deadLetters > delivery.replayCount { return DeliveryStart(ending: .skipDuplicate, state: state) }
        // Configuration, not the command, is wrong: a dead letter, replayable once fixed; the key stays usable.
        let notBefore: Date?
        switch provider {
        case .noAdapter:
            let reason = "no adapter is configured for provider \(delivery.provider)"
            return DeliveryStart(ending: .deadLetter(.configuration, reason: reason, uncertain: 0), state: state)
        case .noCredentials:
            let reason = "no credentials for account \"\(delivery.account)\" at \(delivery.provider)"
            return DeliveryStart(ending: .deadLetter(.configuration, reason: reason, uncertain: 0), state: state)
        case .ready(let due):
            notBefore = due
        }
        var waits: [Date] = []
        var parkReason = ""
        if let due = notBefore, due > now {
            let why = "\(delivery.provider) accepts a cancel of this order only from \(Timestamp.format(due))"
            if let deadline = delivery.deadline, due >= deadline {
                let reason = "\(why), after the command's deadline; no call was made"
                return DeliveryStart(
                    ending: .finish(.expired, reason: reason, uncertain: state.uncertain), state: state)
            }
            // feee.io's rule is 5 minutes from the order's creation: a day ahead means the
            // command's creation time is wrong, and no wait would make the call right.
            guard due.timeIntervalSince(now) <= Self.longestNotBefore.timeInterval else {
                let reason =
                    "\(why), more than a day from now (is the order's creation time in the future?); no call was made"
                return DeliveryStart(
                    ending: .deadLetter(.invalidCommand, reason: reason, uncertain: state.uncertain), state: state)
            }
            waits.append(due)
            parkReason = why
        }
        if let due = delivery.retryDueAt {
            // Certain now: no wait first (for an order's `notBefore`, up to a day, holding the
            // claim, a permit and the partition's commit to publish the same outcome).
            if let deadline = delivery.deadline, due >= deadline {
                let reason = "the deadline passes before the next retry is due"
                return DeliveryStart(
                    ending: .finish(.expired, reason: reason, uncertain: state.uncertain), state: state)
            }
            waits.append(due)
            if due > (notBefore ?? .distantPast) { parkReason = "a retry due at \(Timestamp.format(due))" }
        }
        // A wait beyond the in-process cap is not held here (a permit, and the partition's
        // committed offset, for as long): the command is parked until then, without using up a
        // round or an attempt, and the retry tiers hold it (the longest one going round).
        if let last = waits.max(), last.timeIntervalSince(now) > policy.maxInProcessBackoff.timeInterval {
            let park = Self.park(
                policy: policy, wait: .seconds(last.timeIntervalSince(now)), round: state.round, dueAt: last,
                reason: parkReason, uncertain: state.uncertain, attemptsBase: nil)
            return DeliveryStart(ending: park, state: state)
        }
        return DeliveryStart(waits: waits, state: state)
    }

    /// The delivery's state if its key turns out to be new and its first call can leave at once;
    /// nil otherwise. At once means: `start`'s plan for a new key has no wait and no ending, the
    /// deadline has not passed, and nothing paces the account (`paced`: the provider has a rate
    /// limit, or a pause holds the account or the provider). Such a command's claim marks the key
    /// sent in the same ledger write (`IdempotencyLedger.claim(…, sendIfNew: true)`): one write
    /// instead of two, and the ledger counts the call before it leaves, as `markSent` would. A
    /// paced command never takes this path, because it waits for its slot and a key marked sent
    /// during that wait would count a call that has not happened yet.
    public static func immediateStart(
        _ delivery: Delivery, provider: ProviderReadiness, policy: RetryPolicy, paced: Bool, now: Date
    ) -> DeliveryState? {
        guard !paced, delivery.retryDueAt == nil else { return nil }
        if let deadline = delivery.deadline, deadline <= now { return nil }
        let new = LedgerEntry(
            key: "", state: .claimed, owner: nil, leaseUntil: nil, attempts: 0, fence: 1, outcome: nil, createdAt: now,
            updatedAt: now)
        let plan = Self.start(delivery, entry: new, provider: provider, policy: policy, now: now)
        guard plan.waits.isEmpty, plan.ending == nil else { return nil }
        return plan.state
    }

    /// The attempt accounting a delivery starts with.
    static func state(_ delivery: Delivery, entry: LedgerEntry) -> DeliveryState {
        // A replayed command (its failure context stripped) starts a fresh attempt budget from
        // the ledger's count; its earlier calls are accounted for by its dead letter.
        let replayedNow = delivery.isReplay && delivery.attempts == nil
        let base = delivery.attemptsBase ?? (replayedNow ? entry.attempts : 0)
        let reported = delivery.attempts ?? (replayedNow ? entry.attempts : 0)
        // Calls whose result was unknown, this delivery's and earlier deliveries': those the
        // records carry, and calls the ledger counted that no record reports (a worker died or
        // lost its claim mid-call).
        var uncertain = delivery.uncertainAttempts
        if entry.state == .sent { uncertain += max(0, entry.attempts - reported) }
        return DeliveryState(budgetBase: base, uncertain: uncertain, round: delivery.retryRound)
    }

    /// Before each call of a delivery: the deadline (nil: call). An `expired` after a call whose
    /// result was unknown says so (the order may have been cancelled by that call), as every
    /// other ending does.
    public static func beforeCall(
        deadline: ContinuousClock.Instant?, now: ContinuousClock.Instant, state: DeliveryState
    ) -> DeliveryEnding? {
        guard let deadline, now >= deadline else { return nil }
        let reason =
            state.lastAnswer.isEmpty
            ? "the deadline passed before a call could be made"
            : "the deadline passed while retrying (last answer: \(state.lastAnswer))"
        return .finish(
            .expired, reason: Self.reason(reason, status: .expired, uncertain: state.uncertain),
            uncertain: state.uncertain)
    }

    /// The call's slot: the account's booked rate-limit slot (nil: none before the deadline)
    /// and the provider-wide pause, whichever ends later.
    public static func pace(
        booking: ContinuousClock.Instant?, gateOpensAt: ContinuousClock.Instant?, deadline: ContinuousClock.Instant?,
        now: ContinuousClock.Instant, provider: ProviderID, state: DeliveryState
    ) -> SlotStep {
        let reason = "the \(provider) rate limit for this account allows no call before the deadline"
        let expired = SlotStep.end(
            .finish(
                .expired, reason: Self.reason(reason, status: .expired, uncertain: state.uncertain),
                uncertain: state.uncertain))
        guard let booking else { return expired }
        let target = max(booking, gateOpensAt ?? booking)
        if let deadline, target > deadline { return expired }
        return target > now ? .wait(until: target) : .call
    }

    /// The send-time guard found the deadline passed right before the call's bytes went out.
    public static func guardFoundDeadlinePassed(state: DeliveryState) -> DeliveryEnding {
        .finish(
            .expired, reason: "the deadline passed before the call could be sent; no call was made",
            uncertain: state.uncertain)
    }

    /// The send-time guard holds the call until `until` (the user's slot, a provider pause):
    /// nil to wait for it, or `expired` when that is after the deadline.
    public static func guardHolds(
        until: ContinuousClock.Instant, deadline: ContinuousClock.Instant?, provider: ProviderID, state: DeliveryState
    ) -> DeliveryEnding? {
        guard let deadline, until > deadline else { return nil }
        let reason = "the \(provider) rate limit for this account allows no call before the deadline; no call was made"
        return .finish(.expired, reason: reason, uncertain: state.uncertain)
    }

    /// After a provider's answer: the pause it asks for, this delivery's accounting, and the
    /// next step (`RetryPolicy.next`, then the retry tier for a hand-off).
    ///
    /// - `attempts`: the ledger's count of calls for the key (this one included).
    /// - `deadline`: the command's deadline, as a wall-clock date and as the instant it was
    ///   read as when the delivery started.
    /// - `random`: in [0, 1), for the backoff's jitter.
    public static func afterAnswer(
        _ result: ProviderCallResult, attempts: Int, state: DeliveryState, policy: RetryPolicy, deadline: Date?,
        deadlineInstant: ContinuousClock.Instant?, now: ClockReading, random: Double
    ) -> AnswerDecision {
        var state = state
        var pause: ProviderPause?
        // The answer's side effects: a pause the provider asked for, a call in doubt; either
        // counts as this delivery's attempt.
        switch result.classification {
        case .retryLater(let after, let throttle):
            state.localAttempts += 1
            // A server error that asks for a later retry (a 503 with Retry-After) may have done
            // the cancel behind it, as any 5xx (CONTRACTS.md: "5xx → unknown"): a call in doubt.
            if let status = result.answer.httpStatus, (500...599).contains(status) { state.uncertain += 1 }
            let wait = after ?? .seconds(1)
            // An order's own wait is its backoff, which honours `after`.
            if throttle != .order {
                pause = ProviderPause(everyAccount: throttle == .provider, until: now.instant + wait, after: wait)
            }
        case .unknown:
            state.localAttempts += 1
            if !result.nothingSent { state.uncertain += 1 }
        default:
            break
        }
        let next = policy.next(
            after: result.classification, callsMade: attempts - state.budgetBase, localAttempts: state.localAttempts,
            timeLeft: deadlineInstant.map { $0 - now.instant }, random: random)
        let uncertain = state.uncertain
        let ending: DeliveryEnding
        switch next {
        case .finish(let status):
            ending = .finish(
                status, reason: Self.reason(result.reason, status: status, uncertain: uncertain), uncertain: uncertain)
        case .configurationDeadLetter:
            ending = .deadLetter(.configuration, reason: result.reason, uncertain: uncertain)
        case .retriesExhausted:
            let reason = "gave up after \(attempts) attempts; last answer: \(result.reason)"
            ending = .deadLetter(.retriesExhausted, reason: reason, uncertain: uncertain)
        case .expire:
            let reason = "the deadline passes before the next attempt (last answer: \(result.reason))"
            ending = .finish(.expired, reason: reason, uncertain: uncertain)
        case .retryInProcess(let delay):
            state.lastAnswer = result.reason
            return AnswerDecision(step: .retry(after: delay), state: state, pause: pause)
        case .retryTier(let providerAsked):
            ending = Self.handOff(
                reason: result.reason, providerAsked: providerAsked, state: state, policy: policy, deadline: deadline,
                now: now.date)
        }
        return AnswerDecision(step: .end(ending), state: state, pause: pause)
    }

    /// The next retry tier for a command that used up its in-process attempts: the round's
    /// tier, waiting at least what the provider asked for; `expired` if the deadline comes first.
    static func handOff(
        reason: String, providerAsked: Duration?, state: DeliveryState, policy: RetryPolicy, deadline: Date?, now: Date
    ) -> DeliveryEnding {
        let base = state.budgetBase > 0 ? state.budgetBase : nil
        guard let tier = policy.tier(forRound: state.round) else {
            return .deadLetter(
                .retriesExhausted, reason: "no retry tier configured; last answer: \(reason)",
                uncertain: state.uncertain, attemptsBase: base)
        }
        let wait = max(tier.delay, providerAsked ?? .zero)
        let dueAt = now.addingTimeInterval(wait.timeInterval)
        if let deadline, dueAt >= deadline {
            return .finish(
                .expired, reason: "the deadline passes before the next retry (last answer: \(reason))",
                uncertain: state.uncertain)
        }
        return Self.park(
            policy: policy, wait: wait, round: state.round + 1, dueAt: dueAt, reason: reason,
            uncertain: state.uncertain, attemptsBase: base)
    }

    /// Parks the command in the tier that fits `wait`: the shortest whose delay is at least
    /// `wait`, so it never holds up the records queued behind it.
    static func park(
        policy: RetryPolicy, wait: Duration, round: Int, dueAt: Date, reason: String, uncertain: Int,
        attemptsBase: Int?
    ) -> DeliveryEnding {
        guard let tier = policy.tier(forWait: wait) else {
            return .deadLetter(
                .retriesExhausted, reason: "no retry tier configured; last answer: \(reason)", uncertain: uncertain,
                attemptsBase: attemptsBase)
        }
        return .park(
            RetryParking(tier: tier, round: round, dueAt: dueAt, reason: reason, attemptsBase: attemptsBase),
            uncertain: uncertain)
    }

    /// A terminal outcome's reason: after a call whose result was unknown, a "not found",
    /// "already cancelled" or refusal may be the echo of our own earlier cancel.
    public static func reason(_ reason: String, status: OutcomeStatus, uncertain: Int) -> String {
        guard uncertain > 0, status != .cancelled else { return reason }
        let calls =
            uncertain == 1 ? "an earlier call's result was unknown" : "\(uncertain) earlier calls' results were unknown"
        return "\(reason) — note: \(calls), so the order may have been cancelled by our own earlier call"
    }

    /// A retry-tier record's next step: wait here until it is due, or — due beyond the tier's
    /// delay from when it was parked (+1 s), so it would hold up the records queued behind it —
    /// move on at once to the next longer tier or, past the longest, wait its turn (the tier's
    /// delay from its parking) and go round the longest tier again.
    ///
    /// - `due`: the record's due time (nil: due now).
    /// - `tier`, `parkedAt`: the tier it names and when it was parked there, if both are known.
    public static func retryRecord(
        due: Date?, tier: String?, parkedAt: Date?, tiers: [RetryTier], now: Date
    ) -> RetryRecordStep {
        let due = due ?? now
        // A parking time ahead of this worker's clock (the parker's clock was ahead) counts as now.
        if let name = tier, let tier = tiers.first(where: { $0.name == name }),
            let parkedAt = parkedAt.map({ min($0, now) }),
            due > parkedAt.addingTimeInterval(tier.delay.timeInterval + 1)
        {
            if let longer = tiers.filter({ $0.delay > tier.delay }).min(by: { $0.delay < $1.delay }) {
                return .moveToTier(longer)
            }
            return .repark(tier, at: parkedAt.addingTimeInterval(tier.delay.timeInterval))
        }
        return due > now ? .wait(until: due) : .backToCommands
    }
}
