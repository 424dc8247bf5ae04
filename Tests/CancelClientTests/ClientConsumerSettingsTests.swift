import Testing

@testable import CancelClient
@testable import Kafka

/// What the client's outcome consumer asks of librdkafka (issue 14: an idle client's fetches).
@Suite("Upstream client: outcome consumer settings")
struct ClientConsumerSettingsTests {
    @Test("the outcome consumer's fetch wait is Kafka's default, 500 ms, and follows outcomeFetchWait")
    func fetchWait() {
        var configuration = CancelClientConfiguration(bootstrapServers: "k1:9092")
        #expect(configuration.consumer(group: "g").properties["fetch.wait.max.ms"] == "500")
        configuration.outcomeFetchWait = KafkaMockCluster.fetchWait
        #expect(configuration.consumer(group: "g").properties["fetch.wait.max.ms"] == "100")
    }
}
