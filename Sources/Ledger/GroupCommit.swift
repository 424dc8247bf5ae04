import Synchronization

/// Group commit: items submitted while `writers` batches are being written wait, then go
/// together in the next batch, so a busy worker pays one transaction or statement per batch, not
/// per operation, and an idle one waits for nothing.
///
/// No task runs while the queue is idle: a caller that finds fewer than `writers` batches in
/// flight becomes a writer and writes the next batch (its own item's). If items are left, a task
/// of its own writes them until the queue is empty, and the caller returns: held as the writer
/// while others kept submitting, a caller did not return for as long as the writer was
/// saturated (seconds, past its claim's lease) and could not be cancelled. `write` must answer
/// every item of its batch (each item carries its own ``PendingAnswer``).
final class GroupCommit<Item: Sendable>: Sendable {
    private struct State {
        var items: [Item] = []
        var writing = 0
        /// When the last batch was written.
        var lastWritten: ContinuousClock.Instant?
        /// The task that submitted the last item (its hash), and when an item last came from
        /// another task than the one before it: the sign that several callers write at once.
        var lastCaller: Int?
        var callersMixed: ContinuousClock.Instant?
        /// How fast items arrive, for the linger's rate rule.
        var arrivals: ArrivalRate?
    }

    private let state = Mutex<State>(State())
    /// Items per batch, at most.
    let maxBatch: Int
    /// Batches in flight at once, at most.
    let writers: Int

    /// How long a small batch may wait for more items after the last batch was written.
    let linger: Duration
    /// Batches of fewer items than this linger; larger ones are written at once.
    let lingerBelow: Int

    /// `linger` zero: every batch is written at once. Otherwise a batch of fewer than
    /// `lingerBelow` items waits until `linger` has passed since the last batch was written,
    /// gathering what arrives meanwhile. The wait follows the load: a lone item after a quiet
    /// spell (nothing written for `linger`) goes at once, and so do the items of one caller
    /// writing one after another (no item from another task for `linger`), and an empty queue
    /// ends the writer at once; a saturated queue fills its batches without it. At a moderate
    /// rate each batch's fixed cost (a transaction's `BEGIN`, `COMMIT` and page writes) is then
    /// shared by more items (issue 14).
    ///
    /// `lingerFrom` above zero: batches linger only while items arrive at `lingerFrom` per
    /// `linger` or faster, measured over windows of `rateWindow` (default ten lingers). Below that
    /// rate a linger gathers too little to pay for its timer, whose wake-ups cost the worker
    /// more than the transactions it saves (BENCHMARKS.md, 2026-11-29 12:10–).
    init(
        maxBatch: Int, writers: Int, linger: Duration = .zero, lingerBelow: Int = 0, lingerFrom: Int = 0,
        rateWindow: Duration? = nil
    ) {
        precondition(maxBatch > 0 && writers > 0 && linger >= .zero && lingerBelow >= 0 && lingerFrom >= 0)
        self.maxBatch = maxBatch
        self.writers = writers
        self.linger = linger
        self.lingerBelow = lingerBelow
        if linger > .zero && lingerFrom > 0 {
            let window = rateWindow ?? linger * 10
            precondition(window > .zero)
            self.state.withLock {
                $0.arrivals = ArrivalRate(window: window, needed: Double(lingerFrom) * (window / linger))
            }
        }
    }

    /// Queues `item`; when a writer's place is free, writes the next batch with `write` and
    /// leaves what is left to a task. Returns once `item` is in a batch that was written, or
    /// queued behind a writer.
    func submit(_ item: Item, write: @escaping @Sendable ([Item]) async -> Void) async {
        let caller = self.linger > .zero ? withUnsafeCurrentTask { $0?.hashValue } : nil
        let now: ContinuousClock.Instant? = caller != nil ? .now : nil
        let becomeWriter = self.state.withLock { state in
            state.items.append(item)
            if let caller, let now {
                if let last = state.lastCaller, last != caller { state.callersMixed = now }
                state.lastCaller = caller
                state.arrivals?.arrived(at: now)
            }
            guard state.writing < self.writers else { return false }
            state.writing += 1
            return true
        }
        guard becomeWriter, await self.writeBatch(write) else { return }
        Task { while await self.writeBatch(write) {} }
    }

    /// Writes the next batch, as a writer. True: items are left and this is still a writer;
    /// false: the queue is empty and the writer's place is given back.
    private func writeBatch(_ write: ([Item]) async -> Void) async -> Bool {
        if let wait = self.lingering() { try? await Task.sleep(for: wait) }
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
        guard !batch.isEmpty else { return false }
        await write(batch)
        return self.state.withLock { state in
            if self.linger > .zero { state.lastWritten = .now }
            guard state.items.isEmpty else { return true }
            state.writing -= 1
            return false
        }
    }

    /// How long the next batch waits for more items: nil to write it at once.
    private func lingering() -> Duration? {
        guard self.linger > .zero else { return nil }
        return self.state.withLock { state -> Duration? in
            guard !state.items.isEmpty, state.items.count < self.lingerBelow, let last = state.lastWritten,
                let mixed = state.callersMixed, state.arrivals?.fast ?? true
            else { return nil }
            let now = ContinuousClock.now
            // A lone caller writing one item after another has no one to wait for.
            guard now - mixed < self.linger else { return nil }
            let left = self.linger - (now - last)
            return left > .zero ? left : nil
        }
    }
}

/// Whether items arrive fast enough for a linger: the items counted over a window of at least
/// `window`, against `needed` per `window`. Each window ends at the first arrival after it, so a
/// quiet spell counts as a slow window. Until a first window has ended, not fast.
struct ArrivalRate: Sendable {
    let window: Duration
    /// Items per `window` for `fast`.
    let needed: Double
    private(set) var fast = false
    private var start: ContinuousClock.Instant?
    private var count = 0

    init(window: Duration, needed: Double) {
        self.window = window
        self.needed = needed
    }

    mutating func arrived(at now: ContinuousClock.Instant) {
        guard let start = self.start else {
            self.start = now
            return
        }
        self.count += 1
        let elapsed = now - start
        guard elapsed >= self.window else { return }
        self.fast = Double(self.count) >= self.needed * (elapsed / self.window)
        self.start = now
        self.count = 0
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
