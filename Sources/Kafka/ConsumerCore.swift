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
        var flowPaused = false
        var resumeRequested = false
        var generation: UInt64 = 0
        var rebalanceQueue = Deque<RebalanceWork>()
        var rebalanceWaiter: CheckedContinuation<RebalanceWork?, Never>?
        var rebalanceFinished = false
        /// Subscribed to topics, so a group member (not a consumer for queries only).
        var subscribed = false
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

        /// Ends a flow-control pause once the buffer is at or below `lowWater`: the partitions
        /// to resume, nil while the pause goes on (or there is none). The application taking
        /// records is not the only way the buffer shrinks — a revoke or a seek drops records —
        /// and each of them must come here, or a pause whose buffer emptied never ends.
        mutating func endFlowPause(lowWater: Int) -> [KafkaTopicPartition]? {
            guard self.flowPaused, self.buffer.count <= lowWater else { return nil }
            self.flowPaused = false
            return Array(self.assigned.subtracting(self.appPaused))
        }

        /// Records that `message` goes to the application.
        mutating func handOut(_ message: KafkaConsumerMessage) {
            self.lastDelivery = .now
            self.positions[message.topicPartition] = message.offset + 1
            self.progressEpoch &+= 1
        }
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
    private let configuration: KafkaConsumerConfiguration
    private let state = Mutex(State())
    /// Fetching paused for a full buffer resumes when the buffer is down to this.
    private var lowWater: Int { self.configuration.bufferCapacity / 2 }
    private let pollThread = PollThread(name: "kafka-consumer-poll")
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
        let callbacks = RDKafkaCallbacks(
            logger: logger,
            rebalance: { handle, code, list in weakSelf.value?.rebalance(handle: handle, code: code, list: list) },
            error: { error in
                if error.isFatal { weakSelf.value?.finish(failure: error) }
            }
        )
        self.client = try RDKafkaClient(kind: .consumer, properties: configuration.properties, callbacks: callbacks)
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

    // MARK: Poll thread

    private func pollOnce(timeout: Int32) {
        if self.closeIsDue() {
            self.closeNow()
            return
        }
        guard let message = rd_kafka_consumer_poll(self.client.handle, timeout) else { return }
        defer { rd_kafka_message_destroy(message) }
        let err = message.pointee.err
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            if err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return }
            if let fatal = self.client.fatalError() {
                self.logger.critical("consumer failed", metadata: ["error": "\(fatal)"])
                self.finish(failure: fatal)
                self.pollThread.requestStop()
                return
            }
            var text = "consumer error"
            if let payload = message.pointee.payload, message.pointee.len > 0 {
                text = String(
                    decoding: UnsafeRawBufferPointer(start: payload, count: message.pointee.len), as: UTF8.self)
            }
            self.logger.warning("consumer error", metadata: ["error": "\(KafkaError(rdCode: err, message: text))"])
            return
        }
        self.deliver(Self.convert(message))
    }

    private static func convert(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaConsumerMessage {
        let raw = message.pointee
        let topic = String(cString: rd_kafka_topic_name(raw.rkt))
        var key: [UInt8]? = nil
        if let keyPointer = raw.key {
            key = Array(UnsafeRawBufferPointer(start: keyPointer, count: raw.key_len))
        }
        var value: [UInt8] = []
        if let payload = raw.payload {
            value = Array(UnsafeRawBufferPointer(start: payload, count: raw.len))
        }
        var headers: [KafkaHeader] = []
        var headerList: OpaquePointer? = nil
        if rd_kafka_message_headers(message, &headerList) == RD_KAFKA_RESP_ERR_NO_ERROR, let headerList {
            var index = 0
            var name: UnsafePointer<CChar>? = nil
            var headerValue: UnsafeRawPointer? = nil
            var size = 0
            while rd_kafka_header_get_all(headerList, index, &name, &headerValue, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let bytes = headerValue.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
                headers.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "", value: bytes))
                index += 1
            }
        }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        return KafkaConsumerMessage(
            topic: topic,
            partition: raw.partition,
            offset: raw.offset,
            key: key,
            value: value,
            headers: headers,
            timestampMilliseconds: timestamp
        )
    }

    private func deliver(_ incoming: KafkaConsumerMessage) {
        var message = incoming
        let capacity = self.configuration.bufferCapacity
        let (waiter, toPause):
            (CheckedContinuation<Result<KafkaConsumerMessage?, KafkaError>, Never>?, [KafkaTopicPartition]) =
                self.state.withLock { state in
                    message.generation = state.generation
                    if let waiter = state.messageWaiter {
                        state.messageWaiter = nil
                        state.handOut(message)
                        return (waiter, [])
                    }
                    state.buffer.append(message)
                    if state.buffer.count >= capacity && !state.flowPaused {
                        state.flowPaused = true
                        return (nil, Array(state.assigned.subtracting(state.appPaused)))
                    }
                    return (nil, [])
                }
        waiter?.resume(returning: .success(message))
        if !toPause.isEmpty {
            self.logger.debug("consumer buffer full, pausing fetch", metadata: ["partitions": "\(toPause.count)"])
            self.setPaused(toPause, paused: true)
        }
    }

    /// Pause or resume on the poll thread (librdkafka waits for its fetcher to acknowledge).
    private func setPaused(_ partitions: [KafkaTopicPartition], paused: Bool) {
        guard !partitions.isEmpty else { return }
        let list = RDKafkaClient.makeList(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code =
            paused
            ? rd_kafka_pause_partitions(self.client.handle, list) : rd_kafka_resume_partitions(self.client.handle, list)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            self.logger.warning("pause/resume failed", metadata: ["error": "\(KafkaError(rdCode: code))"])
        }
    }

    private func flowResume() {
        let toResume: [KafkaTopicPartition] = self.state.withLock { state in
            state.resumeRequested = false
            return state.endFlowPause(lowWater: self.lowWater) ?? []
        }
        self.setPaused(toResume, paused: false)
    }

    fileprivate func rebalance(
        handle: OpaquePointer, code: rd_kafka_resp_err_t, list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>
    ) {
        let partitions = RDKafkaClient.entries(of: list).map(\.topicPartition)
        let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
        switch code {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            // Past this point librdkafka's assignor has its state (see `keepHandleIfUnsafeToDestroy`).
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle, list) {
                    self.logger.error(
                        "incremental assign failed", metadata: ["error": "\(KafkaError(consuming: error))"])
                }
            } else {
                let code = rd_kafka_assign(handle, list)
                if code != RD_KAFKA_RESP_ERR_NO_ERROR {
                    self.logger.error("assign failed", metadata: ["error": "\(KafkaError(rdCode: code))"])
                }
            }
            let (generation, toPause, toResume) = self.state.withLock {
                state -> (UInt64, [KafkaTopicPartition], [KafkaTopicPartition]) in
                state.generation += 1
                state.progressEpoch &+= 1
                state.assignmentSeen = true
                state.assigned.formUnion(partitions)
                if state.closeRequestedAt != nil {
                    // A join that completes after `close()`: the partitions are revoked at once,
                    // nothing is fetched from them meanwhile.
                    return (state.generation, partitions, [])
                }
                if let resumed = state.endFlowPause(lowWater: self.lowWater) {
                    return (state.generation, [], resumed)
                }
                return state.flowPaused ? (state.generation, partitions, []) : (state.generation, [], partitions)
            }
            // A fresh assignment starts fetching, unless the buffer is still full.
            self.setPaused(toPause, paused: true)
            self.setPaused(toResume, paused: false)
            // The application logs what it does with the partitions; this line is for debugging.
            self.logger.debug(
                "partitions assigned",
                metadata: ["partitions": "\(partitions.sorted())", "generation": "\(generation)"]
            )
            self.awaitListener(.assigned(partitions, generation: generation))
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let revoked = Set(partitions)
            let (generation, toResume) = self.state.withLock { state in
                state.generation += 1
                state.progressEpoch &+= 1
                state.buffer.removeAll { revoked.contains($0.topicPartition) }
                state.assigned.subtract(revoked)
                state.appPaused.subtract(revoked)
                for partition in revoked { state.positions[partition] = nil }
                // The dropped records may have been what kept fetching paused.
                return (state.generation, state.endFlowPause(lowWater: self.lowWater) ?? [])
            }
            self.setPaused(toResume, paused: false)
            self.logger.debug(
                "partitions revoked", metadata: ["partitions": "\(partitions.sorted())", "generation": "\(generation)"]
            )
            self.awaitListener(.revoked(partitions, generation: generation))
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle, list) {
                    self.logger.error(
                        "incremental unassign failed", metadata: ["error": "\(KafkaError(consuming: error))"])
                }
            } else {
                _ = rd_kafka_assign(handle, nil)
            }
        default:
            self.logger.error("rebalance error", metadata: ["error": "\(KafkaError(rdCode: code))"])
            self.state.withLock { state in
                state.generation += 1
                state.progressEpoch &+= 1
                state.buffer.removeAll()
                state.assigned.removeAll()
                state.appPaused.removeAll()
                state.positions.removeAll()
                _ = state.endFlowPause(lowWater: self.lowWater)  // nothing is assigned to resume
            }
            _ = rd_kafka_assign(handle, nil)
        }
    }

    /// Hands the event to `run()` and keeps the rebalance open until the listener returned,
    /// serving submitted work (commits, pauses) meanwhile.
    private func awaitListener(_ event: RebalanceWork.Event) {
        guard self.listener != nil else { return }
        let work = RebalanceWork(event: event) { [pollThread] in pollThread.signal() }
        let waiter: CheckedContinuation<RebalanceWork?, Never>? = self.state.withLock { state in
            if let waiter = state.rebalanceWaiter {
                state.rebalanceWaiter = nil
                return waiter
            }
            state.rebalanceQueue.append(work)
            return nil
        }
        waiter?.resume(returning: work)
        let deadline = ContinuousClock.now + self.configuration.rebalanceHandlerTimeout
        if !self.pollThread.runPending(until: { work.isDone }, deadline: deadline) {
            self.logger.error(
                "rebalance listener did not return in time; continuing the rebalance",
                metadata: ["timeout": "\(self.configuration.rebalanceHandlerTimeout)"]
            )
        }
    }

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

    // MARK: Application side

    func nextMessage() async throws(KafkaError) -> KafkaConsumerMessage? {
        let lowWater = self.lowWater
        let result: Result<KafkaConsumerMessage?, KafkaError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                enum Action {
                    case resume(Result<KafkaConsumerMessage?, KafkaError>, requestResume: Bool)
                    case wait
                }
                let action: Action = self.state.withLock { state in
                    if let message = state.buffer.popFirst() {
                        state.handOut(message)
                        var requestResume = false
                        if state.flowPaused && !state.resumeRequested && state.buffer.count <= lowWater {
                            state.resumeRequested = true
                            requestResume = true
                        }
                        return .resume(.success(message), requestResume: requestResume)
                    }
                    if state.finished {
                        return .resume(state.failure.map { .failure($0) } ?? .success(nil), requestResume: false)
                    }
                    if state.waiterCancelled {
                        state.waiterCancelled = false
                        return .resume(.success(nil), requestResume: false)
                    }
                    state.messageWaiter = continuation
                    return .wait
                }
                if case .resume(let result, let requestResume) = action {
                    continuation.resume(returning: result)
                    if requestResume {
                        self.pollThread.submit { [self] in self.flowResume() }
                    }
                }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Result<KafkaConsumerMessage?, KafkaError>, Never>? = self.state.withLock {
                state in
                if let waiter = state.messageWaiter {
                    state.messageWaiter = nil
                    return waiter
                }
                state.waiterCancelled = true
                return nil
            }
            waiter?.resume(returning: .success(nil))
        }
        self.state.withLock { $0.waiterCancelled = false }
        return try result.get()
    }

    func nextRebalanceWork() async -> RebalanceWork? {
        await withCheckedContinuation { continuation in
            let immediate: RebalanceWork?? = self.state.withLock { state in
                if let work = state.rebalanceQueue.popFirst() { return .some(work) }
                if state.rebalanceFinished { return .some(nil) }
                state.rebalanceWaiter = continuation
                return .none
            }
            if let immediate {
                continuation.resume(returning: immediate)
            }
        }
    }

    func close() {
        let (first, joining) = self.state.withLock { state in
            guard state.closeRequestedAt == nil else { return (false, false) }
            state.closeRequestedAt = .now
            return (true, state.subscribed && !state.assignmentSeen)
        }
        guard first else { return }
        if joining {
            let wait = self.configuration.closeJoinWait
            self.logger.debug("close waits for the join in progress", metadata: ["at_most": "\(wait)"])
        }
        // The poll loop closes, at its top level (`closeIsDue`): never from work it runs while a
        // rebalance callback waits for the listener. The empty job only wakes it.
        if !self.pollThread.submit({}) {
            self.finish(failure: nil)
        }
    }

    /// On the poll thread, between polls: whether to start `rd_kafka_consumer_close` now.
    ///
    /// A subscribed member that never had an assignment may be between its JoinGroup and
    /// SyncGroup answers. Closed there, librdkafka 2.0 aborts in `rd_kafka_destroy`
    /// (`rdkafka_sticky_assignor.c: Assertion 'assignor_state' failed`, librdkafka#4312, fixed
    /// in 2.3.0), and a member that closes before the coordinator answered its JoinGroup cannot
    /// leave (it does not know its member id yet): the group waits for it and may even assign it
    /// partitions until its session times out. So such a member keeps polling until its first
    /// assignment (librdkafka calls the rebalance callback once per completed rebalance, even
    /// for an empty assignment) and leaves only then — for at most `closeJoinWait`.
    private func closeIsDue() -> Bool {
        self.state.withLock { state in
            guard let asked = state.closeRequestedAt, !state.closing else { return false }
            let joining = state.subscribed && !state.assignmentSeen
            if joining && ContinuousClock.now - asked < self.configuration.closeJoinWait { return false }
            state.closing = true
            return true
        }
    }

    private func closeNow() {
        let code = rd_kafka_consumer_close(self.client.handle)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            self.logger.warning("consumer close", metadata: ["error": "\(KafkaError(rdCode: code))"])
        }
        self.logger.info("consumer closed, left the group")
        self.pollThread.requestStop()
    }

    /// On the poll thread, once it is done with the handle. A cooperative-sticky member that
    /// never had an assignment may have had its JoinGroup answered (the assignor chosen) but no
    /// SyncGroup (its state not created): librdkafka 2.0 aborts destroying such a handle
    /// (librdkafka#4312). Nothing tells the two apart from outside, so its handle is kept
    /// until the process exits — only after a join that did not complete within `closeJoinWait`.
    private func keepHandleIfUnsafeToDestroy() {
        let strategy = self.configuration.properties["partition.assignment.strategy"] ?? ""
        let neverAssigned = self.state.withLock { $0.subscribed && !$0.assignmentSeen }
        guard neverAssigned && strategy.contains("cooperative-sticky") else { return }
        self.client.keepHandleAtDeinit()
        self.logger.notice(
            "consumer closed before its first assignment; its librdkafka handle is kept until the process exits",
            metadata: ["reason": "librdkafka 2.0 aborts destroying it (librdkafka#4312)"]
        )
    }

    func pause(_ partitions: [KafkaTopicPartition]) async throws(KafkaError) {
        try await self.pollThread.perform { [self] () throws(KafkaError) in
            let assignedOnes = self.state.withLock { state in
                let assignedOnes = partitions.filter { state.assigned.contains($0) }
                state.appPaused.formUnion(assignedOnes)
                return assignedOnes
            }
            self.setPaused(assignedOnes, paused: true)
        }
    }

    func resume(_ partitions: [KafkaTopicPartition]) async throws(KafkaError) {
        try await self.pollThread.perform { [self] () throws(KafkaError) in
            let toResume: [KafkaTopicPartition] = self.state.withLock { state in
                let wasPaused = partitions.filter { state.appPaused.contains($0) }
                state.appPaused.subtract(wasPaused)
                // Flow control keeps everything paused until the buffer drains.
                return state.flowPaused ? [] : wasPaused.filter { state.assigned.contains($0) }
            }
            self.setPaused(toResume, paused: false)
        }
    }

    func seek(_ offsets: [KafkaTopicPartitionOffset]) async throws(KafkaError) {
        try await self.pollThread.perform { [self] () throws(KafkaError) in
            let partitions = Set(offsets.map(\.topicPartition))
            let toResume = self.state.withLock { state in
                state.buffer.removeAll { partitions.contains($0.topicPartition) }
                state.progressEpoch &+= 1
                for offset in offsets {
                    // A logical offset (beginning, end) is resolved by the fetcher: unknown here.
                    state.positions[offset.topicPartition] = offset.offset >= 0 ? offset.offset : nil
                }
                // The dropped records may have been what kept fetching paused.
                return state.endFlowPause(lowWater: self.lowWater) ?? []
            }
            // Resumed once the seek is done (or failed): fetching restarts at the new offset.
            defer { self.setPaused(toResume, paused: false) }
            let list = RDKafkaClient.makeList(offsets)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            if let error = rd_kafka_seek_partitions(self.client.handle, list, 5_000) {
                throw KafkaError(consuming: error)
            }
            if let error = RDKafkaClient.firstError(of: list) {
                throw error
            }
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

/// A weak reference that can be captured by `@Sendable` closures.
final class WeakBox<T: AnyObject & Sendable>: Sendable {
    private let storage = Mutex<WeakStorage?>(nil)

    private struct WeakStorage: @unchecked Sendable {
        weak var value: T?
    }

    var value: T? {
        get { self.storage.withLock { $0?.value } }
        set { self.storage.withLock { $0 = WeakStorage(value: newValue) } }
    }
}

// MARK: - Progress

extension ConsumerCore {
    var activity: KafkaConsumerActivity {
        self.state.withLock { state in
            KafkaConsumerActivity(
                lastDelivery: state.lastDelivery, positions: state.positions, buffered: state.buffer.count,
                fetchPaused: state.flowPaused
            )
        }
    }

    func checkProgress(stallAfter threshold: Duration, timeout: Duration) async -> KafkaConsumerProgress {
        let snapshot = self.state.withLock { state in
            (
                epoch: state.progressEpoch, partitions: state.assigned.subtracting(state.appPaused),
                positions: state.positions,
                lastDelivery: state.lastDelivery,
                watch: state.stallWatch.flatMap { $0.epoch == state.progressEpoch ? $0 : nil }
            )
        }
        if let watch = snapshot.watch, ContinuousClock.now - watch.since < threshold {
            // A wait is being timed and is not old enough: measuring could only end it early,
            // which a later check does as well.
            return KafkaConsumerProgress(
                lag: nil, waitingSince: watch.since, isStalled: false, lastDelivery: snapshot.lastDelivery)
        }
        let lag: [KafkaTopicPartition: Int64]
        do {
            lag = try await self.measureLag(of: snapshot.partitions, positions: snapshot.positions, timeout: timeout)
        } catch {
            return KafkaConsumerProgress(
                lag: nil, waitingSince: snapshot.watch?.since, isStalled: false, lastDelivery: snapshot.lastDelivery,
                error: error)
        }
        let measuredAt = ContinuousClock.now
        return self.state.withLock { state in
            let waiting = Set(lag.keys)
            guard state.progressEpoch == snapshot.epoch, !waiting.isEmpty else {
                // Nothing waits, or records were delivered (or the assignment moved) meanwhile.
                state.stallWatch = nil
                return KafkaConsumerProgress(
                    lag: lag, waitingSince: nil, isStalled: false, lastDelivery: state.lastDelivery)
            }
            if var watch = state.stallWatch, watch.epoch == snapshot.epoch, !watch.partitions.isDisjoint(with: waiting)
            {
                // The same partitions still wait and nothing moved since the wait was first seen.
                watch.partitions.formIntersection(waiting)
                state.stallWatch = watch
                return KafkaConsumerProgress(
                    lag: lag, waitingSince: watch.since, isStalled: measuredAt - watch.since >= threshold,
                    lastDelivery: state.lastDelivery
                )
            }
            state.stallWatch = StallWatch(since: measuredAt, epoch: snapshot.epoch, partitions: waiting)
            return KafkaConsumerProgress(
                lag: lag, waitingSince: measuredAt, isStalled: threshold <= .zero, lastDelivery: state.lastDelivery)
        }
    }

    /// Records waiting per partition (only partitions where some wait): high watermark minus
    /// the next offset to deliver — the position, else the committed offset, else (with
    /// `auto.offset.reset=earliest`) the low watermark. Partitions where either end is unknown
    /// are left out. Runs on the probe queue, off the consumer's own queues.
    private func measureLag(
        of partitions: Set<KafkaTopicPartition>, positions: [KafkaTopicPartition: Int64], timeout: Duration
    ) async throws(KafkaError) -> [KafkaTopicPartition: Int64] {
        guard !partitions.isEmpty else { return [:] }
        let earliest = self.configuration.autoOffsetReset == .earliest
        let result: Result<[KafkaTopicPartition: Int64], KafkaError> = await withCheckedContinuation { continuation in
            KafkaConsumer.probeQueue.async { [client = self.client] in
                let deadline = ContinuousClock.now + timeout
                continuation.resume(
                    returning: Result { () throws(KafkaError) in
                        try Self.lag(
                            of: partitions, positions: positions, earliestReset: earliest, client: client,
                            deadline: deadline)
                    })
            }
        }
        return try result.get()
    }

    private static func lag(
        of partitions: Set<KafkaTopicPartition>, positions: [KafkaTopicPartition: Int64], earliestReset: Bool,
        client: RDKafkaClient, deadline: ContinuousClock.Instant
    ) throws(KafkaError) -> [KafkaTopicPartition: Int64] {
        func remaining() -> Int32 { Int32(clamping: max((deadline - .now).milliseconds, 1)) }
        // ListOffsets with a special timestamp: `end` the high watermark (the last stable
        // offset under read_committed), `beginning` the low one.
        func listOffsets(
            _ partitions: [KafkaTopicPartition], at timestamp: Int64
        ) throws(KafkaError) -> [KafkaTopicPartition: Int64] {
            let list = RDKafkaClient.makeList(
                partitions.map { KafkaTopicPartitionOffset(topicPartition: $0, offset: timestamp) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let code = rd_kafka_offsets_for_times(client.handle, list, remaining())
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(rdCode: code) }
            var offsets: [KafkaTopicPartition: Int64] = [:]
            for index in 0..<Int(list.pointee.cnt) {
                let element = list.pointee.elems[index]
                guard element.err == RD_KAFKA_RESP_ERR_NO_ERROR, element.offset >= 0 else { continue }
                offsets[KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition)] =
                    element.offset
            }
            return offsets
        }

        var next = positions.filter { partitions.contains($0.key) }
        var unknown = partitions.filter { next[$0] == nil }.sorted()
        if !unknown.isEmpty {
            let list = RDKafkaClient.makeList(unknown)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let code = rd_kafka_committed(client.handle, list, remaining())
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(rdCode: code) }
            for entry in RDKafkaClient.entries(of: list) where entry.offset >= 0 {
                next[entry.topicPartition] = entry.offset
            }
            unknown = unknown.filter { next[$0] == nil }
        }
        if earliestReset && !unknown.isEmpty {
            next.merge(try listOffsets(unknown, at: KafkaTopicPartitionOffset.beginning)) { known, _ in known }
        }
        let known = next.keys.sorted()
        guard !known.isEmpty else { return [:] }
        var lag: [KafkaTopicPartition: Int64] = [:]
        for (partition, high) in try listOffsets(known, at: KafkaTopicPartitionOffset.end) {
            if let offset = next[partition], high > offset { lag[partition] = high - offset }
        }
        return lag
    }
}
