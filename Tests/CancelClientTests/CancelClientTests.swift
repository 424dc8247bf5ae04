import CancelClient
import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import MetricsTestKit
import Sandbox
import Testing

@Suite(
    "CancelClient on the mock cluster with a worker and the provider sandbox", .serialized, .timeLimit(.minutes(5)))
struct CancelClientTests {
    @Test("1,000 concurrent cancel calls each return their own outcome")
    func thousandConcurrentCancels() async throws {
        try await UpstreamFixture.with { fixture in
            let commands = (0..<1_000).map { index in
                let account = "demo-\(index % 3 + 1)"
                switch index % 3 {
                case 0: return CancelCommand.fastpod(id: "F-\(index)", account: account)
                case 1: return CancelCommand.fungies(orderIDOrNumber: "order-\(index)", account: account)
                default:
                    return CancelCommand.taker(
                        orderHash: "0xhash\(index)", takerAddress: "0xtaker", cancellationSuccess: true,
                        message: "unlock", account: account)
                }
            }
            let metrics = TestMetrics()
            try await fixture.withWorker {
                try await CancelClient.withRunning(
                    configuration: fixture.clientConfiguration, logger: testLogger, metricsFactory: metrics
                ) { client in
                    let outcomes = try await withThrowingTaskGroup(of: (CancelCommand, CancelOutcome).self) { group in
                        for command in commands {
                            group.addTask { (command, try await client.cancel(command, timeout: .seconds(120))) }
                        }
                        var outcomes: [(CancelCommand, CancelOutcome)] = []
                        for try await pair in group { outcomes.append(pair) }
                        return outcomes
                    }
                    #expect(outcomes.count == 1_000)
                    let mismatched = outcomes.filter { command, outcome in
                        outcome.idempotencyKey != command.idempotencyKey || outcome.commandID != command.commandID
                            || outcome.order != command.order.json || outcome.account != command.account
                    }
                    #expect(mismatched.isEmpty, "outcomes handed to another caller: \(mismatched.prefix(3))")
                    #expect(outcomes.allSatisfy { $0.1.status == .cancelled })
                }
            }
            #expect(fixture.sandbox.stats().total == 1_000, "one provider call per command")
            #expect(metrics.counterTotal(label: "cancel_client_commands_enqueued_total") == 1_000)
            let cancelled = try metrics.expectCounter(
                "cancel_client_outcomes_received_total", [("status", "cancelled")])
            #expect(cancelled.totalValue >= 1_000)
            #expect(try metrics.expectGauge("cancel_client_waiting_cancels").lastValue == 0, "no waiter left behind")
            #expect(
                try metrics.expectTimer("cancel_client_cancel_duration_seconds", [("status", "cancelled")]).values.count
                    == 1_000)
        }
    }

    @Test("a timeout throws the typed error; the outcome is found later, and a resend returns it without a second call")
    func timeoutThenOutcome() async throws {
        try await UpstreamFixture.with { fixture in
            let command = CancelCommand.fastpod(id: "F-late", account: "demo-1")
            try await CancelClient.withRunning(configuration: fixture.clientConfiguration, logger: testLogger) {
                client in
                // The producer's first send (metadata, its producer id) can take a second on the
                // mock cluster, and the timeout bounds it too: this one's acknowledgement is quick.
                _ = try await client.enqueue(.fastpod(id: "F-warm", account: "demo-1"))
                // No worker runs yet: the command waits on the topic.
                let error = try await #require(throws: CancelClientError.self) {
                    try await client.cancel(command, timeout: .seconds(1))
                }
                #expect(error.code == .timedOut)
                #expect(error.mayStillComplete)
                #expect(error.description.contains("may still complete"))
                let enqueued = try #require(error.enqueued)
                #expect(enqueued.idempotencyKey == "fastpod-F-late" && enqueued.kafkaKey == "fastpod:demo-1")
                #expect(error.outcomesFrom != nil && error.outcomesFrom == client.listenerStart)

                try await fixture.withWorker {
                    let later = try await collect(
                        client.outcomes(for: [command.idempotencyKey], from: error.outcomesFrom), timeout: .seconds(60))
                    #expect(later[command.idempotencyKey]?.status == .cancelled)
                    #expect(later[command.idempotencyKey]?.commandID == command.commandID)
                    // Resending after the timeout is safe: same outcome, no second provider call.
                    let resent = try await client.cancel(command, timeout: .seconds(60))
                    #expect(resent.outcomeID == later[command.idempotencyKey]?.outcomeID)
                }
            }
            #expect(fixture.sandbox.requests(provider: .fastpod, orderID: "F-late").count == 1)
        }
    }

    /// Review finding (CancelClient): a worker publishes one outcome per key; a resend of a
    /// key completed before this client listened (the service restarted, or another replica
    /// sent it) gets none. `cancel` timed out every time and said the outcome "will be
    /// published". With `lookBack` it reads the key's earlier outcomes too; without, the error
    /// says where to look.
    @Test("review finding: a resend of a key completed before this client listened returns its outcome with lookBack")
    func resendAfterRestartLooksBack() async throws {
        try await UpstreamFixture.with { fixture in
            let command = CancelCommand.fastpod(id: "F-before", account: "demo-1")
            try await fixture.withWorker {
                let first = try await CancelClient.withRunning(
                    configuration: fixture.clientConfiguration, logger: testLogger
                ) { client in try await client.cancel(command, timeout: .seconds(60)) }
                #expect(first.status == .cancelled)
                try await CancelClient.withRunning(configuration: fixture.clientConfiguration, logger: testLogger) {
                    client in
                    let error = try await #require(throws: CancelClientError.self) {
                        try await client.cancel(command, timeout: .seconds(3))
                    }
                    #expect(error.code == .timedOut)
                    #expect(error.description.contains("lookBack"), "\(error)")
                    let found = try await client.cancel(command, timeout: .seconds(60), lookBack: .beginning)
                    #expect(found.outcomeID == first.outcomeID && found.status == .cancelled)
                }
            }
            #expect(fixture.sandbox.requests(provider: .fastpod, orderID: "F-before").count == 1)
        }
    }

    /// Review finding: `cancel` took the first outcome published under its key, so a command
    /// reusing a key for another order (a custom key, or the default key across accounts) was
    /// told `cancelled` with the other order's outcome while the worker rejected it, and its
    /// resend got the same wrong answer from the remembered outcomes.
    @Test("regression: a cancel that reuses another order's key gets its own rejection, not that order's outcome")
    func reusedKeyGetsItsOwnAnswer() async throws {
        try await UpstreamFixture.with { fixture in
            let first = CancelCommand.fastpod(id: "F-first", account: "demo-2", idempotencyKey: "shared-K")
            let second = CancelCommand.fastpod(id: "F-second", account: "demo-1", idempotencyKey: "shared-K")
            try await fixture.withWorker {
                try await CancelClient.withRunning(configuration: fixture.clientConfiguration, logger: testLogger) {
                    client in
                    let firstAnswer = try await client.cancel(first, timeout: .seconds(60))
                    #expect(firstAnswer.status == .cancelled && firstAnswer.order == first.order.json)
                    let answer = try await client.cancel(second, timeout: .seconds(60))
                    #expect(answer.status == .rejected, "\(answer)")
                    #expect(answer.order == second.order.json && answer.account == "demo-1", "\(answer)")
                    #expect(answer.reason.contains("idempotency_key_reused"), "\(answer.reason)")
                    let again = try await client.cancel(second, timeout: .seconds(60))
                    #expect(again.outcomeID == answer.outcomeID, "the resend gets its own answer again")
                }
            }
            #expect(fixture.sandbox.requests(provider: .fastpod, orderID: "F-second").isEmpty)
        }
    }

    /// Review finding: `cancel(timeout:)` bounded only the wait for the outcome; the send waited
    /// for Kafka's acknowledgement up to `messageTimeout` first (and the start up to
    /// `startTimeout`): with the broker down, `cancel(timeout: 1 s)` threw `kafka` after 19.5 s.
    /// Here the broker answers 8 s late (down, its port rebound, could abort the test process).
    @Test("regression: cancel's timeout bounds the whole call, the wait for Kafka's acknowledgement included")
    func timeoutBoundsTheSend() async throws {
        try await UpstreamFixture.with { fixture in
            var configuration = fixture.clientConfiguration
            configuration.messageTimeout = .seconds(10)
            try await CancelClient.withRunning(configuration: configuration, logger: testLogger) { client in
                while client.listenerStart == nil { try await Task.sleep(for: .milliseconds(50)) }
                try fixture.cluster.setBrokerRoundTrip(1, .seconds(8))
                let started = ContinuousClock.now
                let error = try await #require(throws: CancelClientError.self) {
                    try await client.cancel(.fastpod(id: "F-down", account: "demo-1"), timeout: .seconds(1))
                }
                let took = ContinuousClock.now - started
                #expect(error.code == .timedOut, "\(error)")
                #expect(error.message.contains("may or may not be stored"), "\(error)")
                #expect(took < .seconds(3), "the call took \(took)")
                try fixture.cluster.setBrokerRoundTrip(1, .zero)
            }
        }
    }

    /// Review finding: the listener's group kept only the start committed before it joined, so
    /// a member that lost its membership (a heartbeat refused, a session timeout from a paused
    /// VM) rejoined at the start and read every outcome since the client started again: hours
    /// of backlog in front of the cancels waiting now. The listener now commits where it is.
    @Test("regression: a listener that loses its group membership continues where it was, not from its start")
    func listenerRejoinContinues() async throws {
        try await UpstreamFixture.with { fixture in
            let metrics = TestMetrics()
            try await fixture.withWorker {
                try await CancelClient.withRunning(
                    configuration: fixture.clientConfiguration, logger: testLogger, metricsFactory: metrics
                ) { client in
                    for index in 0..<20 {
                        _ = try await client.cancel(
                            .fastpod(id: "F-rejoin-\(index)", account: "demo-1"), timeout: .seconds(60))
                    }
                    #expect(metrics.counterTotal(label: "cancel_client_outcomes_received_total") == 20)
                    try await Task.sleep(for: .seconds(2))
                    // UNKNOWN_MEMBER_ID three times: the listener loses its membership and rejoins.
                    try fixture.cluster.pushRequestErrors(.heartbeat, errors: [25, 25, 25])
                    try await Task.sleep(for: .seconds(15))
                    #expect(
                        metrics.counterTotal(label: "cancel_client_outcomes_received_total") == 20,
                        "outcomes read again after the rejoin")
                }
            }
        }
    }

    @Test("a client restarted mid-way finds the outcomes of the keys it enqueued before")
    func restartedClientFindsEarlierOutcomes() async throws {
        try await UpstreamFixture.with { fixture in
            let startedAt = Date()
            let waited = (0..<5).map { CancelCommand.fungies(orderIDOrNumber: "waited-\($0)", account: "demo-2") }
            let leftBehind = (0..<5).map { CancelCommand.fastpod(id: "left-\($0)", account: "demo-3") }
            let keys = Set((waited + leftBehind).map(\.idempotencyKey))
            // The outcomes left behind come 1 s after their enqueue: a slow worker, as in a
            // loaded full run, where one came after the second client's listener had started.
            fixture.sandbox.addFault(
                SandboxFault(.latency(.fixed(milliseconds: 1_000)), provider: .fastpod, account: "demo-3"))
            try await fixture.withWorkerHandle { worker in
                // The first run: waits for some cancels, enqueues others and stops before their outcomes.
                let saved = try await CancelClient.withRunning(
                    configuration: fixture.clientConfiguration, logger: testLogger
                ) { client in
                    for (index, command) in waited.enumerated() {
                        let outcome = try await fixture.cancel(
                            command, orderID: "waited-\(index)", with: client, worker: worker, timeout: .seconds(60))
                        #expect(outcome.status == .cancelled)
                    }
                    for command in leftBehind { _ = try await client.enqueue(command) }
                    return try #require(client.listenerStart)
                }
                // The second run: a new client, whose own listener starts after all of them (once
                // they are on the topic: with the worker slower than the restart, some came after).
                let published = try await eventually(timeout: .seconds(60)) {
                    try await fixture.recordCounts(TopicNames.default.outcomes).values.reduce(0, +) >= keys.count
                }
                #expect(published, "every outcome on the topic before the second client starts")
                try await CancelClient.withRunning(configuration: fixture.clientConfiguration, logger: testLogger) {
                    client in
                    let fromOffsets = try await collect(client.outcomes(for: keys, from: saved), timeout: .seconds(60))
                    #expect(Set(fromOffsets.keys) == keys)
                    #expect(fromOffsets.values.allSatisfy { $0.status == .cancelled })
                    let fromTime = try await collect(
                        client.outcomes(for: keys, from: .time(startedAt.addingTimeInterval(-60))),
                        timeout: .seconds(60))
                    #expect(Set(fromTime.keys) == keys)
                    // From its listener's start, none of them: read until the outcome of a command
                    // enqueued now, which shows the reader got past that start.
                    let later = CancelCommand.fastpod(id: "later", account: "demo-1")
                    #expect(try await eventually { client.listenerStart != nil }, "the listener started")
                    let start: OutcomePosition = try #require(client.listenerStart)
                    let sinceStart = client.outcomes(for: keys.union([later.idempotencyKey]), from: start)
                    _ = try await client.enqueue(later)
                    let seen = try await collect(sinceStart, until: later.idempotencyKey, timeout: .seconds(60))
                    #expect(seen == [later.idempotencyKey], "its own listener started after every one of them")
                }
            }
        }
    }

    @Test("an invalid command throws before anything is produced; a valid one lands on its user's murmur2 partition")
    func invalidCommandProducesNothing() async throws {
        try await UpstreamFixture.with { fixture in
            let metrics = TestMetrics()
            try await CancelClient.withRunning(
                configuration: fixture.clientConfiguration, logger: testLogger, metricsFactory: metrics
            ) { client in
                let mismatched = CancelCommand(
                    commandID: "c-1", idempotencyKey: "k-1", provider: .fastpod, account: "demo-1",
                    order: .feee(orderNo: "1"), requestedAt: Date())
                let controlInKey = CancelCommand.fastpod(id: "F-1", account: "demo-1", idempotencyKey: "key\u{0}")
                let notAnInteger = CancelCommand(order: .futures(id: "12abc"), account: "demo-1")
                for command in [mismatched, controlInKey, notAnInteger] {
                    let error = try await #require(throws: CancelClientError.self) {
                        try await client.enqueue(command)
                    }
                    #expect(error.code == .invalidCommand && !error.mayStillComplete, "\(error)")
                    let viaCancel = try await #require(throws: CancelClientError.self) {
                        try await client.cancel(command, timeout: .seconds(5))
                    }
                    #expect(viaCancel.code == .invalidCommand)
                }
                #expect(try await fixture.recordCounts(TopicNames.default.commands).values.allSatisfy { $0 == 0 })
                #expect(
                    metrics.counterTotal(label: "cancel_client_commands_refused_total") == 6,
                    "three commands, each refused by enqueue and by cancel")

                let valid = CancelCommand.futures(orderID: 33_308_749_002_645_666, account: "trader-42")
                let enqueued = try await client.enqueue(valid)
                #expect(enqueued.topic == TopicNames.default.commands && enqueued.offset == 0)
                #expect(
                    enqueued.partition
                        == KafkaPartitioner.partition(
                            forKey: Array("futures:trader-42".utf8), partitionCount: fixture.partitions))
            }
        }
    }

    /// The producer's local queue full (a stalled broker): an enqueue whose caller gives up
    /// stops at once and says that nothing was sent. (Before, a cancelled enqueue tried again
    /// without pause until the queue had room, and then sent the command.)
    @Test(
        "an enqueue cancelled while the producer's queue is full throws cancelled, nothing sent; the queued ones land")
    func cancelledWhileQueueFull() async throws {
        try await UpstreamFixture.with(partitions: 1) { fixture in
            var configuration = fixture.clientConfiguration
            configuration.kafka.additionalProperties["queue.buffering.max.messages"] = "2"
            try await CancelClient.withRunning(configuration: configuration, logger: testLogger) { client in
                // Started (its outcome listener positioned) before the broker stalls.
                _ = try await client.enqueue(.fastpod(id: "Q-warm", account: "demo-1"))
                try fixture.cluster.setBrokerRoundTrip(1, .seconds(6))
                let queued = Task {
                    try await withThrowingTaskGroup(of: EnqueuedCommand.self) { group in
                        for index in 0..<2 {
                            group.addTask { try await client.enqueue(.fastpod(id: "Q-\(index)", account: "demo-1")) }
                        }
                        return try await group.reduce(into: []) { $0.append($1) }
                    }
                }
                try await Task.sleep(for: .milliseconds(500))
                let late = Task { () -> CancelClientError? in
                    do throws(CancelClientError) {
                        _ = try await client.enqueue(.fastpod(id: "Q-late", account: "demo-1"))
                        return nil
                    } catch {
                        return error
                    }
                }
                try await Task.sleep(for: .seconds(1))
                let cancelled = ContinuousClock.now
                late.cancel()
                let error = await late.value
                #expect(ContinuousClock.now - cancelled < .seconds(1), "it stopped while the queue was still full")
                #expect(error?.code == .cancelled, "\(String(describing: error))")
                #expect(
                    error?.message.contains("queue was full; nothing was sent") == true, "\(String(describing: error))")
                #expect(error?.enqueued == nil && error?.mayStillComplete == false)

                try fixture.cluster.setBrokerRoundTrip(1, .zero)
                #expect(try await queued.value.count == 2)
                #expect(
                    try await fixture.recordCounts(TopicNames.default.commands).values.reduce(0, +) == 3,
                    "the first command and the two queued ones; not the cancelled one")
            }
        }
    }

    /// Review finding (CancelClient): a `cancel` whose caller was cancelled waited for Kafka's
    /// acknowledgement anyway (up to `messageTimeout`), and one that timed out left its send
    /// waiting for room in the producer's queue, to be produced whenever room came: stale
    /// copies after an outage, each holding its record meanwhile.
    @Test(
        "review finding: a cancelled cancel does not wait for the acknowledgement; a timed-out one leaves no send behind"
    )
    func abandonedSendsStop() async throws {
        try await UpstreamFixture.with(partitions: 1) { fixture in
            var configuration = fixture.clientConfiguration
            configuration.kafka.additionalProperties["queue.buffering.max.messages"] = "1"
            try await CancelClient.withRunning(configuration: configuration, logger: testLogger) { client in
                _ = try await client.enqueue(.fastpod(id: "S-warm", account: "demo-1"))
                try fixture.cluster.setBrokerRoundTrip(1, .seconds(6))
                // Queued (the queue's one place), its acknowledgement 6 s away; its caller gives up.
                let acked = Task { () -> CancelClientError? in
                    do throws(CancelClientError) {
                        _ = try await client.cancel(.fastpod(id: "S-acked", account: "demo-1"), timeout: .seconds(30))
                        return nil
                    } catch {
                        return error
                    }
                }
                try await Task.sleep(for: .milliseconds(500))
                let cancelled = ContinuousClock.now
                acked.cancel()
                let error = await acked.value
                #expect(ContinuousClock.now - cancelled < .seconds(2), "waited \(ContinuousClock.now - cancelled)")
                #expect(error?.code == .cancelled, "\(String(describing: error))")
                // No room in the queue: this one times out waiting for it.
                let timedOut = try await #require(throws: CancelClientError.self) {
                    try await client.cancel(.fastpod(id: "S-late", account: "demo-1"), timeout: .milliseconds(500))
                }
                #expect(timedOut.code == .timedOut)
                try fixture.cluster.setBrokerRoundTrip(1, .zero)
                #expect(
                    try await eventually(timeout: .seconds(20)) {
                        try await fixture.recordCounts(TopicNames.default.commands).values.reduce(0, +) >= 2
                    })
                try await Task.sleep(for: .seconds(2))
                #expect(
                    try await fixture.recordCounts(TopicNames.default.commands).values.reduce(0, +) == 2,
                    "the first command and the queued one; not the one whose call timed out before it was queued")
            }
        }
    }

    @Test("settings that would break the wire contract are refused")
    func contractSettingsRefused() throws {
        var configuration = CancelClientConfiguration(bootstrapServers: "127.0.0.1:1")
        configuration.kafka.additionalProperties["partitioner"] = "consistent_random"
        let error = try #require(throws: CancelClientError.self) {
            _ = try CancelClient(configuration: configuration, logger: testLogger)
        }
        #expect(error.code == .configuration && error.message.contains("partitioner"))
        configuration.kafka.additionalProperties = ["partitioner": "murmur2_random", "acks": "1"]
        #expect(throws: CancelClientError.self) {
            _ = try CancelClient(configuration: configuration, logger: testLogger)
        }
    }
}
