package import CancelCore
import DequeModule
package import Kafka
import Synchronization

/// One assigned partition during one assignment: its offsets, the tasks working on its records,
/// and the pacing of the users whose commands live in it (`pacer`). Revocation wakes every task that
/// is only waiting (for a rate-limit slot, a lease, a backoff); the rebalance listener then
/// waits until the scope's tasks are gone and commits what they finished.
package final class PartitionScope: Sendable {
    let partition: KafkaTopicPartition
    let generation: UInt64

    private struct State {
        var tracker = OffsetTracker()
        var lastCommitted: Int64?
        /// The group's committed offset was asked of the coordinator under this assignment.
        var committedLookedUp = false
        var revoked = false
        var activeTasks = 0
        var revokeWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiterID = 0
        var held = 0
        /// Whether the tier partition is paused in the consumer, as last applied.
        var tierPaused = false
        /// A caller is applying pauses and resumes (`tierStep`).
        var tierSettling = false
        var overflow: Overflow?
    }

    /// A partition that took more than its share of `max-in-flight` while the worker ran short
    /// of room: paused in the consumer, its records already fetched wait here (in order, as
    /// data) until its own records in process are down to `resumeBelow` or the worker has room
    /// again (`end`).
    private struct Overflow {
        var resumeBelow: Int
        var parked: Deque<KafkaConsumerMessage>
        var resuming = false
    }

    /// What intake does with a record of this partition (`hold`).
    enum Intake: Equatable {
        /// Process it.
        case admit
        /// It waits with the partition's other held records.
        case parked
        /// It is the first record held: pause the partition.
        case pause
    }

    private let state = Mutex(State())
    /// Set once the scope is revoked and no task works on it any more.
    private let idle = OneShot<Void>()
    /// The pacing of the users whose commands live in this partition, for this assignment.
    let pacer: Pacer
    /// Bounds the records in process at once in this partition (FIFO), if configured.
    let permits: AsyncSemaphore?
    /// The clock every wait in this partition sleeps on.
    let clock: any WorkerClock

    /// `now`: when the assignment starts (the clock's now if nil); paced users make their first
    /// call no earlier than `handoverDelay` and one interval after it.
    package init(
        partition: KafkaTopicPartition, generation: UInt64, limits: [ProviderID: RateLimit], concurrency: Int? = nil,
        handoverDelay: Duration = .zero, clock: any WorkerClock = SystemClock(), now: ContinuousClock.Instant? = nil
    ) {
        self.partition = partition
        self.generation = generation
        self.clock = clock
        self.pacer = Pacer(limits: limits, start: (now ?? clock.now) + handoverDelay)
        self.permits = concurrency.map { AsyncSemaphore(permits: max(1, $0)) }
    }

    // MARK: Records and offsets

    /// A record enters processing; false if the scope is revoked or the offset was seen.
    func begin(_ offset: Int64) -> Bool {
        self.state.withLock { state in
            guard !state.revoked, state.tracker.begin(offset) else { return false }
            state.activeTasks += 1
            return true
        }
    }

    /// The record's work is over. `finished`: its result is acknowledged, so its offset may be
    /// committed; otherwise it was abandoned (revocation) and will be redelivered. Returns true
    /// once when the partition's held records may come back (`hold`, `nextHeld`): half of its
    /// records in process are done, or the worker has room again (`roomy`).
    @discardableResult
    func end(_ offset: Int64, finished: Bool, roomy: @autoclosure () -> Bool = false) -> Bool {
        let (drained, resumeHeld): (Bool, Bool) = self.state.withLock { state in
            if finished { state.tracker.finish(offset) }
            state.activeTasks -= 1
            var resumeHeld = false
            if let overflow = state.overflow, !overflow.resuming, !state.revoked,
                state.activeTasks <= overflow.resumeBelow || roomy()
            {
                state.overflow?.resuming = true
                resumeHeld = true
            }
            return (state.activeTasks == 0 && state.revoked, resumeHeld)
        }
        if drained { self.idle.set(()) }
        return resumeHeld
    }

    // MARK: A partition over its share

    /// Decides whether intake processes `message` now. While the partition holds records, the
    /// next ones join them (their order is kept). Otherwise, with `share` set (the worker is
    /// short of room), a partition with at least `share` records in process starts holding:
    /// the caller pauses it, and its records come back when half of those are done or the
    /// worker has room again (`end` returns true, then `nextHeld`).
    func hold(_ message: KafkaConsumerMessage, share: Int?) -> Intake {
        self.state.withLock { state in
            if state.overflow != nil {
                state.overflow?.parked.append(message)
                return .parked
            }
            guard let share, !state.revoked, state.activeTasks >= share else { return .admit }
            state.overflow = Overflow(resumeBelow: state.activeTasks / 2, parked: [message])
            return .pause
        }
    }

    /// What to do next with the partition's held records (`nextHeld`).
    enum Release: Equatable {
        /// Process this record, then ask again.
        case admit(KafkaConsumerMessage)
        /// None is left: holding ended (records from now on are processed at once); resume
        /// the partition.
        case resume
        /// The partition is at its share again: the rest waits until `end` returns true again.
        case holdOn
        /// Revoked: the held records are dropped (never begun, the next owner gets them).
        case revoked
    }

    /// The next step of releasing held records, one record at a time, in order. `share` as in
    /// `hold`: a partition that reaches it again stops taking records (until the next release).
    func nextHeld(share: Int?) -> Release {
        self.state.withLock { state in
            guard !state.revoked else {
                state.overflow = nil
                return .revoked
            }
            guard let first = state.overflow?.parked.first else {
                state.overflow = nil
                return .resume
            }
            if let share, state.activeTasks >= share {
                state.overflow?.resuming = false
                state.overflow?.resumeBelow = state.activeTasks / 2
                return .holdOn
            }
            state.overflow?.parked.removeFirst()
            return .admit(first)
        }
    }

    /// The worker has room again (records of other partitions ended): true once if the
    /// partition holds records and no release of them is under way; `nextHeld` then takes them.
    func wake() -> Bool {
        self.state.withLock { state in
            guard state.overflow != nil, state.overflow?.resuming == false, !state.revoked else { return false }
            state.overflow?.resuming = true
            return true
        }
    }

    /// Whether the partition holds records (`hold` began it, `nextHeld` ends it): its fetching
    /// is to be paused meanwhile.
    var isHolding: Bool { self.state.withLock { $0.overflow != nil } }

    /// Records held (`hold`), for tests.
    var heldRecords: Int { self.state.withLock { $0.overflow?.parked.count ?? 0 } }

    /// The offset to commit if it moved since the last commit.
    func pendingCommit() -> KafkaTopicPartitionOffset? {
        self.state.withLock { state in
            guard let committable = state.tracker.committable, committable != state.lastCommitted else { return nil }
            return KafkaTopicPartitionOffset(topicPartition: self.partition, offset: committable)
        }
    }

    /// The group's committed offset for this partition, as far as this assignment knows it.
    var committedOffset: Int64? { self.state.withLock { $0.lastCommitted } }

    /// Whether the coordinator should be asked for the group's committed offset: nothing was
    /// committed under this assignment and it was not asked yet. Once per assignment: a
    /// partition the group never committed stays without one, and asking again every second
    /// was a broker round trip per second for every quiet partition (issue 14, idle CPU).
    var needsCommittedLookup: Bool { self.state.withLock { $0.lastCommitted == nil && !$0.committedLookedUp } }

    /// The coordinator answered the lookup (`offset`: the group's committed offset, if any).
    func lookedUpCommitted(_ offset: Int64?) {
        self.state.withLock { $0.committedLookedUp = true }
        if let offset { self.markCommitted(offset) }
    }

    func markCommitted(_ offset: Int64) {
        self.state.withLock { state in
            if (state.lastCommitted ?? -1) < offset { state.lastCommitted = offset }
        }
    }

    /// Records begun and not yet finished or abandoned.
    var activeTasks: Int { self.state.withLock { $0.activeTasks } }

    // MARK: Revocation

    var isRevoked: Bool { self.state.withLock { $0.revoked } }

    /// Marks the scope revoked and wakes every waiting task.
    func revoke() {
        let (waiters, drained) = self.state.withLock { state in
            state.revoked = true
            defer { state.revokeWaiters = [:] }
            return (Array(state.revokeWaiters.values), state.activeTasks == 0)
        }
        for waiter in waiters { waiter.resume() }
        if drained { self.idle.set(()) }
    }

    /// After `revoke()`: waits until no task works on this scope any more, or `timeout`.
    /// Returns whether it drained.
    func drained(timeout: Duration) async -> Bool {
        await self.idle.wait(timeout: timeout) != nil
    }

    /// Sleeps on the scope's clock until `deadline`; returns false at once if the scope is (or
    /// gets) revoked. A command's lane serves other commands meanwhile (`CommandLanes`).
    func sleep(until deadline: ContinuousClock.Instant) async -> Bool {
        if self.isRevoked { return false }
        if deadline <= self.clock.now { return true }
        return await CommandLanes.stepAside { await self.sleepOrRevoked(until: deadline) }
    }

    private func sleepOrRevoked(until deadline: ContinuousClock.Instant) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                (try? await self.clock.sleep(until: deadline)) != nil
            }
            group.addTask {
                await self.waitForRevocation()
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first && !self.isRevoked
        }
    }

    private func waitForRevocation() async {
        let id = self.state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state in
                    if state.revoked || Task.isCancelled { return true }
                    state.revokeWaiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.state.withLock { $0.revokeWaiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    // MARK: Retry tiers

    /// A retry-tier record starts waiting for its due time (the partition pauses while any does).
    func hold() {
        self.state.withLock { $0.held += 1 }
    }

    /// A held record was released (the partition fetches again when none is held).
    func unhold() {
        self.state.withLock { $0.held -= 1 }
    }

    enum TierFetch: Equatable { case pause, resume }

    /// The next pause or resume the tier partition needs for the records it holds, for the one
    /// caller that applies them: `applied` is the step that caller just applied (nil to become
    /// that caller; nil back when another one is). Nil when fetching matches what is held, or
    /// the partition was revoked: the caller stops. Records held and released while a step is
    /// on its way are seen by the next call, so the last step applied always matches.
    func tierStep(applied: TierFetch?) -> TierFetch? {
        self.state.withLock { state in
            if let applied {
                state.tierPaused = applied == .pause
            } else {
                guard !state.tierSettling else { return nil }
                state.tierSettling = true
            }
            let wanted = state.held > 0
            guard !state.revoked, wanted != state.tierPaused else {
                state.tierSettling = false
                return nil
            }
            return wanted ? .pause : .resume
        }
    }

}
