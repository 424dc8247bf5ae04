import CancelCore
import Foundation
import Providers
import Testing

@Suite("Adapter rules without a network")
struct ProviderRulesTests {
    let now = Date(timeIntervalSince1970: 1_700_000_000)

    @Test("the futures signature matches the documented test vector")
    func signingVector() {
        let signature = FuturesSigner.sign(
            secret: "test-secret", timestamp: "1700000000000", method: "DELETE", path: "/v1/perpum/order",
            body: Array(#"{"id":"33308749002645666"}"#.utf8)
        )
        #expect(signature == "CTLsggxYw4LhIq5htBSCvMx+VAebWFSSLJgk6pfS2kQ=")
    }

    @Test("the futures request signs exactly the bytes it sends, with the epoch-ms timestamp, when it is finalized")
    func futuresRequest() throws {
        let request = CancelRequest(
            provider: .futures, account: "u", order: .futures(id: "33308749002645666"), idempotencyKey: "k")
        let credentials = ProviderCredentials(key: "api", secret: "test-secret")
        guard
            case .send(let prepared) = FuturesAPI().prepare(
                request, credentials: credentials, settings: ProviderSettings(baseURL: "x"), now: self.now)
        else {
            Issue.record("expected a request")
            return
        }
        #expect(
            !prepared.headers.contains { $0.name == "sign" || $0.name == "timestamp" },
            "nothing is signed before the call holds its permit")
        let call = FuturesAPI().finalize(prepared, pathSent: FuturesAPI.path, credentials: credentials, now: self.now)
        let headers = Dictionary(uniqueKeysWithValues: call.headers.map { ($0.name, $0.value) })
        #expect(call.method == "DELETE" && call.path == "/v1/perpum/order")
        #expect(headers["timestamp"] == "1700000000000")
        #expect(headers["api_key"] == "api")
        #expect(call.body == Array(#"{"id":"33308749002645666"}"#.utf8))
        #expect(headers["sign"] == "CTLsggxYw4LhIq5htBSCvMx+VAebWFSSLJgk6pfS2kQ=")
        #expect(
            call.headers.map(\.name) == ["api_key", "timestamp", "sign", "Content-Type"],
            "underscore headers kept as documented")
        let missing = FuturesAPI().prepare(
            request, credentials: ProviderCredentials(key: "api"), settings: ProviderSettings(baseURL: "x"),
            now: self.now)
        guard case .answer(let result) = missing else {
            Issue.record("no secret: no request")
            return
        }
        #expect(result.classification == .configuration)
    }

    @Test(
        "futures codes",
        arguments: [
            (#"{"code":0,"msg":"Success"}"#, CancelClassification.cancelled),
            (#"{"code":9012,"msg":"Position not found."}"#, .notFound),
            (#"{"code":29001,"msg":"API access frequently"}"#, .retryLater(after: .seconds(1), scope: .account)),
            (#"{"code":6003,"message":"more permission required"}"#, .configuration),
            (#"{"code":6001,"msg":"sign error"}"#, .configuration),
            (#"{"code":402,"msg":"param required"}"#, .rejected),
            (#"{"code":500,"msg":"system error"}"#, .configuration),
            (#"{"code":429,"msg":"too many requests"}"#, .retryLater(after: .seconds(1), scope: .account)),
            (#"{"code":7777,"msg":"something new"}"#, .unknown),
        ])
    func futuresCodes(body: String, expected: CancelClassification) {
        let request = CancelRequest(provider: .futures, account: "u", order: .futures(id: "1"), idempotencyKey: "k")
        let result = FuturesAPI().classify(
            ProviderHTTPResponse(status: 200, body: Array(body.utf8)), for: request, now: self.now)
        #expect(result.classification == expected)
        #expect(result.answer.code != nil)
        if body.contains("\"message\"") {
            #expect(result.answer.message == "more permission required", "6003 uses message, not msg")
        }
        let outage = FuturesAPI().classify(
            ProviderHTTPResponse(status: 502, body: Array("<html>bad gateway</html>".utf8)), for: request, now: self.now
        )
        #expect(outage.classification == .unknown)
    }

    @Test("Fungies checks the body status even with HTTP 200, and maps order statuses")
    func fungiesBodies() {
        let request = CancelRequest(
            provider: .fungies, account: "a", order: .fungies(orderIDOrNumber: "x"), idempotencyKey: "k")
        let api = FungiesAPI()
        let errorWith200 = api.classify(
            ProviderHTTPResponse(
                status: 200, body: Array(#"{"status":"error","error":{"message":"Invalid order state"}}"#.utf8)),
            for: request, now: self.now)
        #expect(errorWith200.classification == .rejected)
        #expect(errorWith200.answer.message == "Invalid order state")
        // Only CANCELLED in data.order.status is a cancel; any other status in a success answer is not documented.
        for (status, expected) in [
            ("CANCELLED", CancelClassification.cancelled), ("REFUNDED", .unknown), ("EXPIRED", .unknown),
            ("FAILED", .unknown), ("PARTIALLY_REFUNDED", .unknown), ("PAID", .unknown),
        ] {
            let body = #"{"status":"success","data":{"order":{"id":"x","status":"\#(status)"}}}"#
            let result = api.classify(
                ProviderHTTPResponse(status: 200, body: Array(body.utf8)), for: request, now: self.now)
            #expect(result.classification == expected, "\(status)")
            #expect(result.answer.orderStatus == status)
        }
        let throttled = api.classify(
            ProviderHTTPResponse(
                status: 429, headers: ["retry-after": "7"],
                body: Array(#"{"status":"error","error":{"message":"slow down"}}"#.utf8)), for: request, now: self.now)
        #expect(throttled.classification == .retryLater(after: .seconds(7), scope: .account))
    }

    @Test("path parameters are percent-encoded")
    func pathEncoding() {
        let request = CancelRequest(
            provider: .fungies, account: "a", order: .fungies(orderIDOrNumber: "A/B 7?#"), idempotencyKey: "k")
        guard
            case .send(let call) = FungiesAPI().prepare(
                request, credentials: ProviderCredentials(key: "p", secret: "s"),
                settings: ProviderSettings(baseURL: "x"), now: self.now)
        else {
            Issue.record("expected a request")
            return
        }
        #expect(call.path == "/v0/orders/A%2FB%207%3F%23/cancel")
    }

    @Test("feee: too early is answered without a request; code != 0 errors with HTTP 200")
    func feeeRules() {
        let created = self.now.addingTimeInterval(-120)
        var request = CancelRequest(
            provider: .feee, account: "a", order: .feee(orderNo: "1"), orderCreatedAt: created, idempotencyKey: "k")
        let prepared = FeeeAPI().prepare(
            request, credentials: ProviderCredentials(key: "k"), settings: ProviderSettings(baseURL: "x"), now: self.now
        )
        #expect(
            prepared
                == .answer(
                    ProviderCallResult(
                        classification: .retryLater(after: .seconds(180), scope: .order), answer: ProviderAnswer(),
                        reason:
                            "feee.io cancels orders only 5 minutes after creation; due at \(Timestamp.format(created.addingTimeInterval(300)))"
                    )))
        request.orderCreatedAt = self.now.addingTimeInterval(-301)
        guard
            case .send(let call) = FeeeAPI().prepare(
                request, credentials: ProviderCredentials(key: "k"), settings: ProviderSettings(baseURL: "x"),
                now: self.now)
        else {
            Issue.record("old enough: a request")
            return
        }
        #expect(call.headers.map(\.name) == ["key", "User-Agent", "Content-Type"])
        // feee.io publishes no error codes: only readings that lead to a safe class are made.
        for (body, expected) in [
            (#"{"code":40011,"msg":"order has been completed and cannot be canceled"}"#, CancelClassification.unknown),
            (#"{"code":40004,"msg":"order not exist"}"#, .unknown),
            (#"{"code":40012,"msg":"order has already been canceled"}"#, .unknown),
            (#"{"code":10001,"msg":"ip not in whitelist"}"#, .configuration),
            (#"{"code":123,"msg":"something odd"}"#, .unknown),
        ] {
            let result = FeeeAPI().classify(
                ProviderHTTPResponse(status: 200, body: Array(body.utf8)), for: request, now: self.now)
            #expect(result.classification == expected, "\(body)")
        }
        let early = FeeeAPI().classify(
            ProviderHTTPResponse(
                status: 200,
                body: Array(#"{"code":40010,"msg":"orders can only be canceled 5 minutes after creation"}"#.utf8)),
            for: CancelRequest(
                provider: .feee, account: "a", order: .feee(orderNo: "1"),
                orderCreatedAt: self.now.addingTimeInterval(-200), idempotencyKey: "k"),
            now: self.now
        )
        #expect(
            early.classification == .retryLater(after: .seconds(100), scope: .order),
            "this order alone retries at creation + 5 minutes")
    }

    @Test("taker: refusal recorded is not cancellable; envelope codes")
    func takerRules() {
        let refused = CancelRequest(
            provider: .taker, account: "a",
            order: .taker(orderHash: "h", takerAddress: "t", cancellationSuccess: false, message: "in trade"),
            idempotencyKey: "k")
        let ok = #"{"code":0,"data":{"success":true,"message":"Cancellation result recorded","order_hash":"h"}}"#
        #expect(
            TakerAPI().classify(ProviderHTTPResponse(status: 200, body: Array(ok.utf8)), for: refused, now: self.now)
                .classification == .notCancellable)
        let invalid = #"{"code":400001,"message":"Invalid parameter","details":"order_hash"}"#
        #expect(
            TakerAPI().classify(
                ProviderHTTPResponse(status: 400, body: Array(invalid.utf8)), for: refused, now: self.now
            ).classification == .rejected)
    }

    @Test("FastPOD 422 and 500")
    func fastpodRules() {
        let request = CancelRequest(provider: .fastpod, account: "a", order: .fastpod(id: "F1"), idempotencyKey: "k")
        let api = FastPodAPI()
        #expect(
            api.classify(
                ProviderHTTPResponse(
                    status: 422, body: Array(#"{"message":"Parameter Error","errors":{"id":["invalid"]}}"#.utf8)),
                for: request, now: self.now
            ).classification == .rejected)
        #expect(
            api.classify(
                ProviderHTTPResponse(
                    status: 422,
                    body: Array(#"{"status":false,"message":"Order in status shipped cannot be cancelled."}"#.utf8)),
                for: request, now: self.now
            ).classification == .rejected, "a 422 is a refusal whatever its words")
        #expect(
            api.classify(
                ProviderHTTPResponse(status: 500, body: Array("Server Error".utf8)), for: request, now: self.now
            ).classification == .unknown)
    }
}
