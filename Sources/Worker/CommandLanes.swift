import CancelCore
import DequeModule
import Kafka
import Synchronization

/// Runs valid commands on a bounded number of tasks per provider ("lanes"), and holds the
/// commands beyond them as data: a queued command costs its record and decoded fields (about a
/// kilobyte), not a task with its stack (~12 KB). A lane takes the next command of its
/// provider's queue when it is done with one, so a busy provider keeps its lanes and tasks are
/// not created per command.
///
/// A lane that waits for something other than its provider — a user's rate-limit slot, a
/// backoff, a duplicate's key, its partition's turn — steps aside (`stepAside`): its place goes
/// to the next queued command meanwhile, so paced users never hold up the others, and it comes
/// back without waiting when its wait ends (a lane count above the bound is given up at the next
/// command). Waiting for a connection to the provider keeps the lane: that is what the bound is
/// for.
///
/// Commands of a revoked partition leave the queue at once (`abandon`), so a rebalance waits
/// only for the commands in lanes.
final class CommandLanes: Sendable {
    struct Item: Sendable {
        let message: KafkaConsumerMessage
        let scope: PartitionScope
        let command: CancelCommand
    }

    private struct Lane {
        var queue = Deque<Item>()
        /// Lanes working on commands (not stepped aside).
        var active = 0
        /// Lanes with nothing to do, waiting for the next command: a command finds one of them
        /// before a new lane is started, so a provider's lanes are not created and ended with
        /// every lull (each start is a task and a hop through `run`; each end walks the task
        /// group's children in the Swift runtime).
        var parked: [CheckedContinuation<Item?, Never>] = []
    }

    private let lanes = Mutex<[ProviderID: Lane]>([:])
    /// Set once `run` ends: parked lanes end, and no lane parks again.
    private let closed = Atomic<Bool>(false)
    /// Lanes started so far (tasks created).
    private let started = Atomic<Int>(0)
    private let limit: @Sendable (ProviderID) -> Int
    private let work: @Sendable (Item) async -> Void
    private let abandoned: @Sendable (Item) -> Void
    private let spawns: AsyncStream<ProviderID>
    private let spawner: AsyncStream<ProviderID>.Continuation

    /// `limit`: the lanes of a provider (at least 1). `work` performs a command in a lane;
    /// `abandoned` is told of each queued command given up by `abandon`.
    init(
        limit: @escaping @Sendable (ProviderID) -> Int, work: @escaping @Sendable (Item) async -> Void,
        abandoned: @escaping @Sendable (Item) -> Void
    ) {
        self.limit = limit
        self.work = work
        self.abandoned = abandoned
        (self.spawns, self.spawner) = AsyncStream.makeStream(of: ProviderID.self)
    }

    /// Starts the lanes that `submit` and `stepAside` ask for, until the task is cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await provider in self.spawns {
                self.started.add(1, ordering: .relaxed)
                group.addTask { await self.lane(provider) }
            }
            // Cancelled: the parked lanes end, so the group's wait for its children does too.
            self.close()
        }
    }

    /// Queues a command; a lane takes it when one of its provider's is free.
    func submit(_ item: Item) {
        let provider = item.command.provider
        let start = self.lanes.withLock { lanes in
            lanes[provider, default: Lane()].queue.append(item)
            return self.claimLane(provider, in: &lanes)
        }
        self.perform(start, provider)
        // Revoked between intake's `begin` and now: the rebalance may already have taken the
        // scope's queued commands out, so this one must not wait for a lane either.
        if item.scope.isRevoked { self.abandon(item.scope) }
    }

    /// Takes the queued commands of `scope` out (its partition was revoked) and reports each to
    /// `abandoned`.
    func abandon(_ scope: PartitionScope) {
        let removed: [Item] = self.lanes.withLock { lanes in
            var removed: [Item] = []
            for provider in lanes.keys {
                lanes[provider]!.queue.removeAll { item in
                    guard item.scope === scope else { return false }
                    removed.append(item)
                    return true
                }
            }
            return removed
        }
        for item in removed { self.abandoned(item) }
    }

    /// Commands queued, not yet in a lane.
    var queued: Int { self.lanes.withLock { $0.values.reduce(0) { $0 + $1.queue.count } } }

    /// Lanes working on commands of `provider` (not stepped aside).
    func active(_ provider: ProviderID) -> Int { self.lanes.withLock { $0[provider]?.active ?? 0 } }

    /// Lanes of `provider` waiting for its next command.
    func parked(_ provider: ProviderID) -> Int { self.lanes.withLock { $0[provider]?.parked.count ?? 0 } }

    /// Lanes started since `run` began (each a task).
    var lanesStarted: Int { self.started.load(ordering: .relaxed) }

    // MARK: Lanes

    /// How a queued command gets a lane: a parked lane takes it, or a new lane starts.
    private enum Start {
        case none, spawn
        case wake(CheckedContinuation<Item?, Never>, Item)
    }

    /// Counts one more working lane for `provider` if a command waits and the bound allows it:
    /// a parked lane, handed the first queued command, or else a new one.
    private func claimLane(_ provider: ProviderID, in lanes: inout [ProviderID: Lane]) -> Start {
        guard let lane = lanes[provider], !lane.queue.isEmpty, lane.active < max(1, self.limit(provider)) else {
            return .none
        }
        lanes[provider]!.active += 1
        if let parked = lanes[provider]!.parked.popLast() {
            return .wake(parked, lanes[provider]!.queue.popFirst()!)
        }
        return .spawn
    }

    private func perform(_ start: Start, _ provider: ProviderID) {
        switch start {
        case .none: break
        case .spawn: self.spawner.yield(provider)
        case .wake(let lane, let item): lane.resume(returning: item)
        }
    }

    private func lane(_ provider: ProviderID) async {
        await Self.$current.withValue(LaneToken(lanes: self, provider: provider)) {
            while let item = await self.next(provider) { await self.work(item) }
        }
    }

    /// The lane's next command, or nil: the lane ends (more lanes than the bound since a lane
    /// came back from stepping aside, or `run` ended). With nothing queued the lane parks until
    /// a command comes (`claimLane`).
    private func next(_ provider: ProviderID) async -> Item? {
        let limit = max(1, self.limit(provider))
        let taken: Item?? = self.lanes.withLock { lanes in
            if lanes[provider]!.active <= limit, let item = lanes[provider]!.queue.popFirst() { return item }
            lanes[provider]!.active -= 1
            // Over the bound, or as many parked as the bound: this lane ends.
            if lanes[provider]!.active >= limit || lanes[provider]!.parked.count >= limit { return .some(nil) }
            return nil
        }
        if let taken { return taken }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (lane: CheckedContinuation<Item?, Never>) in
                let start: Start? = self.lanes.withLock { lanes in
                    if self.closed.load(ordering: .acquiring) { return nil }
                    lanes[provider]!.parked.append(lane)
                    // A command queued since the check above: claimed as `submit` would.
                    return self.claimLane(provider, in: &lanes)
                }
                guard let start else { return lane.resume(returning: nil) }
                self.perform(start, provider)
            }
        } onCancel: {
            self.close()
        }
    }

    /// Ends the parked lanes and keeps lanes from parking again.
    private func close() {
        self.closed.store(true, ordering: .releasing)
        let parked = self.lanes.withLock { lanes in
            var parked: [CheckedContinuation<Item?, Never>] = []
            for provider in lanes.keys {
                parked += lanes[provider]!.parked
                lanes[provider]!.parked.removeAll()
            }
            return parked
        }
        for lane in parked { lane.resume(returning: nil) }
    }

    private func stepAside(_ provider: ProviderID) {
        let start = self.lanes.withLock { lanes in
            lanes[provider]!.active -= 1
            return self.claimLane(provider, in: &lanes)
        }
        self.perform(start, provider)
    }

    private func comeBack(_ provider: ProviderID) {
        self.lanes.withLock { $0[provider]!.active += 1 }
    }

    // MARK: Stepping aside

    private struct LaneToken: Sendable {
        let lanes: CommandLanes
        let provider: ProviderID
    }

    @TaskLocal private static var current: LaneToken?

    /// Runs `body` — a wait for something other than the provider — with the current lane's
    /// place given to the next queued command meanwhile. Outside a lane (or nested) it only runs
    /// `body`.
    static func stepAside<T: Sendable>(_ body: () async -> T) async -> T {
        guard let token = Self.current else { return await body() }
        token.lanes.stepAside(token.provider)
        let result = await Self.$current.withValue(nil) { await body() }
        token.lanes.comeBack(token.provider)
        return result
    }
}
