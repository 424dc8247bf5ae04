import CancelCore
import CancelWorkerTesting
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Sandbox
import ServiceLifecycle
import Testing

@testable import Providers

/// The providers' HTTP/1.1 connections (`ProviderConnections`) against the sandbox: TLS as the
/// real endpoints serve it, a host that refuses connections for a while or for good, a kept-alive
/// connection the provider closed, and the read timeout against the call's timeout.
@Suite("Provider connections: TLS, refused connects, closed connections, timeouts", .timeLimit(.minutes(2)))
struct ProviderConnectionsTests {
    let fastpod = ProviderCase.all.first { $0.provider == .fastpod }!

    @Test(
        "the Host header and the address connected to, from the base URL (an IPv6 literal in brackets)",
        arguments: [
            ("https://api-v2.fastpod.net", "api-v2.fastpod.net", "api-v2.fastpod.net", 443),
            ("http://127.0.0.1:8080/gw", "127.0.0.1:8080", "127.0.0.1", 8080),
            ("http://[::1]:8080", "[::1]:8080", "::1", 8080),
            ("https://[2001:db8::7]", "[2001:db8::7]", "2001:db8::7", 443),
        ])
    func hostFromBaseURL(url: String, hostHeader: String, host: String, port: Int) throws {
        let settings = ProviderConnections.Settings(
            connectTimeout: .seconds(1), readTimeout: .seconds(1), maxResponseBytes: 1 << 20)
        let connections = try #require(
            try ProviderConnections(baseURL: url, settings: settings, group: MultiThreadedEventLoopGroup.singleton))
        #expect(connections.hostHeader == hostHeader)
        #expect(connections.host == host)
        #expect(connections.port == port)
    }

    @Test("a base URL that is not http or https gives no connections (every call: a configuration error)")
    func notHTTP() async throws {
        let settings = ProviderConnections.Settings(
            connectTimeout: .seconds(1), readTimeout: .seconds(1), maxResponseBytes: 1 << 20)
        for url in ["ftp://example.com", "example.com", "http://", ""] {
            #expect(
                try ProviderConnections(baseURL: url, settings: settings, group: MultiThreadedEventLoopGroup.singleton)
                    == nil, "\(url)")
        }
        let registry = ProviderRegistry(
            configuration: SandboxProviders.configuration(url: "ftp://example.com"), logger: quietLogger)
        let provider = try #require(registry.provider(.fastpod))
        let result = await provider.cancel(self.fastpod.request(ProviderCase.id(709)))
        #expect(result.classification == .configuration, "\(result.reason)")
        #expect(result.reason.contains("is not an http or https URL"), "\(result.reason)")
        await registry.shutdown()
    }

    /// The TLS context of an https base URL is built when the adapters are: if that fails (here
    /// trust roots from a file that does not exist), every call is a configuration error that
    /// says so, not one about the URL's scheme.
    @Test("an https base URL whose TLS setup fails: every call is a configuration error naming the TLS setup")
    func tlsSetupFails() async throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file("/nonexistent/cancel-worker-test-roots.pem")
        let logs = CapturedLogs()
        let registry = ProviderRegistry(
            configuration: SandboxProviders.configuration(url: "https://127.0.0.1:9"), tlsConfiguration: tls,
            logger: logs.logger)
        let provider = try #require(registry.provider(.fastpod))
        let result = await provider.cancel(self.fastpod.request(ProviderCase.id(710)))
        #expect(result.classification == .configuration, "\(result.reason)")
        #expect(
            result.reason.hasPrefix("fastpod's TLS setup for base URL https://127.0.0.1:9 failed: "), "\(result.reason)"
        )
        #expect(!result.reason.contains("not an http or https URL"), "\(result.reason)")
        #expect(logs.lines.contains { $0.level == .error && $0.message == "provider TLS setup failed" }, "\(logs.all)")
        await registry.shutdown()
    }

    @Test("HTTPS: a cancel over TLS reaches a provider whose certificate the worker trusts")
    func httpsTrusted() async throws {
        let certificate = try TestCertificate.make()
        var configuration = SandboxConfiguration()
        configuration.tls = certificate.serverConfiguration
        try await withSandboxAndProviders(configuration: configuration, tlsConfiguration: certificate.trustingIt) {
            sandbox, registry, _ in
            let provider = try #require(registry.provider(.fastpod))
            let id = ProviderCase.id(700)
            sandbox.seed([SandboxOrder(provider: .fastpod, id: id)])
            let result = await provider.cancel(self.fastpod.request(id))
            #expect(result.classification == .cancelled, "\(result.reason)")
            #expect(sandbox.requests(provider: .fastpod, orderID: id).count == 1)
        }
    }

    @Test("HTTPS: a certificate no trusted root signed is refused before anything is sent (unknown)")
    func httpsUntrusted() async throws {
        let certificate = try TestCertificate.make()
        var configuration = SandboxConfiguration()
        configuration.tls = certificate.serverConfiguration
        // The system's roots, as in production: the sandbox's certificate is signed by none.
        try await withSandboxAndProviders(configuration: configuration) { sandbox, registry, _ in
            let provider = try #require(registry.provider(.fastpod))
            let id = ProviderCase.id(701)
            sandbox.seed([SandboxOrder(provider: .fastpod, id: id)])
            let result = await provider.cancel(self.fastpod.request(id))
            #expect(result.classification == .unknown, "\(result.reason)")
            #expect(result.nothingSent, "no connection, no request: not a call in doubt")
            #expect(result.reason.contains("TLS handshake with 127.0.0.1 failed"), "\(result.reason)")
            #expect(result.reason.lowercased().contains("certificate"), "\(result.reason)")
            #expect(sandbox.requests(provider: .fastpod, orderID: id).isEmpty, "nothing reached the provider")
            #expect(sandbox.order(.fastpod, id)?.status == SandboxOrder.openStatus(.fastpod))
        }
    }

    @Test("a host that refuses connections for 700 ms: the call connects again and is answered, within its timeout")
    func refusedThenUp() async throws {
        let port = try freePort()
        let sandbox = ProviderSandbox(configuration: SandboxConfiguration(), logger: quietLogger)
        let id = ProviderCase.id(702)
        sandbox.seed([SandboxOrder(provider: .fastpod, id: id)])
        let registry = ProviderRegistry(
            configuration: SandboxProviders.configuration(url: "http://127.0.0.1:\(port)", timeout: .seconds(10)),
            logger: quietLogger)
        let provider = try #require(registry.provider(.fastpod))
        let request = self.fastpod.request(id)
        let call = Task { await provider.cancel(request) }
        try await Task.sleep(for: .milliseconds(700))
        try await serve(sandbox, port: port) {
            let result = await call.value
            #expect(result.classification == .cancelled, "\(result.reason)")
        }
        await registry.shutdown()
    }

    @Test("a host that refuses connections for the whole timeout: unknown, 'could not connect', at the timeout")
    func refusedForGood() async throws {
        let port = try freePort()
        let registry = ProviderRegistry(
            configuration: SandboxProviders.configuration(url: "http://127.0.0.1:\(port)", timeout: .seconds(1)),
            logger: quietLogger)
        let provider = try #require(registry.provider(.fastpod))
        let started = ContinuousClock.now
        let result = await provider.cancel(self.fastpod.request(ProviderCase.id(703)))
        #expect(result.classification == .unknown, "\(result.reason)")
        #expect(result.nothingSent, "no connection, no request: not a call in doubt")
        #expect(result.reason.contains("could not connect before the timeout"), "\(result.reason)")
        #expect(result.reason.contains("nothing was sent"), "\(result.reason)")
        #expect(ContinuousClock.now - started < .seconds(3))
        await registry.shutdown()
    }

    /// The calling task is cancelled after the send-time guard said yes and before the request
    /// is written (the guard cancels it, so the window is hit every time): the cancellation
    /// reaches the connection first, and the request is never written.
    @Test("a call cancelled before its request is written: nothing reaches the provider; the next call goes out")
    func cancelledBeforeWrite() async throws {
        try await withSandboxAndProviders { sandbox, registry, _ in
            let provider = try #require(registry.provider(.fastpod))
            let (warm, cancelled, after) = (ProviderCase.id(711), ProviderCase.id(712), ProviderCase.id(713))
            sandbox.seed([warm, cancelled, after].map { SandboxOrder(provider: .fastpod, id: $0) })
            // A first call leaves a kept-alive connection, which the next call takes without
            // connecting (a connect would notice the cancellation before anything else).
            let first = await provider.cancel(self.fastpod.request(warm))
            #expect(first.classification == .cancelled, "\(first.reason)")
            let request = self.fastpod.request(cancelled)
            let result = await Task {
                await provider.cancel(request) {
                    withUnsafeCurrentTask { $0?.cancel() }
                    return .send
                }
            }.value
            #expect(result?.classification == .unknown, "\(String(describing: result?.reason))")
            #expect(result?.reason.contains("call cancelled") == true, "\(String(describing: result?.reason))")
            #expect(sandbox.requests(provider: .fastpod, orderID: cancelled).isEmpty, "never written")
            let next = await provider.cancel(self.fastpod.request(after))
            #expect(next.classification == .cancelled, "\(next.reason)")
            #expect(sandbox.requests(provider: .fastpod).count == 2, "the first and the last call only")
        }
    }

    @Test("regression guard: a kept-alive connection the provider closed (a restart) is not written on again")
    func closedKeptAliveConnection() async throws {
        let port = try freePort()
        var configuration = SandboxConfiguration()
        configuration.openByDefault = true
        let registry = ProviderRegistry(
            configuration: SandboxProviders.configuration(url: "http://127.0.0.1:\(port)", timeout: .seconds(5)),
            logger: quietLogger)
        let provider = try #require(registry.provider(.fastpod))
        try await serve(ProviderSandbox(configuration: configuration, logger: quietLogger), port: port) {
            let first = await provider.cancel(self.fastpod.request(ProviderCase.id(704)))
            #expect(first.classification == .cancelled, "\(first.reason)")
        }
        // The first connection now waits idle in the pool, closed by the stopped server.
        try await serve(ProviderSandbox(configuration: configuration, logger: quietLogger), port: port) {
            let second = await provider.cancel(self.fastpod.request(ProviderCase.id(705)))
            #expect(second.classification == .cancelled, "\(second.reason)")
        }
        await registry.shutdown()
    }

    /// `reused`: an answered call first, so the silent one goes out on its kept-alive connection,
    /// whose timer (one per connection, armed by the first call) must end it too.
    @Test(
        "a silent provider: the read timeout or the call's timeout, whichever is shorter, ends the call (unknown)",
        arguments: [
            (read: Duration.seconds(1), call: Duration.seconds(20), reason: "read timeout"),
            (read: Duration.seconds(20), call: Duration.seconds(1), reason: "no answer before the timeout"),
        ], [false, true])
    func silentProvider(timeouts: (read: Duration, call: Duration, reason: String), reused: Bool) async throws {
        var http = HTTPClientSettings()
        http.readTimeout = timeouts.read
        try await withSandboxAndProviders(timeout: timeouts.call, http: http) { sandbox, registry, _ in
            let provider = try #require(registry.provider(.fastpod))
            let (id, warm) = (ProviderCase.id(706), ProviderCase.id(707))
            sandbox.seed([SandboxOrder(provider: .fastpod, id: id), SandboxOrder(provider: .fastpod, id: warm)])
            sandbox.addFault(SandboxFault(.timeout(seconds: 6), provider: .fastpod, orderPattern: id))
            if reused {
                let first = await provider.cancel(self.fastpod.request(warm))
                #expect(first.classification == .cancelled, "\(first.reason)")
                // Part of the first call's timer has run out when the second call starts.
                try await Task.sleep(for: .milliseconds(400))
            }
            let started = ContinuousClock.now
            let result = await provider.cancel(self.fastpod.request(id))
            #expect(result.classification == .unknown, "\(result.reason)")
            #expect(result.reason.contains(timeouts.reason), "\(result.reason)")
            #expect(ContinuousClock.now - started < .seconds(4), "the 1 s timeout, not the 6 s silence")
        }
    }
}

private let quietLogger = Logger(label: "provider-connections-tests") { _ in SwiftLogNoOpLogHandler() }

/// A port nothing listens on (bound, then closed).
/// Runs `sandbox` on `port` until `body` returns.
private func serve(
    _ sandbox: ProviderSandbox, port: Int, _ body: @Sendable () async throws -> Void
) async throws {
    let group = ServiceGroup(
        configuration: .init(services: [.init(service: try sandbox.service(port: port))], logger: quietLogger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        _ = try #require(await sandbox.baseURL())
        do {
            try await body()
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}

/// A throwaway certificate for 127.0.0.1 and localhost, made by `openssl`
/// (scripts/ensure-packages.sh installs it).
struct TestCertificate {
    let certificate: NIOSSLCertificate
    let key: NIOSSLPrivateKey

    var serverConfiguration: TLSConfiguration {
        .makeServerConfiguration(certificateChain: [.certificate(self.certificate)], privateKey: .privateKey(self.key))
    }

    /// A client configuration that trusts this certificate alone.
    var trustingIt: TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([self.certificate])
        return configuration
    }

    static func make() throws -> TestCertificate {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certificatePath = directory.appendingPathComponent("certificate.pem").path
        let keyPath = directory.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", keyPath, "-out", certificatePath, "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else {
            throw TestCertificateError(reason: "openssl req exited \(openssl.terminationStatus)")
        }
        return TestCertificate(
            certificate: try #require(try NIOSSLCertificate.fromPEMFile(certificatePath).first),
            key: try NIOSSLPrivateKey(file: keyPath, format: .pem))
    }
}

struct TestCertificateError: Error {
    var reason: String
}
