import CancelWorkerTesting
import Crdkafka
import Foundation
import Synchronization
import Testing

@testable import Kafka

/// Destroying a consumer handle must never close it again: the poll thread closes consumers
/// before it stops, and a close run by `rd_kafka_destroy` calls the rebalance callback of an
/// owner that is being torn down, on whatever thread dropped the last reference.
@Suite("Destroying a consumer handle", .timeLimit(.minutes(1)))
struct ConsumerDestroyTests {
    /// Regression: the fresh-clone CI run hung — a cooperative thread that released an outcome
    /// reader's consumer blocked for good in rd_kafka_destroy → rd_kafka_consumer_close.
    @Test("regression: releasing a subscribed consumer that was never closed runs no rebalance callback")
    func destroyDoesNotClose() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("destroy")
        try cluster.createTopic(topic, partitions: 2)
        let events = Mutex<[String]>([])
        let callbacks = RDKafkaCallbacks(
            logger: testLogger,
            rebalance: { handle, code, list in
                if code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                    events.withLock { $0.append("assigned") }
                    rd_kafka_assign(handle, list)
                } else {
                    events.withLock { $0.append("revoked") }
                    rd_kafka_assign(handle, nil)
                }
            })
        var client: RDKafkaClient? = try RDKafkaClient(
            kind: .consumer,
            properties: [
                "bootstrap.servers": cluster.bootstrapServers, "group.id": uniqueName("g"),
                "partition.assignment.strategy": "range", "session.timeout.ms": "6000",
            ],
            callbacks: callbacks)
        let handle = try #require(client?.handle)
        let list = rd_kafka_topic_partition_list_new(1)
        rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA)
        #expect(rd_kafka_subscribe(handle, list) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_topic_partition_list_destroy(list)
        // Poll (100 ms at a time) until the group assigned the partitions.
        let deadline = ContinuousClock.now + .seconds(30)
        while events.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline {
            if let message = rd_kafka_consumer_poll(handle, 100) { rd_kafka_message_destroy(message) }
            await Task.yield()
        }
        #expect(events.withLock { $0 } == ["assigned"])

        // Released without a close, as when the poll thread ended without closing.
        let released = Mutex(false)
        let holder = Holder(client)
        client = nil
        Thread.detachNewThread {
            holder.release()  // the last reference: deinit, rd_kafka_destroy, here
            released.withLock { $0 = true }
        }
        #expect(try await eventually(timeout: .seconds(30)) { released.withLock { $0 } }, "the destroy returned")
        #expect(events.withLock { $0 } == ["assigned"], "no rebalance callback during the destroy")
    }
}

/// Holds the last reference to a client until `release()`.
private final class Holder: Sendable {
    private let client: Mutex<RDKafkaClient?>
    init(_ client: RDKafkaClient?) { self.client = Mutex(client) }
    func release() {
        let last = self.client.withLock { client in
            defer { client = nil }
            return client
        }
        _ = last
    }
}
