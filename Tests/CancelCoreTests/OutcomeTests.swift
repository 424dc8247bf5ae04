import CancelCore
import Foundation
import Testing

@Suite("Outcomes, ids and secrets")
struct OutcomeTests {
    let identity = CommandIdentity(
        commandID: "c1", idempotencyKey: "key-1", provider: "fastpod", account: "shop",
        order: ["id": .string("F1")], requestedAt: Timestamp.parse("2026-11-22T10:00:00Z"),
        correlationID: "corr", metadata: ["z": .string("last"), "a": .number(1)]
    )

    @Test("outcome ids are deterministic per key and distinct per kind")
    func ids() {
        #expect(OutcomeID.terminal(idempotencyKey: "key-1") == OutcomeID.terminal(idempotencyKey: "key-1"))
        #expect(OutcomeID.terminal(idempotencyKey: "key-1") != OutcomeID.terminal(idempotencyKey: "key-2"))
        #expect(OutcomeID.terminal(idempotencyKey: "key-1").count == 35)
        #expect(
            OutcomeID.failed(idempotencyKey: "key-1", deadLetterCount: 1)
                != OutcomeID.failed(idempotencyKey: "key-1", deadLetterCount: 2))
        #expect(OutcomeID.failed(idempotencyKey: "key-1", deadLetterCount: 1).hasPrefix("of_"))
        // Pinned: ids already published must never change (computed with Python's hashlib:
        // the first 16 bytes of SHA-256 over the id's text, in lowercase hex).
        #expect(OutcomeID.terminal(idempotencyKey: "key-1") == "oc_38b1cfb3b2b37fbc32da64a4f3ec4979")
        #expect(OutcomeID.failed(idempotencyKey: "key-1", deadLetterCount: 2) == "of_b6b9f2c690b0359c39754405bbc19286")
    }

    @Test("encoding is byte-stable and round-trips")
    func encoding() throws {
        let outcome = CancelOutcome(
            outcomeID: OutcomeID.terminal(idempotencyKey: "key-1"), identity: self.identity, status: .alreadyCancelled,
            reason: "order was cancelled before",
            providerResponse: ProviderAnswer(httpStatus: 200, message: "ok", orderStatus: "cancelled"),
            attempts: 2, completedAt: Date(timeIntervalSince1970: 1_795_341_601.5), workerID: "w1"
        )
        let bytes = outcome.encoded()
        #expect(bytes == outcome.encoded())
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""status":"already_cancelled""#))
        #expect(text.contains(#""completed_at":"2026-11-22T10:00:01.500Z""#))
        #expect(text.contains(#""provider_response":{"http_status":200"#))
        #expect(try CancelOutcome.decode(bytes) == outcome)
        #expect(OutcomeStatus.failed.isTerminal == false)
        #expect(OutcomeStatus.expired.isTerminal)
    }

    @Test("secrets never print")
    func secrets() throws {
        let credentials = ProviderCredentials(key: "pub_live_123", secret: "sec_live_456")
        let printed = "\(credentials) \(String(describing: credentials)) \(String(reflecting: credentials))"
        #expect(!printed.contains("pub_live_123"))
        #expect(!printed.contains("sec_live_456"))
        var dumped = ""
        dump(credentials, to: &dumped)
        #expect(!dumped.contains("live"))
        let encoded = String(decoding: try JSONEncoder().encode(credentials), as: UTF8.self)
        #expect(!encoded.contains("live"))
        #expect(credentials.key.reveal() == "pub_live_123")
    }
}
