public import AsyncHTTPClient
public import CancelCore
public import Logging
import NIOCore

/// Everything the providers need: settings per provider and the shared HTTP client's settings.
public struct ProvidersConfiguration: Sendable, Hashable {
    public var settings: [ProviderID: ProviderSettings]
    public var http: HTTPClientSettings

    public init(settings: [ProviderID: ProviderSettings] = [:], http: HTTPClientSettings = HTTPClientSettings()) {
        self.settings = settings
        self.http = http
    }

    /// Production URLs, no credentials.
    public static var defaults: ProvidersConfiguration {
        ProvidersConfiguration(
            settings: Dictionary(
                uniqueKeysWithValues: ProviderID.allCases.map { ($0, ProviderSettings.production($0)) }))
    }
}

/// The five adapters over one `HTTPClient` (one connection pool for all providers).
public final class ProviderRegistry: Sendable {
    public let client: HTTPClient
    private let ownsClient: Bool
    public let providers: [ProviderID: any CancelProvider]

    /// Uses `httpClient`; the caller shuts it down.
    public init(configuration: ProvidersConfiguration, httpClient: HTTPClient, logger: Logger) {
        self.client = httpClient
        self.ownsClient = false
        self.providers = Self.adapters(configuration, client: httpClient, logger: logger)
    }

    /// Creates the shared client from `configuration.http`; `shutdown()` closes it.
    public init(configuration: ProvidersConfiguration, logger: Logger) {
        var clientConfiguration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(
                connect: .nanoseconds(configuration.http.connectTimeout.nanoseconds),
                read: .nanoseconds(configuration.http.readTimeout.nanoseconds))
        )
        clientConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.http.maxConnectionsPerHost)
        clientConfiguration.decompression = .disabled
        self.client = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: clientConfiguration, backgroundActivityLogger: logger)
        self.ownsClient = true
        self.providers = Self.adapters(configuration, client: self.client, logger: logger)
    }

    public func provider(_ id: ProviderID) -> (any CancelProvider)? {
        self.providers[id]
    }

    /// Closes the HTTP client if this registry created it.
    public func shutdown() async {
        if self.ownsClient { try? await self.client.shutdown() }
    }

    private static func adapters(
        _ configuration: ProvidersConfiguration, client: HTTPClient, logger: Logger
    ) -> [ProviderID: any CancelProvider] {
        var adapters: [ProviderID: any CancelProvider] = [:]
        let calls = configuration.http.maxConnectionsPerHost
        for (id, settings) in configuration.settings {
            switch id {
            case .feee:
                adapters[id] = HTTPCancelProvider(
                    api: FeeeAPI(), settings: settings, client: client, maxConcurrentCalls: calls, logger: logger)
            case .fungies:
                adapters[id] = HTTPCancelProvider(
                    api: FungiesAPI(), settings: settings, client: client, maxConcurrentCalls: calls, logger: logger)
            case .taker:
                adapters[id] = HTTPCancelProvider(
                    api: TakerAPI(), settings: settings, client: client, maxConcurrentCalls: calls, logger: logger)
            case .fastpod:
                adapters[id] = HTTPCancelProvider(
                    api: FastPodAPI(), settings: settings, client: client, maxConcurrentCalls: calls, logger: logger)
            case .futures:
                adapters[id] = HTTPCancelProvider(
                    api: FuturesAPI(), settings: settings, client: client, maxConcurrentCalls: calls, logger: logger)
            }
        }
        return adapters
    }
}
