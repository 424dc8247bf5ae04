import Crdkafka
import Dispatch
public import Logging

/// A topic to create.
public struct KafkaNewTopic: Sendable, Hashable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    /// Topic-level configuration such as `retention.ms` or `cleanup.policy`.
    public var config: [String: String]

    public init(name: String, partitions: Int, replicationFactor: Int = 1, config: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.config = config
    }
}

/// What the cluster says about a topic.
public struct KafkaTopicDescription: Sendable, Hashable {
    public struct Partition: Sendable, Hashable {
        public var id: Int32
        public var leader: Int32
        public var replicas: [Int32]
        public var inSyncReplicas: [Int32]
    }

    public var name: String
    public var partitions: [Partition]
}

/// Cluster administration: create, list and describe topics. Calls run on a dispatch queue of
/// their own because librdkafka's admin API waits for the broker.
public final class KafkaAdminClient: Sendable {
    private let client: RDKafkaClient
    private let queue = DispatchQueue(label: "kafka-admin")

    public init(options: KafkaClientOptions, logger: Logger) throws(KafkaError) {
        var properties = options.properties
        properties.merge(options.additionalProperties) { _, raw in raw }
        self.client = try RDKafkaClient(
            kind: .producer, properties: properties, callbacks: RDKafkaCallbacks(logger: logger))
    }

    /// Creates the topics that do not exist yet. An existing topic counts as success (this is
    /// idempotent), whatever its partition count: compare with `describeTopic` if that matters.
    /// Returns the names that were newly created.
    @discardableResult
    public func createTopics(
        _ topics: [KafkaNewTopic], timeout: Duration = .seconds(30)
    ) async throws(KafkaError) -> [String] {
        try await self.blocking { client throws(KafkaError) in
            try Self.createTopics(client: client, topics: topics, timeout: timeout)
        }
    }

    /// All topic names in the cluster, internal ones (`__consumer_offsets`) excluded.
    public func listTopics(timeout: Duration = .seconds(10)) async throws(KafkaError) -> [String] {
        try await self.describeAll(timeout: timeout).map(\.name).filter { !$0.hasPrefix("__") }.sorted()
    }

    /// One topic's partitions with leaders and replicas; throws `UNKNOWN_TOPIC_OR_PART` if absent.
    public func describeTopic(
        _ name: String, timeout: Duration = .seconds(10)
    ) async throws(KafkaError) -> KafkaTopicDescription {
        guard let description = try await self.describeAll(timeout: timeout).first(where: { $0.name == name }) else {
            throw KafkaError(rdCode: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, message: "topic \(name) does not exist")
        }
        return description
    }

    private func describeAll(timeout: Duration) async throws(KafkaError) -> [KafkaTopicDescription] {
        try await self.blocking { client throws(KafkaError) in
            var metadata: UnsafePointer<rd_kafka_metadata>? = nil
            let code = rd_kafka_metadata(client.handle, 1, nil, &metadata, Int32(clamping: timeout.milliseconds))
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw KafkaError(rdCode: code)
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            return (0..<Int(metadata.pointee.topic_cnt)).compactMap { index in
                let topic = metadata.pointee.topics[index]
                guard topic.err == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
                let partitions = (0..<Int(topic.partition_cnt)).map { index in
                    let partition = topic.partitions[index]
                    return KafkaTopicDescription.Partition(
                        id: partition.id,
                        leader: partition.leader,
                        replicas: (0..<Int(partition.replica_cnt)).map { partition.replicas[$0] },
                        inSyncReplicas: (0..<Int(partition.isr_cnt)).map { partition.isrs[$0] }
                    )
                }.sorted { $0.id < $1.id }
                return KafkaTopicDescription(name: String(cString: topic.topic), partitions: partitions)
            }
        }
    }

    private static func createTopics(
        client: RDKafkaClient, topics: [KafkaNewTopic], timeout: Duration
    ) throws(KafkaError) -> [String] {
        guard !topics.isEmpty else { return [] }
        var errorText = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { newTopics.forEach { rd_kafka_NewTopic_destroy($0) } }
        for topic in topics {
            guard
                let newTopic = rd_kafka_NewTopic_new(
                    topic.name, Int32(topic.partitions), Int32(topic.replicationFactor), &errorText, errorText.count)
            else {
                throw KafkaError.configuration("topic \(topic.name): \(String(cBuffer: errorText))")
            }
            for (key, value) in topic.config.sorted(by: { $0.key < $1.key }) {
                _ = rd_kafka_NewTopic_set_config(newTopic, key, value)
            }
            newTopics.append(newTopic)
        }
        let options = rd_kafka_AdminOptions_new(client.handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_operation_timeout(
            options, Int32(clamping: timeout.milliseconds), &errorText, errorText.count)
        _ = rd_kafka_AdminOptions_set_request_timeout(
            options, Int32(clamping: timeout.milliseconds), &errorText, errorText.count)
        let resultQueue = rd_kafka_queue_new(client.handle)
        defer { rd_kafka_queue_destroy(resultQueue) }
        newTopics.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(client.handle, buffer.baseAddress, buffer.count, options, resultQueue)
        }
        guard let event = rd_kafka_queue_poll(resultQueue, Int32(clamping: timeout.milliseconds + 1_000)) else {
            throw KafkaError(
                rdCode: RD_KAFKA_RESP_ERR__TIMED_OUT, message: "create topics: no answer within \(timeout)")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(
                rdCode: eventError, message: "create topics: \(String(cString: rd_kafka_event_error_string(event)))")
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else {
            throw KafkaError(rdCode: RD_KAFKA_RESP_ERR__FAIL, message: "create topics: unexpected answer")
        }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return [] }
        var created: [String] = []
        for index in 0..<count {
            let topicResult = results[index]
            let name = String(cString: rd_kafka_topic_result_name(topicResult))
            let code = rd_kafka_topic_result_error(topicResult)
            switch code {
            case RD_KAFKA_RESP_ERR_NO_ERROR:
                created.append(name)
            case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
                continue
            default:
                let text = rd_kafka_topic_result_error_string(topicResult).map { String(cString: $0) } ?? ""
                throw KafkaError(rdCode: code, message: "create topic \(name): \(text)")
            }
        }
        return created
    }

    private func blocking<T: Sendable>(
        _ body: @escaping @Sendable (RDKafkaClient) throws(KafkaError) -> T
    ) async throws(KafkaError) -> T {
        let result: Result<T, KafkaError> = await withCheckedContinuation { continuation in
            self.queue.async { [client] in
                do throws(KafkaError) {
                    continuation.resume(returning: .success(try body(client)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }
}
