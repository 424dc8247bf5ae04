import CancelClient
import CancelCore
import Foundation
import Testing

@Suite("Waiting for outcomes by idempotency key (no Kafka)", .timeLimit(.minutes(1)))
struct OutcomeWaitersTests {
    func identity(_ key: String, order: String = "o") -> CommandIdentity {
        CommandIdentity(
            commandID: "c-\(key)", idempotencyKey: key, provider: "fastpod", account: "a", order: ["id": .string(order)]
        )
    }

    func question(_ key: String, order: String = "o") -> OutcomeWaiters.Question {
        OutcomeWaiters.Question(self.identity(key, order: order))
    }

    func outcome(_ key: String, _ status: OutcomeStatus = .cancelled, order: String = "o") -> CancelOutcome {
        CancelOutcome(
            outcomeID: status == .failed
                ? OutcomeID.failed(idempotencyKey: key, deadLetterCount: 1) : OutcomeID.terminal(idempotencyKey: key),
            identity: self.identity(key, order: order), status: status, reason: "test", attempts: 1,
            completedAt: Date(), workerID: "w")
    }

    func ticket(_ registration: OutcomeWaiters.Registration) throws -> UInt64 {
        guard case .ticket(let ticket) = registration else {
            throw WaitersTestFailure(description: "expected a ticket, got \(registration)")
        }
        return ticket
    }

    @Test("an outcome that arrives between the registration and the wait is not lost")
    func outcomeBeforeWait() async throws {
        let waiters = OutcomeWaiters(rememberedCapacity: 0)
        let ticket = try self.ticket(waiters.register(self.question("k")))
        #expect(waiters.deliver(self.outcome("k")) == 0, "nobody waits yet")
        let result = await waiters.wait("k", ticket, timeout: .seconds(5))
        #expect(try result.get().idempotencyKey == "k")
        #expect(waiters.count == 0)
    }

    @Test("10,000 concurrent waiters, delivered in reverse order, each get the outcome of their own key")
    func manyWaiters() async throws {
        let waiters = OutcomeWaiters(rememberedCapacity: 0)
        let keys = (0..<10_000).map { "key-\($0)" }
        let tickets = try keys.map { try self.ticket(waiters.register(self.question($0))) }
        #expect(waiters.count == keys.count)
        try await withThrowingTaskGroup(of: (String, String).self) { group in
            for (key, ticket) in zip(keys, tickets) {
                group.addTask { (key, try await waiters.wait(key, ticket, timeout: .seconds(30)).get().idempotencyKey) }
            }
            for key in keys.reversed() { waiters.deliver(self.outcome(key)) }
            var answered = 0
            for try await (key, received) in group {
                #expect(key == received)
                answered += 1
            }
            #expect(answered == keys.count)
        }
        #expect(waiters.count == 0)
    }

    /// Review finding (CancelClient): `failed` outcomes were not remembered, so a resend of a
    /// dead-lettered key (which the worker skips until a replay) waited out its timeout.
    @Test("review finding: a failed outcome is remembered; the key's latest outcome answers a later registration")
    func failedRemembered() throws {
        let waiters = OutcomeWaiters(rememberedCapacity: 10)
        waiters.deliver(self.outcome("dead", .failed))
        guard case .known(let known) = waiters.register(self.question("dead")) else {
            Issue.record("a failed outcome answers a later registration")
            return
        }
        #expect(known.status == .failed)
        // Replayed, then cancelled: the latest answers.
        waiters.deliver(self.outcome("dead", .cancelled))
        guard case .known(let latest) = waiters.register(self.question("dead")) else {
            Issue.record("the terminal outcome answers a later registration")
            return
        }
        #expect(latest.status == .cancelled)
    }

    /// Review finding (CancelClient): `deliver` took a waiter's slot and resumed it while the
    /// timeout's child had already won the race: the wait said "timed out" and the outcome,
    /// taken from its slot, was lost (38 of 3,000 in the reviewer's model).
    @Test("review finding: an outcome delivered as the timeout fires is either the wait's answer or not taken")
    func deliveryRacingTheTimeout() async throws {
        let waiters = OutcomeWaiters(rememberedCapacity: 0)
        var lost = 0
        for round in 0..<2_000 {
            let key = "race-\(round)"
            let ticket = try self.ticket(waiters.register(self.question(key)))
            async let result = waiters.wait(key, ticket, timeout: .microseconds(300))
            try await Task.sleep(for: .microseconds(Int64.random(in: 0...600)))
            let answered = waiters.deliver(self.outcome(key))
            if answered == 1, case .failure = await result { lost += 1 }
            _ = await result
        }
        #expect(lost == 0, "handed to a wait that then said timed out: \(lost) of 2,000")
        #expect(waiters.count == 0)
    }

    @Test("two waiters of one key both get it; a timeout leaves no waiter behind")
    func sameKeyAndTimeout() async throws {
        let waiters = OutcomeWaiters(rememberedCapacity: 0)
        let first = try self.ticket(waiters.register(self.question("shared")))
        let second = try self.ticket(waiters.register(self.question("shared")))
        async let a = waiters.wait("shared", first, timeout: .seconds(5))
        async let b = waiters.wait("shared", second, timeout: .seconds(5))
        waiters.deliver(self.outcome("shared"))
        #expect(try await a.get().idempotencyKey == "shared")
        #expect(try await b.get().idempotencyKey == "shared")

        let lonely = try self.ticket(waiters.register(self.question("never")))
        let timedOut = await waiters.wait("never", lonely, timeout: .milliseconds(50))
        #expect(timedOut == .failure(.timedOut))
        #expect(waiters.count == 0)
    }

    @Test("terminal outcomes are remembered (oldest forgotten first), failed ones are not")
    func remembered() throws {
        let waiters = OutcomeWaiters(rememberedCapacity: 2)
        waiters.deliver(self.outcome("a"))
        waiters.deliver(self.outcome("dead", .failed))
        waiters.deliver(self.outcome("b"))
        waiters.deliver(self.outcome("c"))
        guard case .known(let known) = waiters.register(self.question("c")) else {
            Issue.record("the latest terminal outcome should be remembered")
            return
        }
        #expect(known.idempotencyKey == "c")
        if case .known = waiters.register(self.question("a")) { Issue.record("the oldest should be forgotten") }
        if case .known = waiters.register(self.question("dead")) {
            Issue.record("a failed outcome is not the key's last word")
        }
    }

    /// Review finding: a waiter took the first outcome published under its key, whatever it
    /// answered: a command reusing a key for another order (custom keys, or the default
    /// `<provider>-<order>` key across accounts) was told `cancelled` with the first order's
    /// outcome, while the worker rejected it (`idempotency_key_reused`); the wrong outcome was
    /// remembered too, and answered its resend.
    @Test("regression: a waiter gets only an outcome about its own command; the other order's is not its answer")
    func otherOrdersOutcome() async throws {
        let waiters = OutcomeWaiters(rememberedCapacity: 10)
        let mine = try self.ticket(waiters.register(self.question("k", order: "x")))
        // The key's terminal outcome, about order y: not an answer for order x, only remembered.
        let other = self.outcome("k", order: "y")
        #expect(waiters.deliver(other) == 0)
        // Order x's own answer: the worker's rejection of the reused key, under its own id.
        let reused = CancelOutcome(
            outcomeID: OutcomeID.reused(
                idempotencyKey: "k", fingerprint: OutcomeID.fingerprint(of: self.identity("k", order: "x"))),
            identity: self.identity("k", order: "x"), status: .rejected, reason: "idempotency_key_reused", attempts: 0,
            completedAt: Date(), workerID: "w")
        // An invalid command's rejection under the key (its own id) answers nobody else either.
        let invalid = CancelOutcome(
            outcomeID: OutcomeID.invalid(idempotencyKey: "k", payload: Array("{}".utf8)),
            identity: self.identity("k", order: "x"), status: .rejected, reason: "invalid", attempts: 0,
            completedAt: Date(), workerID: "w")
        #expect(waiters.deliver(invalid) == 0)
        waiters.deliver(reused)
        #expect(try await waiters.wait("k", mine, timeout: .seconds(5)).get() == reused)
        // Each remembered outcome answers only its own question.
        #expect(waiters.register(self.question("k", order: "y")) == .known(other))
        #expect(waiters.register(self.question("k", order: "x")) == .known(reused))
    }

    @Test("closing ends every wait, and refuses new registrations")
    func close() async throws {
        let waiters = OutcomeWaiters(rememberedCapacity: 0)
        let waiting = try self.ticket(waiters.register(self.question("w")))
        let pending = try self.ticket(waiters.register(self.question("p")))
        async let ended = waiters.wait("w", waiting, timeout: .seconds(5))
        waiters.close()
        #expect(await ended == .failure(.closed))
        #expect(await waiters.wait("p", pending, timeout: .seconds(5)) == .failure(.closed))
        #expect(waiters.register(self.question("x")) == .closed)
    }
}

struct WaitersTestFailure: Error, CustomStringConvertible {
    var description: String
}
