import CancelCore
import CancelWorkerTesting
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Providers
import Sandbox
import Synchronization
import Testing

/// Issue 12 §2, the gap the chaos run found: a worker frozen (SIGSTOP) after its send-time guard
/// said yes and before the request was written wrote it on resume, seconds late — after its
/// lease, in a burst with the calls queued behind it. Here the freeze is the providers' HTTP
/// client's event loop (its own, one thread) blocked right after the guard: the request reaches
/// its connection 300 ms after the guard, far past its send window.
@Suite("The send window: a request late to its connection is not sent", .serialized, .timeLimit(.minutes(1)))
struct SendWindowTests {
    /// The HTTP client's own event loop, so a freeze stops no other test's calls.
    static let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// A 100 ms window (the default is 1 s): the 300 ms freeze misses it.
    static var http: HTTPClientSettings {
        var http = HTTPClientSettings()
        http.sendWindow = .milliseconds(100)
        return http
    }

    /// A guard that counts its calls and, on the first `frozen` of them, blocks the client's event
    /// loop for 300 ms, the way a paused process finds it on resume: what it had queued runs late.
    final class FreezingGuard: Sendable {
        let frozen: Int
        let calls = Mutex(0)
        init(frozen: Int) { self.frozen = frozen }

        func verdict() -> SendVerdict {
            let call = self.calls.withLock {
                $0 += 1
                return $0
            }
            if call <= self.frozen {
                SendWindowTests.loop.next().execute { Thread.sleep(forTimeInterval: 0.3) }
            }
            return .send
        }
    }

    @Test("regression: frozen between the guard and the write, the request is not sent; the guard decides again")
    func frozenOnce() async throws {
        try await withSandboxAndProviders(http: Self.http, eventLoopGroup: Self.loop) { sandbox, registry, _ in
            let provider = try #require(registry.provider(.fastpod))
            let order = ProviderCase.id(1)
            sandbox.seed([SandboxOrder(provider: .fastpod, id: order)])
            // A warm connection first, so the frozen request waits only for its event loop.
            _ = await provider.cancel(ProviderCase.all[3].request(ProviderCase.id(9)))
            sandbox.resetStats()

            let sendGuard = FreezingGuard(frozen: 1)
            let result = await provider.cancel(ProviderCase.all[3].request(order)) { sendGuard.verdict() }
            #expect(result?.classification == .cancelled, "\(result?.reason ?? "nil")")
            #expect(sendGuard.calls.withLock { $0 } == 2, "the late request went back to the guard once")
            let received = sandbox.requests(provider: .fastpod)
            #expect(received.count == 1, "only the request written in time reached the provider: \(received.count)")
            #expect(received.allSatisfy { $0.headers["cw-send-by"] == nil }, "no internal header reaches the provider")
            #expect(sandbox.stats().contractViolations.isEmpty, "\(sandbox.stats().contractViolations)")
        }
    }

    @Test("a request late on every try is never sent; the answer says so and asks for a later retry")
    func frozenEveryTime() async throws {
        try await withSandboxAndProviders(http: Self.http, eventLoopGroup: Self.loop) { sandbox, registry, _ in
            let provider = try #require(registry.provider(.futures))
            let order = ProviderCase.id(2)
            sandbox.seed([SandboxOrder(provider: .futures, id: order)])
            _ = await provider.cancel(ProviderCase.all[4].request(ProviderCase.id(9)))
            sandbox.resetStats()

            let sendGuard = FreezingGuard(frozen: .max)
            let result = try #require(
                await provider.cancel(ProviderCase.all[4].request(order)) { sendGuard.verdict() })
            #expect(result.classification == .retryLater(after: .seconds(1), scope: .order), "\(result.reason)")
            #expect(result.reason.contains("not sent"), "\(result.reason)")
            #expect(sendGuard.calls.withLock { $0 } == 3)
            #expect(sandbox.requests(provider: .futures).isEmpty, "nothing reached the provider")
            #expect(sandbox.order(.futures, order)?.status == SandboxOrder.openStatus(.futures))
        }
    }

    @Test("a request on a new connection goes out; after a refusal the next request goes out")
    func connectionReuse() async throws {
        try await withSandboxAndProviders(http: Self.http, eventLoopGroup: Self.loop) { sandbox, registry, _ in
            let provider = try #require(registry.provider(.fastpod))
            sandbox.seed((1...3).map { SandboxOrder(provider: .fastpod, id: ProviderCase.id($0)) })
            // Cold: the first call opens its connection within the window on loopback.
            let cold = await provider.cancel(ProviderCase.all[3].request(ProviderCase.id(1))) { .send }
            #expect(cold?.classification == .cancelled, "\(cold?.reason ?? "nil")")
            let sendGuard = FreezingGuard(frozen: 1)
            let late = await provider.cancel(ProviderCase.all[3].request(ProviderCase.id(2))) { sendGuard.verdict() }
            #expect(late?.classification == .cancelled)
            let after = await provider.cancel(ProviderCase.all[3].request(ProviderCase.id(3))) { .send }
            #expect(after?.classification == .cancelled)
            #expect(sandbox.requests(provider: .fastpod).count == 3)
        }
    }

    /// Review finding: the guard took the user's rate slot before the call had its connection,
    /// and a new connection (refused, retried with backoff; a slow TLS handshake) could then
    /// take up to the send window (1 s) before the write: calls whose slots were 120 ms apart
    /// arrived together, 12 in one second for a user limited to 10/s. Now the guard runs once the
    /// call holds an established connection. Here nothing listens on the provider's port for
    /// the first 600 ms: the connect is refused and retried.
    @Test("regression: the send-time guard runs once the call holds its connection, never before a slow connect")
    func guardAfterConnect() async throws {
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(probe.localAddress?.port)
        try await probe.close()
        let registry = ProviderRegistry(
            configuration: SandboxProviders.configuration(url: "http://127.0.0.1:\(port)", timeout: .seconds(5)),
            eventLoopGroup: Self.loop, tlsConfiguration: nil, logger: Logger(label: "guard-after-connect"))
        let provider = try #require(registry.provider(.fastpod))
        let started = ContinuousClock.now
        let listening = Task {
            try await Task.sleep(for: .milliseconds(600))
            return try await rawServer(port: port, requests: NIOLockedValueBox(0)) { _ in
                ["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"]
            }
        }
        let guardedAt = Mutex<ContinuousClock.Instant?>(nil)
        _ = await provider.cancel(ProviderCase.all[3].request(ProviderCase.id(1))) {
            guardedAt.withLock { $0 = .now }
            return .send
        }
        let server = try await listening.value
        let guarded = try #require(guardedAt.withLock { $0 }, "the guard ran")
        #expect(guarded - started >= .milliseconds(600), "the guard ran \(guarded - started) in, before the connection")
        await registry.shutdown()
        try await server.close()
    }

    @Test("a request never goes out after the command's deadline, however long its window")
    func deadlineClosesTheWindow() async throws {
        try await withSandboxAndProviders(eventLoopGroup: Self.loop) { sandbox, registry, _ in
            let provider = try #require(registry.provider(.fastpod))
            let order = ProviderCase.id(5)
            sandbox.seed([SandboxOrder(provider: .fastpod, id: order)])
            _ = await provider.cancel(ProviderCase.all[3].request(ProviderCase.id(9)))
            sandbox.resetStats()

            // The default 1 s window, a deadline 100 ms away, a 300 ms freeze after the guard.
            var request = ProviderCase.all[3].request(order)
            request.deadline = Date().addingTimeInterval(0.1)
            let sendGuard = FreezingGuard(frozen: 1)
            let result = try #require(await provider.cancel(request) { sendGuard.verdict() })
            #expect(result.reason.contains("not sent"), "\(result.reason)")
            #expect(sandbox.requests(provider: .fastpod).isEmpty, "nothing reached the provider after the deadline")
        }
    }
}
