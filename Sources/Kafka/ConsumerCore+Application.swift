import Crdkafka

/// The application's side: records out of the buffer, and pause, resume and seek (run on the
/// poll thread, where librdkafka expects them).
extension ConsumerCore {
    func nextMessage() async throws(KafkaError) -> KafkaConsumerMessage? {
        let lowWater = self.lowWater
        // A buffered record is handed out without suspending: a suspension re-enqueues the task
        // on its executor even when the continuation is resumed at once (issue 14: one task
        // switch per record).
        if let (message, requestResume) = self.state.withLock({ $0.takeBuffered(lowWater: lowWater) }) {
            if requestResume { self.pollThread.submit { [self] in self.flowResume() } }
            return message
        }
        let result: Result<KafkaConsumerMessage?, KafkaError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                enum Action {
                    case resume(Result<KafkaConsumerMessage?, KafkaError>, requestResume: Bool)
                    case wait
                }
                let action: Action = self.state.withLock { state in
                    if let (message, requestResume) = state.takeBuffered(lowWater: lowWater) {
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
                // Flow control keeps its partitions paused until the buffer drains.
                return wasPaused.filter { state.mayFetch($0) }
            }
            self.setPaused(toResume, paused: false)
        }
    }

    func seek(_ offsets: [KafkaTopicPartitionOffset], confirmationWait: Duration) async throws(KafkaError) {
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
            let waitMilliseconds = Int32(clamping: max(1, confirmationWait.milliseconds))
            if let error = rd_kafka_seek_partitions(self.client.handle, list, waitMilliseconds) {
                let error = KafkaError(consuming: error)
                // Issued but not yet confirmed: the version barrier is set, the seek stands.
                guard error.code == KafkaError.Code.timedOut else { throw error }
                self.logger.notice(
                    "seek issued, not yet confirmed by librdkafka; it is applied when the partition's broker thread runs",
                    metadata: [
                        "partitions": .stringConvertible(partitions.count),
                        "wait_ms": .stringConvertible(waitMilliseconds),
                    ])
                return
            }
            if let error = RDKafkaClient.firstError(of: list) {
                throw error
            }
        }
    }

    /// Of `offsets`, those this member may commit: all but those of partitions revoked while
    /// the listener was past its timeout (`revokedLate`).
    func committable(
        _ offsets: [KafkaTopicPartitionOffset]
    ) -> (
        kept: [KafkaTopicPartitionOffset], dropped: [KafkaTopicPartition]
    ) {
        self.state.withLock { state in
            guard !state.revokedLate.isEmpty else { return (offsets, []) }
            var kept: [KafkaTopicPartitionOffset] = []
            var dropped: [KafkaTopicPartition] = []
            for offset in offsets {
                if state.revokedLate.contains(offset.topicPartition) {
                    dropped.append(offset.topicPartition)
                } else {
                    kept.append(offset)
                }
            }
            return (kept, dropped)
        }
    }

    /// Whether every one of `partitions` is assigned to this member now.
    func owns(_ partitions: [KafkaTopicPartition]) -> Bool {
        self.state.withLock { state in partitions.allSatisfy { state.assigned.contains($0) } }
    }
}
