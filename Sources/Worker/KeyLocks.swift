import CancelCore
import DequeModule
import Synchronization

/// One task per idempotency key at a time inside this worker: duplicates of a key that is in
/// flight wait for it (then find it done in the ledger) instead of racing for the claim.
final class KeyLocks: Sendable {
    private struct State {
        var holders: [String: Deque<(id: Int, continuation: CheckedContinuation<Bool, Never>)>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    /// Takes the key, waiting while another task holds it. A task cancelled while it waits
    /// leaves the line and gets `CancellationError` (it holds nothing then).
    func lock(_ key: String) async throws(CancellationError) {
        if Task.isCancelled { throw CancellationError() }
        let id = self.state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await waitForTurn { continuation in
            self.state.withLock { state in
                if state.holders[key] == nil {
                    state.holders[key] = []
                    return .granted
                }
                if Task.isCancelled { return .cancelled }
                state.holders[key]!.append((id, continuation))
                return .waiting
            }
        } leave: {
            self.state.withLock { state in
                state.holders[key]?.firstIndex { $0.id == id }.map { state.holders[key]!.remove(at: $0).continuation }
            }
        }
    }

    /// Takes the key if no task holds it; false (and nothing changes) otherwise.
    func tryLock(_ key: String) -> Bool {
        self.state.withLock { state in
            guard state.holders[key] == nil else { return false }
            state.holders[key] = []
            return true
        }
    }

    /// Gives the key to the next waiter, if any.
    func unlock(_ key: String) {
        let next: CheckedContinuation<Bool, Never>? = self.state.withLock { state in
            guard var waiters = state.holders[key] else { return nil }
            if let next = waiters.popFirst() {
                state.holders[key] = waiters
                return next.continuation
            }
            state.holders[key] = nil
            return nil
        }
        next?.resume(returning: true)
    }

    /// Keys currently held.
    var count: Int { self.state.withLock { $0.holders.count } }
}
