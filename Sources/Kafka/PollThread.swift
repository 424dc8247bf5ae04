import Crdkafka
import Foundation

/// A dedicated OS thread for librdkafka's blocking calls (`rd_kafka_poll`,
/// `rd_kafka_consumer_poll`, `rd_kafka_consumer_close`), so they never occupy Swift's
/// cooperative thread pool. Other threads hand work to it with `perform`/`submit`; it runs that
/// work between polls, woken early through `wake`.
final class PollThread: @unchecked Sendable {
    // All mutable state below is guarded by `condition`.
    private let condition = NSCondition()
    private var pending: [@Sendable () -> Void] = []
    private var stopRequested = false
    private var exited = false
    private var exitWaiters: [CheckedContinuation<Void, Never>] = []
    private let name: String
    private var wakeHandler: (@Sendable () -> Void)?

    init(name: String) {
        self.name = name
    }

    /// Sets how to interrupt a blocking poll (`rd_kafka_queue_yield` on the polled queue).
    /// Set once, before `start`.
    func setWake(_ wake: @escaping @Sendable () -> Void) {
        self.condition.lock()
        self.wakeHandler = wake
        self.condition.unlock()
    }

    private func wake() {
        self.condition.lock()
        let wake = self.wakeHandler
        self.condition.unlock()
        wake?()
    }

    /// Starts the thread. `iteration` is called repeatedly (it should block for at most one
    /// poll interval) until a stop is requested; `finish` runs once on the thread before it exits.
    func start(iteration: @escaping @Sendable () -> Void, finish: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            Self.nameCurrentThread(self.name)
            while !self.isStopRequested {
                self.runPending()
                iteration()
            }
            self.runPending()
            finish()
            self.runPending()
            self.condition.lock()
            self.exited = true
            let waiters = self.exitWaiters
            self.exitWaiters = []
            let leftovers = self.pending
            self.pending = []
            self.condition.unlock()
            for work in leftovers { work() }
            for waiter in waiters { waiter.resume() }
        }
        thread.start()
    }

    /// Names the calling thread for the kernel (`top -H`, `perf`, the bench's CPU by thread),
    /// which keeps 15 bytes. Foundation's `Thread.name` did not reach the kernel here: the poll
    /// threads kept the name of the thread that started them (`…default-qos`).
    private static func nameCurrentThread(_ name: String) {
        _ = crdkafka_name_current_thread(name)
    }

    var isStopRequested: Bool {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.stopRequested
    }

    /// Asks the loop to end after its current iteration.
    func requestStop() {
        self.condition.lock()
        self.stopRequested = true
        self.condition.broadcast()
        self.condition.unlock()
        self.wake()
    }

    /// Waits until the thread has run `finish` and exited.
    func waitForExit() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            self.condition.lock()
            if self.exited {
                self.condition.unlock()
                continuation.resume()
            } else {
                self.exitWaiters.append(continuation)
                self.condition.unlock()
            }
        }
    }

    /// Queues `work` to run on the poll thread. Returns false if the thread has exited.
    @discardableResult
    func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        self.condition.lock()
        guard !self.exited else {
            self.condition.unlock()
            return false
        }
        self.pending.append(work)
        self.condition.broadcast()
        self.condition.unlock()
        self.wake()
        return true
    }

    /// Runs `body` on the poll thread and returns its result.
    func perform<T: Sendable>(_ body: @escaping @Sendable () throws(KafkaError) -> T) async throws(KafkaError) -> T {
        let result: Result<T, KafkaError> = await withCheckedContinuation { continuation in
            let accepted = self.submit {
                do throws(KafkaError) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
            if !accepted {
                continuation.resume(returning: .failure(.shutDown(self.name)))
            }
        }
        return try result.get()
    }

    /// Runs queued work; called on the poll thread only.
    func runPending() {
        self.condition.lock()
        let work = self.pending
        self.pending = []
        self.condition.unlock()
        for item in work { item() }
    }

    /// On the poll thread: runs queued work until `done()` holds or `deadline` passes, sleeping
    /// while there is nothing to do. Used while an application handler decides a rebalance.
    /// Returns whether `done()` held.
    func runPending(until done: () -> Bool, deadline: ContinuousClock.Instant) -> Bool {
        while true {
            self.runPending()
            if done() { return true }
            let now = ContinuousClock.now
            if now >= deadline { return false }
            self.condition.lock()
            if self.pending.isEmpty {
                let wait = min(deadline - now, .milliseconds(20))
                _ = self.condition.wait(until: Date(timeIntervalSinceNow: wait.seconds))
            }
            self.condition.unlock()
        }
    }

    /// Wakes a `runPending(until:deadline:)` wait without queuing work.
    func signal() {
        self.condition.lock()
        self.condition.broadcast()
        self.condition.unlock()
    }
}

extension Duration {
    /// The duration in (fractional) seconds.
    var seconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
