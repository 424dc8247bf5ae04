import Foundation
import Testing

@testable import CancelCore

/// `DeliveryRules`: every branch of a delivery's decisions (claim, start, deadline, pacing,
/// the send-time guard's stops, the answer, the retry tiers) as tables, with times on a manual
/// clock in microseconds (`t(n)`: monotonic, `d(n)`: wall) and no broker (issue 13 §1).
@Suite("A delivery's decisions (DeliveryRules)")
struct DeliveryRulesTests {
    /// One row: what a rule decides for one set of inputs, and what it must decide.
    struct Row<Decision: Hashable & Sendable>: Sendable, CustomTestStringConvertible {
        let name: String
        let decide: @Sendable () -> Decision
        let expected: Decision

        init(_ name: String, _ decide: @escaping @Sendable () -> Decision, expected: Decision) {
            self.name = name
            self.decide = decide
            self.expected = expected
        }

        var testDescription: String { self.name }
    }

    static let t0 = ContinuousClock.now
    static let d0 = Date(timeIntervalSince1970: 1_800_000_000)
    /// Monotonic time `n` µs after the start.
    static func t(_ n: Int64) -> ContinuousClock.Instant { Self.t0 + .microseconds(n) }
    /// Wall time `n` µs after the start.
    static func d(_ n: Int64) -> Date { Self.d0.addingTimeInterval(Double(n) / 1_000_000) }
    static let second: Int64 = 1_000_000

    static let policy = RetryPolicy()  // 3 in process, 200 ms base, 5 s cap, tiers 5s/1m/10m, 10 calls
    static let noTiers: RetryPolicy = {
        var policy = RetryPolicy()
        policy.tiers = []
        return policy
    }()

    static func entry(
        _ state: LedgerState = .claimed, attempts: Int = 0, deadLetters: Int = 0, outcome: [UInt8]? = nil
    ) -> LedgerEntry {
        LedgerEntry(
            key: "k", state: state, owner: "w", leaseUntil: Self.d(30 * Self.second), attempts: attempts, fence: 1,
            deadLetters: deadLetters, outcome: outcome, createdAt: Self.d0, updatedAt: Self.d0)
    }

    static func delivery(
        deadline: Date? = nil, replayCount: Int? = nil, attempts: Int? = nil, attemptsBase: Int? = nil,
        uncertain: Int = 0, round: Int = 0, retryDueAt: Date? = nil
    ) -> Delivery {
        Delivery(
            provider: .feee, account: "acct", deadline: deadline, replayCount: replayCount ?? 0,
            isReplay: replayCount != nil, attempts: attempts, attemptsBase: attemptsBase, uncertainAttempts: uncertain,
            retryRound: round, retryDueAt: retryDueAt)
    }

    static func fresh(uncertain: Int = 0, round: Int = 0, base: Int = 0) -> DeliveryState {
        DeliveryState(budgetBase: base, uncertain: uncertain, round: round)
    }

    static func expired(_ reason: String, uncertain: Int = 0) -> DeliveryEnding {
        .finish(.expired, reason: reason, uncertain: uncertain)
    }

    // MARK: Claim

    static let claimRows: [Row<ClaimDecision>] = [
        Row("claimed: go on", { DeliveryRules.claimed(.claimed(entry()), now: d0) }, expected: .proceed(entry())),
        Row(
            "another command's key: reuse", { DeliveryRules.claimed(.reused(entry()), now: d0) }, expected: .rejectReuse
        ),
        Row(
            "done 2 s ago, outcome not acknowledged: a duplicate that publishes it again",
            { DeliveryRules.claimed(.done(entry(.completed, outcome: [1, 2])), now: d(2 * second)) },
            expected: .duplicate(republish: [1, 2])),
        Row(
            "regression: done a moment ago, mark not written yet: wait for it (its completer may still write it)",
            { DeliveryRules.claimed(.done(entry(.completed, outcome: [1, 2])), now: d(500_000)) },
            expected: .awaitPublished(after: .milliseconds(100))),
        Row(
            "done 1.95 s ago: look again when the grace ends",
            { DeliveryRules.claimed(.done(entry(.completed, outcome: [1, 2])), now: d(1_950_000)) },
            expected: .awaitPublished(after: .milliseconds(50))),
        Row(
            "done and published: a duplicate, nothing to publish",
            { DeliveryRules.claimed(.done(entry(.published, outcome: [1, 2])), now: d0) },
            expected: .duplicate(republish: nil)),
        Row(
            "busy for 250 ms more: claim again then",
            { DeliveryRules.claimed(.busy(owner: "other", leaseUntil: d(250_000)), now: d0) },
            expected: .claimAgain(after: .milliseconds(250))),
        Row(
            "busy, lease just ended: claim again after 50 ms",
            { DeliveryRules.claimed(.busy(owner: "other", leaseUntil: d(-1)), now: d0) },
            expected: .claimAgain(after: .milliseconds(50))),
        Row(
            "busy for a minute: look again within a second",
            { DeliveryRules.claimed(.busy(owner: "other", leaseUntil: d(60 * second)), now: d0) },
            expected: .claimAgain(after: .seconds(1))),
    ]

    @Test("a claim's answer", arguments: Self.claimRows)
    func claim(row: Row<ClaimDecision>) {
        #expect(row.decide() == row.expected)
    }

    // MARK: Start

    static func start(
        _ delivery: Delivery = delivery(), entry: LedgerEntry = entry(),
        provider: ProviderReadiness = .ready(notBefore: nil), policy: RetryPolicy = policy
    ) -> Plan {
        let start = DeliveryRules.start(delivery, entry: entry, provider: provider, policy: policy, now: d0)
        return Plan(waits: start.waits, ending: start.ending)
    }

    /// What `start` plans: the waits, then the ending (nil: the call).
    struct Plan: Hashable, Sendable {
        var waits: [Date] = []
        var ending: DeliveryEnding?
    }

    static let why5s = "feee accepts a cancel of this order only from \(Timestamp.format(d(5 * second + 1)))"
    static let why2h = "feee accepts a cancel of this order only from \(Timestamp.format(d(7_200 * second)))"

    static let startRows: [Row<Plan>] = [
        Row("fresh key, callable provider: call", { start() }, expected: Plan()),
        // Duplicates of dead-lettered deliveries.
        Row(
            "a delivery older than the key's dead letter: skipped",
            { start(entry: entry(deadLetters: 1)) }, expected: Plan(ending: .skipDuplicate)),
        Row(
            "the replay of that dead letter: called",
            { start(delivery(replayCount: 1), entry: entry(deadLetters: 1)) }, expected: Plan()),
        Row(
            "an older replay after a second dead letter: skipped",
            { start(delivery(replayCount: 1), entry: entry(deadLetters: 2)) }, expected: Plan(ending: .skipDuplicate)),
        // Configuration dead letters.
        Row(
            "no adapter for the provider: configuration dead letter",
            { start(provider: .noAdapter) },
            expected: Plan(
                ending: .deadLetter(.configuration, reason: "no adapter is configured for provider feee", uncertain: 0))
        ),
        Row(
            "no credentials for the account: configuration dead letter",
            { start(provider: .noCredentials) },
            expected: Plan(
                ending: .deadLetter(.configuration, reason: "no credentials for account \"acct\" at feee", uncertain: 0)
            )),
        // notBefore (feee.io's 5-minute rule).
        Row(
            "notBefore passed 1 µs ago: call",
            { start(provider: .ready(notBefore: d(-1))) }, expected: Plan()),
        Row(
            "notBefore now: call", { start(provider: .ready(notBefore: d0)) }, expected: Plan()),
        Row(
            "notBefore in 3 s: wait in process, then call",
            { start(provider: .ready(notBefore: d(3 * second))) },
            expected: Plan(waits: [d(3 * second)])),
        Row(
            "notBefore in exactly the in-process cap (5 s): still in process",
            { start(provider: .ready(notBefore: d(5 * second))) },
            expected: Plan(waits: [d(5 * second)])),
        Row(
            "notBefore 1 µs beyond the cap: parked in the shortest tier that covers it, same round",
            { start(delivery(round: 1), provider: .ready(notBefore: d(5 * second + 1))) },
            expected: Plan(
                ending: .park(
                    RetryParking(tier: RetryTier("1m")!, round: 1, dueAt: d(5 * second + 1), reason: why5s),
                    uncertain: 0))),
        Row(
            "notBefore in 2 h: parked in the longest tier",
            { start(provider: .ready(notBefore: d(7_200 * second))) },
            expected: Plan(
                ending: .park(
                    RetryParking(tier: RetryTier("10m")!, round: 0, dueAt: d(7_200 * second), reason: why2h),
                    uncertain: 0))),
        // A record with its due time on the commands topic (an older worker sent it back from
        // the longest tier; another producer) is parked again, not held here: the longest tier
        // now keeps a record due beyond it going round with a wait of its delay each turn
        // (`retryRecord`), so parking it again is no loop without a wait.
        Row(
            "review finding: notBefore in 2 h, on the commands topic with its due time: parked again, not held here",
            { start(delivery(retryDueAt: d(7_200 * second)), provider: .ready(notBefore: d(7_200 * second))) },
            expected: Plan(
                ending: .park(
                    RetryParking(tier: RetryTier("10m")!, round: 0, dueAt: d(7_200 * second), reason: why2h),
                    uncertain: 0))),
        Row(
            "notBefore beyond the in-process cap and a later retry due: parked until the later",
            { start(delivery(retryDueAt: d(30 * second)), provider: .ready(notBefore: d(20 * second))) },
            expected: Plan(
                ending: .park(
                    RetryParking(
                        tier: RetryTier("1m")!, round: 0, dueAt: d(30 * second),
                        reason: "a retry due at \(Timestamp.format(d(30 * second)))"),
                    uncertain: 0))),
        Row(
            "notBefore more than a day ahead (an order created in the future): dead letter, no call",
            { start(provider: .ready(notBefore: d(86_400 * second + 1))) },
            expected: Plan(
                ending: .deadLetter(
                    .invalidCommand,
                    reason:
                        "feee accepts a cancel of this order only from \(Timestamp.format(d(86_400 * second + 1))), more than a day from now (is the order's creation time in the future?); no call was made",
                    uncertain: 0))),
        Row(
            "notBefore in 2 h, no tier configured: dead letter",
            { start(provider: .ready(notBefore: d(7_200 * second)), policy: noTiers) },
            expected: Plan(
                ending: .deadLetter(
                    .retriesExhausted, reason: "no retry tier configured; last answer: \(why2h)", uncertain: 0))),
        Row(
            "notBefore at the deadline: expired without a call",
            { start(delivery(deadline: d(5 * second + 1)), provider: .ready(notBefore: d(5 * second + 1))) },
            expected: Plan(ending: expired("\(why5s), after the command's deadline; no call was made"))),
        Row(
            "notBefore after the deadline: expired, reporting the calls in doubt",
            {
                start(
                    delivery(deadline: d(5 * second), uncertain: 1), provider: .ready(notBefore: d(5 * second + 1)))
            },
            expected: Plan(ending: expired("\(why5s), after the command's deadline; no call was made", uncertain: 1))),
        Row(
            "notBefore 1 µs before the deadline: waits",
            { start(delivery(deadline: d(3 * second + 1)), provider: .ready(notBefore: d(3 * second))) },
            expected: Plan(waits: [d(3 * second)])),
        // A retry on the commands topic before it is due.
        Row(
            "review finding: retry due in 10 minutes: parked until then, not held here",
            { start(delivery(retryDueAt: d(600 * second))) },
            expected: Plan(
                ending: .park(
                    RetryParking(
                        tier: RetryTier("10m")!, round: 0, dueAt: d(600 * second),
                        reason: "a retry due at \(Timestamp.format(d(600 * second)))"),
                    uncertain: 0))),
        Row(
            "retry due in 5 s (the in-process cap): waits here",
            { start(delivery(retryDueAt: d(5 * second))) }, expected: Plan(waits: [d(5 * second)])),
        Row(
            "retry due 1 µs before the deadline: waits",
            { start(delivery(deadline: d(3 * second + 1), retryDueAt: d(3 * second))) },
            expected: Plan(waits: [d(3 * second)])),
        Row(
            "retry due at the deadline: expired",
            { start(delivery(deadline: d(600 * second), retryDueAt: d(600 * second))) },
            expected: Plan(ending: expired("the deadline passes before the next retry is due"))),
        Row(
            "retry due after the deadline: expired, reporting the calls in doubt",
            { start(delivery(deadline: d(600 * second), uncertain: 2, retryDueAt: d(600 * second + 1))) },
            expected: Plan(ending: expired("the deadline passes before the next retry is due", uncertain: 2))),
        Row(
            "notBefore soon and a retry due: both waits, in order",
            { start(delivery(retryDueAt: d(4 * second)), provider: .ready(notBefore: d(2 * second))) },
            expected: Plan(waits: [d(2 * second), d(4 * second)])),
        // Review finding (CancelCore): the ending is certain at once; waiting for the order's
        // `notBefore` first held the claim, a permit and the partition's commit for up to a day
        // (3 h here) only to publish the same `expired`.
        Row(
            "notBefore soon, the retry due after the deadline: expired at once, no wait",
            {
                start(
                    delivery(deadline: d(3 * second), retryDueAt: d(4 * second)),
                    provider: .ready(notBefore: d(2 * second)))
            },
            expected: Plan(ending: expired("the deadline passes before the next retry is due"))),
        Row(
            "notBefore in 3 h, the retry due after the 4 h deadline: expired at once, no 3 h wait",
            {
                start(
                    delivery(deadline: d(14_400 * second), retryDueAt: d(18_000 * second)),
                    provider: .ready(notBefore: d(10_800 * second)))
            },
            expected: Plan(ending: expired("the deadline passes before the next retry is due"))),
    ]

    @Test("the steps to the first call", arguments: Self.startRows)
    func start(row: Row<Plan>) {
        #expect(row.decide() == row.expected)
    }

    // MARK: A new key's call at once (claim and mark sent in one ledger write)

    static func immediate(
        _ delivery: Delivery, provider: ProviderReadiness = .ready(notBefore: nil), paced: Bool = false
    ) -> DeliveryState? {
        DeliveryRules.immediateStart(delivery, provider: provider, policy: Self.policy, paced: paced, now: Self.d0)
    }

    static let immediateRows: [Row<DeliveryState?>] = [
        Row("nothing in the way: at once, nothing counted", { immediate(delivery()) }, expected: fresh()),
        Row(
            "a record that carries calls in doubt: at once, reporting them",
            { immediate(delivery(uncertain: 1)) }, expected: fresh(uncertain: 1)),
        Row(
            "a rate limit or a pause paces the account: not at once", { immediate(delivery(), paced: true) },
            expected: nil),
        Row(
            "the deadline has passed: not at once (expired without a call)",
            { immediate(delivery(deadline: d0)) }, expected: nil),
        Row(
            "the deadline is ahead: at once",
            { immediate(delivery(deadline: d(1))) }, expected: fresh()),
        Row(
            "the provider accepts the cancel only later (feee.io's rule): not at once",
            { immediate(delivery(), provider: .ready(notBefore: d(2 * second))) }, expected: nil),
        Row(
            "notBefore has passed: at once",
            { immediate(delivery(), provider: .ready(notBefore: d0)) }, expected: fresh()),
        Row("a retry record: not at once", { immediate(delivery(retryDueAt: d0)) }, expected: nil),
        Row(
            "no credentials: not at once (a dead letter)", { immediate(delivery(), provider: .noCredentials) },
            expected: nil),
        Row("no adapter: not at once", { immediate(delivery(), provider: .noAdapter) }, expected: nil),
    ]

    @Test("issue 14: a new key's first call at once", arguments: Self.immediateRows)
    func immediateStart(row: Row<DeliveryState?>) {
        #expect(row.decide() == row.expected)
    }

    static let stateRows: [Row<DeliveryState>] = [
        Row(
            "fresh delivery: nothing counted",
            { DeliveryRules.state(delivery(), entry: entry()) }, expected: fresh()),
        Row(
            "a replay (no attempts header): its budget starts from the ledger's count",
            { DeliveryRules.state(delivery(replayCount: 1), entry: entry(.sent, attempts: 10)) },
            expected: fresh(base: 10)),
        Row(
            "a retry record carries its budget's base and round",
            { DeliveryRules.state(delivery(attempts: 12, attemptsBase: 10, round: 2), entry: entry(attempts: 12)) },
            expected: fresh(round: 2, base: 10)),
        Row(
            "a call the ledger counted and no record reports (sent, worker died): in doubt",
            { DeliveryRules.state(delivery(attempts: 2, uncertain: 1), entry: entry(.sent, attempts: 3)) },
            expected: fresh(uncertain: 2)),
        Row(
            "a claimed entry adds none: the record's own count",
            { DeliveryRules.state(delivery(attempts: 2, uncertain: 1), entry: entry(.claimed, attempts: 3)) },
            expected: fresh(uncertain: 1)),
        Row(
            "a first delivery of a key sent before: every counted call in doubt",
            { DeliveryRules.state(delivery(), entry: entry(.sent, attempts: 2)) }, expected: fresh(uncertain: 2)),
    ]

    @Test("the attempt accounting a delivery starts with", arguments: Self.stateRows)
    func state(row: Row<DeliveryState>) {
        #expect(row.decide() == row.expected)
    }

    // MARK: Before each call

    static let beforeCallRows: [Row<DeliveryEnding?>] = [
        Row("no deadline: call", { DeliveryRules.beforeCall(deadline: nil, now: t(0), state: fresh()) }, expected: nil),
        Row(
            "1 µs before the deadline: call",
            { DeliveryRules.beforeCall(deadline: t(1), now: t(0), state: fresh()) }, expected: nil),
        Row(
            "at the deadline: expired without a call",
            { DeliveryRules.beforeCall(deadline: t(0), now: t(0), state: fresh()) },
            expected: expired("the deadline passed before a call could be made")),
        Row(
            "1 µs after the deadline: expired",
            { DeliveryRules.beforeCall(deadline: t(0), now: t(1), state: fresh()) },
            expected: expired("the deadline passed before a call could be made")),
        Row(
            "regression: after an in-process retry of an unknown answer: expired with the last answer, in doubt",
            {
                DeliveryRules.beforeCall(
                    deadline: t(0), now: t(1),
                    state: DeliveryState(budgetBase: 0, uncertain: 1, localAttempts: 1, round: 0, lastAnswer: "503"))
            },
            expected: expired(
                "the deadline passed while retrying (last answer: 503) — note: an earlier call's result was unknown, so the order may have been cancelled by our own earlier call",
                uncertain: 1)),
    ]

    @Test("the deadline before each call", arguments: Self.beforeCallRows)
    func beforeCall(row: Row<DeliveryEnding?>) {
        #expect(row.decide() == row.expected)
    }

    static let rateLimited = SlotStep.end(
        expired("the feee rate limit for this account allows no call before the deadline"))

    static func pace(
        booking: Int64?, gate: Int64? = nil, deadline: Int64? = nil, now: Int64 = 0, uncertain: Int = 0
    ) -> @Sendable () -> SlotStep {
        {
            DeliveryRules.pace(
                booking: booking.map(t), gateOpensAt: gate.map(t), deadline: deadline.map(t), now: t(now),
                provider: .feee, state: fresh(uncertain: uncertain))
        }
    }

    static let paceRows: [Row<SlotStep>] = [
        Row("slot now: call", pace(booking: 0), expected: .call),
        Row("slot passed: call", pace(booking: -5, now: 0), expected: .call),
        Row("slot in 10 µs: wait for it", pace(booking: 10), expected: .wait(until: t(10))),
        Row(
            "provider paused past the slot: wait for the pause", pace(booking: 10, gate: 20),
            expected: .wait(until: t(20))),
        Row(
            "provider pause before the slot: wait for the slot", pace(booking: 20, gate: 10),
            expected: .wait(until: t(20))),
        Row("no slot before the deadline: expired", pace(booking: nil, deadline: 5), expected: rateLimited),
        Row("slot at the deadline: wait", pace(booking: 5, deadline: 5), expected: .wait(until: t(5))),
        Row("slot 1 µs after the deadline: expired", pace(booking: 6, deadline: 5), expected: rateLimited),
        Row(
            "provider pause beyond the deadline: expired", pace(booking: 1, gate: 6, deadline: 5), expected: rateLimited
        ),
        Row(
            "regression: no slot before the deadline after a call in doubt: expired, in doubt",
            pace(booking: nil, deadline: 5, uncertain: 2),
            expected: .end(
                expired(
                    "the feee rate limit for this account allows no call before the deadline — note: 2 earlier calls' results were unknown, so the order may have been cancelled by our own earlier call",
                    uncertain: 2))
        ),
    ]

    @Test("the call's slot", arguments: Self.paceRows)
    func pace(row: Row<SlotStep>) {
        #expect(row.decide() == row.expected)
    }

    static let guardRows: [Row<DeliveryEnding?>] = [
        Row(
            "the guard found the deadline passed: expired, no call, reporting the calls in doubt",
            { DeliveryRules.guardFoundDeadlinePassed(state: fresh(uncertain: 1)) },
            expected: expired("the deadline passed before the call could be sent; no call was made", uncertain: 1)),
        Row(
            "held until 1 µs before the deadline: wait",
            { DeliveryRules.guardHolds(until: t(9), deadline: t(10), provider: .feee, state: fresh()) },
            expected: nil),
        Row(
            "held until the deadline: wait",
            { DeliveryRules.guardHolds(until: t(10), deadline: t(10), provider: .feee, state: fresh()) },
            expected: nil),
        Row(
            "held until 1 µs after the deadline: expired, no call",
            { DeliveryRules.guardHolds(until: t(11), deadline: t(10), provider: .feee, state: fresh(uncertain: 1)) },
            expected: expired(
                "the feee rate limit for this account allows no call before the deadline; no call was made",
                uncertain: 1)),
        Row(
            "held, no deadline: wait",
            { DeliveryRules.guardHolds(until: t(11), deadline: nil, provider: .feee, state: fresh()) }, expected: nil),
    ]

    @Test("the send-time guard stopped the call", arguments: Self.guardRows)
    func guardStopped(row: Row<DeliveryEnding?>) {
        #expect(row.decide() == row.expected)
    }

    // MARK: After the answer

    static func answered(
        _ classification: CancelClassification, attempts: Int = 1, state: DeliveryState = fresh(),
        policy: RetryPolicy = policy, deadline: Int64? = nil, deadlineInstant: Int64? = nil, httpStatus: Int? = nil,
        nothingSent: Bool = false
    ) -> @Sendable () -> AnswerDecision {
        {
            DeliveryRules.afterAnswer(
                ProviderCallResult(
                    classification: classification, answer: ProviderAnswer(httpStatus: httpStatus), reason: "said so",
                    nothingSent: nothingSent),
                attempts: attempts, state: state, policy: policy, deadline: deadline.map(d),
                deadlineInstant: (deadlineInstant ?? deadline).map(t), now: ClockReading(date: d0, instant: t0),
                random: 0.5)
        }
    }

    static func decision(
        _ step: AnswerStep, _ state: DeliveryState = fresh(), pause: ProviderPause? = nil
    ) -> AnswerDecision {
        AnswerDecision(step: step, state: state, pause: pause)
    }

    static func retried(local: Int, uncertain: Int, round: Int = 0, base: Int = 0) -> DeliveryState {
        DeliveryState(
            budgetBase: base, uncertain: uncertain, localAttempts: local, round: round, lastAnswer: "said so")
    }

    static func counted(local: Int, uncertain: Int, round: Int = 0, base: Int = 0) -> DeliveryState {
        DeliveryState(budgetBase: base, uncertain: uncertain, localAttempts: local, round: round)
    }

    static let order = CancelClassification.retryLater(after: nil, scope: .order)
    static let ours = "so the order may have been cancelled by our own earlier call"

    static let answerRows: [Row<AnswerDecision>] = [
        Row(
            "cancelled: its outcome", answered(.cancelled),
            expected: decision(.end(.finish(.cancelled, reason: "said so", uncertain: 0)))),
        Row(
            "cancelled after a call in doubt: no note, it is ours",
            answered(.cancelled, state: fresh(uncertain: 1)),
            expected: decision(.end(.finish(.cancelled, reason: "said so", uncertain: 1)), fresh(uncertain: 1))),
        Row(
            "not found after a call in doubt: noted as maybe our own cancel",
            answered(.notFound, state: fresh(uncertain: 1)),
            expected: decision(
                .end(
                    .finish(
                        .notFound,
                        reason: "said so — note: an earlier call's result was unknown, \(Self.ours)",
                        uncertain: 1)), fresh(uncertain: 1))),
        Row(
            "already cancelled after two calls in doubt",
            answered(.alreadyCancelled, state: fresh(uncertain: 2)),
            expected: decision(
                .end(
                    .finish(
                        .alreadyCancelled,
                        reason: "said so — note: 2 earlier calls' results were unknown, \(Self.ours)",
                        uncertain: 2)), fresh(uncertain: 2))),
        Row(
            "configuration refused: configuration dead letter", answered(.configuration),
            expected: decision(.end(.deadLetter(.configuration, reason: "said so", uncertain: 0)))),
        Row(
            "unknown, first call: retried in process, one call in doubt", answered(.unknown),
            expected: decision(.retry(after: .milliseconds(100)), retried(local: 1, uncertain: 1))),
        Row(
            "unknown, nothing sent (no connection): retried in process, no call in doubt",
            answered(.unknown, nothingSent: true),
            expected: decision(.retry(after: .milliseconds(100)), retried(local: 1, uncertain: 0))),
        Row(
            "unknown with the budget spent: retries exhausted", answered(.unknown, attempts: 10),
            expected: decision(
                .end(
                    .deadLetter(
                        .retriesExhausted, reason: "gave up after 10 attempts; last answer: said so", uncertain: 1)),
                counted(local: 1, uncertain: 1))),
        Row(
            "a replay's budget starts at its base: 12 calls, base 10, retried",
            answered(.unknown, attempts: 12, state: fresh(base: 10)),
            expected: decision(.retry(after: .milliseconds(100)), retried(local: 1, uncertain: 1, base: 10))),
        Row(
            "throttled for the account: the account pauses for what it asked",
            answered(.retryLater(after: .seconds(2), scope: .account)),
            expected: decision(
                .retry(after: .seconds(2)), retried(local: 1, uncertain: 0),
                pause: ProviderPause(everyAccount: false, until: t(2 * second), after: .seconds(2)))),
        Row(
            "review finding: a 503 with Retry-After pauses the provider and counts as a call in doubt",
            answered(.retryLater(after: .seconds(2), scope: .provider), httpStatus: 503),
            expected: decision(
                .retry(after: .seconds(2)), retried(local: 1, uncertain: 1),
                pause: ProviderPause(everyAccount: true, until: t(2 * second), after: .seconds(2)))),
        Row(
            "a 429 is a refusal, not a call in doubt",
            answered(.retryLater(after: .seconds(2), scope: .account), httpStatus: 429),
            expected: decision(
                .retry(after: .seconds(2)), retried(local: 1, uncertain: 0),
                pause: ProviderPause(everyAccount: false, until: t(2 * second), after: .seconds(2)))),
        Row(
            "throttled for everyone, no Retry-After: the provider pauses 1 s",
            answered(.retryLater(after: nil, scope: .provider)),
            expected: decision(
                .retry(after: .milliseconds(100)), retried(local: 1, uncertain: 0),
                pause: ProviderPause(everyAccount: true, until: t(second), after: .seconds(1)))),
        Row(
            "one order must wait: no pause for others", answered(order),
            expected: decision(.retry(after: .milliseconds(100)), retried(local: 1, uncertain: 0))),
        Row(
            "the deadline comes before the backoff ends: expired",
            answered(.unknown, deadline: 100_000),
            expected: decision(
                .end(expired("the deadline passes before the next attempt (last answer: said so)", uncertain: 1)),
                counted(local: 1, uncertain: 1))),
        Row(
            "the backoff ends 1 µs before the deadline: retried",
            answered(.unknown, deadline: 100_001),
            expected: decision(.retry(after: .milliseconds(100)), retried(local: 1, uncertain: 1))),
        Row(
            "in-process attempts used up: parked in the first tier, next round",
            answered(.unknown, attempts: 3, state: counted(local: 2, uncertain: 2)),
            expected: decision(
                .end(
                    .park(
                        RetryParking(tier: RetryTier("5s")!, round: 1, dueAt: d(5 * second), reason: "said so"),
                        uncertain: 3)),
                counted(local: 3, uncertain: 3))),
        Row(
            "a replay parks with its budget's base",
            answered(.unknown, attempts: 13, state: counted(local: 2, uncertain: 0, base: 10)),
            expected: decision(
                .end(
                    .park(
                        RetryParking(
                            tier: RetryTier("5s")!, round: 1, dueAt: d(5 * second), reason: "said so",
                            attemptsBase: 10),
                        uncertain: 1)),
                counted(local: 3, uncertain: 1, base: 10))),
        Row(
            "a Retry-After of 30 s: parked in the tier that covers it",
            answered(.retryLater(after: .seconds(30), scope: .order)),
            expected: decision(
                .end(
                    .park(
                        RetryParking(tier: RetryTier("1m")!, round: 1, dueAt: d(30 * second), reason: "said so"),
                        uncertain: 0)),
                counted(local: 1, uncertain: 0))),
        Row(
            "round 5: the last tier again",
            answered(.unknown, attempts: 3, state: counted(local: 2, uncertain: 0, round: 5)),
            expected: decision(
                .end(
                    .park(
                        RetryParking(tier: RetryTier("10m")!, round: 6, dueAt: d(600 * second), reason: "said so"),
                        uncertain: 1)),
                counted(local: 3, uncertain: 1, round: 5))),
        Row(
            "the tier's due time at the deadline: expired",
            answered(.unknown, attempts: 3, state: counted(local: 2, uncertain: 0), deadline: 5 * second),
            expected: decision(
                .end(expired("the deadline passes before the next retry (last answer: said so)", uncertain: 1)),
                counted(local: 3, uncertain: 1))),
        Row(
            "the tier's due time 1 µs before the deadline: parked",
            answered(.unknown, attempts: 3, state: counted(local: 2, uncertain: 0), deadline: 5 * second + 1),
            expected: decision(
                .end(
                    .park(
                        RetryParking(tier: RetryTier("5s")!, round: 1, dueAt: d(5 * second), reason: "said so"),
                        uncertain: 1)),
                counted(local: 3, uncertain: 1))),
        Row(
            "no tier configured: dead letter, with the replay's base",
            answered(.unknown, attempts: 13, state: counted(local: 2, uncertain: 0, base: 10), policy: noTiers),
            expected: decision(
                .end(
                    .deadLetter(
                        .retriesExhausted, reason: "no retry tier configured; last answer: said so", uncertain: 1,
                        attemptsBase: 10)),
                counted(local: 3, uncertain: 1, base: 10))),
    ]

    @Test("what follows an answer", arguments: Self.answerRows)
    func afterAnswer(row: Row<AnswerDecision>) {
        #expect(row.decide() == row.expected)
    }

    // MARK: Retry tiers

    static func relay(
        due: Int64?, tier: String? = "5s", parkedAt: Int64? = 0, now: Int64 = 0
    ) -> @Sendable () -> RetryRecordStep {
        {
            DeliveryRules.retryRecord(
                due: due.map(d), tier: tier, parkedAt: parkedAt.map(d), tiers: policy.tiers, now: d(now))
        }
    }

    static let retryRecordRows: [Row<RetryRecordStep>] = [
        Row("no due time: back at once", relay(due: nil), expected: .backToCommands),
        Row("due now: back", relay(due: 0), expected: .backToCommands),
        Row("due 1 µs ago: back", relay(due: -1), expected: .backToCommands),
        Row("due in 1 µs: wait", relay(due: 1), expected: .wait(until: d(1))),
        Row(
            "due at the tier's delay + 1 s from parking: waits here", relay(due: 6 * second),
            expected: .wait(until: d(6 * second))),
        Row(
            "due 1 µs later than that: on to the next longer tier", relay(due: 6 * second + 1),
            expected: .moveToTier(RetryTier("1m")!)),
        // Review finding (the worker's flow control): sent back to the commands topic with its
        // due time, the record waited there in process — up to a day for an order created in the
        // future — holding an in-flight permit and its partition's committed offset.
        Row(
            "review finding: due beyond the longest tier: its turn in that tier, then round it again",
            relay(due: 3_600 * second, tier: "10m"), expected: .repark(RetryTier("10m")!, at: d(600 * second))),
        Row(
            "a tier this worker does not know: waits", relay(due: 3_600 * second, tier: "1h"),
            expected: .wait(until: d(3_600 * second))),
        Row(
            "no parking time: waits", relay(due: 3_600 * second, parkedAt: nil),
            expected: .wait(until: d(3_600 * second))),
        Row(
            "regression: parked in the future (the parker's clock ahead): read as parked now, moves on",
            relay(due: 3_600 * second, tier: "10m", parkedAt: 3_600 * second),
            expected: .repark(RetryTier("10m")!, at: d(600 * second))),
    ]

    @Test("a retry-tier record's next step", arguments: Self.retryRecordRows)
    func retryRecord(row: Row<RetryRecordStep>) {
        #expect(row.decide() == row.expected)
    }
}
