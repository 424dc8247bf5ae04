public import CancelCore
public import Foundation
import HTTPTypes
import Hummingbird
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
/// Admin endpoints (JSON): `POST /_sandbox/orders`, `GET /_sandbox/orders/{provider}/{id}`,
/// `POST /_sandbox/faults`, `DELETE /_sandbox/faults`, `GET /_sandbox/stats`,
/// `GET /_sandbox/requests?provider=&account=&order=&limit=`, `POST /_sandbox/reset`.
public final class ProviderSandbox: Sendable {
    let state: SandboxState
    private let emulation: ProviderEmulation
    private let logger: Logger
    private let bound = Mutex<(url: URL?, waiters: [CheckedContinuation<URL?, Never>])>((nil, []))

    public init(configuration: SandboxConfiguration = SandboxConfiguration(), logger: Logger) {
        self.state = SandboxState(configuration: configuration)
        self.emulation = ProviderEmulation(state: self.state)
        self.logger = logger
    }

    // MARK: Swift API

    /// Adds (or replaces) orders.
    public func seed(_ orders: [SandboxOrder]) { self.state.seed(orders) }

    /// The order as the sandbox has it now.
    public func order(_ provider: ProviderID, _ id: String) -> SandboxOrder? { self.state.order(provider, id) }

    /// Adds a fault; returns its id.
    @discardableResult
    public func addFault(_ fault: SandboxFault) -> Int { self.state.addFault(fault) }

    public func clearFaults() { self.state.clearFaults() }

    public func stats() -> SandboxStats { self.state.stats() }

    public func requests(provider: ProviderID? = nil, account: String? = nil, orderID: String? = nil, limit: Int? = nil) -> [SandboxRequestRecord] {
        self.state.requests(provider: provider, account: account, orderID: orderID, limit: limit)
    }

    /// Forgets the request log and the counters (orders and faults stay).
    public func resetStats() { self.state.reset() }

    // MARK: Running

    /// The server as a service: run it in a `ServiceGroup`, then await `baseURL()`.
    public func service(host: String = "127.0.0.1", port: Int = 0) -> any Service {
        Application(
            router: self.router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "provider-sandbox"),
            onServerRunning: { [self] channel in
                let port = channel.localAddress?.port ?? port
                let url = URL(string: "http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(port)")!
                let waiters = self.bound.withLock { state in
                    state.url = url
                    defer { state.waiters = [] }
                    return state.waiters
                }
                for waiter in waiters { waiter.resume(returning: url) }
                self.logger.info("provider sandbox listening", metadata: ["url": "\(url)"])
            },
            logger: self.logger
        )
    }

    /// The base URL once the server listens (nil if it did not start within `timeout`).
    public func baseURL(timeout: Duration = .seconds(10)) async -> URL? {
        await withTaskGroup(of: URL?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let known: URL?? = self.bound.withLock { state in
                        if let url = state.url { return .some(url) }
                        state.waiters.append(continuation)
                        return .none
                    }
                    if let known { continuation.resume(returning: known) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            if first == nil {
                let waiters = self.bound.withLock { state in
                    defer { state.waiters = [] }
                    return state.waiters
                }
                for waiter in waiters { waiter.resume(returning: nil) }
            }
            group.cancelAll()
            return first
        }
    }

    /// Runs the server on a free loopback port for the duration of `body`, then shuts it down
    /// gracefully.
    public func withRunning<T: Sendable>(_ body: @Sendable (URL) async throws -> T) async throws -> T {
        let serviceGroup = ServiceGroup(configuration: .init(services: [.init(service: self.service())], logger: self.logger))
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
        router.post("/open/v2/order/cancel") { request, context in try await self.serve(.feee, request, context) }
        router.patch("/v0/orders/:id/cancel") { request, context in try await self.serve(.fungies, request, context) }
        router.post("/api/v1/orders/cancel-result") { request, context in try await self.serve(.taker, request, context) }
        router.post("/v1/orders/:id/cancel") { request, context in try await self.serve(.fastpod, request, context) }
        router.delete("/v1/perpum/order") { request, context in try await self.serve(.futures, request, context) }
        SandboxAdmin(sandbox: self, state: self.state).register(on: router)
        return router
    }

    /// Headers whose values are credentials or signatures: never stored in the request log.
    static let secretHeaders: Set<String> = ["key", "x-fngs-public-key", "x-fngs-secret-key", "x-api-key", "authorization", "api_key", "sign"]

    private func serve(_ provider: ProviderID, _ request: Request, _ context: SandboxContext) async throws -> Response {
        self.state.enter(provider)
        defer { self.state.leave(provider) }
        let now = Date()
        let body = try await request.body.collect(upTo: 64 * 1024)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let call = SandboxCall(
            provider: provider,
            method: request.method.rawValue,
            path: request.uri.path,
            query: request.uri.query,
            headers: headers,
            body: Array(body.readableBytesView),
            pathID: context.parameters.get("id").flatMap { $0.removingPercentEncoding ?? $0 }
        )
        let (account, orderID) = self.emulation.identify(call)
        var fault = headers["x-sandbox-fault"].flatMap(SandboxFault.fromHeader) ?? self.state.fault(provider: provider, orderID: orderID, account: account)
        if let latency = self.state.configuration.latency[provider] {
            try await Task.sleep(for: latency.sample())
        }
        if case .latency(let distribution) = fault {
            try await Task.sleep(for: distribution.sample())
            fault = nil
        }
        switch fault {
        case .status(let code, let retryAfter):
            var reply = SandboxReply(status: code, body: "sandbox fault: HTTP \(code)", headers: [("Content-Type", "text/plain")], result: "fault:status_\(code)")
            if let retryAfter { reply.headers.append(("Retry-After", String(retryAfter))) }
            return self.finish(reply, call: call, account: account, orderID: orderID, at: now)
        case .timeout(let seconds):
            try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
            return self.finish(SandboxReply(status: 504, body: "sandbox fault: held \(seconds)s", headers: [("Content-Type", "text/plain")], result: "fault:timeout"), call: call, account: account, orderID: orderID, at: now)
        case .reset:
            self.record(call, account: account, orderID: orderID, status: 0, result: "fault:reset", at: now)
            // Close without answering: the client sees the connection drop mid-request.
            try? await context.channel.close().get()
            throw HTTPError(.internalServerError)
        default:
            break
        }
        let (reply, _, _) = self.emulation.answer(call, now: now)
        if case .slowBody(let seconds) = fault {
            self.record(call, account: account, orderID: orderID, status: reply.status, result: reply.result + "+slow_body", at: now)
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
        }
        return self.finish(reply, call: call, account: account, orderID: orderID, at: now)
    }

    private func finish(_ reply: SandboxReply, call: SandboxCall, account: String?, orderID: String?, at: Date) -> Response {
        self.record(call, account: account, orderID: orderID, status: reply.status, result: reply.result, at: at)
        return Response(status: .init(code: reply.status), headers: Self.fields(reply.headers), body: ResponseBody(byteBuffer: ByteBuffer(string: reply.body)))
    }

    private func record(_ call: SandboxCall, account: String?, orderID: String?, status: Int, result: String, at: Date) {
        var headers: [String: String] = [:]
        for (name, value) in call.headers {
            headers[name] = Self.secretHeaders.contains(name) ? "[REDACTED]" : value
        }
        self.state.record(SandboxRequestRecord(
            at: at, provider: call.provider, account: account, method: call.method,
            path: call.query.map { "\(call.path)?\($0)" } ?? call.path, orderID: orderID, headers: headers,
            body: String(decoding: call.body.prefix(2_048), as: UTF8.self), status: status, result: result
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
