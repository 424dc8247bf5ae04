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
