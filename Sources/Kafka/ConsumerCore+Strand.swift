import Crdkafka

/// Stranded partitions: owned, not paused, records waiting, and librdkafka fetches nothing.
///
/// librdkafka 2.0 can lose a partition's fetch start: every pause and resume raises the
/// partition's version barrier, and a fetch start that an application's pause or resume
/// overtakes between its barrier and its enqueueing is dropped as outdated (librdkafka #2190,
/// #5591, open upstream). The partition then stays assigned with no fetcher: a resume does not
/// start one and a seek is refused (`_STATE`), until a rebalance moves it. The consumer pauses
/// a partition that hands over a record into a full buffer and resumes it when the buffer
/// drains (flow control), and resumes a partition assigned again that it had paused before,
/// so a partition can meet that race. Its one remedy within the
/// member is to give the partition up and take it again (`incremental_unassign`, then
/// `incremental_assign` at the position it had), which stops its fetcher and starts a new one.
extension ConsumerCore {
    /// Restarts the fetch of every owned partition that has been told to fetch for at least
    /// `after / 3`, whose librdkafka position has not moved for `after`, and where records
    /// wait (high watermark above the next offset) that were already seen waiting at a check
    /// `after / 3` or more before: at the position it had (or, if it fetched nothing since its
    /// assignment, its committed offset). A partition flow control holds is not checked (it
    /// fetches nothing on purpose), and no other partition waits for it: a stranded partition
    /// delivers nothing, so flow control never pauses it, and the check works while the buffer
    /// fills and drains. A partition restarted needlessly (a slow fetch, not a lost one)
    /// continues where it was. Under the eager protocol the partition is only reported (an
    /// `assign()` would restart them all). Returns the partitions restarted.
    func restartStranded(after threshold: Duration, timeout: Duration) async -> [KafkaTopicPartition] {
        let now = ContinuousClock.now
        let snapshot = self.state.withLock { state -> (candidates: [KafkaTopicPartition], generation: UInt64)? in
            guard state.closeRequestedAt == nil, !state.closing else { return nil }
            let candidates = state.unheld.subtracting(state.flowPaused).filter {
                partition in
                state.fetchingSince[partition].map { now - $0 >= threshold / 3 } ?? false
            }
            return (candidates.sorted(), state.generation)
        }
        guard let snapshot, !snapshot.candidates.isEmpty else { return [] }
        let fetched = self.librdkafkaPositions(snapshot.candidates)
        let suspects: [KafkaTopicPartition] = self.state.withLock { state in
            snapshot.candidates.filter { partition in
                let position = fetched[partition] ?? KafkaTopicPartitionOffset.invalidOffset
                guard let watch = state.strandWatch[partition], watch.position == position else {
                    state.strandWatch[partition] = StrandWatch(position: position, since: now)
                    return false
                }
                return now - watch.since >= threshold
            }
        }
        guard !suspects.isEmpty else { return [] }
        let next = self.state.withLock { state in
            Dictionary(
                uniqueKeysWithValues: suspects.compactMap { partition in
                    state.nextOffset(of: partition, polled: fetched[partition]).map { (partition, $0) }
                })
        }
        guard let lag = try? await self.measureLag(of: Set(suspects), positions: next, timeout: timeout) else {
            return []  // the cluster did not answer; the next check asks again
        }
        // Records waiting now may have been produced a moment ago: stranded only if they were
        // already seen waiting, at the same position, `after / 3` before.
        let measuredAt = ContinuousClock.now
        let stranded: [KafkaTopicPartition] = self.state.withLock { state in
            suspects.filter { partition in
                guard var watch = state.strandWatch[partition] else { return false }
                guard (lag[partition] ?? 0) > 0 else {
                    watch.waitingSince = nil
                    state.strandWatch[partition] = watch
                    return false
                }
                guard let waitingSince = watch.waitingSince else {
                    watch.waitingSince = measuredAt
                    state.strandWatch[partition] = watch
                    return false
                }
                return measuredAt - waitingSince >= threshold / 3
            }
        }
        guard !stranded.isEmpty else { return [] }
        return
            (try? await self.pollThread.perform { [self] () throws(KafkaError) in
                self.restart(stranded, measured: fetched, generation: snapshot.generation, lag: lag)
            }) ?? []
    }

    /// librdkafka's position (the offset after the last record polled) of each partition that
    /// has one; none for a partition that delivered nothing since its assignment or a seek.
    private func librdkafkaPositions(_ partitions: [KafkaTopicPartition]) -> [KafkaTopicPartition: Int64] {
        let list = RDKafkaClient.makeList(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        guard rd_kafka_position(self.client.handle, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return [:] }
        var positions: [KafkaTopicPartition: Int64] = [:]
        for entry in RDKafkaClient.entries(of: list) where entry.offset >= 0 {
            positions[entry.topicPartition] = entry.offset
        }
        return positions
    }

    /// On the poll thread, so no poll, rebalance, pause or resume runs meanwhile: librdkafka's
    /// position stands still, and the offset restarted at is exactly the next one not yet
    /// polled. Skips partitions that were revoked or paused since they were measured, or that
    /// polled a record meanwhile (`measured`: their positions then), and all after a rebalance.
    private func restart(
        _ stranded: [KafkaTopicPartition], measured: [KafkaTopicPartition: Int64], generation: UInt64,
        lag: [KafkaTopicPartition: Int64]
    ) -> [KafkaTopicPartition] {
        let now = ContinuousClock.now
        let polled = self.librdkafkaPositions(stranded)
        let (partitions, next): ([KafkaTopicPartition], [KafkaTopicPartition: Int64]) = self.state.withLock { state in
            guard state.generation == generation, state.closeRequestedAt == nil else {
                return ([], [:])
            }
            let still = stranded.filter {
                state.mayFetch($0) && polled[$0] == measured[$0]
            }
            var next: [KafkaTopicPartition: Int64] = [:]
            for partition in still {
                next[partition] = state.nextOffset(of: partition, polled: polled[partition])
                state.strandWatch[partition] = StrandWatch(
                    position: polled[partition] ?? KafkaTopicPartitionOffset.invalidOffset, since: now)
            }
            return (still, next)
        }
        guard !partitions.isEmpty else { return [] }
        let described = partitions.map { "\($0) (\(lag[$0] ?? 0) waiting)" }.joined(separator: ", ")
        let cooperative = String(cString: rd_kafka_rebalance_protocol(self.client.handle)) == "COOPERATIVE"
        guard cooperative else {
            self.logger.error(
                "partitions assigned to this member fetch nothing while records wait; restart the member",
                metadata: ["partitions": "\(described)"])
            return []
        }
        self.logger.warning(
            "restarting the fetch of partitions that fetched nothing while records wait (librdkafka #2190)",
            metadata: ["partitions": "\(described)"])
        // A stray pause flag would survive the reassignment; the resume goes first, so its
        // barrier is below the fetch stop's and the new fetch start's.
        self.setPaused(partitions, paused: false)
        let offsets = partitions.map { partition in
            KafkaTopicPartitionOffset(
                topicPartition: partition, offset: next[partition] ?? KafkaTopicPartitionOffset.invalidOffset)
        }
        let list = RDKafkaClient.makeList(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let error = rd_kafka_incremental_unassign(self.client.handle, list) {
            // Not in librdkafka's assignment (it let it go already): assigning it again suffices.
            self.logger.debug("unassign before restart failed", metadata: ["error": "\(KafkaError(consuming: error))"])
        }
        if let error = rd_kafka_incremental_assign(self.client.handle, list) {
            self.logger.error(
                "restarting the fetch failed", metadata: ["error": "\(KafkaError(consuming: error))"])
            return []
        }
        return partitions
    }
}

extension ConsumerCore.State {
    /// The next offset of `partition` not yet polled from librdkafka: its position there
    /// (`polled`), else — after an assignment, a seek or a restart, which reset it — the offset
    /// after the last record of the partition in the buffer or handed out, or a seek's target.
    /// Nil if none of them is known (the group's committed offset then applies).
    func nextOffset(of partition: KafkaTopicPartition, polled: Int64?) -> Int64? {
        if let polled, polled >= 0 { return polled }
        let buffered = self.buffer.last { $0.topicPartition == partition }.map { $0.offset + 1 }
        switch (buffered, self.positions[partition]) {
        case (let buffered?, let handedOut?): return max(buffered, handedOut)
        case (let buffered?, nil): return buffered
        case (nil, let handedOut): return handedOut
        }
    }
}
