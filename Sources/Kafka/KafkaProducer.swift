import Crdkafka
import Dispatch
public import Logging
import Synchronization

/// An idempotent Kafka producer. `send` enqueues a record and suspends until the cluster
/// acknowledged it (or librdkafka gave up), so callers can have thousands of sends in flight
/// at once without a round trip each: librdkafka batches them.
///
/// Delivery reports are served by a dedicated poll thread. Call `shutdown()` before dropping
/// the producer, so queued records are flushed.
public final class KafkaProducer: Sendable {
    let core: ProducerCore

    /// Creates the producer and starts its poll thread.
    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        // The callbacks outlive neither the client nor the core; `Weak` breaks the cycle
        // client → callbacks → core → client.
        let weakCore = WeakBox<ProducerCore>()
        let client = try RDKafkaClient(
            kind: .producer,
            properties: configuration.properties,
            callbacks: RDKafkaCallbacks(
                logger: logger, error: { error in if error.isFatal { weakCore.value?.fail(error) } })
        )
        self.core = ProducerCore(client: client, configuration: configuration, logger: logger)
        weakCore.value = self.core
        self.core.start()
    }

    /// Waits until the producer fails for good — a fatal error of the idempotent producer (for
    /// example an out-of-order sequence number or a fenced producer id): from then on librdkafka
    /// refuses every record, so the process must start over with a new producer — and returns
    /// that error; nil if the waiting task is cancelled first. Every `send` throws it too, at once.
    public func failure() async -> KafkaError? {
        await self.core.failure()
    }

    deinit {
        self.core.stopWithoutFlush()
    }

    /// Sends one record and returns where it was stored. Waits (without blocking a thread) while
    /// librdkafka's local queue is full, and tries again when delivery reports made room (or
    /// after a poll interval without any). Cancelled while it waits for room, it throws a
    /// `queueFull` error: the record was not queued. Once queued, a record is not taken back:
    /// `send` then waits for its delivery report whatever happens to the task.
    public func send(_ message: KafkaProducerMessage) async throws(KafkaError) -> KafkaDeliveryReport {
        try await self.core.send(message)
    }

    /// Waits until every record sent so far was acknowledged or failed.
    public func flush(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        try await self.core.flush(timeout: timeout)
    }

    /// Flushes outstanding records (up to `flushTimeout`), then stops the poll thread. Records
    /// still unacknowledged after the timeout fail their `send` with a purge error.
    public func shutdown(flushTimeout: Duration = .seconds(30)) async {
        await self.core.shutdown(flushTimeout: flushTimeout)
    }

    /// How many partitions `topic` has, from the cluster's metadata (a round trip; cache it).
    public func partitionCount(topic: String, timeout: Duration = .seconds(5)) async throws(KafkaError) -> Int {
        let client = self.core.client
        let result: Result<Int, KafkaError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var metadata: UnsafePointer<rd_kafka_metadata>? = nil
                let code = rd_kafka_metadata(client.handle, 1, nil, &metadata, Int32(clamping: timeout.milliseconds))
                guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                    continuation.resume(returning: .failure(KafkaError(rdCode: code)))
                    return
                }
                defer { rd_kafka_metadata_destroy(metadata) }
                for index in 0..<Int(metadata.pointee.topic_cnt) {
                    let entry = metadata.pointee.topics[index]
                    if String(cString: entry.topic) == topic, entry.err == RD_KAFKA_RESP_ERR_NO_ERROR,
                        entry.partition_cnt > 0
                    {
                        continuation.resume(returning: .success(Int(entry.partition_cnt)))
                        return
                    }
                }
                continuation.resume(
                    returning: .failure(
                        KafkaError(
                            rdCode: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, message: "topic \(topic) does not exist")))
            }
        }
        return try result.get()
    }

    /// How many times a `send` found librdkafka's local queue full and had to wait (for tests).
    package var queueFullAttempts: Int {
        self.core.queueFullAttempts.load(ordering: .relaxed)
    }

    /// Number of records waiting in librdkafka's queues (sent but not yet acknowledged).
    public var outstandingCount: Int {
        Int(rd_kafka_outq_len(self.core.client.handle))
    }
}

final class ProducerCore: Sendable {
    let client: RDKafkaClient
    private let configuration: KafkaProducerConfiguration
    private let logger: Logger
    private let pollThread: PollThread
    private let isShutDown = Atomic<Bool>(false)
    /// Sends between their shutdown check and librdkafka taking the record, and whether new ones
    /// are refused: `shutdown` waits for those under way before it flushes, so none produces
    /// after the poll thread stopped serving reports (its `send` would wait for ever).
    private let producing = Mutex<(active: Int, closed: Bool)>((0, false))
    /// Tests only: runs inside that window, to widen it.
    let beforeProduce = Mutex<(@Sendable () -> Void)?>(nil)
    let queueFullAttempts = Atomic<Int>(0)
    let room = QueueRoom()

    init(client: RDKafkaClient, configuration: KafkaProducerConfiguration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
        self.pollThread = PollThread(name: "kafka-producer")
        self.pollThread.setWake { [weak client] in client?.wakePoll() }
    }

    func start() {
        let timeout = Int32(clamping: self.configuration.pollInterval.milliseconds)
        self.pollThread.start(
            iteration: { [client, room] in
                _ = rd_kafka_poll(client.handle, timeout)
                // One event carries a batch's reports: as many senders wake as records left.
                room.polled(served: client.callbacks.deliveryReports.exchange(0, ordering: .relaxed))
            },
            finish: { [client, room] in
                // Fail whatever is still queued so no `send` waits forever, then serve those reports.
                rd_kafka_purge(client.handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
                _ = rd_kafka_poll(client.handle, 0)
                room.close()
            }
        )
    }

    func send(_ message: KafkaProducerMessage) async throws(KafkaError) -> KafkaDeliveryReport {
        while true {
            if let fatal = self.fatal.withLock({ $0.error }) { throw fatal }
            if self.isShutDown.load(ordering: .relaxed) {
                throw KafkaError.shutDown("producer")
            }
            let generation = self.room.generation
            let result: Result<KafkaDeliveryReport, KafkaError>? = await withCheckedContinuation { continuation in
                let open = self.producing.withLock { producing in
                    if producing.closed { return false }
                    producing.active += 1
                    return true
                }
                guard open else {
                    continuation.resume(returning: .failure(KafkaError.shutDown("producer")))
                    return
                }
                self.beforeProduce.withLock { $0 }?()
                let box = Unmanaged.passRetained(DeliveryBox(continuation))
                let code = self.produce(message, opaque: box.toOpaque())
                self.producing.withLock { $0.active -= 1 }
                if code != RD_KAFKA_RESP_ERR_NO_ERROR {
                    box.release()
                    if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                        continuation.resume(returning: nil)
                    } else {
                        continuation.resume(
                            returning: .failure(
                                KafkaError(
                                    rdCode: code,
                                    message:
                                        "produce to \(message.topic) failed: \(String(cString: rd_kafka_err2str(code)))"
                                )))
                    }
                }
            }
            if let result {
                if case .failure(let error) = result, error.isFatal || error.code == KafkaError.Code.fatal {
                    throw self.failed(error)
                }
                return try result.get()
            }
            // The local queue is full: wait until the poll thread served reports (room), or a
            // poll interval passed without any.
            self.queueFullAttempts.add(1, ordering: .relaxed)
            await self.room.wait(after: generation)
            if Task.isCancelled {
                throw KafkaError(
                    code: KafkaError.Code.queueFull, name: "_QUEUE_FULL",
                    message:
                        "produce to \(message.topic): cancelled while librdkafka's local queue was full; nothing was sent",
                    isRetriable: true)
            }
        }
    }

    // MARK: Failing for good

    private struct Fatal {
        var error: KafkaError?
        var waiters: [Int: CheckedContinuation<KafkaError?, Never>] = [:]
        var nextWaiter = 0
    }

    private let fatal = Mutex(Fatal())

    /// The producer failed for good: `send` throws `error` from now on, and `failure()` returns it.
    func fail(_ error: KafkaError) {
        let waiters: [CheckedContinuation<KafkaError?, Never>] = self.fatal.withLock { fatal in
            guard fatal.error == nil else { return [] }
            fatal.error = error
            defer { fatal.waiters = [:] }
            return Array(fatal.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: error) }
    }

    /// `error` (a delivery report's or a produce call's) as the producer's fatal error: librdkafka's
    /// own reason when it has one (a `_FATAL` code only says that there is one), marked fatal.
    private func failed(_ error: KafkaError) -> KafkaError {
        let fatal =
            self.client.fatalError()
            ?? KafkaError(
                code: error.code, name: error.name, message: error.message, isFatal: true, isRetriable: false)
        self.fail(fatal)
        return self.fatal.withLock { $0.error } ?? fatal
    }

    func failure() async -> KafkaError? {
        let id = self.fatal.withLock { fatal -> Int in
            fatal.nextWaiter += 1
            return fatal.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now: KafkaError?? = self.fatal.withLock { fatal in
                    if let error = fatal.error { return .some(error) }
                    if Task.isCancelled { return .some(nil) }
                    fatal.waiters[id] = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = self.fatal.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }

    private func produce(_ message: KafkaProducerMessage, opaque: UnsafeMutableRawPointer) -> rd_kafka_resp_err_t {
        var headers: OpaquePointer? = nil
        if !message.headers.isEmpty {
            headers = rd_kafka_headers_new(message.headers.count)
            for header in message.headers {
                if let value = header.value {
                    value.withUnsafeBytes { bytes in
                        _ = rd_kafka_header_add(headers, header.name, -1, bytes.baseAddress, bytes.count)
                    }
                } else {
                    _ = rd_kafka_header_add(headers, header.name, -1, nil, 0)
                }
            }
        }
        let partition = message.partition ?? RD_KAFKA_PARTITION_UA
        let code = message.value.withUnsafeBytes { value in
            if let key = message.key {
                return key.withUnsafeBytes { key in
                    crdkafka_produce(
                        self.client.handle, message.topic, partition, key.baseAddress, key.count,
                        value.baseAddress, value.count, headers, opaque
                    )
                }
            }
            return crdkafka_produce(
                self.client.handle, message.topic, partition, nil, 0, value.baseAddress, value.count, headers, opaque)
        }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR, let headers {
            rd_kafka_headers_destroy(headers)
        }
        return code
    }

    func flush(timeout: Duration) async throws(KafkaError) {
        let timeoutMilliseconds = Int32(clamping: timeout.milliseconds)
        try await self.pollThread.perform { [client] () throws(KafkaError) in
            let code = rd_kafka_flush(client.handle, timeoutMilliseconds)
            if code != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(
                    rdCode: code, message: "flush: \(rd_kafka_outq_len(client.handle)) records still unacknowledged")
            }
        }
    }

    func shutdown(flushTimeout: Duration) async {
        guard !self.isShutDown.exchange(true, ordering: .relaxed) else {
            await self.pollThread.waitForExit()
            return
        }
        self.room.close()
        self.producing.withLock { $0.closed = true }
        // A send past its check produces within microseconds; its record is then flushed.
        while self.producing.withLock({ $0.active }) > 0 { try? await Task.sleep(for: .milliseconds(1)) }
        do {
            try await self.flush(timeout: flushTimeout)
        } catch {
            self.logger.error("producer shutdown: flush incomplete", metadata: ["error": "\(error)"])
        }
        self.pollThread.requestStop()
        await self.pollThread.waitForExit()
    }

    func stopWithoutFlush() {
        self.isShutDown.store(true, ordering: .relaxed)
        self.producing.withLock { $0.closed = true }
        self.room.close()
        self.pollThread.requestStop()
    }
}
