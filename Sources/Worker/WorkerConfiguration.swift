public import CancelCore
import Foundation
public import Kafka

/// Everything a worker needs to know that is not a credential or a provider URL (those belong
/// to the providers' configuration). Defaults suit one worker on a laptop and a fleet alike.
public struct WorkerConfiguration: Sendable {
    /// The Kafka cluster.
    public var kafka: KafkaClientOptions
    /// The consumer group all replicas share (the commands topic; the retry tiers are consumed
    /// in `retryGroupID`, `<group-id>-retry`).
    public var groupID: String = "cancel-worker"
    /// Topic names.
    public var topics: TopicNames = .default
    /// Identifies this replica in outcomes, dead letters, ledger claims and logs.
    public var workerID: String = WorkerConfiguration.defaultWorkerID()
    /// Commands in process at once (from intake to outcome), across all partitions. Beyond it,
    /// intake waits and the consumer pauses fetching.
    public var maxInFlight: Int = 10_000
    /// Commands in process at once per partition (nil: no per-partition bound). 1 makes the
    /// worker a plain sequential consumer — the baseline the benchmarks compare against.
    public var partitionConcurrency: Int?
    /// Per-account rate limits per provider. The futures exchange documents 10 requests/s per
    /// user; the others have none by default but are throttled by their own 429 answers.
    public var rateLimits: [ProviderID: RateLimit] = [.futures: RateLimit(requestsPerSecond: 10)]
    /// Users of a newly assigned partition make their first call this long after the
    /// assignment. A member cut off from its coordinator keeps calling until its own session
    /// check notices it lost its partitions; the new owner waits that overlap out.
    public var handoverDelay: Duration = .seconds(1)
    /// Network jitter the pacing absorbs: any `n + 1` consecutive calls of a user whose limit is
    /// `n` per second (`n + b` with a burst `b`) leave at least 1 s plus this apart, so they arrive at least 1 s apart when
    /// each is delayed by anything up to this (a 10/s limit is paced at 10 per 1.2 s).
    public var rateLimitJitterAllowance: Duration = .milliseconds(200)
    /// In-process attempts, tiers, and the total attempt budget.
    public var retry: RetryPolicy = RetryPolicy()
    /// How long a ledger claim protects a key from other workers if this one dies.
    public var claimLease: Duration = .seconds(30)
    /// How long a revoked partition (or a shutdown) may take to finish in-flight calls.
    public var drainTimeout: Duration = .seconds(20)
    /// Readiness fails when records wait in owned partitions and none was consumed for this
    /// long (`CancelWorker.consumptionCheck`); zero turns the check off.
    public var stallTimeout: Duration = .seconds(60)
    /// An owned partition that fetches nothing while records wait in it for this long has its
    /// fetch restarted (`KafkaConsumer.restartStrandedPartitions`: a fetch start librdkafka 2.0
    /// lost to a pause, librdkafka #2190); checked every third of it. Zero turns it off.
    public var strandTimeout: Duration = .seconds(30)
    /// How often finished offsets are committed.
    public var commitInterval: Duration = .milliseconds(200)
    /// How long an acknowledged outcome's `published` mark waits for others to share its ledger
    /// call (`PublishedMarks`). Not a setting: tests lengthen it.
    var publishedLinger: Duration = .milliseconds(20)
    /// Ledger entries older than this are purged (keys may then be processed again).
    public var ledgerRetention: Duration = .seconds(7 * 24 * 3600)
    /// Command records larger than this are dead-lettered unread (`invalid_command`).
    public var maxCommandBytes: Int = 64 * 1024
    /// Records the consumer buffers before it pauses fetching.
    public var consumerBufferCapacity: Int = 2_000
    /// The consumer's `fetch.wait.max.ms`: how long a broker may hold a fetch that finds no
    /// record. 500 ms is Kafka's and librdkafka's default. A real broker answers as soon as a
    /// record arrives, so this costs no latency there; it sets how often an idle worker's
    /// fetches come back empty (twice a second per broker instead of ten at 100 ms, issue 14).
    /// On librdkafka's mock cluster, which holds every empty fetch for the whole wait, set
    /// `KafkaMockCluster.fetchWait` (`kafka.fetch-wait=100ms`).
    public var fetchWaitMax: Duration = .milliseconds(500)
    /// `fetch.wait.max.ms` of the retry tiers' group; nil: `fetchWaitMax`. Its topics are empty
    /// most of the time, and their records wait their tier's delay anyway, so a short
    /// `fetchWaitMax` (chosen for the commands' latency on a broker that holds every empty fetch)
    /// need not make this group's empty fetches as frequent (issue 14: at 5 ms, ~200 a second
    /// per broker).
    public var retryFetchWaitMax: Duration?
    /// `session.timeout.ms` of the group membership.
    public var sessionTimeout: Duration = .seconds(10)
    /// Static membership (`group.instance.id`), e.g. the pod name of a StatefulSet.
    public var groupInstanceID: String?
    /// Producer `linger.ms`.
    public var producerLinger: Duration = .milliseconds(2)

    public init(kafka: KafkaClientOptions) {
        self.kafka = kafka
    }

    public init(bootstrapServers: String) {
        self.init(kafka: KafkaClientOptions(bootstrapServers: bootstrapServers))
    }

    /// The limit the worker actually paces at: `n` calls per second become `n` per
    /// (1 s + `rateLimitJitterAllowance`).
    public func effectiveRateLimit(for provider: ProviderID) -> RateLimit? {
        guard let limit = self.rateLimits[provider] else { return nil }
        let window = 1 + max(self.rateLimitJitterAllowance.timeInterval, 0)
        return RateLimit(requestsPerSecond: limit.requestsPerSecond / window, burst: limit.burst)
    }

    /// Every topic the worker consumes: commands and the retry tiers.
    public var consumedTopics: [String] {
        [self.topics.commands] + self.retryTopics
    }

    public var retryTopics: [String] {
        self.retry.tiers.map { self.topics.retryTopic($0.name) }
    }

    /// `<hostname>-<pid>`: unique per process, readable in logs.
    public static func defaultWorkerID() -> String {
        "\(ProcessInfo.processInfo.hostName.split(separator: ".").first ?? "worker")-\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// The longest a refused commit holds the periodic commits back when no assignment comes:
    /// a join under the cooperative protocol is two rounds (the old owners revoke, then the
    /// partitions are assigned), each up to a session timeout on librdkafka's mock coordinator,
    /// with the revocation's drain in between. A hold of one session timeout ended inside the
    /// second round; the next periodic commit's `ILLEGAL_GENERATION` was taken for a lost
    /// assignment and the member gave up every partition (`CommitHoldTests`).
    var commitHoldLimit: Duration { self.sessionTimeout * 2 + self.drainTimeout }

    func consumerConfiguration(_ membership: WorkerMembership = .commands) -> KafkaConsumerConfiguration {
        let group = membership == .commands ? self.groupID : self.retryGroupID
        var configuration = KafkaConsumerConfiguration(client: self.kafka, groupID: group)
        configuration.bufferCapacity = self.consumerBufferCapacity
        configuration.fetchWaitMax =
            membership == .retries ? self.retryFetchWaitMax ?? self.fetchWaitMax : self.fetchWaitMax
        configuration.sessionTimeout = self.sessionTimeout
        configuration.heartbeatInterval = min(.seconds(3), self.sessionTimeout / 3)
        configuration.groupInstanceID = self.groupInstanceID
        configuration.rebalanceHandlerTimeout = self.drainTimeout + .seconds(10)
        // Periodic commits wait out a rebalance (`CancelWorker.commit`).
        configuration.tracksJoinState = true
        configuration.client.clientID =
            membership == .commands ? "cancel-worker-\(self.workerID)" : "cancel-worker-\(self.workerID)-retry"
        return configuration
    }

    func producerConfiguration() -> KafkaProducerConfiguration {
        var configuration = KafkaProducerConfiguration(client: self.kafka)
        configuration.linger = self.producerLinger
        configuration.client.clientID = "cancel-worker-\(self.workerID)"
        return configuration
    }
}
