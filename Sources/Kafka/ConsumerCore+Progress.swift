import Crdkafka
import Dispatch

/// Progress: what the consumer delivered, and whether records wait without being delivered
/// (the stall check behind readiness).
extension ConsumerCore {
    var activity: KafkaConsumerActivity {
        self.state.withLock { state in
            KafkaConsumerActivity(
                lastDelivery: state.lastDelivery, positions: state.positions, buffered: state.buffer.count,
                fetchPaused: !state.flowPaused.isEmpty
            )
        }
    }

    func checkProgress(stallAfter threshold: Duration, timeout: Duration) async -> KafkaConsumerProgress {
        let snapshot = self.state.withLock { state in
            (
                epoch: state.progressEpoch, partitions: state.unheld,
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
    func measureLag(
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
