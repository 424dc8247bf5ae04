import Crdkafka
import DequeModule
import Dispatch
import Logging
import Synchronization

/// The consumer's state machine. The poll thread and the application share it through one
/// lock; effects (librdkafka calls, continuation resumptions) happen outside the lock.
final class ConsumerCore: Sendable {
    struct State {
        var buffer = Deque<KafkaConsumerMessage>()
        var messageWaiter: CheckedContinuation<Result<KafkaConsumerMessage?, KafkaError>, Never>?
        var waiterCancelled = false
        var finished = false
        var failure: KafkaError?
        var assigned = Set<KafkaTopicPartition>()
        var appPaused = Set<KafkaTopicPartition>()
        /// Partitions flow control paused: each when it handed over a record while the buffer
        /// was full. Only the partitions that fill the buffer stop, so librdkafka keeps (and
        /// hands over) what it fetched for the others: pausing every partition dropped a quiet
        /// partition's fetched records at each pause, and they waited behind a busy partition's
        /// whole backlog.
        var flowPaused = Set<KafkaTopicPartition>()
        /// Partitions this consumer paused in librdkafka and has not resumed since. librdkafka
        /// keeps an application's pause across a revoke, so such a partition must be resumed
        /// when it is assigned again; any other fresh assignment fetches without a resume (a
        /// resume can overtake the fetch start, librdkafka #2190: see `restartStranded`).
        var pausedInLibrdkafka = Set<KafkaTopicPartition>()
        /// Partitions assigned while the listener did not return within `rebalanceHandlerTimeout`
        /// (`awaitListener`): paused until it did (`resumeLateAssignments`), so that no record of
        /// theirs reaches an application that has not taken them on yet.
        var listenerPending = Set<KafkaTopicPartition>()
        /// Those assignments, each with its listener's work.
        var lateAssignments: [(work: RebalanceWork, partitions: [KafkaTopicPartition])] = []
        var resumeRequested = false
        var generation: UInt64 = 0
        var rebalanceQueue = Deque<RebalanceWork>()
        var rebalanceWaiter: CheckedContinuation<RebalanceWork?, Never>?
        var rebalanceFinished = false
        /// Subscribed to topics, so a group member (not a consumer for queries only).
        var subscribed = false
        /// Partitions revoked while the listener did not return within `rebalanceHandlerTimeout`:
        /// the member rejoined without waiting for it, so the listener's commit of them would go
        /// out mid-join, with the old generation (`committable`). Until they are assigned again.
        var revokedLate = Set<KafkaTopicPartition>()
        /// A rebalance gave this member an assignment (possibly empty) at least once: the group
        /// answered a SyncGroup, and librdkafka's assignor has its state.
        var assignmentSeen = false
        /// When `close()` was first called.
        var closeRequestedAt: ContinuousClock.Instant?
        /// `rd_kafka_consumer_close` was started.
        var closing = false
        // Progress, for `checkProgress`: when the application last received a record, the next
        // offset it receives per partition (current assignment), and an epoch that moves on
        // every delivery, seek and rebalance — a stall is "records wait and the epoch stands still".
        var lastDelivery: ContinuousClock.Instant?
        var positions: [KafkaTopicPartition: Int64] = [:]
        var progressEpoch: UInt64 = 0
        var stallWatch: StallWatch?
        // Stranded partitions (`restartStranded`): when each owned partition was last told to
        // fetch (assigned unpaused, resumed), and since when librdkafka's position of each
        // stood still.
        var fetchingSince: [KafkaTopicPartition: ContinuousClock.Instant] = [:]
        var strandWatch: [KafkaTopicPartition: StrandWatch] = [:]

        /// Ends a flow-control pause once the buffer is at or below `lowWater`: the partitions
        /// to resume, nil while the pause goes on (or there is none). The application taking
        /// records is not the only way the buffer shrinks — a revoke or a seek drops records —
        /// and each of them must come here, or a pause whose buffer emptied never ends.
        mutating func endFlowPause(lowWater: Int) -> [KafkaTopicPartition]? {
            guard !self.flowPaused.isEmpty, self.buffer.count <= lowWater else { return nil }
            let toResume = self.flowPaused.filter { self.assigned.contains($0) && !self.isHeld($0) }
            self.flowPaused.removeAll()
            return toResume.sorted()
        }

        /// Buffers `message`; the partition to pause if the buffer is full (it is paused once:
        /// its records in librdkafka's queue are dropped and fetched again after the resume).
        mutating func buffer(_ message: KafkaConsumerMessage, capacity: Int) -> KafkaTopicPartition? {
            self.buffer.append(message)
            let partition = message.topicPartition
            guard self.buffer.count >= capacity, self.assigned.contains(partition),
                !self.appPaused.contains(partition), self.flowPaused.insert(partition).inserted
            else { return nil }
            return partition
        }

        /// Hands out the first buffered record, if any, and whether fetching that flow control
        /// paused should resume now (the buffer is down to `lowWater`; asked once).
        mutating func takeBuffered(lowWater: Int) -> (message: KafkaConsumerMessage, requestResume: Bool)? {
            guard let message = self.buffer.popFirst() else { return nil }
            self.handOut(message)
            guard !self.flowPaused.isEmpty && !self.resumeRequested && self.buffer.count <= lowWater else {
                return (message, false)
            }
            self.resumeRequested = true
            return (message, true)
        }

        /// Paused by the application, or waiting for the listener to take it on.
        func isHeld(_ partition: KafkaTopicPartition) -> Bool {
            self.appPaused.contains(partition) || self.listenerPending.contains(partition)
        }

        /// Whether `partition` is assigned and nothing holds its fetching: not paused by the
        /// application, not waiting for the listener, not paused by flow control.
        func mayFetch(_ partition: KafkaTopicPartition) -> Bool {
            self.assigned.contains(partition) && !self.isHeld(partition) && !self.flowPaused.contains(partition)
        }

        /// The assigned partitions that are neither paused by the application nor waiting for
        /// the listener.
        var unheld: Set<KafkaTopicPartition> {
            self.assigned.subtracting(self.appPaused).subtracting(self.listenerPending)
        }

        /// Records that `message` goes to the application.
        mutating func handOut(_ message: KafkaConsumerMessage) {
            self.lastDelivery = .now
            self.positions[message.topicPartition] = message.offset + 1
            self.progressEpoch &+= 1
        }
    }

    /// librdkafka's position of a partition, since when it has not moved, and since when
    /// records were seen waiting behind it.
    struct StrandWatch {
        var position: Int64
        var since: ContinuousClock.Instant
        var waitingSince: ContinuousClock.Instant? = nil
    }

    /// Records of `partitions` waited since `since`, and the progress epoch is still `epoch`.
    struct StallWatch {
        var since: ContinuousClock.Instant
        var epoch: UInt64
        var partitions: Set<KafkaTopicPartition>
    }

    let client: RDKafkaClient
    let logger: Logger
    let listener: (any KafkaRebalanceListener)?
    let configuration: KafkaConsumerConfiguration
    let state = Mutex(State())
    /// `state.lateAssignments` is not empty: the poll thread's check for them takes no lock per
    /// record while there are none (the usual case).
    let hasLateAssignments = Atomic<Bool>(false)
    /// The poll thread's shared topic names and header lists (`RecordInterner`).
    let interner = Mutex(RecordInterner())
    /// Fetching paused for a full buffer resumes when the buffer is down to this.
    var lowWater: Int { self.configuration.bufferCapacity / 2 }
    let pollThread = PollThread(name: "kafka-consumer")
    private let blockingQueue = DispatchQueue(label: "kafka-consumer-blocking")

    init(
        configuration: KafkaConsumerConfiguration, listener: (any KafkaRebalanceListener)?, logger: Logger
    ) throws(KafkaError) {
        self.configuration = configuration
        self.listener = listener
        self.logger = logger
        // The callbacks outlive neither the client nor this core; `Weak` breaks the cycle
        // client → callbacks → core → client.
        let weakSelf = WeakBox<ConsumerCore>()
        // With `tracksJoinState`, the `cgrp` debug context is on so that the group's join state
        // can be followed (`GroupJoinState`); its lines reach the logger only if the application
        // asked for librdkafka's debugging itself.
        let (properties, forwardsDebug) = configuration.clientProperties
        let callbacks = RDKafkaCallbacks(
            logger: logger,
            rebalance: { handle, code, list in weakSelf.value?.rebalance(handle: handle, code: code, list: list) },
            error: { error in
                if error.isFatal { weakSelf.value?.finish(failure: error) }
            },
            forwardsDebug: forwardsDebug
        )
        self.client = try RDKafkaClient(kind: .consumer, properties: properties, callbacks: callbacks)
        weakSelf.value = self
        self.pollThread.setWake { [weak client = self.client] in client?.wakePoll() }
    }

    func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = RDKafkaClient.makeList(
            topics.map { KafkaTopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code = rd_kafka_subscribe(self.client.handle, list)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(
                rdCode: code, message: "subscribe to \(topics): \(String(cString: rd_kafka_err2str(code)))")
        }
        self.state.withLock { $0.subscribed = true }
    }

    func start() {
        let timeout = Int32(clamping: self.configuration.pollInterval.milliseconds)
        self.pollThread.start(
            iteration: { [self] in self.pollOnce(timeout: timeout) },
            finish: { [self] in
                self.finish(failure: nil)
                self.keepHandleIfUnsafeToDestroy()
            }
        )
    }

    var failure: KafkaError? { self.state.withLock { $0.failure } }

    var assignment: [KafkaTopicPartition] { self.state.withLock { $0.assigned.sorted() } }

    /// Ends `messages` and `run()`; with a failure, both report it.
    func finish(failure: KafkaError?) {
        let (messageWaiter, rebalanceWaiter, pending) = self.state.withLock { state in
            if state.failure == nil { state.failure = failure }
            state.finished = true
            state.rebalanceFinished = true
            let messageWaiter = state.messageWaiter
            state.messageWaiter = nil
            let rebalanceWaiter = state.rebalanceWaiter
            state.rebalanceWaiter = nil
            let pending = Array(state.rebalanceQueue)
            state.rebalanceQueue.removeAll()
            return (messageWaiter, rebalanceWaiter, pending)
        }
        for work in pending { work.complete() }
        rebalanceWaiter?.resume(returning: nil)
        if let failure = failure ?? self.failure, let messageWaiter {
            messageWaiter.resume(returning: .failure(failure))
        } else {
            messageWaiter?.resume(returning: .success(nil))
        }
    }

    /// Runs a blocking librdkafka call on a dispatch queue of its own, off the cooperative pool.
    func blocking<T: Sendable>(
        _ body: @escaping @Sendable (RDKafkaClient) throws(KafkaError) -> T
    ) async throws(KafkaError) -> T {
        let result: Result<T, KafkaError> = await withCheckedContinuation { continuation in
            self.blockingQueue.async { [client] in
                do throws(KafkaError) {
                    continuation.resume(returning: .success(try body(client)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }
}
