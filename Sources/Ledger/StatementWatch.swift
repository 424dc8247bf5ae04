import CancelCore
import Synchronization

/// The PostgreSQL ledger's statements in flight, each with its deadline, so that none holds its
/// caller for good: ``expire(at:)`` fails those past their deadline, ``stop(_:)`` fails all of
/// them (and every later one) when the ledger stops.
///
/// PostgresNIO 1.33.2 never completes a query written to a connection that has just closed, and
/// a server that goes silent (a lock held elsewhere, a network path that drops packets) answers
/// nothing for as long as TCP keeps the connection. A statement whose answer does not come is
/// abandoned: its caller gets `LedgerError.unavailable`, as for an unreachable server, and the
/// query's own task ends whenever PostgresNIO lets it.
final class StatementWatch: Sendable {
    /// Why a statement was abandoned.
    enum Abandoned: Sendable {
        case timedOut
        case stopped(LedgerError)
    }

    private struct Watched {
        let deadline: ContinuousClock.Instant
        let fail: @Sendable (Abandoned) -> Void
    }

    private struct State {
        var watched: [Int: Watched] = [:]
        var nextID = 0
        /// Why statements fail at once, once the ledger stopped.
        var stopped: LedgerError?
    }

    private let state = Mutex(State())

    /// Watches a statement until ``finish(_:)``; `fail` is called (once, outside the lock) if its
    /// deadline passes or the ledger stops first. A failure, with the reason, if the ledger stopped.
    func start(
        deadline: ContinuousClock.Instant, fail: @escaping @Sendable (Abandoned) -> Void
    ) -> Result<Int, LedgerError> {
        self.state.withLock { state in
            if let stopped = state.stopped { return .failure(stopped) }
            state.nextID += 1
            state.watched[state.nextID] = Watched(deadline: deadline, fail: fail)
            return .success(state.nextID)
        }
    }

    /// The statement answered (or failed by itself).
    func finish(_ id: Int) {
        _ = self.state.withLock { $0.watched.removeValue(forKey: id) }
    }

    /// Fails every statement whose deadline is not after `now`.
    func expire(at now: ContinuousClock.Instant) {
        let due: [Watched] = self.state.withLock { state in
            let due = state.watched.filter { $0.value.deadline <= now }
            for id in due.keys { state.watched.removeValue(forKey: id) }
            return Array(due.values)
        }
        for watched in due { watched.fail(.timedOut) }
    }

    /// Fails every statement in flight, and every later one, with `error`.
    func stop(_ error: LedgerError) {
        let all: [Watched] = self.state.withLock { state in
            state.stopped = state.stopped ?? error
            defer { state.watched = [:] }
            return Array(state.watched.values)
        }
        for watched in all { watched.fail(.stopped(error)) }
    }

    /// Statements being watched (for tests).
    var count: Int { self.state.withLock { $0.watched.count } }
}
