// Micro-benchmarks (ordo-one/benchmark) for the hot paths that sit in front of every provider
// call: the GCRA limiter, the command decoder and the ledger operations (and the PostgreSQL
// ledger's statement watch).
//
//     swift package --disable-sandbox benchmark --target CancelBenchmarks     (or: make microbench)
//
// The figures BENCHMARKS.md reports come from this target; each benchmark counts one logical
// operation per scaled iteration, so "throughput" reads as operations per second.
import Benchmark
import CancelCore
import DevTools
import Foundation
import Kafka
import Ledger
import Logging
import Prometheus
import Providers
import Synchronization
import Worker
import WorkerApp

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000
    )

    // MARK: The limiter

    Benchmark("RateLimiter.reserve, 10,000 users (10/s each)") { benchmark in
        let start = ContinuousClock.now
        var limiter = RateLimiter<Int>(limit: RateLimit(requestsPerSecond: 10), start: start)
        var now = start
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            now = now.advanced(by: .microseconds(10))
            blackHole(limiter.reserve(index % 10_000, now: now, notAfter: nil))
        }
    }

    Benchmark("RateLimiter.acquire, 100 users (10/s each)") { benchmark in
        let start = ContinuousClock.now
        var limiter = RateLimiter<Int>(limit: RateLimit(requestsPerSecond: 10), start: start)
        var now = start
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            now = now.advanced(by: .milliseconds(1))
            blackHole(limiter.acquire(index % 100, now: now))
        }
    }

    // MARK: The command decoder

    let decoder = CommandDecoder()
    let valid =
        CancelCommand(
            commandID: "cmd-1", idempotencyKey: "futures-user-1-10001", provider: .futures, account: "user-1",
            order: .futures(id: "10001"), requestedAt: Date(timeIntervalSince1970: 1_790_000_000),
            deadline: Date(timeIntervalSince1970: 1_790_000_600), correlationID: "corr-1",
            metadata: ["source": .string("bench")]
        ).encoded()
    let truncated = Array(valid.prefix(valid.count / 2))
    let unknownProvider = Array(
        #"{"command_id":"c","idempotency_key":"k","provider":"paypal","account":"a","order":{"id":"1"},"requested_at":"2026-01-01T00:00:00Z"}"#
            .utf8
    )

    // What a command waiting for its provider's lane holds (issue 14: ≤ 300 bytes per waiting
    // command), counted as the growth of the resident set (/proc/self/statm) divided by the
    // count, in the worker's own queue (`CommandLanes`, no lane running): 100,000 FastPOD
    // commands as the consumer delivers them, as `CancelClient` writes them (no headers) and
    // with a `content-type` header on each; then the record and decoded command as intake holds
    // them, which is what the queue held before issue 14's compaction. One iteration each: a
    // second would reuse the pages the first freed.
    func queuedRecord(_ index: Int, headers: [KafkaHeader]) -> (KafkaConsumerMessage, CancelCommand) {
        let value = CancelCommand(
            commandID: "bench-b-\(index)", idempotencyKey: "bench-b-\(index)", provider: .fastpod,
            account: "user-\(index % 1_000)", order: .fastpod(id: "B\(index)"),
            requestedAt: Date(timeIntervalSince1970: 1_790_000_000)
        ).encoded()
        // Copied as the consumer copies a record out of librdkafka: exactly its bytes (the
        // writer's array has spare capacity).
        let message = KafkaConsumerMessage(
            topic: "cancel.commands", partition: 0, offset: Int64(index),
            key: Array("fastpod:user-\(index % 1_000)".utf8), value: value.withUnsafeBytes { Array($0) },
            headers: headers)
        guard case .valid(let command) = decoder.decode(message.value) else { fatalError("invalid") }
        return (message, command)
    }
    let contentType = [KafkaHeader(name: "content-type", string: "application/json")]
    for (name, headers) in [("no headers", [KafkaHeader]()), ("a content-type header", contentType)] {
        Benchmark(
            "Heap per queued command: 100,000 in the lanes' queue, \(name)",
            configuration: .init(
                metrics: [.custom("heap bytes per queued command", useScalingFactor: false)], warmupIterations: 0,
                maxIterations: 1)
        ) { benchmark in
            let count = 100_000
            let scope = PartitionScope(
                partition: KafkaTopicPartition(topic: "cancel.commands", partition: 0), generation: 1, limits: [:])
            let lanes = CommandLanes(limit: { _ in 16 }, work: { _ in }, abandoned: { _ in })
            let before = residentBytes()
            for index in 0..<count {
                let (message, command) = queuedRecord(index, headers: headers)
                lanes.submit(CommandLanes.Item(message: message, scope: scope, command: command))
            }
            let after = residentBytes()
            precondition(lanes.queued == count)
            benchmark.measurement(
                .custom("heap bytes per queued command", useScalingFactor: false), (after - before) / count)
            blackHole(lanes)
        }
    }
    Benchmark(
        "Heap per queued command before issue 14's compaction: record and decoded command, 100,000 held",
        configuration: .init(
            metrics: [.custom("heap bytes per queued command", useScalingFactor: false)], warmupIterations: 0,
            maxIterations: 1)
    ) { benchmark in
        let count = 100_000
        let before = residentBytes()
        var held: [(KafkaConsumerMessage, CancelCommand)] = []
        held.reserveCapacity(count)
        for index in 0..<count { held.append(queuedRecord(index, headers: contentType)) }
        let after = residentBytes()
        benchmark.measurement(
            .custom("heap bytes per queued command", useScalingFactor: false), (after - before) / count)
        blackHole(held)
    }

    Benchmark("CommandDecoder.decode, a valid futures command") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(decoder.decode(valid)) }
    }
    // The parser alone, and Foundation's JSONDecoder on the same bytes (what the decoder used
    // before issue 14).
    Benchmark("JSONReader.parse, the same command") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(JSONReader.parse(valid)) }
    }
    Benchmark("Foundation JSONDecoder, the same command into [String: JSONValue] (before issue 14)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? JSONDecoder().decode([String: JSONValue].self, from: Data(valid)))
        }
    }
    // The outcome as published: JSONWriter, and JSONEncoder on the same outcome (before issue 14).
    let outcomeIdentity: CommandIdentity = {
        guard case .valid(let command) = decoder.decode(valid) else { fatalError("the command decodes") }
        return command.identity
    }()
    let outcomeValue = CancelOutcome(
        outcomeID: OutcomeID.terminal(idempotencyKey: outcomeIdentity.idempotencyKey), identity: outcomeIdentity,
        status: .cancelled, reason: "the exchange cancelled the order",
        providerResponse: ProviderAnswer(httpStatus: 200, code: "0", message: "OK"), attempts: 1,
        completedAt: Date(timeIntervalSince1970: 1_790_000_001), workerID: "worker-1")
    let outcomeEncoder = CancelOutcome.foundationEncoder
    // Timestamps: each command parses one or two, each outcome writes one or two.
    let instant = "2026-11-27T04:57:31.123Z"
    Benchmark("Timestamp.parse, \(instant)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(Timestamp.parse(instant)) }
    }
    Benchmark("Foundation ISO8601FormatStyle.parse, the same (before issue 14)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(Timestamp.parseFoundation(instant)) }
    }
    let instantDate = Timestamp.parse(instant)!
    Benchmark("Timestamp.format, the same instant") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(Timestamp.format(instantDate)) }
    }
    Benchmark("Foundation ISO8601FormatStyle.format, the same (before issue 14)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(Timestamp.formatFoundation(instantDate)) }
    }
    Benchmark("CancelOutcome.encoded (JSONWriter)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(outcomeValue.encoded()) }
    }
    Benchmark("Foundation JSONEncoder, the same outcome (before issue 14)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? outcomeEncoder.encode(outcomeValue)) }
    }
    // The record an upstream client sends (`CancelClient.enqueue` encodes every command).
    guard case .valid(let validCommand) = decoder.decode(valid) else { fatalError("the command decodes") }
    let commandObject = try! JSONDecoder().decode([String: JSONValue].self, from: Data(valid))
    Benchmark("CancelCommand.encoded (JSONWriter), the futures command") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(validCommand.encoded()) }
    }
    Benchmark("Foundation JSONEncoder, the same command's object (before)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? outcomeEncoder.encode(commandObject)) }
    }
    Benchmark("OutcomeID.fingerprint (JSONWriter + SHA-256)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(OutcomeID.fingerprint(of: outcomeIdentity)) }
    }
    Benchmark("CommandDecoder.decode, truncated JSON (dead letter)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(decoder.decode(truncated)) }
    }
    Benchmark("CommandDecoder.decode, unknown provider (rejected)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(decoder.decode(unknownProvider)) }
    }

    // MARK: Classifying a provider's answer

    let fastpod = FastPodAPI()
    let fastpodRequest = CancelRequest(
        provider: .fastpod, account: "demo-1", order: .fastpod(id: "1001"), idempotencyKey: "fastpod-1001")
    let fastpodSuccess = ProviderHTTPResponse(
        status: 200, headers: ["content-type": "application/json"],
        body: Array(
            #"{"status":true,"message":"Order cancelled successfully.","data":{"id":"1001","order_status":"cancelled","cancelled_at":"2026-11-26T12:00:00Z"}}"#
                .utf8))
    let classifyNow = Date(timeIntervalSince1970: 1_790_000_000)
    Benchmark("FastPodAPI.classify, the documented success answer") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(fastpod.classify(fastpodSuccess, for: fastpodRequest, now: classifyNow))
        }
    }
    // The answer's parse alone (JSONReader into `AnswerJSON` since issue 14; JSONSerialization before).
    Benchmark("JSONObject(bytes:), the same FastPOD answer") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(JSONObject(bytes: fastpodSuccess.body)) }
    }
    let message = "Order cancelled successfully. The refund is on its way."
    Benchmark("ProviderText.clean, a 56-character message") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(ProviderText.clean(message)) }
    }

    // MARK: Ledger operations: one key's life (claim → sent → complete → published)

    let outcome = Array(repeating: UInt8(ascii: "x"), count: 600)
    let lease = Duration.seconds(30)
    let ledgerConfiguration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .one, maxDuration: .seconds(3),
        maxIterations: 200
    )

    /// One key through every state, then `parallel` keys at once (where group commit pays).
    @Sendable func lifecycle(
        _ ledger: any IdempotencyLedger, _ prefix: String, _ iteration: Int, parallel: Int
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<parallel {
                group.addTask {
                    let key = "\(prefix)-\(iteration)-\(lane)"
                    let now = Date()
                    _ = try await ledger.claim(key: key, owner: "bench", lease: lease, now: now)
                    _ = try await ledger.markSent(key: key, owner: "bench", fence: 1, lease: lease, now: now)
                    try await ledger.complete(key: key, owner: "bench", fence: 1, outcome: outcome, now: now)
                    try await ledger.markPublished(key: key, now: now)
                }
            }
            try await group.waitForAll()
        }
    }

    /// A command's ledger writes as the worker makes them for a new key whose call leaves at
    /// once (issue 14): the claim marks it sent, then `complete`, then the published marks of
    /// the `parallel` keys in one batch (`PublishedMarks`).
    @Sendable func workerWrites(
        _ ledger: any IdempotencyLedger, _ prefix: String, _ iteration: Int, parallel: Int
    ) async throws {
        try await workerWrites(ledger, keys: (0..<parallel).map { "\(prefix)-\(iteration)-\($0)" })
    }

    @Sendable func workerWrites(_ ledger: any IdempotencyLedger, keys: [String]) async throws {
        try await LedgerTemplate.workerWrites(ledger, keys: keys, outcome: outcome)
    }

    /// Measures `body` over every scaled iteration on a SQLite ledger in a new file.
    @Sendable func onSQLite(
        _ benchmark: Benchmark, _ body: (SQLiteLedger, Int) async throws -> Void
    ) async throws {
        let path = PrefilledLedger.newPath()
        defer { PrefilledLedger.removeFiles(at: path) }
        let ledger = try SQLiteLedger(path: path)
        benchmark.startMeasurement()
        for iteration in benchmark.scaledIterations { try await body(ledger, iteration) }
        benchmark.stopMeasurement()
        await ledger.shutdown()
    }

    Benchmark("SQLiteLedger, the worker's writes for 64 new keys at once", configuration: ledgerConfiguration) {
        benchmark in
        try await onSQLite(benchmark) { ledger, iteration in
            try await workerWrites(ledger, "sqlite-worker", iteration, parallel: 64)
        }
    }

    // The same with keys as upstream makes them (random: each new key lands on a random page of
    // the key index), on a file that already holds 200,000 keys, as a ledger that keeps its keys
    // for days does (written once, in the benchmark's setup). Issue 14: SQLite's checkpoints, run
    // in the writer's commits, were about half of this.
    let prefilled = PrefilledLedger()
    Benchmark(
        "SQLiteLedger, the worker's writes for 64 new random keys at once, on a ledger of 200,000 keys",
        configuration: ledgerConfiguration,
        closure: { benchmark in
            guard let ledger = prefilled.ledger else { return benchmark.error("no ledger: its setup failed") }
            let keys = benchmark.scaledIterations.map { _ in (0..<64).map { _ in UUID().uuidString } }
            benchmark.startMeasurement()
            for batch in keys { try await workerWrites(ledger, keys: batch) }
            benchmark.stopMeasurement()
        },
        setup: {
            try await prefilled.open { ledger in
                var generator = SystemRandomNumberGenerator()
                try await LedgerTemplate.fill(ledger, keys: 200_000, using: &generator)
            }
        },
        teardown: { prefilled.remove() }
    )

    // What watching a PostgreSQL statement adds to it (PostgresLedgerStatementTests): its own
    // task, an entry in the watch, and the answer handed back. The body answers at once, so this
    // is the whole added cost; the ledger needs no server for it.
    Benchmark("PostgresLedger.watched, around a statement that answers at once") { benchmark in
        guard
            let ledger = try LedgerFactory.make(
                url: "postgres://bench@127.0.0.1:9/none", logger: Logger(label: "bench")
            ).ledger as? PostgresLedger
        else { fatalError("a postgres:// URL makes a PostgresLedger") }
        benchmark.startMeasurement()
        for iteration in benchmark.scaledIterations {
            blackHole(try await ledger.watched("bench") { iteration })
        }
    }

    for parallel in [1, 64] {
        Benchmark("InMemoryLedger key lifecycle, \(parallel) key(s) at once", configuration: ledgerConfiguration) {
            benchmark in
            let ledger = InMemoryLedger()
            benchmark.startMeasurement()
            for iteration in benchmark.scaledIterations {
                try await lifecycle(ledger, "memory", iteration, parallel: parallel)
            }
        }
        Benchmark("SQLiteLedger key lifecycle, \(parallel) key(s) at once", configuration: ledgerConfiguration) {
            benchmark in
            try await onSQLite(benchmark) { ledger, iteration in
                try await lifecycle(ledger, "sqlite", iteration, parallel: parallel)
            }
        }
    }

    // MARK: Metrics: the series one command touches, on the Prometheus registry `run` uses

    let topic = "cancel.commands.v1"
    Benchmark("WorkerMetrics, one command's series by slot (consumed, 3 ledger timers, the answer, the outcome)") {
        benchmark in
        let metrics = WorkerMetrics(factory: WorkerApplication.metricsFactory(registry: PrometheusCollectorRegistry()))
        let took = Duration.microseconds(250)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            metrics.consumed(topic: topic)
            for operation in [LedgerOperation.claim, .markSent, .complete] { await metrics.ledger(operation) {} }
            metrics.answer(.fastpod, .cancelled, took: took)
            metrics.outcome(provider: "fastpod", status: .cancelled)
        }
    }
    Benchmark("WorkerMetrics, the same series by their labels (before the slots)") { benchmark in
        let metrics = WorkerMetrics(factory: WorkerApplication.metricsFactory(registry: PrometheusCollectorRegistry()))
        let took = Duration.microseconds(250)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            metrics.increment(WorkerMetrics.commandsConsumed, [("topic", topic)])
            for operation in ["claim", "mark_sent", "complete"] {
                let start = ContinuousClock.now
                metrics.record(WorkerMetrics.ledgerLatency, [("operation", operation)], duration: .now - start)
            }
            metrics.record(
                WorkerMetrics.providerLatency, [("provider", "fastpod"), ("result", "cancelled")], duration: took)
            metrics.increment(WorkerMetrics.outcomes, [("provider", "fastpod"), ("status", "cancelled")])
        }
    }

    // MARK: The log line every command writes at `info` ("outcome published"), to /dev/null

    let logMetadata: Logger.Metadata = [
        "command_id": "bench-a-39f9d430-102", "idempotency_key": "bench-a-39f9d430-102", "provider": "fastpod",
        "account": "user-102", "status": "cancelled", "attempts": .stringConvertible(1),
    ]
    Benchmark("JSONLogHandler, the outcome-published line (JSONWriter)") { benchmark in
        let sink = JSONLogSink(FileHandle(forWritingAtPath: "/dev/null")!)
        var logger = Logger(label: "cancel-worker") { JSONLogHandler(label: $0, level: .info, sink: sink) }
        logger[metadataKey: "worker_id"] = "bench-a-0"
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { logger.info("outcome published", metadata: logMetadata) }
    }
    Benchmark("JSONSerialization and ISO 8601 format style, the same line (before issue 14)") { benchmark in
        let devNull = FileHandle(forWritingAtPath: "/dev/null")!
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var fields: [String: Any] = [
                "ts": Date().formatted(
                    .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)),
                "level": "info", "logger": "cancel-worker", "message": "outcome published", "source": "Worker",
                "worker_id": "bench-a-0", "attempts": 1,
            ]
            for (key, value) in logMetadata where fields[key] == nil { fields[key] = value.description }
            let data = try JSONSerialization.data(
                withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])
            devNull.write(data + Data([0x0A]))
        }
    }
}

/// The process's resident set in bytes (/proc/self/statm, second field, in pages).
func residentBytes() -> Int {
    let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
    let pages = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// A SQLite ledger in a file of its own, written in a benchmark's setup and shared by its samples.
final class PrefilledLedger: Sendable {
    private let state = Mutex<(ledger: SQLiteLedger, path: String)?>(nil)

    var ledger: SQLiteLedger? { self.state.withLock { $0?.ledger } }

    /// Opens the ledger in a new file, then `fill`s it; `remove` deletes the file even if that failed.
    func open(_ fill: (SQLiteLedger) async throws -> Void) async throws {
        let path = Self.newPath()
        let ledger = try SQLiteLedger(path: path)
        self.state.withLock { $0 = (ledger, path) }
        try await fill(ledger)
    }

    func remove() {
        let path = self.state.withLock { state in
            let path = state?.path
            state = nil
            return path
        }
        if let path { Self.removeFiles(at: path) }
    }

    /// A new ledger file's path in the temporary directory.
    static func newPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("cancel-bench-\(UUID().uuidString).sqlite").path
    }

    /// Deletes a ledger file and its write-ahead log.
    static func removeFiles(at path: String) {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }
}
