package import CancelCore
import DequeModule
import Synchronization

/// The callers of `cancel` waiting for their outcome, keyed by idempotency key, and the terminal
/// outcomes seen lately. One lock-protected state; continuations resume outside the lock.
///
/// A caller registers *before* its command is sent and waits after the send returned: an
/// outcome that arrives in between is kept in its slot, so none is missed however fast the
/// worker answers. Package access: the micro-benchmarks measure it directly.
package final class OutcomeWaiters: Sendable {
    /// Why a wait ended without an outcome.
    package enum Ending: Error, Sendable, Hashable {
        case timedOut
        case cancelled
        /// The client shut down (or its listener failed) before the outcome arrived.
        case closed
    }

    /// What one `cancel` asks, and so which outcomes answer it. Outcomes are published by key,
    /// but not every outcome under a key answers every command of that key: a command that
    /// reused the key for another order gets a `rejected` of its own (`OutcomeID.reused`), and
    /// the key's outcome is the first command's, about the first command's order. An outcome
    /// answers this command if it is about the same provider, account and order, and is the
    /// key's terminal outcome, this command's own reuse rejection, or a `failed` one.
    package struct Question: Sendable, Hashable {
        package let key: String
        let provider: String
        let account: String
        let order: [String: JSONValue]?
        let terminalID: String
        let reusedID: String

        package init(_ identity: CommandIdentity) {
            self.key = identity.idempotencyKey
            self.provider = identity.provider
            self.account = identity.account
            self.order = identity.order
            self.terminalID = OutcomeID.terminal(idempotencyKey: identity.idempotencyKey)
            self.reusedID = OutcomeID.reused(
                idempotencyKey: identity.idempotencyKey, fingerprint: OutcomeID.fingerprint(of: identity))
        }

        package func isAnswered(by outcome: CancelOutcome) -> Bool {
            outcome.idempotencyKey == self.key && outcome.provider == self.provider
                && outcome.account == self.account && outcome.order == self.order
                && (outcome.status == .failed || outcome.outcomeID == self.terminalID
                    || outcome.outcomeID == self.reusedID)
        }
    }

    package enum Registration: Sendable, Hashable {
        /// Wait with this ticket.
        case ticket(UInt64)
        /// The key's terminal outcome already arrived while this client listened.
        case known(CancelOutcome)
        case closed
    }

    private enum Slot {
        case pending(Question)
        case waiting(Question, CheckedContinuation<Result<CancelOutcome, Ending>, Never>)
        case delivered(CancelOutcome)
        /// Its time ran out before its caller began to wait: no outcome is taken for it.
        case expired
    }

    private struct State {
        var slots: [String: [UInt64: Slot]] = [:]
        var count = 0
        var nextTicket: UInt64 = 0
        var closed = false
        /// Outcomes seen lately (terminal and `failed`), by key (more than one when a key was reused: each
        /// answers only its own question).
        var remembered: [String: [CancelOutcome]] = [:]
        var rememberedOrder = Deque<String>()

        mutating func remove(_ key: String, _ ticket: UInt64) -> Slot? {
            guard let slot = self.slots[key]?.removeValue(forKey: ticket) else { return nil }
            if self.slots[key]?.isEmpty == true { self.slots[key] = nil }
            self.count -= 1
            return slot
        }
    }

    private let state = Mutex(State())
    private let rememberedCapacity: Int
    /// Outcomes remembered per key, at most (the latest).
    static var rememberedPerKey: Int { 8 }

    package init(rememberedCapacity: Int) {
        self.rememberedCapacity = rememberedCapacity
    }

    /// Callers registered and not yet answered.
    package var count: Int { self.state.withLock { $0.count } }

    package func register(_ question: Question) -> Registration {
        self.state.withLock { state in
            if state.closed { return .closed }
            // The latest that answers it: a `failed` before a replay's terminal outcome.
            if let outcome = state.remembered[question.key]?.last(where: question.isAnswered(by:)) {
                return .known(outcome)
            }
            state.nextTicket += 1
            state.slots[question.key, default: [:]][state.nextTicket] = .pending(question)
            state.count += 1
            return .ticket(state.nextTicket)
        }
    }

    /// Gives up a registration (the send failed).
    package func withdraw(_ key: String, _ ticket: UInt64) {
        let slot = self.state.withLock { $0.remove(key, ticket) }
        if case .waiting(_, let continuation) = slot { continuation.resume(returning: .failure(.cancelled)) }
    }

    /// The outcome for a registration, waiting at most `timeout`.
    package func wait(_ key: String, _ ticket: UInt64, timeout: Duration) async -> Result<CancelOutcome, Ending> {
        guard timeout > .zero else {
            let slot = self.state.withLock { $0.remove(key, ticket) }
            if case .delivered(let outcome) = slot { return .success(outcome) }
            return .failure(.timedOut)
        }
        // The timeout ends the wait through the slot, under the same lock as `deliver`: whoever
        // takes the slot first decides, so an outcome handed over is the wait's answer. (A race of
        // two tasks let `deliver` take the slot of a wait the timer had already ended.)
        let timer = Task {
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self.expire(key, ticket)
        }
        defer { timer.cancel() }
        return await self.wait(key, ticket)
    }

    /// The time of a registration ran out: a waiting caller is answered `timedOut`; one not yet
    /// waiting finds its slot expired.
    private func expire(_ key: String, _ ticket: UInt64) {
        let slot = self.state.withLock { state -> Slot? in
            switch state.slots[key]?[ticket] {
            case .waiting: return state.remove(key, ticket)
            case .pending:
                state.slots[key]?[ticket] = .expired
                return nil
            case .delivered, .expired, nil: return nil
            }
        }
        if case .waiting(_, let continuation) = slot { continuation.resume(returning: .failure(.timedOut)) }
    }

    private func wait(_ key: String, _ ticket: UInt64) async -> Result<CancelOutcome, Ending> {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<CancelOutcome, Ending>, Never>) in
                let immediate: Result<CancelOutcome, Ending>? = self.state.withLock { state in
                    switch state.slots[key]?[ticket] {
                    case .delivered(let outcome):
                        _ = state.remove(key, ticket)
                        return .success(outcome)
                    case .expired:
                        _ = state.remove(key, ticket)
                        return .failure(.timedOut)
                    case .pending(let question):
                        if state.closed || Task.isCancelled {
                            _ = state.remove(key, ticket)
                            return .failure(state.closed ? .closed : .cancelled)
                        }
                        state.slots[key]?[ticket] = .waiting(question, continuation)
                        return nil
                    case .waiting, nil:
                        return .failure(state.closed ? .closed : .cancelled)
                    }
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let slot = self.state.withLock { state -> Slot? in
                guard case .waiting = state.slots[key]?[ticket] else { return nil }
                return state.remove(key, ticket)
            }
            if case .waiting(_, let continuation) = slot { continuation.resume(returning: .failure(.cancelled)) }
        }
    }

    /// Hands `outcome` to every caller waiting for it (`Question.isAnswered(by:)`); remembers it
    /// when terminal. Returns how many callers it answered.
    @discardableResult
    package func deliver(_ outcome: CancelOutcome) -> Int {
        let key = outcome.idempotencyKey
        let waiting: [CheckedContinuation<Result<CancelOutcome, Ending>, Never>] = self.state.withLock { state in
            // `failed` too: the worker skips a resend of a dead-lettered key until it is replayed,
            // so its `failed` is the answer a later `cancel` of it gets.
            if self.rememberedCapacity > 0
                && state.remembered[key]?.contains(where: { $0.outcomeID == outcome.outcomeID }) != true
            {
                if state.remembered[key] == nil { state.rememberedOrder.append(key) }
                state.remembered[key, default: []].append(outcome)
                // A key's outcomes are few (its terminal one, reuse rejections, a failed one per
                // dead-lettering); a producer resending invalid commands under one key makes one
                // each: the latest few are kept.
                if let count = state.remembered[key]?.count, count > Self.rememberedPerKey {
                    state.remembered[key]?.removeFirst(count - Self.rememberedPerKey)
                }
                if state.rememberedOrder.count > self.rememberedCapacity, let oldest = state.rememberedOrder.popFirst()
                {
                    state.remembered[oldest] = nil
                }
            }
            guard let slots = state.slots[key] else { return [] }
            var resumed: [CheckedContinuation<Result<CancelOutcome, Ending>, Never>] = []
            for (ticket, slot) in slots {
                switch slot {
                case .pending(let question):
                    if question.isAnswered(by: outcome) { state.slots[key]?[ticket] = .delivered(outcome) }
                case .waiting(let question, let continuation):
                    guard question.isAnswered(by: outcome) else { continue }
                    _ = state.remove(key, ticket)
                    resumed.append(continuation)
                case .delivered, .expired:
                    break  // the first outcome for a registration is its answer; an expired one has none
                }
            }
            return resumed
        }
        for continuation in waiting { continuation.resume(returning: .success(outcome)) }
        return waiting.count
    }

    /// Ends every wait (the client stops); later registrations are refused.
    package func close() {
        let waiting: [CheckedContinuation<Result<CancelOutcome, Ending>, Never>] = self.state.withLock { state in
            state.closed = true
            var resumed: [CheckedContinuation<Result<CancelOutcome, Ending>, Never>] = []
            for (key, slots) in state.slots {
                for (ticket, slot) in slots {
                    guard case .waiting(_, let continuation) = slot else { continue }
                    _ = state.remove(key, ticket)
                    resumed.append(continuation)
                }
            }
            return resumed
        }
        for continuation in waiting { continuation.resume(returning: .failure(.closed)) }
    }
}
