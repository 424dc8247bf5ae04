import Crdkafka
public import Logging
import Synchronization

/// librdkafka's in-process mock cluster: real Kafka-protocol brokers on loopback ports that any
/// client (this module, kcat, other processes) can reach, with fault injection. For tests, the
/// demo and `cancel-worker dev-cluster`; it keeps data in memory only and does not support
/// transactional offset commits.
public final class KafkaMockCluster: Sendable {
    /// `host:port,...` of the mock brokers.
    public let bootstrapServers: String
    /// Broker ids are 1...brokerCount.
    public let brokerCount: Int

    /// The `fetch.wait.max.ms` for consumers of this cluster. A mock broker holds a fetch that
    /// finds no record for the whole wait, even when records arrive meanwhile (a real broker
    /// answers at once), so each consumer hop takes up to this long; 100 ms keeps the tests and
    /// the demo quick without polling the brokers ceaselessly.
    public static let fetchWait: Duration = .milliseconds(100)

    private let client: RDKafkaClient
    private let cluster: Mutex<ClusterHandle?>

    /// The `rd_kafka_mock_cluster_t *`; librdkafka's mock API is thread-safe.
    private struct ClusterHandle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    /// Starts `brokers` brokers.
    public init(brokers: Int = 3, logger: Logger) throws(KafkaError) {
        // The mock cluster needs a handle for its logging; it never connects anywhere.
        self.client = try RDKafkaClient(
            kind: .producer,
            properties: ["bootstrap.servers": "", "log.connection.close": "false"],
            callbacks: RDKafkaCallbacks(logger: logger)
        )
        guard let cluster = rd_kafka_mock_cluster_new(self.client.handle, Int32(brokers)) else {
            throw KafkaError(
                rdCode: RD_KAFKA_RESP_ERR__FAIL, message: "could not start a mock cluster with \(brokers) brokers")
        }
        self.cluster = Mutex(ClusterHandle(pointer: cluster))
        self.brokerCount = brokers
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        self.shutdown()
    }

    /// Stops every broker. Clients still connected see their connections refused.
    public func shutdown() {
        let cluster = self.cluster.withLock { cluster in
            defer { cluster = nil }
            return cluster
        }
        if let cluster {
            rd_kafka_mock_cluster_destroy(cluster.pointer)
        }
    }

    private func withCluster(_ what: String, _ body: (OpaquePointer) -> rd_kafka_resp_err_t) throws(KafkaError) {
        let code: rd_kafka_resp_err_t? = self.cluster.withLock { cluster in
            guard let cluster else { return nil }
            return body(cluster.pointer)
        }
        guard let code else { throw KafkaError.shutDown("mock cluster") }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(rdCode: code, message: "\(what): \(String(cString: rd_kafka_err2str(code)))")
        }
    }

    /// Creates a topic (an existing one is an error from the mock).
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) {
        try self.withCluster("create topic \(name)") {
            rd_kafka_mock_topic_create($0, name, Int32(partitions), Int32(replicationFactor))
        }
    }

    /// Takes a broker offline: its connections close and it refuses new ones until `setBrokerUp`.
    ///
    /// librdkafka 2.0's mock closes the broker's listening socket and binds a new one to the same
    /// port at once; if another socket took the port in between, it aborts the process
    /// ("Failed to bind mock broker socket … Address already in use", then an assertion). A
    /// process that binds many ports in parallel (the test process: every test starts brokers
    /// and servers on port 0) can hit that window, so tests there use `setBrokerRoundTrip`.
    public func setBrokerDown(_ brokerID: Int32) throws(KafkaError) {
        try self.withCluster("broker \(brokerID) down") { rd_kafka_mock_broker_set_down($0, brokerID) }
    }

    /// Brings a broker back.
    public func setBrokerUp(_ brokerID: Int32) throws(KafkaError) {
        try self.withCluster("broker \(brokerID) up") { rd_kafka_mock_broker_set_up($0, brokerID) }
    }

    /// Makes the next requests of `api` fail with these error codes, one per request, in order.
    public func pushRequestErrors(_ api: KafkaAPIKey, errors: [Int32]) throws(KafkaError) {
        var codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        let count = codes.count
        try self.withCluster("push request errors") { cluster in
            codes.withUnsafeMutableBufferPointer { buffer in
                rd_kafka_mock_push_request_errors_array(cluster, api.rawValue, count, buffer.baseAddress)
            }
            return RD_KAFKA_RESP_ERR_NO_ERROR
        }
    }

    /// Makes a broker answer every request `roundTrip` late (0: at once); a long one makes it
    /// unresponsive without closing its port.
    public func setBrokerRoundTrip(_ brokerID: Int32, _ roundTrip: Duration) throws(KafkaError) {
        let milliseconds = Int32(clamping: roundTrip.milliseconds)
        try self.withCluster("broker \(brokerID) round trip") {
            rd_kafka_mock_broker_set_rtt($0, brokerID, milliseconds)
        }
    }

    /// Moves a partition's leadership to another broker.
    public func setPartitionLeader(topic: String, partition: Int32, brokerID: Int32) throws(KafkaError) {
        try self.withCluster("partition leader") { rd_kafka_mock_partition_set_leader($0, topic, partition, brokerID) }
    }
}

/// Kafka protocol request types, for fault injection.
public enum KafkaAPIKey: Int16, Sendable {
    case produce = 0
    case fetch = 1
    case listOffsets = 2
    case metadata = 3
    case offsetCommit = 8
    case offsetFetch = 9
    case findCoordinator = 10
    case joinGroup = 11
    case heartbeat = 12
    case leaveGroup = 13
    case syncGroup = 14
    case initProducerID = 22
}
