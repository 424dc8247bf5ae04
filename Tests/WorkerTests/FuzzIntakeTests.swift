import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Testing

@testable import Worker

@Suite("Fuzzing the intake", .timeLimit(.minutes(5)))
struct FuzzIntakeTests {
    enum Kind: CaseIterable { case randomBytes, truncated, wrongTypes, hugeField, unknownProvider, badUTF8 }

    static func valid(_ index: Int) -> CancelCommand {
        CancelCommand(
            commandID: "valid-\(index)", idempotencyKey: "valid-\(index)", provider: .fastpod, account: "acct",
            order: .fastpod(id: "V\(index)"), requestedAt: Date())
    }

    /// A malformed record and whether it is addressable (a `rejected` outcome) or not (a dead letter).
    static func malformed(
        _ index: Int, _ kind: Kind, using random: inout SeededGenerator
    ) -> (bytes: [UInt8], addressable: Bool) {
        let template = Array(Self.valid(1_000_000 + index).encoded())
        switch kind {
        case .randomBytes:
            return (
                (0..<Int.random(in: 0...200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) },
                false
            )
        case .truncated:
            return (Array(template.prefix(Int.random(in: 0..<template.count, using: &random))), false)
        case .wrongTypes:
            let variants = [
                #"{"command_id":\#(index),"idempotency_key":"m-\#(index)","provider":"fastpod","account":"acct"}"#,
                #"{"command_id":"m","idempotency_key":["m-\#(index)"],"provider":"fastpod","account":"acct"}"#,
                #"[{"command_id":"m-\#(index)"}]"#,
                #""just a string""#,
                #"{"command_id":"m","idempotency_key":"m-\#(index)","provider":"fastpod","account":7,"order":{"id":"x"}}"#,
            ]
            return (Array(variants[index % variants.count].utf8), false)
        case .hugeField:
            if (index / Kind.allCases.count) % 2 == 0 {
                // Over the worker's record limit (2 KiB here). The sizes stay small because
                // librdkafka's mock brokers keep at most 5 MiB per partition and drop the oldest
                // records beyond it; the dead letters keep every payload.
                return (
                    Array(
                        #"{"command_id":"m","idempotency_key":"m-\#(index)","provider":"fastpod","account":"acct","order":{"id":"\#(String(repeating: "x", count: 2_500))"},"requested_at":"2026-01-01T00:00:00Z"}"#
                            .utf8), false
                )
            }
            // Under the record limit, but a field far over its own (idempotency_key: 256 bytes).
            return (
                Array(
                    #"{"command_id":"m","idempotency_key":"\#(String(repeating: "k", count: 1_500))","provider":"fastpod","account":"acct"}"#
                        .utf8), false
            )
        case .unknownProvider:
            return (
                Array(
                    #"{"command_id":"m-\#(index)","idempotency_key":"m-\#(index)","provider":"paypal-\#(index % 9)","account":"acct","order":{"id":"1"},"requested_at":"2026-01-01T00:00:00Z"}"#
                        .utf8), true
            )
        case .badUTF8:
            var bytes = Array(
                #"{"command_id":"m-\#(index)","idempotency_key":"m-\#(index)","provider":"fastpod","account":"#.utf8)
            bytes += [0x22, 0xC3, 0x28, 0xFF, 0xFE, 0x22, 0x7D]
            return (bytes, false)
        }
    }

    @Test(
        "10,000 malformed records mixed with valid ones: each malformed one answered with a reason, each valid one processed, the worker alive"
    )
    func fuzz() async throws {
        let harness = try await WorkerHarness(partitions: 8)
        let provider = ScriptedProvider(.fastpod)
        var configuration = harness.configuration()
        configuration.producerLinger = .milliseconds(5)
        configuration.maxCommandBytes = 2 * 1024
        let worker = CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        var random = SeededGenerator(seed: 20_261_122)
        let malformedCount = 10_000
        let validCount = 300
        var records: [(bytes: [UInt8], key: String?)] = []
        var addressable = 0
        for index in 0..<malformedCount {
            let kind = Kind.allCases[index % Kind.allCases.count]
            let (bytes, isAddressable) = Self.malformed(index, kind, using: &random)
            if isAddressable { addressable += 1 }
            records.append((bytes, index % 3 == 0 ? nil : "fastpod:acct-\(index % 50)"))
            if index % (malformedCount / validCount) == 0 && index / (malformedCount / validCount) < validCount {
                let valid = Self.valid(index / (malformedCount / validCount))
                records.append((valid.encoded(), valid.kafkaKey))
            }
        }
        let batch = records
        let addressableCount = addressable
        try await harness.withWorkers([worker]) {
            let records = batch
            let addressable = addressableCount
            try await harness.waitUntilAssigned([worker])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, record) in records.enumerated() {
                    group.addTask {
                        _ = try await harness.producer.send(
                            KafkaProducerMessage(
                                topic: harness.topics.commands, key: record.key.map { Array($0.utf8) },
                                value: record.bytes))
                    }
                    if index % 1_000 == 999 { try await group.waitForAll() }
                }
                try await group.waitForAll()
            }
            let outcomes = try await harness.outcomes(atLeast: validCount + addressable, timeout: .seconds(180))
            let deadLetters = try await harness.deadLetters(
                atLeast: malformedCount - addressable, timeout: .seconds(180))
            #expect(
                deadLetters.contains {
                    $0.headers.string(WorkerHeaders.errorMessage)?.contains("exceeds the 2048-byte limit") == true
                }, "oversized records")
            #expect(deadLetters.contains { $0.headers.string(WorkerHeaders.errorMessage) == "not UTF-8 text" })
            #expect(deadLetters.count == malformedCount - addressable, "every unaddressable record is dead-lettered")
            #expect(
                deadLetters.allSatisfy {
                    $0.headers.string(WorkerHeaders.errorClass) == "invalid_command"
                        && !($0.headers.string(WorkerHeaders.errorMessage) ?? "").isEmpty
                })
            let rejected = outcomes.filter { $0.status == .rejected }
            #expect(rejected.count == addressable && rejected.allSatisfy { $0.reason.contains("unknown provider") })
            let processed = outcomes.filter { $0.status == .cancelled }
            #expect(processed.count == validCount, "every valid command processed")
            #expect(provider.totalCalls == validCount)

            // Still alive and well.
            try await harness.send([command(.fastpod, account: "acct", order: "after-fuzz")])
            let after = try await harness.outcomes(atLeast: validCount + addressable + 1, timeout: .seconds(180))
            #expect(after.contains { $0.idempotencyKey == "fastpod-after-fuzz" && $0.status == .cancelled })
        }
    }
}
