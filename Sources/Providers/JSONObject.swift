import Foundation

/// Read-only access to a JSON object from a provider's answer, tolerant of types: a code may
/// come as `0` or `"0"`. Never throws; absent or mistyped fields read as nil.
public struct JSONObject: @unchecked Sendable {
    // JSONSerialization output: immutable after parsing.
    private let storage: [String: Any]

    public init?(bytes: [UInt8]) {
        guard !bytes.isEmpty,
            let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
                as? [String: Any]
        else {
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

    /// Text for strings and numbers (codes); nil for booleans, objects and arrays.
    public func text(_ key: String) -> String? {
        switch self.storage[key] {
        case let string as String: return string
        case let number as NSNumber: return String(cString: number.objCType) == "c" ? nil : number.stringValue
        default: return nil
        }
    }

    /// A JSON `true` or `false` only: the documents type these fields as booleans, and `1` or
    /// `"true"` is not a documented success.
    public func bool(_ key: String) -> Bool? {
        // JSONSerialization gives booleans as NSNumber of the C type `char` ("c"); numbers are other types.
        guard let number = self.storage[key] as? NSNumber, String(cString: number.objCType) == "c" else { return nil }
        return number.boolValue
    }

    public func contains(_ key: String) -> Bool { self.storage[key] != nil }
}
