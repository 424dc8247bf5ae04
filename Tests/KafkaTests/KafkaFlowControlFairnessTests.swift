import CancelWorkerTesting
import Foundation
import Kafka
import Testing

/// Flow control must not let one partition's backlog starve the others. librdkafka drops the
/// records it fetched for a partition and not yet handed over when that partition is paused,
/// and fetches again after the resume, starting with the partition resumed first. A consumer
/// that paused every partition whenever its buffer filled therefore dropped a quiet
/// partition's record every time one fetch of a busy partition filled the buffer, and the
/// record waited until the busy partition's whole backlog had drained — for the worker, one
/// user's backlog delaying other users' cancels.
@Suite("Flow control is fair between partitions", .timeLimit(.minutes(2)))
struct KafkaFlowControlFairnessTests {
    @Test("regression: a quiet partition's record waits behind at most a buffer of a busy partition's backlog")
    func quietPartitionIsNotStarved() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("fair")
        let quiet = 7
        try cluster.createTopic(topic, partitions: quiet + 1)
        let producer = try KafkaProducer(configuration: producerConfiguration(cluster), logger: testLogger)
        let backlog = 20_000
        // 500 sends at a time: 20,000 tasks at once starved the cooperative pool that the other
        // suites of the test process share (a fresh-clone CI run saw five provider calls in
        // another suite time out meanwhile).
        for start in stride(from: 0, to: backlog, by: 500) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in start..<min(start + 500, backlog) {
                    group.addTask {
                        _ = try await producer.send(
                            KafkaProducerMessage(topic: topic, partition: 0, key: "busy", value: "busy-\(index)"))
                    }
                }
                try await group.waitForAll()
            }
        }
        var configuration = consumerConfiguration(cluster, group: uniqueName("g"))
        configuration.bufferCapacity = 200
        let capacity = configuration.bufferCapacity
        let consumer = try KafkaConsumer(configuration: configuration, topics: [topic], logger: testLogger)
        // The busy partition's records fill the buffer; then each quiet partition gets one.
        #expect(try await eventually(timeout: .seconds(30)) { consumer.activity.fetchPaused })
        for partition in Int32(1)...Int32(quiet) {
            _ = try await producer.send(
                KafkaProducerMessage(topic: topic, partition: partition, key: "quiet", value: "quiet-\(partition)"))
        }
        await producer.shutdown()
        // The quiet partitions go on fetching while the busy one is paused: each hands over its
        // record, beyond the buffer's capacity by one record per partition. (Before the fix every
        // partition was paused: the quiet records were fetched only after the buffer drained,
        // behind the busy partition's next batch, and dropped with it at the next pause — unless
        // a quiet partition happened to be resumed first: the resume order was a set's.)
        #expect(
            try await eventually(timeout: .seconds(10)) {
                consumer.activity.buffered >= capacity + quiet
            }, "buffered: \(consumer.activity.buffered)")
        var received = 0
        var quietAt: [Int32: Int] = [:]
        var busyOffsets: [Int64] = []
        for try await message in consumer.messages {
            received += 1
            if message.partition == 0 {
                busyOffsets.append(message.offset)
            } else {
                quietAt[message.partition] = received
            }
            if quietAt.count == quiet { break }
            if received == backlog + quiet { break }
        }
        consumer.close()
        #expect(quietAt.count == quiet, "every quiet partition's record arrived")
        // Flow control lets each partition hand over one record beyond the buffer's capacity.
        let bound = capacity + 1 + quiet
        for (partition, position) in quietAt.sorted(by: { $0.key < $1.key }) {
            #expect(position <= bound, "partition \(partition)'s record was number \(position) of \(received)")
        }
        #expect(busyOffsets == Array(0..<Int64(busyOffsets.count)), "the busy partition is contiguous")
    }
}
