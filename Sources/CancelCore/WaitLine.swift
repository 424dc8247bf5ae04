/// How a task's attempt to enter a line ends, decided under the line's own lock.
public enum LineEntry: Sendable {
    /// Its turn at once: the continuation was not kept.
    case granted
    /// The task is already cancelled: the continuation was not kept.
    case cancelled
    /// The continuation was kept in the line; whoever releases the line resumes it with `true`.
    case waiting
}

/// Waits for a turn in a FIFO line that the caller keeps under its own lock (a semaphore's
/// permits, a key's holders). `enter` runs under that lock: it grants the turn, or keeps the
/// continuation in the line, or says the task is already cancelled (checked under the lock, so
/// a cancellation can never slip between `leave` finding nothing and `enter` keeping the
/// waiter). A task cancelled while it waits is taken out of the line by `leave` (which returns
/// the kept continuation, if it was still waiting) and gets `CancellationError`: it then holds
/// nothing.
public func waitForTurn(
    enter: (CheckedContinuation<Bool, Never>) -> LineEntry,
    leave: @escaping @Sendable () -> CheckedContinuation<Bool, Never>?
) async throws(CancellationError) {
    if Task.isCancelled { throw CancellationError() }
    let granted = await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            switch enter(continuation) {
            case .granted: continuation.resume(returning: true)
            case .cancelled: continuation.resume(returning: false)
            case .waiting: break
            }
        }
    } onCancel: {
        leave()?.resume(returning: false)
    }
    if !granted { throw CancellationError() }
}
