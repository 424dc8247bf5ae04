import CancelWorkerTesting
import Foundation
import Providers
import Testing

/// `JSONObject` (provider answers, on `JSONReader` since issue 14) against what it was before:
/// Foundation's `JSONSerialization`, read the same way. On random answers — every provider's
/// documented shapes with their values drawn at random, random objects, truncated and binary
/// bodies, duplicate keys, number spellings — both must see the same fields, except where the
/// bytes are not strict JSON, which the reader refuses as a whole.
@Suite("Provider answers: JSONReader reads them as JSONSerialization did")
struct ProviderJSONDifferentialTests {
    /// The reading before issue 14, kept here as the reference.
    struct Reference: AnswerReading {
        let storage: [String: Any]

        init?(bytes: [UInt8]) {
            guard !bytes.isEmpty,
                let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
                    as? [String: Any]
            else { return nil }
            self.storage = object
        }

        init(storage: [String: Any]) { self.storage = storage }

        func object(_ key: String) -> Reference? { (self.storage[key] as? [String: Any]).map(Reference.init(storage:)) }
        func string(_ key: String) -> String? { self.storage[key] as? String }
        func text(_ key: String) -> String? {
            switch self.storage[key] {
            case let string as String: return string
            case let number as NSNumber: return String(cString: number.objCType) == "c" ? nil : number.stringValue
            default: return nil
            }
        }
        func bool(_ key: String) -> Bool? {
            guard let number = self.storage[key] as? NSNumber, String(cString: number.objCType) == "c" else {
                return nil
            }
            return number.boolValue
        }
        func contains(_ key: String) -> Bool { self.storage[key] != nil }
    }

    static let keys = ProviderAnswerPropertyTests.keys + ["id", "refund_amount", "order_hash"]

    /// What the adapters can ask of an answer, three objects deep.
    static func reading<Answer: AnswerReading>(_ object: Answer?, depth: Int = 0) -> [String] {
        guard let object else { return ["none"] }
        var seen: [String] = []
        for key in Self.keys {
            seen.append(
                "\(key): \(object.contains(key)) \(object.string(key) ?? "-") \(object.text(key) ?? "-") \(object.bool(key).map(String.init) ?? "-")"
            )
            if depth < 3, let nested = object.object(key) {
                seen += Self.reading(nested, depth: depth + 1).map { "\(key)." + $0 }
            }
        }
        return seen
    }

    /// Whether `bytes` are strict JSON (RFC 8259), by Foundation's `JSONDecoder`, stricter than
    /// `JSONSerialization` about the malformed cases the reader refuses.
    static func isStrict(_ bytes: [UInt8]) -> Bool {
        (try? JSONDecoder().decode(AnyJSON.self, from: Data(bytes))) != nil
    }

    private struct AnyJSON: Decodable {
        init(from decoder: any Decoder) throws {
            _ = try decoder.singleValueContainer()
        }
    }

    @Test("same fields on 30,000 random answers; duplicate keys and number spellings included")
    func randomAnswers() async {
        var random = SeededGenerator(seed: 0x15_0014)
        var ticker = CooperativeTicker()
        var bodies: [[UInt8]] = []
        for _ in 0..<15_000 {
            await ticker.tick()
            bodies.append(ProviderAnswerPropertyTests.randomBody(&random))
        }
        for _ in 0..<15_000 {
            await ticker.tick()
            bodies.append(Array(ProviderAnswerPropertyTests.randomShaped(&random).utf8))
        }
        for number in [
            "0", "-0", "0.0", "-0.0", "1.0", "1e0", "1E2", "10001", "-1", "3.5", "0.1", "1e300", "1e-300", "1.5e3",
            "9007199254740993", "9223372036854775807", "9223372036854775808", "18446744073709551615",
            "18446744073709551616", "123456789012345678901234567890", "-9223372036854775809",
        ] {
            bodies.append(Array(#"{"code":\#(number),"data":{"status":\#(number)}}"#.utf8))
        }
        bodies.append(Array(#"{"code":1,"code":0}"#.utf8))
        bodies.append(Array(#"{"code":0,"code":1}"#.utf8))
        bodies.append(Array(#"{"status":"success","status":"error"}"#.utf8))
        bodies.append(Array(#"{"message":"caf\u00e9 \ud83d\ude00","msg":"tab\there"}"#.utf8))
        var compared = 0
        var refused = 0
        for body in bodies {
            await ticker.tick()
            let new = JSONObject(bytes: body)
            let old = Reference(bytes: body)
            if new == nil && old != nil && !Self.isStrict(body) {
                refused += 1
                continue
            }
            compared += 1
            let (mine, theirs) = (Self.reading(new), Self.reading(old))
            if mine != theirs {
                let first = mine.count == theirs.count ? zip(mine, theirs).first { $0 != $1 } : nil
                Issue.record(
                    "\(String(decoding: body, as: UTF8.self)): \(first.map { "\($0) ≠ \($1)" } ?? "\(mine.count) ≠ \(theirs.count) fields")"
                )
                return
            }
        }
        #expect(compared > 25_000)
        #expect(refused < 100, "few random answers are malformed JSON that JSONSerialization accepts")
    }
}

/// The questions adapters ask of an answer, of either reading.
protocol AnswerReading {
    func object(_ key: String) -> Self?
    func string(_ key: String) -> String?
    func text(_ key: String) -> String?
    func bool(_ key: String) -> Bool?
    func contains(_ key: String) -> Bool
}

extension JSONObject: AnswerReading {}
