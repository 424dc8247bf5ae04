public import CancelCore
import Foundation

/// Misbehaviour on demand, like HTTPBin's failure modes: for matching requests, answer late,
/// answer with an error, never answer, reset the connection, or dribble the body.
public struct SandboxFault: Sendable, Hashable, Codable {
    public enum Kind: Sendable, Hashable, Codable {
        /// Added latency before the normal answer.
        case latency(LatencyDistribution)
        /// An HTTP error instead of the normal answer (`retryAfterSeconds` adds `Retry-After`).
        case status(code: Int, retryAfterSeconds: Int?)
        /// Hold the request this long, then answer 504 (clients time out first).
        case timeout(seconds: Double)
        /// Close the connection (TCP reset) without answering.
        case reset
        /// The normal answer, its body trickling out over this many seconds.
        case slowBody(seconds: Double)
    }

    public var kind: Kind
    /// Only this provider (nil: all).
    public var provider: ProviderID?
    /// Only order ids matching this glob (`*` wildcard), e.g. `flaky-*`.
    public var orderPattern: String?
    /// Only this account.
    public var account: String?
    /// Applies this many times, then disappears (nil: until cleared).
    public var count: Int?
    /// Chance of applying to a matching request.
    public var probability: Double

    public init(_ kind: Kind, provider: ProviderID? = nil, orderPattern: String? = nil, account: String? = nil, count: Int? = nil, probability: Double = 1) {
        self.kind = kind
        self.provider = provider
        self.orderPattern = orderPattern
        self.account = account
        self.count = count
        self.probability = probability
    }

    func matches(provider: ProviderID, orderID: String?, account: String?) -> Bool {
        if let wanted = self.provider, wanted != provider { return false }
        if let wanted = self.account, wanted != account { return false }
        if let pattern = self.orderPattern {
            guard let orderID, Self.glob(pattern, orderID) else { return false }
        }
        return true
    }

    /// `*` matches any run of characters; everything else literally.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
        guard parts.count > 1 else { return pattern == text }
        var remainder = Substring(text)
        guard remainder.hasPrefix(parts[0]) else { return false }
        remainder = remainder.dropFirst(parts[0].count)
        for (index, part) in parts.dropFirst().enumerated() {
            let isLast = index == parts.count - 2
            if isLast { return part.isEmpty || remainder.hasSuffix(part) }
            guard let range = remainder.range(of: part) else { return false }
            remainder = remainder[range.upperBound...]
        }
        return true
    }

    /// Parses the `X-Sandbox-Fault` request header: `status=503`, `status=429;retry-after=2`,
    /// `latency=250ms`, `timeout=5s`, `reset`, `slow-body=2s`.
    static func fromHeader(_ value: String) -> Kind? {
        var fields: [String: String] = [:]
        for part in value.split(separator: ";") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            fields[pair[0].lowercased()] = pair.count > 1 ? pair[1] : ""
        }
        if let status = fields["status"].flatMap(Int.init) {
            return .status(code: status, retryAfterSeconds: fields["retry-after"].flatMap(Int.init))
        }
        if let latency = fields["latency"].flatMap(Duration.init(humanReadable:)) {
            return .latency(.fixed(milliseconds: latency.timeInterval * 1000))
        }
        if let timeout = fields["timeout"] {
            return .timeout(seconds: Duration(humanReadable: timeout)?.timeInterval ?? 30)
        }
        if fields["reset"] != nil { return .reset }
        if let slow = fields["slow-body"].flatMap(Duration.init(humanReadable:)) {
            return .slowBody(seconds: slow.timeInterval)
        }
        return nil
    }
}
