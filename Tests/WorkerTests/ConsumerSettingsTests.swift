import Testing

@testable import Kafka
@testable import Worker

/// What the worker asks of librdkafka's consumer (issue 14: an idle worker's fetches).
@Suite("Consumer settings")
struct ConsumerSettingsTests {
    @Test("the worker's fetch wait is Kafka's default, 500 ms")
    func fetchWaitIsKafkasDefault() {
        let properties = WorkerConfiguration(bootstrapServers: "k1:9092").consumerConfiguration().properties
        #expect(properties["fetch.wait.max.ms"] == "500")
    }

    @Test("fetchWaitMax sets it; kafka.properties overrides both")
    func fetchWaitFollowsTheConfigurationAndKafkaProperties() {
        var configuration = WorkerConfiguration(bootstrapServers: "k1:9092")
        configuration.fetchWaitMax = KafkaMockCluster.fetchWait
        #expect(configuration.consumerConfiguration().properties["fetch.wait.max.ms"] == "100")
        configuration.kafka.additionalProperties["fetch.wait.max.ms"] = "250"
        #expect(configuration.consumerConfiguration().properties["fetch.wait.max.ms"] == "250")
    }

    @Test(
        "issue 14: the retry tiers' group takes retryFetchWaitMax, the commands' group does not; unset, both wait alike"
    )
    func retryFetchWait() {
        var configuration = WorkerConfiguration(bootstrapServers: "k1:9092")
        configuration.fetchWaitMax = .milliseconds(5)
        #expect(configuration.consumerConfiguration(.retries).properties["fetch.wait.max.ms"] == "5")
        configuration.retryFetchWaitMax = .milliseconds(500)
        #expect(configuration.consumerConfiguration(.retries).properties["fetch.wait.max.ms"] == "500")
        #expect(configuration.consumerConfiguration(.commands).properties["fetch.wait.max.ms"] == "5")
    }
}
