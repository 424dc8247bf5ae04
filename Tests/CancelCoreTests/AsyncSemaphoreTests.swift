import CancelCore
import Synchronization
import Testing

@Suite("AsyncSemaphore")
struct AsyncSemaphoreTests {
    @Test("a waiter cancelled in line leaves it with CancellationError; the others keep their order")
    func cancellation() async throws {
        let semaphore = AsyncSemaphore(permits: 1)
        try await semaphore.acquire()
        let order = Order()
        let first = Task {
            try await semaphore.acquire()
            order.values.withLock { $0.append(1) }
        }
        try await Task.sleep(for: .milliseconds(20))
        let cancelled = Task { try await semaphore.acquire() }
        try await Task.sleep(for: .milliseconds(20))
        let third = Task {
            try await semaphore.acquire()
            order.values.withLock { $0.append(3) }
        }
        try await Task.sleep(for: .milliseconds(20))
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(semaphore.inUse == 1, "the cancelled waiter took no permit")
        semaphore.release()
        try await first.value
        semaphore.release()
        try await third.value
        #expect(order.values.withLock { $0 } == [1, 3])
        semaphore.release()
        #expect(semaphore.inUse == 0)
        // An already-cancelled task does not take a free permit.
        let late = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await semaphore.acquire()
        }
        await #expect(throws: CancellationError.self) { try await late.value }
        #expect(semaphore.inUse == 0)
    }
}

/// The order waiters got their permits in.
private final class Order: Sendable {
    let values = Mutex<[Int]>([])

    @Test("tryAcquire takes a free permit only")
    func tryAcquire() {
        let semaphore = AsyncSemaphore(permits: 2)
        #expect(semaphore.tryAcquire() && semaphore.tryAcquire())
        #expect(!semaphore.tryAcquire(), "both taken")
        #expect(semaphore.inUse == 2)
        semaphore.release()
        #expect(semaphore.tryAcquire())
    }
}
