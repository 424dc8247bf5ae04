import CancelCore
import Testing

/// `RetryPolicy.next`: every outcome class × attempt budget × deadline × in-process attempts,
/// as a table, without a clock or a broker (issue 13 §1).
@Suite("What happens after an answer (RetryPolicy.next)")
struct NextStepTests {
    static let policy = RetryPolicy()  // 3 in process, 200 ms base, 5 s in-process cap, 10 calls

    struct Row: Sendable, CustomTestStringConvertible {
        var classification: CancelClassification
        var callsMade: Int
        var localAttempts: Int
        var timeLeft: Duration?
        var expected: NextStep
        var testDescription: String {
            "\(self.classification), \(self.callsMade) calls, \(self.localAttempts) here, deadline \(self.timeLeft.map { "\($0)" } ?? "none")"
        }
    }

    static let terminal: [(CancelClassification, OutcomeStatus)] = [
        (.cancelled, .cancelled), (.alreadyCancelled, .alreadyCancelled), (.notCancellable, .notCancellable),
        (.notFound, .notFound), (.rejected, .rejected),
    ]

    static let rows: [Row] = {
        var rows: [Row] = []
        // Terminal answers and configuration: whatever the budget and the deadline.
        for (classification, status) in Self.terminal {
            for (calls, time) in [(1, nil), (10, nil), (3, Duration.milliseconds(1))] as [(Int, Duration?)] {
                rows.append(
                    Row(
                        classification: classification, callsMade: calls, localAttempts: 1, timeLeft: time,
                        expected: .finish(status)))
            }
        }
        for (calls, time) in [(1, nil), (10, Duration.milliseconds(1))] as [(Int, Duration?)] {
            rows.append(
                Row(
                    classification: .configuration, callsMade: calls, localAttempts: 1, timeLeft: time,
                    expected: .configurationDeadLetter))
        }
        // Retryable answers.
        let retryable: [CancelClassification] = [.unknown, .retryLater(after: nil, scope: .account)]
        for classification in retryable {
            // Budget spent: dead letter, even with time left.
            rows.append(
                Row(
                    classification: classification, callsMade: 10, localAttempts: 1, timeLeft: nil,
                    expected: .retriesExhausted))
            rows.append(
                Row(
                    classification: classification, callsMade: 12, localAttempts: 3, timeLeft: .seconds(60),
                    expected: .retriesExhausted))
            // Budget left, first attempt here: backoff 200 ms × 0.5 = 100 ms in process.
            rows.append(
                Row(
                    classification: classification, callsMade: 1, localAttempts: 1, timeLeft: nil,
                    expected: .retryInProcess(after: .milliseconds(100))))
            // Second attempt: 400 ms × 0.5.
            rows.append(
                Row(
                    classification: classification, callsMade: 2, localAttempts: 2, timeLeft: .seconds(60),
                    expected: .retryInProcess(after: .milliseconds(200))))
            // The deadline comes before the backoff ends: expire.
            rows.append(
                Row(
                    classification: classification, callsMade: 1, localAttempts: 1, timeLeft: .milliseconds(100),
                    expected: .expire))
            rows.append(
                Row(
                    classification: classification, callsMade: 1, localAttempts: 1, timeLeft: .milliseconds(50),
                    expected: .expire))
            // In-process attempts used up: a retry tier.
            rows.append(
                Row(
                    classification: classification, callsMade: 3, localAttempts: 3, timeLeft: nil,
                    expected: .retryTier(providerAsked: nil)))
        }
        // Retry-After: at least what the provider asked; too long to hold in process → a tier;
        // beyond the deadline → expire.
        let asked = CancelClassification.retryLater(after: .seconds(2), scope: .account)
        rows.append(
            Row(
                classification: asked, callsMade: 1, localAttempts: 1, timeLeft: nil,
                expected: .retryInProcess(after: .seconds(2))))
        rows.append(
            Row(classification: asked, callsMade: 1, localAttempts: 1, timeLeft: .seconds(1), expected: .expire))
        let long = CancelClassification.retryLater(after: .seconds(30), scope: .provider)
        rows.append(
            Row(
                classification: long, callsMade: 1, localAttempts: 1, timeLeft: nil,
                expected: .retryTier(providerAsked: .seconds(30))))
        rows.append(
            Row(
                classification: long, callsMade: 1, localAttempts: 1, timeLeft: .seconds(31),
                expected: .retryTier(providerAsked: .seconds(30))))
        rows.append(
            Row(classification: long, callsMade: 1, localAttempts: 1, timeLeft: .seconds(30), expected: .expire))
        rows.append(
            Row(classification: long, callsMade: 10, localAttempts: 1, timeLeft: nil, expected: .retriesExhausted))
        return rows
    }()

    @Test("the next step", arguments: Self.rows)
    func next(row: Row) {
        let step = Self.policy.next(
            after: row.classification, callsMade: row.callsMade, localAttempts: row.localAttempts,
            timeLeft: row.timeLeft,
            random: 0.5)
        #expect(step == row.expected)
    }

    @Test("in-process backoff never exceeds its cap, never undercuts Retry-After, whatever the jitter")
    func bounds() {
        for attempt in 1...2 {
            for random in stride(from: 0.0, to: 1.0, by: 0.125) {
                let step = Self.policy.next(
                    after: .unknown, callsMade: attempt, localAttempts: attempt, timeLeft: nil, random: random)
                guard case .retryInProcess(let delay) = step else {
                    Issue.record("attempt \(attempt), random \(random): \(step)")
                    continue
                }
                #expect(delay >= .zero && delay <= Self.policy.maxInProcessBackoff)
                let asked = Self.policy.next(
                    after: .retryLater(after: .seconds(1), scope: .order), callsMade: attempt, localAttempts: attempt,
                    timeLeft: nil, random: random)
                #expect(asked == .retryInProcess(after: max(.seconds(1), delay)))
            }
        }
    }
}
