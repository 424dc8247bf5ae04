import Synchronization

/// Group commit: items submitted while `writers` batches are being written wait, then go
/// together in the next batch, so a busy worker pays one transaction or statement per batch, not
/// per operation, and an idle one waits for nothing.
///
/// There is no background task: a caller that finds fewer than `writers` batches in flight
/// becomes a writer and writes batches until the queue is empty. `write` must answer every
/// item of its batch (each item carries its own ``PendingAnswer``).
final class GroupCommit<Item: Sendable>: Sendable {
    private struct State {
        var items: [Item] = []
        var writing = 0
    }

    private let state = Mutex<State>(State())
    /// Items per batch, at most.
    let maxBatch: Int
    /// Batches in flight at once, at most.
    let writers: Int

    init(maxBatch: Int, writers: Int) {
        precondition(maxBatch > 0 && writers > 0)
        self.maxBatch = maxBatch
        self.writers = writers
    }

    /// Queues `item`; when a writer's place is free, writes batches with `write` until the queue
    /// is empty. Returns once `item` is in a batch that was written, or queued behind a writer.
    func submit(_ item: Item, write: ([Item]) async -> Void) async {
        let becomeWriter = self.state.withLock { state in
            state.items.append(item)
            guard state.writing < self.writers else { return false }
            state.writing += 1
            return true
        }
        guard becomeWriter else { return }
        while true {
            let batch: [Item] = self.state.withLock { state in
                guard !state.items.isEmpty else {
                    state.writing -= 1
                    return []
                }
                if state.items.count <= self.maxBatch {
                    defer { state.items.removeAll(keepingCapacity: true) }
                    return state.items
                }
                let batch = Array(state.items.prefix(self.maxBatch))
                state.items.removeFirst(self.maxBatch)
                return batch
            }
            guard !batch.isEmpty else { return }
            await write(batch)
        }
    }
}

/// A result delivered once, possibly before anyone waits for it.
final class PendingAnswer<T: Sendable>: Sendable {
    private let state = Mutex<
        (result: Result<T, any Error>?, waiter: CheckedContinuation<Result<T, any Error>, Never>?)
    >((nil, nil))

    init() {}

    /// Delivers `result`; only the first call counts.
    func set(_ result: Result<T, any Error>) {
        let waiter: CheckedContinuation<Result<T, any Error>, Never>? = self.state.withLock { state in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }

    /// Whether `set` was called.
    var isSet: Bool { self.state.withLock { $0.result != nil } }

    func value() async throws -> T {
        // Already delivered (the caller wrote the batch itself): no suspension, which would
        // re-enqueue the task even though the continuation is resumed at once.
        if let ready = self.state.withLock({ $0.result }) { return try ready.get() }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>, Never>) in
            let ready: Result<T, any Error>? = self.state.withLock { state in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        return try result.get()
    }
}
