import CancelCore
import Foundation
import Hummingbird
import NIOCore

/// The sandbox's own HTTP API, under `/_sandbox`, for tests, benchmarks and curl.
///
/// ```
/// POST   /_sandbox/orders    {"orders": [{"provider": "fastpod", "id": "F1", "status": "shipped",
///                             "number": null, "created_at": "2026-11-22T10:00:00Z"}]}
/// GET    /_sandbox/orders/{provider}/{id}
/// POST   /_sandbox/faults    {"provider": "fungies", "order_pattern": "flaky-*", "count": 2,
///                             "type": "status", "status": 503, "retry_after": 2}
///                            type: latency (ms | min_ms+max_ms | mean_ms+stddev_ms), status,
///                            timeout (seconds), reset, slow_body (seconds); probability 0…1
///                            html (status), empty (status), raw (status, content_type, body),
///                            redirect (status, location), oversized (bytes or size "2MiB",
///                            status), truncated (fraction), retry_after (status, value: any
///                            text, sent verbatim; also "status" with a non-integer
///                            "retry_after"), jitter (like latency)
///                            or SandboxFault's Codable shape: {"kind": {"html": {"status": 404}},
///                            "provider": "fastpod", "orderPattern": "F*", "count": 1}
/// DELETE /_sandbox/faults
/// GET    /_sandbox/stats
/// GET    /_sandbox/requests?provider=&account=&order=&limit=
/// POST   /_sandbox/reset     (request log and counters)
/// ```
struct SandboxAdmin: Sendable {
    let sandbox: ProviderSandbox
    let state: SandboxState

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        return encoder
    }()

    func register(on router: Router<SandboxContext>) {
        router.post("/_sandbox/orders") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 16 << 20)
            let parsed = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)))
            let items = (parsed as? [[String: Any]]) ?? ((parsed as? [String: Any])?["orders"] as? [[String: Any]])
            guard let items else { return Self.error(400, "expected {\"orders\": [...]}") }
            var orders: [SandboxOrder] = []
            for item in items {
                guard let providerName = item["provider"] as? String, let provider = ProviderID(rawValue: providerName),
                    let id = (item["id"] as? String) ?? (item["id"] as? NSNumber)?.stringValue
                else { return Self.error(400, "each order needs a known provider and an id") }
                let status = item["status"] as? String
                if let status, !SandboxOrder.statuses(provider).contains(status) {
                    let known = SandboxOrder.statuses(provider).sorted().joined(separator: ", ")
                    return Self.error(400, "\(providerName) has no order status \"\(status)\"; its statuses: \(known)")
                }
                var created = Date(timeIntervalSinceNow: -3600)
                if let text = item["created_at"] as? String {
                    guard let date = Timestamp.parse(text) else {
                        return Self.error(400, "created_at must be RFC 3339")
                    }
                    created = date
                }
                var expires: Date?
                if let text = item["expires_at"] as? String {
                    guard let date = Timestamp.parse(text) else {
                        return Self.error(400, "expires_at must be RFC 3339")
                    }
                    expires = date
                }
                orders.append(
                    SandboxOrder(
                        provider: provider, id: id, status: status,
                        number: item["number"] as? String, createdAt: created, expiresAt: expires))
            }
            self.state.seed(orders)
            return Self.json(["seeded": orders.count])
        }
        router.get("/_sandbox/orders/:provider/:id") { _, context -> Response in
            guard let provider = context.parameters.get("provider").flatMap(ProviderID.init(rawValue:)),
                let id = context.parameters.get("id")?.removingPercentEncoding,
                let order = self.state.order(provider, id)
            else { return Self.error(404, "no such order") }
            return Self.encoded(order)
        }
        router.post("/_sandbox/faults") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            guard let item = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
            else {
                return Self.error(400, "expected a JSON object")
            }
            switch Self.fault(from: item) {
            case .success(let fault): return Self.json(["id": self.state.addFault(fault)])
            case .failure(let message): return Self.error(400, message.text)
            }
        }
        router.delete("/_sandbox/faults") { _, _ -> Response in
            self.state.clearFaults()
            return Self.json(["cleared": true])
        }
        router.get("/_sandbox/stats") { _, _ -> Response in Self.encoded(self.state.stats()) }
        router.get("/_sandbox/requests") { request, _ -> Response in
            let query = request.uri.queryParameters
            let records = self.state.requests(
                provider: query.get("provider").flatMap { ProviderID(rawValue: String($0)) },
                account: query.get("account").map { String($0) },
                orderID: query.get("order").map { String($0) },
                limit: query.get("limit").flatMap { Int(String($0)) }
            )
            return Self.encoded(records)
        }
        router.post("/_sandbox/reset") { _, _ -> Response in
            self.state.reset()
            return Self.json(["reset": true])
        }
    }

    struct Message: Error {
        var text: String
    }

    static func fault(from item: [String: Any]) -> Result<SandboxFault, Message> {
        func number(_ key: String) -> Double? { (item[key] as? NSNumber)?.doubleValue }
        /// A whole number that fits (no trap on `1e300`).
        func integer(_ key: String) -> Int? {
            number(key).flatMap { $0.isFinite && abs($0) < 1e15 ? Int($0) : nil }
        }
        func text(_ key: String) -> String? {
            (item[key] as? String) ?? (item[key] as? NSNumber).map { $0.stringValue }
        }
        func status(_ fallback: Int? = nil) -> Int? {
            guard let status = integer("status") ?? fallback, (100...599).contains(status) else { return nil }
            return status
        }
        func distribution(_ name: String) -> Result<LatencyDistribution, Message> {
            if let ms = number("ms") { return .success(.fixed(milliseconds: ms)) }
            if let low = number("min_ms"), let high = number("max_ms") {
                return .success(.uniform(minMilliseconds: low, maxMilliseconds: high))
            }
            if let mean = number("mean_ms"), let deviation = number("stddev_ms") {
                return .success(.normal(meanMilliseconds: mean, standardDeviationMilliseconds: deviation))
            }
            return .failure(Message(text: "\(name) needs ms, min_ms+max_ms or mean_ms+stddev_ms"))
        }
        let kind: SandboxFault.Kind
        switch item["type"] as? String {
        case nil where item["kind"] != nil:
            // SandboxFault's own Codable shape.
            guard let data = try? JSONSerialization.data(withJSONObject: item),
                let fault = try? JSONDecoder().decode(SandboxFault.self, from: data)
            else { return .failure(Message(text: "kind is not a SandboxFault.Kind")) }
            return .success(fault)
        case "latency":
            switch distribution("latency") {
            case .success(let value): kind = .latency(value)
            case .failure(let message): return .failure(message)
            }
        case "jitter":
            switch distribution("jitter") {
            case .success(let value): kind = .jitter(value)
            case .failure(let message): return .failure(message)
            }
        case "status":
            guard let status = status() else { return .failure(Message(text: "status needs an HTTP status")) }
            if item["retry_after"] == nil || item["retry_after"] is NSNull {
                kind = .status(code: status, retryAfterSeconds: nil)
            } else if let seconds = integer("retry_after"), number("retry_after") == Double(seconds) {
                kind = .status(code: status, retryAfterSeconds: seconds)
            } else if let value = text("retry_after") {
                kind = .retryAfter(status: status, value: value)
            } else {
                return .failure(Message(text: "retry_after must be a number or text"))
            }
        case "retry_after":
            guard let status = status(429), let value = text("value") ?? text("retry_after") else {
                return .failure(Message(text: "retry_after needs value (text) and an HTTP status"))
            }
            kind = .retryAfter(status: status, value: value)
        case "timeout": kind = .timeout(seconds: number("seconds") ?? 30)
        case "reset": kind = .reset
        case "slow_body": kind = .slowBody(seconds: number("seconds") ?? 2)
        case "html":
            guard let status = status() else { return .failure(Message(text: "html needs an HTTP status")) }
            kind = .html(status: status)
        case "empty":
            guard let status = status() else { return .failure(Message(text: "empty needs an HTTP status")) }
            kind = .empty(status: status)
        case "raw":
            guard let status = status(), let body = item["body"] as? String else {
                return .failure(Message(text: "raw needs an HTTP status and body (text)"))
            }
            kind = .raw(status: status, contentType: item["content_type"] as? String ?? "application/json", body: body)
        case "redirect":
            guard let status = status(302), (300..<400).contains(status) else {
                return .failure(Message(text: "redirect needs a 3xx status"))
            }
            let location = item["location"] as? String ?? SandboxFault.defaultRedirectLocation
            kind = .redirect(status: status, location: location)
        case "oversized":
            guard let bytes = integer("bytes") ?? (item["bytes"] as? String).flatMap(SandboxFault.byteCount),
                (0...1_073_741_824).contains(bytes), let status = status(200)
            else { return .failure(Message(text: "oversized needs bytes (a number up to 1 GiB, or \"2MiB\")")) }
            kind = .oversized(bytes: bytes, status: status)
        case "truncated": kind = .truncated(fraction: number("fraction") ?? 0.5)
        default:
            return .failure(
                Message(
                    text: "type must be latency, status, timeout, reset, slow_body, html, empty, raw, "
                        + "redirect, oversized, truncated, retry_after or jitter (or give a Codable kind)"))
        }
        var provider: ProviderID?
        if let name = item["provider"] as? String {
            guard let known = ProviderID(rawValue: name) else {
                return .failure(Message(text: "unknown provider \(name)"))
            }
            provider = known
        }
        return .success(
            SandboxFault(
                kind, provider: provider, orderPattern: item["order_pattern"] as? String,
                account: item["account"] as? String,
                count: integer("count"), probability: number("probability") ?? 1
            ))
    }

    static func encoded(_ value: some Encodable) -> Response {
        Self.answer(.ok, (try? Self.encoder.encode(value)) ?? Data("{}".utf8))
    }

    static func json(_ object: [String: Any]) -> Response {
        Self.answer(
            .ok, (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8))
    }

    static func error(_ status: Int, _ message: String) -> Response {
        Self.answer(.init(code: status), (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data())
    }

    /// A JSON answer ending in a newline, like the providers' answers (a shell prompt does not
    /// glue onto it).
    private static func answer(_ status: HTTPResponse.Status, _ data: Data) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data + Data([0x0A]))))
    }
}
