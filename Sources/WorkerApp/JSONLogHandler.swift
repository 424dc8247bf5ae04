import CancelCore
public import Foundation
import Glibc
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
        let provided = self.metadataProvider?.get()
        // Room for every field at once: growing the handler's own metadata (a name or two) to a
        // command's dozen fields rehashed it two or three times per line.
        var fields = Logger.Metadata(
            minimumCapacity: self.metadata.count + (provided?.count ?? 0) + (event.metadata?.count ?? 0) + 5)
        for (key, value) in self.metadata { fields[key] = value }
        if let provided { for (key, value) in provided { fields[key] = value } }
        if let extra = event.metadata { for (key, value) in extra { fields[key] = value } }
        fields["ts"] = .string(Timestamp.format(Date()))
        fields["level"] = .string(event.level.rawValue)
        fields["logger"] = .string(self.label)
        fields["message"] = .string("\(event.message)")
        fields["source"] = .string(event.source)
        var line = Self.line(fields)
        line.append(0x0A)
        self.sink.write(line)
    }

    /// A log line's JSON object, keys sorted, without its newline. Written with the outcomes'
    /// `JSONWriter`: `JSONSerialization` and Foundation's ISO 8601 format style cost ~300 µs a
    /// line at `info`, where every command logs one (issue 14).
    static func line(_ fields: [String: Logger.Metadata.Value]) -> [UInt8] {
        var writer = JSONWriter(capacity: 384)
        var members = JSONWriter.ObjectWriter(taking: &writer)
        // The pairs sorted by name, not the names sorted and each looked up again.
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            switch value {
            case .string(let text): members.field(key, text)
            case .stringConvertible(let value):
                if let integer = Self.integer(value) {
                    members.field(key, integer)
                } else {
                    members.field(key, Self.typed(value))
                }
            case let value: members.field(key, Self.plain(value))
            }
        }
        return members.end().bytes
    }

    /// A metadata value as JSON: strings stay strings; numbers, booleans and durations given as
    /// `.stringConvertible` become JSON numbers and booleans (durations in seconds), so log
    /// pipelines can compare and sum them; arrays and dictionaries nest.
    static func plain(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let string): .string(string)
        case .stringConvertible(let convertible):
            Self.integer(convertible).map { .number(Double($0)) } ?? Self.typed(convertible)
        case .array(let array): .array(array.map(plain))
        case .dictionary(let dictionary): .object(dictionary.mapValues(plain))
        }
    }

    /// Integers, written exactly (a `Double` would round offsets above 2^53).
    private static func integer(_ value: any CustomStringConvertible & Sendable) -> Int? {
        switch value {
        case let int as Int: int
        case let int as Int32: Int(int)
        case let int as Int64: Int(int)
        case let int as UInt16: Int(int)
        case let int as UInt32: Int(int)
        default: nil
        }
    }

    private static func typed(_ value: any CustomStringConvertible & Sendable) -> JSONValue {
        switch value {
        case let bool as Bool: .bool(bool)
        case let double as Double: double.isFinite ? .number(double) : .string(value.description)
        case let duration as Duration: .number(duration.timeInterval)
        default: .string(value.description)
        }
    }
}

/// Where JSON log lines go; writes are serialised so lines never interleave.
public final class JSONLogSink: Sendable {
    private let handle: Mutex<FileHandle>

    public init(_ handle: FileHandle) {
        self.handle = Mutex(handle)
    }

    public static let standardError = JSONLogSink(FileHandle.standardError)

    /// Writes `line` whole (retrying short writes and interruptions). A line the descriptor
    /// refuses (closed, full) is dropped: logging never stops or crashes the worker.
    func write(_ line: [UInt8]) {
        self.handle.withLock { handle in
            let descriptor = handle.fileDescriptor
            line.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0 && errno == EINTR {
                        continue
                    } else {
                        return
                    }
                }
            }
        }
    }
}
