import CancelClient
import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Testing

/// The contract for services in other languages (README "For upstream services"): the Python
/// example in `examples/python/` runs against the mock cluster and a worker, as a separate
/// process with its own librdkafka (confluent-kafka from PyPI).
@Suite("The wire contract for other languages", .serialized, .timeLimit(.minutes(5)))
struct WireContractTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("the Python example's records land on CancelClient's partitions, and it gets every outcome")
    func pythonExample() async throws {
        try Self.ensureConfluentKafka()
        try await UpstreamFixture.with(partitions: 6) { fixture in
            // 12 users: four providers, three accounts each.
            let users: [(ProviderID, OrderReference, String)] = ["demo-1", "demo-2", "demo-3"].flatMap { account in
                [
                    (ProviderID.fastpod, OrderReference.fastpod(id: "py-\(account)"), account),
                    (.fungies, .fungies(orderIDOrNumber: "py-\(account)"), account),
                    (.futures, .futures(orderID: Int64(account.utf8.last ?? 0) + 9_000), account),
                    (
                        .taker,
                        .taker(
                            orderHash: "0xpy-\(account)", takerAddress: "0xt", cancellationSuccess: true, message: "ok"),
                        account
                    ),
                ]
            }
            let pythonCommands = users.map { _, order, account in CancelCommand(order: order, account: account) }
            let input = pythonCommands.map { String(decoding: $0.encoded(), as: UTF8.self) }.joined(separator: "\n")

            let output = try await fixture.withWorker {
                try await Self.runPython(
                    [
                        "examples/python/cancel_and_wait.py", "--brokers", fixture.cluster.bootstrapServers,
                        "--timeout", "90",
                    ],
                    input: input, timeout: .seconds(150))
            }
            #expect(output.status == 0, "exit \(output.status): \(output.standardError)")
            let lines = output.standardOutput.split(separator: "\n").map(String.init)
            // sent <idempotency key> <kafka key> <partition> <offset>
            var pythonPartitions: [String: Int32] = [:]
            for line in lines where line.hasPrefix("sent ") {
                let fields = line.split(separator: " ")
                pythonPartitions[String(fields[2])] = Int32(fields[3])
            }
            let outcomes = lines.filter { $0.hasPrefix("{") }.compactMap { try? CancelOutcome.decode(Array($0.utf8)) }
            #expect(pythonPartitions.count == 12, "\(lines)")
            #expect(Set(outcomes.map(\.idempotencyKey)) == Set(pythonCommands.map(\.idempotencyKey)))
            #expect(outcomes.allSatisfy { $0.status == .cancelled }, "\(outcomes.map(\.status))")

            // The same users through CancelClient (other idempotency keys): the same partitions.
            let swiftPartitions = try await CancelClient.withRunning(
                configuration: fixture.clientConfiguration, logger: testLogger
            ) { client in
                var partitions: [String: Int32] = [:]
                for (_, order, account) in users {
                    let enqueued = try await client.enqueue(
                        CancelCommand(order: order, account: account, idempotencyKey: "swift-\(UUID().uuidString)"))
                    partitions[enqueued.kafkaKey] = enqueued.partition
                }
                return partitions
            }
            #expect(swiftPartitions == pythonPartitions)
            #expect(Set(pythonPartitions.values).count > 1, "the keys spread over several partitions")
            for (key, partition) in swiftPartitions {
                #expect(partition == KafkaPartitioner.partition(forKey: Array(key.utf8), partitionCount: 6))
            }
        }
    }

    /// confluent-kafka from PyPI, as `scripts/ensure-packages.sh` installs it.
    static func ensureConfluentKafka() throws {
        if try Self.run(["python3", "-c", "import confluent_kafka"]) == 0 { return }
        var installed = try Self.run(["python3", "-m", "pip", "install", "--quiet", "confluent-kafka"])
        if installed != 0 {
            // A Debian-managed python3 refuses plain pip installs.
            installed = try Self.run([
                "python3", "-m", "pip", "install", "--quiet", "--break-system-packages", "confluent-kafka",
            ])
        }
        try #require(installed == 0, "pip install confluent-kafka failed (exit \(installed))")
    }

    static func run(_ arguments: [String]) throws -> Int32 {
        try SpawnedProcess(executable: "/usr/bin/env", arguments: arguments).waitBlocking()
    }

    struct Output: Sendable {
        var status: Int32
        var standardOutput: String
        var standardError: String
    }

    /// Runs a script from the repository root with `input` on standard input; killed after `timeout`.
    static func runPython(_ arguments: [String], input: String, timeout: Duration) async throws -> Output {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wire-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = ["in", "out", "err"].map { directory.appendingPathComponent($0) }
        try Data(input.utf8).write(to: files[0])
        for file in files.dropFirst() { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
        let handles = [
            try FileHandle(forReadingFrom: files[0]), try FileHandle(forWritingTo: files[1]),
            try FileHandle(forWritingTo: files[2]),
        ]
        let process = try SpawnedProcess(
            executable: "/usr/bin/env", arguments: ["python3"] + arguments, directory: Self.root.path,
            standardInput: handles[0].fileDescriptor, standardOutput: handles[1].fileDescriptor,
            standardError: handles[2].fileDescriptor)
        for handle in handles { try handle.close() }
        var status = try await process.waitForExit(timeout: timeout)
        if status == nil {
            process.send(SIGTERM)
            status = process.waitBlocking()
            Issue.record("\(arguments.first ?? "") did not finish within \(timeout)")
        }
        return Output(
            status: status ?? -1,
            standardOutput: String(decoding: try Data(contentsOf: files[1]), as: UTF8.self),
            standardError: String(decoding: try Data(contentsOf: files[2]), as: UTF8.self))
    }
}
