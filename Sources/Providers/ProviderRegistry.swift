public import CancelCore
public import Logging
public import NIOCore
import NIOPosix
public import NIOSSL

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

/// The five adapters, each with its own HTTP/1.1 connections to its host
/// (`ProviderConnections`) on one event-loop group.
public final class ProviderRegistry: Sendable {
    public let providers: [ProviderID: any CancelProvider]
    private let connections: [ProviderConnections]

    /// Opens no connection yet: each provider connects on its first call. `shutdown()` closes
    /// the idle connections. `eventLoopGroup`: the connections' threads (default: NIO's shared
    /// group). `tlsConfiguration`: nil for the system's trust roots (tests pass their own).
    public init(
        configuration: ProvidersConfiguration,
        eventLoopGroup: (any EventLoopGroup)? = nil,
        tlsConfiguration: TLSConfiguration? = nil,
        logger: Logger
    ) {
        let settings = { (provider: ProviderSettings) in
            ProviderConnections.Settings(
                connectTimeout: configuration.http.connectTimeout, readTimeout: configuration.http.readTimeout,
                maxResponseBytes: provider.maxResponseBytes, tlsConfiguration: tlsConfiguration)
        }
        let group = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        var adapters: [ProviderID: any CancelProvider] = [:]
        var connections: [ProviderConnections] = []
        let (calls, window) = (configuration.http.maxConnectionsPerHost, configuration.http.sendWindow)
        func adapter(_ api: some ProviderAPI, _ provider: ProviderSettings) -> any CancelProvider {
            let pool: Result<ProviderConnections, UnusableBaseURL>
            do {
                if let usable = try ProviderConnections(
                    baseURL: provider.baseURL, settings: settings(provider), group: group)
                {
                    pool = .success(usable)
                    connections.append(usable)
                } else {
                    pool = .failure(UnusableBaseURL(reason: "base URL \(provider.baseURL) is not an http or https URL"))
                }
            } catch {
                logger.error(
                    "provider TLS setup failed", metadata: ["provider": "\(api.id)", "error": "\(error)"])
                pool = .failure(
                    UnusableBaseURL(reason: "TLS setup for base URL \(provider.baseURL) failed: \(error)"))
            }
            return HTTPCancelProvider(
                api: api, settings: provider, connections: pool, maxConcurrentCalls: calls,
                sendWindow: provider.sendWindow.map { min($0, window) } ?? window,
                logger: logger)
        }
        for (id, provider) in configuration.settings {
            switch id {
            case .feee: adapters[id] = adapter(FeeeAPI(), provider)
            case .fungies: adapters[id] = adapter(FungiesAPI(), provider)
            case .taker: adapters[id] = adapter(TakerAPI(), provider)
            case .fastpod: adapters[id] = adapter(FastPodAPI(), provider)
            case .futures: adapters[id] = adapter(FuturesAPI(), provider)
            }
        }
        self.providers = adapters
        self.connections = connections
    }

    public func provider(_ id: ProviderID) -> (any CancelProvider)? {
        self.providers[id]
    }

    /// Closes every provider's idle connections.
    public func shutdown() async {
        for pool in self.connections { await pool.shutdown() }
    }
}
