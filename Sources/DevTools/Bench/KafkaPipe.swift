public import CancelCore
import DequeModule
import Foundation
import Kafka
public import Logging
import Synchronization
import Worker

/// The benchmark's Kafka floor: what this binary's Kafka layer costs for one command with
/// nothing else in the way. It consumes the commands topic as a member of a group, decodes
/// each command, produces a `cancelled` outcome for it (no ledger, no provider call, no
/// pacing), waits for the acknowledgement as the worker does, and commits the contiguous
/// acknowledged offsets every 200 ms. A command the decoder refuses gets no outcome.
///
/// Never run against real topics: every decodable command would be reported cancelled.
public struct KafkaPipe: Sendable {
    public let bootstrapServers: String
    public let groupID: String
    public let topics: TopicNames
    public let fetchWait: Duration
    public let logger: Logger

    public init(
        bootstrapServers: String, groupID: String, topics: TopicNames = .default,
        fetchWait: Duration = .milliseconds(100), logger: Logger
    ) {
        self.bootstrapServers = bootstrapServers
        self.groupID = groupID
        self.topics = topics
        self.fetchWait = fetchWait
        self.logger = logger
    }

    /// Tasks sending outcomes, each awaiting one acknowledgement at a time.
    static let senders = 512

    /// What `cancel-worker bench-pipe` writes to standard error once it has partitions.
    public static let assignedLine = "bench-pipe: partitions assigned"

    /// Runs until the task is cancelled; `assigned` is called when the group first gives this
    /// member partitions.
    public func run(assigned: @escaping @Sendable () -> Void) async throws {
        var consumerConfiguration = KafkaConsumerConfiguration(
            bootstrapServers: self.bootstrapServers, groupID: self.groupID)
        consumerConfiguration.fetchWaitMax = self.fetchWait
        consumerConfiguration.bufferCapacity = 10_000
        let offsets = PipeOffsets()
        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration, topics: [self.topics.commands],
            rebalanceListener: PipeListener(offsets: offsets, assigned: assigned), logger: self.logger)
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: self.bootstrapServers), logger: self.logger)
        let decoder = CommandDecoder()
        let outcomes = self.topics.outcomes
        // A fixed set of senders, each waiting for one acknowledgement at a time, and at most
        // 10,000 records between intake and acknowledgement (the worker's default): a task per
        // record in one group would make the floor pay the runtime's cost of many children.
        let queue = PipeQueue()
        let inFlight = AsyncSemaphore(permits: 10_000)
        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await consumer.run() }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(200))
                        let pending = offsets.pendingCommits()
                        if !pending.isEmpty { try? await consumer.commit(pending) }
                    }
                }
                for _ in 0..<Self.senders {
                    group.addTask {
                        while let (record, message) = await queue.pop() {
                            while true {
                                do {
                                    _ = try await producer.send(record)
                                    break
                                } catch {
                                    if Task.isCancelled { return }
                                    try? await Task.sleep(for: .milliseconds(100))
                                }
                            }
                            offsets.done(message)
                            inFlight.release()
                        }
                    }
                }
                for try await message in consumer.messages {
                    offsets.taken(message)
                    guard case .valid(let command) = decoder.decode(message.value) else {
                        offsets.done(message)
                        continue
                    }
                    let outcome = CancelOutcome(
                        outcomeID: OutcomeID.terminal(idempotencyKey: command.idempotencyKey),
                        identity: command.identity, status: .cancelled, reason: "pipe floor: no provider call",
                        attempts: 0, completedAt: Date(), workerID: self.groupID)
                    let record = KafkaProducerMessage(
                        topic: outcomes, key: Array(command.idempotencyKey.utf8), value: outcome.encoded(),
                        headers: [KafkaHeader(name: "content-type", string: "application/json")])
                    try await inFlight.acquire()
                    queue.push((record, message))
                }
                queue.close()
                group.cancelAll()
            }
        } onCancel: {
            consumer.close()
            queue.close()
        }
        await producer.shutdown(flushTimeout: .seconds(5))
    }
}

/// Records for the senders: first in, first out; `pop` waits while none is queued and returns
/// nil once the queue is closed.
final class PipeQueue: Sendable {
    typealias Item = (record: KafkaProducerMessage, message: KafkaConsumerMessage)

    private struct State {
        var items = Deque<Item>()
        var waiters = Deque<CheckedContinuation<Item?, Never>>()
        var closed = false
    }

    private let state = Mutex(State())

    func push(_ item: Item) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Item?, Never>? in
            if let waiter = state.waiters.popFirst() { return waiter }
            state.items.append(item)
            return nil
        }
        waiter?.resume(returning: item)
    }

    func pop() async -> Item? {
        await withCheckedContinuation { continuation in
            let ready: Item?? = self.state.withLock { state in
                if let item = state.items.popFirst() { return .some(item) }
                if state.closed { return .some(nil) }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func close() {
        let waiters = self.state.withLock { state in
            state.closed = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters)
        }
        for waiter in waiters { waiter.resume(returning: nil) }
    }
}

/// Per partition: the offsets taken and not yet acknowledged, and the next offset to commit.
final class PipeOffsets: Sendable {
    private struct Partition {
        var tracker = OffsetTracker()
        var committed: Int64?
    }

    private let partitions = Mutex<[KafkaTopicPartition: Partition]>([:])

    func taken(_ message: KafkaConsumerMessage) {
        _ = self.partitions.withLock { $0[message.topicPartition, default: Partition()].tracker.begin(message.offset) }
    }

    func done(_ message: KafkaConsumerMessage) {
        self.partitions.withLock { $0[message.topicPartition]?.tracker.finish(message.offset) }
    }

    func revoked(_ lost: [KafkaTopicPartition]) {
        self.partitions.withLock { partitions in for partition in lost { partitions[partition] = nil } }
    }

    /// The contiguous acknowledged offsets not committed yet.
    func pendingCommits() -> [KafkaTopicPartitionOffset] {
        self.partitions.withLock { partitions in
            var pending: [KafkaTopicPartitionOffset] = []
            for (topicPartition, partition) in partitions {
                guard let next = partition.tracker.committable, next != partition.committed else { continue }
                pending.append(KafkaTopicPartitionOffset(topicPartition: topicPartition, offset: next))
                partitions[topicPartition]?.committed = next
            }
            return pending
        }
    }
}

private final class PipeListener: KafkaRebalanceListener {
    let offsets: PipeOffsets
    let assigned: @Sendable () -> Void

    init(offsets: PipeOffsets, assigned: @escaping @Sendable () -> Void) {
        self.offsets = offsets
        self.assigned = assigned
    }

    func partitionsAssigned(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
        if !partitions.isEmpty { self.assigned() }
    }

    func partitionsRevoked(_ partitions: [KafkaTopicPartition], generation: UInt64) async {
        self.offsets.revoked(partitions)
    }
}
