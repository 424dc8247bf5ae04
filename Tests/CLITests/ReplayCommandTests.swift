import CancelCore
import Foundation
import Kafka
import Logging
import Testing

@Suite("cancel-worker replay and dlq as child processes", .timeLimit(.minutes(3)))
struct ReplayCommandTests {
    @Test(
        "dlq stats/list/show and a dry-run replay print what operators need; bad arguments exit non-zero with a message"
    )
    func operatorTools() async throws {
        let names = TopicNames.default
        let fixture = try await DeadLetterFixture(
            label: "replay-cli-tests", topics: [names.commands, names.deadLetters],
            headers: [KafkaHeader(name: "cw.error.message", string: "gave up after 10 attempts")])
        let (cluster, producer) = (fixture.cluster, fixture.producer)
        _ = try await producer.send(
            KafkaProducerMessage(
                topic: names.deadLetters, key: nil, value: Array("not json".utf8),
                headers: [
                    KafkaHeader(name: "cw.error.class", string: "invalid_command"),
                    KafkaHeader(name: "cw.error.message", string: "not a JSON object"),
                ]))
        await producer.shutdown()
        let settings = [
            "--set", "kafka.bootstrap-servers=\(cluster.bootstrapServers)", "--set", "ledger.url=memory:",
            "--log-level", "error",
        ]

        let stats = try ChildProcess(["dlq", "stats"] + settings)
        #expect(try await stats.waitForExit() == 0)
        let statsText = stats.lines.joined(separator: "\n")
        #expect(
            statsText.contains("dead letters: 2") && statsText.contains("retries_exhausted")
                && statsText.contains("invalid_command"), "\(statsText)")

        let list = try ChildProcess(["dlq", "list"] + settings)
        #expect(try await list.waitForExit() == 0)
        #expect(list.lines.contains { $0.hasPrefix("0@0\t") && $0.contains("key-1") })

        let show = try ChildProcess(["dlq", "show", "0@1"] + settings)
        #expect(try await show.waitForExit() == 0)
        #expect(show.lines.contains("not json") && show.lines.contains("  cw.error.class: invalid_command"))

        let dry = try ChildProcess(["replay", "--dry-run"] + settings)
        #expect(try await dry.waitForExit() == 0)
        let dryText = dry.lines.joined(separator: "\n")
        #expect(
            dryText.contains("would replay               1") && dryText.contains("not replayable           1"),
            "\(dryText)")
        #expect(dryText.contains("0@0\tretries_exhausted\tfastpod\tshop\tkey-1\twould replay"))

        let badLimit = try ChildProcess(["replay", "--limit", "0"] + settings)
        #expect(try await badLimit.waitForExit() == 64)
        #expect(badLimit.standardError.contains("--limit must be at least 1"))
        // Regression: `dlq list --limit -1` trapped in `prefix(-1)`, `replay --rate 1e-20` on the
        // first record's pacing (1000 / rate milliseconds beyond Int64).
        let negativeListLimit = try ChildProcess(["dlq", "list", "--limit=-1"] + settings)
        #expect(try await negativeListLimit.waitForExit() == 64, "\(negativeListLimit.standardError)")
        #expect(negativeListLimit.standardError.contains("--limit must be at least 0"))
        let tinyRate = try ChildProcess(["replay", "--rate", "1e-20"] + settings)
        #expect(try await tinyRate.waitForExit() == 64, "\(tinyRate.standardError)")
        #expect(tinyRate.standardError.contains("--rate must be from 0.001 to 1000000"))
        let badClass = try ChildProcess(["dlq", "list", "--error-class", "oops"] + settings)
        #expect(try await badClass.waitForExit() == 64)
        let badPosition = try ChildProcess(["dlq", "show", "here"] + settings)
        #expect(try await badPosition.waitForExit() == 64)
        let badConfig = try ChildProcess(["replay", "--set", "retry.tiers=soon"] + settings)
        #expect(try await badConfig.waitForExit() == 78)
        #expect(badConfig.standardError.contains("CANCEL_WORKER_RETRY_TIERS"))
    }
}
