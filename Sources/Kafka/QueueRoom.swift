import DequeModule
import Synchronization

/// Sends waiting for room in librdkafka's local queue (`queue.buffering.max.messages`).
///
/// A record leaves that queue when its delivery report is served, so the producer's poll thread
/// wakes as many waiting senders as it served reports, oldest first. A poll that served
/// nothing (a stalled broker: a poll interval with no reports) wakes them all, so none depends
/// on a report that another sender's record would have brought. A sender retries when woken;
/// each wait costs one suspension, not a timer every few milliseconds. A cancelled sender stops
/// waiting at once (its record was never queued).
final class QueueRoom: Sendable {
    private struct State {
        /// Counts the polls that served reports; a sender that saw the queue full under one
        /// generation retries at once if a later one has begun.
        var generation: UInt64 = 0
        var waiters: Deque<(id: UInt64, continuation: CheckedContinuation<Void, Never>)> = []
        var nextID: UInt64 = 0
        var isClosed = false
    }

    private let state = Mutex(State())
    /// Delivery reports counted by `polled`, in all (for tests).
    let servedTotal = Atomic<Int>(0)

    /// The current generation: read it before trying to produce.
    var generation: UInt64 {
        self.state.withLock { $0.generation }
    }

    /// How many senders wait.
    var waiting: Int {
        self.state.withLock { $0.waiters.count }
    }

    /// Waits until a poll after `generation` served reports, a poll served none, the room
    /// closed, or the task is cancelled. Returns at once if one of them already happened.
    func wait(after generation: UInt64) async {
        let id = self.state.withLock { state in
            defer { state.nextID &+= 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = self.state.withLock { state in
                    if state.isClosed || state.generation != generation || Task.isCancelled { return true }
                    state.waiters.append((id, continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.state.withLock { state in
                state.waiters.firstIndex { $0.id == id }.map { state.waiters.remove(at: $0).continuation }
            }
            waiter?.resume()
        }
    }

    /// On the poll thread, after each poll: `served` is how many delivery reports it served
    /// (records, not events: a batch's reports are one event).
    func polled(served: Int) {
        if served > 0 { self.servedTotal.add(served, ordering: .relaxed) }
        let woken = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if served > 0 { state.generation &+= 1 }
            let count = served > 0 ? min(served, state.waiters.count) : state.waiters.count
            guard count > 0 else { return [] }
            let woken = state.waiters.prefix(count).map(\.continuation)
            state.waiters.removeFirst(count)
            return woken
        }
        for waiter in woken { waiter.resume() }
    }

    /// Wakes every waiting sender and every later one at once (the producer shuts down).
    func close() {
        let woken = self.state.withLock { state in
            state.isClosed = true
            let woken = state.waiters.map(\.continuation)
            state.waiters.removeAll()
            return woken
        }
        for waiter in woken { waiter.resume() }
    }
}
