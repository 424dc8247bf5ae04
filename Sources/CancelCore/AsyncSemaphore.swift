import DequeModule
import Synchronization

/// A counting, FIFO semaphore for async code: the worker's global in-flight bound, a
/// partition's concurrency, a provider's concurrent calls. `acquire` suspends (it never blocks a
/// thread) while all permits are taken, and gives up when its task is cancelled.
public final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters = Deque<(id: Int, continuation: CheckedContinuation<Bool, Never>)>()
        var nextID = 0
    }

    private let state: Mutex<State>
    public let permits: Int

    public init(permits: Int) {
        self.permits = permits
        self.state = Mutex(State(available: permits))
    }

    /// Takes a permit, waiting in line while none is free. A task cancelled while it waits
    /// leaves the line and gets `CancellationError` (it holds no permit then).
    public func acquire() async throws(CancellationError) {
        if Task.isCancelled { throw CancellationError() }
        // A free permit is taken without suspending: a suspension re-enqueues the task on the
        // executor even when the continuation is resumed at once (issue 14: one task switch
        // per command and per call). Free permits mean nobody waits (`release` serves waiters
        // first), so the line's order holds.
        if self.tryAcquire() { return }
        let id = self.state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await waitForTurn { continuation in
            self.state.withLock { state in
                if state.available > 0 {
                    state.available -= 1
                    return .granted
                }
                if Task.isCancelled { return .cancelled }
                state.waiters.append((id, continuation))
                return .waiting
            }
        } leave: {
            self.state.withLock { state in
                state.waiters.firstIndex { $0.id == id }.map { state.waiters.remove(at: $0).continuation }
            }
        }
    }

    /// Takes a permit if one is free (then nobody waits: `release` hands permits to waiters
    /// first); false otherwise.
    public func tryAcquire() -> Bool {
        self.state.withLock { state in
            guard state.available > 0 else { return false }
            state.available -= 1
            return true
        }
    }

    public func release() {
        let waiter: CheckedContinuation<Bool, Never>? = self.state.withLock { state in
            if let waiter = state.waiters.popFirst() { return waiter.continuation }
            state.available += 1
            return nil
        }
        waiter?.resume(returning: true)
    }

    /// Permits currently taken.
    public var inUse: Int { self.state.withLock { self.permits - $0.available } }
}
