import CancelWorkerTesting
import Foundation
import Logging
import Synchronization
import Testing

@testable import Kafka

/// librdkafka 2.0 commits whatever its join state; a commit sent while its JoinGroup is pending
/// is answered `ILLEGAL_GENERATION` and taken for a lost assignment (librdkafka #4059). The
/// consumer follows the join state from librdkafka's `cgrp` debug lines so that its
/// application can hold commits while it rebalances.
@Suite("A consumer's group join state", .timeLimit(.minutes(2)))
struct GroupJoinStateTests {
    @Test(
        "a CGRPJOINSTATE line names the new state; init and steady are not rebalancing",
        arguments: [
            ("Group \"g\" changed join state init -> wait-join (state up)", "wait-join", true),
            ("Group \"g\" changed join state wait-assign-call -> steady (state up)", "steady", false),
            ("Group \"g\" changed join state steady -> wait-unassign-call (state up)", "wait-unassign-call", true),
            ("Group \"g\" changed join state wait-join -> init (state term)", "init", false),
        ])
    func parse(line: String, name: String, rebalancing: Bool) {
        let state = GroupJoinState(logLine: line)
        #expect(state?.name == name)
        #expect(state?.isRebalancing == rebalancing)
    }

    @Test("other lines change nothing")
    func otherLines() {
        #expect(GroupJoinState(logLine: "Group \"g\" changed state up -> query-coord") == nil)
        #expect(GroupJoinState(logLine: "Group \"g\" changed join state ") == nil)
    }

    @Test(
        "only a consumer that tracks its join state gets the cgrp debug context; its lines are logged only if asked for"
    )
    func debugContext() {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: "127.0.0.1:9", groupID: "g")
        #expect(configuration.clientProperties.properties["debug"] == nil)
        #expect(!configuration.clientProperties.forwardsDebug)
        configuration.tracksJoinState = true
        #expect(configuration.clientProperties.properties["debug"] == "cgrp")
        #expect(!configuration.clientProperties.forwardsDebug, "on for the state only")
        configuration.client.additionalProperties["debug"] = "broker, topic"
        #expect(configuration.clientProperties.properties["debug"] == "broker,topic,cgrp")
        #expect(configuration.clientProperties.forwardsDebug)
        configuration.client.additionalProperties["debug"] = "all"
        #expect(configuration.clientProperties.properties["debug"] == "all")
        configuration.tracksJoinState = false
        configuration.client.additionalProperties["debug"] = "broker"
        #expect(configuration.clientProperties.properties["debug"] == "broker")
        #expect(configuration.clientProperties.forwardsDebug)
    }

    @Test(
        "a member is rebalancing while another joins, and steady before and after; the cgrp lines stay out of the log")
    func followsAJoin() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: testLogger)
        let topic = uniqueName("join-state")
        try cluster.createTopic(topic, partitions: 4)
        let group = uniqueName("g")
        let logs = CapturedLogs(level: .trace)
        var tracking = consumerConfiguration(cluster, group: group)
        tracking.tracksJoinState = true
        let first = try KafkaConsumer(
            configuration: tracking, topics: [topic],
            rebalanceListener: RecordingListener(), logger: logs.logger)
        let sawRebalancing = Mutex(false)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await first.run() }
            #expect(try await eventually(timeout: .seconds(30)) { first.assignment.count == 4 && !first.isRebalancing })
            // Subscribed when it is made: the second member joins now.
            let second = try KafkaConsumer(
                configuration: consumerConfiguration(cluster, group: group), topics: [topic],
                rebalanceListener: RecordingListener(), logger: testLogger)
            tasks.addTask { try await second.run() }
            // The mock coordinator holds the join open for the session timeout - 1 s (5 s here).
            let joined = try await eventually(timeout: .seconds(30)) {
                if first.isRebalancing { sawRebalancing.withLock { $0 = true } }
                return second.assignment.count == 2 && first.assignment.count == 2
            }
            #expect(joined, "the second member got its share")
            #expect(sawRebalancing.withLock { $0 }, "the first member was seen rebalancing")
            #expect(try await eventually(timeout: .seconds(30)) { !first.isRebalancing }, "and steady after it")
            first.close()
            second.close()
            try await tasks.waitForAll()
        }
        #expect(
            !logs.lines.contains { $0.metadata["rdkafka.facility"].map { "\($0)" } == "CGRPJOINSTATE" },
            "no librdkafka debug line reaches a logger that did not ask for them")
    }
}
