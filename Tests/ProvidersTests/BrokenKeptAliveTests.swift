import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

@testable import Providers

/// A kept-alive connection whose response stream broke after an answer was complete — bytes
/// beyond the answer's `Content-Length`, a 204 with a body, an answer nobody asked for — must
/// not carry the next cancel: the next call's request would reach the provider (and be
/// carried out) while its answer was thrown away, an `unknown` for an order that was cancelled.
@Suite("Provider connections: a connection whose answers broke is not used again", .timeLimit(.minutes(1)))
struct BrokenKeptAliveTests {
    static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

    @Test(
        "the next call goes out on a new connection and gets its answer",
        arguments: [
            ("bytes after the answer's Content-Length", [Self.ok + "X"]),
            ("a 204 with a body", ["HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n{}"]),
            (
                "an answer nobody asked for, on the idle connection",
                [Self.ok, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"]
            ),
        ])
    func nextCallAnswered(broken: (what: String, first: [String])) async throws {
        let requests = NIOLockedValueBox(0)
        let server = try await rawServer(requests: requests) { number in number == 1 ? broken.first : [Self.ok] }
        let port = try #require(server.localAddress?.port)
        let connections = try #require(
            try ProviderConnections(
                baseURL: "http://127.0.0.1:\(port)",
                settings: .init(connectTimeout: .seconds(1), readTimeout: .seconds(2), maxResponseBytes: 1 << 20),
                group: MultiThreadedEventLoopGroup.singleton))
        @Sendable func call() async -> String {
            do {
                let answer = try await connections.exchange(
                    head: HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/orders/1/cancel"),
                    body: Array("{}".utf8), sendBy: nil, deadline: .now() + .seconds(3))
                guard case .answer(let response) = answer else { return "not sent" }
                return "\(response.status) \(String(decoding: response.body, as: UTF8.self))"
            } catch {
                return "failed: \(error)"
            }
        }
        _ = await call()
        // The broken bytes (the last 100 ms after the answer) arrive while the connection is idle.
        try await Task.sleep(for: .milliseconds(400))
        let second = await call()
        #expect(second == "200 {}", "\(broken.what): \(second)")
        #expect(requests.withLockedValue { $0 } == 2, "\(broken.what): each call reached the provider once")
        await connections.shutdown()
        try await server.close()
    }
}

/// A server that counts the requests it decodes and answers the n-th with `answers(n)`: raw
/// bytes, each 100 ms after the one before.
func rawServer(
    port: Int = 0, requests: NIOLockedValueBox<Int>, answers: @escaping @Sendable (Int) -> [String]
) async throws -> any Channel {
    try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                try channel.pipeline.syncOperations.addHandler(RawAnswers(requests: requests, answers: answers))
            }
        }
        .bind(host: "127.0.0.1", port: port).get()
}

private final class RawAnswers: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    let requests: NIOLockedValueBox<Int>
    let answers: @Sendable (Int) -> [String]

    init(requests: NIOLockedValueBox<Int>, answers: @escaping @Sendable (Int) -> [String]) {
        self.requests = requests
        self.answers = answers
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = self.unwrapInboundIn(data) else { return }
        let number = self.requests.withLockedValue { count in
            count += 1
            return count
        }
        let channel = context.channel
        for (index, text) in self.answers(number).enumerated() {
            channel.eventLoop.scheduleTask(in: .milliseconds(Int64(index) * 100)) {
                channel.writeAndFlush(ByteBuffer(string: text), promise: nil)
            }
        }
    }
}
