import Crdkafka

/// An error raised by the Kafka layer: librdkafka's own error code and description, plus the
/// flags an operator or a retry loop needs (is the client dead, is the operation worth retrying).
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t` value (negative values are client-side errors,
    /// positive ones come from the broker).
    public var code: Int32
    /// librdkafka's symbolic name for `code`, e.g. `_MSG_TIMED_OUT` or `UNKNOWN_TOPIC_OR_PART`.
    public var name: String
    /// A human readable explanation; never contains credentials (librdkafka does not echo them).
    public var message: String
    /// The client instance is unusable and must be recreated.
    public var isFatal: Bool
    /// The operation may succeed if retried.
    public var isRetriable: Bool

    public init(code: Int32, name: String, message: String, isFatal: Bool = false, isRetriable: Bool = false) {
        self.code = code
        self.name = name
        self.message = message
        self.isFatal = isFatal
        self.isRetriable = isRetriable
    }

    public var description: String {
        var flags: [String] = []
        if self.isFatal { flags.append("fatal") }
        if self.isRetriable { flags.append("retriable") }
        let suffix = flags.isEmpty ? "" : " [\(flags.joined(separator: ", "))]"
        return "KafkaError(\(self.name), \(self.code)): \(self.message)\(suffix)"
    }
}

extension KafkaError {
    /// Well-known codes the public API reasons about, so callers need not import librdkafka.
    public enum Code {
        public static let queueFull: Int32 = Int32(RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue)
        /// librdkafka's "a fatal error was raised": the client is unusable (`rd_kafka_fatal_error`).
        public static let fatal: Int32 = Int32(RD_KAFKA_RESP_ERR__FATAL.rawValue)
        public static let messageTimedOut: Int32 = Int32(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT.rawValue)
        public static let timedOut: Int32 = Int32(RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue)
        public static let topicAlreadyExists: Int32 = Int32(RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS.rawValue)
        public static let unknownTopicOrPartition: Int32 = Int32(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue)
        public static let notLeaderForPartition: Int32 = Int32(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue)
        public static let leaderNotAvailable: Int32 = Int32(RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE.rawValue)
        public static let requestTimedOut: Int32 = Int32(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue)
        public static let brokerNotAvailable: Int32 = Int32(RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE.rawValue)
        public static let notEnoughReplicas: Int32 = Int32(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS.rawValue)
        public static let notCoordinator: Int32 = Int32(RD_KAFKA_RESP_ERR_NOT_COORDINATOR.rawValue)
        public static let illegalGeneration: Int32 = Int32(RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION.rawValue)
        public static let rebalanceInProgress: Int32 = Int32(RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS.rawValue)
        public static let state: Int32 = Int32(RD_KAFKA_RESP_ERR__STATE.rawValue)
        /// An operation on a partition overtaken by a newer one (a fetch start, another seek)
        /// before librdkafka applied it (`KafkaConsumer.seek`).
        public static let outdated: Int32 = Int32(RD_KAFKA_RESP_ERR__OUTDATED.rawValue)
        /// A commit of partitions revoked while the rebalance listener was late (`KafkaConsumer.commit`).
        public static let assignmentLost: Int32 = Int32(RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST.rawValue)
        public static let invalidArgument: Int32 = Int32(RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue)
        public static let unknownPartition: Int32 = Int32(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION.rawValue)
        public static let noOffset: Int32 = Int32(RD_KAFKA_RESP_ERR__NO_OFFSET.rawValue)
    }

    /// Builds an error from a librdkafka response code.
    init(rdCode: rd_kafka_resp_err_t, message: String? = nil, isFatal: Bool = false, isRetriable: Bool = false) {
        let name = String(cString: rd_kafka_err2name(rdCode))
        let description = String(cString: rd_kafka_err2str(rdCode))
        self.init(
            code: Int32(rdCode.rawValue),
            name: name,
            message: message ?? description,
            isFatal: isFatal,
            isRetriable: isRetriable || KafkaError.retriableCodes.contains(Int32(rdCode.rawValue))
        )
    }

    /// Builds an error from a librdkafka `rd_kafka_error_t`, taking ownership of it.
    init(consuming error: OpaquePointer) {
        defer { rd_kafka_error_destroy(error) }
        self.init(
            rdCode: rd_kafka_error_code(error),
            message: String(cString: rd_kafka_error_string(error)),
            isFatal: rd_kafka_error_is_fatal(error) != 0,
            isRetriable: rd_kafka_error_is_retriable(error) != 0
        )
    }

    /// Codes librdkafka itself treats as transient in the producer and consumer paths.
    private static let retriableCodes: Set<Int32> = [
        Code.queueFull, Code.messageTimedOut, Code.timedOut, Code.notLeaderForPartition,
        Code.leaderNotAvailable, Code.requestTimedOut, Code.brokerNotAvailable, Code.notEnoughReplicas,
        Code.notCoordinator, Int32(RD_KAFKA_RESP_ERR__TRANSPORT.rawValue),
        Int32(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue),
    ]

    /// A configuration the library refused, with librdkafka's explanation.
    static func configuration(_ message: String) -> KafkaError {
        KafkaError(code: Code.invalidArgument, name: "_INVALID_ARG", message: message)
    }

    /// The client was shut down before the operation could complete.
    static func shutDown(_ what: String) -> KafkaError {
        KafkaError(
            code: Int32(RD_KAFKA_RESP_ERR__DESTROY.rawValue), name: "_DESTROY", message: "\(what): client is shut down")
    }
}
