import Foundation
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Stamps every request head with the time the server's event loop decoded it, in a header the
/// sandbox reads and drops (`ProviderSandbox.serve`).
///
/// A request's arrival is when it reached the provider. Read in the route handler instead, it
/// included Hummingbird's hand-off to a task on the cooperative pool: on a loaded machine (the
/// chaos run beside the test suite on two cores) that was up to ~200 ms, and calls the worker
/// had spaced 1.2 s apart were counted 11 in one second. The event loop is as close to the
/// socket as the sandbox gets. A stamp a client sent is overwritten.
final class ArrivalStamp: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    static let field = HTTPField.Name("x-sandbox-received-at")!

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = self.unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        head.headerFields[Self.field] = String(Date().timeIntervalSince1970)
        context.fireChannelRead(self.wrapInboundOut(.head(head)))
    }

    /// The stamp of a request that went through this handler.
    static func arrival(_ fields: HTTPFields) -> Date? {
        fields[Self.field].flatMap(Double.init).map(Date.init(timeIntervalSince1970:))
    }
}
