import DequeModule
import Synchronization

/// A counting, FIFO semaphore for async code: the worker's global in-flight bound, a
/// partition's concurrency, a provider's concurrent calls. `acquire` suspends (it never blocks a
/// thread) while all permits are taken.
public final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters = Deque<CheckedContinuation<Void, Never>>()
    }

    private let state: Mutex<State>
    public let permits: Int

    public init(permits: Int) {
        self.permits = permits
        self.state = Mutex(State(available: permits))
    }

    public func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = self.state.withLock { state in
                if state.available > 0 {
                    state.available -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    public func release() {
        let waiter: CheckedContinuation<Void, Never>? = self.state.withLock { state in
            if let waiter = state.waiters.popFirst() { return waiter }
            state.available += 1
            return nil
        }
        waiter?.resume()
    }

    /// Permits currently taken.
    public var inUse: Int { self.state.withLock { self.permits - $0.available } }
}
