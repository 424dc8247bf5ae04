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
