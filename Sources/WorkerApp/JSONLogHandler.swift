public import Foundation
public import Logging
import Synchronization

/// One JSON object per line on standard error: what log pipelines (Loki, CloudWatch, ELK)
/// ingest without parsing rules. Fields: `ts`, `level`, `logger`, `message`, `source`, and the
/// metadata (command id, idempotency key, provider, account, attempt, outcome, …) flattened;
/// counts are JSON numbers, flags booleans, durations numbers of seconds.
///
/// Secrets are redacted by construction: credentials are `Secret` values, which render as
/// `[REDACTED]` in any metadata, and the worker never puts request headers in logs.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: JSONLogSink

    public init(label: String, level: Logger.Level, sink: JSONLogSink = .standardError) {
        self.label = label
        self.logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: Any] = [
            "ts": JSONLogHandler.timestamp(),
            "level": event.level.rawValue,
            "logger": self.label,
            "message": "\(event.message)",
            "source": event.source,
        ]
        var merged = self.metadata
        if let provided = self.metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        for (key, value) in merged where fields[key] == nil {
            fields[key] = JSONLogHandler.plain(value)
        }
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return }
        self.sink.write(data + Data([0x0A]))
    }

    /// A metadata value as JSON: strings stay strings; numbers, booleans and durations given as
    /// `.stringConvertible` become JSON numbers and booleans (durations in seconds), so log
    /// pipelines can compare and sum them; arrays and dictionaries nest.
    static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let string): return string
        case .stringConvertible(let convertible): return Self.typed(convertible)
        case .array(let array): return array.map(plain)
        case .dictionary(let dictionary): return dictionary.mapValues(plain)
        }
    }

    private static func typed(_ value: any CustomStringConvertible & Sendable) -> Any {
        switch value {
        case let bool as Bool: return bool
        case let int as Int: return int
        case let int as Int32: return Int(int)
        case let int as Int64: return int
        case let int as UInt16: return Int(int)
        case let int as UInt32: return Int(int)
        case let double as Double: return double.isFinite ? double : value.description
        case let duration as Duration: return duration.timeInterval
        default: return value.description
        }
    }

    private static func timestamp() -> String {
        Date().formatted(
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

/// Where JSON log lines go; writes are serialised so lines never interleave.
public final class JSONLogSink: Sendable {
    private let handle: Mutex<FileHandle>

    public init(_ handle: FileHandle) {
        self.handle = Mutex(handle)
    }

    public static let standardError = JSONLogSink(FileHandle.standardError)

    func write(_ data: Data) {
        self.handle.withLock { $0.write(data) }
    }
}
