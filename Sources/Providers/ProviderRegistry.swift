public import AsyncHTTPClient
public import CancelCore
public import Logging
public import NIOCore

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
    public let providers: [ProviderID: any CancelProvider]

    /// Creates the shared client from `configuration.http` (with the send-window check on every
    /// connection); `shutdown()` closes it.
    /// `eventLoopGroup`: the client's threads (default: NIO's shared group).
    public init(
        configuration: ProvidersConfiguration,
        eventLoopGroup: (any EventLoopGroup)? = nil,
        logger: Logger
    ) {
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
        // No client spans: the worker bootstraps no tracer, and with the default (the global
        // no-op tracer) the client still builds every request's span attributes — URL, method,
        // sizes — for nothing: 1.4 % of the worker's CPU in bench scenario a (issue 14).
        clientConfiguration.tracing.tracer = nil
        // HTTP/1.1 only: every connection then carries the send-window check, which sits in the
        // HTTP/1.1 pipeline (the providers document HTTP/1.1 calls; none needs HTTP/2).
        clientConfiguration.httpVersion = .http1Only
        clientConfiguration.http1_1ConnectionDebugInitializer = SendWindowHandler.install(on:)
        self.client = HTTPClient(
            eventLoopGroupProvider: eventLoopGroup.map { .shared($0) } ?? .singleton,
            configuration: clientConfiguration,
            backgroundActivityLogger: logger)
        self.providers = Self.adapters(configuration, client: self.client, logger: logger)
    }

    public func provider(_ id: ProviderID) -> (any CancelProvider)? {
        self.providers[id]
    }

    /// Closes the HTTP client.
    public func shutdown() async {
        try? await self.client.shutdown()
    }

    private static func adapters(
        _ configuration: ProvidersConfiguration, client: HTTPClient, logger: Logger
    ) -> [ProviderID: any CancelProvider] {
        var adapters: [ProviderID: any CancelProvider] = [:]
        let (calls, window) = (configuration.http.maxConnectionsPerHost, configuration.http.sendWindow)
        func adapter(_ api: some ProviderAPI, _ settings: ProviderSettings) -> any CancelProvider {
            HTTPCancelProvider(
                api: api, settings: settings, client: client, maxConcurrentCalls: calls, sendWindow: window,
                logger: logger)
        }
        for (id, settings) in configuration.settings {
            switch id {
            case .feee: adapters[id] = adapter(FeeeAPI(), settings)
            case .fungies: adapters[id] = adapter(FungiesAPI(), settings)
            case .taker: adapters[id] = adapter(TakerAPI(), settings)
            case .fastpod: adapters[id] = adapter(FastPodAPI(), settings)
            case .futures: adapters[id] = adapter(FuturesAPI(), settings)
            }
        }
        return adapters
    }
}
