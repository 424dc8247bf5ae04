import CancelCore
import CancelWorkerTesting
import Foundation
import Testing

/// `CancelOutcome.decode` (`JSONReader`) must accept and refuse what `JSONDecoder` and the
/// `Codable` conformance did, and read the same values: clients, the bench and the operator
/// tools decode every outcome record with it.
@Suite("CancelOutcome.decode reads what JSONDecoder read")
struct OutcomeDecodingDifferentialTests {
    /// A random outcome (`JSONWriterDifferentialTests.randomOutcome`) with instants in whole
    /// milliseconds, the precision outcomes carry.
    static func randomOutcome(_ random: inout SeededGenerator) -> CancelOutcome {
        JSONWriterDifferentialTests.randomOutcome(&random) {
            Date(timeIntervalSince1970: Double(Int.random(in: 0...2_000_000_000_000, using: &$0)) / 1000)
        }
    }

    static func written(_ object: [String: JSONValue]) -> [UInt8] {
        var writer = JSONWriter()
        writer.write(object)
        return writer.bytes
    }

    /// Both decoders' answers for `bytes`: equal values, or both a refusal.
    static func difference(_ bytes: [UInt8]) -> String? {
        let fast = try? CancelOutcome.decode(bytes)
        let foundation = try? CancelOutcome.decodeFoundation(bytes)
        guard fast != foundation else { return nil }
        return "\(String(decoding: bytes, as: UTF8.self)): fast \(fast.map { "\($0)" } ?? "refused"), "
            + "JSONDecoder \(foundation.map { "\($0)" } ?? "refused")"
    }

    @Test("2,000 random outcomes read back as written, and as JSONDecoder reads them")
    func randomOutcomes() async {
        var random = SeededGenerator(seed: 14_020)
        var differences: [String] = []
        var ticker = CooperativeTicker()
        for _ in 0..<2_000 {
            await ticker.tick()
            let outcome = Self.randomOutcome(&random)
            let bytes = outcome.encoded()
            // Equal to what was written, but for the timestamps' fractions below a millisecond,
            // which the text does not hold; written again, the same bytes, timestamps included.
            do {
                var decoded = try CancelOutcome.decode(bytes)
                if decoded.encoded() != bytes { differences.append("written again: \(decoded)") }
                decoded.completedAt = outcome.completedAt
                decoded.requestedAt = outcome.requestedAt
                if decoded != outcome { differences.append("read back: \(decoded) vs \(outcome)") }
            } catch {
                differences.append("refused: \(error): \(String(decoding: bytes, as: UTF8.self))")
            }
            if let difference = Self.difference(bytes) { differences.append(difference) }
        }
        #expect(differences.isEmpty, "\(differences.count): \(differences.prefix(3))")
    }

    /// Every member of 200 random outcomes (and of their provider answers) removed, set to
    /// `null`, or given a value of each JSON type and a few edge numbers and texts.
    @Test("every member removed, null or of another type or value: both decoders agree")
    func mutatedMembers() async throws {
        var random = SeededGenerator(seed: 14_021)
        let replacements: [JSONValue?] = [
            nil, .null, .bool(true), .bool(false), .number(0), .number(1), .number(-3), .number(1.5),
            .number(1e3), .number(-0.0), .number(9_007_199_254_740_992), .number(-9_007_199_254_740_992),
            .string(""), .string("x"), .string("cancelled"), .string("2026-11-28T20:00:00Z"),
            .string("2026-11-28T20:00:00.123+01:00"), .string("2026-13-40T25:00:00Z"), .array([]), .array([.number(1)]),
            .object([:]), .object(["code": .string("1"), "http_status": .number(200)]),
        ]
        var differences: [String] = []
        var cases = 0
        var ticker = CooperativeTicker()
        for _ in 0..<200 {
            let outcome = Self.randomOutcome(&random)
            guard case .success(.object(let object)) = JSONReader.parse(outcome.encoded()) else {
                Issue.record("the outcome does not parse")
                return
            }
            var variants: [[String: JSONValue]] = []
            for key in Set(object.keys).union(["error_class", "uncertain_attempts", "provider_response"]) {
                for replacement in replacements {
                    var variant = object
                    variant[key] = replacement
                    variants.append(variant)
                }
            }
            if case .object(let answer)? = object["provider_response"] {
                for key in ["http_status", "code", "message", "order_status"] {
                    for replacement in replacements {
                        var inner = answer
                        inner[key] = replacement
                        var variant = object
                        variant["provider_response"] = .object(inner)
                        variants.append(variant)
                    }
                }
            }
            for variant in variants {
                await ticker.tick()
                cases += 1
                if let difference = Self.difference(Self.written(variant)) { differences.append(difference) }
            }
        }
        #expect(cases > 20_000)
        #expect(differences.isEmpty, "\(differences.count) of \(cases): \(differences.prefix(3))")
    }

    @Test(
        "integers beyond ±2^53 are refused (a Double cannot hold them exactly; JSONDecoder read their digits)",
        arguments: ["9007199254740994", "4.611686018427388e+18", "-9.3e18", "1e300"])
    func largeIntegers(number: String) throws {
        var random = SeededGenerator(seed: 14_022)
        let bytes = Array(
            String(decoding: Self.randomOutcome(&random).encoded(), as: UTF8.self)
                .replacing(/"attempts":\d+/, with: "\"attempts\":\(number)").utf8)
        #expect(String(decoding: bytes, as: UTF8.self).contains(number))
        #expect((try? CancelOutcome.decode(bytes)) == nil)
    }

    @Test(
        "records that are not outcome objects are refused by both",
        arguments: ["", "null", "[]", "\"text\"", "{", "{\"a\":1,}", "{} x", "\u{FF}"])
    func notObjects(text: String) {
        let bytes = text == "\u{FF}" ? [UInt8(0xFF)] : Array(text.utf8)
        #expect((try? CancelOutcome.decode(bytes)) == nil)
        #expect((try? CancelOutcome.decodeFoundation(bytes)) == nil)
    }
}
