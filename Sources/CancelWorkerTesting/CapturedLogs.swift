public import Logging
import Synchronization

/// Collects every log line (when, level, source, message, metadata) so tests can assert what
/// was logged, and search it for secrets.
public final class CapturedLogs: Sendable {
    public struct Line: Sendable {
        public let at: ContinuousClock.Instant
        public let level: Logger.Level
        /// The module that logged it (`Worker`, `Providers`, …).
        public let source: String
        public let message: String
        public let metadata: Logger.Metadata

        /// `level message metadata`, as one searchable string.
        public var text: String { "\(self.level) \(self.message) \(self.metadata)" }
    }

    private let storage = Mutex<[Line]>([])
    private let level: Logger.Level

    public init(level: Logger.Level = .trace) {
        self.level = level
    }

    public var logger: Logger {
        var logger = Logger(label: "captured") { _ in Handler(sink: self, logLevel: self.level) }
        logger.logLevel = self.level
        return logger
    }

    public var lines: [Line] { self.storage.withLock { $0 } }

    /// Every line as text, one per line.
    public var all: String { self.lines.map(\.text).joined(separator: "\n") }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level

        init(sink: CapturedLogs, logLevel: Logger.Level) {
            self.sink = sink
            self.logLevel = logLevel
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let line = Line(
                at: .now, level: event.level, source: event.source, message: event.message.description,
                metadata: self.metadata.merging(event.metadata ?? [:]) { _, new in new })
            self.sink.storage.withLock { $0.append(line) }
        }
    }
}
