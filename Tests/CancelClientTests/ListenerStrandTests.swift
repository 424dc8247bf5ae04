import CancelCore
import CancelWorkerTesting
import Crdkafka
import Foundation
import Testing

@testable import CancelClient
@testable import Kafka

/// Review finding (the upstream client): the worker restarts a partition whose fetch
/// librdkafka 2.0 lost (#2190, a fetch start overtaken by a flow-control pause or resume); the
/// client's listener, which pauses and resumes by the same flow control, did not, so every
/// `cancel` whose outcome went to such a partition waited out its timeout. The test strands the
/// listener's partitions as that race leaves them (taken out of librdkafka's assignment behind
/// the consumer's back; the race itself is a window of microseconds).
@Suite("The client's listener restarts a partition whose fetch was lost", .serialized, .timeLimit(.minutes(3)))
struct ListenerStrandTests {
    @Test("outcomes on stranded partitions reach their callers once the listener restarts the fetch")
    func strandedListenerRecovers() async throws {
        try await UpstreamFixture.with { fixture in
            let configuration = {
                var configuration = fixture.clientConfiguration
                configuration.strandTimeout = .milliseconds(1_500)
                return configuration
            }()
            try await fixture.withWorker {
                try await CancelClient.withRunning(configuration: configuration, logger: testLogger) { client in
                    let first = try await client.cancel(
                        .fastpod(id: "F-strand-0", account: "demo-1"), timeout: .seconds(60))
                    #expect(first.status == .cancelled)
                    let consumer = try #require(client.listenerConsumer)
                    let partitions = (0..<Int32(fixture.partitions)).map {
                        KafkaTopicPartition(topic: configuration.topics.outcomes, partition: $0)
                    }
                    let list = RDKafkaClient.makeList(partitions)
                    defer { rd_kafka_topic_partition_list_destroy(list) }
                    let error = rd_kafka_incremental_unassign(consumer.core.client.handle, list)
                    #expect(error == nil, "the listener's fetch stopped behind its back")
                    for index in 1...3 {
                        let outcome = try await client.cancel(
                            .fastpod(id: "F-strand-\(index)", account: "demo-\(index)"), timeout: .seconds(30))
                        #expect(outcome.status == .cancelled)
                    }
                }
            }
        }
    }
}
