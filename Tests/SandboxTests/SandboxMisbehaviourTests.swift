import AsyncHTTPClient
import CancelCore
import Foundation
import NIOHTTP1
import Testing

@testable import Sandbox

/// FastPOD's documented headers (seed 003): a correct call.
private let fastpodHeaders = [("Authorization", "Bearer fastpod-key-1"), ("Accept", "application/json")]

/// Starts a sandbox and hands over both clients: `RawClient` (AsyncHTTPClient) and `WireClient`
/// (plain socket, exact bytes).
private func withWire(
    _ configuration: SandboxConfiguration = SandboxConfiguration(),
    _ body: @Sendable (ProviderSandbox, RawClient, WireClient) async throws -> Void
) async throws {
    try await withSandbox(configuration) { sandbox, client in
        try await body(sandbox, client, WireClient(base: client.base))
    }
}

@Suite("Sandbox misbehaviour: what real providers and their proxies send", .timeLimit(.minutes(2)))
struct SandboxMisbehaviourTests {
    // MARK: Fault modes on the wire

    @Test("html: an nginx error page with text/html for 404 and 405, a maintenance page for 200")
    func htmlPage() async throws {
        try await withWire { sandbox, client, wire in
            sandbox.seed([SandboxOrder(provider: .fastpod, id: "H1")])
            sandbox.addFault(SandboxFault(.html(status: 404), provider: .fastpod, orderPattern: "H1", count: 1))
            let notFound = try await wire.send("POST", "/v1/orders/H1/cancel", headers: fastpodHeaders)
            #expect(notFound.head.hasPrefix("HTTP/1.1 404"))
            #expect(notFound.header("content-type") == "text/html")
            #expect(notFound.header("content-length") == String(notFound.body.count))
            #expect(
                notFound.text.contains("<title>404 Not Found</title>")
                    && notFound.text.contains("<center>nginx</center>"))

            // The same through the admin API, with SandboxFault's Codable shape.
            let added = try await client.send(
                .POST, "/_sandbox/faults", body: #"{"kind":{"html":{"status":405}},"provider":"fastpod","count":1}"#)
            #expect(added.status == 200, "\(added.body)")
            let notAllowed = try await wire.send("POST", "/v1/orders/H1/cancel", headers: fastpodHeaders)
            #expect(notAllowed.status == 405 && notAllowed.text.contains("<title>405 Not Allowed</title>"))

            let maintenance = try await wire.send(
                "POST", "/v1/orders/H1/cancel", headers: fastpodHeaders + [("X-Sandbox-Fault", "html=200")])
            #expect(maintenance.status == 200 && maintenance.header("content-type") == "text/html")
            #expect(maintenance.text.hasPrefix("<!DOCTYPE html>") && maintenance.text.contains("maintenance"))

            #expect(
                sandbox.order(.fastpod, "H1")?.status == "new_order",
                "an HTML page instead of the answer changes nothing")
            let results = sandbox.requests(provider: .fastpod).map(\.result)
            #expect(results == ["fault:html_404", "fault:html_405", "fault:html_200"])
        }
    }

    @Test("empty: no body at all with 204, and with 200 that still says application/json")
    func emptyBody() async throws {
        try await withWire { sandbox, client, wire in
            let noContent = try await wire.send(
                "POST", "/v1/orders/E1/cancel", headers: fastpodHeaders + [("X-Sandbox-Fault", "empty=204")])
            #expect(noContent.status == 204 && noContent.body.isEmpty)
            #expect(noContent.header("content-type") == nil)

            let admin = try await client.send(
                .POST, "/_sandbox/faults", body: #"{"type":"empty","status":200,"provider":"fastpod"}"#)
            #expect(admin.status == 200, "\(admin.body)")
            let ok = try await wire.send("POST", "/v1/orders/E1/cancel", headers: fastpodHeaders)
            #expect(ok.status == 200 && ok.body.isEmpty)
            #expect(ok.header("content-length") == "0")
            #expect(ok.header("content-type") == "application/json", "promises JSON, sends none")
            #expect(sandbox.requests(provider: .fastpod).map(\.result) == ["fault:empty_204", "fault:empty_200"])
        }
    }

    @Test("raw: Fungies' error envelope with HTTP 200, and a raw body with ';' through the header")
    func rawBody() async throws {
        try await withWire { sandbox, _, wire in
            sandbox.seed([SandboxOrder(provider: .fungies, id: "R1")])
            let envelope = #"{"status":"error","error":{"message":"Order cannot be cancelled"}}"#
            sandbox.addFault(
                SandboxFault(
                    .raw(status: 200, contentType: "application/json", body: envelope), provider: .fungies, count: 1))
            let headers = [
                ("x-fngs-public-key", "pub_demo_1"), ("x-fngs-secret-key", "sec_demo_1"),
                ("Content-Type", "application/json"),
            ]
            let answer = try await wire.send("PATCH", "/v0/orders/R1/cancel", headers: headers, body: "{}")
            #expect(answer.status == 200)
            #expect(answer.header("content-type") == "application/json")
            #expect(answer.text == envelope, "exactly these bytes")
            #expect(sandbox.order(.fungies, "R1")?.status == "PAID")

            let text = "upstream said: no; try later"
            let viaHeader = try await wire.send(
                "PATCH", "/v0/orders/R1/cancel",
                headers: headers + [("X-Sandbox-Fault", "raw=502;content-type=text/plain;body=\(text)")], body: "{}"
            )
            #expect(
                viaHeader.status == 502 && viaHeader.header("content-type") == "text/plain" && viaHeader.text == text)
            #expect(sandbox.requests(provider: .fungies).map(\.result) == ["fault:raw_200", "fault:raw_502"])
        }
    }

    @Test("redirect: a 3xx with Location, not followed")
    func redirect() async throws {
        try await withWire { sandbox, client, wire in
            let fault =
                #"{"type":"redirect","status":301,"location":"https://api-v2.fastpod.net/login","#
                + #""provider":"fastpod","count":1}"#
            let admin = try await client.send(.POST, "/_sandbox/faults", body: fault)
            #expect(admin.status == 200, "\(admin.body)")
            let moved = try await wire.send("POST", "/v1/orders/D1/cancel", headers: fastpodHeaders)
            #expect(moved.status == 301)
            #expect(moved.header("location") == "https://api-v2.fastpod.net/login")
            #expect(moved.text.contains("301 Moved Permanently"))

            let found = try await wire.send(
                "POST", "/v1/orders/D1/cancel", headers: fastpodHeaders + [("X-Sandbox-Fault", "redirect=302")])
            #expect(found.status == 302 && found.header("location") == SandboxFault.defaultRedirectLocation)
            #expect(sandbox.requests(provider: .fastpod).map(\.result) == ["fault:redirect_301", "fault:redirect_302"])
        }
    }

    @Test("oversized: 2 MiB of valid JSON with its exact Content-Length")
    func oversized() async throws {
        try await withWire { sandbox, client, wire in
            let answer = try await wire.send(
                "POST", "/v1/orders/O1/cancel", headers: fastpodHeaders + [("X-Sandbox-Fault", "oversized=2MiB")])
            #expect(answer.status == 200)
            #expect(answer.header("content-length") == "2097152")
            #expect(answer.body.count == 2_097_152 && !answer.closedEarly)
            let object = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
            #expect((object?["padding"] as? String)?.count == 2_097_152 - 14)

            sandbox.addFault(SandboxFault(.oversized(bytes: 5), provider: .fastpod, count: 1))
            let tiny = try await wire.send("POST", "/v1/orders/O1/cancel", headers: fastpodHeaders)
            #expect(tiny.body == Array("     ".utf8))
            // A client with a 1 MiB cap refuses the big one.
            await #expect(throws: (any Error).self) {
                _ = try await client.send(
                    .POST, "/v1/orders/O1/cancel", headers: fastpodHeaders + [("X-Sandbox-Fault", "oversized=2MiB")])
            }
            #expect(sandbox.requests(provider: .fastpod).first?.result == "fault:oversized")
        }
    }

    @Test("truncated: Content-Length promises more than is written, then the connection closes; the cancel happened")
    func truncated() async throws {
        try await withWire { sandbox, client, wire in
            sandbox.seed([SandboxOrder(provider: .fastpod, id: "T1"), SandboxOrder(provider: .fastpod, id: "T2")])
            sandbox.addFault(SandboxFault(.truncated(fraction: 0.5), provider: .fastpod, orderPattern: "T1"))
            let cut = try await wire.send("POST", "/v1/orders/T1/cancel", headers: fastpodHeaders)
            #expect(cut.status == 200)
            let declared = try #require(cut.header("content-length").flatMap { Int($0) })
            #expect(cut.closedEarly, "the server hung up")
            #expect(cut.body.count < declared && cut.body.count == declared / 2, "\(cut.body.count) of \(declared)")
            #expect(cut.text.hasPrefix(#"{"status":true,"message":"Order cancelled successfully.""#))
            #expect(
                sandbox.order(.fastpod, "T1")?.status == "cancelled",
                "the provider did cancel; only the answer was lost")
            #expect(sandbox.requests(provider: .fastpod).last?.result == "cancelled+truncated")

            await #expect(throws: (any Error).self, "a real client sees the cut") {
                _ = try await client.send(
                    .POST, "/v1/orders/T2/cancel", headers: fastpodHeaders + [("X-Sandbox-Fault", "truncated=0.1")])
            }
        }
    }

    @Test("retry-after: raw values on 429 and 503, sent verbatim")
    func retryAfterValues() async throws {
        try await withWire { sandbox, _, wire in
            let values = ["inf", "1e300", "-5", "99999999999", "NaN", "Fri, 31 Dec 9999 23:59:59 GMT", "soon, maybe?!"]
            for (index, value) in values.enumerated() {
                let status = index.isMultiple(of: 2) ? 429 : 503
                let answer = try await wire.send(
                    "POST", "/v1/orders/A1/cancel",
                    headers: fastpodHeaders + [("X-Sandbox-Fault", "status=\(status);retry-after=\(value)")]
                )
                #expect(answer.status == status)
                #expect(
                    answer.head.contains("\r\nRetry-After: \(value)\r\n")
                        || answer.head.contains("\r\nretry-after: \(value)\r\n"), "\(answer.head)")
            }
            sandbox.addFault(
                SandboxFault(
                    .retryAfter(status: 503, value: "Fri, 31 Dec 9999 23:59:59 GMT"), provider: .fastpod, count: 1))
            let swift = try await wire.send("POST", "/v1/orders/A1/cancel", headers: fastpodHeaders)
            #expect(swift.status == 503 && swift.header("retry-after") == "Fri, 31 Dec 9999 23:59:59 GMT")
            let alone = try await wire.send(
                "POST", "/v1/orders/A1/cancel", headers: fastpodHeaders + [("X-Sandbox-Fault", "retry-after=NaN")])
            #expect(alone.status == 429 && alone.header("retry-after") == "NaN")
            #expect(
                sandbox.requests(provider: .fastpod).map(\.result).prefix(2) == [
                    "fault:retry_after_429", "fault:retry_after_503",
                ])
        }
    }

    // MARK: Jitter

    @Test("jitter is slept before the clock is read and the request counted; latency after")
    func jitterBeforeArrival() async throws {
        var configuration = SandboxConfiguration()
        configuration.arrivalJitter[.fastpod] = .fixed(milliseconds: 300)
        configuration.latency[.fastpod] = .fixed(milliseconds: 200)
        try await withWire(configuration) { sandbox, client, _ in
            let sent = Date()
            #expect(try await client.send(.POST, "/v1/orders/J1/cancel", headers: fastpodHeaders).status == 404)
            let answered = Date()
            let record = try #require(sandbox.requests(provider: .fastpod).last)
            #expect(
                record.at.timeIntervalSince(sent) >= 0.3,
                "arrival is after the jitter: \(record.at.timeIntervalSince(sent))")
            #expect(answered.timeIntervalSince(record.at) >= 0.2, "latency comes after arrival")

            // The fault kind and header do the same, on top of the configured jitter.
            let again = Date()
            _ = try await client.send(
                .POST, "/v1/orders/J2/cancel", headers: fastpodHeaders + [("X-Sandbox-Fault", "jitter=200ms")])
            let second = try #require(sandbox.requests(provider: .fastpod).last)
            #expect(second.at.timeIntervalSince(again) >= 0.5)
        }
    }

    @Test(
        "regression: the arrival is the request's reception plus the jitter drawn, not when an overslept jitter ended")
    func arrivalIsReceptionPlusJitter() async throws {
        var configuration = SandboxConfiguration()
        configuration.arrivalJitter[.fastpod] = .fixed(milliseconds: 100)
        try await withWire(configuration) { sandbox, client, _ in
            // The machine is loaded: every sleep of the sandbox's requests overshoots a little.
            for index in 0..<5 {
                _ = try await client.send(.POST, "/v1/orders/K\(index)/cancel", headers: fastpodHeaders)
                _ = try await client.send(
                    .POST, "/v1/orders/L\(index)/cancel", headers: fastpodHeaders + [("X-Sandbox-Fault", "jitter=50ms")]
                )
            }
            let records = sandbox.requests(provider: .fastpod)
            #expect(records.count == 10)
            for record in records {
                let received = try #require(record.receivedAt)
                let network = record.path.contains("/L") ? 0.15 : 0.1
                #expect(
                    abs(record.at.timeIntervalSince(received) - network) < 0.000_01,
                    "\(record.path): arrived \(record.at.timeIntervalSince(received)) s after reception")
            }
        }
    }

    @Test(
        "the arrival is stamped when the event loop decodes the head: a stamp a client sends is overwritten, never logged"
    )
    func arrivalStampedOnTheEventLoop() async throws {
        try await withWire(SandboxConfiguration()) { sandbox, client, _ in
            let before = Date()
            _ = try await client.send(
                .POST, "/v1/orders/S1/cancel", headers: fastpodHeaders + [("X-Sandbox-Received-At", "1000")])
            let after = Date()
            let record = try #require(sandbox.requests(provider: .fastpod).first)
            let received = try #require(record.receivedAt)
            #expect(received >= before.addingTimeInterval(-0.001) && received <= after, "\(received)")
            #expect(!record.headers.keys.contains { $0.lowercased() == "x-sandbox-received-at" }, "\(record.headers)")
        }
    }

    @Test(
        "rates are measured at jittered arrival: 11 futures calls sent at once, one delayed past the second, all pass")
    func jitterSpreadsArrivals() async throws {
        var configuration = SandboxConfiguration()
        configuration.openByDefault = true
        try await withWire(configuration) { sandbox, client, _ in
            let codes = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<11 {
                    group.addTask {
                        let body = #"{"id":"\#(3000 + index)"}"#
                        // The 11th is sent with the others but the network holds it for 1.5 s.
                        let jitter = index == 10 ? [("X-Sandbox-Fault", "jitter=1500ms")] : []
                        let answer = try await client.send(
                            .DELETE, "/v1/perpum/order", headers: futuresHeaders(body: body) + jitter, body: body)
                        return client.json(answer.body)["code"] as? Int ?? -1
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(codes == Array(repeating: 0, count: 11), "\(codes)")
            #expect(sandbox.stats().rateLimitViolations["futures:demo-1"] == nil)
            #expect(sandbox.stats().maxRatePerUser["futures:demo-1"] == 10)
        }
    }

    // MARK: Contracts

    @Test("contract violations: FastPOD without Accept is counted once and still answered; a correct call counts none")
    func contractViolations() async throws {
        try await withWire { sandbox, client, _ in
            sandbox.seed([SandboxOrder(provider: .fastpod, id: "C1"), SandboxOrder(provider: .fastpod, id: "C2")])
            let noAccept = try await client.send(
                .POST, "/v1/orders/C1/cancel", headers: [("Authorization", "Bearer fastpod-key-1")])
            #expect(noAccept.status == 200, "a missing Accept does not fail the call")
            #expect(sandbox.stats().contractViolations == ["fastpod: missing Accept: application/json": 1])
            let stats = client.json(try await client.send(.GET, "/_sandbox/stats").body)
            #expect(
                (stats["contract_violations"] as? [String: Any])?["fastpod: missing Accept: application/json"] as? Int
                    == 1)
            let log = try await client.send(.GET, "/_sandbox/requests?provider=fastpod")
            #expect(log.body.contains(#""contract_violations":["fastpod: missing Accept: application/json"]"#))

            #expect(try await client.send(.POST, "/_sandbox/reset").status == 200)
            #expect(sandbox.stats().contractViolations.isEmpty)
            #expect(try await client.send(.POST, "/v1/orders/C2/cancel", headers: fastpodHeaders).status == 200)
            #expect(sandbox.stats().contractViolations.isEmpty, "\(sandbox.stats().contractViolations)")
            #expect(sandbox.requests(provider: .fastpod).last?.contractViolations == nil)
        }
    }

    @Test("contract violations: bodies and headers of the other providers; auth failures stay auth failures")
    func otherContracts() async throws {
        try await withWire { sandbox, client, _ in
            // taker: cancellation_success as 1, not a JSON boolean; no Content-Type.
            let taker = #"{"order_hash":"0xabc","taker_address":"0xdef","cancellation_success":1,"message":"ok"}"#
            _ = try await client.send(
                .POST, "/api/v1/orders/cancel-result", headers: [("X-API-Key", "taker-key-1")], body: taker)
            // feee: no User-Agent, body without order_no.
            _ = try await client.send(
                .POST, "/open/v2/order/cancel", headers: [("key", "feee-key-1"), ("Content-Type", "application/json")],
                body: "{}")
            // fungies: no body; wrong Content-Type.
            _ = try await client.send(
                .PATCH, "/v0/orders/X/cancel",
                headers: [
                    ("x-fngs-public-key", "pub_demo_1"), ("x-fngs-secret-key", "sec_demo_1"),
                    ("Content-Type", "text/plain"),
                ])
            // futures: a JSON body without Content-Type and without id.
            var futures = futuresHeaders(body: "{}")
            futures.removeAll { $0.0 == "Content-Type" }
            _ = try await client.send(.DELETE, "/v1/perpum/order", headers: futures, body: "{}")
            // fastpod: no Authorization at all is an auth failure and a violation; Accept */* is a violation.
            let unauthenticated = try await client.send(.POST, "/v1/orders/F1/cancel", headers: [("Accept", "*/*")])
            #expect(unauthenticated.status == 401)

            #expect(
                sandbox.stats().contractViolations == [
                    "taker: missing Content-Type: application/json": 1,
                    "taker: body field cancellation_success is not a JSON boolean": 1,
                    "feee: missing User-Agent": 1,
                    "feee: missing body field order_no": 1,
                    "fungies: wrong Content-Type (expected application/json)": 1,
                    "fungies: missing body (a JSON object)": 1,
                    "futures: missing Content-Type: application/json": 1,
                    "futures: missing id": 1,
                    "fastpod: missing Authorization: Bearer": 1,
                    "fastpod: wrong Accept (expected application/json)": 1,
                ])
        }
    }

    // MARK: Path prefix

    @Test("path prefix: provider routes under /gw, futures signed over the prefixed path, admin unmoved")
    func pathPrefix() async throws {
        var configuration = SandboxConfiguration()
        configuration.pathPrefix = "/gw/"
        try await withWire(configuration) { sandbox, client, _ in
            sandbox.seed([SandboxOrder(provider: .futures, id: "77"), SandboxOrder(provider: .fastpod, id: "P1")])
            let body = #"{"id":"77"}"#
            let unprefixedSignature = try await client.send(
                .DELETE, "/gw/v1/perpum/order", headers: futuresHeaders(body: body), body: body)
            #expect(
                client.json(unprefixedSignature.body)["code"] as? Int == 6001,
                "CoinW signs the path the request travels")
            let signed = try await client.send(
                .DELETE, "/gw/v1/perpum/order", headers: futuresHeaders(body: body, path: "/gw/v1/perpum/order"),
                body: body)
            #expect(client.json(signed.body)["code"] as? Int == 0, "\(signed.body)")
            #expect(sandbox.order(.futures, "77")?.status == "cancelled")
            #expect(sandbox.requests(provider: .futures).last?.path == "/gw/v1/perpum/order")

            #expect(try await client.send(.POST, "/gw/v1/orders/P1/cancel", headers: fastpodHeaders).status == 200)
            #expect(
                try await client.send(.POST, "/v1/orders/P1/cancel", headers: fastpodHeaders).status == 404,
                "not served without the prefix")
            #expect(try await client.send(.GET, "/_sandbox/stats").status == 200)
            #expect(try await client.send(.GET, "/gw/_sandbox/stats").status == 404)
        }
    }

    // MARK: Parsing

    @Test("X-Sandbox-Fault syntax, admin JSON, Codable round trip")
    func parsing() throws {
        #expect(SandboxFault.fromHeader("status=503") == .status(code: 503, retryAfterSeconds: nil))
        #expect(SandboxFault.fromHeader("status=429;retry-after=2") == .status(code: 429, retryAfterSeconds: 2))
        #expect(
            SandboxFault.fromHeader("status=503; retry-after=Fri, 31 Dec 9999 23:59:59 GMT")
                == .retryAfter(status: 503, value: "Fri, 31 Dec 9999 23:59:59 GMT"))
        #expect(SandboxFault.fromHeader("retry-after=inf") == .retryAfter(status: 429, value: "inf"))
        #expect(SandboxFault.fromHeader("html=405") == .html(status: 405))
        #expect(SandboxFault.fromHeader("empty=204") == .empty(status: 204))
        #expect(
            SandboxFault.fromHeader(#"raw=200;body={"a":1;"b":2}"#)
                == .raw(status: 200, contentType: "application/json", body: #"{"a":1;"b":2}"#))
        #expect(SandboxFault.fromHeader("redirect=307;location=/v2/x") == .redirect(status: 307, location: "/v2/x"))
        #expect(SandboxFault.fromHeader("oversized=2MiB") == .oversized(bytes: 2_097_152))
        #expect(SandboxFault.fromHeader("oversized=64KB;status=502") == .oversized(bytes: 64_000, status: 502))
        #expect(SandboxFault.fromHeader("truncated") == .truncated(fraction: 0.5))
        #expect(SandboxFault.fromHeader("truncated=0.25") == .truncated(fraction: 0.25))
        #expect(SandboxFault.fromHeader("jitter=300ms") == .jitter(.fixed(milliseconds: 300)))
        #expect(
            SandboxFault.fromHeader("jitter=0ms..200ms") == .jitter(.uniform(minMilliseconds: 0, maxMilliseconds: 200)))
        #expect(
            SandboxFault.fromHeader("jitter_ms=0..200") == .jitter(.uniform(minMilliseconds: 0, maxMilliseconds: 200)))
        #expect(SandboxFault.fromHeader("slow-body=2s") == .slowBody(seconds: 2))
        #expect(SandboxFault.fromHeader("nonsense") == nil)

        func admin(_ json: String) -> SandboxFault.Kind? {
            let item = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
            return try? SandboxAdmin.fault(from: item).get().kind
        }
        #expect(
            admin(#"{"type":"status","status":503,"retry_after":"1e300"}"#) == .retryAfter(status: 503, value: "1e300"))
        #expect(admin(#"{"type":"status","status":503,"retry_after":1e300}"#) != nil, "no trap on a huge number")
        #expect(admin(#"{"type":"retry_after","status":503,"value":"-5"}"#) == .retryAfter(status: 503, value: "-5"))
        #expect(admin(#"{"type":"oversized","bytes":"2MiB"}"#) == .oversized(bytes: 2_097_152))
        #expect(admin(#"{"type":"truncated","fraction":0.3}"#) == .truncated(fraction: 0.3))
        #expect(
            admin(#"{"type":"jitter","min_ms":0,"max_ms":200}"#)
                == .jitter(.uniform(minMilliseconds: 0, maxMilliseconds: 200)))
        #expect(
            admin(#"{"type":"raw","status":200,"body":"{}"}"#)
                == .raw(status: 200, contentType: "application/json", body: "{}"))
        #expect(admin(#"{"type":"redirect","status":200}"#) == nil)

        let fault = SandboxFault(
            .raw(status: 200, contentType: "application/json", body: "{}"), provider: .fungies, count: 2)
        let decoded = try JSONDecoder().decode(SandboxFault.self, from: JSONEncoder().encode(fault))
        #expect(decoded == fault)
    }
}
