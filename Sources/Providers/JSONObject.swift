import Foundation

/// Read-only access to a JSON object from a provider's answer, tolerant of types: a code may
/// come as `0` or `"0"`. Never throws; absent or mistyped fields read as nil.
public struct JSONObject: @unchecked Sendable {
    // JSONSerialization output: immutable after parsing.
    private let storage: [String: Any]

    public init?(bytes: [UInt8]) {
        guard !bytes.isEmpty, let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) as? [String: Any] else {
            return nil
        }
        self.storage = object
    }

    init(storage: [String: Any]) {
        self.storage = storage
    }

    public func object(_ key: String) -> JSONObject? {
        (self.storage[key] as? [String: Any]).map(JSONObject.init(storage:))
    }

    public func string(_ key: String) -> String? {
        self.storage[key] as? String
    }

    /// Text for strings, numbers and booleans (codes).
    public func text(_ key: String) -> String? {
        switch self.storage[key] {
        case let string as String: return string
        case let number as NSNumber: return number.stringValue
        default: return nil
        }
    }

    public func int(_ key: String) -> Int? {
        switch self.storage[key] {
        case let number as NSNumber: return number.intValue
        case let string as String: return Int(string)
        default: return nil
        }
    }

    public func bool(_ key: String) -> Bool? {
        switch self.storage[key] {
        case let value as Bool: return value
        case let number as NSNumber: return number.boolValue
        case let string as String: return ["true", "1"].contains(string.lowercased()) ? true : (["false", "0"].contains(string.lowercased()) ? false : nil)
        default: return nil
        }
    }

    public func contains(_ key: String) -> Bool { self.storage[key] != nil }
}
