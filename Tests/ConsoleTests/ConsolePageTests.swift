import CancelCore
import Foundation
import Kafka
import OperatorTools
import Testing

@testable import Console

@Suite("Console pages show data escaped")
struct ConsolePageTests {
    static func record(_ value: [UInt8], headers: [KafkaHeader]) -> DeadLetterRecord {
        DeadLetterRecord(
            KafkaConsumerMessage(
                topic: "cancel.commands.dlq", partition: 0, offset: 7, key: Array("fastpod:<b>".utf8), value: value,
                headers: headers, timestampMilliseconds: 1_700_000_000_000))
    }

    @Test("a dead letter's payload and headers are the original bytes, escaped: markup in them stays text")
    func escaped() {
        let payload = #"{"order":"</pre><script>alert(1)</script>"}"#
        let html = DeadLetterRecordPage(
            record: Self.record(
                Array(payload.utf8),
                headers: [
                    KafkaHeader(name: "cw.error.class", string: "invalid_command"),
                    KafkaHeader(name: "cw.error.message", string: #"bad "quote" & <tag>"#),
                    KafkaHeader(name: "cw.dead-lettered-at", string: "1700000000000"),
                ])
        ).html
        #expect(!html.contains("<script>") && !html.contains("</pre><script>"))
        #expect(html.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("bad &quot;quote&quot; &amp; &lt;tag&gt;"))
        #expect(html.contains("fastpod:&lt;b&gt;"))
        #expect(html.contains("2023-11-14T22:13:20Z"), "times as ISO 8601, as dlq show prints them")
        #expect(html.contains("\(payload.utf8.count) bytes, unchanged, as UTF-8 text"))
        let binary = DeadLetterRecordPage(record: Self.record([0xff, 0x00, 0x3c], headers: [])).html
        #expect(binary.contains("not UTF-8: ff003c"))
    }

    /// Swift compares `Character`s (grapheme clusters): `"` + U+0301 is one character that is not
    /// `"`, and U+0600 clusters with the `<` after it. Bytes are what a browser parses.
    @Test("review finding: a combining or prepended mark does not smuggle a raw < \" & past the escaping")
    func escapedAsBytes() throws {
        func raw(_ html: String, _ markup: String) -> Bool {
            Array(html.utf8).firstRange(of: Array(markup.utf8)) != nil
        }
        let attribute = "x\"\u{301} autofocus data-x=\"\u{301}"
        for hostile in [attribute, "\u{600}<meta>", "&\u{301}amp;", "'\u{301}", ">\u{301}"] {
            let escaped = Array(Page.escape(hostile).utf8)
            for byte in "<>\"'".utf8 { #expect(!escaped.contains(byte), "\(hostile.unicodeScalars.map(\.value))") }
        }
        let form = try DeadLetterQuery(["account": attribute]).fields(includeKey: true)
        #expect(!raw(form, #"value="x""#), "the attribute was closed early: \(form)")
        let meta = "\u{600}<meta http-equiv=refresh content=0;url=https://evil.example/ >"
        let recordPage = DeadLetterRecordPage(
            record: Self.record(Array(#"{"order":"\#(meta)"}"#.utf8), headers: [])
        ).html
        #expect(!raw(recordPage, "<meta http-equiv"), "markup in the record page")
        let list = DeadLetterListPage(
            query: DeadLetterQuery(),
            records: [
                Self.record(
                    Array("{}".utf8),
                    headers: [
                        KafkaHeader(name: "cw.error.class", string: "configuration"),
                        KafkaHeader(name: "cw.account", string: meta),
                        KafkaHeader(name: "cw.idempotency-key", string: "k"),
                    ])
            ], page: 1
        ).html
        #expect(!raw(list, "<meta http-equiv"), "markup in the list page")
    }

    @Test("the list pages and filters; the stats are dlq stats' numbers")
    func list() throws {
        let records = (0..<120).map { index in
            Self.record(
                Array("{}".utf8),
                headers: [
                    KafkaHeader(name: "cw.error.class", string: index % 3 == 0 ? "configuration" : "retries_exhausted"),
                    KafkaHeader(name: "cw.provider", string: "fastpod"),
                    KafkaHeader(name: "cw.idempotency-key", string: "k\(index)"),
                ])
        }
        let query = try DeadLetterQuery(["provider": "fastpod", "class": "", "age": "1h"])
        #expect(query.summary == "provider=fastpod age=1h")
        let page = DeadLetterListPage(
            query: query, records: records, page: 2, now: Date(timeIntervalSince1970: 1_700_000_100))
        let html = page.html
        #expect(html.contains(#"<span id="dlq-total">120</span>"#))
        #expect(html.contains(#"<td>configuration</td><td><span class="num">40</span></td>"#))
        #expect(html.contains("page 2 of 3") && html.contains("page=3") && html.contains("page=1"))
        #expect(html.components(separatedBy: "<a href=\"/dead-letters/").count - 1 == 50)
        #expect(throws: ConsoleProblem.self) { try DeadLetterQuery(["class": "nonsense"]) }
        #expect(throws: ConsoleProblem.self) { try DeadLetterQuery(["age": "3w"]) }
        // The age bucket becomes a time range, as dlq stats buckets them.
        let now = Date(timeIntervalSince1970: 1_000_000)
        let oneToSeven = try DeadLetterQuery(["age": "7d"]).filter(now: now)
        #expect(oneToSeven.since == now.addingTimeInterval(-7 * 86_400))
        #expect(oneToSeven.until == now.addingTimeInterval(-86_400))
        let older = try DeadLetterQuery(["age": "older"]).filter(now: now)
        #expect(older.since == nil && older.until == now.addingTimeInterval(-7 * 86_400))
    }
}
