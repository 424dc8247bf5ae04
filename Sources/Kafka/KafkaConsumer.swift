import Crdkafka
import DequeModule
import Dispatch
public import Logging
import Synchronization

/// A consumer-group member with application-managed offsets.
///
/// - Records arrive through `messages`, an `AsyncSequence`, fetched by a dedicated poll thread.
///   When the application falls behind, fetching pauses (flow control) instead of buffering
///   without bound.
/// - Nothing is committed unless the application calls `commit`.
/// - `run()` must be running whenever a `KafkaRebalanceListener` is set: it calls the listener
///   while the poll thread holds the rebalance open, which is what lets the application drain a
///   revoked partition before it moves.
/// - `close()` revokes the assignment (calling the listener), commits nothing by itself, leaves
///   the group and ends `messages` and `run()`. A join in progress completes first (see
///   `KafkaConsumerConfiguration.closeJoinWait`), so closing during a join is orderly too.
public final class KafkaConsumer: Sendable {
    let core: ConsumerCore

    public init(
        configuration: KafkaConsumerConfiguration,
        topics: [String],
        rebalanceListener: (any KafkaRebalanceListener)? = nil,
        logger: Logger
    ) throws(KafkaError) {
        self.core = try ConsumerCore(
            configuration: configuration,
            listener: rebalanceListener,
            logger: logger
        )
        // No topics: a member of no subscription, for offset and watermark queries only.
        if !topics.isEmpty { try self.core.subscribe(topics) }
        self.core.start()
    }

    deinit {
        self.core.close()
    }

    /// The records, in partition order. Single consumer: iterate it from one task.
    public var messages: KafkaConsumerMessages {
        KafkaConsumerMessages(core: self.core)
    }

    /// Serves rebalance events to the listener until the consumer is closed. Cancelling the
    /// task closes the consumer (listener calls after cancellation are skipped).
    public func run() async throws(KafkaError) {
        await withTaskCancellationHandler {
            while let work = await self.core.nextRebalanceWork() {
                if !Task.isCancelled, let listener = self.core.listener {
                    switch work.event {
                    case .assigned(let partitions, let generation):
                        await listener.partitionsAssigned(partitions, generation: generation)
                    case .revoked(let partitions, let generation):
                        await listener.partitionsRevoked(partitions, generation: generation)
                    }
                }
                work.complete()
            }
        } onCancel: {
            self.core.close()
        }
        if let failure = self.core.failure {
            throw failure
        }
    }

    /// Starts a graceful close: revoke (listener runs), leave the group, end `messages`.
    /// Returns at once; `run()` returns when the close is complete. A member that has not had
    /// its first assignment yet waits for it (at most `closeJoinWait`), fetching nothing, and
    /// then leaves like any other; a rebalance the listener is handling finishes first.
    public func close() {
        self.core.close()
    }

    /// Commits `offsets` (each the *next* offset to consume) and waits for the coordinator's answer.
    ///
    /// Offsets of partitions revoked while the listener ran past `rebalanceHandlerTimeout` are
    /// left out (logged) until they are assigned again; if none is left the commit throws
    /// `_ASSIGNMENT_LOST` (`KafkaError.Code.assignmentLost`). Such a listener's commit went out
    /// while the member rejoined, with the old generation: the coordinator's
    /// `ILLEGAL_GENERATION` made librdkafka give up every partition as lost.
    public func commit(_ offsets: [KafkaTopicPartitionOffset]) async throws(KafkaError) {
        try await self.core.blocking { [core] client throws(KafkaError) in
            guard !offsets.isEmpty else { return }
            let (offsets, dropped) = core.committable(offsets)
            if !dropped.isEmpty {
                core.logger.warning(
                    "not committing offsets of partitions revoked while the rebalance listener was late",
                    metadata: ["partitions": "\(dropped.sorted())"])
                guard !offsets.isEmpty else {
                    throw KafkaError(
                        rdCode: RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST,
                        message: "partitions revoked while the rebalance listener was late: \(dropped.sorted())")
                }
            }
            let list = RDKafkaClient.makeList(offsets)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let code = rd_kafka_commit(client.handle, list, 0)
            if code != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(rdCode: code)
            }
            if let error = RDKafkaClient.firstError(of: list) {
                throw error
            }
        }
    }

    /// Stops fetching from these partitions until `resume`. Records already delivered stay valid.
    public func pause(_ partitions: [KafkaTopicPartition]) async throws(KafkaError) {
        try await self.core.pause(partitions)
    }

    /// Resumes fetching from partitions paused with `pause`.
    public func resume(_ partitions: [KafkaTopicPartition]) async throws(KafkaError) {
        try await self.core.resume(partitions)
    }

    /// Moves the fetch position; records of these partitions not yet taken from `messages` are dropped.
    ///
    /// The seek takes effect when it is issued: librdkafka raises the partition's version barrier
    /// at once, so records fetched from the old position are discarded from then on. The call then
    /// waits up to `confirmationWait` for the partition's broker thread to apply it, to report an
    /// error such as a partition not being consumed (`_STATE`). A confirmation that does not come
    /// in time (a starved broker thread on a loaded host) is not an error: the seek stands and is
    /// applied when that thread runs.
    ///
    /// A partition just assigned starts fetching only once the coordinator answered where its
    /// group stands (an offset fetch), and librdkafka refuses a seek before that (`_STATE`): a
    /// seek from `partitionsAssigned` on a slow coordinator. A seek of partitions this member
    /// owns is tried again every 50 ms until the fetch started, at most `startWait`; and so is a
    /// seek that a newer operation on the partition overtook before it was applied (`_OUTDATED`:
    /// the fetch start of the assignment; seen in `ReplayTests` on a loaded host).
    public func seek(
        _ offsets: [KafkaTopicPartitionOffset], confirmationWait: Duration = .seconds(5),
        startWait: Duration = .seconds(10)
    ) async throws(KafkaError) {
        let deadline = ContinuousClock.now + startWait
        while true {
            do {
                try await self.core.seek(offsets, confirmationWait: confirmationWait)
                return
            } catch
                where [KafkaError.Code.state, KafkaError.Code.outdated].contains(error.code)
                && ContinuousClock.now < deadline
                && self.core.owns(offsets.map(\.topicPartition))
            {
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// The group's committed offsets for these partitions (`invalidOffset` where none).
    public func committed(
        _ partitions: [KafkaTopicPartition], timeout: Duration = .seconds(10)
    ) async throws(KafkaError) -> [KafkaTopicPartitionOffset] {
        try await self.core.blocking { client throws(KafkaError) in
            let list = RDKafkaClient.makeList(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let code = rd_kafka_committed(client.handle, list, Int32(clamping: timeout.milliseconds))
            if code != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(rdCode: code)
            }
            return RDKafkaClient.entries(of: list)
        }
    }

    /// Asks the partition leader for the current watermarks.
    public func watermarks(
        for partition: KafkaTopicPartition, timeout: Duration = .seconds(10)
    ) async throws(KafkaError) -> KafkaWatermarks {
        try await self.core.blocking { client throws(KafkaError) in
            var low: Int64 = 0
            var high: Int64 = 0
            let code = rd_kafka_query_watermark_offsets(
                client.handle, partition.topic, partition.partition, &low, &high, Int32(clamping: timeout.milliseconds)
            )
            if code != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(rdCode: code)
            }
            return KafkaWatermarks(low: low, high: high)
        }
    }

    /// The watermarks last seen in fetch responses; no network round trip. `nil` before the
    /// first fetch from that partition.
    public func cachedWatermarks(for partition: KafkaTopicPartition) -> KafkaWatermarks? {
        var low: Int64 = -1
        var high: Int64 = -1
        let code = rd_kafka_get_watermark_offsets(
            self.core.client.handle, partition.topic, partition.partition, &low, &high)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { return nil }
        return KafkaWatermarks(low: low, high: high)
    }

    /// The partitions currently assigned to this member.
    public var assignment: [KafkaTopicPartition] {
        self.core.assignment
    }

    /// Whether the consumer is in the middle of a rebalance: joining, syncing, or handing its
    /// assignment changes to the listener (`GroupJoinState`). A commit sent now may be
    /// answered `ILLEGAL_GENERATION`, which librdkafka 2.0 takes for a lost assignment; commit
    /// when this is false, or from the listener's revocation. Always false unless the
    /// configuration's `tracksJoinState` is set.
    public var isRebalancing: Bool {
        self.core.client.callbacks.joinState.withLock { $0 }.isRebalancing
    }

    /// The group member id the coordinator gave us (empty before joining).
    public var memberID: String {
        guard let id = rd_kafka_memberid(self.core.client.handle) else { return "" }
        defer { rd_kafka_mem_free(self.core.client.handle, id) }
        return String(cString: id)
    }

    /// What the consumer handed to the application so far, and whether flow control holds
    /// fetching. No network round trip.
    public var activity: KafkaConsumerActivity {
        self.core.activity
    }

    /// Restarts the fetch of owned partitions that fetch nothing while records wait (a fetch
    /// start librdkafka 2.0 lost: librdkafka #2190): told to fetch for at least `after / 3`,
    /// librdkafka's position unmoved for `after`, and the high watermark above the next offset
    /// at two checks at least `after / 3` apart. Each restarts where it was (at its committed
    /// offset if it fetched nothing since its assignment); under the eager protocol they are
    /// only logged. Call it periodically, more often than `after`; a check asks the cluster
    /// only about partitions whose position stood still for `after`. Nothing is checked while
    /// flow control holds fetching. Returns the partitions restarted.
    public func restartStrandedPartitions(
        after threshold: Duration = .seconds(30), timeout: Duration = .seconds(2)
    ) async -> [KafkaTopicPartition] {
        await self.core.restartStranded(after: threshold, timeout: timeout)
    }

    /// Whether records wait that the application does not get, and for how long.
    ///
    /// Records wait in an owned partition not paused by the application when its high watermark
    /// is above the next offset the application receives. The consumer is *stalled* when
    /// records have waited in the same partitions across checks at least `stallAfter` apart
    /// with nothing delivered to the application, nor any seek or rebalance, in between. So a
    /// consumer without lag, or one handing out records however slowly, is never stalled; the
    /// first check that sees a wait starts timing it (call this periodically, e.g. from a
    /// readiness probe). Measuring asks the cluster for high watermarks (and committed offsets
    /// of partitions that delivered nothing yet), within `timeout`, off the consumer's queues.
    public func checkProgress(stallAfter: Duration, timeout: Duration = .seconds(1)) async -> KafkaConsumerProgress {
        await self.core.checkProgress(stallAfter: stallAfter, timeout: timeout)
    }
}

/// The records a `KafkaConsumer` fetched, in order per partition.
public struct KafkaConsumerMessages: AsyncSequence, Sendable {
    public typealias Element = KafkaConsumerMessage
    public typealias Failure = KafkaError

    let core: ConsumerCore

    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = KafkaConsumerMessage
        public typealias Failure = KafkaError
        let core: ConsumerCore

        public mutating func next() async throws(KafkaError) -> KafkaConsumerMessage? {
            try await self.core.nextMessage()
        }

        public mutating func next(
            isolation actor: isolated (any Actor)?
        ) async throws(KafkaError) -> KafkaConsumerMessage? {
            try await self.core.nextMessage()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(core: self.core)
    }
}

extension KafkaConsumer {
    /// Whether a broker answers a metadata request within `timeout` (for readiness probes).
    ///
    /// Runs on a queue of its own, not behind commits and watermark queries, so a probe
    /// answers within `timeout` however busy the consumer is (`rd_kafka_metadata` is
    /// thread-safe).
    public func brokerReachable(timeout: Duration = .seconds(1)) async -> Bool {
        let client = self.core.client
        return await withCheckedContinuation { continuation in
            Self.probeQueue.async {
                var metadata: UnsafePointer<rd_kafka_metadata>? = nil
                let code = rd_kafka_metadata(client.handle, 0, nil, &metadata, Int32(clamping: timeout.milliseconds))
                if let metadata { rd_kafka_metadata_destroy(metadata) }
                continuation.resume(returning: code == RD_KAFKA_RESP_ERR_NO_ERROR)
            }
        }
    }

    /// Where readiness probes wait for the broker, off the cooperative pool and off the
    /// consumer's own blocking queue.
    static let probeQueue = DispatchQueue(label: "kafka-consumer-probe", attributes: .concurrent)
}
