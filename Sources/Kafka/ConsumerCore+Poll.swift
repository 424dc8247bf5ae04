import Crdkafka

/// The poll thread's side: each poll takes one message (or error) from librdkafka into the
/// buffer, and pauses the partitions that hand over records while the buffer is full.
extension ConsumerCore {
    func pollOnce(timeout: Int32) {
        if self.closeIsDue() {
            self.closeNow()
            return
        }
        self.resumeLateAssignments()
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
        self.deliver(self.convert(message))
    }

    private func convert(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaConsumerMessage {
        let raw = message.pointee
        let (topic, headers) = self.interner.withLock { ($0.topic(raw.rkt), $0.headers(message)) }
        var key: [UInt8]? = nil
        if let keyPointer = raw.key {
            key = Array(UnsafeRawBufferPointer(start: keyPointer, count: raw.key_len))
        }
        var value: [UInt8] = []
        if let payload = raw.payload {
            value = Array(UnsafeRawBufferPointer(start: payload, count: raw.len))
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
            (CheckedContinuation<Result<KafkaConsumerMessage?, KafkaError>, Never>?, KafkaTopicPartition?) =
                self.state.withLock { state in
                    message.generation = state.generation
                    if let waiter = state.messageWaiter {
                        state.messageWaiter = nil
                        state.handOut(message)
                        return (waiter, nil)
                    }
                    return (nil, state.buffer(message, capacity: capacity))
                }
        waiter?.resume(returning: .success(message))
        if let toPause {
            self.logger.debug("consumer buffer full, pausing the partition", metadata: ["partition": "\(toPause)"])
            self.setPaused([toPause], paused: true)
        }
    }

    /// Pause or resume on the poll thread (librdkafka waits for its fetcher to acknowledge).
    func setPaused(_ partitions: [KafkaTopicPartition], paused: Bool) {
        guard !partitions.isEmpty else { return }
        let now = ContinuousClock.now
        self.state.withLock { state in
            if paused {
                state.pausedInLibrdkafka.formUnion(partitions)
                return
            }
            state.pausedInLibrdkafka.subtract(partitions)
            for partition in partitions where state.assigned.contains(partition) {
                state.fetchingSince[partition] = now
            }
        }
        let list = RDKafkaClient.makeList(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code =
            paused
            ? rd_kafka_pause_partitions(self.client.handle, list) : rd_kafka_resume_partitions(self.client.handle, list)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            self.logger.warning("pause/resume failed", metadata: ["error": "\(KafkaError(rdCode: code))"])
        }
    }

    func flowResume() {
        let toResume: [KafkaTopicPartition] = self.state.withLock { state in
            state.resumeRequested = false
            return state.endFlowPause(lowWater: self.lowWater) ?? []
        }
        self.setPaused(toResume, paused: false)
    }
}
