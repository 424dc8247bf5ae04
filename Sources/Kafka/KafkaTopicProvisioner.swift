/// Something that can make sure topics exist: the admin client on a real cluster, or the mock
/// cluster's own API (librdkafka 2.0's mock brokers do not implement the CreateTopics request).
public protocol KafkaTopicProvisioner: Sendable {
    /// Creates the topics that are missing; existing ones are left as they are. Returns the
    /// names that were newly created.
    func ensureTopics(_ topics: [KafkaNewTopic]) async throws(KafkaError) -> [String]
}

extension KafkaAdminClient: KafkaTopicProvisioner {
    public func ensureTopics(_ topics: [KafkaNewTopic]) async throws(KafkaError) -> [String] {
        try await self.createTopics(topics)
    }
}

extension KafkaMockCluster: KafkaTopicProvisioner {
    public func ensureTopics(_ topics: [KafkaNewTopic]) async throws(KafkaError) -> [String] {
        var created: [String] = []
        for topic in topics {
            do {
                try self.createTopic(
                    topic.name, partitions: topic.partitions, replicationFactor: topic.replicationFactor)
                created.append(topic.name)
            } catch  where error.code == KafkaError.Code.topicAlreadyExists {
                continue
            }
        }
        return created
    }
}
