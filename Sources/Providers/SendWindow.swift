import Foundation
import NIOCore
import NIOHTTP1

/// The last check before a provider request reaches the socket.
///
/// The worker's send-time guard (partition still owned, claim current, deadline not passed, the
/// user's rate-limit slot taken now) runs in a Swift task; the request is written later, on the
/// connection's event loop, after an event-loop hop and, for a new connection, its connects
/// (retried while the host refuses) and TLS handshake. A process frozen in between (SIGSTOP, a
/// paused VM, a starved machine) would write the request on resume, seconds after the guard said
/// yes: after its lease, after the deadline, in a burst with the calls queued behind it.
///
/// `SendWindowHandler` sits in every provider connection's pipeline (`ProviderConnections`),
/// between the exchange handler and the HTTP codec, and refuses a request whose send window (`cw-send-by`, a
/// monotonic instant set when the guard passed) has closed: nothing of it is encoded, and the
/// exchange handler receives an answer made here (status 599, `cw-not-sent: <this process's token>`), so the
/// connection stays open and reusable and the caller knows nothing reached the provider. The
/// `cw-send-by` header never goes on the wire.
///
/// What is left unguarded is the encoder and the `write` system call after this handler, on the
/// same thread and in the same call: microseconds, not a queue.
final class SendWindowHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// The internal header carrying the window's end, `NIODeadline.uptimeNanoseconds` in decimal.
    static let sendByHeader = "cw-send-by"
    /// The header of the answer made here; its value is `token`, which no provider can know.
    static let notSentHeader = "cw-not-sent"
    static let lateByHeader = "cw-late-by-ns"
    static let token = UUID().uuidString
    static let notSentStatus = HTTPResponseStatus.custom(code: 599, reasonPhrase: "Not Sent")

    /// Set from a refused head until its end: the refused request's parts are dropped, and its
    /// answer is made once the client has handed over the whole request.
    private var refused: Duration?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(var head):
            let sendBy = head.headers.first(name: Self.sendByHeader).flatMap(UInt64.init)
            head.headers.remove(name: Self.sendByHeader)
            let now = NIODeadline.now().uptimeNanoseconds
            if let sendBy, now > sendBy {
                self.refused = .nanoseconds(Int64(now - sendBy))
                promise?.succeed()
                return
            }
            self.refused = nil
            context.write(self.wrapOutboundOut(.head(head)), promise: promise)
        case .body(let body):
            guard self.refused == nil else {
                promise?.succeed()
                return
            }
            context.write(self.wrapOutboundOut(.body(body)), promise: promise)
        case .end(let trailers):
            guard let lateBy = self.refused else {
                context.write(self.wrapOutboundOut(.end(trailers)), promise: promise)
                return
            }
            self.refused = nil
            promise?.succeed()
            // Not from inside the client's own write: its state machine records the request as
            // sent first, then reads the answer.
            context.eventLoop.assumeIsolated().execute {
                let headers: HTTPHeaders = [
                    Self.notSentHeader: Self.token, Self.lateByHeader: String(lateBy.nanoseconds),
                    "content-length": "0",
                ]
                context.fireChannelRead(
                    self.wrapInboundOut(
                        .head(HTTPResponseHead(version: .http1_1, status: Self.notSentStatus, headers: headers))))
                context.fireChannelRead(self.wrapInboundOut(.end(nil)))
                context.fireChannelReadComplete()
            }
        }
    }

    /// The `cw-send-by` value for a window that closes `window` from now.
    static func sendBy(closingIn window: Duration) -> String {
        let now = NIODeadline.now().uptimeNanoseconds
        let nanoseconds = window.nanoseconds
        return String(nanoseconds >= 0 ? now + UInt64(nanoseconds) : now - min(now, UInt64(-nanoseconds)))
    }

    /// How late the request was when this is the answer `SendWindowHandler` made; nil for a
    /// provider's answer.
    static func refusal(status: Int, headers: HTTPHeaders) -> Duration? {
        guard status == 599, headers.first(name: Self.notSentHeader) == Self.token else { return nil }
        return .nanoseconds(headers.first(name: Self.lateByHeader).flatMap(Int64.init) ?? 0)
    }
}
