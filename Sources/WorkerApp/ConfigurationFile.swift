import CancelCore
import Foundation

/// The JSON configuration file, checked before it is read: it must exist, be valid JSON with an
/// object at the top, and hold only known keys. Every error names the file and how it was given
/// (`--config` or `CANCEL_WORKER_CONFIG`), never Foundation's error domain.
enum ConfigurationFile {
    static func check(path: String, via: String) throws {
        let subject = "file \(path) (\(via))"
        func invalid(_ message: String) -> AppConfiguration.Invalid {
            AppConfiguration.Invalid(key: via, subject: subject, message: message)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw invalid("no such file")
        }
        guard !isDirectory.boolValue, let data = FileManager.default.contents(atPath: path) else {
            throw invalid("not a readable file")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw invalid("not valid JSON\(detail.map { ": \($0)" } ?? "")")
        }
        guard let root = object as? [String: Any] else {
            throw invalid("expected a JSON object, e.g. {\"kafka\": {\"bootstrap-servers\": \"host:9092\"}}")
        }
        for key in Self.keys(of: root).sorted() where !ConfigOption.isKnownKey(key) {
            throw AppConfiguration.Invalid(
                key: key, subject: "key \(key) in \(subject)",
                message: "no such setting\(ConfigOption.hint(ConfigOption.suggestion(forKey: key)))"
            )
        }
        // No setting is a true/false: read as text, `true` would be the setting `1`.
        if case .success(.object(let members)) = JSONReader.parse(Array(data)),
            let key = Self.mistyped(in: members).sorted().first
        {
            throw AppConfiguration.Invalid(
                key: key, subject: "key \(key) in \(subject)",
                message: "expected a string or a number (a list of them for a list), or null for the default")
        }
    }

    /// Dotted keys whose value is a true/false, or a list holding anything but strings and numbers.
    static func mistyped(in object: [String: JSONValue], prefix: String = "") -> [String] {
        object.flatMap { name, value -> [String] in
            let key = prefix.isEmpty ? name : "\(prefix).\(name)"
            switch value {
            case .object(let nested): return Self.mistyped(in: nested, prefix: key)
            case .bool: return [key]
            case .array(let items):
                let scalar = items.allSatisfy {
                    switch $0 {
                    case .string, .number: true
                    default: false
                    }
                }
                return scalar ? [] : [key]
            case .null, .number, .string: return []
            }
        }
    }

    /// Dotted keys of every leaf value (arrays are values: `retry.tiers`).
    static func keys(of object: [String: Any], prefix: String = "") -> [String] {
        object.flatMap { name, value -> [String] in
            let key = prefix.isEmpty ? name : "\(prefix).\(name)"
            if let nested = value as? [String: Any] { return Self.keys(of: nested, prefix: key) }
            return [key]
        }
    }
}
