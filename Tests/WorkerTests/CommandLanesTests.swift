import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Synchronization
import Testing

@testable import Worker

/// What the lanes' work closures saw, and gates they wait on.
private final class LaneLog: Sendable {
    let started = Mutex<[String]>([])
    let finished = Mutex<[String]>([])
    let abandoned = Mutex<[String]>([])
    let running = Atomic<Int>(0)
    let mostRunning = Atomic<Int>(0)
    let gates = Mutex<[String: OneShot<Void>]>([:])

    func gate(_ order: String) -> OneShot<Void> {
        self.gates.withLock { gates in
            if let gate = gates[order] { return gate }
            let gate = OneShot<Void>()
            gates[order] = gate
            return gate
        }
    }

    func open(_ order: String) { self.gate(order).set(()) }
}

@Suite("Command lanes: bounded tasks per provider, queued commands as data", .timeLimit(.minutes(1)))
struct CommandLanesTests {
    private let scope = PartitionScope(
        partition: KafkaTopicPartition(topic: "cancel.commands", partition: 0), generation: 1, limits: [:])

    /// A second partition's scope, for the revocation tests.
    private let otherScope = PartitionScope(
        partition: KafkaTopicPartition(topic: "cancel.commands", partition: 1), generation: 1, limits: [:])

    /// Runs `body` while `lanes` start lanes.
    private func whileRunning(_ lanes: CommandLanes, _ body: () async throws -> Void) async throws {
        try await withThrowingDiscardingTaskGroup { group throws in
            group.addTask { await lanes.run() }
            try await body()
            group.cancelAll()
        }
    }

    /// A command's record as the consumer delivers it: keyed `provider:account`, on its scope's
    /// partition (a queued command is decoded again from these bytes).
    private func item(
        _ order: String, _ provider: ProviderID = .fastpod, scope: PartitionScope? = nil
    )
        -> CommandLanes.Item
    {
        let scope = scope ?? self.scope
        let command = command(provider, order: order)
        return CommandLanes.Item(
            message: KafkaConsumerMessage(
                topic: scope.partition.topic, partition: scope.partition.partition, offset: 0,
                key: Array(command.kafkaKey.utf8), value: command.encoded()),
            scope: scope, command: command)
    }

    /// Lanes whose work records itself and waits for its order's gate; `aside` orders wait for
    /// their gate stepped aside (as a rate-limit sleep does).
    private func lanes(
        _ log: LaneLog, limit: Int, aside: Set<String> = []
    ) -> CommandLanes {
        CommandLanes(
            limit: { _ in limit },
            work: { item in
                let order = item.command?.order.orderID ?? "not a command"
                log.started.withLock { $0.append(order) }
                let now = log.running.add(1, ordering: .relaxed).newValue
                log.mostRunning.max(now, ordering: .relaxed)
                if aside.contains(order) {
                    log.running.subtract(1, ordering: .relaxed)
                    _ = await CommandLanes.stepAside { await log.gate(order).wait(timeout: .seconds(30)) }
                    log.running.add(1, ordering: .relaxed)
                } else {
                    _ = await log.gate(order).wait(timeout: .seconds(30))
                }
                log.running.subtract(1, ordering: .relaxed)
                log.finished.withLock { $0.append(order) }
            },
            abandoned: { item in log.abandoned.withLock { $0.append(item.command?.order.orderID ?? "not a command") } })
    }

    @Test("at most `limit` commands of a provider run at once; the rest wait in order, as data")
    func bounded() async throws {
        let log = LaneLog()
        let lanes = self.lanes(log, limit: 3)
        try await self.whileRunning(lanes) { () throws in
            for index in 0..<10 { lanes.submit(self.item("o\(index)")) }
            #expect(try await eventually { log.started.withLock { $0.count } == 3 })
            try await Task.sleep(for: .milliseconds(100))
            // Three lanes start at once: which records its command first is theirs to race.
            #expect(Set(log.started.withLock { $0 }) == ["o0", "o1", "o2"])
            #expect(lanes.queued == 7)
            #expect(lanes.active(.fastpod) == 3)
            // One at a time, so that one lane is free each time: it takes the oldest queued.
            for index in 0..<10 {
                log.open("o\(index)")
                #expect(try await eventually { log.started.withLock { $0.count } == min(10, index + 4) })
            }
            #expect(try await eventually { log.finished.withLock { $0.count } == 10 })
            #expect(Array(log.started.withLock { $0 }.dropFirst(3)) == (3..<10).map { "o\($0)" }, "FIFO")
            #expect(log.mostRunning.load(ordering: .relaxed) <= 3)
            #expect(try await eventually { lanes.active(.fastpod) == 0 })
        }
    }

    @Test("issue 14: a lane with nothing to do parks; the next commands wake it, no new task; cancelled, it ends")
    func parkedLanes() async throws {
        let log = LaneLog()
        let lanes = self.lanes(log, limit: 3)
        try await self.whileRunning(lanes) { () throws in
            for round in 0..<5 {
                lanes.submit(self.item("r\(round)"))
                log.open("r\(round)")
                #expect(try await eventually { log.finished.withLock { $0.count } == round + 1 })
                #expect(try await eventually { lanes.parked(.fastpod) == 1 })
            }
            #expect(lanes.lanesStarted == 1, "one lane served the five commands one after another")
            // A burst: the parked lane and two new ones, within the bound; all three park after.
            for index in 0..<6 { lanes.submit(self.item("b\(index)")) }
            #expect(try await eventually { log.started.withLock { $0.count } == 8 })
            #expect(lanes.active(.fastpod) == 3 && lanes.lanesStarted == 3)
            for index in 0..<6 {
                log.open("b\(index)")
                #expect(try await eventually { log.started.withLock { $0.count } == min(11, index + 9) })
            }
            #expect(try await eventually { log.finished.withLock { $0.count } == 11 })
            #expect(try await eventually { lanes.parked(.fastpod) == 3 && lanes.active(.fastpod) == 0 })
            #expect(Set(log.started.withLock { $0 }.suffix(6).prefix(3)) == ["b0", "b1", "b2"])
            #expect(Array(log.started.withLock { $0 }.suffix(3)) == (3..<6).map { "b\($0)" }, "FIFO")
        }
        // `whileRunning` returned: cancelling `run` ended the three parked lanes.
        #expect(lanes.parked(.fastpod) == 0)
    }

    @Test("one provider's full lanes do not hold up another provider's commands")
    func providersApart() async throws {
        let log = LaneLog()
        let lanes = self.lanes(log, limit: 2)
        try await self.whileRunning(lanes) { () throws in
            for index in 0..<5 { lanes.submit(self.item("slow\(index)", .fastpod)) }
            lanes.submit(self.item("other", .feee))
            log.open("other")
            #expect(try await eventually { log.finished.withLock { $0 } == ["other"] })
            #expect(lanes.active(.fastpod) == 2)
            for index in 0..<5 { log.open("slow\(index)") }
            #expect(try await eventually { log.finished.withLock { $0.count } == 6 })
        }
    }

    @Test("a lane waiting for something else steps aside: the next command runs, the lane comes back")
    func stepAside() async throws {
        let log = LaneLog()
        let lanes = self.lanes(log, limit: 1, aside: ["paced"])
        try await self.whileRunning(lanes) { () throws in
            lanes.submit(self.item("paced"))
            lanes.submit(self.item("next"))
            // With one lane, "next" can only start while "paced" is aside.
            #expect(try await eventually { log.started.withLock { $0 } == ["paced", "next"] })
            #expect(lanes.active(.fastpod) == 1)
            // "paced" comes back while "next" still works: two lanes for a while, never waiting.
            log.open("paced")
            #expect(try await eventually { log.finished.withLock { $0 } == ["paced"] })
            lanes.submit(self.item("after"))
            try await Task.sleep(for: .milliseconds(100))
            #expect(!log.started.withLock { $0 }.contains("after"), "one lane while `next` works")
            log.open("next")
            log.open("after")
            #expect(try await eventually { log.finished.withLock { $0 } == ["paced", "next", "after"] })
            #expect(try await eventually { lanes.active(.fastpod) == 0 })
        }
    }

    @Test("a command of a partition revoked before it was queued leaves at once")
    func submittedAfterRevocation() async throws {
        let log = LaneLog()
        let lanes = self.lanes(log, limit: 1)
        let revoked = self.otherScope
        try await self.whileRunning(lanes) { () throws in
            lanes.submit(self.item("busy"))
            #expect(try await eventually { log.started.withLock { $0 } == ["busy"] })
            revoked.revoke()
            lanes.submit(self.item("late", scope: revoked))
            #expect(log.abandoned.withLock { $0 } == ["late"])
            #expect(lanes.queued == 0)
            log.open("busy")
            #expect(try await eventually { log.finished.withLock { $0 } == ["busy"] })
        }
    }

    @Test("stepping aside outside a lane only runs the wait")
    func stepAsideOutsideALane() async {
        let value = await CommandLanes.stepAside { 42 }
        #expect(value == 42)
    }

    @Test("a revoked partition's queued commands leave the queue at once; others stay")
    func abandon() async throws {
        let log = LaneLog()
        let lanes = self.lanes(log, limit: 1)
        let revoked = self.otherScope
        try await self.whileRunning(lanes) { () throws in
            lanes.submit(self.item("busy"))
            lanes.submit(self.item("r1", scope: revoked))
            lanes.submit(self.item("kept"))
            lanes.submit(self.item("r2", scope: revoked))
            #expect(try await eventually { log.started.withLock { $0 } == ["busy"] })
            lanes.abandon(revoked)
            #expect(log.abandoned.withLock { $0 } == ["r1", "r2"])
            #expect(lanes.queued == 1)
            log.open("busy")
            log.open("kept")
            #expect(try await eventually { log.finished.withLock { $0 } == ["busy", "kept"] })
        }
    }

    @Test("issue 14: a queued command waits as 48 bytes beside its record's value, and comes back exactly")
    func waitingAsData() async throws {
        #expect(MemoryLayout<CommandLanes.Waiting>.stride == 48)
        let seen = Mutex<[KafkaConsumerMessage]>([])
        let decoded = Mutex<[CommandDecoder.Decoded]>([])
        let busy = OneShot<Void>()
        let busyStarted = OneShot<Void>()
        let lanes = CommandLanes(
            limit: { _ in 1 },
            work: { item in
                if item.command?.order.orderID == "10000" {
                    busyStarted.set(())
                    _ = await busy.wait(timeout: .seconds(30))
                }
                seen.withLock { $0.append(item.message) }
                decoded.withLock { $0.append(item.decoded) }
            },
            abandoned: { _ in })
        let usual = command(.futures, account: "user-7", order: "10001")
        let misKeyed = command(.futures, account: "user-8", order: "10002")
        let records = [
            KafkaConsumerMessage(
                topic: "cancel.commands", partition: 0, offset: 41, key: Array(usual.kafkaKey.utf8),
                value: usual.encoded(), headers: [KafkaHeader(name: "traceparent", string: "00-abc-01")],
                timestampMilliseconds: 1_790_000_000_123, generation: 1),
            KafkaConsumerMessage(
                topic: "cancel.commands", partition: 0, offset: 42, key: Array("user-8".utf8),
                value: misKeyed.encoded(), timestampMilliseconds: 1_790_000_000_456, generation: 1),
            KafkaConsumerMessage(
                topic: "cancel.commands", partition: 0, offset: 43, key: nil, value: misKeyed.encoded(),
                generation: 1),
        ]
        // The usual key is not kept; another is. (The scope's generation, 1, is the records'.)
        guard
            case .canonical = CommandLanes.Waiting(
                CommandLanes.Item(message: records[0], scope: self.scope, command: usual)
            ).key,
            case .given(let kept) = CommandLanes.Waiting(
                CommandLanes.Item(message: records[1], scope: self.scope, command: misKeyed)
            ).key
        else {
            Issue.record("keys not kept as expected")
            return
        }
        #expect(kept == Array("user-8".utf8))
        try await self.whileRunning(lanes) { () throws in
            lanes.submit(self.item("10000", .futures))
            _ = await busyStarted.wait(timeout: .seconds(30))
            lanes.submit(CommandLanes.Item(message: records[0], scope: self.scope, command: usual))
            lanes.submit(CommandLanes.Item(message: records[1], scope: self.scope, command: misKeyed))
            lanes.submit(CommandLanes.Item(message: records[2], scope: self.scope, command: misKeyed))
            #expect(lanes.queued == 3)
            busy.set(())
            #expect(try await eventually { seen.withLock { $0.count } == 4 })
        }
        #expect(Array(seen.withLock { $0 }.dropFirst()) == records)
        // What intake's decoder makes of the same bytes.
        #expect(Array(decoded.withLock { $0 }.dropFirst()) == records.map { CommandDecoder().decode($0.value) })
        for answer in decoded.withLock({ $0 }) {
            guard case .valid = answer else {
                Issue.record("not valid: \(answer)")
                continue
            }
        }
    }

    /// A futures command of `account` on `scope`, as the consumer delivers it.
    private func paced(_ order: String, account: String, scope: PartitionScope? = nil) -> CommandLanes.Item {
        let scope = scope ?? self.scope
        let command = command(.futures, account: account, order: order)
        return CommandLanes.Item(
            message: KafkaConsumerMessage(
                topic: scope.partition.topic, partition: scope.partition.partition, offset: 0,
                key: Array(command.kafkaKey.utf8), value: command.encoded()),
            scope: scope, command: command)
    }

    /// Lanes for a paced provider (two turns per account): each command records its start,
    /// waits for `<order>-call`, departs (as a call leaving with its slot does) unless its order
    /// is in `noCall`, then waits for `<order>-end`.
    private func pacedLanes(_ log: LaneLog, limit: Int = 10, noCall: Set<String> = []) -> CommandLanes {
        CommandLanes(
            limit: { _ in limit }, paced: { $0 == .futures ? 2 : nil },
            work: { item in
                let order = item.command?.order.orderID ?? "not a command"
                log.started.withLock { $0.append(order) }
                if !noCall.contains(order) {
                    _ = await log.gate("\(order)-call").wait(timeout: .seconds(30))
                    CommandLanes.departing()
                }
                _ = await log.gate("\(order)-end").wait(timeout: .seconds(30))
                log.finished.withLock { $0.append(order) }
            },
            abandoned: { item in log.abandoned.withLock { $0.append(item.command?.order.orderID ?? "not a command") } })
    }

    @Test(
        "issue 14: a rate-limited account's commands start two at a time; the rest wait as data, in order, until one departs or ends"
    )
    func pacedAccounts() async throws {
        let log = LaneLog()
        let lanes = self.pacedLanes(log, noCall: ["101"])
        try await self.whileRunning(lanes) { () throws in
            for index in 100..<106 { lanes.submit(self.paced("\(index)", account: "busy-user")) }
            lanes.submit(self.paced("200", account: "other-user"))
            #expect(try await eventually { Set(log.started.withLock { $0 }) == ["100", "101", "200"] })
            try await Task.sleep(for: .milliseconds(100))
            #expect(log.started.withLock { $0.count } == 3, "the account's third command waits for its turn")
            #expect(lanes.held(.futures, account: "busy-user") == 4 && lanes.queued == 4)
            // 100's call departs while it still runs: the next one starts.
            log.open("100-call")
            #expect(try await eventually { log.started.withLock { $0.last } == "102" })
            // 101 ends without a call (a duplicate, a rejection): its turn passes too.
            log.open("101-end")
            #expect(try await eventually { log.started.withLock { $0.last } == "103" })
            try await Task.sleep(for: .milliseconds(100))
            #expect(log.started.withLock { $0.count } == 5)
            // One departure at a time (two released at once start in either order): each lets
            // the account's oldest held command start.
            log.open("102-call")
            #expect(try await eventually { log.started.withLock { $0.last } == "104" })
            log.open("103-call")
            #expect(try await eventually { log.started.withLock { $0.last } == "105" })
            for order in ["102", "103", "104", "105"] {
                log.open("\(order)-call")
                log.open("\(order)-end")
            }
            for order in ["100", "200"] {
                log.open("\(order)-call")
                log.open("\(order)-end")
            }
            #expect(try await eventually { log.finished.withLock { $0.count } == 7 })
            #expect(
                log.started.withLock { $0 }.filter { $0.hasPrefix("10") }.suffix(4) == ["102", "103", "104", "105"],
                "an account's commands start in order")
            #expect(lanes.held(.futures, account: "busy-user") == 0 && lanes.queued == 0)
            // The account's turns are all back: two new commands start at once.
            lanes.submit(self.paced("106", account: "busy-user"))
            lanes.submit(self.paced("107", account: "busy-user"))
            #expect(try await eventually { log.started.withLock { $0.suffix(2) }.sorted() == ["106", "107"] })
            for order in ["106", "107"] {
                log.open("\(order)-call")
                log.open("\(order)-end")
            }
            #expect(try await eventually { log.finished.withLock { $0.count } == 9 })
        }
    }

    @Test(
        "issue 14: a revoked partition's held commands leave with its queued ones; the account's turns are given back")
    func pacedAbandon() async throws {
        let log = LaneLog()
        // One lane: p0 runs, p1 is queued for the lane (its account's second turn), p2 is held.
        let lanes = self.pacedLanes(log, limit: 1)
        let revoked = self.otherScope
        try await self.whileRunning(lanes) { () throws in
            lanes.submit(self.paced("900", account: "u"))
            #expect(try await eventually { log.started.withLock { $0 } == ["900"] })
            lanes.submit(self.paced("901", account: "u", scope: revoked))
            lanes.submit(self.paced("902", account: "u", scope: revoked))
            #expect(lanes.held(.futures, account: "u") == 1 && lanes.queued == 2)
            lanes.abandon(revoked)
            #expect(log.abandoned.withLock { $0 }.sorted() == ["901", "902"])
            #expect(lanes.queued == 0 && lanes.held(.futures, account: "u") == 0)
            log.open("900-call")
            log.open("900-end")
            #expect(try await eventually { log.finished.withLock { $0 } == ["900"] })
            // No turn leaked: two new commands of the account both start.
            lanes.submit(self.paced("903", account: "u"))
            #expect(try await eventually { log.started.withLock { $0.last } == "903" })
            lanes.submit(self.paced("904", account: "u"))
            #expect(lanes.held(.futures, account: "u") == 0, "the second turn is free")
            log.open("903-call")
            log.open("903-end")
            #expect(try await eventually { log.started.withLock { $0.last } == "904" })
            log.open("904-call")
            log.open("904-end")
            #expect(try await eventually { log.finished.withLock { $0.count } == 3 })
        }
    }
}
