import CancelCore
import Logging
import Synchronization

/// Marks keys `published` in the ledger off the command's path, several per transaction
/// (issue 14: awaited per command, the mark was a fourth ledger transaction and two thread
/// hand-offs for every command).
///
/// "Published" is bookkeeping. Kafka acknowledged the outcome before its mark is asked for, so
/// the outcome is durable whatever happens to the mark. But a mark still on its way when the
/// key's partition moves would let the next owner find the key `completed` and publish its
/// outcome again: a revocation therefore `flush`es the marks before it commits (and the next
/// owner gets the partition only after that). A mark that is lost — the process crashed, or
/// the ledger was unavailable for every try — leaves the key `completed`; a later delivery of
/// that key publishes the same bytes under the same outcome id again (guarantee 3's limit).
final class PublishedMarks: Sendable {
    private let ledger: any IdempotencyLedger
    private let clock: any WorkerClock
    private let metrics: WorkerMetrics
    private let logger: Logger
    /// How long the first mark of a batch waits for others.
    let linger: Duration
    /// Keys per ledger call, at most.
    let maxBatch: Int
    /// Marks in arrival order, and every key acknowledged but not yet written (or given up).
    private let pending = Mutex<(queue: [String], unwritten: Set<String>)>(([], []))
    /// Set by `finish`: ends a linger early.
    private let finishing = OneShot<Void>()
    /// One flush at a time, so a flush that returns has written every mark acknowledged before
    /// it began, including a batch another flush was writing meanwhile.
    private let writer = AsyncSemaphore(permits: 1)
    private let doorbell: AsyncStream<Void>
    private let ring: AsyncStream<Void>.Continuation

    init(
        ledger: any IdempotencyLedger, clock: any WorkerClock, metrics: WorkerMetrics, logger: Logger,
        linger: Duration = .milliseconds(20), maxBatch: Int = 256
    ) {
        self.ledger = ledger
        self.clock = clock
        self.metrics = metrics
        self.logger = logger
        self.linger = linger
        self.maxBatch = maxBatch
        (self.doorbell, self.ring) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Kafka acknowledged `key`'s outcome: mark it with the next batch.
    func mark(_ key: String) {
        let first = self.pending.withLock { pending in
            pending.queue.append(key)
            pending.unwritten.insert(key)
            return pending.queue.count == 1
        }
        if first { self.ring.yield() }
    }

    /// Whether this process had Kafka acknowledge `key`'s outcome and its mark is still on its
    /// way: a duplicate of the key then needs no second publish (the ledger says `completed`).
    func isAcknowledged(_ key: String) -> Bool {
        self.pending.withLock { $0.unwritten.contains(key) }
    }

    /// Marks not written yet.
    var backlog: Int { self.pending.withLock { $0.unwritten.count } }

    /// Writes marks `linger` after the first of a batch arrives (at once after `finish()`), until
    /// `finish()`; then writes what is left and returns. Sleeps while there is nothing to write.
    func run() async {
        for await _ in self.doorbell {
            _ = await self.finishing.wait(timeout: self.linger)
            await self.flush()
        }
        await self.flush()
    }

    /// No more marks: `run` writes the last ones and returns.
    func finish() {
        self.finishing.set(())
        self.ring.finish()
    }

    /// Writes every pending mark now, and waits for those another flush is writing.
    func flush() async {
        // Cancelled while waiting for the other flush: write what is queued all the same.
        let serialized = (try? await self.writer.acquire()) != nil
        defer { if serialized { self.writer.release() } }
        while true {
            let batch: [String] = self.pending.withLock { pending in
                let count = min(pending.queue.count, self.maxBatch)
                defer { pending.queue.removeFirst(count) }
                return Array(pending.queue.prefix(count))
            }
            guard !batch.isEmpty else { return }
            await self.write(batch)
            self.pending.withLock { pending in
                for key in batch { pending.unwritten.remove(key) }
            }
        }
    }

    private func write(_ keys: [String]) async {
        var backoff: Duration = .milliseconds(100)
        for attempt in 1...3 {
            do {
                try await self.metrics.ledger(.markPublished) {
                    try await self.ledger.markPublished(keys: keys, now: self.clock.date)
                }
                return
            } catch {
                guard attempt < 3 else {
                    self.logger.warning(
                        "could not mark keys published; they stay completed (a redelivery publishes the same outcome again)",
                        metadata: ["keys": .stringConvertible(keys.count), "error": "\(error)"])
                    return
                }
                try? await self.clock.sleep(until: self.clock.now + backoff)
                backoff *= 2
            }
        }
    }
}
