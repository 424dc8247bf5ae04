import Foundation
import Logging
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
        var handler = JSONLogHandler(label: "cancel-worker", level: .info, sink: JSONLogSink(handle))
        handler.metadata = ["worker_id": "handler", "zone": "handler", "only_handler": "h"]
        handler.metadataProvider = Logger.MetadataProvider { ["worker_id": "provider", "zone": "provider"] }
        let logger = Logger(label: "cancel-worker") { _ in handler }
        logger.info("one", metadata: ["worker_id": "event", "message": "spoofed"])
        logger.info("two")
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
}
