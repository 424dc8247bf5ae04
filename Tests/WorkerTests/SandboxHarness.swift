import CancelCore
import Foundation
import Logging
import Providers
import Sandbox

@testable import Worker

/// The provider sandbox on port 0 and the real adapters pointed at it (demo credentials).
struct SandboxHarness: Sendable {
    let sandbox: ProviderSandbox
    let url: URL
    let registry: ProviderRegistry

    static func with<T: Sendable>(
        _ configuration: SandboxConfiguration = SandboxConfiguration(),
        timeout: Duration = .seconds(2),
        http: HTTPClientSettings = HTTPClientSettings(),
        _ body: @Sendable (SandboxHarness) async throws -> T
    ) async throws -> T {
        let sandbox = ProviderSandbox(configuration: configuration, logger: harnessLogger)
        return try await sandbox.withRunning { url in
            let registry = ProviderRegistry(
                configuration: Self.providers(url: url, timeout: timeout, http: http), logger: harnessLogger)
            do {
                let result = try await body(SandboxHarness(sandbox: sandbox, url: url, registry: registry))
                await registry.shutdown()
                return result
            } catch {
                await registry.shutdown()
                throw error
            }
        }
    }

    static func providers(
        url: URL, timeout: Duration, http: HTTPClientSettings = HTTPClientSettings()
    ) -> ProvidersConfiguration {
        var configuration = ProvidersConfiguration(http: http)
        for provider in ProviderID.allCases {
            var settings = ProviderSettings(baseURL: url.absoluteString)
            settings.timeout = timeout
            settings.accounts = SandboxConfiguration.demoAccounts[provider] ?? [:]
            configuration.settings[provider] = settings
        }
        return configuration
    }

    /// Calls the sandbox saw for an order.
    func calls(_ provider: ProviderID, _ order: String) -> [SandboxRequestRecord] {
        self.sandbox.requests(provider: provider, orderID: order)
    }
}
