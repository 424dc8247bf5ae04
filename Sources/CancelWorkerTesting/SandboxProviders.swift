public import CancelCore
public import Foundation
public import Logging
public import NIOCore
public import NIOSSL
public import Providers
public import Sandbox

/// The provider sandbox on port 0 and the five real adapters pointed at it (the demo credentials
/// unless told otherwise): what the worker, provider and upstream-client tests share.
public struct SandboxProviders: Sendable {
    public let sandbox: ProviderSandbox
    public let url: URL
    public let registry: ProviderRegistry

    /// Runs `body` with a running sandbox and a registry over it; shuts both down after.
    /// `timeout` is every provider's call timeout (nil: the adapters' default); `eventLoopGroup`
    /// gives the providers' connections threads of their own; `tlsConfiguration` is what they
    /// trust when the sandbox serves HTTPS (nil: the system's roots).
    public static func with<T: Sendable>(
        _ configuration: SandboxConfiguration = SandboxConfiguration(),
        timeout: Duration? = nil,
        http: HTTPClientSettings = HTTPClientSettings(),
        credentials: [ProviderID: [String: ProviderCredentials]] = SandboxConfiguration.demoAccounts,
        basePath: String = "",
        eventLoopGroup: (any EventLoopGroup)? = nil,
        tlsConfiguration: TLSConfiguration? = nil,
        logger: Logger = Logger(label: "sandbox-providers") { _ in SwiftLogNoOpLogHandler() },
        _ body: @Sendable (SandboxProviders) async throws -> T
    ) async throws -> T {
        let sandbox = ProviderSandbox(configuration: configuration, logger: logger)
        return try await sandbox.withRunning { url in
            let providers = Self.configuration(
                url: url.absoluteString + basePath, timeout: timeout, http: http, credentials: credentials)
            let registry = ProviderRegistry(
                configuration: providers, eventLoopGroup: eventLoopGroup, tlsConfiguration: tlsConfiguration,
                logger: logger)
            do {
                let result = try await body(SandboxProviders(sandbox: sandbox, url: url, registry: registry))
                await registry.shutdown()
                return result
            } catch {
                await registry.shutdown()
                throw error
            }
        }
    }

    /// Every provider at `url`, with `credentials` (feee with its documented User-Agent).
    public static func configuration(
        url: String, timeout: Duration? = nil, http: HTTPClientSettings = HTTPClientSettings(),
        credentials: [ProviderID: [String: ProviderCredentials]] = SandboxConfiguration.demoAccounts
    ) -> ProvidersConfiguration {
        var configuration = ProvidersConfiguration(http: http)
        for provider in ProviderID.allCases {
            var settings = ProviderSettings(baseURL: url)
            if let timeout { settings.timeout = timeout }
            settings.accounts = credentials[provider] ?? [:]
            settings.userAgent = provider == .feee ? FeeeAPI.documentedUserAgent : nil
            configuration.settings[provider] = settings
        }
        return configuration
    }

    /// The calls the sandbox saw for an order.
    public func calls(_ provider: ProviderID, _ order: String) -> [SandboxRequestRecord] {
        self.sandbox.requests(provider: provider, orderID: order)
    }
}
