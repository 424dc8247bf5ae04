import CancelCore
import Foundation
import Testing

@Suite("Command decoding")
struct CommandDecoderTests {
    let decoder = CommandDecoder()

    func decode(_ json: String) -> CommandDecoder.Decoded {
        self.decoder.decode(Array(json.utf8))
    }

    @Test("a complete futures command decodes with its id kept as decimal text")
    func validFutures() throws {
        let decoded = self.decode(
            """
            {"command_id":"c1","idempotency_key":"k1","provider":"futures","account":"acct-7",
             "order":{"id":"33308749002645666"},"requested_at":"2026-11-22T10:00:00.250Z",
             "deadline":"2026-11-22T10:05:00Z","correlation_id":"corr","metadata":{"a":[1,true,null]}}
            """)
        guard case .valid(let command) = decoded else {
            Issue.record("expected valid, got \(decoded)")
            return
        }
        #expect(command.order == .futures(id: "33308749002645666"))
        #expect(command.kafkaKey == "futures:acct-7")
        #expect(command.deadline == Timestamp.parse("2026-11-22T10:05:00Z"))
        #expect(command.requestedAt.timeIntervalSince1970 == 1_795_341_600.25)
        #expect(command.metadata == ["a": .array([.number(1), .bool(true), .null])])
    }

    @Test(
        "every provider's order shape",
        arguments: [
            ("feee", #"{"order_no":"2304170329503866885309"}"#, OrderReference.feee(orderNo: "2304170329503866885309")),
            ("fungies", #"{"order_id_or_number":"3c90c3cc-0d44"}"#, .fungies(orderIDOrNumber: "3c90c3cc-0d44")),
            ("fastpod", #"{"id":"F237-120723-000001"}"#, .fastpod(id: "F237-120723-000001")),
            ("futures", #"{"id":12345}"#, .futures(id: "12345")),
            (
                "taker",
                #"{"order_hash":"0xab","taker_address":"0xcd","cancellation_success":false,"message":"in trade"}"#,
                .taker(orderHash: "0xab", takerAddress: "0xcd", cancellationSuccess: false, message: "in trade")
            ),
        ])
    func orderShapes(provider: String, order: String, expected: OrderReference) {
        let decoded = self.decode(
            """
            {"command_id":"c","idempotency_key":"k","provider":"\(provider)","account":"a","order":\(order),"requested_at":"2026-01-01T00:00:00Z"}
            """)
        guard case .valid(let command) = decoded else {
            Issue.record("expected valid, got \(decoded)")
            return
        }
        #expect(command.order == expected)
        #expect(
            command.order.json.keys.sorted()
                == (try! JSONDecoder().decode([String: JSONValue].self, from: Data(order.utf8))).keys.sorted())
    }

    @Test(
        "poison is undecodable with a reason",
        arguments: [
            ("", "empty record"),
            ("not json", "not a JSON object"),
            ("[1,2]", "not a JSON object"),
            (#"{"command_id":"c","provider":"feee","account":"a"}"#, "idempotency_key is required"),
            (
                #"{"command_id":5,"idempotency_key":"k","provider":"feee","account":"a"}"#,
                "command_id has the wrong type"
            ),
        ])
    func undecodable(json: String, reason: String) {
        guard case .undecodable(let actual) = self.decode(json) else {
            Issue.record("expected undecodable for \(json)")
            return
        }
        #expect(actual.contains(reason), "\(actual)")
    }

    @Test("invalid bytes and oversized records are dead-lettered unread")
    func bytesAndSize() {
        #expect(self.decoder.decode([0xFF, 0xFE, 0x7B]) == .undecodable(reason: "not UTF-8 text"))
        let huge = CommandDecoder(maxRecordBytes: 100).decode(Array(repeating: 0x20, count: 101))
        guard case .undecodable(let reason) = huge else {
            Issue.record("expected undecodable")
            return
        }
        #expect(reason.contains("exceeds"))
    }

    @Test(
        "addressable but invalid commands keep their identity for a rejected outcome",
        arguments: [
            (
                #""provider":"paypal","order":{"id":"1"},"requested_at":"2026-01-01T00:00:00Z""#,
                "unknown provider \"paypal\""
            ),
            (#""provider":"futures","order":{"id":"1.5"},"requested_at":"2026-01-01T00:00:00Z""#, "64-bit integer"),
            (
                #""provider":"futures","order":{"id":"1"},"requested_at":"yesterday""#,
                "requested_at must be an RFC 3339"
            ),
            (
                #""provider":"feee","order":{"order_no":""},"requested_at":"2026-01-01T00:00:00Z""#,
                "order.order_no must have"
            ),
            (
                #""provider":"taker","order":{"order_hash":"h","taker_address":"t","message":"m"},"requested_at":"2026-01-01T00:00:00Z""#,
                "cancellation_success is required"
            ),
            (
                #""provider":"feee","order":{"order_no":"1"},"requested_at":"2026-01-01T00:00:00Z","deadline":7"#,
                "deadline has the wrong type"
            ),
        ])
    func invalid(fields: String, reason: String) {
        let decoded = self.decode(#"{"command_id":"c9","idempotency_key":"k9","account":"acct","# + fields + "}")
        guard case .invalid(let identity, let actual) = decoded else {
            Issue.record("expected invalid, got \(decoded)")
            return
        }
        #expect(identity.commandID == "c9")
        #expect(identity.idempotencyKey == "k9")
        #expect(identity.account == "acct")
        #expect(actual.contains(reason), "\(actual)")
    }

    /// A command with the four identity fields, one of them replaced by `value` (JSON text).
    func identityCommand(
        _ field: String, _ value: String, rest: String = #""order":{"id":"F1"},"requested_at":"2026-01-01T00:00:00Z""#
    ) -> String {
        var fields = [
            ("command_id", #""c1""#), ("idempotency_key", #""k1""#), ("provider", #""fastpod""#),
            ("account", #""acct""#),
        ]
        fields = fields.map { $0.0 == field ? ($0.0, value) : $0 }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "," + rest + "}"
    }

    static func hasControlCharacter(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }

    // PostgreSQL text refuses NUL: such a key would fail every ledger operation, forever.
    @Test(
        "a control character in an identity field makes the record undecodable, the reason naming the field",
        arguments: [
            ("idempotency_key", #""key\u0000nul""#),
            ("idempotency_key", #""k\u001f""#),
            ("idempotency_key", "\"k\u{7F}\""),  // DEL, legal unescaped in JSON
            ("command_id", #""c\u0007""#),
            ("account", #""acct\n""#),
            ("account", #""\tacct""#),
            ("provider", #""fastpod\u007f""#),
        ])
    func controlCharacters(field: String, value: String) {
        let json = self.identityCommand(field, value)
        guard case .undecodable(let reason) = self.decode(json) else {
            Issue.record("expected undecodable for \(json), got \(self.decode(json))")
            return
        }
        #expect(reason.contains(field), "\(reason)")
        #expect(reason.contains("control character"), "\(reason)")
        #expect(!Self.hasControlCharacter(reason), "the reason never echoes the raw character: \(reason)")
    }

    @Test("a control character in an identity field is caught when another field has the wrong type too")
    func controlCharactersBesideWrongType() {
        for (field, value) in [("idempotency_key", #""k\u0000""#), ("account", #""a\u0001""#)] {
            let json = self.identityCommand(field, value, rest: #""order":{"id":"F1"},"requested_at":5"#)
            guard case .undecodable(let reason) = self.decode(json) else {
                Issue.record("expected undecodable for \(json), got \(self.decode(json))")
                continue
            }
            #expect(reason.contains(field), "\(reason)")
            #expect(!Self.hasControlCharacter(reason), "\(reason)")
        }
    }

    @Test("printable non-ASCII identity fields stay valid")
    func nonASCIIIdentity() {
        let decoded = self.decode(self.identityCommand("idempotency_key", #""ключ-ü-🙂 \u00a0x""#))
        guard case .valid(let command) = decoded else {
            Issue.record("expected valid, got \(decoded)")
            return
        }
        #expect(command.idempotencyKey == "ключ-ü-🙂 \u{A0}x")
    }
    /// Review finding (CancelCore): a record with a field of the wrong type was answered with its
    /// identity if each identity field had at most 256 bytes, where every other record is held to
    /// the identity's limits (command_id 128, provider 64, account 128): a 200-byte command_id
    /// was undecodable, or answered `rejected` (with an identity the outcome schema refuses) once
    /// the record also had a mistyped deadline.
    @Test("review finding: the identity's length limits hold for a record with a mistyped field too")
    func identityLimitsWithAMistypedField() {
        let id = String(repeating: "c", count: 200)
        let text =
            #"{"schema":"cancel-command.v1","command_id":"\#(id)","idempotency_key":"k","provider":"fastpod","account":"a","order":{"id":"o"},"requested_at":"2026-01-01T00:00:00Z","deadline":7}"#
        guard case .undecodable(let reason) = CommandDecoder(maxRecordBytes: 65_536).decode(Array(text.utf8)) else {
            Issue.record("answered with an identity it does not allow")
            return
        }
        #expect(reason.contains("command_id must have 1 to 128 bytes"), "\(reason)")
    }
}
