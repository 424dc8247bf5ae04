import CancelCore
import Testing

@Suite("OneShot and withTimeout")
struct OneShotTests {
    @Test("waiters get the value set later; a value set before is returned at once; the first set wins")
    func value() async {
        let shot = OneShot<Int>()
        async let waited = shot.wait(timeout: .seconds(10))
        try? await Task.sleep(for: .milliseconds(20))
        shot.set(7)
        shot.set(8)
        #expect(await waited == 7)
        #expect(await shot.wait(timeout: .zero) == 7)
        #expect(shot.value == 7)
    }

    @Test("a wait times out with nil and leaves nothing behind; a cancelled wait ends at once")
    func timeoutAndCancellation() async {
        let shot = OneShot<Int>()
        #expect(await shot.wait(timeout: .milliseconds(50)) == nil)
        let task = Task { await shot.wait(timeout: .seconds(60)) }
        try? await Task.sleep(for: .milliseconds(20))
        task.cancel()
        #expect(await task.value == nil)
        // A later set still reaches a later waiter.
        shot.set(1)
        #expect(await shot.wait(timeout: .seconds(1)) == 1)
    }

    @Test("withTimeout returns the operation's result, or nil when the time is up first")
    func timeout() async {
        #expect(await withTimeout(.seconds(10)) { 42 } == 42)
        let slow = await withTimeout(.milliseconds(50)) { () -> Int in
            try? await Task.sleep(for: .seconds(30))
            return 1
        }
        #expect(slow == nil)
    }
}
