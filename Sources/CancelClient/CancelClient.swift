public import CancelCore
import Foundation
import Kafka
public import Logging
public import Metrics
public import ServiceLifecycle
import Synchronization

/// What an upstream service written in Swift uses to cancel orders through the workers:
/// validated `enqueue`, `cancel` that waits for the command's outcome, and readers of the
/// outcomes topic — with the wire contract (key `provider:account`, Java-compatible murmur2
/// partitioner, idempotent producer with `acks=all`) built in.
///
/// The client is a swift-service-lifecycle `Service`: run it in the service's `ServiceGroup`,
/// or scope it with `withRunning`. `run()` first positions one shared outcome listener at the
/// end of the outcomes topic, then follows it; `enqueue` and `cancel` wait for that, so no
/// outcome of a command sent by this client is missed. Every `cancel` registers a waiter under
/// its idempotency key before its command is sent; the listener hands each outcome to the
/// waiters of its key, so thousands of cancels can wait at once on one consumer.
///
///     let client = try CancelClient(configuration: .init(bootstrapServers: "kafka:9092"), logger: logger)
///     // in the ServiceGroup with the service's other services, then:
///     let outcome = try await client.cancel(.fastpod(id: "F237-120723-000001", account: "shop-7"), timeout: .seconds(30))
public final class CancelClient: Service, Sendable {
    /// What the client was created with.
    public let configuration: CancelClientConfiguration
    private let logger: Logger
    private let producer: KafkaProducer
    private let waiters: OutcomeWaiters
    private let metrics: CancelClientMetrics
    /// Set by `run()` once sends may start: where the listener starts (nil without one), or why
    /// it could not start.
    private let started = OneShot<Result<OutcomePosition?, CancelClientError>>()
    /// Set when a shutdown is requested.
    private let stopSignal = OneShot<Bool>()
    private let lifecycle = Mutex(Lifecycle())

    private struct Lifecycle {
        var running = false
        var stopRequested = false
        /// Sends are refused from here on.
        var stopped = false
        var listener: KafkaConsumer?
    }

    /// Checks the configuration and creates the producer; nothing is sent or read before `run()`.
    public init(
        configuration: CancelClientConfiguration, logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws(CancelClientError) {
        if let problem = configuration.problem() { throw CancelClientError(.configuration, problem) }
        do {
            self.producer = try KafkaProducer(configuration: configuration.producer, logger: logger)
        } catch {
            throw CancelClientError(.configuration, "the producer refused its settings: \(error)", kafkaError: error)
        }
        self.configuration = configuration
        self.logger = logger
        self.waiters = OutcomeWaiters(rememberedCapacity: configuration.rememberedOutcomes)
        self.metrics = CancelClientMetrics(factory: metricsFactory)
    }

    /// Runs `body` with this configuration's client running, then shuts it down (flushing the
    /// producer), also when `body` throws. For tools, tests and services without a `ServiceGroup`.
    public static func withRunning<T>(
        configuration: CancelClientConfiguration, logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        _ body: (CancelClient) async throws -> T
    ) async throws -> T {
        let client = try CancelClient(configuration: configuration, logger: logger, metricsFactory: metricsFactory)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            let result: T
            do {
                result = try await body(client)
            } catch {
                client.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
            client.triggerGracefulShutdown()
            try await group.waitForAll()
            return result
        }
    }

    // MARK: Service

    /// Positions the outcome listener at the end of the outcomes topic, then follows it until a
    /// graceful shutdown (or cancellation): then refuses new sends, flushes the producer and
    /// ends every wait with `shutDown`. Throws when the listener cannot start or fails.
    public func run() async throws {
        let first = self.lifecycle.withLock { state in
            defer { state.running = true }
            return !state.running
        }
        guard first else { throw CancelClientError(.configuration, "run() was called more than once") }
        var failure: CancelClientError?
        var source: OutcomeSource?
        if self.configuration.listensForOutcomes {
            do {
                let opened = try await OutcomeSource.open(
                    self.configuration, from: .end, purpose: "listener", logger: self.logger)
                source = opened
                self.started.set(.success(.offsets(opened.start)))
                self.logger.info(
                    "cancel client listening for outcomes",
                    metadata: ["topic": "\(opened.topic)", "partitions": "\(opened.start.count)"])
            } catch {
                failure = error
                self.started.set(.failure(error))
                self.logger.error("cancel client could not start its outcome listener", metadata: ["error": "\(error)"])
            }
        } else {
            self.started.set(.success(nil))
        }
        if failure == nil {
            let closeAtOnce = self.lifecycle.withLock { state in
                state.listener = source?.consumer
                return state.stopRequested
            }
            if closeAtOnce { source?.consumer.close() }
            failure = await withGracefulShutdownHandler {
                await withTaskCancellationHandler {
                    if let source { return await self.listen(source) }
                    _ = await self.stopSignal.wait()  // until stopped, or cancelled
                    return nil
                } onCancel: {
                    self.triggerGracefulShutdown()
                }
            } onGracefulShutdown: {
                self.triggerGracefulShutdown()
            }
        }
        self.lifecycle.withLock { state in
            state.stopped = true
            state.listener = nil
        }
        await self.producer.shutdown(flushTimeout: self.configuration.messageTimeout)
        self.waiters.close()
        self.metrics.waiting(0)
        if let failure { throw failure }
    }

    /// The listener's consumer while `run()` follows the outcomes topic (for tests).
    var listenerConsumer: KafkaConsumer? { self.lifecycle.withLock { $0.listener } }

    /// Starts a shutdown, as a `ServiceGroup`'s graceful shutdown does: `run()` returns once the
    /// listener stopped and the producer flushed.
    public func triggerGracefulShutdown() {
        let listener = self.lifecycle.withLock { state in
            state.stopRequested = true
            return state.listener
        }
        self.stopSignal.set(true)
        listener?.close()
    }

    /// Hands every outcome to the waiters of its key until the listener is closed. Where it is
    /// is committed every second while it moves: a listener that loses its group membership (a
    /// refused heartbeat, a session timeout of a paused host) rejoins there, not at its start.
    /// A partition whose fetch librdkafka lost is restarted (`strandTimeout`).
    private func listen(_ source: OutcomeSource) async -> CancelClientError? {
        let position = ListenerPosition()
        return await withTaskGroup(of: CancelClientError?.self) { group in
            group.addTask {
                var committed: [Int32: Int64] = [:]
                let strandTimeout = self.configuration.strandTimeout
                var lastStrandCheck = ContinuousClock.now
                while (try? await Task.sleep(for: .seconds(1))) != nil {
                    if strandTimeout > .zero, ContinuousClock.now - lastStrandCheck >= strandTimeout / 3 {
                        lastStrandCheck = ContinuousClock.now
                        // Logged by the consumer.
                        _ = await source.consumer.restartStrandedPartitions(after: strandTimeout)
                    }
                    let next = position.next.withLock { $0 }
                    guard next != committed else { continue }
                    do {
                        try await source.consumer.commit(
                            next.map {
                                KafkaTopicPartitionOffset(topic: source.topic, partition: $0.key, offset: $0.value)
                            })
                        committed = next
                    } catch {
                        // Mid-rebalance or closing: the next second tries again.
                        self.logger.debug("outcome listener's position not committed", metadata: ["error": "\(error)"])
                    }
                }
                return nil
            }
            let ended = await self.follow(source, position: position)
            group.cancelAll()
            return ended
        }
    }

    private func follow(_ source: OutcomeSource, position: ListenerPosition) async -> CancelClientError? {
        do {
            for try await message in source.consumer.messages {
                if message.topic == source.topic {
                    position.next.withLock { $0[message.partition] = message.offset + 1 }
                }
                guard let received = source.outcome(of: message, logger: self.logger) else { continue }
                self.metrics.received(received.outcome.status)
                if self.waiters.deliver(received.outcome) > 0 { self.metrics.waiting(self.waiters.count) }
            }
            return nil
        } catch {
            self.logger.error("cancel client's outcome listener failed", metadata: ["error": "\(error)"])
            return .kafka(error, "following \(source.topic)")
        }
    }

    // MARK: Sending

    /// Sends `command` after checking it with the worker's own intake rules, keyed
    /// `provider:account`, and returns where Kafka stored it once every in-sync replica has it.
    ///
    /// Throws `invalidCommand` (nothing sent) for a command a worker would refuse, `kafka` when
    /// Kafka could not take it (it may or may not be stored: resending is safe), `notRunning` or
    /// `shutDown` when the client is not running.
    public func enqueue(_ command: CancelCommand) async throws(CancelClientError) -> EnqueuedCommand {
        let value = try self.validated(command)
        _ = try await self.ready(command.idempotencyKey)
        return try await self.send(command, value: value)
    }

    /// Sends `command` (as `enqueue`) and returns its outcome once a worker published it.
    ///
    /// The outcome is the first one published for the command's idempotency key after this
    /// client started listening: a terminal one, or `failed` for a dead-lettered command (an
    /// operator may replay it; its terminal outcome follows). A key whose terminal outcome this
    /// client already saw returns that outcome at once, without sending again.
    ///
    /// A worker publishes one outcome per key: a key completed (or dead-lettered) before this
    /// client listened — the service restarted, another replica sent it — gets none for a
    /// resend. `lookBack` also reads the outcomes published from that position on (`.beginning`,
    /// `.time(…)`: a consumer of its own for this call, reading every partition) and answers
    /// with the key's earlier outcome; a service resending after a restart passes it.
    ///
    /// When `timeout` passes first it throws `timedOut`: the command was sent and the cancel may
    /// still complete. Its outcome is published later — read it with `outcomes(for:from:)` from
    /// the error's `outcomesFrom` — and resending the same command is safe (one effect per key).
    public func cancel(
        _ command: CancelCommand, timeout: Duration, lookBack: OutcomePosition? = nil
    ) async throws(CancelClientError) -> CancelOutcome {
        let began = ContinuousClock.now
        let key = command.idempotencyKey
        guard self.configuration.listensForOutcomes else {
            throw CancelClientError(
                .listenerDisabled, "cancel needs the outcome listener (listensForOutcomes is false); nothing was sent",
                idempotencyKey: key)
        }
        let value = try self.validated(command)
        let listenerStart = try await self.ready(key, timeout: timeout)
        let ticket: UInt64
        switch self.waiters.register(OutcomeWaiters.Question(command.identity)) {
        case .known(let outcome):
            return outcome
        case .closed:
            throw CancelClientError(.shutDown, "the client was shut down; nothing was sent", idempotencyKey: key)
        case .ticket(let registered):
            ticket = registered
        }
        self.metrics.waiting(self.waiters.count)
        // The earlier outcomes go to the waiters as the listener's do: the one that answers this
        // command (`OutcomeWaiters.Question`) ends the wait.
        let lookingBack = lookBack.map { position in
            Task {
                let earlier = CancelOutcomes(
                    configuration: self.configuration, position: position, keys: nil, logger: self.logger)
                do {
                    for try await received in earlier where received.outcome.idempotencyKey == key {
                        self.waiters.deliver(received.outcome)
                    }
                } catch {
                    self.logger.debug(
                        "could not read the earlier outcomes",
                        metadata: ["idempotency_key": "\(key)", "error": "\(error)"])
                }
            }
        }
        defer { lookingBack?.cancel() }
        let enqueued: EnqueuedCommand
        do {
            enqueued = try await self.send(
                command, value: value, timeout: timeout - (ContinuousClock.now - began), outcomesFrom: listenerStart)
        } catch {
            self.waiters.withdraw(key, ticket)
            self.metrics.waiting(self.waiters.count)
            throw error
        }
        let result = await self.waiters.wait(key, ticket, timeout: timeout - (ContinuousClock.now - began))
        self.metrics.waiting(self.waiters.count)
        let stillComing =
            "the cancel may still complete: its outcome will be published on \(self.configuration.topics.outcomes)"
            + " (read it with outcomes(for:from:) from this error's outcomesFrom), and resending the same command is safe"
            + (lookBack == nil
                ? "; if the key was completed or dead-lettered before this client listened, no new outcome is"
                    + " published for it: resend with lookBack (e.g. .beginning) to read its earlier one" : "")
        switch result {
        case .success(let outcome):
            self.metrics.answered(outcome.status, after: ContinuousClock.now - began)
            return outcome
        case .failure(.timedOut):
            self.metrics.timedOut()
            self.logger.debug("cancel timed out", metadata: ["idempotency_key": "\(key)", "timeout": "\(timeout)"])
            throw CancelClientError(
                .timedOut, "no outcome for \(key) within \(timeout); \(stillComing)", idempotencyKey: key,
                enqueued: enqueued, outcomesFrom: listenerStart)
        case .failure(.closed):
            throw CancelClientError(
                .shutDown, "the client shut down before the outcome for \(key) arrived; \(stillComing)",
                idempotencyKey: key, enqueued: enqueued, outcomesFrom: listenerStart)
        case .failure(.cancelled):
            throw CancelClientError(
                .cancelled, "stopped waiting for the outcome for \(key); \(stillComing)", idempotencyKey: key,
                enqueued: enqueued, outcomesFrom: listenerStart)
        }
    }

    /// The record value, or `invalidCommand` with the worker's reason.
    private func validated(_ command: CancelCommand) throws(CancelClientError) -> [UInt8] {
        switch command.validatedRecord(maxRecordBytes: self.configuration.maxCommandBytes) {
        case .success(let value):
            return value
        case .failure(let error):
            self.metrics.refused(command.provider)
            throw CancelClientError(
                .invalidCommand, "\(error.description); nothing was sent", idempotencyKey: command.idempotencyKey)
        }
    }

    /// Waits until `run()` positioned the listener; returns where it starts. A caller's
    /// `timeout` shorter than `startTimeout` bounds the wait.
    private func ready(_ key: String, timeout: Duration? = nil) async throws(CancelClientError) -> OutcomePosition? {
        if self.lifecycle.withLock({ $0.stopped }) {
            throw CancelClientError(.shutDown, "the client was shut down; nothing was sent", idempotencyKey: key)
        }
        let wait = min(self.configuration.startTimeout, timeout ?? self.configuration.startTimeout)
        guard let started = await self.started.wait(timeout: wait) else {
            if Task.isCancelled {
                throw CancelClientError(.cancelled, "cancelled before sending; nothing was sent", idempotencyKey: key)
            }
            if let timeout, timeout < self.configuration.startTimeout {
                throw CancelClientError(
                    .timedOut,
                    "no outcome for \(key) within \(timeout): the client's run() had not started; nothing was sent",
                    idempotencyKey: key)
            }
            throw CancelClientError(
                .notRunning,
                "the client's run() did not start within \(self.configuration.startTimeout) (run the client in a"
                    + " ServiceGroup, or use CancelClient.withRunning); nothing was sent",
                idempotencyKey: key)
        }
        return try started.get()
    }

    /// `send`, waiting at most `timeout` for Kafka's acknowledgement: after that the record may
    /// still be stored (it stays in the producer's queue until `messageTimeout`) and `timedOut`
    /// says so. Cancelling the caller cancels the send as before.
    private func send(
        _ command: CancelCommand, value: [UInt8], timeout: Duration, outcomesFrom: OutcomePosition?
    ) async throws(CancelClientError) -> EnqueuedCommand {
        let key = command.idempotencyKey
        let result = OneShot<Result<EnqueuedCommand, CancelClientError>>()
        let sending = Task {
            do throws(CancelClientError) {
                result.set(.success(try await self.send(command, value: value)))
            } catch {
                result.set(.failure(error))
            }
        }
        let sent = await withTaskCancellationHandler {
            await result.wait(timeout: timeout)
        } onCancel: {
            sending.cancel()
        }
        if let sent { return try sent.get() }
        // Given up: a send still waiting for room in the producer's queue ends now, never
        // queued (left waiting, it was produced whenever room came: a stale copy, long after
        // its caller was told); a queued record is Kafka's until `messageTimeout`.
        sending.cancel()
        if Task.isCancelled {
            // The send's own answer says whether anything was sent, when it comes at once (a wait
            // for queue room ends on cancellation); a queued record's acknowledgement is not waited
            // for (up to `messageTimeout`). In a task of its own: this one is cancelled.
            if let answered = await Task(operation: { await result.wait(timeout: .milliseconds(200)) }).value {
                return try answered.get()
            }
            throw CancelClientError(
                .cancelled,
                "cancelled while waiting for Kafka's acknowledgement of \(key): the command may or may not be stored;"
                    + " resending the same command is safe",
                idempotencyKey: key, outcomesFrom: outcomesFrom)
        }
        throw CancelClientError(
            .timedOut,
            "no acknowledgement from Kafka for \(key) within \(timeout): the command may or may not be stored (one"
                + " still waiting for room in the producer's queue is dropped; a queued one is tried until"
                + " messageTimeout); its outcome, if any, comes on \(self.configuration.topics.outcomes), and"
                + " resending the same command is safe",
            idempotencyKey: key, outcomesFrom: outcomesFrom)
    }

    private func send(_ command: CancelCommand, value: [UInt8]) async throws(CancelClientError) -> EnqueuedCommand {
        let began = ContinuousClock.now
        let topic = self.configuration.topics.commands
        let kafkaKey = command.kafkaKey
        let report: KafkaDeliveryReport
        do {
            report = try await self.producer.send(
                KafkaProducerMessage(topic: topic, key: Array(kafkaKey.utf8), value: value))
        } catch {
            if error.code == KafkaError.Code.queueFull && Task.isCancelled {
                throw CancelClientError(
                    .cancelled, "cancelled while the producer's local queue was full; nothing was sent",
                    idempotencyKey: command.idempotencyKey)
            }
            self.metrics.sendFailed()
            throw CancelClientError(
                .kafka,
                "sending \(command.idempotencyKey) to \(topic): \(error) (it may or may not be stored; resending is safe)",
                idempotencyKey: command.idempotencyKey, kafkaError: error)
        }
        self.metrics.enqueued(command.provider, after: ContinuousClock.now - began)
        return EnqueuedCommand(
            idempotencyKey: command.idempotencyKey, kafkaKey: kafkaKey, topic: report.topic,
            partition: report.partition, offset: report.offset)
    }

    // MARK: Reading outcomes

    /// Where this client's listener started reading the outcomes topic (per-partition offsets),
    /// once `run()` positioned it: every outcome of a command this client sent is at or after
    /// it. Keep it to find those outcomes after a restart with `outcomes(for:from:)`.
    public var listenerStart: OutcomePosition? {
        guard case .success(let position) = self.started.value else { return nil }
        return position
    }

    /// Every outcome from `position` on, endlessly (see `CancelOutcomes`).
    public func outcomes(from position: OutcomePosition) -> CancelOutcomes {
        CancelOutcomes(configuration: self.configuration, position: position, keys: nil, logger: self.logger)
    }

    /// The outcomes of these idempotency keys from `position` on (default: where this client's
    /// listener started, or the beginning of the topic without one), copies dropped; ends once
    /// every key has a terminal outcome. `failed` outcomes are handed out too (a replay may
    /// follow them). Iterate with a deadline of your own: a key never sent never ends it.
    public func outcomes(for keys: some Sequence<String>, from position: OutcomePosition? = nil) -> CancelOutcomes {
        CancelOutcomes(
            configuration: self.configuration, position: position ?? self.listenerStart ?? .beginning,
            keys: Set(keys), logger: self.logger)
    }
}

/// The next offset the outcome listener reads, per partition.
private final class ListenerPosition: Sendable {
    let next = Mutex<[Int32: Int64]>([:])
}
