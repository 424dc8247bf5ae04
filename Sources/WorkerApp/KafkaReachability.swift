public import Kafka
import Logging

/// A bounded "does any broker answer?" check, so operator tools fail in seconds with a message
/// naming the brokers instead of waiting for librdkafka's own timeouts (minutes).
public enum KafkaReachability {
    /// No broker answered a metadata request in time.
    public struct Unreachable: Error, CustomStringConvertible {
        public var brokers: [String]
        public var timeout: Duration
        /// librdkafka's error name, e.g. `_TRANSPORT` or `_TIMED_OUT`.
        public var reason: String

        public var description: String {
            let brokers = self.brokers.joined(separator: ",")
            return
                "no Kafka broker answered at \(brokers) within \(self.timeout.settingText) (\(self.reason)); check --brokers"
                + " or kafka.bootstrap-servers (CANCEL_WORKER_KAFKA_BOOTSTRAP_SERVERS) and that Kafka is running"
        }
    }

    /// Asks the cluster for its metadata, waiting at most `timeout`. librdkafka's connection
    /// errors are not logged: the thrown error says it all.
    public static func check(_ options: KafkaClientOptions, timeout: Duration) async throws(Unreachable) {
        let quiet = Logger(label: "kafka-reachability") { _ in SwiftLogNoOpLogHandler() }
        do {
            let admin = try KafkaAdminClient(options: options, logger: quiet)
            _ = try await admin.listTopics(timeout: timeout)
        } catch {
            throw Unreachable(brokers: options.bootstrapServers, timeout: timeout, reason: error.name)
        }
    }
}
