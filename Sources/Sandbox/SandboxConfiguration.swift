public import CancelCore
import Foundation
public import NIOSSL

/// What the sandbox knows before any request: who may call which provider with which keys,
/// how strict it is, and how slow.
public struct SandboxConfiguration: Sendable {
    /// Credentials per provider: account → credentials (the same shape the worker uses).
    public var accounts: [ProviderID: [String: ProviderCredentials]]
    /// Unknown order ids are treated as open (cancellable) orders instead of "not found":
    /// for demos and benchmarks that send thousands of commands without seeding.
    public var openByDefault: Bool = false
    /// The futures exchange's documented limit: requests per second per user.
    public var futuresLimitPerSecond: Int = 10
    /// Optional per-account limits for the other providers (answered with 429 + Retry-After).
    public var otherLimitsPerSecond: [ProviderID: Int] = [:]
    /// Latency added to every answer of a provider (after the request has arrived and been counted).
    public var latency: [ProviderID: LatencyDistribution] = [:]
    /// Network jitter per provider: each request reaches the provider this much later. Slept before
    /// the sandbox reads its clock and counts the request for rate limits, so rates are measured at
    /// (jittered) arrival, as the real provider measures them; e.g. `.uniform(minMilliseconds: 0,
    /// maxMilliseconds: 200)`.
    public var arrivalJitter: [ProviderID: LatencyDistribution] = [:]
    /// Serve every provider route under this prefix, e.g. `/gw` (an API gateway in front):
    /// `POST /gw/open/v2/order/cancel`. The admin routes stay under `/_sandbox`. The futures
    /// signature is checked over the path the request arrived on, prefix included, as CoinW signs
    /// the request path. Nil or empty: no prefix.
    public var pathPrefix: String?
    /// Requests kept in the request log (older ones drop out; counters keep counting).
    public var requestLogCapacity: Int = 100_000
    /// How far a futures `timestamp` may be from the sandbox's clock.
    public var futuresTimestampWindow: Duration = .seconds(60)
    /// Serve HTTPS with this certificate and key (the providers' real endpoints are HTTPS; the
    /// adapters' TLS is tested against it). Nil: plain HTTP.
    public var tls: TLSConfiguration?

    public init(accounts: [ProviderID: [String: ProviderCredentials]] = SandboxConfiguration.demoAccounts) {
        self.accounts = accounts
    }

    /// `pathPrefix` with one leading `/` and no trailing one (`""` for none).
    var normalizedPathPrefix: String {
        let trimmed = (self.pathPrefix ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        return trimmed.isEmpty ? "" : "/" + trimmed
    }

    /// The documented demo credentials (also the worker's demo configuration):
    /// every provider has accounts `demo-1`…`demo-3`; keys are `<provider>-key-<n>`, secrets
    /// `<provider>-secret-<n>` (Fungies: public `pub_demo_<n>`, secret `sec_demo_<n>`).
    public static var demoAccounts: [ProviderID: [String: ProviderCredentials]] {
        var accounts: [ProviderID: [String: ProviderCredentials]] = [:]
        for provider in ProviderID.allCases {
            var byAccount: [String: ProviderCredentials] = [:]
            for index in 1...3 {
                let account = "demo-\(index)"
                switch provider {
                case .fungies:
                    byAccount[account] = ProviderCredentials(key: "pub_demo_\(index)", secret: "sec_demo_\(index)")
                case .futures:
                    byAccount[account] = ProviderCredentials(
                        key: "futures-key-\(index)", secret: "futures-secret-\(index)")
                default:
                    byAccount[account] = ProviderCredentials(key: "\(provider.rawValue)-key-\(index)")
                }
            }
            accounts[provider] = byAccount
        }
        return accounts
    }
}

/// How long an answer takes.
public enum LatencyDistribution: Sendable, Hashable, Codable {
    case fixed(milliseconds: Double)
    case uniform(minMilliseconds: Double, maxMilliseconds: Double)
    case normal(meanMilliseconds: Double, standardDeviationMilliseconds: Double)

    /// One sample, never negative.
    public func sample() -> Duration {
        let milliseconds: Double
        switch self {
        case .fixed(let value):
            milliseconds = value
        case .uniform(let low, let high):
            milliseconds = Double.random(in: low...max(low, high))
        case .normal(let mean, let deviation):
            // Box–Muller.
            let u1 = Double.random(in: Double.ulpOfOne..<1)
            let u2 = Double.random(in: 0..<1)
            milliseconds = mean + deviation * (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2)
        }
        return .microseconds(Int64(max(0, milliseconds) * 1000))
    }
}
