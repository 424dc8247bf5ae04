// Micro-benchmarks of the upstream client (ordo-one/benchmark): enqueue throughput and what
// awaiting an outcome costs per cancel.
//
//     swift package --disable-sandbox benchmark --target CancelClientBenchmarks     (or: make microbench)
//
// Enqueue and cancel run against librdkafka's mock cluster in this process (one broker, 6
// partitions, acks=all): their figures include the broker's work on the same cores. For
// `cancel`, an echo responder in this process plays the worker (consume the command, produce
// its outcome at once), so the difference to `enqueue` is the round trip through the outcomes
// topic plus the client's awaiting; the in-process benchmarks isolate the awaiting itself.
import Benchmark
import CancelClient
import CancelCore
import Foundation
import Kafka
import Logging

let quiet = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }

/// A mock cluster with the worker's topics, a running client, and optionally an echo responder.
final class Rig: Sendable {
    let cluster: KafkaMockCluster
    let client: CancelClient
    /// The client's `run()` and the responder; they end with the benchmark's process.
    private let tasks: [Task<Void, any Error>]

    init(echo: Bool) async throws {
        self.cluster = try KafkaMockCluster(brokers: 1, logger: quiet)
        let topics = TopicNames.default
        _ = try await self.cluster.ensureTopics(
            [topics.commands, topics.outcomes].map { KafkaNewTopic(name: $0, partitions: 6) })
        let client = try CancelClient(
            configuration: CancelClientConfiguration(bootstrapServers: self.cluster.bootstrapServers), logger: quiet)
        self.client = client
        var tasks = [Task { try await client.run() }]
        if echo { tasks.append(Task { [bootstrap = self.cluster.bootstrapServers] in try await Self.echo(bootstrap) }) }
        self.tasks = tasks
        // Ready once a first enqueue went through (the listener is positioned by then).
        _ = try await client.enqueue(.fastpod(id: "warm-up", account: "bench"))
    }

    /// Plays the worker: every command's `cancelled` outcome, produced as soon as it is read.
    static func echo(_ bootstrap: String) async throws {
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: bootstrap, groupID: "echo"),
            topics: [TopicNames.default.commands], logger: quiet)
        var producer = KafkaProducerConfiguration(bootstrapServers: bootstrap)
        producer.linger = .milliseconds(1)
        let outcomes = try KafkaProducer(configuration: producer, logger: quiet)
        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for try await message in consumer.messages {
                    guard case .valid(let command) = CommandDecoder().decode(message.value) else { continue }
                    let outcome = CancelOutcome(
                        outcomeID: OutcomeID.terminal(idempotencyKey: command.idempotencyKey),
                        identity: command.identity, status: .cancelled, reason: "echo", attempts: 1,
                        completedAt: Date(), workerID: "echo")
                    group.addTask {
                        _ = try await outcomes.send(
                            KafkaProducerMessage(
                                topic: TopicNames.default.outcomes, key: Array(command.idempotencyKey.utf8),
                                value: outcome.encoded()))
                    }
                }
            }
        } onCancel: {
            consumer.close()
        }
        await outcomes.shutdown()
    }
}

/// A command per index, spread over 30 users of two providers.
func command(_ index: Int, _ prefix: String) -> CancelCommand {
    index.isMultiple(of: 2)
        ? .fastpod(id: "\(prefix)-\(index)", account: "user-\(index % 15)")
        : .fungies(orderIDOrNumber: "\(prefix)-\(index)", account: "user-\(index % 15)")
}

/// Calls `call` for every scaled iteration at once (1,000 in flight), with a prefix unique to
/// this run so that no idempotency key repeats.
func inFlight(_ benchmark: Benchmark, _ call: @escaping @Sendable (Int, String) async throws -> Void) async throws {
    let run = String(UUID().uuidString.prefix(8))
    try await withThrowingDiscardingTaskGroup { group in
        for index in benchmark.scaledIterations { group.addTask { try await call(index, run) } }
    }
}

let benchmarks: @Sendable () -> Void = {
    // One iteration = 1,000 operations in flight at once; throughput reads as operations/s.
    let kafka = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .cpuTotal], scalingFactor: .kilo, maxDuration: .seconds(10),
        maxIterations: 20)

    Benchmark(
        "CancelClient.enqueue, 1,000 in flight (mock cluster, acks=all)", configuration: kafka,
        closure: { benchmark, rig in
            try await inFlight(benchmark) { index, run in _ = try await rig.client.enqueue(command(index, "e\(run)")) }
        }, setup: { try await Rig(echo: false) })

    Benchmark(
        "CancelClient.cancel, 1,000 in flight (echo responder)", configuration: kafka,
        closure: { benchmark, rig in
            try await inFlight(benchmark) { index, run in
                _ = try await rig.client.cancel(command(index, "c\(run)"), timeout: .seconds(60))
            }
        }, setup: { try await Rig(echo: true) })

    // The awaiting itself, in process: what one cancel costs the client beyond its enqueue.
    let asked = (0..<1_000).map { command($0, "w") }
    let outcomes = asked.map { command in
        CancelOutcome(
            outcomeID: OutcomeID.terminal(idempotencyKey: command.idempotencyKey), identity: command.identity,
            status: .cancelled, reason: "order cancelled", attempts: 1, completedAt: Date(), workerID: "w")
    }
    let encoded = outcomes.map { $0.encoded() }

    Benchmark(
        "Awaiting: 1,000 waiters register, park, get their outcome (per waiter)",
        configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .kilo)
    ) { benchmark in
        let waiters = OutcomeWaiters(rememberedCapacity: 0)
        for round in 0..<(benchmark.scaledIterations.count / 1_000) {
            await withDiscardingTaskGroup { group in
                for (command, outcome) in zip(asked, outcomes) {
                    // The question (which outcomes answer it: two hashes) is part of a cancel's cost.
                    guard case .ticket(let ticket) = waiters.register(OutcomeWaiters.Question(command.identity)) else {
                        continue
                    }
                    group.addTask {
                        blackHole(await waiters.wait(outcome.idempotencyKey, ticket, timeout: .seconds(30)))
                    }
                }
                for outcome in outcomes { blackHole(waiters.deliver(outcome)) }
            }
            blackHole(round)
        }
    }

    Benchmark(
        "Listener: decode one outcome record (cancel-outcome.v1)",
        configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .kilo)
    ) { benchmark in
        for index in benchmark.scaledIterations { blackHole(try? CancelOutcome.decode(encoded[index % 1_000])) }
    }
    Benchmark(
        "Listener: the same through JSONDecoder (before)",
        configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .kilo)
    ) { benchmark in
        for index in benchmark.scaledIterations {
            blackHole(try? CancelOutcome.decodeFoundation(encoded[index % 1_000]))
        }
    }
}
