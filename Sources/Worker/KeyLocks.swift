import DequeModule
import Synchronization

/// One task per idempotency key at a time inside this worker: duplicates of a key that is in
/// flight wait for it (then find it done in the ledger) instead of racing for the claim.
final class KeyLocks: Sendable {
    private struct State {
        var holders: [String: Deque<CheckedContinuation<Void, Never>>] = [:]
    }

    private let state = Mutex(State())

    /// Takes the key, waiting while another task holds it.
    func lock(_ key: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = self.state.withLock { state in
                if state.holders[key] == nil {
                    state.holders[key] = []
                    return true
                }
                state.holders[key]!.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    /// Gives the key to the next waiter, if any.
    func unlock(_ key: String) {
        let next: CheckedContinuation<Void, Never>? = self.state.withLock { state in
            guard var waiters = state.holders[key] else { return nil }
            if let next = waiters.popFirst() {
                state.holders[key] = waiters
                return next
            }
            state.holders[key] = nil
            return nil
        }
        next?.resume()
    }

    /// Keys currently held.
    var count: Int { self.state.withLock { $0.holders.count } }
}
