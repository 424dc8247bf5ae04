import CancelCore
import CancelWorkerTesting
import Crdkafka
import MetricsTestKit
import Testing

@testable import Kafka
@testable import Worker

/// librdkafka 2.0 can lose an owned partition's fetch start to a pause or resume that overtakes
/// it (librdkafka #2190); the worker's flow control pauses and resumes partitions as its buffer
/// fills and drains. Such a partition stays assigned and fetches nothing; the worker
/// restarts its fetch (`strandTimeout`). The partition is stranded here as the race leaves it,
/// by taking it out of librdkafka's assignment behind the consumer's back.
@Suite("Stranded partitions (worker)", .timeLimit(.minutes(2)))
struct WorkerStrandedPartitionTests {
    /// An account of the FastPOD provider whose commands go to `partition` of 2.
    static func account(on partition: Int32) -> String {
        (0..<100).lazy.map { "user-\($0)" }.first { account in
            let key = Array(CancelCommand.kafkaKey(provider: ProviderID.fastpod.rawValue, account: account).utf8)
            return KafkaPartitioner.partition(forKey: key, partitionCount: 2) == partition
        }!
    }

    @Test("a commands partition whose fetch was lost is restarted: its commands are answered, the restart counted")
    func strandedCommandsPartitionRestarts() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        var configuration = harness.configuration(workerID: "strand")
        configuration.strandTimeout = .milliseconds(1500)
        let (flowing, stranded) = (Self.account(on: 0), Self.account(on: 1))
        let provider = ScriptedProvider(.fastpod, accounts: [flowing, stranded])
        let metrics = TestMetrics()
        let worker = CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger, metricsFactory: metrics)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send([
                command(.fastpod, account: flowing, order: "o-0"), command(.fastpod, account: stranded, order: "o-1"),
            ])
            _ = try await harness.outcomes(atLeast: 2)

            let consumer = try #require(worker.consumersBox.withLock { $0 }).commands
            let list = RDKafkaClient.makeList([KafkaTopicPartition(topic: harness.topics.commands, partition: 1)])
            defer { rd_kafka_topic_partition_list_destroy(list) }
            #expect(rd_kafka_incremental_unassign(consumer.core.client.handle, list) == nil)

            try await harness.send(
                (2..<5).map { command(.fastpod, account: stranded, order: "o-\($0)") }
                    + [command(.fastpod, account: flowing, order: "o-5")])
            let outcomes = try await harness.outcomes(atLeast: 6, timeout: .seconds(30))
            #expect(Set(outcomes.map(\.commandID)).count == 6)
            #expect(outcomes.allSatisfy { $0.status == .cancelled })
            let restarts = try metrics.expectCounter(
                WorkerMetrics.fetchRestarts, [("topic", harness.topics.commands)])
            #expect(restarts.totalValue == 1)
        }
    }
}
