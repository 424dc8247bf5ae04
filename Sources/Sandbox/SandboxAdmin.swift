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
                var created = Date(timeIntervalSinceNow: -3600)
                if let text = item["created_at"] as? String {
                    guard let date = Timestamp.parse(text) else { return Self.error(400, "created_at must be RFC 3339") }
                    created = date
                }
                orders.append(SandboxOrder(provider: provider, id: id, status: item["status"] as? String, number: item["number"] as? String, createdAt: created))
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
            guard let item = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else {
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
        let kind: SandboxFault.Kind
        switch item["type"] as? String {
        case "latency":
            if let ms = number("ms") {
                kind = .latency(.fixed(milliseconds: ms))
            } else if let low = number("min_ms"), let high = number("max_ms") {
                kind = .latency(.uniform(minMilliseconds: low, maxMilliseconds: high))
            } else if let mean = number("mean_ms"), let deviation = number("stddev_ms") {
                kind = .latency(.normal(meanMilliseconds: mean, standardDeviationMilliseconds: deviation))
            } else {
                return .failure(Message(text: "latency needs ms, min_ms+max_ms or mean_ms+stddev_ms"))
            }
        case "status":
            guard let status = number("status"), (100...599).contains(Int(status)) else { return .failure(Message(text: "status needs an HTTP status")) }
            kind = .status(code: Int(status), retryAfterSeconds: number("retry_after").map { Int($0) })
        case "timeout": kind = .timeout(seconds: number("seconds") ?? 30)
        case "reset": kind = .reset
        case "slow_body": kind = .slowBody(seconds: number("seconds") ?? 2)
        default: return .failure(Message(text: "type must be latency, status, timeout, reset or slow_body"))
        }
        var provider: ProviderID?
        if let name = item["provider"] as? String {
            guard let known = ProviderID(rawValue: name) else { return .failure(Message(text: "unknown provider \(name)")) }
            provider = known
        }
        return .success(SandboxFault(
            kind, provider: provider, orderPattern: item["order_pattern"] as? String, account: item["account"] as? String,
            count: number("count").map { Int($0) }, probability: number("probability") ?? 1
        ))
    }

    static func encoded(_ value: some Encodable) -> Response {
        let data = (try? Self.encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(_ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ status: Int, _ message: String) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data()
        return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
