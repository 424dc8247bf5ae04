import Synchronization
import Testing

@testable import Kafka

private final class Woken: Sendable {
    let count = Atomic<Int>(0)
}

/// The rules `KafkaProducer.send` relies on while librdkafka's local queue is full.
@Suite("Room in the producer's local queue")
struct QueueRoomTests {
    /// Starts `count` waiters (after `generation`) and returns once all wait in the room.
    private func startWaiters(
        _ room: QueueRoom, count: Int, after generation: UInt64, woken: Woken, in group: inout TaskGroup<Void>
    ) async {
        for _ in 0..<count {
            group.addTask {
                await room.wait(after: generation)
                woken.count.add(1, ordering: .relaxed)
            }
        }
        for _ in 0..<1_000 where room.waiting < count {
            try? await Task.sleep(for: .milliseconds(5))
        }
        #expect(room.waiting == count)
    }

    private func settle(_ woken: Woken, at expected: Int) async {
        for _ in 0..<200 where woken.count.load(ordering: .relaxed) != expected {
            try? await Task.sleep(for: .milliseconds(5))
        }
        // Give a wrongly woken waiter the time to show itself.
        try? await Task.sleep(for: .milliseconds(50))
    }

    @Test("a report served between the full queue and the wait: the sender retries at once")
    func noLostWakeUp() async {
        let room = QueueRoom()
        let seen = room.generation
        room.polled(served: 3)
        await room.wait(after: seen)
        #expect(room.generation == seen &+ 1)
    }

    @Test("reports wake as many waiting senders as they free places; a poll without any wakes all")
    func wakesByReports() async {
        let room = QueueRoom()
        let woken = Woken()
        await withTaskGroup(of: Void.self) { group in
            await self.startWaiters(room, count: 5, after: room.generation, woken: woken, in: &group)
            #expect(woken.count.load(ordering: .relaxed) == 0, "nothing served yet")

            room.polled(served: 2)
            await self.settle(woken, at: 2)
            #expect(woken.count.load(ordering: .relaxed) == 2)
            #expect(room.waiting == 3)

            room.polled(served: 0)
            await self.settle(woken, at: 5)
            #expect(woken.count.load(ordering: .relaxed) == 5)
        }
    }

    @Test("closing wakes every waiting sender, and later ones return at once")
    func closeWakesAll() async {
        let room = QueueRoom()
        let woken = Woken()
        await withTaskGroup(of: Void.self) { group in
            await self.startWaiters(room, count: 4, after: room.generation, woken: woken, in: &group)
            room.close()
        }
        #expect(woken.count.load(ordering: .relaxed) == 4)
        await room.wait(after: room.generation)
    }

    @Test("a cancelled sender stops waiting at once and leaves no waiter behind")
    func cancelled() async {
        let room = QueueRoom()
        let woken = Woken()
        let generation = room.generation
        let waiter = Task {
            await room.wait(after: generation)
            woken.count.add(1, ordering: .relaxed)
        }
        for _ in 0..<1_000 where room.waiting < 1 {
            try? await Task.sleep(for: .milliseconds(5))
        }
        #expect(room.waiting == 1)
        waiter.cancel()
        await waiter.value
        #expect(woken.count.load(ordering: .relaxed) == 1)
        #expect(room.waiting == 0)
        room.polled(served: 0)
    }
}
