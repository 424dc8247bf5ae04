public import CancelCore
public import Kafka

/// How a `CancelClient` reaches the cluster and which topics it uses. Kafka settings are the
/// worker's own `KafkaClientOptions` (bootstrap servers, SASL/SSL, raw librdkafka properties),
/// so an upstream service configures its client the way operators configure the workers.
public struct CancelClientConfiguration: Sendable, Hashable {
    /// Where the cluster is and how to authenticate; `additionalProperties` is the escape hatch
    /// for any librdkafka property. The producer settings the worker relies on (the partitioner,
    /// `acks`, idempotence) cannot be overridden there: `CancelClient.init` refuses it.
    public var kafka: KafkaClientOptions
    /// The commands and outcomes topics (the worker's defaults unless it was configured otherwise).
    public var topics: TopicNames = .default
    /// Commands whose record would exceed this are refused before sending; keep it equal to the
    /// workers' `max-command-bytes`.
    public var maxCommandBytes: Int = CommandDecoder.defaultMaxRecordBytes
    /// `linger.ms`: how long the producer waits to fill a batch. Small, since callers usually
    /// wait for the acknowledgement.
    public var linger: Duration = .milliseconds(2)
    /// `message.timeout.ms`: how long a send keeps being retried before `enqueue` fails.
    public var messageTimeout: Duration = .seconds(60)
    /// Whether the client follows the outcomes topic (needed by `cancel(_:timeout:)`). A client
    /// that only enqueues (a command-line tool, a batch job) turns it off and saves a consumer.
    public var listensForOutcomes: Bool = true
    /// Idempotency keys whose outcomes (terminal and `failed`, the latest 8 per key) the
    /// listener remembers, so that a `cancel` resent after a timeout returns an outcome that
    /// arrived in between at once. Oldest key forgotten first.
    public var rememberedOutcomes: Int = 10_000
    /// How long `enqueue` and `cancel` wait for `run()` to have started (the listener positioned
    /// at the end of the outcomes topic) before they fail with `notRunning`.
    public var startTimeout: Duration = .seconds(30)
    /// `session.timeout.ms` of the outcome consumers (each is the only member of its own group).
    public var consumerSessionTimeout: Duration = .seconds(10)
    /// `fetch.wait.max.ms` of the outcome consumers: how long a broker may hold a fetch that
    /// finds no outcome. 500 ms is Kafka's default, as the worker's: a broker answers as soon as
    /// an outcome arrives, so this sets only how often an idle client's fetches come back empty
    /// (twice a second per broker). On librdkafka's mock cluster, which holds every empty fetch
    /// the whole wait, use `KafkaMockCluster.fetchWait`.
    public var outcomeFetchWait: Duration = .milliseconds(500)
    /// The listener's partition whose fetch librdkafka 2.0 lost (a fetch start overtaken by a
    /// pause or resume of flow control, librdkafka #2190) is restarted once outcomes have waited in
    /// it this long with its position unmoved (`KafkaConsumer.restartStrandedPartitions`), as
    /// the worker's own partitions are; checked every third of it. Zero turns the check off.
    public var strandTimeout: Duration = .seconds(30)

    public init(kafka: KafkaClientOptions) {
        self.kafka = kafka
    }

    /// Plain-text access to `bootstrapServers` (comma separated), client id `cancel-client`.
    public init(bootstrapServers: String) {
        var kafka = KafkaClientOptions(bootstrapServers: bootstrapServers)
        kafka.clientID = "cancel-client"
        self.init(kafka: kafka)
    }

    /// Librdkafka properties that would break the wire contract, with the value it requires.
    static let contract: [String: Set<String>] = [
        "partitioner": ["murmur2_random", "murmur2"],
        "acks": ["all", "-1"],
        "enable.idempotence": ["true"],
    ]

    /// Why these settings cannot work, or nil.
    func problem() -> String? {
        for (property, allowed) in Self.contract.sorted(by: { $0.key < $1.key }) {
            if let value = self.kafka.additionalProperties[property], !allowed.contains(value) {
                return
                    "kafka property \(property)=\(value) is not allowed: the worker relies on \(property)=\(allowed.sorted().joined(separator: " or "))"
            }
        }
        if self.kafka.bootstrapServers.allSatisfy(\.isEmpty) { return "no bootstrap servers" }
        if self.maxCommandBytes <= 0 { return "maxCommandBytes must be positive" }
        if self.rememberedOutcomes < 0 { return "rememberedOutcomes must not be negative" }
        if self.strandTimeout < .zero { return "strandTimeout must not be negative" }
        return nil
    }

    var producer: KafkaProducerConfiguration {
        var producer = KafkaProducerConfiguration(client: self.kafka)
        producer.idempotence = true
        producer.acks = "all"
        producer.partitioner = "murmur2_random"
        producer.linger = self.linger
        producer.messageTimeout = self.messageTimeout
        return producer
    }

    func consumer(group: String) -> KafkaConsumerConfiguration {
        var consumer = KafkaConsumerConfiguration(client: self.kafka, groupID: group)
        // Partitions without a committed start (added after the client started) are read whole.
        consumer.autoOffsetReset = .earliest
        consumer.sessionTimeout = self.consumerSessionTimeout
        consumer.heartbeatInterval = min(.seconds(3), self.consumerSessionTimeout / 3)
        consumer.fetchWaitMax = self.outcomeFetchWait
        return consumer
    }
}
