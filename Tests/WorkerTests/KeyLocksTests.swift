import Testing

@testable import Worker

@Suite("KeyLocks")
struct KeyLocksTests {
    @Test("a duplicate cancelled while it waits for its key leaves the line; the key passes on to the next")
    func cancellation() async throws {
        let locks = KeyLocks()
        try await locks.lock("k")
        let waiting = Task { try await locks.lock("k") }
        let next = Task {
            try await Task.sleep(for: .milliseconds(40))
            try await locks.lock("k")
        }
        try await Task.sleep(for: .milliseconds(20))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        try await Task.sleep(for: .milliseconds(40))
        locks.unlock("k")
        try await next.value  // got the key the cancelled waiter would have had
        #expect(locks.count == 1)
        locks.unlock("k")
        #expect(locks.count == 0)
    }

    @Test("tryLock takes a free key only; a held key stays with its holder and its line")
    func tryLock() async throws {
        let locks = KeyLocks()
        #expect(locks.tryLock("k"))
        #expect(!locks.tryLock("k"), "held")
        #expect(locks.tryLock("other"))
        locks.unlock("k")
        #expect(locks.tryLock("k"), "free again")
        locks.unlock("k")
        locks.unlock("other")
        #expect(locks.count == 0)
    }
}
