public import CancelCore

/// How to reach one provider and with which credentials.
public struct ProviderSettings: Sendable, Hashable {
    /// Scheme, host and port (and optionally a path prefix); the documented path is appended.
    public var baseURL: String
    /// Upper bound of one call, connect to last body byte.
    public var timeout: Duration = .seconds(15)
    /// Responses larger than this are refused (classified `unknown`).
    public var maxResponseBytes: Int = 1 << 20
    /// The longest wait a `Retry-After` (or a rate-limit answer) may impose; longer ones are cut.
    public var maxRetryAfter: Duration = .seconds(600)
    /// A "slow down" that reaches this many different accounts within `globalLimitWindow` is
    /// the provider's global limit, not theirs: the whole provider pauses.
    public var globalLimitAccounts: Int = 3
    public var globalLimitWindow: Duration = .seconds(2)
    /// `User-Agent` header; feee.io documents (and may whitelist) one.
    public var userAgent: String?
    /// Credentials per account.
    public var accounts: [String: ProviderCredentials] = [:]
    /// Credentials for accounts without their own (merchant-wide keys). Not used for `futures`,
    /// whose keys belong to each user.
    public var defaultCredentials: ProviderCredentials?
    /// This provider's send window, if narrower than the shared one (`HTTPClientSettings.sendWindow`).
    public var sendWindow: Duration?

    public init(baseURL: String) {
        self.baseURL = baseURL
    }

    /// The credentials for `account`, if any.
    public func credentials(for account: String) -> ProviderCredentials? {
        self.accounts[account] ?? self.defaultCredentials
    }

    /// The production endpoints from the providers' documents.
    public static func production(_ provider: ProviderID) -> ProviderSettings {
        switch provider {
        case .feee:
            var settings = ProviderSettings(baseURL: "https://feee.io")
            settings.userAgent = FeeeAPI.documentedUserAgent
            return settings
        case .fungies: return ProviderSettings(baseURL: "https://api.fungies.io")
        case .taker: return ProviderSettings(baseURL: "https://proto.stove.finance")
        case .fastpod: return ProviderSettings(baseURL: "https://api-v2.fastpod.net")
        case .futures: return ProviderSettings(baseURL: "https://api.coinw.com")
        }
    }
}

/// The HTTP client every adapter shares (one connection pool).
public struct HTTPClientSettings: Sendable, Hashable {
    /// TCP (and TLS) connect timeout.
    public var connectTimeout: Duration = .seconds(2)
    /// Time without response bytes before a call fails.
    public var readTimeout: Duration = .seconds(10)
    /// Connections kept per host, and the calls each provider has on the wire at once.
    public var maxConnectionsPerHost: Int = 64
    /// How soon after the worker's send-time guard said yes a request must reach its connection;
    /// later, it is not sent and the guard decides again (`Exchange.sendBy` in `ProviderConnections.swift`).
    public var sendWindow: Duration = SendVerdict.defaultSendWindow

    public init() {}
}
