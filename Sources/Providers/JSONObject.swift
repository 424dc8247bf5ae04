import CancelCore
import Foundation

/// Read-only access to a JSON object from a provider's answer, tolerant of types: a code may
/// come as `0` or `"0"`. Never throws; absent or mistyped fields read as nil.
///
/// Parsed by `JSONReader` into `AnswerJSON`, which keeps each number as `JSONSerialization`'s
/// `NSNumber.stringValue` would write it — `0` stays `"0"`, `0.0` stays `"0.0"` — because
/// providers' answers were read through `JSONSerialization` before issue 14 (its largest single
/// cost of classifying an answer). `ProviderJSONDifferentialTests` compares the two readings on
/// random answers. They differ only where the bytes are not strict JSON (`[1,]`, `01`), which
/// reads as no object here (the adapters then classify the answer `unknown`, never a success).
public struct JSONObject: Sendable {
    private let storage: AnswerJSON.Members

    public init?(bytes: [UInt8]) {
        guard !bytes.isEmpty, case .success(.object(let object)) = JSONReader.parse(bytes, as: AnswerJSON.self)
        else { return nil }
        self.storage = object
    }

    init(storage: AnswerJSON.Members) {
        self.storage = storage
    }

    /// The member `key`, the last one if the answer gave it twice (as a dictionary would keep
    /// it). Answers have a handful of members: a scan compares fewer bytes than hashing them.
    private subscript(key: String) -> AnswerJSON? {
        self.storage.last { $0.key == key }?.value
    }

    public func object(_ key: String) -> JSONObject? {
        guard case .object(let object)? = self[key] else { return nil }
        return JSONObject(storage: object)
    }

    public func string(_ key: String) -> String? {
        guard case .string(let string)? = self[key] else { return nil }
        return string
    }

    /// Text for strings and numbers (codes); nil for booleans, objects and arrays.
    public func text(_ key: String) -> String? {
        switch self[key] {
        case .string(let string)?, .number(let string)?: return string
        default: return nil
        }
    }

    /// A JSON `true` or `false` only: the documents type these fields as booleans, and `1` or
    /// `"true"` is not a documented success.
    public func bool(_ key: String) -> Bool? {
        guard case .bool(let value)? = self[key] else { return nil }
        return value
    }

    public func contains(_ key: String) -> Bool { self.storage.contains { $0.key == key } }
}

/// A provider's answer as parsed: numbers as the text `JSONSerialization` gave them.
enum AnswerJSON: JSONTree, Sendable {
    case null
    case bool(Bool)
    /// `NSNumber.stringValue` of what `JSONSerialization` made of the literal: an integer
    /// literal as that integer (64 bits, else a `Decimal`), any other as a `Double`.
    case number(String)
    case string(String)
    case array([AnswerJSON])
    case object(Members)

    /// An object's members in the answer's order (the adapters look up a few keys).
    typealias Members = [(key: String, value: AnswerJSON)]

    static func members(capacity: Int) -> Members {
        // A nested object (`data`) has a few members too: room for them at once.
        var members = Members()
        members.reserveCapacity(max(capacity, 6))
        return members
    }

    static func add(_ key: String, _ value: AnswerJSON, to members: inout Members) {
        members.append((key, value))
    }

    static func number(literal: UnsafeBufferPointer<UInt8>) -> AnswerJSON? {
        let text = String(decoding: literal, as: UTF8.self)
        let integral = !literal.contains {
            $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E")
        }
        if integral, let integer = Int64(text) { return .number(String(integer)) }
        if integral, let integer = UInt64(text) { return .number(String(integer)) }
        if integral, let decimal = Decimal(string: text) {
            return .number(NSDecimalNumber(decimal: decimal).stringValue)
        }
        guard let value = Double(text), value.isFinite else { return nil }
        return .number(NSNumber(value: value).stringValue)
    }
}
