import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// HTTP/1.1 to one provider's host: kept-alive connections, one request at a time on each, for
/// the fixed shapes the five providers need (one request, one small answer, no redirects).
///
/// What a call gets, in order: an idle connection (the newest; one closed by the server or
/// idle longer than `idleTimeout` is dropped), or a new one (TCP, then TLS for `https`),
/// connecting again with backoff until the call's deadline while the host refuses (nothing was
/// sent, so a short outage is bridged within one call). The connection's last handler refuses
/// the request unsent when its send window has closed (see `Exchange.sendBy`); the answer is
/// collected on the connection's event loop up to `maxResponseBytes`, and the call fails when
/// the deadline passes or no byte arrived for `readTimeout`. Concurrency is bounded by the
/// caller (`HTTPCancelProvider`'s permits), so the pool never queues.
final class ProviderConnections: Sendable {
    struct Settings: Sendable {
        var connectTimeout: Duration
        var readTimeout: Duration
        var idleTimeout: Duration = .seconds(60)
        var maxResponseBytes: Int
        /// nil: the system's trust roots (tests pass their own).
        var tlsConfiguration: TLSConfiguration?
    }

    /// What one exchange gave.
    enum Answer: Sendable {
        case answer(ProviderHTTPResponse)
        /// The request reached its connection after its send window closed: nothing was sent.
        case notSent(lateBy: Duration)
    }

    /// Why an exchange failed; `description` is what operators read (no secrets: no headers).
    enum Failure: Error, CustomStringConvertible {
        case deadline
        case readTimeout
        case closedBeforeAnswer
        case tooLarge(limit: Int)
        case connect(String)
        case cancelled
        case shutDown
        case transport(String)

        /// A failed write: the connection closed, or why it failed (a TLS handshake's refusal).
        init(writeError error: any Error) {
            switch error {
            case ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed, ChannelError.outputClosed:
                self = .closedBeforeAnswer
            default:
                self = .transport("\(error)")
            }
        }

        var description: String {
            switch self {
            case .deadline: "no answer before the timeout (the cancel may or may not have happened)"
            case .readTimeout: "read timeout (the cancel may or may not have happened)"
            case .closedBeforeAnswer: "the connection was closed before the answer was complete"
            case .tooLarge(let limit): "answered more than \(limit) bytes"
            case .connect(let reason): "could not connect before the timeout: \(reason)"
            case .cancelled: "call cancelled"
            case .shutDown: "the HTTP connections were shut down"
            case .transport(let reason): reason
            }
        }
    }

    private struct Idle {
        var channel: any Channel
        var since: NIODeadline
    }

    private struct State {
        var idle: [Idle] = []
        var open = true
    }

    let host: String
    let port: Int
    /// `Host`: the host (an IPv6 literal in brackets) and the port when the URL gives one.
    let hostHeader: String
    private let settings: Settings
    private let group: any EventLoopGroup
    private let tls: NIOSSLContext?
    private let state = Mutex(State())
    private let exchanges = Atomic<UInt64>(0)

    /// nil when `baseURL` has no `http`/`https` scheme and host.
    init?(baseURL: String, settings: Settings, group: any EventLoopGroup) throws {
        guard let components = URLComponents(string: baseURL), let bracketed = components.host, !bracketed.isEmpty,
            let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https"
        else { return nil }
        let host =
            bracketed.hasPrefix("[") && bracketed.hasSuffix("]") ? String(bracketed.dropFirst().dropLast()) : bracketed
        self.host = host
        self.port = components.port ?? (scheme == "https" ? 443 : 80)
        // An IPv6 literal keeps its brackets in `Host` (RFC 9110 §7.2, RFC 3986 §3.2.2).
        let hostName = host.contains(":") ? "[\(host)]" : host
        self.hostHeader = components.port.map { "\(hostName):\($0)" } ?? hostName
        self.settings = settings
        self.group = group
        self.tls =
            scheme == "https"
            ? try NIOSSLContext(configuration: settings.tlsConfiguration ?? .makeClientConfiguration()) : nil
    }

    /// Sends `head` and `body`, unless they reach the connection after `sendBy` (then nothing is
    /// sent: `notSent`), and collects the answer, all before `deadline`.
    func exchange(
        head: HTTPRequestHead, body: [UInt8]?, sendBy: NIODeadline?, deadline: NIODeadline
    ) async throws(Failure) -> Answer {
        let channel = try await self.lease(deadline: deadline)
        return try await self.exchange(on: channel, head: head, body: body, sendBy: sendBy, deadline: deadline)
    }

    /// `exchange` on a connection this caller leased (`lease`): the connection goes back to the
    /// pool or is closed when the exchange ends.
    func exchange(
        on channel: any Channel, head: HTTPRequestHead, body: [UInt8]?, sendBy: NIODeadline?, deadline: NIODeadline
    ) async throws(Failure) -> Answer {
        var head = head
        head.headers.replaceOrAdd(name: "host", value: self.hostHeader)
        // Framed by its length, never chunked: NIO would frame a POST without `Content-Length`
        // as chunked, and FastPOD's bodyless POST went out so. A method whose requests carry
        // content states 0 (RFC 9110 §8.6), as AsyncHTTPClient did; GET and DELETE state nothing.
        switch (body, head.method) {
        case (let body?, _): head.headers.replaceOrAdd(name: "content-length", value: String(body.count))
        case (nil, .POST), (nil, .PUT), (nil, .PATCH): head.headers.replaceOrAdd(name: "content-length", value: "0")
        case (nil, _): break
        }
        let promise = channel.eventLoop.makePromise(of: Collected.self)
        let exchange = Exchange(
            head: head, body: body, promise: promise, sendBy: sendBy, deadline: deadline,
            readTimeout: .nanoseconds(self.settings.readTimeout.nanoseconds), limit: self.settings.maxResponseBytes,
            id: self.exchanges.wrappingAdd(1, ordering: .relaxed).newValue)
        let result: Result<Collected, any Error> = await withTaskCancellationHandler {
            // A connection closed before the request reached this pipeline's handlers: nothing
            // was written, and no handler will answer.
            let written = channel.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenFailure { error in promise.fail(Failure(writeError: error)) }
            channel.writeAndFlush(exchange, promise: written)
            do {
                return .success(try await promise.futureResult.get())
            } catch {
                return .failure(error)
            }
        } onCancel: {
            channel.pipeline.fireUserInboundEventTriggered(ExchangeHandler.Cancel(exchange: exchange.id))
        }
        switch result {
        case .success(let collected):
            if collected.keepAlive { self.release(channel) } else { channel.close(promise: nil) }
            return collected.answer
        case .failure(let error as Failure):
            channel.close(promise: nil)
            throw error
        case .failure(let error):
            channel.close(promise: nil)
            throw .transport("\(error)")
        }
    }

    /// Closes the idle connections; calls after this fail with `shutDown`.
    func shutdown() async {
        let idle = self.state.withLock { state in
            state.open = false
            defer { state.idle = [] }
            return state.idle
        }
        for entry in idle { try? await entry.channel.close() }
    }

    private func release(_ channel: any Channel) {
        let kept = self.state.withLock { state in
            guard state.open, channel.isActive else { return false }
            state.idle.append(Idle(channel: channel, since: .now()))
            return true
        }
        if !kept { channel.close(promise: nil) }
    }

    /// Gives back a leased connection that carried nothing (the send-time guard said no).
    func giveBack(_ channel: any Channel) {
        self.release(channel)
    }

    /// A connection for one exchange: an idle one, or a new one, connected (and past its TLS
    /// handshake) before `deadline`.
    func lease(deadline: NIODeadline) async throws(Failure) -> any Channel {
        let now = NIODeadline.now()
        let idleLimit = TimeAmount.nanoseconds(self.settings.idleTimeout.nanoseconds)
        while true {
            let taken: Idle?? = self.state.withLock { state in
                guard state.open else { return .none }
                return .some(state.idle.popLast())
            }
            guard let entry = taken else { throw .shutDown }
            guard let entry else { break }
            if entry.channel.isActive && now - entry.since < idleLimit { return entry.channel }
            entry.channel.close(promise: nil)
        }
        return try await self.connect(deadline: deadline)
    }

    /// A new connection, trying again with backoff (100 ms doubling to 1 s) until `deadline`.
    private func connect(deadline: NIODeadline) async throws(Failure) -> any Channel {
        var delay = TimeAmount.milliseconds(100)
        while true {
            if Task.isCancelled { throw .cancelled }
            let remaining = deadline - .now()
            guard remaining > .zero else { throw .connect("no time left") }
            let connectTimeout = min(TimeAmount.nanoseconds(self.settings.connectTimeout.nanoseconds), remaining)
            let reason: String
            let loop = self.group.next()
            let handshake: EventLoopPromise<Void>? = self.tls == nil ? nil : loop.makePromise()
            do {
                let channel: any Channel
                do {
                    channel = try await self.bootstrap(on: loop, connectTimeout: connectTimeout, handshake: handshake)
                        .connect(host: self.host, port: self.port).get()
                } catch {
                    handshake?.fail(error)
                    throw error
                }
                guard let handshake else { return channel }
                // The handshake within what is left of the connect timeout.
                let handshakeTimer = loop.scheduleTask(in: connectTimeout) {
                    handshake.fail(Failure.transport("no handshake within the connect timeout"))
                }
                do {
                    try await handshake.futureResult.get()
                    handshakeTimer.cancel()
                    return channel
                } catch {
                    handshakeTimer.cancel()
                    // A refused certificate does not change with another try: nothing was sent.
                    channel.close(promise: nil)
                    throw Failure.transport("TLS handshake with \(self.host) failed: \(error)")
                }
            } catch let failure as Failure {
                throw failure
            } catch {
                reason = "\(error)"
            }
            guard NIODeadline.now() + delay < deadline else { throw .connect(reason) }
            do {
                try await Task.sleep(nanoseconds: UInt64(delay.nanoseconds))
            } catch {
                throw .cancelled
            }
            delay = min(delay * 2, .seconds(1))
        }
    }

    private func bootstrap(
        on loop: any EventLoop, connectTimeout: TimeAmount, handshake: EventLoopPromise<Void>?
    ) -> ClientBootstrap {
        let tls = self.tls
        let host = self.host
        return ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls, let handshake {
                        // SNI only for names: an IP literal is not a server name (RFC 6066 §3).
                        let serverName = host.isIPAddress ? nil : host
                        try pipeline.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        try pipeline.addHandler(HandshakeWaiter(done: handshake))
                    }
                    try pipeline.addHTTPClientHandlers()
                    try pipeline.addHandler(ExchangeHandler())
                }
            }
    }
}

/// Completes `done` when the TLS handshake has (or has not) succeeded: a connection is handed to
/// a call only then, so a refused certificate is reported as such, before any request.
private final class HandshakeWaiter: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    let done: EventLoopPromise<Void>

    init(done: EventLoopPromise<Void>) {
        self.done = done
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { self.done.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.done.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.done.fail(ProviderConnections.Failure.closedBeforeAnswer)
        context.fireChannelInactive()
    }
}

/// One request on a connection, as handed to its pipeline.
private struct Exchange: Sendable {
    var head: HTTPRequestHead
    var body: [UInt8]?
    var promise: EventLoopPromise<Collected>
    /// The end of the request's send window (nil: none).
    ///
    /// The worker's send-time guard (partition still owned, claim current, deadline not passed,
    /// the user's rate-limit slot taken now) runs in a Swift task; the request is written later,
    /// on the connection's event loop, after an event-loop hop and, for a new connection, its
    /// connects (retried while the host refuses) and TLS handshake. A process frozen in between
    /// (SIGSTOP, a paused VM, a starved machine) would write the request on resume, seconds after
    /// the guard said yes: after its lease, after the deadline, in a burst with the calls queued
    /// behind it. So `ExchangeHandler` refuses a request that reaches it after `sendBy`: nothing
    /// of it is encoded, the connection stays open and reusable, and the caller gets `notSent`
    /// and asks the guard again. Unguarded is only the encoder and the `write` system call after
    /// that check, on the same thread and in the same call: microseconds, not a queue.
    var sendBy: NIODeadline?
    var deadline: NIODeadline
    var readTimeout: TimeAmount
    var limit: Int

    /// Tells this exchange's cancellation from another's on the same connection (a serial
    /// number of its `ProviderConnections`).
    var id: UInt64
}

private struct Collected: Sendable {
    var answer: ProviderConnections.Answer
    var keepAlive: Bool
}

/// The last handler of a provider connection: writes one request, collects its answer, and
/// fails it on the deadline, a read timeout, a closed connection or an answer too large. One
/// timer per connection, not per request: when it fires it checks the exchange in progress (its
/// deadline, when a byte last arrived) and, if one is still running and not yet due, waits out
/// the rest; an answer never cancels it, so the next request on the connection finds it armed.
/// Under load a request schedules and cancels nothing (scheduling and cancelling a timer per
/// request was ~8 % of the event loops' CPU: NIO finds a cancelled timer by a linear search of
/// its queue); an idle connection's timer fires once and is not armed again.
private final class ExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Exchange
    typealias OutboundOut = HTTPClientRequestPart

    /// Sent through the pipeline when the calling task is cancelled.
    struct Cancel: Sendable {
        var exchange: UInt64
    }

    private var current: Exchange?
    /// A cancellation that arrived before its request was written: that request is not written.
    private var cancelledEarly: UInt64?
    private var timer: Scheduled<Void>?
    /// When `timer` fires.
    private var timerAt = NIODeadline.distantPast
    private var lastRead = NIODeadline.now()
    private var status = 0
    private var keepAlive = true
    private var headers: [String: String] = [:]
    private var body = ByteBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = self.unwrapOutboundIn(data)
        if self.cancelledEarly == exchange.id {
            self.cancelledEarly = nil
            promise?.succeed()
            exchange.promise.fail(ProviderConnections.Failure.cancelled)
            return
        }
        guard self.current == nil else {
            exchange.promise.fail(ProviderConnections.Failure.transport("a connection carried two requests at once"))
            return
        }
        let now = NIODeadline.now()
        if let sendBy = exchange.sendBy, now > sendBy {
            // Late to its connection (see `Exchange.sendBy`): nothing is written.
            promise?.succeed()
            let late = Duration.nanoseconds((now - sendBy).nanoseconds)
            exchange.promise.succeed(Collected(answer: .notSent(lateBy: late), keepAlive: true))
            return
        }
        self.current = exchange
        self.status = 0
        // A fresh dictionary: the last answer took the previous one with it.
        self.headers = [:]
        self.body.clear()
        self.lastRead = now
        // A timer still armed from an earlier request that fires no later than this one is due
        // serves it too: it checks this exchange when it fires.
        let due = min(exchange.deadline, self.lastRead + exchange.readTimeout)
        if self.timer == nil || self.timerAt > due {
            self.timer?.cancel()
            self.arm(context: context, at: due)
        }
        context.write(self.wrapOutboundOut(.head(exchange.head)), promise: nil)
        if let body = exchange.body {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let exchange = self.current else {
            // An answer nobody asked for (a 408 on an idle connection): what the connection
            // says next is not known to answer the next request, so it is not used again.
            context.close(promise: nil)
            return
        }
        self.lastRead = .now()
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.status = Int(head.status.code)
            self.keepAlive = head.isKeepAlive
            self.headers.reserveCapacity(head.headers.count)
            for header in head.headers { self.headers[header.name.lowercased()] = header.value }
            if let announced = head.headers.first(name: "content-length").flatMap(Int.init), announced > exchange.limit
            {
                self.fail(.tooLarge(limit: exchange.limit), context: context)
            }
        case .body(var part):
            guard self.body.readableBytes + part.readableBytes <= exchange.limit else {
                self.fail(.tooLarge(limit: exchange.limit), context: context)
                return
            }
            self.body.writeBuffer(&part)
        case .end:
            // The timer stays armed for the connection's next request (see the type's comment).
            self.current = nil
            let response = ProviderHTTPResponse(
                status: self.status, headers: self.headers, body: Array(self.body.readableBytesView))
            exchange.promise.succeed(Collected(answer: .answer(response), keepAlive: self.keepAlive))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let cancel = event as? Cancel {
            if self.current?.id == cancel.exchange {
                self.fail(.cancelled, context: context)
            } else if self.current == nil {
                self.cancelledEarly = cancel.exchange
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // On the next tick: a TLS handler closes the connection before it reports why (a
        // refused certificate); that reason, when it comes, is the one to give.
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            handler.fail(.closedBeforeAnswer, context: context)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(.transport("\(error)"), context: context)
    }

    private func arm(context: ChannelHandlerContext, at instant: NIODeadline) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.timerAt = instant
        self.timer = context.eventLoop.scheduleTask(deadline: instant) {
            let (handler, context) = bound.value
            handler.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        self.timer = nil
        guard let exchange = self.current else { return }
        let now = NIODeadline.now()
        if now >= exchange.deadline {
            self.fail(.deadline, context: context)
        } else if now >= self.lastRead + exchange.readTimeout {
            self.fail(.readTimeout, context: context)
        } else {
            self.arm(context: context, at: min(exchange.deadline, self.lastRead + exchange.readTimeout))
        }
    }

    /// Fails the request in progress, if any, and closes the connection (its state is unknown).
    /// Idle too: an error after an answer was complete (bytes beyond its `Content-Length`, a
    /// 204 with a body) leaves NIO's response decoder in its error state, which would write the
    /// next request and throw its answer away.
    private func fail(_ failure: ProviderConnections.Failure, context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
        let exchange = self.current
        self.current = nil
        exchange?.promise.fail(failure)
        context.close(promise: nil)
    }
}

extension String {
    /// An IPv4 or IPv6 literal (SNI carries names only).
    fileprivate var isIPAddress: Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return self.withCString { inet_pton(AF_INET, $0, &v4) == 1 || inet_pton(AF_INET6, $0, &v6) == 1 }
    }
}
