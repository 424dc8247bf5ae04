import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// Collects a provider's answer where it arrives, on its connection's event loop: the status,
/// the headers (names lower-cased) and the body up to a limit, into one `ProviderHTTPResponse`,
/// handed to the waiting call once (issue 14). The streaming API (`HTTPClientResponse` and its
/// body sequence) resumed the call at the head and again for the body, through an async
/// sequence per answer.
///
/// AsyncHTTPClient calls a delegate's methods on the request's event loop, one at a time, so
/// the mutable state below is confined to that loop (hence `@unchecked Sendable`).
final class AnswerCollector: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = Collected

    /// The answer, or the send window's refusal: nothing was sent (`SendWindowHandler`).
    enum Collected: Sendable {
        case answer(ProviderHTTPResponse)
        case notSent(lateBy: Duration)
    }

    /// The body grew past `limit` bytes (or said it would).
    struct TooLarge: Error {}

    private let limit: Int
    private var status = 0
    private var headers: [String: String] = [:]
    private var refusal: Duration?
    private var body = ByteBuffer()
    private var failure: (any Error)?

    init(limit: Int) {
        self.limit = limit
    }

    func didReceiveHead(task: HTTPClient.Task<Collected>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        self.status = Int(head.status.code)
        self.refusal = SendWindowHandler.refusal(status: self.status, headers: head.headers)
        self.headers.reserveCapacity(head.headers.count)
        for header in head.headers { self.headers[header.name.lowercased()] = header.value }
        if let announced = head.headers.first(name: "content-length").flatMap(Int.init), announced > self.limit {
            return self.fail(TooLarge(), on: task.eventLoop)
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Collected>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        guard self.body.readableBytes + buffer.readableBytes <= self.limit else {
            return self.fail(TooLarge(), on: task.eventLoop)
        }
        var part = buffer
        self.body.writeBuffer(&part)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveError(task: HTTPClient.Task<Collected>, _ error: any Error) {
        if self.failure == nil { self.failure = error }
    }

    func didFinishRequest(task: HTTPClient.Task<Collected>) throws -> Collected {
        if let failure = self.failure { throw failure }
        if let refusal = self.refusal { return .notSent(lateBy: refusal) }
        return .answer(
            ProviderHTTPResponse(
                status: self.status, headers: self.headers, body: Array(self.body.readableBytesView)))
    }

    private func fail(_ error: any Error, on loop: any EventLoop) -> EventLoopFuture<Void> {
        self.failure = error
        return loop.makeFailedFuture(error)
    }
}
