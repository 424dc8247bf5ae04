public import CancelCore
public import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Why a provider's base URL gives no connections (a configuration error on every call).
struct UnusableBaseURL: Error {
    let reason: String
}

/// A provider adapter: the pure `ProviderAPI` rules plus the transport, over its host's
/// `ProviderConnections`. Never throws: a transport failure is `unknown` (the request may have reached
/// the provider), with a reason that names neither credentials nor signatures.
public struct HTTPCancelProvider<API: ProviderAPI>: CancelProvider {
    public let api: API
    public let settings: ProviderSettings
    /// A failure when the base URL is not an `http`/`https` URL or its TLS context could not be
    /// built: every call is then a configuration error with that reason.
    let connections: Result<ProviderConnections, UnusableBaseURL>
    /// Calls on the wire at once, at most the connections per host: the calls beyond wait
    /// here, in a few hundred bytes each, and the timeout counts from when a connection is theirs.
    let calls: AsyncSemaphore
    let logger: Logger
    /// Recent "slow down" answers by account: several at once mean the provider's global limit.
    private let throttles: ThrottleWatch
    /// How soon after the send-time guard said yes the request must reach its connection.
    let sendWindow: Duration
    /// The path prefix of the base URL (`/coinw` of `https://gw.example/coinw`), part of the path sent.
    private let basePath: String

    init(
        api: API, settings: ProviderSettings, connections: Result<ProviderConnections, UnusableBaseURL>,
        maxConcurrentCalls: Int,
        sendWindow: Duration = SendVerdict.defaultSendWindow, logger: Logger
    ) {
        self.api = api
        self.sendWindow = sendWindow
        self.settings = settings
        self.connections = connections
        self.calls = AsyncSemaphore(permits: max(1, maxConcurrentCalls))
        self.logger = logger
        self.throttles = ThrottleWatch(
            GlobalLimitDetector(accounts: settings.globalLimitAccounts, window: settings.globalLimitWindow))
        self.basePath = URLComponents(string: settings.baseURL.trimmingSuffix("/"))?.percentEncodedPath ?? ""
    }

    public var id: ProviderID { self.api.id }

    public var concurrentCalls: Int? { self.calls.permits }

    public func notBefore(_ request: CancelRequest) -> Date? {
        self.api.notBefore(request)
    }

    public func knowsAccount(_ account: String) -> Bool {
        self.credentials(for: account) != nil
    }

    private func credentials(for account: String) -> ProviderCredentials? {
        if self.api.id == .futures { return self.settings.accounts[account] }
        return self.settings.credentials(for: account)
    }

    /// Building the request and reading the answer happen in synchronous helpers that are
    /// never inlined here, so their locals live on the thread's stack, not in the frame every
    /// waiting call keeps alive.
    public func cancel(_ request: CancelRequest, sendGuard: @escaping SendGuard) async -> ProviderCallResult? {
        guard let credentials = self.credentials(for: request.account) else {
            return ProviderCallResult(
                classification: .configuration, answer: ProviderAnswer(),
                reason: "no credentials for account \(request.account) at \(self.api.id)"
            )
        }
        let connections: ProviderConnections
        switch self.connections {
        case .success(let usable): connections = usable
        case .failure(let unusable):
            return ProviderCallResult(
                classification: .configuration, answer: ProviderAnswer(), reason: "\(self.api.id)'s \(unusable.reason)")
        }
        switch self.prepare(request, credentials: credentials) {
        case .answer(let result):
            return result
        case .send(let call):
            switch await self.send(
                call, for: request, credentials: credentials, sendGuard: sendGuard, over: connections)
            {
            case .answered(.success(let response)):
                return self.bounded(self.classify(response, for: request), account: request.account)
            case .answered(.failure(let failure)):
                return ProviderCallResult(
                    classification: .unknown, answer: ProviderAnswer(), reason: failure.reason,
                    nothingSent: failure.nothingSent)
            case .notSent:
                return nil
            case .missedWindows(let late):
                return ProviderCallResult(
                    classification: .retryLater(after: .seconds(1), scope: .order), answer: ProviderAnswer(),
                    reason:
                        "not sent: the request reached its connection after its \(self.sendWindow) send window \(late.count) times (\(late.map { "\($0)" }.joined(separator: ", ")) late; the worker is starved of CPU or was paused)"
                )
            }
        }
    }

    /// A "slow down" as the worker applies it: no longer than `maxRetryAfter`, and for the whole
    /// provider when several accounts got it at once (a global limit).
    @inline(never)
    private func bounded(_ result: ProviderCallResult, account: String) -> ProviderCallResult {
        guard case .retryLater(let after, let scope) = result.classification, scope != .order else { return result }
        var bounded = result
        var wait = after
        if let asked = after, asked > self.settings.maxRetryAfter {
            wait = self.settings.maxRetryAfter
            bounded.reason +=
                " (asked to wait \(asked); waiting the configured maximum, \(self.settings.maxRetryAfter))"
        }
        var newScope = scope
        if scope == .account, self.throttles.record(account: account) == .provider {
            newScope = .provider
            bounded.reason +=
                " (several accounts were told to slow down at once: the provider's global limit; all its accounts wait)"
        }
        bounded.classification = .retryLater(after: wait, scope: newScope)
        return bounded
    }

    @inline(never)
    private func prepare(_ request: CancelRequest, credentials: ProviderCredentials) -> PreparedCall {
        self.api.prepare(request, credentials: credentials, settings: self.settings, now: Date())
    }

    @inline(never)
    private func classify(_ response: ProviderHTTPResponse, for request: CancelRequest) -> ProviderCallResult {
        self.api.classify(response, for: request, now: Date())
    }

    /// What `send` did: answered, or nothing sent.
    private enum Sent {
        case answered(Result<ProviderHTTPResponse, TransportFailure>)
        case notSent
        /// Every try missed its send window (how late each was): nothing was sent.
        case missedWindows([Duration])
    }

    /// Once the call holds its permit and its connection (an idle one, or a new one connected
    /// and past its TLS handshake) — right before the bytes go out — the worker's guard decides
    /// (still the partition's owner, claim current, deadline not passed, the user's rate-limit
    /// slot taken now), then the request is finalized (timestamped, signed) and sent. Between
    /// the guard and the write is only this process's own work: a slow connect or handshake
    /// happens before the slot is taken, so it cannot push the call into the next calls'
    /// second. The request must reach its connection within the send window
    /// (`Exchange.sendBy`); one that misses it (the process was frozen or starved in between)
    /// was not sent, and goes back to the guard, which decides again from what is true now.
    private func send(
        _ call: ProviderHTTPRequest, for request: CancelRequest, credentials: ProviderCredentials, sendGuard: SendGuard,
        over connections: ProviderConnections
    ) async -> Sent {
        // Cancelled while waiting for a connection permit: nothing was sent.
        do { try await self.calls.acquire() } catch { return .notSent }
        defer { self.calls.release() }
        var missed: [Duration] = []
        while missed.count < Self.windowAttempts {
            let channel: any Channel
            do {
                channel = try await connections.lease(
                    deadline: .now() + .nanoseconds(self.settings.timeout.nanoseconds))
            } catch {
                // No connection (refused, no TLS handshake, the timeout): nothing was sent.
                return .answered(
                    .failure(
                        TransportFailure(
                            "\(self.api.id) \(call.method) \(call.path): \(error); nothing was sent", nothingSent: true)
                    ))
            }
            guard await sendGuard() == .send else {
                connections.giveBack(channel)
                return .notSent
            }
            var window = self.sendWindow
            if let deadline = request.deadline { window = min(window, .seconds(deadline.timeIntervalSinceNow)) }
            let sendBy = NIODeadline.now() + .nanoseconds(window.nanoseconds)
            let ready = self.api.finalize(
                call, pathSent: self.basePath + call.path, credentials: credentials, now: Date())
            // In the calling task: the command's lane, one of a bounded number, keeps the
            // exchange's deeper stack (a few KB per lane), and no task is made per call.
            let answered = await self.exchange(ready, on: channel, sendBy: sendBy, over: connections)
            guard case .failure(let failure) = answered, let late = failure.missedWindow else {
                return .answered(answered)
            }
            missed.append(late)
            self.logger.warning(
                "provider request missed its send window; not sent, asking the guard again",
                metadata: [
                    "provider": "\(self.api.id)", "late_by": "\(late)", "send_window": "\(self.sendWindow)",
                ])
        }
        return .missedWindows(missed)
    }

    /// Requests that miss their send window this many times in a row end the attempt (nothing sent).
    static var windowAttempts: Int { 3 }

    @inline(never)  // see `cancel`
    private func exchange(
        _ call: ProviderHTTPRequest, on channel: any Channel, sendBy: NIODeadline, over connections: ProviderConnections
    ) async -> Result<ProviderHTTPResponse, TransportFailure> {
        var head = HTTPRequestHead(
            version: .http1_1, method: HTTPMethod(rawValue: call.method), uri: self.basePath + call.path)
        head.headers.reserveCapacity(call.headers.count + 2)
        for header in call.headers {
            head.headers.add(name: header.name, value: header.value)
        }
        do {
            let answer = try await connections.exchange(
                on: channel, head: head, body: call.body, sendBy: sendBy,
                deadline: .now() + .nanoseconds(self.settings.timeout.nanoseconds))
            switch answer {
            case .answer(let response):
                return .success(response)
            case .notSent(let late):
                return .failure(
                    TransportFailure(
                        "the request reached its connection \(late) after its send window closed; nothing was sent",
                        missedWindow: late))
            }
        } catch {
            // Reasons name the provider, method and path, never headers (credentials, signatures).
            return .failure(TransportFailure("\(self.api.id) \(call.method) \(call.path): \(error)"))
        }
    }

    struct TransportFailure: Error {
        var reason: String
        /// Set when the request was refused at its connection, unsent: how late it was.
        var missedWindow: Duration?
        /// No connection was made: nothing of the request left.
        var nothingSent: Bool
        init(_ reason: String, missedWindow: Duration? = nil, nothingSent: Bool = false) {
            self.reason = reason
            self.missedWindow = missedWindow
            self.nothingSent = nothingSent
        }
    }
}

/// One provider's `GlobalLimitDetector`, shared by its calls.
final class ThrottleWatch: Sendable {
    private let detector: Mutex<GlobalLimitDetector>

    init(_ detector: GlobalLimitDetector) {
        self.detector = Mutex(detector)
    }

    func record(account: String) -> ThrottleScope {
        self.detector.withLock { $0.record(account: account, now: .now) }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        self.hasSuffix(suffix) ? String(self.dropLast(suffix.count)) : self
    }
}
