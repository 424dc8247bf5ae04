/// Producer settings. Defaults favour safety: idempotent, `acks=all`, ordered retries.
public struct KafkaProducerConfiguration: Sendable, Hashable {
    /// Where the cluster is and how to reach it.
    public var client: KafkaClientOptions
    /// `enable.idempotence`: no duplicates or reordering from internal retries.
    public var idempotence: Bool = true
    /// `acks`: `-1`/`all` waits for every in-sync replica.
    public var acks: String = "all"
    /// `linger.ms`: how long to wait for more messages to fill a batch.
    public var linger: Duration = .milliseconds(5)
    /// `message.timeout.ms`: how long librdkafka keeps retrying one message before it reports failure.
    public var messageTimeout: Duration = .seconds(120)
    /// `compression.type`: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    public var compression: String = "none"
    /// `partitioner`: `murmur2_random` matches the Java client, so keyed records land where
    /// JVM producers would put them.
    public var partitioner: String = "murmur2_random"
    /// `queue.buffering.max.messages`: the local send queue; `send` waits when it is full.
    public var maxQueuedMessages: Int = 100_000
    /// How long the poll thread blocks when no delivery report comes: reports, a shutdown and
    /// work for the poll thread wake it at once, so this only sets how often an idle producer
    /// wakes.
    public var pollInterval: Duration = .seconds(1)

    public init(client: KafkaClientOptions) {
        self.client = client
    }

    public init(bootstrapServers: String) {
        self.init(client: KafkaClientOptions(bootstrapServers: bootstrapServers))
    }

    var properties: [String: String] {
        var properties = self.client.properties
        properties["enable.idempotence"] = String(self.idempotence)
        properties["acks"] = self.acks
        properties["linger.ms"] = String(self.linger.milliseconds)
        properties["message.timeout.ms"] = String(self.messageTimeout.milliseconds)
        properties["compression.type"] = self.compression
        properties["partitioner"] = self.partitioner
        properties["queue.buffering.max.messages"] = String(self.maxQueuedMessages)
        properties.merge(self.client.additionalProperties) { _, raw in raw }
        return properties
    }
}
