public import CancelCore
public import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// A faithful, misbehaving-on-demand stand-in for the five providers: one HTTP server on
/// loopback that serves each provider's documented path (so one base URL serves them all),
/// checks credentials and signatures, keeps order books, enforces the futures exchange's
/// per-user limit, injects faults, and records every request. This project's `HTTPBin`.
///
/// In process: `try await sandbox.withRunning { baseURL in … }`, or add `service()` to a
/// `ServiceGroup` and await `baseURL()`. As a process: `cancel-worker sandbox`.
///
/// Every request is checked against its provider's documented headers and body
/// (`SandboxContract`); what it breaks is counted in `stats().contractViolations`, and the answer
/// stays what the provider would answer. With `SandboxConfiguration.pathPrefix` the provider
/// routes move under that prefix; `arrivalJitter` delays requests before they are counted.
///
/// Admin endpoints (JSON): `POST /_sandbox/orders`, `GET /_sandbox/orders/{provider}/{id}`,
/// `POST /_sandbox/faults`, `DELETE /_sandbox/faults`, `GET /_sandbox/stats`,
/// `GET /_sandbox/requests?provider=&account=&order=&limit=`, `POST /_sandbox/reset`.
public final class ProviderSandbox: Sendable {
    let state: SandboxState
    private let emulation: ProviderEmulation
    private let logger: Logger
    private let bound = OneShot<URL>()

    public init(configuration: SandboxConfiguration = SandboxConfiguration(), logger: Logger) {
        self.state = SandboxState(configuration: configuration)
        self.emulation = ProviderEmulation(state: self.state)
        self.logger = logger
    }

    // MARK: Swift API

    /// Adds (or replaces) orders. A status outside the provider's vocabulary
    /// (`SandboxOrder.statuses`) is a mistake in the test that seeds it: it traps, naming it.
    public func seed(_ orders: [SandboxOrder]) {
        for order in orders {
            precondition(
                SandboxOrder.statuses(order.provider).contains(order.status),
                "\(order.provider.rawValue) has no order status \"\(order.status)\"")
        }
        self.state.seed(orders)
    }

    /// The order as the sandbox has it now.
    public func order(_ provider: ProviderID, _ id: String) -> SandboxOrder? { self.state.order(provider, id) }

    /// Adds a fault; returns its id.
    @discardableResult
    public func addFault(_ fault: SandboxFault) -> Int { self.state.addFault(fault) }

    public func clearFaults() { self.state.clearFaults() }

    public func stats() -> SandboxStats { self.state.stats() }

    public func requests(
        provider: ProviderID? = nil, account: String? = nil, orderID: String? = nil, limit: Int? = nil
    ) -> [SandboxRequestRecord] {
        self.state.requests(provider: provider, account: account, orderID: orderID, limit: limit)
    }

    /// Forgets the request log and the counters (orders and faults stay).
    public func resetStats() { self.state.reset() }

    // MARK: Running

    /// The server as a service: run it in a `ServiceGroup`, then await `baseURL()`.
    /// Throws when `configuration.tls` cannot make a TLS context (a bad certificate or key).
    public func service(host: String = "127.0.0.1", port: Int = 0) throws -> any Service {
        let http1 = HTTPServerBuilder.http1(configuration: .init(additionalChannelHandlers: [ArrivalStamp()]))
        let tls = self.state.configuration.tls
        return Application(
            router: self.router(),
            server: try tls.map { try .tls(http1, tlsConfiguration: $0) } ?? http1,
            configuration: .init(address: .hostname(host, port: port), serverName: "provider-sandbox"),
            onServerRunning: { [self] channel in
                let port = channel.localAddress?.port ?? port
                let scheme = tls == nil ? "http" : "https"
                let url = URL(string: "\(scheme)://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(port)")!
                self.bound.set(url)
                self.logger.info("provider sandbox listening", metadata: ["url": "\(url)"])
            },
            logger: self.logger
        )
    }

    /// The base URL once the server listens (nil if it did not start within `timeout`).
    public func baseURL(timeout: Duration = .seconds(10)) async -> URL? {
        await self.bound.wait(timeout: timeout)
    }

    /// Runs the server on a free loopback port for the duration of `body`, then shuts it down
    /// gracefully.
    public func withRunning<T: Sendable>(_ body: @Sendable (URL) async throws -> T) async throws -> T {
        let serviceGroup = ServiceGroup(
            configuration: .init(services: [.init(service: try self.service())], logger: self.logger))
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await serviceGroup.run()
                return nil
            }
            let result: T
            do {
                guard let url = await self.baseURL() else { throw SandboxError.didNotStart }
                result = try await body(url)
            } catch {
                await serviceGroup.triggerGracefulShutdown()
                group.cancelAll()
                throw error
            }
            await serviceGroup.triggerGracefulShutdown()
            try await group.waitForAll()
            return result
        }
    }

    public enum SandboxError: Error {
        case didNotStart
    }

    // MARK: Routes

    private func router() -> Router<SandboxContext> {
        let router = Router(context: SandboxContext.self)
        let prefix = self.state.configuration.normalizedPathPrefix
        router.post(RouterPath(prefix + "/open/v2/order/cancel")) { request, context in
            try await self.serve(.feee, request, context)
        }
        router.patch(RouterPath(prefix + "/v0/orders/:id/cancel")) { request, context in
            try await self.serve(.fungies, request, context)
        }
        router.post(RouterPath(prefix + "/api/v1/orders/cancel-result")) { request, context in
            try await self.serve(.taker, request, context)
        }
        router.post(RouterPath(prefix + "/v1/orders/:id/cancel")) { request, context in
            try await self.serve(.fastpod, request, context)
        }
        router.delete(RouterPath(prefix + "/v1/perpum/order")) { request, context in
            try await self.serve(.futures, request, context)
        }
        SandboxAdmin(sandbox: self, state: self.state).register(on: router)
        return router
    }

    /// Headers whose values are credentials or signatures: never stored in the request log.
    static let secretHeaders: Set<String> = [
        "key", "x-fngs-public-key", "x-fngs-secret-key", "x-api-key", "authorization", "api_key", "sign",
    ]

    /// One provider request: decode it, pick the fault, let the network jitter delay it, then (now
    /// that it has arrived) read the clock, check its contract, and answer, late or misbehaving as
    /// asked.
    ///
    /// The arrival time is when the request reached the sandbox (`ArrivalStamp`: when the event
    /// loop decoded its head) plus the jitter drawn for it — the modelled network — not when the
    /// jitter's sleep ended: on a loaded machine the sleep overshoots (a chaos run saw 80 ms and
    /// more), and that is the sandbox's own lateness, which a real provider's clock does not have.
    private func serve(_ provider: ProviderID, _ request: Request, _ context: SandboxContext) async throws -> Response {
        let received = ArrivalStamp.arrival(request.headers) ?? Date()
        // Jitter first: until it is over the request is still on the wire, so the provider neither
        // sees it (concurrency) nor counts it (rate limits) nor timestamps it. The arrival time is
        // read before the body is collected, as a provider stamps a request when it arrives.
        var network = Duration.zero
        if let jitter = self.state.configuration.arrivalJitter[provider]?.sample(), jitter > .zero {
            try await Task.sleep(for: jitter)
            network += jitter
        }
        var arrived = received.addingTimeInterval(network.timeInterval)
        let body = try await request.body.collect(upTo: 64 * 1024)
        var headers: [String: String] = [:]
        for field in request.headers where field.name != ArrivalStamp.field {
            headers[field.name.canonicalName] = field.value
        }
        var call = SandboxCall(
            provider: provider,
            method: request.method.rawValue,
            path: request.uri.path,
            query: request.uri.query,
            headers: headers,
            body: Array(body.readableBytesView),
            pathID: context.parameters.get("id").flatMap { $0.removingPercentEncoding ?? $0 }
        )
        call.receivedAt = received
        let (account, orderID) = self.emulation.identify(call)
        var fault =
            headers["x-sandbox-fault"].flatMap(SandboxFault.fromHeader)
            ?? self.state.fault(provider: provider, orderID: orderID, account: account)
        // A jitter fault (it needs the request to match it) delays the arrival the same way.
        if case .jitter(let distribution) = fault {
            let jitter = distribution.sample()
            try await Task.sleep(for: jitter)
            network += jitter
            arrived = received.addingTimeInterval(network.timeInterval)
            fault = nil
        }

        self.state.enter(provider)
        defer { self.state.leave(provider) }
        let now = arrived
        call.contractViolations = SandboxContract.violations(call)
        if let latency = self.state.configuration.latency[provider] {
            try await Task.sleep(for: latency.sample())
        }
        if case .latency(let distribution) = fault {
            try await Task.sleep(for: distribution.sample())
            fault = nil
        }
        func finish(_ reply: SandboxReply) -> Response {
            self.finish(reply, call: call, account: account, orderID: orderID, at: now)
        }
        // A request a fault answers (a 503, a 429, a timeout, a reset) never reaches the
        // emulation, which counts what it answers: it counts toward its user's rate here, as an
        // exchange counts every request it receives.
        switch fault {
        case .latency, .jitter, .slowBody, .truncated, nil: break
        default: if let account { _ = self.emulation.overLimit(provider, account, now: now) }
        }
        switch fault {
        case .status(let code, let retryAfter):
            var reply = SandboxReply(
                status: code, body: "sandbox fault: HTTP \(code)", headers: [("Content-Type", "text/plain")],
                result: "fault:status_\(code)")
            if let retryAfter { reply.headers.append(("Retry-After", String(retryAfter))) }
            return finish(reply)
        case .retryAfter(let code, let value):
            let headers = [("Content-Type", "text/plain"), ("Retry-After", value)]
            let body = "sandbox fault: HTTP \(code)"
            return finish(SandboxReply(status: code, body: body, headers: headers, result: "fault:retry_after_\(code)"))
        case .html(let code):
            let headers = [("Content-Type", "text/html")]
            return finish(
                SandboxReply(status: code, body: Self.htmlPage(code), headers: headers, result: "fault:html_\(code)"))
        case .empty(let code):
            let headers = code == 204 || code == 304 ? [] : [("Content-Type", "application/json")]
            return finish(SandboxReply(status: code, body: "", headers: headers, result: "fault:empty_\(code)"))
        case .raw(let code, let contentType, let text):
            let headers = contentType.isEmpty ? [] : [("Content-Type", contentType)]
            return finish(SandboxReply(status: code, body: text, headers: headers, result: "fault:raw_\(code)"))
        case .redirect(let code, let location):
            let headers = [("Content-Type", "text/html"), ("Location", location)]
            let body = Self.htmlPage(code)
            return finish(SandboxReply(status: code, body: body, headers: headers, result: "fault:redirect_\(code)"))
        case .oversized(let bytes, let code):
            self.record(call, account: account, orderID: orderID, status: code, result: "fault:oversized", at: now)
            return Self.oversized(bytes: bytes, status: code)
        case .timeout(let seconds):
            try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
            let body = "sandbox fault: held \(seconds)s"
            return finish(
                SandboxReply(
                    status: 504, body: body, headers: [("Content-Type", "text/plain")], result: "fault:timeout"))
        case .reset:
            self.record(call, account: account, orderID: orderID, status: 0, result: "fault:reset", at: now)
            // Close without answering: the client sees the connection drop mid-request.
            try? await context.channel.close().get()
            throw HTTPError(.internalServerError)
        case .latency, .jitter, .slowBody, .truncated, nil:
            break
        }
        let (reply, _, _) = self.emulation.answer(call, now: now)
        switch fault {
        case .slowBody(let seconds):
            self.record(
                call, account: account, orderID: orderID, status: reply.status, result: reply.result + "+slow_body",
                at: now)
            let bytes = Array(reply.body.utf8)
            let chunks = max(1, min(bytes.count, 10))
            let pause = Duration.milliseconds(Int64(seconds * 1000 / Double(chunks)))
            return Response(
                status: .init(code: reply.status),
                headers: Self.fields(reply.headers),
                body: ResponseBody { writer in
                    let size = (bytes.count + chunks - 1) / chunks
                    for start in stride(from: 0, to: bytes.count, by: size) {
                        try await Task.sleep(for: pause)
                        try await writer.write(ByteBuffer(bytes: bytes[start..<min(start + size, bytes.count)]))
                    }
                    try await writer.finish(nil)
                }
            )
        case .truncated(let fraction):
            let result = reply.result + "+truncated"
            self.record(call, account: account, orderID: orderID, status: reply.status, result: result, at: now)
            return Self.truncated(reply, fraction: fraction, channel: context.channel)
        default:
            return finish(reply)
        }
    }

    /// The answer's head with its full `Content-Length`, then `fraction` of its body, then the
    /// connection closes: the client reads a body that ends early.
    private static func truncated(_ reply: SandboxReply, fraction: Double, channel: any Channel) -> Response {
        let bytes = Array(reply.body.utf8)
        let kept = min(max(0, Int(Double(bytes.count) * (fraction.isFinite ? fraction : 0.5))), max(0, bytes.count - 1))
        return Response(
            status: .init(code: reply.status),
            headers: Self.fields(reply.headers),
            body: ResponseBody(contentLength: max(bytes.count, kept + 1)) { writer in
                if kept > 0 { try await writer.write(ByteBuffer(bytes: bytes[..<kept])) }
                // Let the bytes reach the socket, then hang up mid-body.
                try await Task.sleep(for: .milliseconds(50))
                try? await channel.close().get()
                throw HTTPError(.internalServerError)
            }
        )
    }

    /// `{"padding":"xxx…"}`, exactly `bytes` long (spaces below the 14 bytes of the frame), streamed.
    private static func oversized(bytes: Int, status: Int) -> Response {
        let count = max(0, bytes)
        return Response(
            status: .init(code: status),
            headers: [.contentType: "application/json"],
            body: ResponseBody(contentLength: count) { writer in
                let open = Array(#"{"padding":""#.utf8)
                let close = Array(#""}"#.utf8)
                guard count >= open.count + close.count else {
                    try await writer.write(ByteBuffer(repeating: UInt8(ascii: " "), count: count))
                    return try await writer.finish(nil)
                }
                try await writer.write(ByteBuffer(bytes: open))
                var left = count - open.count - close.count
                while left > 0 {
                    let size = min(left, 64 * 1024)
                    try await writer.write(ByteBuffer(repeating: UInt8(ascii: "x"), count: size))
                    left -= size
                }
                try await writer.write(ByteBuffer(bytes: close))
                try await writer.finish(nil)
            }
        )
    }

    /// A small error page like nginx's (`<title>404 Not Found</title>`); for a 2xx, a maintenance page.
    static func htmlPage(_ status: Int) -> String {
        if (200..<300).contains(status) {
            return """
                <!DOCTYPE html>
                <html lang="en">
                <head><meta charset="utf-8"><title>Scheduled maintenance</title></head>
                <body><h1>We&rsquo;ll be back soon</h1><p>The API is down for scheduled maintenance.</p></body>
                </html>

                """
        }
        let title = "\(status) \(Self.reasonPhrase(status))"
        return "<html>\r\n<head><title>\(title)</title></head>\r\n<body>\r\n<center><h1>\(title)</h1></center>\r\n"
            + "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    }

    static func reasonPhrase(_ status: Int) -> String {
        let phrases = [
            301: "Moved Permanently", 302: "Found", 303: "See Other", 307: "Temporary Redirect",
            308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Not Allowed", 408: "Request Time-out", 413: "Request Entity Too Large", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
            504: "Gateway Time-out",
        ]
        return phrases[status] ?? "Error"
    }

    private func finish(
        _ reply: SandboxReply, call: SandboxCall, account: String?, orderID: String?, at: Date
    ) -> Response {
        self.record(call, account: account, orderID: orderID, status: reply.status, result: reply.result, at: at)
        return Response(
            status: .init(code: reply.status), headers: Self.fields(reply.headers),
            body: ResponseBody(byteBuffer: ByteBuffer(string: reply.body)))
    }

    private func record(_ call: SandboxCall, account: String?, orderID: String?, status: Int, result: String, at: Date)
    {
        var headers: [String: String] = [:]
        for (name, value) in call.headers {
            headers[name] = Self.secretHeaders.contains(name) ? "[REDACTED]" : value
        }
        self.state.record(
            SandboxRequestRecord(
                at: at, receivedAt: call.receivedAt, provider: call.provider, account: account, method: call.method,
                path: call.query.map { "\(call.path)?\($0)" } ?? call.path, orderID: orderID, headers: headers,
                body: String(decoding: call.body.prefix(2_048), as: UTF8.self), status: status, result: result,
                contractViolations: call.contractViolations.isEmpty ? nil : call.contractViolations
            ))
    }

    private static func fields(_ headers: [(String, String)]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers {
            if let fieldName = HTTPField.Name(name) { fields.append(HTTPField(name: fieldName, value: value)) }
        }
        return fields
    }
}

/// The request context: Hummingbird's basics plus the channel (for connection resets).
struct SandboxContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}
