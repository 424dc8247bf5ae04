import CancelCore
import Kafka
import Testing

@testable import Worker

@Suite("Partition scope: pacing after an assignment (manual time)")
struct PartitionScopeTests {
    let partition = KafkaTopicPartition(topic: "cancel.commands", partition: 0)
    let limit = RateLimit(requestsPerSecond: 10)

    @Test("users of a newly assigned partition make no call before the handover delay and one interval")
    func handoverDelay() {
        let assigned = ContinuousClock.now
        let scope = PartitionScope(
            partition: self.partition, generation: 1, limits: [.futures: self.limit], handoverDelay: .seconds(1),
            now: assigned)
        let first = scope.pacer.book(.futures, account: "trader-1", now: assigned, notAfter: nil)
        #expect(first?.at == assigned + .seconds(1) + self.limit.emissionInterval)
        // The one after that is one interval later: no burst credit.
        let second = scope.pacer.book(.futures, account: "trader-1", now: assigned, notAfter: nil)
        #expect(second?.at == assigned + .seconds(1) + self.limit.emissionInterval * 2)
        // At the very send time, acquire holds calls until the delay is over.
        #expect(
            scope.pacer.acquire(.futures, account: "trader-1", now: assigned + .milliseconds(500)) == assigned
                + .seconds(1)
                + self.limit.emissionInterval)
        #expect(
            scope.pacer.acquire(
                .futures, account: "trader-1", now: assigned + .seconds(1) + self.limit.emissionInterval)
                == nil)
    }

    @Test("a command whose deadline falls inside the handover delay cannot be booked (it expires without a call)")
    func deadlineInsideDelay() {
        let assigned = ContinuousClock.now
        let scope = PartitionScope(
            partition: self.partition, generation: 1, limits: [.futures: self.limit], handoverDelay: .seconds(1),
            now: assigned)
        #expect(
            scope.pacer.book(.futures, account: "trader-1", now: assigned, notAfter: assigned + .milliseconds(900))
                == nil)
        #expect(scope.pacer.book(.futures, account: "trader-1", now: assigned, notAfter: assigned + .seconds(2)) != nil)
    }

    @Test("providers without a limit are not held back; a zero delay keeps the plain no-burst start")
    func unpacedAndZero() {
        let assigned = ContinuousClock.now
        let delayed = PartitionScope(
            partition: self.partition, generation: 1, limits: [.futures: self.limit], handoverDelay: .seconds(1),
            now: assigned)
        #expect(delayed.pacer.book(.fastpod, account: "shop", now: assigned, notAfter: nil)?.at == assigned)
        let plain = PartitionScope(
            partition: self.partition, generation: 1, limits: [.futures: self.limit], handoverDelay: .zero,
            now: assigned)
        #expect(
            plain.pacer.book(.futures, account: "trader-1", now: assigned, notAfter: nil)?.at == assigned
                + self.limit.emissionInterval)
    }

    @Test("issue 14: the group's committed offset is looked up once per assignment, answered or not")
    func committedLookedUpOnce() {
        let quiet = PartitionScope(partition: self.partition, generation: 1, limits: [:])
        #expect(quiet.needsCommittedLookup)
        quiet.lookedUpCommitted(nil)
        #expect(!quiet.needsCommittedLookup, "a partition the group never committed is not asked again")
        #expect(quiet.committedOffset == nil)

        let committed = PartitionScope(partition: self.partition, generation: 2, limits: [:])
        committed.lookedUpCommitted(41)
        #expect(!committed.needsCommittedLookup && committed.committedOffset == 41)

        let busy = PartitionScope(partition: self.partition, generation: 3, limits: [:])
        busy.markCommitted(7)
        #expect(!busy.needsCommittedLookup, "a commit under this assignment is known without asking")
    }
}

@Suite("Partition scope: holding records beyond the partition's share of max-in-flight")
struct PartitionScopeHoldTests {
    let scope = PartitionScope(
        partition: KafkaTopicPartition(topic: "cancel.commands", partition: 0), generation: 1, limits: [:])

    func record(_ offset: Int64) -> KafkaConsumerMessage {
        KafkaConsumerMessage(
            topic: "cancel.commands", partition: 0, offset: offset, key: nil, value: [], headers: [],
            timestampMilliseconds: 0)
    }

    /// Begins records 0..<count, as intake does for admitted ones.
    func begin(_ count: Int64) {
        for offset in 0..<count { #expect(self.scope.begin(offset)) }
    }

    @Test("with room, or under its share, a partition's records are admitted")
    func admitted() {
        self.begin(4)
        #expect(self.scope.hold(self.record(4), share: nil) == .admit, "not crowded")
        #expect(self.scope.hold(self.record(4), share: 5) == .admit, "under its share")
    }

    @Test("at its share the partition pauses; later records wait in order and come back at half, one by one")
    func holdsAndReleases() {
        self.begin(6)
        #expect(self.scope.hold(self.record(6), share: 6) == .pause)
        #expect(self.scope.hold(self.record(7), share: nil) == .parked, "held even once there is room again")
        #expect(self.scope.hold(self.record(8), share: nil) == .parked)
        #expect(self.scope.heldRecords == 3)
        // Half of the six must be done before the held records come back.
        #expect(!self.scope.end(0, finished: true))
        #expect(!self.scope.end(1, finished: true))
        #expect(self.scope.end(2, finished: true), "three left: release")
        #expect(!self.scope.end(3, finished: true), "released once")
        #expect(self.scope.nextHeld(share: nil) == .admit(self.record(6)))
        #expect(self.scope.begin(6))
        #expect(self.scope.nextHeld(share: nil) == .admit(self.record(7)))
        #expect(self.scope.begin(7))
        #expect(self.scope.nextHeld(share: nil) == .admit(self.record(8)))
        #expect(self.scope.begin(8))
        #expect(self.scope.nextHeld(share: nil) == .resume)
        #expect(self.scope.hold(self.record(9), share: nil) == .admit, "holding ended")
        // Offsets: the held ones were not committable before they were done.
        #expect(self.scope.pendingCommit()?.offset == 4)
    }

    @Test("a release that reaches the share again stops, and goes on after the next half")
    func releaseHoldsOn() {
        self.begin(4)
        #expect(self.scope.hold(self.record(4), share: 4) == .pause)
        #expect(self.scope.hold(self.record(5), share: nil) == .parked)
        #expect(self.scope.hold(self.record(6), share: nil) == .parked)
        #expect(!self.scope.end(0, finished: true))
        #expect(self.scope.end(1, finished: true))
        #expect(self.scope.nextHeld(share: 3) == .admit(self.record(4)))
        #expect(self.scope.begin(4))
        #expect(self.scope.nextHeld(share: 3) == .holdOn, "three in process again")
        #expect(self.scope.hold(self.record(7), share: nil) == .parked, "still holding")
        #expect(!self.scope.end(2, finished: true))
        #expect(self.scope.end(3, finished: true), "down to one of three: release again")
        #expect(self.scope.nextHeld(share: 3) == .admit(self.record(5)))
    }

    @Test("a revoked partition's held records are dropped (never begun: the next owner gets them)")
    func revokedDrops() {
        self.begin(2)
        #expect(self.scope.hold(self.record(2), share: 2) == .pause)
        self.scope.revoke()
        #expect(!self.scope.end(0, finished: true), "no release after a revoke")
        #expect(self.scope.nextHeld(share: nil) == .revoked)
        #expect(self.scope.heldRecords == 0)
    }
}

extension PartitionScopeHoldTests {
    @Test("held records also come back as soon as the worker has room again")
    func releasedWhenRoomy() {
        self.begin(6)
        #expect(self.scope.hold(self.record(6), share: 6) == .pause)
        #expect(!self.scope.end(0, finished: true, roomy: false))
        #expect(self.scope.end(1, finished: true, roomy: true), "five of six left, but the worker has room")
        #expect(self.scope.nextHeld(share: nil) == .admit(self.record(6)))
    }
}
