import CancelCore
import Dispatch
public import Foundation
import Glibc
public import Logging
public import Metrics
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
        self.sink.write(line, urgent: event.level >= .error)
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

/// Where JSON log lines go: a buffer that a thread of the sink's own writes out, so that a slow
/// disk or a log reader that stalls (a full stderr pipe) never blocks the task that logs. A
/// `write(2)` of one 303-byte line to a log file took 2–6 ms dozens of times in 35 s of e at
/// 2,295/s, on one of the cooperative pool's two threads, with the other waiting for the lock
/// (issue 14: p99 stalls of 170–670 ms at half of (b)).
///
/// - Lines are whole and never interleave: each is appended to the buffer under its lock.
/// - The writer gathers lines for `gather` (10 ms) before a write, so a busy worker makes one
///   `write(2)` per batch of lines, not one per line; a line at `error` or above starts the write
///   at once.
/// - The buffer holds at most `capacity` bytes (4 MiB by default, about six seconds of a busy
///   worker's lines). A line that does not fit is dropped and counted; the writer then writes a
///   `log lines dropped` warning with the count and counts them in
///   `cancel_worker_log_lines_dropped_total`. Logging never blocks and never grows without bound:
///   besides the buffer, only the batch being written (at most `capacity` more) is held.
/// - A full non-blocking descriptor is waited for, as a blocking one is: no line is lost or cut.
///   Lines the descriptor refuses (a reader that is gone: `EPIPE`, with SIGPIPE kept from the
///   writer's thread so it does not end the process) are dropped, counted and reported the same way.
/// - `flush(timeout:)` waits until every line appended before it was written: the process calls it
///   at exit (`installExitFlush`); a process killed outright loses at most the last `gather` of
///   lines.
public final class JSONLogSink: Sendable {
    private let shared: Shared

    public init(_ handle: FileHandle, capacity: Int = 4 << 20, gather: Duration = .milliseconds(10)) {
        let shared = Shared(handle: handle, capacity: capacity, gather: gather)
        self.shared = shared
        // The thread holds `shared`, and so the handle: its descriptor stays open until the last
        // batch is written.
        let thread = Thread { shared.writeLoop() }
        thread.name = "log-writer"
        thread.start()
    }

    deinit {
        self.shared.close()
    }

    public static let standardError = JSONLogSink(FileHandle.standardError)

    /// Lines dropped because the buffer was full.
    static let droppedMetric = "cancel_worker_log_lines_dropped_total"

    /// The `# HELP` line of the sink's metric.
    public static let metricsHelp = [
        droppedMetric:
            "JSON log lines dropped because the log's reader did not keep up and the sink's buffer was full, or refused them (gone)."
    ]

    /// Flushes `standardError` when the process exits (`exit(3)` or a return from `main`), for up
    /// to 2 s: the last lines of a worker that stops are not left in the buffer. Called by the
    /// logging bootstrap that writes JSON lines there.
    public static func installExitFlush() {
        _ = Self.exitFlushInstalled
        Self.standardErrorInUse.store(true, ordering: .relaxed)
    }

    private static let standardErrorInUse = Atomic<Bool>(false)

    /// Counts `standardError`'s dropped lines in `factory`'s registry, if JSON lines go there.
    public static func countStandardErrorDrops(in factory: any MetricsFactory) {
        guard Self.standardErrorInUse.load(ordering: .relaxed) else { return }
        Self.standardError.countDrops(in: factory)
    }

    /// Counts dropped lines in `cancel_worker_log_lines_dropped_total` of `factory`.
    public func countDrops(in factory: any MetricsFactory) {
        let counter = Counter(label: Self.droppedMetric, factory: factory)
        self.shared.drops.withLock { $0 = counter }
    }

    private static let exitFlushInstalled: Bool = {
        atexit { JSONLogSink.standardError.flush(timeout: .seconds(2)) }
        return true
    }()

    /// Appends `line` (whole, with its newline) for the writer; drops it if the buffer is full.
    /// `urgent`: write without gathering more lines first.
    func write(_ line: [UInt8], urgent: Bool = false) {
        self.shared.append(line, urgent: urgent)
    }

    /// Waits until every line appended before the call was written, for up to `timeout`; whether
    /// it was.
    @discardableResult
    public func flush(timeout: Duration = .seconds(2)) -> Bool {
        self.shared.flush(timeout: timeout)
    }

    /// Stops the writer once it wrote what is buffered; later lines are dropped.
    func close() {
        self.shared.close()
    }

    /// What the sink and its writer thread share.
    private final class Shared: Sendable {
        struct State {
            var buffer: [UInt8] = []
            /// Lines dropped since the last warning about them.
            var dropped = 0
            /// Bytes appended, ever (for `flush`).
            var appended = 0
            /// The writer waits for the first line of the next batch.
            var idle = false
            /// A line at `error` or above, or a flush, is waiting: write without gathering.
            var urgent = false
            var closed = false
        }

        let state = Mutex(State())
        /// Where dropped lines are counted, once the application gave its metrics factory.
        let drops = Mutex<Counter?>(nil)
        /// Bytes written (or given up on), ever.
        let written = Atomic<Int>(0)
        let wake = DispatchSemaphore(value: 0)
        let handle: FileHandle
        let capacity: Int
        let gather: Duration

        init(handle: FileHandle, capacity: Int, gather: Duration) {
            self.handle = handle
            self.capacity = capacity
            self.gather = gather
        }

        func append(_ line: [UInt8], urgent: Bool) {
            let signal = self.state.withLock { state -> Bool in
                guard !state.closed else { return false }
                guard state.buffer.count + line.count <= self.capacity else {
                    state.dropped += 1
                    return false
                }
                state.buffer.append(contentsOf: line)
                state.appended += line.count
                return Self.rouse(&state, urgent: urgent)
            }
            if signal { self.wake.signal() }
        }

        /// Whether the writer must be woken: it is idle, or `urgent` and it may be gathering.
        private static func rouse(_ state: inout State, urgent: Bool) -> Bool {
            if urgent && !state.urgent {
                state.urgent = true
                state.idle = false
                return true
            }
            if state.idle {
                state.idle = false
                return true
            }
            return false
        }

        func flush(timeout: Duration) -> Bool {
            let (target, signal) = self.state.withLock { state in
                (state.appended, Self.rouse(&state, urgent: true))
            }
            if signal { self.wake.signal() }
            let deadline = ContinuousClock.now + timeout
            while self.written.load(ordering: .acquiring) < target {
                guard ContinuousClock.now < deadline else { return false }
                usleep(500)
            }
            return true
        }

        func close() {
            self.state.withLock { state in
                state.closed = true
                state.idle = false
            }
            self.wake.signal()
        }

        /// The writer thread: sleeps until a line arrives, gathers more for `gather` unless one is
        /// urgent, writes the batch (and a warning for dropped lines), until closed and drained.
        func writeLoop() {
            Self.blockBrokenPipeSignal()
            let descriptor = self.handle.fileDescriptor
            let gather = self.gather.timeInterval
            while true {
                let waiting = self.state.withLock { state -> Bool in
                    guard state.buffer.isEmpty && state.dropped == 0 && !state.closed else { return false }
                    state.idle = true
                    return true
                }
                if waiting { self.wake.wait() }
                // Gather before every write, the first of a batch and the ones while lines keep
                // coming alike: one write per `gather` under load, not one per line.
                if !self.state.withLock({ $0.urgent || $0.closed }) {
                    _ = self.wake.wait(timeout: .now() + gather)
                }
                let (batch, overflowed, closed) = self.state.withLock { state in
                    defer {
                        state.buffer = []
                        state.dropped = 0
                        state.urgent = false
                    }
                    return (state.buffer, state.dropped, state.closed)
                }
                // Lines the descriptor refused are dropped too: counted, and reported if it
                // takes the warning.
                let dropped = overflowed + Self.write(batch, to: descriptor)
                if dropped > 0 {
                    // Counted before the warning is written: whoever reads the warning finds the count.
                    self.drops.withLock { $0 }?.increment(by: dropped)
                    var notice = JSONLogHandler.line([
                        "ts": .string(Timestamp.format(Date())), "level": .string(Logger.Level.warning.rawValue),
                        "logger": "cancel-worker", "source": "WorkerApp",
                        "message": "log lines dropped: the log's reader did not keep up, or refused them",
                        "dropped": .stringConvertible(dropped),
                    ])
                    notice.append(0x0A)
                    // Its own loss, if the descriptor refuses it too, is not counted: it is not a logged line.
                    _ = Self.write(notice, to: descriptor)
                }
                self.written.add(batch.count, ordering: .releasing)
                if closed && batch.isEmpty && dropped == 0 { return }
            }
        }

        /// Writes `bytes` whole: retries short writes and interruptions, and waits for room when
        /// the descriptor is non-blocking and full (`O_NONBLOCK` belongs to the open pipe or file,
        /// which a parent or sibling may have set), as a blocking one would. Bytes the descriptor
        /// refuses (its reader gone, an error) are given up, so logging never stops or crashes
        /// the worker; returns the lines given up, a line cut short by the refusal included.
        private static func write(_ bytes: [UInt8], to descriptor: Int32) -> Int {
            bytes.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0 && errno == EINTR {
                        continue
                    } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                        var room = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                        _ = poll(&room, 1, -1)
                    } else {
                        return bytes[offset...].count { $0 == UInt8(ascii: "\n") }
                    }
                }
                return 0
            }
        }

        /// Keeps SIGPIPE from this thread: a write to a pipe whose reader is gone fails with
        /// `EPIPE` instead of ending the process (SIGPIPE's default action). A thread's own write
        /// raises it for that thread only, so the rest of the process keeps the default.
        private static func blockBrokenPipeSignal() {
            var signals = sigset_t()
            sigemptyset(&signals)
            sigaddset(&signals, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &signals, nil)
        }
    }
}
