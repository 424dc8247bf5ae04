import CancelCore
import CancelWorkerTesting
import Foundation
import Testing

/// The JSON Schemas in `schemas/` and the Swift types must agree: examples decode, and what
/// the worker encodes validates with a real validator (Python's jsonschema).
@Suite("Schemas and Swift types agree")
struct SchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let schemas = root.appendingPathComponent("schemas")

    static func examples(_ prefix: String) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(
            at: schemas.appendingPathComponent("examples"), includingPropertiesForKeys: nil
        )
        .filter { $0.lastPathComponent.hasPrefix(prefix) && $0.pathExtension == "json" }
        .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Runs the validator; one result line per document.
    static func validate(_ documents: [[UInt8]], schema: String) throws -> [String] {
        let input = try SpawnedProcess.pipe()
        let output = try SpawnedProcess.pipe()
        let process = try SpawnedProcess(
            executable: "/usr/bin/env",
            arguments: [
                "python3", root.appendingPathComponent("scripts/validate_json.py").path,
                schemas.appendingPathComponent(schema).path,
            ],
            standardInput: input.read.fileDescriptor, standardOutput: output.write.fileDescriptor,
            standardError: 2)
        try input.read.close()
        try output.write.close()
        var text = Data()
        for document in documents {
            text.append(contentsOf: document)
            text.append(0x0A)
        }
        input.write.write(text)
        try input.write.close()
        let result = String(decoding: output.read.readDataToEndOfFile(), as: UTF8.self)
        _ = process.waitBlocking()
        return result.split(separator: "\n").map(String.init)
    }

    @Test("every command example is valid for the schema and for the decoder; encoding round-trips")
    func commandExamples() throws {
        let files = try Self.examples("cancel-command.")
        #expect(files.count == ProviderID.allCases.count, "one example per provider")
        let documents = try files.map { Array(try Data(contentsOf: $0)) }
        #expect(
            try Self.validate(documents, schema: "cancel-command.v1.schema.json")
                == Array(repeating: "ok", count: files.count))
        var reencoded: [[UInt8]] = []
        for (file, document) in zip(files, documents) {
            guard case .valid(let command) = CommandDecoder().decode(document) else {
                Issue.record("\(file.lastPathComponent) does not decode")
                continue
            }
            #expect(
                CommandDecoder().decode(command.encoded()) == .valid(command), "\(file.lastPathComponent) round-trips")
            reencoded.append(command.encoded())
        }
        #expect(
            try Self.validate(reencoded, schema: "cancel-command.v1.schema.json")
                == Array(repeating: "ok", count: reencoded.count))
    }

    @Test("the validator rejects what the decoder rejects")
    func invalidCommands() throws {
        let bad = [
            #"{"command_id":"c","idempotency_key":"k","provider":"paypal","account":"a","order":{},"requested_at":"2026-01-01T00:00:00Z"}"#,
            #"{"command_id":"c","idempotency_key":"k","provider":"futures","account":"a","order":{"id":"1.5"},"requested_at":"2026-01-01T00:00:00Z"}"#,
            #"{"command_id":"c","idempotency_key":"k","provider":"feee","account":"a","order":{"order_no":"1"},"requested_at":"not a time"}"#,
            #"{"command_id":"c","idempotency_key":"k","provider":"taker","account":"a","order":{"order_hash":"h","taker_address":"t","message":"m"},"requested_at":"2026-01-01T00:00:00Z"}"#,
        ]
        let results = try Self.validate(bad.map { Array($0.utf8) }, schema: "cancel-command.v1.schema.json")
        #expect(results.count == bad.count)
        #expect(results.allSatisfy { $0.hasPrefix("invalid") }, "\(results)")
        for document in bad {
            guard case .invalid = CommandDecoder().decode(Array(document.utf8)) else {
                Issue.record("decoder accepted \(document)")
                continue
            }
        }
    }

    @Test("outcome examples decode; encoded outcomes of every status validate")
    func outcomes() throws {
        let files = try Self.examples("cancel-outcome.")
        #expect(files.count >= 4)
        let examples = try files.map { Array(try Data(contentsOf: $0)) }
        #expect(
            try Self.validate(examples, schema: "cancel-outcome.v1.schema.json")
                == Array(repeating: "ok", count: files.count))
        for (file, example) in zip(files, examples) {
            let outcome = try CancelOutcome.decode(example)
            let expectedID =
                outcome.status == .failed
                ? OutcomeID.failed(idempotencyKey: outcome.idempotencyKey, deadLetterCount: 1)
                : OutcomeID.terminal(idempotencyKey: outcome.idempotencyKey)
            #expect(outcome.outcomeID == expectedID, "\(file.lastPathComponent): the id is derived from the key")
        }

        let identity = CommandIdentity(
            commandID: "c1", idempotencyKey: "key/ü", provider: "taker", account: "a",
            order: OrderReference.taker(orderHash: "0x1", takerAddress: "0x2", cancellationSuccess: true, message: "ok")
                .json,
            requestedAt: Date(), correlationID: "corr",
            metadata: ["n": .number(1), "nested": .object(["x": .array([.null])])]
        )
        let encoded = OutcomeStatus.allCases.map { status in
            CancelOutcome(
                outcomeID: status == .failed
                    ? OutcomeID.failed(idempotencyKey: identity.idempotencyKey, deadLetterCount: 1)
                    : OutcomeID.terminal(idempotencyKey: identity.idempotencyKey),
                identity: identity, status: status, reason: "because",
                errorClass: status == .failed ? "retries_exhausted" : nil,
                providerResponse: status == .expired
                    ? nil : ProviderAnswer(httpStatus: 200, code: "0", message: "m", orderStatus: "CANCELLED"),
                attempts: 2, completedAt: Date(), workerID: "w"
            ).encoded()
        }
        #expect(
            try Self.validate(encoded, schema: "cancel-outcome.v1.schema.json")
                == Array(repeating: "ok", count: encoded.count))
        let broken = String(decoding: encoded[0], as: UTF8.self).replacingOccurrences(
            of: "\"attempts\":2", with: "\"attempts\":-1")
        #expect(
            try Self.validate([Array(broken.utf8)], schema: "cancel-outcome.v1.schema.json").first?.hasPrefix("invalid")
                == true)
    }
}
