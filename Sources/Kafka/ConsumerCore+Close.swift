import Crdkafka

/// Closing: asked from any thread, done by the poll loop between polls, so that a member
/// leaves its group cleanly (or, when leaving could crash librdkafka, keeps its handle).
extension ConsumerCore {
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
    func closeIsDue() -> Bool {
        self.state.withLock { state in
            guard let asked = state.closeRequestedAt, !state.closing else { return false }
            let joining = state.subscribed && !state.assignmentSeen
            if joining && ContinuousClock.now - asked < self.configuration.closeJoinWait { return false }
            state.closing = true
            return true
        }
    }

    func closeNow() {
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
    func keepHandleIfUnsafeToDestroy() {
        let strategy = self.configuration.properties["partition.assignment.strategy"] ?? ""
        let neverAssigned = self.state.withLock { $0.subscribed && !$0.assignmentSeen }
        guard neverAssigned && strategy.contains("cooperative-sticky") else { return }
        self.client.keepHandleAtDeinit()
        self.logger.notice(
            "consumer closed before its first assignment; its librdkafka handle is kept until the process exits",
            metadata: ["reason": "librdkafka 2.0 aborts destroying it (librdkafka#4312)"]
        )
    }
}
