public import CancelCore
public import Foundation

/// An order in the sandbox's book. `status` uses each provider's own vocabulary:
///
/// | provider | cancellable | final |
/// |---|---|---|
/// | feee | `open` (5 minutes after `createdAt`) | `completed`, `cancelled` |
/// | fungies | `PENDING`, `PAID`, `UNPAID` | `CANCELLED`, `REFUNDED`, `PARTIALLY_REFUNDED`, `EXPIRED`, `FAILED` |
/// | taker | `locked` (a cancellation request is pending) | `cancelled`, `trading` (the taker refused), `filled` |
/// | fastpod | `new_order`, `draft`, `on_hold` | `in_production`, `shipped`, `cancelled`, `rejected` |
/// | futures | `open` | `filled`, `cancelled` |
public struct SandboxOrder: Sendable, Hashable, Codable {
    public var provider: ProviderID
    /// The provider's id for the order (feee order_no, Fungies id, taker hash, FastPOD id, futures id).
    public var id: String
    /// Fungies' order number, a second name for the same order.
    public var number: String?
    public var status: String
    public var createdAt: Date
    /// The taker's cancellation request's `metadata.expires_at` (CONTRACTS.md): a result reported
    /// later is refused. Nil: the request does not expire (the sandbox's default).
    public var expiresAt: Date?

    public init(
        provider: ProviderID, id: String, status: String? = nil, number: String? = nil,
        createdAt: Date = Date(timeIntervalSinceNow: -3600), expiresAt: Date? = nil
    ) {
        self.provider = provider
        self.id = id
        self.number = number
        self.status = status ?? SandboxOrder.openStatus(provider)
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    /// The status a new, cancellable order has.
    public static func openStatus(_ provider: ProviderID) -> String {
        switch provider {
        case .feee, .futures: "open"
        case .fungies: "PAID"
        case .taker: "locked"
        case .fastpod: "new_order"
        }
    }

    /// Every status of `provider`'s vocabulary (the table above): anything else is refused when
    /// seeded, so a typo never turns a final order into an open one.
    public static func statuses(_ provider: ProviderID) -> Set<String> {
        switch provider {
        case .feee: ["open", "completed", "cancelled"]
        case .fungies:
            ["PENDING", "PAID", "UNPAID", "CANCELLED", "REFUNDED", "PARTIALLY_REFUNDED", "EXPIRED", "FAILED"]
        case .taker: ["locked", "cancelled", "trading", "filled"]
        case .fastpod: ["new_order", "draft", "on_hold", "in_production", "shipped", "cancelled", "rejected"]
        case .futures: ["open", "filled", "cancelled"]
        }
    }

    /// A cancel of order `id` at `provider` as generated traffic (chaos runs, fleet tests) sends
    /// it; the taker's is the decision on cancellation request `0x<id>`, granted.
    public static func reference(_ provider: ProviderID, id: String) -> OrderReference {
        switch provider {
        case .feee: .feee(orderNo: id)
        case .fungies: .fungies(orderIDOrNumber: id)
        case .taker: .taker(orderHash: "0x\(id)", takerAddress: "0xtaker", cancellationSuccess: true, message: "ok")
        case .fastpod: .fastpod(id: id)
        case .futures: .futures(id: id)
        }
    }
}

/// One request as the sandbox saw it. Credentials are redacted before it is stored.
public struct SandboxRequestRecord: Sendable, Hashable, Codable {
    /// When the request arrived (after the network jitter the sandbox adds): what a provider
    /// stamps and counts.
    public var at: Date
    /// When the sandbox began to handle it, before that jitter: the closest the sandbox sees to
    /// when the client sent it (nil in records made before this field existed).
    public var receivedAt: Date?
    public var provider: ProviderID
    /// The account the credentials belong to (nil: unknown credentials).
    public var account: String?
    public var method: String
    public var path: String
    public var orderID: String?
    public var headers: [String: String]
    public var body: String
    /// The HTTP status answered (0: the connection was reset).
    public var status: Int
    /// The provider-level result: `cancelled`, `already_cancelled`, `not_found`, `auth_error`,
    /// `rate_limited`, `fault:status_503`, `fault:html_404`, `cancelled+truncated`, …
    public var result: String
    /// What the request got wrong against the provider's document (nil: nothing), e.g.
    /// `fastpod: missing Accept: application/json`.
    public var contractViolations: [String]?
}

/// What the sandbox counted.
public struct SandboxStats: Sendable, Hashable, Codable {
    public var total: Int
    public var byProvider: [String: Int]
    /// Keys are `provider:account` (`provider:?` for unknown credentials).
    public var byAccount: [String: Int]
    /// Requests per provider per second (epoch seconds as text).
    public var perSecond: [String: [String: Int]]
    /// The most requests one user made within any 1-second window, per `provider:account`.
    public var maxRatePerUser: [String: Int]
    /// Requests answered with a rate-limit error because the user was over the limit.
    public var rateLimitViolations: [String: Int]
    /// Results by provider: e.g. `futures` → `cancelled` → 12.
    public var results: [String: [String: Int]]
    /// The most requests served at once, per provider (latency and faults included).
    public var maxConcurrentRequests: [String: Int]
    /// Requests that broke their provider's documented contract, by what they broke:
    /// `"fastpod: missing Accept: application/json"` → 3 (see `SandboxContract`). The answer to such
    /// a request is still whatever the provider would answer.
    public var contractViolations: [String: Int]

    /// Total violations.
    public var totalViolations: Int { self.rateLimitViolations.values.reduce(0, +) }

    enum CodingKeys: String, CodingKey {
        case total
        case byProvider = "by_provider"
        case byAccount = "by_account"
        case perSecond = "per_second"
        case maxRatePerUser = "max_rate_per_user"
        case rateLimitViolations = "rate_limit_violations"
        case results
        case maxConcurrentRequests = "max_concurrent_requests"
        case contractViolations = "contract_violations"
    }
}
