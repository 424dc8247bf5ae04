public import CancelCore
import Foundation

/// Misbehaviour on demand, like HTTPBin's failure modes: for matching requests, answer late,
/// answer with an error, never answer, reset the connection, dribble the body, or answer with
/// what real servers (and the proxies in front of them) send when things go wrong: HTML error
/// pages, empty bodies, error envelopes with HTTP 200, redirects, huge or cut-off bodies,
/// unparseable `Retry-After` values. Network jitter delays a request before the sandbox sees it.
///
/// Three ways to ask for one: `sandbox.addFault(SandboxFault(.html(status: 404), provider: .fastpod))`
/// in Swift; `POST /_sandbox/faults` (see `SandboxAdmin`); or, for one request, the request header
/// `X-Sandbox-Fault` (see `fromHeader(_:)`). Only the first matching fault applies to a request.
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
        /// A small HTML error page (`Content-Type: text/html`) with this status, as a proxy, a load
        /// balancer or a framework's default handler sends it; a 2xx status gets a maintenance page.
        case html(status: Int)
        /// No body at all (`Content-Length: 0`) with this status. Except for 204 and 304 the answer
        /// still says `Content-Type: application/json`: it promises JSON and sends none.
        case empty(status: Int)
        /// Exactly this body with this status and `Content-Type` (none when `contentType` is empty),
        /// e.g. Fungies' error envelope with HTTP 200:
        /// `.raw(status: 200, contentType: "application/json",
        /// body: #"{"status":"error","error":{"message":"Order cannot be cancelled"}}"#)`.
        case raw(status: Int, contentType: String, body: String)
        /// A redirect: `status` (3xx) with a `Location` header and nginx's HTML page.
        case redirect(status: Int, location: String)
        /// A JSON document of exactly `bytes` bytes (`{"padding":"xxx…"}`) with this status.
        case oversized(bytes: Int, status: Int = 200)
        /// The normal answer (the order changes as usual) whose head declares the full
        /// `Content-Length`, but only `fraction` of the body is written; then the connection closes.
        case truncated(fraction: Double = 0.5)
        /// `status` (e.g. 429 or 503) with `Retry-After: <value>` sent verbatim: `inf`, `1e300`,
        /// `-5`, `99999999999`, `NaN`, `Fri, 31 Dec 9999 23:59:59 GMT`, garbage.
        case retryAfter(status: Int, value: String)
        /// Network jitter: the request reaches the provider this much later. It is slept before the
        /// sandbox reads its clock and counts the request for rate limits, so the sandbox measures
        /// rates at (jittered) arrival, as a real provider does. Then the normal answer.
        case jitter(LatencyDistribution)
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

    public init(
        _ kind: Kind, provider: ProviderID? = nil, orderPattern: String? = nil, account: String? = nil,
        count: Int? = nil, probability: Double = 1
    ) {
        self.kind = kind
        self.provider = provider
        self.orderPattern = orderPattern
        self.account = account
        self.count = count
        self.probability = probability
    }

    /// Decodes the synthesized shape (`{"kind": {"html": {"status": 404}}, "provider": "fastpod"}`);
    /// everything but `kind` may be left out (`probability` defaults to 1).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.kind = try container.decode(Kind.self, forKey: .kind)
        self.provider = try container.decodeIfPresent(ProviderID.self, forKey: .provider)
        self.orderPattern = try container.decodeIfPresent(String.self, forKey: .orderPattern)
        self.account = try container.decodeIfPresent(String.self, forKey: .account)
        self.count = try container.decodeIfPresent(Int.self, forKey: .count)
        self.probability = try container.decodeIfPresent(Double.self, forKey: .probability) ?? 1
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

    /// The redirect target when none is given: a gateway sending the caller to its login page.
    public static let defaultRedirectLocation = "/login"

    /// Parses the `X-Sandbox-Fault` request header: `;`-separated `name=value` fields.
    ///
    /// ```
    /// status=503                      status=429;retry-after=2
    /// status=503;retry-after=inf      any Retry-After that is not a plain integer is sent verbatim
    /// retry-after=1e300               (status 429)
    /// latency=250ms   timeout=5s   reset   slow-body=2s
    /// html=404        empty=204        empty=200
    /// raw=200;content-type=application/json;body={"status":"error","error":{"message":"…"}}
    ///                                 body= comes last and takes the rest of the header, `;` included
    /// redirect=302;location=https://example.com/moved      redirect=301   (location /login)
    /// oversized=2MiB  oversized=500000;status=200          sizes: 123, 64KB, 64KiB, 2MB, 2MiB
    /// truncated       truncated=0.25                        (fraction of the body written)
    /// jitter=300ms    jitter=0ms..200ms    jitter-ms=0..200 (also jitter_ms=; uniform between the two)
    /// ```
    static func fromHeader(_ value: String) -> Kind? {
        let fields = Self.headerFields(value)
        func int(_ name: String) -> Int? { fields[name].flatMap { Int($0) } }
        if let bytes = fields["oversized"].flatMap(Self.byteCount) {
            return .oversized(bytes: bytes, status: int("status") ?? 200)
        }
        if let status = int("status") {
            guard let retryAfter = fields["retry-after"] else { return .status(code: status, retryAfterSeconds: nil) }
            if let seconds = Int(retryAfter) { return .status(code: status, retryAfterSeconds: seconds) }
            return .retryAfter(status: status, value: retryAfter)
        }
        if let retryAfter = fields["retry-after"] { return .retryAfter(status: 429, value: retryAfter) }
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
        if let status = int("html") { return .html(status: status) }
        if let status = int("empty") { return .empty(status: status) }
        if let status = int("raw") {
            let contentType = fields["content-type"] ?? "application/json"
            return .raw(status: status, contentType: contentType, body: fields["body"] ?? "")
        }
        if let redirect = fields["redirect"] {
            return .redirect(status: Int(redirect) ?? 302, location: fields["location"] ?? Self.defaultRedirectLocation)
        }
        if let truncated = fields["truncated"] { return .truncated(fraction: Double(truncated) ?? 0.5) }
        if let jitter = fields["jitter"].flatMap({ Self.distribution($0, unit: nil) }) { return .jitter(jitter) }
        if let jitter = (fields["jitter-ms"] ?? fields["jitter_ms"]).flatMap({ Self.distribution($0, unit: 1) }) {
            return .jitter(jitter)
        }
        return nil
    }

    /// `name=value` fields (names lower-cased, values trimmed); `body=` takes the rest verbatim.
    private static func headerFields(_ value: String) -> [String: String] {
        var fields: [String: String] = [:]
        var rest = Substring(value)
        while !rest.isEmpty {
            let part = rest.drop { $0 == " " || $0 == "\t" }
            if part.lowercased().hasPrefix("body=") {
                fields["body"] = String(part.dropFirst(5))
                break
            }
            let end = part.firstIndex(of: ";") ?? part.endIndex
            rest = end < part.endIndex ? part[part.index(after: end)...] : ""
            let pair = part[..<end].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = pair[0].trimmingCharacters(in: .whitespaces).lowercased()
            guard !name.isEmpty else { continue }
            fields[name] = pair.count > 1 ? pair[1].trimmingCharacters(in: .whitespaces) : ""
        }
        return fields
    }

    /// `300ms` (fixed) or `0ms..200ms` (uniform); bare numbers are in `unit` milliseconds, or read
    /// as `Duration(humanReadable:)` (seconds) when `unit` is nil.
    static func distribution(_ text: String, unit: Double?) -> LatencyDistribution? {
        func milliseconds(_ part: some StringProtocol) -> Double? {
            let part = part.trimmingCharacters(in: .whitespaces)
            if let unit, let value = Double(part), value >= 0 { return value * unit }
            return Duration(humanReadable: part).map { $0.timeInterval * 1000 }
        }
        let bounds = text.components(separatedBy: "..")
        switch bounds.count {
        case 1: return milliseconds(bounds[0]).map { .fixed(milliseconds: $0) }
        case 2:
            guard let low = milliseconds(bounds[0]), let high = milliseconds(bounds[1]) else { return nil }
            return .uniform(minMilliseconds: low, maxMilliseconds: high)
        default: return nil
        }
    }

    /// `123`, `64KB`, `64KiB`, `2MB`, `2MiB` (at most 1 GiB).
    static func byteCount(_ text: String) -> Int? {
        let units: [(String, Double)] = [
            ("KiB", 1_024), ("MiB", 1_048_576), ("KB", 1_000), ("MB", 1_000_000), ("B", 1),
        ]
        var number = text.trimmingCharacters(in: .whitespaces)
        var scale: Double = 1
        for (suffix, factor) in units where number.lowercased().hasSuffix(suffix.lowercased()) {
            number = String(number.dropLast(suffix.count)).trimmingCharacters(in: .whitespaces)
            scale = factor
            break
        }
        guard let value = Double(number), value >= 0, value * scale <= 1_073_741_824 else { return nil }
        return Int(value * scale)
    }
}
