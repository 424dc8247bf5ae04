import AsyncHTTPClient
public import Foundation
public import Kafka
public import Logging
import NIOCore
public import ServiceLifecycle
import Synchronization

/// Reads the workers' `/metrics` and the consumer lag every `interval` and keeps the last
/// 15 minutes in memory for the Flow page. A worker or broker that does not answer is shown
/// as such; the next round tries again.
public final class FlowMonitor: Service, Sendable {
    public let workers: [URL]
    public let interval: Duration
    let lag: LagReader
    let logger: Logger
    private let state = Mutex(FlowHistory())

    public init(workers: [URL], interval: Duration, lag: LagReader, logger: Logger) {
        self.workers = workers
        self.interval = interval
        self.lag = lag
        self.logger = logger
    }

    /// What was read so far.
    public var history: FlowHistory { self.state.withLock { $0 } }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.scrape()
                try? await Task.sleep(for: self.interval)
            }
        }
        self.lag.close()
    }

    /// One round: every worker and the brokers at once.
    public func scrape() async {
        let at = Date()
        async let lag: Result<[LagEntry], any Error> = {
            do { return .success(try await self.lag.read()) } catch { return .failure(error) }
        }()
        let workers = await withTaskGroup(of: (Int, FlowScrape.Worker).self) { group in
            for (index, url) in self.workers.enumerated() {
                group.addTask { (index, await Self.read(url)) }
            }
            var answers: [(Int, FlowScrape.Worker)] = []
            for await answer in group { answers.append(answer) }
            return answers.sorted { $0.0 < $1.0 }.map(\.1)
        }
        let scrape: FlowScrape
        switch await lag {
        case .success(let entries): scrape = FlowScrape(at: at, workers: workers, lag: entries)
        case .failure(let error):
            self.logger.debug("consumer lag not read", metadata: ["error": "\(error)"])
            scrape = FlowScrape(at: at, workers: workers, lag: nil, lagError: "\(error)")
        }
        self.state.withLock { $0.append(scrape) }
    }

    /// The series of one scrape that the history keeps: those the Flow page reads. Each worker
    /// serves ~500 (every histogram bucket, ledger and process metrics); kept for the history's
    /// 15 minutes, all of them took 100 MB for 3 workers at the default interval.
    static func values(of text: String) -> [MetricSeries: Double] {
        var values: [MetricSeries: Double] = [:]
        for sample in PrometheusText.parse(text) where FlowPage.seriesRead.contains(sample.name) {
            values[sample.series] = sample.value
        }
        return values
    }

    /// One worker's series, or why there are none.
    static func read(_ url: URL) async -> FlowScrape.Worker {
        do {
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: url.absoluteString), timeout: .seconds(3))
            let body = try await response.body.collect(upTo: 32 << 20)
            guard response.status == .ok else {
                return FlowScrape.Worker(url: url.absoluteString, values: nil, error: "HTTP \(response.status.code)")
            }
            return FlowScrape.Worker(url: url.absoluteString, values: Self.values(of: String(buffer: body)))
        } catch {
            return FlowScrape.Worker(url: url.absoluteString, values: nil, error: "\(error)")
        }
    }
}

/// The consumer groups' lag per partition, from the brokers: each group's committed offsets
/// and each partition's end. It reads as a client of no subscription, so it never joins (or
/// disturbs) the workers' groups (the commands topic's and the retry tiers', `WorkerMembership`).
public final class LagReader: Sendable {
    /// Each group with the topics it consumes, in the order the console shows them.
    let members: [(group: String, topics: [String], consumer: KafkaConsumer)]
    let admin: KafkaAdminClient

    /// Every topic read, in order.
    public var topics: [String] { self.members.flatMap(\.topics) }

    /// Reads `groups`: each consumer group with the topics it consumes.
    public init(options: KafkaClientOptions, groups: [(group: String, topics: [String])], logger: Logger) throws {
        self.admin = try KafkaAdminClient(options: options, logger: logger)
        self.members = try groups.map { group, topics in
            let consumer = try KafkaConsumer(
                configuration: KafkaConsumerConfiguration(client: options, groupID: group), topics: [],
                logger: logger)
            return (group, topics, consumer)
        }
    }

    /// Reads one group.
    public convenience init(options: KafkaClientOptions, group: String, topics: [String], logger: Logger) throws {
        try self.init(options: options, groups: [(group, topics)], logger: logger)
    }

    public func read() async throws -> [LagEntry] {
        var entries: [LagEntry] = []
        for (_, topics, consumer) in self.members {
            for topic in topics {
                // A retry tier nobody created has no lag to show.
                guard let description = try await self.describe(topic) else { continue }
                let partitions = description.partitions.map { KafkaTopicPartition(topic: topic, partition: $0.id) }
                let committed = try await consumer.committed(partitions, timeout: .seconds(3))
                for partition in partitions.sorted(by: { $0.partition < $1.partition }) {
                    let marks = try await consumer.watermarks(for: partition, timeout: .seconds(3))
                    let offset = committed.first { $0.topicPartition == partition }?.offset ?? -1
                    let start = offset >= 0 ? offset : marks.low
                    entries.append(
                        LagEntry(
                            topic: topic, partition: partition.partition, committed: offset >= 0 ? offset : nil,
                            end: marks.high, lag: max(0, marks.high - start)))
                }
            }
        }
        return entries
    }

    /// The topic's partitions; nil if it does not exist.
    private func describe(_ topic: String) async throws -> KafkaTopicDescription? {
        do {
            return try await self.admin.describeTopic(topic, timeout: .seconds(3))
        } catch {
            if error.code == KafkaError.Code.unknownTopicOrPartition { return nil }
            throw error
        }
    }

    func close() {
        for member in self.members { member.consumer.close() }
    }
}
