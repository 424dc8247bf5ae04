import CancelCore
import CancelWorkerTesting
import Foundation
import Testing

/// `JSONWriter` must write byte for byte what `JSONEncoder` (`[.sortedKeys,
/// .withoutEscapingSlashes]`) wrote before issue 14: outcomes and command fingerprints are
/// stored in the ledger and compared by their bytes, so a worker of this version must produce
/// the bytes a worker of the last one produced for the same command.
@Suite("JSONWriter writes what JSONEncoder wrote")
struct JSONWriterDifferentialTests {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func written(_ value: JSONValue) -> [UInt8] {
        var writer = JSONWriter()
        writer.write(value)
        return writer.bytes
    }

    @Test("the same bytes for 5,000 random values (every control character, any Unicode, doubles)")
    func randomValues() async throws {
        var random = SeededGenerator(seed: 14_003)
        var differences: [String] = []
        var ticker = CooperativeTicker()
        for _ in 0..<5_000 {
            await ticker.tick()
            let value = JSONReaderDifferentialTests.randomValue(&random)
            let expected = Array(try Self.encoder.encode(value))
            let actual = Self.written(value)
            if actual != expected {
                differences.append(
                    "\(String(decoding: actual, as: UTF8.self)) vs \(String(decoding: expected, as: UTF8.self))")
            }
        }
        #expect(differences.isEmpty, "\(differences.count): \(differences.prefix(5))")
    }

    @Test(
        "the same bytes for edge values",
        arguments: [
            JSONValue.number(0), .number(-0.0), .number(1e21), .number(1e-7), .number(0.1),
            .number(123_456_789_012_345_680),
            .number(9_007_199_254_740_992), .number(-1.5), .number(Double.leastNonzeroMagnitude),
            .number(1.7976931348623157e308),
            .string("\u{0}\u{1F}\u{7F}\u{80}\u{2028}\u{2029}\u{FEFF}/\\\"\u{8}\u{C}\n\r\t"), .string("😀 漢 é"),
            .object([
                "b": .null, "a": .bool(true), "B": .array([]), "é": .object([:]), "aa": .string(""), "a1": .number(1),
            ]),
        ])
    func edgeValues(value: JSONValue) throws {
        #expect(
            String(decoding: Self.written(value), as: UTF8.self)
                == String(decoding: try Self.encoder.encode(value), as: UTF8.self))
    }

    /// A random outcome: texts of any characters, optional members present or not, instants
    /// drawn by `instant`.
    static func randomOutcome(
        _ random: inout SeededGenerator, instant: (inout SeededGenerator) -> Date
    ) -> CancelOutcome {
        func text() -> String { JSONReaderDifferentialTests.randomString(&random) }
        func maybe<T>(_ value: T) -> T? { Bool.random(using: &random) ? value : nil }
        func object() -> [String: JSONValue]? {
            guard case .object(let object) = JSONReaderDifferentialTests.randomValue(&random, depth: 3) else {
                return nil
            }
            return object
        }
        let identity = CommandIdentity(
            commandID: text(), idempotencyKey: text(), provider: text(), account: text(), order: object(),
            requestedAt: maybe(instant(&random)), correlationID: maybe(text()), metadata: object())
        var outcome = CancelOutcome(
            outcomeID: OutcomeID.terminal(idempotencyKey: identity.idempotencyKey), identity: identity,
            status: OutcomeStatus.allCases.randomElement(using: &random)!, reason: text(), errorClass: maybe(text()),
            providerResponse: maybe(
                ProviderAnswer(
                    httpStatus: maybe(Int.random(in: 100...599, using: &random)), code: maybe(text()),
                    message: maybe(text()), orderStatus: maybe(text()))),
            attempts: Int.random(in: 0...20, using: &random), completedAt: instant(&random), workerID: text())
        outcome.uncertainAttempts = maybe(Int.random(in: 1...5, using: &random))
        return outcome
    }

    @Test("outcomes: the same bytes as CancelOutcome's JSONEncoder for 2,000 random outcomes")
    func outcomes() async throws {
        let encoder = CancelOutcome.foundationEncoder
        var random = SeededGenerator(seed: 14_004)
        var differences = 0
        var ticker = CooperativeTicker()
        for _ in 0..<2_000 {
            await ticker.tick()
            let outcome = Self.randomOutcome(&random) {
                Date(timeIntervalSince1970: Double.random(in: 0...2e9, using: &$0))
            }
            if outcome.encoded() != Array(try encoder.encode(outcome)) { differences += 1 }
        }
        #expect(differences == 0)
    }

    @Test("fingerprints: the same as the JSONEncoder-based fingerprint the ledger already holds")
    func fingerprints() throws {
        var random = SeededGenerator(seed: 14_005)
        for _ in 0..<1_000 {
            guard case .object(let order) = JSONReaderDifferentialTests.randomValue(&random, depth: 2) else { continue }
            let identity = CommandIdentity(
                commandID: "c", idempotencyKey: "k", provider: "futures", account: "a", order: order, requestedAt: nil,
                correlationID: nil, metadata: nil)
            let before = Array("futures\u{1F}a\u{1F}".utf8) + Array(try Self.encoder.encode(order))
            var again = JSONWriter()
            again.write(order)
            #expect(Array("futures\u{1F}a\u{1F}".utf8) + again.bytes == before)
            #expect(OutcomeID.fingerprint(of: identity).count == 32)
        }
        // A fingerprint stored by the JSONEncoder version (SHA-256 of the provider, account and JSONEncoder's bytes) for a futures order.
        let stored = CommandIdentity(
            commandID: "c", idempotencyKey: "k", provider: "futures", account: "user-1",
            order: ["id": .string("33308749002645666")], requestedAt: nil, correlationID: nil, metadata: nil)
        #expect(OutcomeID.fingerprint(of: stored) == Self.storedFingerprint)
    }

    static let storedFingerprint = "603b462d7d032959113ba26ee861609c"
}
