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
    }

    private let lanes = Mutex<[ProviderID: Lane]>([:])
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
                group.addTask { await self.lane(provider) }
            }
        }
    }

    /// Queues a command; a lane takes it when one of its provider's is free.
    func submit(_ item: Item) {
        let provider = item.command.provider
        let start = self.lanes.withLock { lanes in
            lanes[provider, default: Lane()].queue.append(item)
            return self.claimLane(provider, in: &lanes)
        }
        if start { self.spawner.yield(provider) }
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

    // MARK: Lanes

    /// Counts a new lane for `provider` if a command waits and the bound allows it.
    private func claimLane(_ provider: ProviderID, in lanes: inout [ProviderID: Lane]) -> Bool {
        guard let lane = lanes[provider], !lane.queue.isEmpty, lane.active < max(1, self.limit(provider)) else {
            return false
        }
        lanes[provider]!.active += 1
        return true
    }

    private func lane(_ provider: ProviderID) async {
        await Self.$current.withValue(LaneToken(lanes: self, provider: provider)) {
            while let item = self.next(provider) { await self.work(item) }
        }
    }

    /// The lane's next command, or nil: the lane ends (nothing queued, or more lanes than the
    /// bound since a lane came back from stepping aside).
    private func next(_ provider: ProviderID) -> Item? {
        self.lanes.withLock { lanes in
            if lanes[provider]!.active <= max(1, self.limit(provider)), let item = lanes[provider]!.queue.popFirst() {
                return item
            }
            lanes[provider]!.active -= 1
            return nil
        }
    }

    private func stepAside(_ provider: ProviderID) {
        let start = self.lanes.withLock { lanes in
            lanes[provider]!.active -= 1
            return self.claimLane(provider, in: &lanes)
        }
        if start { self.spawner.yield(provider) }
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
