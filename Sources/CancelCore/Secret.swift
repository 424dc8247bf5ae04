/// A credential. It prints as `[REDACTED]` in every interpolation, description and dump, and
/// encodes as `[REDACTED]`: the only way to the value is the explicit `reveal()`, used where a
/// request is signed or a header is set.
public struct Secret: Sendable, Hashable, Codable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    private let value: String

    public init(_ value: String) {
        self.value = value
    }

    public func reveal() -> String { self.value }

    public var isEmpty: Bool { self.value.isEmpty }

    public var description: String { "[REDACTED]" }
    public var debugDescription: String { "[REDACTED]" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }

    public init(from decoder: any Decoder) throws {
        self.value = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode("[REDACTED]")
    }
}

/// The credentials of one account at one provider.
///
/// | provider | `key` | `secret` |
/// |---|---|---|
/// | feee | `key` header | — |
/// | fungies | `x-fngs-public-key` | `x-fngs-secret-key` |
/// | taker | `X-API-Key` | — |
/// | fastpod | bearer token | — |
/// | futures | `api_key` header | HMAC-SHA256 signing secret |
public struct ProviderCredentials: Sendable, Hashable, Codable {
    public var key: Secret
    public var secret: Secret?

    public init(key: Secret, secret: Secret? = nil) {
        self.key = key
        self.secret = secret
    }

    public init(key: String, secret: String? = nil) {
        self.init(key: Secret(key), secret: secret.map(Secret.init))
    }
}
