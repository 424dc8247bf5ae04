package import CancelCore
import DequeModule
package import Kafka
import Synchronization

/// Runs valid commands on a bounded number of tasks per provider ("lanes"), and holds the
/// commands beyond them as data: a queued command costs its record's bytes and 48 more
/// (`Waiting`), not a task with its stack (~12 KB). A lane takes the next command of its
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
/// A rate-limited provider's commands also wait as data for their **account's turn**: at most
/// `paced(provider)` commands of one account (its burst + 1) are between their start and their
/// call's departure at once (`departing`); the account's other commands wait in its own queue,
/// in order, and the next one is queued for a lane when one departs or ends. A user with 500
/// cancels waiting for 10/s holds two tasks, not 500 (issue 14: (c)'s waits were tasks).
///
/// Commands of a revoked partition leave the queues at once (`abandon`), so a rebalance waits
/// only for the commands in lanes.
package final class CommandLanes: Sendable {
    /// A command for a lane: its record, its partition's scope, and what the record decoded to.
    package struct Item: Sendable {
        let message: KafkaConsumerMessage
        let scope: PartitionScope
        let provider: ProviderID
        /// The command as intake decoded it, or as decoded again from the record's bytes after
        /// it waited in the queue as data (`Waiting`): the same bytes and decoder, the same
        /// command.
        let decoded: CommandDecoder.Decoded

        package init(message: KafkaConsumerMessage, scope: PartitionScope, command: CancelCommand) {
            self.message = message
            self.scope = scope
            self.provider = command.provider
            self.decoded = .valid(command)
        }

        fileprivate init(_ waiting: Waiting, provider: ProviderID, decoder: CommandDecoder) {
            let decoded = decoder.decode(waiting.value)
            let key: [UInt8]?
            switch waiting.key {
            case .given(let given): key = given
            case .canonical:
                // Canonical only for a valid command, which the same bytes decode to again.
                switch decoded {
                case .valid(let command): key = Array(command.kafkaKey.utf8)
                case .invalid(let identity, _):
                    key = Array(CancelCommand.kafkaKey(provider: identity.provider, account: identity.account).utf8)
                case .undecodable: key = nil
                }
            }
            self.message = KafkaConsumerMessage(
                topic: waiting.scope.partition.topic, partition: waiting.scope.partition.partition,
                offset: waiting.offset, key: key, value: waiting.value, headers: waiting.headers,
                timestampMilliseconds: waiting.timestampMilliseconds, generation: waiting.scope.generation)
            self.scope = waiting.scope
            self.provider = provider
            self.decoded = decoded
        }

        /// The decoded command, if valid.
        var command: CancelCommand? {
            guard case .valid(let command) = self.decoded else { return nil }
            return command
        }
    }

    /// A command waiting in the queue, as data (issue 14: ≤ 300 bytes per waiting command): its
    /// record's value, headers, key and position, 48 bytes beside the value's own bytes (the
    /// consumer shares repeated header lists). Not kept: the decoded fields (decoded again when
    /// a lane takes it, ~5 µs), the provider (the queue's), the topic, partition and assignment
    /// generation (its scope's: the registry found the scope by them, and nothing after intake
    /// reads a record's generation), and the key when it is the command's own `provider:account`
    /// (the usual case; a mis-keyed record keeps its key, to be moved where it belongs).
    struct Waiting: Sendable {
        enum Key: Sendable {
            /// The command's `provider:account`.
            case canonical
            case given([UInt8]?)
        }

        let scope: PartitionScope
        let value: [UInt8]
        let key: Key
        let headers: [KafkaHeader]
        let offset: Int64
        let timestampMilliseconds: Int64

        init(_ item: Item) {
            self.scope = item.scope
            self.value = item.message.value
            self.headers = item.message.headers
            self.offset = item.message.offset
            self.timestampMilliseconds = item.message.timestampMilliseconds
            let canonical = item.command.map { Self.isKey(item.message.key, of: $0) } ?? false
            self.key = canonical ? .canonical : .given(item.message.key)
        }

        /// Whether `key` is `command`'s `provider:account`, compared byte by byte.
        static func isKey(_ key: [UInt8]?, of command: CancelCommand) -> Bool {
            guard let key else { return false }
            let provider = command.provider.rawValue.utf8
            let account = command.account.utf8
            guard key.count == provider.count + 1 + account.count else { return false }
            return key.prefix(provider.count).elementsEqual(provider) && key[provider.count] == UInt8(ascii: ":")
                && key.suffix(account.count).elementsEqual(account)
        }
    }

    /// What a lane is handed: a command fresh from intake, or one that waited as data.
    fileprivate enum Next: Sendable {
        case item(Item)
        case waiting(Waiting)
    }

    private struct Lane {
        var queue = Deque<Waiting>()
        /// Lanes working on commands (not stepped aside).
        var active = 0
        /// Lanes with nothing to do, waiting for the next command: a command finds one of them
        /// before a new lane is started, so a provider's lanes are not created and ended with
        /// every lull (each start is a task and a hop through `run`; each end walks the task
        /// group's children in the Swift runtime).
        var parked: [CheckedContinuation<Next?, Never>] = []
        /// Paced providers: commands of each account started or queued for a lane whose call has
        /// not departed yet (and that have not ended).
        var pacing: [String: Int] = [:]
        /// Paced providers: each account's commands beyond its turn, in order.
        var held: [String: Deque<Waiting>] = [:]
        var heldCount = 0
    }

    private let lanes = Mutex<[ProviderID: Lane]>([:])
    /// Set once `run` ends: parked lanes end, and no lane parks again.
    private let closed = Atomic<Bool>(false)
    /// Lanes started so far (tasks created).
    private let started = Atomic<Int>(0)
    private let limit: @Sendable (ProviderID) -> Int
    /// Commands of one account of a rate-limited provider that may be on their way to a call at
    /// once; nil for a provider without a rate limit.
    private let paced: @Sendable (ProviderID) -> Int?
    private let work: @Sendable (Item) async -> Void
    private let abandoned: @Sendable (Item) -> Void
    /// Decodes a waiting command again when a lane takes it (the intake's decoder).
    private let decoder: CommandDecoder
    /// Lanes to start: each takes the first queued command of its provider.
    private let spawns: AsyncStream<ProviderID>
    private let spawner: AsyncStream<ProviderID>.Continuation

    /// `limit`: the lanes of a provider (at least 1). `paced`: for a rate-limited provider, how
    /// many commands of one account may be on their way to a call at once (at least 1).
    /// `work` performs a command in a lane; `abandoned` is told of each queued command given up
    /// by `abandon`. `decoder`: the one intake decoded the commands with.
    package init(
        limit: @escaping @Sendable (ProviderID) -> Int, paced: @escaping @Sendable (ProviderID) -> Int? = { _ in nil },
        decoder: CommandDecoder = CommandDecoder(),
        work: @escaping @Sendable (Item) async -> Void, abandoned: @escaping @Sendable (Item) -> Void
    ) {
        self.limit = limit
        self.paced = paced
        self.decoder = decoder
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

    /// Hands a command to a parked lane of its provider or else queues it as data (`Waiting`)
    /// until a lane takes it (a new one if the bound allows). A paced account's command beyond
    /// its turn waits in the account's queue.
    package func submit(_ item: Item) {
        let provider = item.provider
        let limit = max(1, self.limit(provider))
        let turns = self.paced(provider).map { max(1, $0) }
        let start: Start = self.lanes.withLock { lanes in
            if lanes[provider] == nil { lanes[provider] = Lane() }
            if let turns, let account = item.command?.account {
                guard lanes[provider]!.pacing[account, default: 0] < turns else {
                    lanes[provider]!.held[account, default: []].append(Waiting(item))
                    lanes[provider]!.heldCount += 1
                    return .none
                }
                lanes[provider]!.pacing[account, default: 0] += 1
            }
            if lanes[provider]!.queue.isEmpty && lanes[provider]!.active < limit,
                let parked = lanes[provider]!.parked.popLast()
            {
                lanes[provider]!.active += 1
                return .wake(parked, .item(item))
            }
            lanes[provider]!.queue.append(Waiting(item))
            return self.claimLane(provider, in: &lanes)
        }
        self.perform(start, provider)
        // Revoked between intake's `begin` and now: the rebalance may already have taken the
        // scope's queued commands out, so this one must not wait for a lane either.
        if item.scope.isRevoked { self.abandon(item.scope) }
    }

    /// Takes the queued and held commands of `scope` out (its partition was revoked) and reports
    /// each to `abandoned`.
    func abandon(_ scope: PartitionScope) {
        // `counted`: queued for a lane, so counted in its account's turn (held ones are not).
        let removed: [(provider: ProviderID, waiting: Waiting, counted: Bool)] = self.lanes.withLock { lanes in
            var removed: [(ProviderID, Waiting, Bool)] = []
            for provider in lanes.keys {
                for account in lanes[provider]!.held.keys {
                    let before = removed.count
                    lanes[provider]!.held[account]!.removeAll { waiting in
                        guard waiting.scope === scope else { return false }
                        removed.append((provider, waiting, false))
                        return true
                    }
                    lanes[provider]!.heldCount -= removed.count - before
                    if lanes[provider]!.held[account]!.isEmpty { lanes[provider]!.held[account] = nil }
                }
                lanes[provider]!.queue.removeAll { waiting in
                    guard waiting.scope === scope else { return false }
                    removed.append((provider, waiting, true))
                    return true
                }
            }
            return removed
        }
        for (provider, waiting, counted) in removed {
            let item = Item(waiting, provider: provider, decoder: self.decoder)
            if counted, self.paced(provider) != nil, let account = item.command?.account {
                self.departed(provider, account: account)
            }
            self.abandoned(item)
        }
    }

    /// Commands queued or held, not yet in a lane.
    package var queued: Int {
        self.lanes.withLock { $0.values.reduce(0) { $0 + $1.queue.count + $1.heldCount } }
    }

    /// Commands of `account` at `provider` waiting for their account's turn.
    func held(_ provider: ProviderID, account: String) -> Int {
        self.lanes.withLock { $0[provider]?.held[account]?.count ?? 0 }
    }

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
        case wake(CheckedContinuation<Next?, Never>, Next)
    }

    /// Counts one more working lane for `provider` if a command waits and the bound allows it:
    /// a parked lane, handed the first queued command, or else a new one.
    private func claimLane(_ provider: ProviderID, in lanes: inout [ProviderID: Lane]) -> Start {
        guard let lane = lanes[provider], !lane.queue.isEmpty, lane.active < max(1, self.limit(provider)) else {
            return .none
        }
        lanes[provider]!.active += 1
        if let parked = lanes[provider]!.parked.popLast() {
            return .wake(parked, .waiting(lanes[provider]!.queue.popFirst()!))
        }
        return .spawn
    }

    private func perform(_ start: Start, _ provider: ProviderID) {
        switch start {
        case .none: break
        case .spawn: self.spawner.yield(provider)
        case .wake(let lane, let next): lane.resume(returning: next)
        }
    }

    private func lane(_ provider: ProviderID) async {
        await Self.$current.withValue(LaneToken(lanes: self, provider: provider)) {
            while let next = await self.next(provider) {
                switch next {
                case .item(let item): await self.serve(item)
                case .waiting(let waiting): await self.serve(Item(waiting, provider: provider, decoder: self.decoder))
                }
            }
        }
    }

    /// Runs `work`; for a paced account, with the command's turn, which its call's departure
    /// passes on (`departing`), or else its end.
    private func serve(_ item: Item) async {
        guard self.paced(item.provider) != nil, let account = item.command?.account else {
            return await self.work(item)
        }
        let turn = Turn(lanes: self, provider: item.provider, account: account)
        await Self.$turn.withValue(turn) { await self.work(item) }
        turn.pass()
    }

    /// The lane's next command, or nil: the lane ends (more lanes than the bound since a lane
    /// came back from stepping aside, or `run` ended). With nothing queued the lane parks until
    /// a command comes (`claimLane`).
    private func next(_ provider: ProviderID) async -> Next? {
        let limit = max(1, self.limit(provider))
        let taken: Next?? = self.lanes.withLock { lanes in
            if lanes[provider]!.active <= limit, let waiting = lanes[provider]!.queue.popFirst() {
                return .waiting(waiting)
            }
            lanes[provider]!.active -= 1
            // Over the bound, or as many parked as the bound: this lane ends.
            if lanes[provider]!.active >= limit || lanes[provider]!.parked.count >= limit { return .some(nil) }
            return nil
        }
        if let taken { return taken }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (lane: CheckedContinuation<Next?, Never>) in
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
            var parked: [CheckedContinuation<Next?, Never>] = []
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

    // MARK: Paced accounts

    /// A paced command's turn: passed once, when its call departs or it ends.
    private final class Turn: Sendable {
        let lanes: CommandLanes
        let provider: ProviderID
        let account: String
        private let passed = Atomic<Bool>(false)

        init(lanes: CommandLanes, provider: ProviderID, account: String) {
            self.lanes = lanes
            self.provider = provider
            self.account = account
        }

        func pass() {
            guard !self.passed.exchange(true, ordering: .acquiringAndReleasing) else { return }
            self.lanes.departed(self.provider, account: self.account)
        }
    }

    @TaskLocal private static var turn: Turn?

    /// The current command's call departs now (its rate-limit slot is taken): the next command
    /// of its account may start. Outside a paced command's lane it does nothing.
    package static func departing() {
        Self.turn?.pass()
    }

    /// A paced command departed or ended: its account's next held command is queued for a lane.
    private func departed(_ provider: ProviderID, account: String) {
        let start: Start = self.lanes.withLock { lanes in
            lanes[provider]!.pacing[account, default: 1] -= 1
            if let next = lanes[provider]!.held[account]?.popFirst() {
                if lanes[provider]!.held[account]!.isEmpty { lanes[provider]!.held[account] = nil }
                lanes[provider]!.heldCount -= 1
                lanes[provider]!.pacing[account, default: 0] += 1
                lanes[provider]!.queue.append(next)
                return self.claimLane(provider, in: &lanes)
            }
            if lanes[provider]!.pacing[account] == 0 { lanes[provider]!.pacing[account] = nil }
            return .none
        }
        self.perform(start, provider)
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
