/// Consumer-group settings. Offsets are managed by the application only: nothing is committed
/// unless it was marked done, and librdkafka never stores or commits offsets by itself.
public struct KafkaConsumerConfiguration: Sendable, Hashable {
    /// Where to start when the group has no committed offset for a partition.
    public enum AutoOffsetReset: String, Sendable, Hashable {
        case earliest, latest, error
    }

    /// Where the cluster is and how to reach it.
    public var client: KafkaClientOptions
    /// `group.id`.
    public var groupID: String
    /// `group.instance.id`: static membership, avoids a rebalance when a pod restarts quickly.
    public var groupInstanceID: String?
    /// `auto.offset.reset`.
    public var autoOffsetReset: AutoOffsetReset = .earliest
    /// `partition.assignment.strategy`. The default, `cooperative-sticky`, moves only the
    /// partitions that must move, and revokes them once the group is stable again, so offsets
    /// committed while draining a revoked partition are accepted by the coordinator (under the
    /// eager protocol a coordinator may answer `REBALANCE_IN_PROGRESS` instead).
    public var assignmentStrategy: String = "cooperative-sticky"
    /// `session.timeout.ms`: a member silent for this long is removed from the group.
    public var sessionTimeout: Duration = .seconds(10)
    /// `heartbeat.interval.ms`.
    public var heartbeatInterval: Duration = .seconds(3)
    /// `max.poll.interval.ms`. The poll thread keeps polling even when the application is slow,
    /// so this bounds only how long a rebalance handler may hold the group.
    public var maxPollInterval: Duration = .seconds(300)
    /// `fetch.wait.max.ms`: how long a broker may hold a fetch waiting for data.
    public var fetchWaitMax: Duration = .milliseconds(100)
    /// Messages held in Swift before fetching is paused (flow control): each partition that
    /// hands over a message into the full buffer is paused (so at most one message per
    /// partition comes on top), and resumes when half of them were taken.
    public var bufferCapacity: Int = 2_000
    /// How long a rebalance handler may run (e.g. to drain in-flight work) before the
    /// partitions are released anyway.
    public var rebalanceHandlerTimeout: Duration = .seconds(60)
    /// How long `close()` lets a join in progress complete — the member gets its first
    /// assignment, then leaves the group in order — before it closes anyway. Closing mid-join
    /// instead leaves a member the group waits for (and may assign partitions to) until its
    /// session times out; see `KafkaConsumer.close()`.
    public var closeJoinWait: Duration = .seconds(10)
    /// How long the poll thread blocks in one `rd_kafka_consumer_poll` call when nothing comes.
    /// Records, a close and work for the poll thread wake it at once (`rd_kafka_queue_yield`),
    /// so this only sets how often an idle consumer wakes (issue 14: at 100 ms the two poll
    /// threads of an idle worker cost 0.17 % of a core).
    public var pollInterval: Duration = .seconds(1)
    /// Follow the group's join state (`KafkaConsumer.isRebalancing`) from librdkafka's `cgrp`
    /// debug lines, which this turns on (they reach the logger only if `debug` is set in the
    /// client's properties). For members that commit while their group may rebalance; a consumer
    /// that only reads (no subscription, no commits) leaves it off and spares the formatted lines.
    public var tracksJoinState: Bool = false

    public init(client: KafkaClientOptions, groupID: String) {
        self.client = client
        self.groupID = groupID
    }

    public init(bootstrapServers: String, groupID: String) {
        self.init(client: KafkaClientOptions(bootstrapServers: bootstrapServers), groupID: groupID)
    }

    var properties: [String: String] {
        var properties = self.client.properties
        properties["group.id"] = self.groupID
        properties["group.instance.id"] = self.groupInstanceID
        properties["enable.auto.commit"] = "false"
        properties["enable.auto.offset.store"] = "false"
        properties["enable.partition.eof"] = "false"
        properties["auto.offset.reset"] = self.autoOffsetReset.rawValue
        properties["partition.assignment.strategy"] = self.assignmentStrategy
        properties["session.timeout.ms"] = String(self.sessionTimeout.milliseconds)
        properties["heartbeat.interval.ms"] = String(self.heartbeatInterval.milliseconds)
        properties["max.poll.interval.ms"] = String(self.maxPollInterval.milliseconds)
        properties["fetch.wait.max.ms"] = String(self.fetchWaitMax.milliseconds)
        properties.merge(self.client.additionalProperties) { _, raw in raw }
        return properties
    }

    /// `properties` with the `cgrp` debug context added when the join state is tracked, and
    /// whether debug lines go to the logger (only if the application asked for some itself).
    var clientProperties: (properties: [String: String], forwardsDebug: Bool) {
        var properties = self.properties
        let requested = (properties["debug"] ?? "").split(separator: ",").map { String($0.filter { !$0.isWhitespace }) }
            .filter { !$0.isEmpty }
        if self.tracksJoinState && !requested.contains("cgrp") && !requested.contains("all") {
            properties["debug"] = (requested + ["cgrp"]).joined(separator: ",")
        }
        return (properties, !requested.isEmpty)
    }
}
