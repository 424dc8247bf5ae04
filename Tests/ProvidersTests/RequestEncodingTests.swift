import CancelCore
import CancelWorkerTesting
import Foundation
import Testing

@testable import Providers

/// Issue 14: request paths and bodies are built without Foundation's `CharacterSet` and
/// `JSONEncoder`. A path segment must decode back to its value; a body (what the futures
/// exchange signs) must be byte for byte what `JSONEncoder` wrote.
@Suite("Request paths and bodies")
struct RequestEncodingTests {
    @Test("pathSegment keeps RFC 3986's unreserved bytes, writes every other byte as %XX, and decodes back")
    func pathSegments() {
        #expect(pathSegment("A-z_0.9~") == "A-z_0.9~")
        #expect(pathSegment("ord/é 1?x#%") == "ord%2F%C3%A9%201%3Fx%23%25")
        #expect(pathSegment("") == "")
        let pieces = ["a", "Z", "7", "-", ".", "_", "~", "/", "?", "#", "%", " ", "+", "é", "订", "🇫🇷", "\u{0}", ":"]
        var random = SeededGenerator(seed: 1_414)
        for _ in 0..<2_000 {
            let value = (0..<Int.random(in: 0...40, using: &random)).map { _ in pieces.randomElement(using: &random)! }
                .joined()
            let segment = pathSegment(value)
            #expect(segment.removingPercentEncoding == value, "\(value.debugDescription)")
            #expect(
                segment.utf8.allSatisfy { $0 < 0x80 && ($0 == UInt8(ascii: "%") || !"/?#:+ ".utf8.contains($0)) },
                "\(segment)")
        }
    }

    @Test("compactJSON writes JSONEncoder's bytes: keys sorted, no whitespace, slashes unescaped")
    func bodies() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let bodies: [[String: JSONValue]] = [
            ["order_no": .string("FE-2024/001")],
            ["id": .string("33308749002645001")],
            [
                "order_hash": .string("0xabc\"é\n"), "taker_address": .string("0xtaker"),
                "cancellation_success": .bool(true), "message": .string("Order cancelled successfully"),
            ],
            [:],
        ]
        for body in bodies {
            #expect(compactJSON(body) == Array(try encoder.encode(body)))
        }
    }
}
