import CancelWorkerTesting
import Foundation
import Logging
import Prometheus
import Testing

@testable import WorkerApp

/// The JSON log lines operators ingest: one object per line, keys sorted, typed values, and a
/// line never interleaved with another.
@Suite("JSON log lines")
struct JSONLogHandlerTests {
    /// Logs through a handler writing to a temporary file; returns the lines.
    func lines(_ body: (Logger) -> Void) throws -> [String] {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        let sink = JSONLogSink(handle)
        var logger = Logger(label: "cancel-worker") { label in JSONLogHandler(label: label, level: .info, sink: sink) }
        logger[metadataKey: "worker_id"] = "w-1"
        body(logger)
        #expect(sink.flush(timeout: .seconds(10)))
        try handle.close()
        return String(decoding: try Data(contentsOf: url), as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test("a line is a JSON object with the base fields, the handler's and the event's metadata, keys sorted")
    func lineShape() throws {
        let lines = try self.lines { logger in
            logger.info(
                "outcome published",
                metadata: [
                    "status": "cancelled", "attempts": .stringConvertible(1), "level": "spoofed",
                    "reason": "quote \" backslash \\ newline \n tab \t bell \u{7} slash / é",
                ])
            logger.debug("not at info")
        }
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "outcome published")
        #expect(object["level"] as? String == "info", "the base fields win over metadata of the same name")
        #expect(object["logger"] as? String == "cancel-worker")
        #expect(object["worker_id"] as? String == "w-1")
        #expect(object["attempts"] as? Int == 1)
        #expect(object["reason"] as? String == "quote \" backslash \\ newline \n tab \t bell \u{7} slash / é")
        let ts = try #require(object["ts"] as? String)
        #expect(ts.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil, "\(ts)")
        let keys = line.matches(of: /"([a-z_]+)":/).map { String($0.output.1) }
        #expect(
            keys == ["attempts", "level", "logger", "message", "reason", "source", "status", "ts", "worker_id"],
            "\(keys)")
        #expect(line.contains(#"slash / é"#), "slashes are not escaped")
    }

    @Test("a name in several sources is written once: the event's value, else the provider's, else the handler's")
    func precedence() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        let sink = JSONLogSink(handle)
        var handler = JSONLogHandler(label: "cancel-worker", level: .info, sink: sink)
        handler.metadata = ["worker_id": "handler", "zone": "handler", "only_handler": "h"]
        handler.metadataProvider = Logger.MetadataProvider { ["worker_id": "provider", "zone": "provider"] }
        let logger = Logger(label: "cancel-worker") { _ in handler }
        logger.info("one", metadata: ["worker_id": "event", "message": "spoofed"])
        logger.info("two")
        #expect(sink.flush(timeout: .seconds(10)))
        try handle.close()
        let lines = String(decoding: try Data(contentsOf: url), as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        let objects = try lines.map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String])
        }
        #expect(objects.first?["worker_id"] == "event")
        #expect(objects.first?["message"] == "one")
        #expect(objects.last?["worker_id"] == "provider")
        #expect(objects.allSatisfy { $0["zone"] == "provider" && $0["only_handler"] == "h" })
        for line in lines {
            let keys = line.matches(of: /"([a-z_]+)":/).map { String($0.output.1) }
            #expect(keys == keys.sorted() && Set(keys).count == keys.count, "each name once, sorted: \(keys)")
        }
    }

    @Test("integers are written exactly, even above 2^53; non-finite doubles as text")
    func exactIntegers() {
        let fields: [String: Logger.Metadata.Value] = [
            "offset": .stringConvertible(Int64(1) << 60), "nan": .stringConvertible(Double.nan),
            "nested": .dictionary(["small": .stringConvertible(7), "list": .array([.stringConvertible(true)])]),
        ]
        #expect(
            String(decoding: JSONLogHandler.line(fields), as: UTF8.self)
                == #"{"nan":"nan","nested":{"list":[true],"small":7},"offset":1152921504606846976}"#)
    }

    @Test("lines logged from many tasks at once never interleave")
    func concurrentLines() async throws {
        let lines = try self.lines { logger in
            DispatchQueue.concurrentPerform(iterations: 400) { index in
                logger.info(
                    "line",
                    metadata: ["index": .stringConvertible(index), "pad": "\(String(repeating: "x", count: 300))"])
            }
        }
        #expect(lines.count == 400)
        let indices = try lines.map { line in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return try #require(object["index"] as? Int)
        }
        #expect(Set(indices) == Set(0..<400))
    }

    /// A file the test reads while a sink writes to it.
    private func fileSink(gather: Duration) throws -> (sink: JSONLogSink, read: @Sendable () -> String, url: URL) {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString).jsonl")
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let sink = JSONLogSink(try FileHandle(forWritingTo: url), gather: gather)
        return (sink, { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }, url)
    }

    @Test("lines reach the file without a flush: gathered for a moment, at once from error up")
    func writtenOnTheirOwn() async throws {
        // Gathering for 20 ms: an info line is written soon after, on the writer's own.
        let (quick, readQuick, quickURL) = try self.fileSink(gather: .milliseconds(20))
        defer { try? FileManager.default.removeItem(at: quickURL) }
        let logger = Logger(label: "cancel-worker") { JSONLogHandler(label: $0, level: .info, sink: quick) }
        logger.info("soon")
        #expect(try await eventually(timeout: .seconds(10)) { readQuick().contains("\"soon\"") })

        // Gathering for a minute: an info line waits, an error line is written at once, with it.
        let (slow, readSlow, slowURL) = try self.fileSink(gather: .seconds(60))
        defer { try? FileManager.default.removeItem(at: slowURL) }
        let patient = Logger(label: "cancel-worker") { JSONLogHandler(label: $0, level: .info, sink: slow) }
        patient.info("gathered")
        try await Task.sleep(for: .milliseconds(300))
        #expect(readSlow().isEmpty, "an info line waits for the gather")
        patient.error("at once")
        #expect(try await eventually(timeout: .seconds(10)) { readSlow().contains("\"at once\"") })
        #expect(readSlow().split(separator: "\n").count == 2, "the info line before it went in the same write")
    }

    @Test("a log reader that stalls never blocks logging: what does not fit is dropped, counted and reported")
    func stalledReader() async throws {
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        let reader = FileHandle(fileDescriptor: descriptors[0], closeOnDealloc: true)
        // Nobody reads the pipe while the lines are logged: it fills (64 KiB), then the buffer
        // (16 KiB). Written inline, the logging thread would block on the full pipe for good.
        let sink = JSONLogSink(
            FileHandle(fileDescriptor: descriptors[1], closeOnDealloc: true), capacity: 16 << 10,
            gather: .milliseconds(1))
        let registry = PrometheusCollectorRegistry()
        sink.countDrops(in: PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "cancel-worker") { JSONLogHandler(label: $0, level: .info, sink: sink) }
        let logged = 3_000
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            for index in 0..<logged {
                logger.info(
                    "line",
                    metadata: ["index": .stringConvertible(index), "pad": "\(String(repeating: "x", count: 300))"])
            }
            done.signal()
        }
        thread.start()
        let finished = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: done.wait(timeout: .now() + 30) == .success) }
        }
        #expect(finished, "logging 3,000 lines returned while the pipe was full")

        // Now read: the lines that fit, then a warning with the count of the others.
        let text = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var text = ""
                let deadline = Date().addingTimeInterval(30)
                while Date() < deadline {
                    let data = reader.availableData
                    if data.isEmpty { break }
                    text += String(decoding: data, as: UTF8.self)
                    let lines = text.split(separator: "\n")
                    let kept = lines.filter { $0.contains("\"message\":\"line\"") }.count
                    let dropped = lines.compactMap { line -> Int? in
                        guard line.contains("log lines dropped") else { return nil }
                        return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["dropped"]
                            as? Int
                    }.reduce(0, +)
                    if kept + dropped >= logged && text.hasSuffix("\n") { break }
                }
                continuation.resume(returning: text)
            }
        }
        let lines = text.split(separator: "\n")
        let kept = lines.filter { $0.contains("\"message\":\"line\"") }.count
        let notices = try lines.filter { $0.contains("log lines dropped") }.map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let dropped = notices.compactMap { $0["dropped"] as? Int }.reduce(0, +)
        #expect(kept > 0 && !notices.isEmpty, "\(kept) kept, \(notices.count) notices")
        #expect(kept + dropped == logged, "\(kept) kept + \(dropped) dropped")
        #expect(notices.allSatisfy { $0["level"] as? String == "warning" })
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil }, "whole lines")
        let exposition = String(decoding: registry.emitToBuffer(), as: UTF8.self)
        #expect(exposition.contains("cancel_worker_log_lines_dropped_total \(dropped)\n"), "\(exposition)")
        sink.close()
    }

    /// Reads `reader` on a background thread until `done` holds for what was read, the pipe
    /// ends, or 30 s passed (waiting at most 100 ms at a time, so an empty pipe cannot hold it).
    private func readUntil(_ reader: FileHandle, _ done: @escaping @Sendable (String) -> Bool) async -> String {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var text = ""
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                let deadline = Date().addingTimeInterval(30)
                while Date() < deadline && !done(text) {
                    var ready = pollfd(fd: reader.fileDescriptor, events: Int16(POLLIN), revents: 0)
                    guard poll(&ready, 1, 100) > 0 else { continue }
                    let count = read(reader.fileDescriptor, &buffer, buffer.count)
                    if count <= 0 { break }
                    text += String(decoding: buffer[0..<count], as: UTF8.self)
                }
                continuation.resume(returning: text)
            }
        }
    }

    @Test("a non-blocking standard error that is full loses no line and cuts none: the writer waits for room")
    func nonBlockingReader() async throws {
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        // O_NONBLOCK belongs to the pipe, not to this process: a parent or sibling sharing it
        // may have set it. A full pipe then answers EAGAIN instead of blocking the writer.
        #expect(fcntl(descriptors[1], F_SETFL, fcntl(descriptors[1], F_GETFL) | O_NONBLOCK) == 0)
        let reader = FileHandle(fileDescriptor: descriptors[0], closeOnDealloc: true)
        let sink = JSONLogSink(
            FileHandle(fileDescriptor: descriptors[1], closeOnDealloc: true), capacity: 1 << 20,
            gather: .milliseconds(1))
        let logger = Logger(label: "cancel-worker") { JSONLogHandler(label: $0, level: .info, sink: sink) }
        let logged = 1_000
        for index in 0..<logged {
            logger.info(
                "line", metadata: ["index": .stringConvertible(index), "pad": "\(String(repeating: "x", count: 300))"])
        }
        // The pipe (64 KiB) is full long before the 320 KB are written; nobody reads yet.
        try await Task.sleep(for: .milliseconds(300))
        let text = await self.readUntil(reader) { text in
            text.hasSuffix("\n") && text.split(separator: "\n").count >= logged
        }
        #expect(sink.flush(timeout: .seconds(10)))
        let lines = text.split(separator: "\n")
        #expect(lines.count == logged, "\(lines.count) lines")
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil }, "whole lines")
        sink.close()
    }

    @Test("a standard error nobody reads any more (EPIPE) neither kills the worker nor hides the loss")
    func closedReader() throws {
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        close(descriptors[0])
        let sink = JSONLogSink(
            FileHandle(fileDescriptor: descriptors[1], closeOnDealloc: true), gather: .milliseconds(1))
        let registry = PrometheusCollectorRegistry()
        sink.countDrops(in: PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "cancel-worker") { JSONLogHandler(label: $0, level: .info, sink: sink) }
        // Written by the sink's thread: SIGPIPE's default action would end this process here.
        for index in 0..<100 { logger.info("line", metadata: ["index": .stringConvertible(index)]) }
        #expect(sink.flush(timeout: .seconds(10)), "given up on, not waited for")
        let exposition = String(decoding: registry.emitToBuffer(), as: UTF8.self)
        #expect(exposition.contains("cancel_worker_log_lines_dropped_total 100\n"), "\(exposition)")
        sink.close()
    }
}
