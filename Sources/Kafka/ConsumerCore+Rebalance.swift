import Crdkafka

/// Rebalances: the callback librdkafka calls on the poll thread, which keeps the rebalance
/// open until the application's listener (served by `run()`) has returned.
extension ConsumerCore {
    func rebalance(
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
                state.revokedLate.subtract(partitions)
                if state.closeRequestedAt != nil {
                    // A join that completes after `close()`: the partitions are revoked at once,
                    // nothing is fetched from them meanwhile.
                    return (state.generation, partitions, [])
                }
                // A fresh assignment fetches at once (with a full buffer, each of its partitions
                // is paused when it hands over a record). Only a partition this consumer paused
                // before it was revoked is still paused in librdkafka and needs a resume.
                let now = ContinuousClock.now
                for partition in partitions { state.fetchingSince[partition] = now }
                var toResume = partitions.filter { state.pausedInLibrdkafka.contains($0) }
                for partition in state.endFlowPause(lowWater: self.lowWater) ?? [] where !toResume.contains(partition) {
                    toResume.append(partition)
                }
                return (state.generation, [], toResume)
            }
            self.setPaused(toPause, paused: true)
            self.setPaused(toResume, paused: false)
            // The application logs what it does with the partitions; this line is for debugging.
            self.logger.debug(
                "partitions assigned",
                metadata: ["partitions": "\(partitions.sorted())", "generation": "\(generation)"]
            )
            if let late = self.awaitListener(.assigned(partitions, generation: generation)) {
                // The listener has not taken the partitions on yet: they fetch nothing until it
                // has (`resumeLateAssignments`). Their records would otherwise reach an
                // application that does not know them yet, and be skipped.
                let held = self.state.withLock { state in
                    let held = partitions.filter { state.assigned.contains($0) }
                    state.listenerPending.formUnion(held)
                    state.lateAssignments.append((late, held))
                    return held
                }
                self.hasLateAssignments.store(true, ordering: .releasing)
                self.setPaused(held, paused: true)
            }
            // A close waiting for this join goes ahead now, not when the poll times out.
            if self.state.withLock({ $0.closeRequestedAt != nil }) { self.client.wakePoll() }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let revoked = Set(partitions)
            let (generation, toResume) = self.state.withLock { state in
                state.generation += 1
                state.progressEpoch &+= 1
                state.buffer.removeAll { revoked.contains($0.topicPartition) }
                state.assigned.subtract(revoked)
                state.appPaused.subtract(revoked)
                state.listenerPending.subtract(revoked)
                state.flowPaused.subtract(revoked)
                for partition in revoked {
                    state.positions[partition] = nil
                    state.fetchingSince[partition] = nil
                    state.strandWatch[partition] = nil
                }
                // The dropped records may have been what kept fetching paused.
                return (state.generation, state.endFlowPause(lowWater: self.lowWater) ?? [])
            }
            self.setPaused(toResume, paused: false)
            self.logger.debug(
                "partitions revoked", metadata: ["partitions": "\(partitions.sorted())", "generation": "\(generation)"]
            )
            if self.awaitListener(.revoked(partitions, generation: generation)) != nil {
                // The listener is past its timeout and the member goes on: a commit of these
                // partitions it sends later goes out mid-join, with the old generation, which
                // librdkafka 2.0 answers by giving up every partition as lost (`committable`).
                self.state.withLock { $0.revokedLate.formUnion(revoked) }
            }
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
                state.listenerPending.removeAll()
                state.positions.removeAll()
                state.fetchingSince.removeAll()
                state.strandWatch.removeAll()
                _ = state.endFlowPause(lowWater: self.lowWater)  // nothing is assigned to resume
            }
            _ = rd_kafka_assign(handle, nil)
        }
    }

    /// Hands the event to `run()` and keeps the rebalance open until the listener returned,
    /// serving submitted work (commits, pauses) meanwhile. The listener's work if it did not
    /// return within `rebalanceHandlerTimeout`.
    @discardableResult
    private func awaitListener(_ event: RebalanceWork.Event) -> RebalanceWork? {
        guard self.listener != nil else { return nil }
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
            return work
        }
        return nil
    }

    /// Resumes the partitions of late assignments whose listener has returned since (unless the
    /// application or flow control paused them meanwhile). On the poll thread, each iteration.
    func resumeLateAssignments() {
        guard self.hasLateAssignments.load(ordering: .acquiring) else { return }
        let toResume: [KafkaTopicPartition] = self.state.withLock { state in
            defer { self.hasLateAssignments.store(!state.lateAssignments.isEmpty, ordering: .releasing) }
            // One read of each `isDone`: the listener may finish meanwhile.
            var done: [KafkaTopicPartition] = []
            var waiting: [(work: RebalanceWork, partitions: [KafkaTopicPartition])] = []
            for late in state.lateAssignments {
                if late.work.isDone { done += late.partitions } else { waiting.append(late) }
            }
            state.lateAssignments = waiting
            let returned = done.filter { state.listenerPending.remove($0) != nil }
            return returned.filter { state.mayFetch($0) }
        }
        if !toResume.isEmpty {
            self.logger.info(
                "the rebalance listener returned: fetching its partitions",
                metadata: ["partitions": "\(toResume.sorted())"])
        }
        self.setPaused(toResume, paused: false)
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
}
