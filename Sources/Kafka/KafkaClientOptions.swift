/// Settings every Kafka client (producer, consumer, admin) shares: where the cluster is, who we
/// are, how to authenticate. Security settings are passed to librdkafka untouched.
public struct KafkaClientOptions: Sendable, Hashable {
    /// `host:port` of one or more brokers to bootstrap from.
    public var bootstrapServers: [String]
    /// `client.id`, visible in broker logs and quotas.
    public var clientID: String = "cancel-worker"
    /// `security.protocol`, `sasl.*` and `ssl.*` settings.
    public var security: KafkaSecurity = .plaintext
    /// `socket.timeout.ms`: how long a network request may take before it fails.
    public var socketTimeout: Duration = .seconds(60)
    /// `topic.metadata.refresh.interval.ms`.
    public var metadataRefreshInterval: Duration = .seconds(300)
    /// `reconnect.backoff.ms`: the first wait before reconnecting to a broker that went away.
    public var reconnectBackoff: Duration = .milliseconds(100)
    /// `reconnect.backoff.max.ms`: the upper bound of that wait.
    public var reconnectBackoffMax: Duration = .seconds(10)
    /// librdkafka `debug` contexts (e.g. `["cgrp", "topic"]`), routed to the logger at debug level.
    public var debugContexts: [String] = []
    /// Raw librdkafka properties, applied last: the escape hatch for everything not typed here.
    public var additionalProperties: [String: String] = [:]

    public init(bootstrapServers: [String]) {
        self.bootstrapServers = bootstrapServers
    }

    /// Accepts the comma separated form operators pass around (`"b1:9092,b2:9092"`).
    public init(bootstrapServers: String) {
        self.init(bootstrapServers: bootstrapServers.split(separator: ",").map { String($0).trimmed })
    }

    var properties: [String: String] {
        var properties: [String: String] = [
            "bootstrap.servers": self.bootstrapServers.joined(separator: ","),
            "client.id": self.clientID,
            "socket.timeout.ms": String(self.socketTimeout.milliseconds),
            "topic.metadata.refresh.interval.ms": String(self.metadataRefreshInterval.milliseconds),
            "reconnect.backoff.ms": String(self.reconnectBackoff.milliseconds),
            "reconnect.backoff.max.ms": String(self.reconnectBackoffMax.milliseconds),
        ]
        if !self.debugContexts.isEmpty {
            properties["debug"] = self.debugContexts.joined(separator: ",")
        }
        properties.merge(self.security.properties) { _, new in new }
        return properties
    }
}

/// How the client authenticates. Anything beyond these fields goes through
/// `KafkaClientOptions.additionalProperties`, which librdkafka receives as written.
public struct KafkaSecurity: Sendable, Hashable {
    /// `security.protocol`: `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    public var `protocol`: String
    /// `sasl.mechanism`, e.g. `PLAIN`, `SCRAM-SHA-512`.
    public var saslMechanism: String?
    /// `sasl.username`.
    public var saslUsername: String?
    /// `sasl.password`: passed to librdkafka only, never logged or described.
    public var saslPassword: String?
    /// `ssl.ca.location`.
    public var sslCALocation: String?

    public init(
        protocol: String,
        saslMechanism: String? = nil,
        saslUsername: String? = nil,
        saslPassword: String? = nil,
        sslCALocation: String? = nil
    ) {
        self.protocol = `protocol`
        self.saslMechanism = saslMechanism
        self.saslUsername = saslUsername
        self.saslPassword = saslPassword
        self.sslCALocation = sslCALocation
    }

    /// No encryption, no authentication: loopback clusters and the embedded mock cluster.
    public static let plaintext = KafkaSecurity(protocol: "plaintext")

    var properties: [String: String] {
        var properties = ["security.protocol": self.protocol]
        properties["sasl.mechanism"] = self.saslMechanism
        properties["sasl.username"] = self.saslUsername
        properties["sasl.password"] = self.saslPassword
        properties["ssl.ca.location"] = self.sslCALocation
        return properties
    }
}

/// Property names whose values must never be printed.
let secretPropertyMarkers = ["password", "secret", "key.pem", "sasl.oauthbearer.config", "ssl.key"]

extension Dictionary where Key == String, Value == String {
    /// The properties with every secret value replaced, for logs and error messages.
    var redacted: [String: String] {
        var copy = self
        for key in copy.keys where secretPropertyMarkers.contains(where: { key.contains($0) }) {
            copy[key] = "[REDACTED]"
        }
        return copy
    }
}

extension Duration {
    /// Whole milliseconds, the unit of most librdkafka properties (the bench writes them too).
    package var milliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

extension String {
    var trimmed: String {
        var view = Substring(self)
        while view.first?.isWhitespace == true { view.removeFirst() }
        while view.last?.isWhitespace == true { view.removeLast() }
        return String(view)
    }
}

// Described, debug-printed, dumped or mirrored, the options never show a secret: the SASL
// password and every secret raw property read `[REDACTED]` (a service that logs its client's
// configuration must not log its credentials).
extension KafkaSecurity: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "KafkaSecurity(protocol: \(self.protocol), saslMechanism: \(self.saslMechanism ?? "-"), saslUsername: "
            + "\(self.saslUsername ?? "-"), saslPassword: \(self.saslPassword == nil ? "-" : "[REDACTED]"), "
            + "sslCALocation: \(self.sslCALocation ?? "-"))"
    }

    public var debugDescription: String { self.description }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "protocol": self.protocol, "saslMechanism": self.saslMechanism as Any,
                "saslUsername": self.saslUsername as Any,
                "saslPassword": (self.saslPassword == nil ? nil : "[REDACTED]") as Any,
                "sslCALocation": self.sslCALocation as Any,
            ])
    }
}

extension KafkaClientOptions: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "KafkaClientOptions(bootstrapServers: \(self.bootstrapServers), clientID: \(self.clientID), security: "
            + "\(self.security), additionalProperties: \(self.additionalProperties.redacted.sorted { $0.key < $1.key }))"
    }

    public var debugDescription: String { self.description }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "bootstrapServers": self.bootstrapServers, "clientID": self.clientID, "security": self.security,
                "socketTimeout": self.socketTimeout, "metadataRefreshInterval": self.metadataRefreshInterval,
                "reconnectBackoff": self.reconnectBackoff, "reconnectBackoffMax": self.reconnectBackoffMax,
                "debugContexts": self.debugContexts, "additionalProperties": self.additionalProperties.redacted,
            ])
    }
}
